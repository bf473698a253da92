"""Guest end-to-end tests: real Debian kernels see each spm-memory device.

Each test boots the patched QEMU (TCG) with a placement of spm-memory
devices, a firmware and a Debian kernel (6.1, 6.12 and the newest 7.N;
guest/boot.sh), asks QEMU over QMP where it put the devices, and
checks what the guest made of them from its report (guest/init.sh,
parsed by spmtest/report.py) against the placement's own table:

- the E820 map in the boot log ("BIOS-e820: ... soft reserved") has a soft
  reserved range exactly over each device (adjacent devices: one range);
- the SRAT lines: each device's range at its node (guest node == QEMU node)
  without "hotplug"; the rest of device memory "hotplug" at the last node;
- sysfs: one dax device per spm-memory device with its start, size and
  target node, bound to device_dax (6.1) or kmem (6.12, 7.x);
- /proc/iomem: a daxN.M range exactly over each device; with kmem a
  "System RAM (kmem)" range exactly over each device. A "Soft Reserved"
  line is not required (7.x shows none) but, where shown, covers exactly
  the devices;
- NUMA node memory: with device_dax unchanged (a node with only spm-memory
  has none, and no node's memory includes the device); with kmem a node
  with only spm-memory has exactly its devices' size.

Firmware without soft-reserved support (stock SeaBIOS, OVMF before 2026.05)
is tested for its documented behaviour: SRAT as above, but no soft reserved
range and no dax device, and the memory is on no node.
"""
import os

import pytest

from spmtest import build_dir
from spmtest import guest as spmguest

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
DEVMEM = 0x100000000          # device memory starts at 4 GiB with 1 GiB of RAM


def spm(n, size_mib, node, addr=None):
    dev = f"spm-memory,id=spm{n},memdev=hbm{n},node={node}"
    if addr is not None:
        dev += f",addr={addr:#x}"
    return ["-object", f"memory-backend-ram,id=hbm{n},size={size_mib}M",
            "-device", dev]


def numa(nodes, hmat=False):
    init = ",initiator=0" if hmat else ""
    args = ["-object", "memory-backend-ram,id=m0,size=1G",
            "-numa", "node,nodeid=0,memdev=m0,cpus=0-1" + init]
    for n in range(1, nodes):
        args += ["-numa", f"node,nodeid={n}{init}"]
    return args


def accelerator(node):
    """A PCI device standing in for an accelerator (edu), as the generic
    initiator of NUMA node `node`."""
    return ["-device", "edu,id=acc0",
            "-object", f"acpi-generic-initiator,id=gi0,pci-dev=acc0,node={node}"]


