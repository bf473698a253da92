"""Reliability with a running guest: live migration, hotplug refusal, reset.

The guest (patched SeaBIOS, Debian 6.1, 6.12 or the newest 7.N) fills its
spm-memory with a pattern (guest/spmtool.c: through /dev/dax0.0 on
6.1, as memory of the device's node on 6.12 and 7.x) and prints the checksum
every second. Then:

- device_add of another spm-memory device and device_del of the device are
  refused over QMP, the guest runs on, its checksum unchanged;
- migration to destinations that do not match (no spm-memory device, the
  device on another node or address, a backend of another size) fails: the
  destination says why in its own words, it refuses before the guest's
  memory is sent (the source is throttled so that sending the filled memory
  would take minutes, and the failure comes within seconds), and the source
  guest runs on with its checksum unchanged;
- migration over a unix socket to a destination with the same command line
  completes, and the guest, now on the destination, computes the same
  checksum.

The checksum the guest prints is compared with one computed here from the
pattern's definition (expected_checksum()), so memory that lost writes, or
a destination that received other bytes, fails.

system_reset: after a reset the guest boots again and sees the same layout
(E820 soft reserved ranges from its boot log, dax ranges in /proc/iomem,
SRAT, dax devices in sysfs).
"""
import functools
import os
import re
import tempfile
import time

import pytest

from spmtest import build_dir
from spmtest import guest as spmguest
from spmtest import report as guest_report
from spmtest.qemupy import ExecuteError

MiB = 1 << 20
LOGS = os.path.join(build_dir(), "logs", "guest")
SPM_ADDR, SPM_SIZE = 0x100000000, 256 * MiB


FILL_MIB = 192


def machine(spm_node=1, spm_size="256M", spm=True, addr=None):
    args = ["-M", "q35", "-m", "1G,maxmem=8G",
            "-object", "memory-backend-ram,id=m0,size=1G",
            "-numa", "node,nodeid=0,memdev=m0,cpus=0-1",
            "-numa", "node,nodeid=1"]
    if spm:
        dev = f"spm-memory,id=spm0,memdev=hbm0,node={spm_node}"
        if addr is not None:
            dev += f",addr={addr:#x}"
        args += ["-object", f"memory-backend-ram,id=hbm0,size={spm_size}",
                 "-device", dev]
    return args


FILLED, VERIFY = spmguest.FILLED, spmguest.VERIFY
M64 = (1 << 64) - 1


