"""spm-memory on a host that has real specific-purpose memory, dax devices,
NUMA nodes and hugepages: a Linux guest (the host VM, L1) plays that host.

L1 boots Debian's 6.12 kernel under TCG with an spm-memory device of its
own, which it sees as /dev/dax0.0 (dax_hmem + device_dax, no kmem), a
second NUMA node and hugepages. Its initramfs (guest/hostvm/mkinitramfs.sh)
holds our QEMU; L1 runs it as a second-level VM (L2) under -accel qtest,
once per variant of this file, whose qtest and QMP this test drives over
L1's virtio-serial ports (spmtest.hostvm): an spm-memory device in L2
backed by /dev/dax0.0, by RAM bound to L1's node 1, by hugepages (memfd
and hugetlbfs), and configurations QEMU must refuse.

Each variant's L2 firmware tables (etc/e820, SRAT), device address, memory
contents and L1's view of the memory (dax file, numa_maps, smaps, hugepage
counters) are checked here against what the variant's command line asked
for.

Needs what make prepares: qemu (built with --enable-numa), guest-deps (the
6.12 kernel) and hostvm (L1's initramfs, with that QEMU). Nothing is built
or downloaded here.
"""
import dataclasses
import os
import re

import pytest

from spmtest import build_dir, fwcfg, hostvm
from spmtest.fwcfg import E820_SOFT_RESERVED as SOFT_RESERVED
from spmtest.fwcfg import SRAT_ENABLED
from spmtest.hostvm import DAX, L1_SPM_ADDR, L1_SPM_NODE, L1_SPM_SIZE, \
    fields, fnv1a64, pattern

LOGDIR = os.path.join(build_dir(), "logs", "hostvm")
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
HUGEPAGES_NODE, HUGEPAGES = 0, 128  # 2 MiB pages L1 reserves for L2

# --- L2, the VM that L1 runs ---------------------------------------------------
# 256 MiB of RAM (below 4 GiB, so device memory starts at 4 GiB: the address
# an automatically placed device gets) on node 0; node 1 holds only the
# spm-memory device, whose backend is always "d".
L2_DEVICE_MEMORY = 4 * GiB
L2_ARGS = [
    "-M", "q35", "-m", "256M,maxmem=2G", "-smp", "1",
    "-nodefaults", "-display", "none",
    "-object", "memory-backend-ram,id=r0,size=256M",
    "-numa", "node,nodeid=0,memdev=r0,cpus=0",
    "-numa", "node,nodeid=1",
]
WRITE_LEN = 4 * KiB


@dataclasses.dataclass
class Variant:
    name: str
    backend: str                # -object value (id=d)
    size: int                   # the backend's size
    addr: int = None            # spm-memory addr=, or None: placed automatically
    node: int = 1
    writes: tuple = ()          # device offsets written and read back (4 KiB)
    checks: tuple = ()          # "dax", "bind", "hugepages": L1's view
    refusal: str = None         # QEMU must exit 1 with this stderr line

    @property
    def expected_addr(self):
        return L2_DEVICE_MEMORY if self.addr is None else self.addr

    def qemu_args(self):
        dev = f"spm-memory,id=spm0,memdev=d,node={self.node}"
        if self.addr is not None:
            dev += f",addr={self.addr:#x}"
        return L2_ARGS + ["-object", self.backend, "-device", dev]


