"""Guest tests: the memory tier Linux gives spm-memory, with and without HMAT.

kmem onlines each spm-memory device's memory on its NUMA node and puts the
node into a memory tier (/sys/devices/virtual/memory_tiering/memory_tierN,
"nodelist" in each; guest/init.sh reports them as "tier:" lines). The tier
comes from the node's "abstract distance" (adistance), tier id = adistance
>> MEMTIER_CHUNK_BITS (7). DRAM (nodes with CPUs and memory) has
MEMTIER_ADISTANCE_DRAM = 576, so memory_tier4. With an ACPI HMAT that
gives the DRAM node's and the dax node's performance from a CPU initiator,
mm/memory-tiers.c mt_perf_to_adistance() computes, in C integer arithmetic,

    576 * (lat_r + lat_w) / (dram_lat_r + dram_lat_w)
        * (dram_bw_r + dram_bw_w) / (bw_r + bw_w)

(latency in ns, bandwidth in MB/s; an "access" latency or bandwidth entry
sets both read and write, drivers/acpi/numa/hmat.c). Without HMAT data kmem
uses MEMTIER_DEFAULT_DAX_ADISTANCE = 5 * 576 (drivers/dax/kmem.c): the
default dax tier memory_tier22, below DRAM, whatever the memory is.

Each test boots Debian's 6.12 and the newest 7.N kernel (both bind kmem; 6.1
leaves the memory to device_dax and puts it on no tier) on the patched
SeaBIOS with node 0 = 2 CPUs + 1 GiB of RAM, an HBM-like 512 MiB spm-memory
device on node 1 and a CXL-like one on node 2:

- hmat: `-machine hmat=on`, `initiator=0` on every node, and `-numa hmat-lb`
  access latency and bandwidth from initiator 0 to nodes 0, 1 and 2 (PERF).
  The expected tier of every node is computed here from those numbers with
  the kernel's formula (an oracle outside QEMU and the guest), and the
  guest's tiers must be exactly these; independently of the formula, the
  HBM node's tier must be above DRAM's memory_tier4 (which holds node 0) and
  the CXL node's below it.
- no-hmat: the same devices without HMAT: both spm nodes in the default
  dax tier, below DRAM.

Both also check that each device is one kmem dax device on its node, from
the guest's E820 map, SRAT, sysfs and /proc/iomem (test_guest's checks),
and the guest's node states (has_cpu, has_memory).
"""
import os

import pytest

from spmtest import build_dir
from spmtest import guest as spmguest
from spmtest import report as guest_report
from tests.guest.test_guest import (DEVMEM, GiB, MiB, check_soft_reserved,
                                    check_srat, numa, spm)

# include/linux/memory-tiers.h, drivers/dax/kmem.c
MEMTIER_CHUNK_BITS = 7
MEMTIER_CHUNK_SIZE = 1 << MEMTIER_CHUNK_BITS
MEMTIER_ADISTANCE_DRAM = 4 * MEMTIER_CHUNK_SIZE + (MEMTIER_CHUNK_SIZE >> 1)
MEMTIER_DEFAULT_DAX_ADISTANCE = MEMTIER_ADISTANCE_DRAM * 5

DRAM_NODE, HBM_NODE, CXL_NODE = 0, 1, 2
# node: (access latency in ns, access bandwidth in GiB/s) from initiator 0,
# the node of the CPUs, as given to -numa hmat-lb
PERF = {
    DRAM_NODE: (100, 50),
    HBM_NODE: (90, 100),        # a little faster, twice the bandwidth
    CXL_NODE: (200, 25),        # twice as slow, half the bandwidth
}

# The devices: (id, size, node). QEMU places them automatically; where is
# test_guest's subject (this QEMU packs them back to back with an HMAT and
# leaves a block between them without), so the addresses are taken from
# QMP here and the guest is checked against them.
SPM = [("spm0", 512 * MiB, HBM_NODE), ("spm1", 512 * MiB, CXL_NODE)]


def placement(devices):
    """test_guest's placement table for the devices as QEMU placed them,
    after checking their ids, sizes and nodes against the command line."""
    assert sorted((d["id"], d["size"], d["node"]) for d in devices) == SPM, \
        devices
    return dict(nodes=3,
                spm=[(d["id"], d["memaddr"], d["size"], d["node"])
                     for d in devices],
                devmem=(DEVMEM, 7 * GiB), ram={DRAM_NODE: GiB})


def hmat_lb(perf):
    """-numa hmat-lb options: access latency and bandwidth from initiator 0
    to each node of perf."""
    args = []
    for target, (lat, bw) in sorted(perf.items()):
        args += ["-numa", f"hmat-lb,initiator=0,target={target},"
                 f"hierarchy=memory,data-type=access-latency,latency={lat}",
                 "-numa", f"hmat-lb,initiator=0,target={target},"
                 f"hierarchy=memory,data-type=access-bandwidth,bandwidth={bw}G"]
    return args


