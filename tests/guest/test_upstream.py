"""Upstream QEMU's own sp-mem (QEMU 11.1, Debian's build; make
upstream-qemu) with two devices that QEMU places, on NUMA nodes 1 and 2:
what the guest makes of them.

spm-memory leaves 128 MiB between the devices it places (two-nodes-natural
in test_guest.py), and refuses devices back to back on different nodes
without an ACPI HMAT, because Linux merges adjacent soft reserved E820
ranges into one and, without an HMAT, gives the merged range to one dax
device on the node of its start. Upstream's sp-mem places them back to
back. This test records the result, the comparison README.md
states: one soft reserved range and one dax device over both devices, on
node 1, so the second device's memory is onlined on the wrong node. If
upstream's placement or Linux changes, it fails, and README.md must change
with it.

Oracle: the command line (sizes, nodes) and QEMU's placement; the guest's
report (E820, dax devices, node memory) as in test_guest.py.
"""
import os

import pytest

from spmtest import build_dir
from spmtest import guest as spmguest

MiB, GiB = 1 << 20, 1 << 30
UPSTREAM_QEMU = os.path.join(build_dir(), "qemu-upstream", "qemu-system-x86_64")
SIZES = {"s0": (1 * GiB, 1), "s1": (512 * MiB, 2)}       # id: (size, node)
KERNEL = "6.12"                                          # kmem onlines it


def args():
    a = ["-M", "q35", "-m", "1G,maxmem=8G",
         "-object", "memory-backend-ram,id=m0,size=1G",
         "-numa", "node,nodeid=0,memdev=m0,cpus=0-1",
         "-numa", "node,nodeid=1", "-numa", "node,nodeid=2"]
    for i, (dev, (size, node)) in enumerate(SIZES.items()):
        a += ["-object", f"memory-backend-ram,id=h{i},size={size // MiB}M",
              "-device", f"sp-mem,id={dev},memdev=h{i},node={node}"]
    return a


def test_upstream_sp_mem_adjacent_devices_merge():
    if not os.path.exists(UPSTREAM_QEMU):
        pytest.fail(f"no upstream QEMU ({UPSTREAM_QEMU}): run 'make "
                    "upstream-qemu'", pytrace=False)
    log = os.path.join(build_dir(), "logs", "guest", "upstream-sp-mem.log")
    devices, report = spmguest.boot(args(), kernel=KERNEL, firmware="ovmf",
                                    log=log, qemu=UPSTREAM_QEMU,
                                    device="sp-mem")
    placed = {d["id"]: (d["addr"], d["size"], d["node"]) for d in devices}
    assert {k: v[1:] for k, v in placed.items()} == SIZES, placed
    start = placed["s0"][0]
    # the precondition of the comparison: upstream put them back to back
    assert placed["s1"][0] == start + SIZES["s0"][0], \
        f"upstream's sp-mem no longer places the devices back to back " \
        f"({placed}): update the comparison in README.md"
    total = sum(size for size, _ in SIZES.values())
    soft = spmguest.e820_soft_reserved(report)
    assert soft == [(start, start + total - 1)], \
        f"expected one merged soft reserved range over both devices: {soft}"
    dax = [(d["start"], d["size"], d["target_node"], d["driver"])
           for d in report["dax"]]
    assert dax == [(start, total, 1, spmguest.DRIVER[KERNEL])], \
        f"expected one dax device over both devices on node 1: {dax}"
    nodes = {n["id"]: n["memtotal_kb"] for n in report["nodes"]}
    assert nodes.get(1) == total // 1024 and not nodes.get(2), \
        f"expected node 2's device onlined on node 1: {report['nodes']}"