def _ends(size):
    """First, middle and last 4 KiB of a device of `size` bytes."""
    return (0, size // 2, size - WRITE_LEN)


_DAXFILE = f"memory-backend-file,id=d,mem-path={DAX},align=2M,share=on"
_SPM = "spm-memory 'spm0'"
_DEV_OPT = "-device spm-memory,id=spm0,memdev=d,node=1"
VARIANTS = [
    # (a) the whole dax device, and half of it at an explicit address
    Variant("dax", f"{_DAXFILE},size=512M", 512 * MiB,
            writes=_ends(512 * MiB), checks=("dax",)),
    Variant("dax-addr", f"{_DAXFILE},size=256M", 256 * MiB, addr=0x160000000,
            writes=_ends(256 * MiB), checks=("dax",)),
    # (b) RAM bound to L1's node 1, preallocated by two threads
    Variant("bind-node1",
            "memory-backend-ram,id=d,size=256M,host-nodes=1,policy=bind,prealloc=on,"
            "prealloc-threads=2",
            256 * MiB, addr=0x140000000, writes=_ends(256 * MiB), checks=("bind",)),
    # (c) hugepages: a hugetlb memfd, and a file on hugetlbfs
    Variant("hugetlb-memfd",
            "memory-backend-memfd,id=d,size=256M,hugetlb=on,hugetlbsize=2M,prealloc=on",
            256 * MiB, writes=_ends(256 * MiB), checks=("hugepages",)),
    Variant("hugetlbfs-file",
            "memory-backend-file,id=d,mem-path=/dev/hugepages,size=256M,share=on,prealloc=on",
            256 * MiB, writes=_ends(256 * MiB), checks=("hugepages",)),
    # refused: the dax device is smaller than the backend
    Variant("dax-too-small", f"{_DAXFILE},size=1G", 1 * GiB,
            refusal=f"qemu-system-x86_64: d backing store size {L1_SPM_SIZE:#x} is too "
                    f"small for 'size' option {1 * GiB:#x} plus 'offset' option 0x0"),
    # refused: device-dax mappings must be shared
    Variant("dax-private",
            f"memory-backend-file,id=d,mem-path={DAX},align=2M,share=off,size=512M",
            512 * MiB,
            refusal="qemu-system-x86_64: unable to map backing store for guest RAM: "
                    "Invalid argument"),
    # refused by spm-memory: read-only, and not a multiple of 128 MiB
    Variant("dax-readonly", f"{_DAXFILE},size=512M,readonly=on", 512 * MiB,
            refusal=f"qemu-system-x86_64: {_DEV_OPT}: {_SPM}: property 'memdev' "
                    f"value 'd' is read-only memory"),
    Variant("dax-192M", f"{_DAXFILE},size=192M", 192 * MiB,
            refusal=f"qemu-system-x86_64: {_DEV_OPT}: {_SPM}: size {192 * MiB:#x} "
                    f"of memdev 'd' is not a multiple of {128 * MiB:#x}"),
    # refused: sizes that are not a multiple of the 2 MiB page size
    Variant("hugetlbfs-255M",
            "memory-backend-file,id=d,mem-path=/dev/hugepages,size=255M,share=on",
            255 * MiB,
            refusal="qemu-system-x86_64: backend 'memory-backend-file' memory size "
                    "must be multiple of 2 MiB"),
    Variant("hugetlb-memfd-255M",
            "memory-backend-memfd,id=d,size=255M,hugetlb=on,hugetlbsize=2M",
            255 * MiB,
            refusal=f"qemu-system-x86_64: failed to resize memfd to {255 * MiB}: "
                    "Invalid argument"),
    # refused: more hugepages than L1 reserved, and hugepages of a node
    # that has none
    Variant("hugetlb-too-many",
            "memory-backend-memfd,id=d,size=512M,hugetlb=on,hugetlbsize=2M",
            512 * MiB,
            refusal="qemu-system-x86_64: unable to map backing store for guest RAM: "
                    "Cannot allocate memory"),
    Variant("hugetlb-node1",
            "memory-backend-memfd,id=d,size=256M,hugetlb=on,hugetlbsize=2M,"
            "host-nodes=1,policy=bind,prealloc=on", 256 * MiB,
            refusal="qemu-system-x86_64: qemu_prealloc_mem: preallocating memory "
                    "failed: Bad address"),
    # refused: a host node L1 does not have
    Variant("bind-node2",
            "memory-backend-ram,id=d,size=256M,host-nodes=2,policy=bind", 256 * MiB,
            refusal="qemu-system-x86_64: cannot bind memory to host NUMA nodes: "
                    "Invalid argument"),
]


def _seed(v):
    """Each variant writes its own pattern: data another variant left in
    the dax device cannot pass for this one's."""
    return VARIANTS.index(v) + 1


class L1:
    """What one boot of L1 showed: .info and .hugepages (Sections of its
    /init's answers), .runs (variant name -> spmtest.hostvm.Run)."""


@pytest.fixture(scope="module")
def l1():
    """Boot L1 once, reserve its hugepages and run every variant in it."""
    console = os.path.join(LOGDIR, "console.log")
    ctl = os.path.join(LOGDIR, "ctl.log")
    out = L1()
    try:
        with hostvm.HostVM(console, ctl) as vm:
            out.info = vm.info
            out.hugepages = vm.request(f"hugepages {HUGEPAGES_NODE} {HUGEPAGES}")
            out.runs = {}
            for v in VARIANTS:
                writes = [(off, pattern(off, WRITE_LEN, _seed(v))) for off in v.writes]
                out.runs[v.name] = vm.run(v.qemu_args(), writes=writes,
                                          dax="dax" in v.checks, addr=v.expected_addr)
            boot = vm.boot_seconds
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    per_variant = ", ".join(f"{n} {r.seconds:.1f} s" for n, r in out.runs.items())
    print(f"\nhostvm: L1 up in {boot:.1f} s (uptime {out.info.one('uptime_ms')} ms at "
          f"/init), {len(out.runs)} variants: {per_variant}; logs in {LOGDIR}")
    return out


def test_host_vm(l1):
    """L1 has its spm-memory as /dev/dax0.0 on device_dax, node 1, and the
    hugepages the test asked for."""
    mods = {fields(m)["name"]: fields(m)["status"] for m in l1.info.all("module")}
    assert mods == {"device_dax": "ok", "dax_hmem": "ok"}
    dax = [fields(d) for d in l1.info.all("dax")]
    assert len(dax) == 1, dax
    d = dax[0]
    assert d["name"] == "dax0.0"
    assert int(d["start"], 16) == L1_SPM_ADDR
    assert int(d["size"]) == L1_SPM_SIZE
    assert int(d["target_node"]) == L1_SPM_NODE
    assert d["driver"] == "device_dax"
    assert d["dev"] == DAX
    lo, hi = L1_SPM_ADDR, L1_SPM_ADDR + L1_SPM_SIZE - 1
    iomem = [line.strip() for line in l1.info.all("iomem")]
    assert f"{lo:x}-{hi:x} : Soft Reserved" in iomem
    assert f"{lo:x}-{hi:x} : dax0.0" in iomem
    assert fields(l1.hugepages.one("hugepages"))["got"] == str(HUGEPAGES)
    assert set(l1.runs) == {v.name for v in VARIANTS}


def _check_tables(v, run):
    """L2's etc/e820 and SRAT describe exactly the device asked for."""
    addr, end = v.expected_addr, v.expected_addr + v.size
    e820 = fwcfg.e820(run.e820)
    assert [(a, n) for a, n, t in e820 if t == SOFT_RESERVED] == [(addr, v.size)]
    for a, n, t in e820:
        assert t == SOFT_RESERVED or a + n <= addr or a >= end, \
            f"E820 entry {a:#x}+{n:#x} type {t:#x} overlaps the device"
    srat = fwcfg.srat_memory(run.acpi)
    assert srat is not None, "no SRAT in etc/acpi/tables"
    assert (addr, v.size, v.node, SRAT_ENABLED) in srat, srat
    for base, length, pxm, flags in srat:
        if (base, length, pxm, flags) != (addr, v.size, v.node, SRAT_ENABLED):
            assert length == 0 or base + length <= addr or base >= end, \
                f"SRAT entry PXM {pxm} {base:#x}+{length:#x} overlaps the device"


def _check_qmp(v, run):
    dev = run.device()
    assert dev["memaddr"] == v.expected_addr
    assert dev["size"] == v.size
    assert dev["memdev"] == "/objects/d"
    assert dev["node"] == v.node


def _check_writes(v, run):
    """The pattern (computed here from its definition), written through
    qtest at the device's expected guest address + offset, reads back
    through qtest and, for dax, from /dev/dax0.0 in L1 at the same offset."""
    assert [w.off for w in run.writes] == list(v.writes)
    for w in run.writes:
        data = pattern(w.off, WRITE_LEN, _seed(v))
        want = f"{fnv1a64(data):#018x}"
        assert w.gpa == v.expected_addr + w.off
        assert w.data == data
        assert w.qtest == data, \
            f"qtest read back other data at {w.off:#x}: FNV {fnv1a64(w.qtest):#018x}, " \
            f"written {want}"
        if "dax" in v.checks:
            assert w.dax == data, \
                f"{DAX} holds other data at {w.off:#x}: FNV {fnv1a64(w.dax):#018x}, " \
                f"written {want}"


def _block_vmas(v, run):
    """[(start, end, numa_maps line, {smaps key: value})] of L2's mappings
    of the device's RAM block; they must cover it without a gap."""
    hva = run.hva("d")
    vmas = run.mappings(hva, hva + v.size)
    assert vmas, "no mapping of the RAM block"
    assert vmas[0][0] <= hva and vmas[-1][1] >= hva + v.size
    for a, b in zip(vmas, vmas[1:]):
        assert a[1] == b[0], "mappings of the RAM block are not contiguous"
    return vmas


def _node_pages(numa_maps):
    """{node: pages} and the page size in bytes of a numa_maps line."""
    pages = {int(n): int(c) for n, c in re.findall(r"\bN(\d+)=(\d+)", numa_maps)}
    kb = int(re.search(r"kernelpagesize_kB=(\d+)", numa_maps).group(1))
    return pages, kb * KiB


def _check_bind(v, run):
    """(b): the backend's memory is bound to L1's node 1 and all there (L1's
    kernel says so; QEMU's query-memdev too)."""
    total = 0
    for lo, hi, numa_maps, smaps in _block_vmas(v, run):
        assert " bind:1 " in numa_maps, numa_maps
        pages, psize = _node_pages(numa_maps)
        assert set(pages) == {1}, f"pages outside node 1: {numa_maps}"
        total += pages[1] * psize
    assert total == v.size, f"{total} bytes on node 1, {v.size} preallocated"
    memdev = [m for m in run.memdev if m.get("id") == "d"]
    assert len(memdev) == 1, run.memdev
    assert memdev[0]["host-nodes"] == [1] and memdev[0]["policy"] == "bind", memdev


def _check_hugepages(v, run):
    """(c): the backend is made of L1's 2 MiB hugepages: its mappings have
    2 MiB kernel pages, and L1's free hugepages dropped by its size (L1's
    kernel says so; QEMU's RAM block page size too)."""
    for lo, hi, numa_maps, smaps in _block_vmas(v, run):
        assert smaps["KernelPageSize"] == "2048 kB"
        assert " huge " in numa_maps, numa_maps
        pages, psize = _node_pages(numa_maps)
        assert psize == 2 * MiB and sum(pages.values()) * psize == hi - lo
    used = v.size // (2 * MiB)
    meminfo = {line.split(":")[0]: int(line.split()[1])
               for line in run.proc.all("meminfo") if line.startswith("HugePages_")}
    assert meminfo["HugePages_Total"] == HUGEPAGES
    assert meminfo["HugePages_Free"] == HUGEPAGES - used
    node = [fields(n) for n in run.proc.all("node-hugepages")
            if fields(n)["node"] == str(HUGEPAGES_NODE)][0]
    assert int(node["free"]) == HUGEPAGES - used
    assert run.ramblock("d")[1:3] == ["2", "MiB"], run.ramblock("d")


def _check_dax_mapping(v, run):
    """(a): L2 maps /dev/dax0.0 itself, in 2 MiB pages."""
    for lo, hi, numa_maps, smaps in _block_vmas(v, run):
        assert f"file={DAX}" in numa_maps, numa_maps
        assert smaps["KernelPageSize"] == "2048 kB"


@pytest.mark.parametrize("v", VARIANTS, ids=[v.name for v in VARIANTS])
def test_variant(l1, v):
    run = l1.runs[v.name]
    if run.error:
        pytest.fail(f"talking to QEMU in L1: {run.error}", pytrace=False)
    if v.refusal:
        assert run.refused, "QEMU started"
        assert run.status == 1
        assert v.refusal in run.stderr, run.stderr
        return
    assert not run.refused, run.stderr
    assert run.status == 0
    assert run.stderr == [], "QEMU warned"
    _check_tables(v, run)
    _check_writes(v, run)
    _check_qmp(v, run)
    if "dax" in v.checks:
        _check_dax_mapping(v, run)
    if "bind" in v.checks:
        _check_bind(v, run)
    if "hugepages" in v.checks:
        _check_hugepages(v, run)