# name: machine, NUMA nodes, QEMU arguments, expected devices
# (id, addr, size, node), device memory (base, size) and the memory the
# command line gives each node besides spm-memory ({node: bytes}: the RAM
# backend of node 0 and pc-dimms).
PLACEMENTS = {
    "natural": dict(
        machine="q35", nodes=2,
        args=["-m", "1G,maxmem=8G"] + numa(2) + spm(0, 512, 1),
        spm=[("spm0", DEVMEM, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    "addr-after-gap": dict(
        machine="q35", nodes=2,
        args=["-m", "1G,maxmem=8G"] + numa(2) + spm(0, 512, 1, 0x140000000),
        spm=[("spm0", 0x140000000, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    # natural placement leaves 128 MiB between the devices, so that the
    # guest does not merge them into one range on the first node
    "two-nodes-natural": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3) + spm(0, 512, 1) + spm(1, 512, 2),
        spm=[("spm0", DEVMEM, 512 * MiB, 1),
             ("spm1", DEVMEM + 640 * MiB, 512 * MiB, 2)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    # the higher node at the lower address
    "two-nodes-gap": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3) + spm(0, 512, 2, DEVMEM)
        + spm(1, 512, 1, 0x180000000),
        spm=[("spm0", DEVMEM, 512 * MiB, 2),
             ("spm1", 0x180000000, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    "beside-pc-dimm": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,slots=2,maxmem=8G"] + numa(3)
        + ["-object", "memory-backend-ram,id=d0,size=512M",
           "-device", "pc-dimm,id=dimm0,memdev=d0,node=2"] + spm(0, 512, 1),
        spm=[("spm0", DEVMEM + 512 * MiB, 512 * MiB, 1)],
        devmem=(DEVMEM, 9 * GiB), ram={0: GiB, 2: 512 * MiB}),
    # back to back on two nodes: only right with an ACPI HMAT, where Linux
    # registers each SRAT range separately; without one QEMU refuses this
    # (Soft Reserved is still one merged range in /proc/iomem)
    "adjacent-hmat": dict(
        machine="q35,hmat=on", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3, hmat=True)
        + spm(0, 512, 1, DEVMEM) + spm(1, 512, 2, DEVMEM + 512 * MiB),
        spm=[("spm0", DEVMEM, 512 * MiB, 1),
             ("spm1", DEVMEM + 512 * MiB, 512 * MiB, 2)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    # nodes without CPUs or memory below (and above) the device's node: the
    # guest must still number the device's node as QEMU does
    "empty-node-between": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3) + spm(0, 512, 2),
        spm=[("spm0", DEVMEM, 512 * MiB, 2)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    "empty-nodes-around": dict(
        machine="q35", nodes=5,
        args=["-m", "1G,maxmem=8G"] + numa(5) + spm(0, 512, 3),
        spm=[("spm0", DEVMEM, 512 * MiB, 3)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    "pc-machine": dict(
        machine="pc", nodes=2,
        args=["-m", "1G,maxmem=8G"] + numa(2) + spm(0, 512, 1),
        spm=[("spm0", DEVMEM, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
}

# An accelerator as the generic initiator of CPU-less node 1, with its
# memory on that node or on CPU-less node 2 beside it: the guest names node
# 1 in its first SRAT pass, right after the CPUs' node 0. A generic port
# names no node. Firmware does not
# change this (SRAT reaches the guest through QEMU's table loader on both),
# so these boot on the patched SeaBIOS only.
GI = {
    "gi-own-node": dict(
        machine="q35", nodes=2, gi=[1],
        args=["-m", "1G,maxmem=8G"] + numa(2) + accelerator(1) + spm(0, 512, 1),
        spm=[("spm0", DEVMEM, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    # a generic port (a CXL host bridge's proximity domain) names no node
    # in Linux: with it on node 2, the device on node 1 stays node 1
    "gp-above": dict(
        machine="q35,cxl=on", nodes=3, gi=[],
        args=["-m", "1G,maxmem=8G"] + numa(3)
        + ["-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
           "-object", "acpi-generic-port,id=gp0,pci-bus=cxl.1,node=2"]
        + spm(0, 512, 1),
        spm=[("spm0", DEVMEM, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
    "gi-beside": dict(
        machine="q35", nodes=3, gi=[1],
        args=["-m", "1G,maxmem=8G"] + numa(3) + accelerator(1) + spm(0, 512, 2),
        spm=[("spm0", DEVMEM, 512 * MiB, 2)],
        devmem=(DEVMEM, 7 * GiB), ram={0: GiB}),
}

# 64 GiB of RAM: boot memory ends at 66 GiB, so Linux onlines memory in
# 2 GiB blocks (arch/x86/mm/init_64.c); QEMU places 2 GiB devices 2 GiB
# apart. Only the guest's touched pages take host memory (reserve=off).
BIG_DEVMEM = 0x1080000000


def big_numa(ram_gib, maxmem_gib):
    return ["-m", f"{ram_gib}G,maxmem={maxmem_gib}G",
            "-object", f"memory-backend-ram,id=m0,size={ram_gib}G,reserve=off",
            "-numa", "node,nodeid=0,memdev=m0,cpus=0-1",
            "-numa", "node,nodeid=1", "-numa", "node,nodeid=2"]


# 65 GiB of RAM: boot memory ends at 67 GiB. A guest that sees the CPUID
# hypervisor bit takes the largest power of two up to 2 GiB that divides
# it, 1 GiB; without the bit (-cpu ...,-hypervisor) 2 GiB, as on bare metal
# (probe_memory_block_size(), arch/x86/mm/init_64.c).
BIG65_DEVMEM = 0x10c0000000
BIG = {
    "big-guest": dict(
        machine="q35", nodes=3, block=2 * GiB,
        args=big_numa(64, 72) + spm(0, 2048, 1) + spm(1, 2048, 2),
        spm=[("spm0", BIG_DEVMEM, 2 * GiB, 1),
             ("spm1", BIG_DEVMEM + 4 * GiB, 2 * GiB, 2)],
        devmem=(BIG_DEVMEM, 8 * GiB), ram={0: 64 * GiB}),
    "big-guest-1g-blocks": dict(
        machine="q35", nodes=3, block=1 * GiB,
        args=big_numa(65, 72) + spm(0, 1024, 1) + spm(1, 1024, 2),
        spm=[("spm0", BIG65_DEVMEM, 1 * GiB, 1),
             ("spm1", BIG65_DEVMEM + 2 * GiB, 1 * GiB, 2)],
        devmem=(BIG65_DEVMEM, 7 * GiB), ram={0: 65 * GiB}),
    "big-guest-bare-metal": dict(
        machine="q35", nodes=3, block=2 * GiB,
        args=["-cpu", "max,-hypervisor"] + big_numa(65, 72) + spm(0, 2048, 1),
        spm=[("spm0", BIG65_DEVMEM + 1 * GiB, 2 * GiB, 1)],
        devmem=(BIG65_DEVMEM, 7 * GiB), ram={0: 65 * GiB}),
}

KERNELS = spmguest.KERNELS                    # 6.1, 6.12, 7.x
DRIVER = spmguest.DRIVER
e820_soft_reserved = spmguest.e820_soft_reserved
merged = spmguest.merged
iomem_ranges = spmguest.iomem_ranges


# firmware (spmguest.boot()'s name for it): does it pass soft reserved on?
# All but QEMU's default BIOS are files that "make guest-deps" prepared
# (guest/firmware.sh); a missing one fails the test, naming it.
FIRMWARE = {
    "seabios": True,            # QEMU's default: SeaBIOS >= 1.17.0 + patches
    "ovmf": True,               # OVMF >= 2026.05
    "seabios-stock": False,     # the same SeaBIOS without patches/seabios
    "ovmf-old": False,          # OVMF < 2026.05
}


def boot(placement, firmware, kernel):
    p = PLACEMENTS[placement]
    log = os.path.join(build_dir(), "logs", "guest",
                       f"{placement}-{firmware}-{kernel}.log")
    return spmguest.boot(["-M", p["machine"], *p["args"]], kernel=kernel,
                         firmware=firmware, log=log)


def check_qmp(devices, p):
    got = sorted((d["id"], d["memaddr"], d["size"], d["node"]) for d in devices)
    assert got == sorted(p["spm"])


def check_srat(report, p):
    """Device ranges at their nodes, the rest hotplug at the last node."""
    last = p["nodes"] - 1
    base, size = p["devmem"]
    # (entries of length 0 name nodes without memory: end < start)
    devmem = [s for s in report["srat"] if s["start"] <= s["end"]
              and s["start"] >= base and s["end"] < base + size]
    for _, addr, sz, node in p["spm"]:
        match = [s for s in devmem if s["start"] == addr]
        assert len(match) == 1, f"no single SRAT entry at {addr:#x}: {devmem}"
        s = match[0]
        assert (s["end"], s["pxm"], s["node"], s["hotplug"]) == \
            (addr + sz - 1, node, node, False)
    spm_starts = {addr for _, addr, _, _ in p["spm"]}
    rest = [s for s in devmem if s["start"] not in spm_starts]
    assert rest, "no hotpluggable device memory in SRAT"
    for s in rest:
        assert (s["pxm"], s["node"], s["hotplug"]) == (last, last, True), s
    # together: exactly device memory, without overlaps
    ranges = sorted((s["start"], s["end"]) for s in devmem)
    assert ranges[0][0] == base and ranges[-1][1] == base + size - 1
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        assert start == end + 1, f"SRAT device memory not contiguous: {ranges}"


def spm_ranges(p):
    return sorted((addr, addr + sz - 1) for _, addr, sz, _ in p["spm"])


def check_node_memory(report, p, kernel):
    """MemTotal of the nodes, from the placement's own table: with kmem a
    node with only spm-memory has exactly its devices' size; otherwise
    (device_dax, or no dax device at all) the device is on no node."""
    nodes = {n["id"]: n["memtotal_kb"] for n in report["nodes"]}
    spm_nodes = {n for _, _, _, n in p["spm"]}
    # exact sizes are known only for nodes without other memory
    assert not spm_nodes & set(p["ram"]), "placement mixes RAM and spm-memory"
    kmem = kernel is not None and DRIVER[kernel] == "kmem"
    for node in sorted(spm_nodes):
        want = sum(sz for _, _, sz, n in p["spm"] if n == node) if kmem else 0
        # a node without memory may not be online at all
        assert nodes.get(node, 0) == want // KiB, \
            f"node {node}: want {want // KiB} kB, got {report['nodes']}"
    if not kmem:
        # no node's memory includes the device: all of it fits in the
        # memory the command line gives besides spm-memory
        assert sum(nodes.values()) <= sum(p["ram"].values()) // KiB, \
            f"more memory than the RAM of the command line: {report['nodes']}"


def check_soft_reserved(report, p, kernel):
    devs = spm_ranges(p)
    # firmware E820 as the boot log shows it: adjacent devices are one range
    assert e820_soft_reserved(report) == merged(devs), report["e820"]
    # sysfs: one dax device per spm-memory device, on its node, its driver
    dax = sorted((d["start"], d["size"], d["target_node"], d["driver"])
                 for d in report["dax"])
    assert dax == sorted((addr, sz, node, DRIVER[kernel])
                         for _, addr, sz, node in p["spm"]), report["dax"]
    # /proc/iomem: the dax devices' ranges, exactly over the devices
    assert iomem_ranges(report, spmguest.DAX_NAME) == devs, report["iomem"]
    # "Soft Reserved" is not shown by 7.x; where shown, it is the E820 range
    assert iomem_ranges(report, "Soft Reserved") in ([], merged(devs)), \
        report["iomem"]
    kmem = iomem_ranges(report, "System RAM (kmem)")
    if DRIVER[kernel] == "kmem":
        assert kmem == devs, report["iomem"]
    else:
        assert kmem == [], report["iomem"]
    check_node_memory(report, p, kernel)


def check_no_soft_reserved(report, p):
    assert report["e820"], "no BIOS-e820 lines in the boot log"
    assert e820_soft_reserved(report) == [], report["e820"]
    assert iomem_ranges(report, "Soft Reserved") == []
    assert iomem_ranges(report, spmguest.DAX_NAME) == []
    assert iomem_ranges(report, "System RAM (kmem)") == []
    assert report["dax"] == []
    check_node_memory(report, p, None)


# Every placement boots on the patched SeaBIOS. OVMF builds its own E820
# map from etc/e820 (and may merge or reorder ranges), so it boots the
# placements where that could change the result: one device, two devices,
# two back to back, one beside a pc-dimm, and the pc machine. The SRAT, and
# with it the node numbering of the other placements, reaches the guest
# through QEMU's table loader on both firmwares alike.
OVMF_PLACEMENTS = ("natural", "two-nodes-natural", "adjacent-hmat",
                   "beside-pc-dimm", "pc-machine")
CASES = [(pl, fw, k) for pl in PLACEMENTS for fw in ("seabios", "ovmf")
         for k in KERNELS if fw == "seabios" or pl in OVMF_PLACEMENTS]
CASES += [("natural", fw, k) for fw in ("seabios-stock", "ovmf-old")
          for k in KERNELS]
CASES += [(gi, "seabios", k) for gi in GI for k in KERNELS]
CASES += [(big, "seabios", k) for big in BIG for k in ("6.12", "7.x")]
PLACEMENTS.update(GI)
PLACEMENTS.update(BIG)


def check_topology(report, p):
    """The nodes of the generic initiators and the guest's memory block size,
    where the placement names them (gi=, block=)."""
    if "gi" in p:
        assert report["nodestates"].get("has_generic_initiator") == p["gi"], \
            report["nodestates"]
    if "block" in p:
        assert report["block_size"] == p["block"], report["block_size"]


@pytest.mark.parametrize("placement,firmware,kernel", CASES,
                         ids=["-".join(c) for c in CASES])
def test_guest(placement, firmware, kernel):
    p = PLACEMENTS[placement]
    devices, report = boot(placement, firmware, kernel)
    assert spmguest.kernel_matches(kernel, report["kernel"]), report["kernel"]
    check_qmp(devices, p)
    check_srat(report, p)
    check_topology(report, p)
    if FIRMWARE[firmware]:
        check_soft_reserved(report, p, kernel)
    else:
        check_no_soft_reserved(report, p)
