"""make demo: a guest with two spm-memory devices on two NUMA nodes.

Boots the patched QEMU (TCG) with the patched SeaBIOS and Debian's 6.12
kernel, and reports where QEMU placed each device, what the guest's firmware
map, /proc/iomem and SRAT say, which dax devices and NUMA nodes the guest
made of them, and the memory tier of each node. Writes a picture of the
guest physical memory map as SVG.

The machine has an ACPI HMAT (-machine hmat=on, -numa hmat-lb) that
describes node 1's device as HBM-like (lower latency and more bandwidth than
node 0's DRAM) and node 2's as CXL-like (higher latency, less bandwidth):
Linux's kmem, which onlines the devices' memory on 6.12 and 7.x, then puts
node 1 in a memory tier above DRAM's and node 2 in one below. With
--no-hmat the machine has no HMAT and both land in the default dax tier
below DRAM. (6.1 gives the devices to device_dax: no tier.)

    python3 -m demo.guest [--kernel 6.1|6.12|7.x] [--firmware seabios|ovmf]
                            [--no-hmat] [--svg PATH]

It boots only what "make guest-deps" prepared.
"""
import argparse
import html
import os
import sys

from spmtest import build_dir
from spmtest import guest as spmguest

MiB, GiB = 1 << 20, 1 << 30

# HMAT: node -> (access latency in ns, access bandwidth) from initiator 0,
# the node of the CPUs
HMAT_PERF = {
    0: (100, "50G"),    # DRAM
    1: (90, "100G"),    # spm0: HBM-like
    2: (200, "25G"),    # spm1: CXL-like
}
KIND = {0: "DRAM", 1: "HBM-like", 2: "CXL-like"}


def qemu_args(hmat=True):
    """The demo machine: node 0 with the CPUs and 1 GiB of RAM, a 1 GiB
    spm-memory device on node 1 and a 512 MiB one on node 2; with hmat, an
    HMAT with every node's latency and bandwidth from node 0."""
    init = ",initiator=0" if hmat else ""
    args = [
        "-M", "q35,hmat=on" if hmat else "q35", "-m", "1G,maxmem=8G",
        "-object", "memory-backend-ram,id=m0,size=1G",
        "-numa", f"node,nodeid=0,memdev=m0,cpus=0-1{init}",
        "-numa", f"node,nodeid=1{init}", "-numa", f"node,nodeid=2{init}",
        "-object", "memory-backend-ram,id=hbm0,size=1G",
        "-device", "spm-memory,id=spm0,memdev=hbm0,node=1",
        "-object", "memory-backend-ram,id=hbm1,size=512M",
        "-device", "spm-memory,id=spm1,memdev=hbm1,node=2",
    ]
    if hmat:
        for node, (lat, bw) in HMAT_PERF.items():
            lb = f"hmat-lb,initiator=0,target={node},hierarchy=memory"
            args += ["-numa", f"{lb},data-type=access-latency,latency={lat}",
                     "-numa", f"{lb},data-type=access-bandwidth,bandwidth={bw}"]
    return args


QEMU_ARGS = qemu_args()
NODE_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1"]


def size(n):
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n // MiB} MiB"


def rng(start, end):
    return f"{start:#012x}-{end:#012x}"