@functools.lru_cache()
def expected_checksum(nbytes):
    """The checksum of spmtool's fill, computed here from its definition:
    word i is a splitmix64 finalizer of i + golden ratio, folded in order by
    64-bit FNV-1a steps over whole words."""
    s = 0xcbf29ce484222325
    for i in range(nbytes // 8):
        z = (i + 0x9e3779b97f4a7c15) & M64
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
        s = ((s ^ z ^ (z >> 31)) * 0x100000001b3) & M64
    return f"{s:#018x}"


# Destinations that must refuse the stream, and what each says (QEMU's
# stderr of the destination): the device's section comes before RAM's list
# of RAM blocks and names the device, the property and both values; a
# destination without the device does not know the section.
MISMATCHED = [
    ("no-device", machine(spm=False),
     r"Unknown savevm section or instance 'spm0/spm-memory' 0"),
    ("other-node", machine(spm_node=0),
     r"spm-memory 'spm0': property 'node' is 1 on the source, 0 on this "
     r"destination"),
    ("other-addr", machine(addr=0x140000000),
     r"spm-memory 'spm0': property 'addr' is 0x100000000 on the source, "
     r"0x140000000 on this destination"),
    ("other-size", machine(spm_size="512M"),
     r"spm-memory 'spm0': property 'size' is 0x10000000 on the source, "
     r"0x20000000 on this destination"),
]
# Throttle for the mismatched migrations: sending the filled spm-memory
# alone would take FILL_MIB seconds.
THROTTLE = 1 << 20


def wait_migration(qmp):
    return spmguest.wait_migration(qmp)["status"]


def assert_checksum_after(guest, after, checksum, rounds=2):
    """The next `rounds` verify lines after offset `after` show `checksum`."""
    for _ in range(rounds):
        m, after = guest.wait_for(VERIFY, timeout=60, after=after)
        assert (m.group(1), m.group(2)) == (checksum, "ok"), m.group(0)
    return after


def assert_running(guest):
    assert guest.qmp.cmd("query-status")["status"] == "running"


@pytest.mark.parametrize("kernel", spmguest.KERNELS)
def test_running_guest(kernel):
    src = spmguest.Guest(machine(), os.path.join(LOGS, f"migrate-src-{kernel}.log"),
                         kernel=kernel, append=f"spm.fill={FILL_MIB}")
    dsts = []
    sockets = tempfile.TemporaryDirectory()
    try:
        src.qmp.cmd("cont")
        checksum = expected_checksum(FILL_MIB * MiB)
        m, pos = src.wait_for(FILLED, timeout=240)
        size, node = int(m.group(1)), int(m.group(3))
        assert (size, m.group(2)) == (FILL_MIB * MiB, checksum), m.group(0)
        if spmguest.DRIVER[kernel] == "kmem":
            assert node == 1, "kmem memory is not on the spm-memory node"
        pos = assert_checksum_after(src, pos, checksum)
        report = src.reports()[0]
        assert [(d["start"], d["size"], d["target_node"]) for d in report["dax"]] \
            == [(SPM_ADDR, SPM_SIZE, 1)]

        # hotplug refused, guest unharmed
        src.qmp.cmd("object-add", **{"qom-type": "memory-backend-ram",
                                     "id": "hbm9", "size": 128 * MiB})
        with pytest.raises(ExecuteError, match="does not support hotplugging"):
            src.qmp.cmd("device_add", driver="spm-memory", id="spm9",
                        memdev="hbm9", node=1)
        with pytest.raises(ExecuteError, match="does not support hotplugging"):
            src.qmp.cmd("device_del", id="spm0")
        assert_running(src)
        pos = assert_checksum_after(src, pos, checksum)

        # mismatched destinations: each refuses, in its own words, before
        # the memory is sent; the source runs on
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "return-path", "state": True}])
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": THROTTLE})
        for name, args, error in MISMATCHED:
            dst = spmguest.Guest(args, os.path.join(
                LOGS, f"migrate-dst-{name}-{kernel}.log"), kernel=kernel,
                incoming="defer")
            dsts.append(dst)
            dst.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "return-path", "state": True}])
            uri = f"unix:{sockets.name}/{name}.sock"
            dst.qmp.cmd("migrate-incoming", uri=uri)
            start = time.monotonic()
            src.qmp.cmd("migrate", uri=uri)
            assert wait_migration(src.qmp) == "failed", name
            secs = time.monotonic() - start
            assert secs < FILL_MIB / 8, f"{name}: refused after {secs:.0f}s"
            dst.proc.wait(timeout=60)
            assert re.search(error, dst.qemu_stderr()), \
                f"{name}: {dst.qemu_stderr()}"
            assert_running(src)
            pos = assert_checksum_after(src, pos, checksum)

        # the real thing
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "return-path", "state": False}])
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
        uri = f"unix:{sockets.name}/migrate.sock"
        dst = spmguest.Guest(machine(), os.path.join(
            LOGS, f"migrate-dst-{kernel}.log"), kernel=kernel, incoming=uri)
        dsts.append(dst)
        src.qmp.cmd("migrate", uri=uri)
        assert wait_migration(src.qmp) == "completed"
        assert_running(dst)
        assert_checksum_after(dst, 0, checksum, rounds=3)
        devs = [d["data"] for d in dst.qmp.cmd("query-memory-devices")]
        assert [(d["memaddr"], d["size"], d["node"]) for d in devs] == \
            [(SPM_ADDR, SPM_SIZE, 1)]
    finally:
        for g in dsts + [src]:
            g.quit()
        sockets.cleanup()


@pytest.mark.parametrize("kernel", spmguest.KERNELS)
def test_system_reset(kernel):
    g = spmguest.Guest(machine(), os.path.join(LOGS, f"reset-{kernel}.log"),
                       kernel=kernel, append="spm.hold=1", reboot=True)
    try:
        devs = [d["data"] for d in g.qmp.cmd("query-memory-devices")]
        g.qmp.cmd("cont")
        _, pos = g.wait_for(guest_report.END, timeout=240)
        g.qmp.cmd("system_reset")
        g.wait_for(guest_report.END, timeout=240, after=pos)
        first, second = g.reports()
        assert [d["data"] for d in g.qmp.cmd("query-memory-devices")] == devs

        def layout(rep):
            return (spmguest.e820_soft_reserved(rep),
                    spmguest.iomem_ranges(rep, spmguest.DAX_NAME),
                    rep["srat"], rep["e820"],
                    [(d["start"], d["size"], d["target_node"], d["driver"])
                     for d in rep["dax"]])
        assert layout(second) == layout(first)
        spm_range = [(SPM_ADDR, SPM_ADDR + SPM_SIZE - 1)]
        assert layout(first)[0] == spm_range
        assert layout(first)[1] == spm_range
        assert layout(first)[4] == [(SPM_ADDR, SPM_SIZE, 1,
                                     spmguest.DRIVER[kernel])]
    finally:
        g.quit()
