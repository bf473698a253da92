"""make demo: a guest with two spm-memory devices on two NUMA nodes.

Boots the patched QEMU (TCG) with the patched SeaBIOS and Debian's 6.12
kernel, and reports where QEMU placed each device, what the guest's firmware
map, /proc/iomem and SRAT say, and which dax devices and NUMA nodes the guest
made of them. Writes a picture of the guest physical memory map as SVG.

    python3 -m spmtest.demo [--kernel 6.1|6.12|7.x] [--firmware seabios|ovmf]
                            [--svg PATH]

It boots only what "make guest-deps" prepared.
"""
import argparse
import html
import os
import sys

from spmtest import build_dir
from spmtest import guest as spmguest

MiB, GiB = 1 << 20, 1 << 30

QEMU_ARGS = [
    "-M", "q35", "-m", "1G,maxmem=8G",
    "-object", "memory-backend-ram,id=m0,size=1G",
    "-numa", "node,nodeid=0,memdev=m0,cpus=0-1",
    "-numa", "node,nodeid=1", "-numa", "node,nodeid=2",
    "-object", "memory-backend-ram,id=hbm0,size=1G",
    "-device", "spm-memory,id=spm0,memdev=hbm0,node=1",
    "-object", "memory-backend-ram,id=hbm1,size=512M",
    "-device", "spm-memory,id=spm1,memdev=hbm1,node=2",
]
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
               'device is one soft reserved E820 range, one dax device on its '
               'node.</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.12", choices=spmguest.KERNELS)
    ap.add_argument("--firmware", default="seabios")
    ap.add_argument("--svg", default=os.path.join(build_dir(), "demo",
                                                  "memory-map.svg"))
    args = ap.parse_args()
    log = os.path.join(build_dir(), "demo", "guest-console.log")

    print("Booting a guest (TCG, Debian kernel %s, firmware %s) with two "
          "spm-memory devices..." % (args.kernel, args.firmware), flush=True)
    try:
        devices, rep = spmguest.boot(QEMU_ARGS, kernel=args.kernel,
                                     firmware=args.firmware, log=log)
    except RuntimeError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1

    print("\nQEMU command line (plus kernel, initramfs and firmware):")
    print("  qemu-system-x86_64 " + " ".join(QEMU_ARGS))
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

    # The demo's devices are not adjacent: one E820 range and one dax
    # device (sysfs and /proc/iomem) exactly over each, on its node.
    want = sorted((d["memaddr"], d["memaddr"] + d["size"] - 1)
                  for d in devices)
    ok = len(devices) == 2 and spmguest.e820_soft_reserved(rep) == want \
        and spmguest.iomem_ranges(rep, spmguest.DAX_NAME) == want \
        and sorted((d["start"], d["size"], d["target_node"])
                   for d in rep["dax"]) == \
        sorted((d["memaddr"], d["size"], d["node"]) for d in devices) \
        and sorted(d["node"] for d in devices) == [1, 2]
    os.makedirs(os.path.dirname(args.svg), exist_ok=True)
    svg_map(args.svg, devices, rep)
    print(f"\nPicture of the guest physical memory map: {args.svg}")
    print(f"Guest console log: {log}")
    print("\nResult: " + ("each spm-memory device is one soft reserved E820 "
                          "range and one dax device on its own node in the "
                          "guest."
                          if ok else "the guest does NOT see the devices as "
                          "QEMU placed them (see the log)."))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