def svg_map(path, devices, report):
    """Guest physical memory: RAM, spm-memory by node, hotpluggable memory."""
    top = max([r["end"] + 1 for r in report["iomem"] if r["depth"] == 0
               and r["name"] == "System RAM"] +
              [d["memaddr"] + d["size"] for d in devices] +
              [s["end"] + 1 for s in report["srat"]])
    width, x0, bar_y, bar_h = 1100, 40, 70, 60
    nrows = len(devices) + 1 + sum(1 for s in report["srat"] if s["hotplug"])
    legend_y = bar_y + bar_h + 40 + 16 * nrows
    height = legend_y + 40
    scale = (width - 2 * x0) / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="40" y="30" font-size="16">Guest physical memory '
           '(spm-memory demo)</text>',
           f'<rect x="{x0}" y="{bar_y}" width="{top * scale:.1f}" '
           f'height="{bar_h}" fill="#eeeeee" stroke="#999"/>']

    def box(start, end, colour, label, row):
        x, w = x0 + start * scale, max((end + 1 - start) * scale, 1)
        out.append(f'<rect x="{x:.1f}" y="{bar_y}" width="{w:.1f}" '
                   f'height="{bar_h}" fill="{colour}" stroke="#333"/>')
        ty = bar_y + bar_h + 18 + 16 * row
        out.append(f'<line x1="{x:.1f}" y1="{bar_y + bar_h}" x2="{x:.1f}" '
                   f'y2="{ty - 11}" stroke="#999" stroke-dasharray="2,2"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{ty}">{html.escape(label)}'
                   '</text>')

    rows = []
    ram = [r for r in report["iomem"] if r["depth"] == 0 and
           r["name"] == "System RAM" and r["end"] - r["start"] >= 64 * MiB]
    for r in ram:
        rows.append((r["start"], r["end"], "#9c9c9c",
                     f"System RAM: {rng(r['start'], r['end'])}"))
    for d in sorted(devices, key=lambda d: d["memaddr"]):
        rows.append((d["memaddr"], d["memaddr"] + d["size"] - 1,
                     NODE_COLOURS[d["node"] % len(NODE_COLOURS)],
                     f"{d['id']}: spm-memory, node {d['node']}, "
                     f"{size(d['size'])}, "
                     f"{rng(d['memaddr'], d['memaddr'] + d['size'] - 1)}"))
    for s in report["srat"]:
        if s["hotplug"]:
            rows.append((s["start"], s["end"], "#d9d9d9",
                         f"hotpluggable device memory, node {s['node']}: "
                         f"{rng(s['start'], s['end'])}"))
    for row, (start, end, colour, label) in enumerate(rows):
        box(start, end, colour, label, row)
    for gib in range(0, top // GiB + 1):
        x = x0 + gib * GiB * scale
        out.append(f'<line x1="{x:.1f}" y1="{bar_y - 6}" x2="{x:.1f}" '
                   f'y2="{bar_y}" stroke="#333"/>')
        out.append(f'<text x="{x:.1f}" y="{bar_y - 10}" text-anchor="middle">'
                   f'{gib}G</text>')
    out.append(f'<text x="40" y="{legend_y}">Grey: RAM and hotpluggable device '
               'memory (SRAT "hotplug"); colours: spm-memory (E820 soft '
               'reserved), one colour per NUMA node.</text>')
    out.append(f'<text x="40" y="{legend_y + 18}">In the guest each spm-memory '
               'device is soft reserved in the E820 map (adjacent devices: one '
               'range) and one dax device on its node.</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def command_line(args):
    """The QEMU arguments as a shell command, one option per line."""
    lines, i = [], 0
    while i < len(args):
        if i + 1 < len(args) and not args[i + 1].startswith("-"):
            lines.append(f"{args[i]} {args[i + 1]}")
            i += 2
        else:
            lines.append(args[i])
            i += 1
    # -M and -m on the first line
    return ("  qemu-system-x86_64 " + " ".join(lines[:2]) + " \\\n" +
            " \\\n".join("      " + l for l in lines[2:]))


def show_tiers(rep, devices, hmat, driver):
    """Section 7: each node's memory tier from the guest's report, and why.
    Returns whether the tiers are what the machine asks for: with HMAT the
    HBM-like node above DRAM's tier and the CXL-like one below; without,
    both in one tier below DRAM (kmem); no tier for the devices when
    device_dax has them (6.1)."""
    spm_nodes = {d["node"]: d["id"] for d in devices}
    has_cpu = rep["nodestates"].get("has_cpu", [0])
    tier_of = {n: t["id"] for t in rep["tiers"] for n in (t["nodes"] or [])}

    def who(n):
        perf = ""
        if hmat and n in HMAT_PERF:
            lat, bw = HMAT_PERF[n]
            perf = f"; HMAT latency={lat} bandwidth={bw}"
        if n in spm_nodes:
            return f"node {n} ({spm_nodes[n]}, {KIND.get(n, 'spm-memory')}{perf})"
        return f"node {n} (DRAM{', CPUs' if n in has_cpu else ''}{perf})"

    print("\n7. Memory tiers (/sys/devices/virtual/memory_tiering; a lower "
          "number is a faster tier):")
    if not rep["tiers"]:
        print("  none: this guest shows no memory tiers")
    for t in rep["tiers"]:
        print(f"  {t['name']}: " +
              (", ".join(who(n) for n in t["nodes"] or []) or "no nodes"))
    dram = tier_of.get(0)
    for n in sorted(spm_nodes):
        if n not in tier_of:
            print(f"  {who(n)}: in no tier (its memory is not system RAM: "
                  f"driver {driver})")
    if driver != "kmem":
        print("  The dax devices stay device-dax (/dev/daxN.M), so Linux does "
              "not tier their memory.")
        return all(n not in tier_of for n in spm_nodes)
    hbm, cxl = tier_of.get(1), tier_of.get(2)
    if None in (dram, hbm, cxl):
        print("  Not every node is in a tier (see the log).")
        return False
    if hmat:
        print("  With the HMAT, kmem placed each spm-memory node by its latency "
              "and bandwidth\n  relative to node 0's DRAM (Linux's abstract "
              "distance: DRAM 576 = memory_tier4,\n  in proportion to latency, "
              "in inverse proportion to bandwidth, tier = distance / 128):\n"
              f"  the HBM-like node 1 {'above' if hbm < dram else 'NOT above'}"
              f" DRAM, the CXL-like node 2 "
              f"{'below' if cxl > dram else 'NOT below'} it.")
        return hbm < dram < cxl
    print("  Without an HMAT Linux has no performance data for the spm-memory "
          "nodes, so kmem\n  puts them in its default dax tier (abstract "
          "distance 5 x DRAM's = memory_tier22),\n  below DRAM's memory_tier4, "
          "HBM included. The demo without --no-hmat gives the\n  machine an "
          "HMAT that places them by performance.")
    return dram < hbm == cxl


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.12", choices=spmguest.KERNELS)
    ap.add_argument("--firmware", default="seabios")
    ap.add_argument("--no-hmat", action="store_true",
                    help="a machine without HMAT (spm-memory in the default "
                    "dax tier)")
    ap.add_argument("--svg", default=os.path.join(build_dir(), "demo",
                                                  "memory-map.svg"))
    args = ap.parse_args()
    log = os.path.join(build_dir(), "demo", "guest-console.log")

    hmat = not args.no_hmat
    qemu = qemu_args(hmat)
    print("Booting a guest (TCG, Debian kernel %s, firmware %s, %s) with two "
          "spm-memory devices..." % (args.kernel, args.firmware,
                                     "HMAT" if hmat else "no HMAT"),
          flush=True)
    try:
        devices, rep = spmguest.boot(qemu, kernel=args.kernel,
                                     firmware=args.firmware, log=log)
    except RuntimeError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1

    print("\nQEMU command line (plus kernel, initramfs and firmware):")
    print(command_line(qemu))
    print("\n1. Where QEMU placed the devices (QMP query-memory-devices):")
    for d in devices:
        print(f"  {d['id']}: node {d['node']}, {size(d['size'])} at "
              f"{rng(d['memaddr'], d['memaddr'] + d['size'] - 1)}, "
              f"memdev {d['memdev']}")
    print(f"\n2. The guest ({rep['kernel']}) firmware memory map, "
          "soft reserved entries:")
    for e in rep["e820"]:
        if e["type"] == "soft reserved":
            print(f"  BIOS-e820: {rng(e['start'], e['end'])} soft reserved")
    if len(spmguest.e820_soft_reserved(rep)) < len(devices):
        print("  (the devices sit back to back, as QEMU places them on a "
              "machine with an HMAT:\n  the firmware map merges them into "
              "one range; with the HMAT Linux splits it\n  by the SRAT entries "
              "again, one dax device per device, section 5)")
    print("\n3. /proc/iomem, specific-purpose ranges (7.x shows no "
          "\"Soft Reserved\" line):")
    for r in rep["iomem"]:
        if r["name"] in ("Soft Reserved", "System RAM (kmem)") or \
                r["name"].startswith(("dax", "hmem")):
            print(f"  {'  ' * r['depth']}{r['start']:x}-{r['end']:x} : "
                  f"{r['name']}")
    print("\n4. SRAT memory affinity as the guest read it:")
    for s in rep["srat"]:
        if s["end"] < s["start"]:
            # a zero-length entry: QEMU names a node without CPUs or boot
            # memory this way, so that the guest keeps QEMU's node numbers
            print(f"  node {s['node']} (PXM {s['pxm']}) empty entry at "
                  f"{s['start']:#012x}: names the node, so that the guest "
                  "numbers it as QEMU does")
            continue
        print(f"  node {s['node']} (PXM {s['pxm']}) "
              f"{rng(s['start'], s['end'])}{' hotplug' if s['hotplug'] else ''}")
    print("\n5. dax devices:")
    for d in rep["dax"]:
        print(f"  {d['name']}: {size(d['size'])} at {d['start']:#x}, "
              f"target node {d['target_node']}, driver {d['driver']}")
    print("\n6. NUMA nodes with memory in the guest:")
    for n in rep["nodes"]:
        print(f"  node {n['id']}: {n['memtotal_kb'] // 1024} MiB")

    # Soft reserved E820 ranges exactly over the devices (adjacent ones, as
    # QEMU packs them with an HMAT, merged into one) and one dax device
    # (sysfs and /proc/iomem) exactly over each, on its node.
    want = sorted((d["memaddr"], d["memaddr"] + d["size"] - 1)
                  for d in devices)
    ok = len(devices) == 2 and \
        spmguest.e820_soft_reserved(rep) == spmguest.merged(want) \
        and spmguest.iomem_ranges(rep, spmguest.DAX_NAME) == want \
        and sorted((d["start"], d["size"], d["target_node"])
                   for d in rep["dax"]) == \
        sorted((d["memaddr"], d["size"], d["node"]) for d in devices) \
        and sorted(d["node"] for d in devices) == [1, 2]
    driver = spmguest.DRIVER[args.kernel]
    tiers_ok = show_tiers(rep, devices, hmat, driver)
    os.makedirs(os.path.dirname(args.svg), exist_ok=True)
    svg_map(args.svg, devices, rep)
    print(f"\nPicture of the guest physical memory map: {args.svg}")
    print(f"Guest console log: {log}")
    print("\nResult: " + ("each spm-memory device is soft reserved memory "
                          "and one dax device on its own node in the guest."
                          if ok else "the guest does NOT see the devices as "
                          "QEMU placed them (see the log)."))
    if driver != "kmem":
        tiers = ("the devices' memory is in no memory tier (device_dax "
                 "keeps it out of the page allocator).")
    elif hmat:
        tiers = ("the HBM-like node is in a memory tier above DRAM, the "
                 "CXL-like one below." if tiers_ok else "the memory tiers are "
                 "NOT HBM above DRAM and CXL below (see section 7).")
    else:
        tiers = ("without HMAT both spm-memory nodes are in the default dax "
                 "tier, below DRAM." if tiers_ok else "the memory tiers are "
                 "NOT as expected without HMAT (see section 7).")
    print("        " + tiers)
    return 0 if ok and tiers_ok else 1


if __name__ == "__main__":
    sys.exit(main())
