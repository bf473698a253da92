"""Upstream QEMU's own sp-mem (QEMU 11.1, Debian's build; make
upstream-qemu) in two configurations where spm-memory differs on purpose:
what a Linux 6.12 guest (OVMF) makes of them. The README's comparison
says what these tests record; if upstream or Linux changes, they fail,
and the README must change with them.

- Two devices that QEMU places, on nodes 1 and 2. spm-memory leaves
  128 MiB between them (two-nodes-natural in test_guest.py) and refuses
  devices back to back on different nodes without an ACPI HMAT, because
  Linux merges adjacent soft reserved E820 ranges and, without an HMAT,
  gives the merged range to one dax device on the node of its start.
  Upstream places them back to back: one soft reserved range and one dax
  device over both, on node 1, so the second device's memory is onlined
  on the wrong node.
- Devices at explicit addresses, node 1's above free device memory.
  Linux numbers NUMA nodes in the order their proximity domains first
  appear in the SRAT; upstream lists device memory in address order, so
  the free range before node 1's device, which belongs to the last node
  (2), comes first: the guest's node 1 is QEMU's node 2 and the other way
  round. spm-memory orders its SRAT so that the guest's node ids are
  QEMU's (two-nodes-gap in test_guest.py).

Oracle: the command line (sizes, nodes, addresses) and, where QEMU
places the devices, its placement; the guest's report (E820, dax devices,
node memory) as in test_guest.py.
"""
import os

import pytest

from spmtest import build_dir
from spmtest import guest as spmguest

MiB, GiB = 1 << 20, 1 << 30
UPSTREAM_QEMU = os.path.join(build_dir(), "qemu-upstream", "qemu-system-x86_64")
KERNEL = "6.12"                                          # kmem onlines it
DRIVER = spmguest.DRIVER[KERNEL]


def args(devices):
    """devices: {id: (size, node, addr or None)}"""
    a = ["-M", "q35", "-m", "1G,maxmem=16G",
         "-object", "memory-backend-ram,id=m0,size=1G",
         "-numa", "node,nodeid=0,memdev=m0,cpus=0-1",
         "-numa", "node,nodeid=1", "-numa", "node,nodeid=2"]
    for i, (dev, (size, node, addr)) in enumerate(devices.items()):
        a += ["-object", f"memory-backend-ram,id=h{i},size={size // MiB}M",
              "-device", f"sp-mem,id={dev},memdev=h{i},node={node}"
              + (f",addr={addr:#x}" if addr is not None else "")]
    return a


def boot(name, devices):
    """Boot upstream's QEMU with `devices`; return ({id: addr}, report)."""
    if not os.path.exists(UPSTREAM_QEMU):
        pytest.fail(f"no upstream QEMU ({UPSTREAM_QEMU}): run 'make "
                    "upstream-qemu'", pytrace=False)
    log = os.path.join(build_dir(), "logs", "guest", f"upstream-{name}.log")
    infos, report = spmguest.boot(args(devices), kernel=KERNEL,
                                  firmware="ovmf", log=log,
                                  qemu=UPSTREAM_QEMU, device="sp-mem")
    got = {d["id"]: (d["size"], d["node"]) for d in infos}
    assert got == {k: v[:2] for k, v in devices.items()}, got
    return {d["id"]: d["addr"] for d in infos}, report


def dax_devices(report):
    return sorted((d["start"], d["size"], d["target_node"], d["driver"])
                  for d in report["dax"])


def test_upstream_sp_mem_adjacent_devices_merge():
    devices = {"s0": (1 * GiB, 1, None), "s1": (512 * MiB, 2, None)}
    placed, report = boot("adjacent", devices)
    start = placed["s0"]
    # the precondition of the comparison: upstream put them back to back
    assert placed["s1"] == start + 1 * GiB, \
        f"upstream's sp-mem no longer places the devices back to back " \
        f"({placed}): update the comparison in README.md"
    total = 1 * GiB + 512 * MiB
    soft = spmguest.e820_soft_reserved(report)
    assert soft == [(start, start + total - 1)], \
        f"expected one merged soft reserved range over both devices: {soft}"
    assert dax_devices(report) == [(start, total, 1, DRIVER)], \
        f"expected one dax device over both devices on node 1: {report['dax']}"
    nodes = {n["id"]: n["memtotal_kb"] for n in report["nodes"]}
    assert nodes.get(1) == total // 1024 and not nodes.get(2), \
        f"expected node 2's device onlined on node 1: {report['nodes']}"


def test_upstream_sp_mem_guest_numbers_nodes_otherwise():
    # free device memory at 4 GiB (the last node's, in the SRAT), then
    # node 1's device, then node 2's
    devices = {"s0": (1 * GiB, 1, 0x140000000),
               "s1": (512 * MiB, 2, 0x200000000)}
    _, report = boot("node-order", devices)
    soft = spmguest.e820_soft_reserved(report)
    assert soft == [(a, a + s - 1) for s, _, a in devices.values()], soft
    # each device's dax device is on the other node
    assert dax_devices(report) == [(0x140000000, 1 * GiB, 2, DRIVER),
                                   (0x200000000, 512 * MiB, 1, DRIVER)], \
        f"expected the guest's nodes 1 and 2 swapped: {report['dax']}"