def qemu_args(hmat):
    args = ["-M", "q35,hmat=on" if hmat else "q35", "-m", "1G,maxmem=8G"]
    args += numa(3, hmat=hmat)
    for n, (_, size, node) in enumerate(SPM):
        args += spm(n, size // MiB, node)
    if hmat:
        args += hmat_lb(PERF)
    return args


def linux_perf(lat_ns, bw_gib):
    """What Linux makes of an hmat-lb latency and bandwidth: (read latency,
    write latency, read bandwidth, write bandwidth) in ns and MB/s (QEMU
    writes ns and MiB/s units into the table; "access" sets read and write)."""
    bw_mb = bw_gib * GiB // MiB
    return lat_ns, lat_ns, bw_mb, bw_mb


def adistance(perf, dram):
    """mm/memory-tiers.c mt_perf_to_adistance(), C integer arithmetic from
    left to right."""
    lat_r, lat_w, bw_r, bw_w = perf
    dlat_r, dlat_w, dbw_r, dbw_w = dram
    return (MEMTIER_ADISTANCE_DRAM * (lat_r + lat_w) // (dlat_r + dlat_w)
            * (dbw_r + dbw_w) // (bw_r + bw_w))


def tier_id(adist):
    """The memory tier of an abstract distance (find_create_memory_tier())."""
    return adist >> MEMTIER_CHUNK_BITS


def expected_tiers(hmat):
    """{tier id: [nodes]} that the guest should show."""
    tiers = {}
    if hmat:
        dram = linux_perf(*PERF[DRAM_NODE])
        for node, perf in PERF.items():
            tiers.setdefault(tier_id(adistance(linux_perf(*perf), dram)),
                             []).append(node)
    else:
        tiers[tier_id(MEMTIER_ADISTANCE_DRAM)] = [DRAM_NODE]
        tiers[tier_id(MEMTIER_DEFAULT_DAX_ADISTANCE)] = [HBM_NODE, CXL_NODE]
    return {t: sorted(n) for t, n in tiers.items()}


def node_tier(tiers, node):
    """The id of the tier that holds node in the guest's report."""
    ids = [t["id"] for t in tiers if node in (t["nodes"] or [])]
    assert len(ids) == 1, f"node {node} in {len(ids)} memory tiers: {tiers}"
    return ids[0]


def test_oracle():
    """The formula gives DRAM memory_tier4 and no-HMAT dax memory_tier22
    (as measured in 6.12 and 7.2 guests), and PERF's nodes distinct tiers
    on either side of DRAM's, none of them the default dax tier."""
    assert tier_id(MEMTIER_ADISTANCE_DRAM) == 4
    assert tier_id(MEMTIER_DEFAULT_DAX_ADISTANCE) == 22
    want = expected_tiers(hmat=True)
    assert want == {2: [HBM_NODE], 4: [DRAM_NODE], 18: [CXL_NODE]}, want
    assert expected_tiers(hmat=False) == {4: [DRAM_NODE],
                                          22: [HBM_NODE, CXL_NODE]}


def test_report_tier_lines():
    """The report parser expands node lists, and a report without tier and
    nodestate lines (6.1) still parses."""
    base = ("=== SPM-REPORT BEGIN ===\nkernel: 6.1.0\ncmdline: x\n"
            "iomem: 00000000-00000fff : Reserved\nnode: id=0 memtotal_kb=1\n"
            "%s=== SPM-REPORT END ===\n")
    rep = guest_report.parse_report(base % "")
    assert (rep["tiers"], rep["nodestates"]) == ([], {})
    rep = guest_report.parse_report(base % (
        "tier: name=memory_tier4 nodes=0\ntier: name=memory_tier22 nodes=1-3,5\n"
        "tier: name=memory_tier30 nodes=\nnodestate: name=has_cpu nodes=0\n"))
    assert rep["tiers"] == [{"name": "memory_tier4", "id": 4, "nodes": [0]},
                            {"name": "memory_tier22", "id": 22,
                             "nodes": [1, 2, 3, 5]},
                            {"name": "memory_tier30", "id": 30, "nodes": []}]
    assert rep["nodestates"] == {"has_cpu": [0]}
    for bad in ("tier: name=memory_tier4 nodes=0-\n",
                "tier: name=tier4 nodes=0\n",
                "nodestate: name=has_cpu nodes=1,0\n"):
        with pytest.raises(guest_report.ReportError):
            guest_report.parse_report(base % bad)


CASES = [(k, h) for k in ("6.12", "7.x") for h in ("hmat", "no-hmat")]


@pytest.mark.parametrize("kernel,hmat", CASES, ids=["-".join(c) for c in CASES])
def test_tiers(kernel, hmat):
    hmat = hmat == "hmat"
    log = os.path.join(build_dir(), "logs", "guest",
                       f"tiers-{'hmat' if hmat else 'no-hmat'}-seabios-{kernel}.log")
    devices, report = spmguest.boot(qemu_args(hmat), kernel=kernel,
                                    firmware="seabios", log=log)
    assert spmguest.kernel_matches(kernel, report["kernel"]), report["kernel"]
    p = placement(devices)
    check_srat(report, p)
    # one kmem dax device per spm-memory device, on its node, its memory
    # onlined there
    check_soft_reserved(report, p, kernel)
    assert report["nodestates"].get("has_cpu") == [DRAM_NODE], \
        report["nodestates"]
    assert report["nodestates"].get("has_memory") == \
        [DRAM_NODE, HBM_NODE, CXL_NODE], report["nodestates"]

    tiers = report["tiers"]
    got = {t["id"]: t["nodes"] for t in tiers}
    assert got == expected_tiers(hmat), \
        f"memory tiers {got}, want {expected_tiers(hmat)}"
    # independent of the formula: DRAM keeps its tier; HBM above it and CXL
    # below it with HMAT, both below it without
    dram = node_tier(tiers, DRAM_NODE)
    assert dram == 4, tiers
    hbm, cxl = node_tier(tiers, HBM_NODE), node_tier(tiers, CXL_NODE)
    if hmat:
        assert hbm < dram < cxl, \
            f"HBM memory_tier{hbm}, DRAM memory_tier{dram}, CXL memory_tier{cxl}"
    else:
        assert dram < hbm == cxl, \
            f"HBM memory_tier{hbm}, DRAM memory_tier{dram}, CXL memory_tier{cxl}"
