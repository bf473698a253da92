"""The report of a benchmark run: bench.md and the plot from bench.json.

    python3 -m bench.report [--out DIR] [JSON]

Reads JSON (default $BUILD/bench/bench.json, written by
bench/spm_bench.py) and writes, beside it or into DIR, bench.md (the
date, the machine and every table) and the plot bench.png and bench.svg
(matplotlib, Debian's python3-matplotlib); prints the verdicts. Measures
nothing: `make bench-report` redraws a report from an existing run.
"""
import argparse
import json
import math
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from spmtest import build_dir  # noqa: E402

MiB = 1 << 20
BUILD = build_dir()
NAMES = {"spm": "spm-memory", "spm-packed": "spm-memory packed (HMAT)",
         "dimm": "pc-dimm", "dimm-gap": "pc-dimm with gaps"}
COLORS = {"spm": "tab:blue", "spm-packed": "tab:green", "dimm": "tab:orange",
          "dimm-gap": "tab:brown",
          "met": "tab:green", "missed": "tab:red", "inconclusive": "tab:gray"}
# start-up pairs (ratio and difference first/second) in the plot
PAIR_COLORS = {"spm/dimm": "tab:blue", "spm-packed/dimm": "tab:green",
               "dimm-gap/dimm": "tab:brown", "spm/dimm-gap": "tab:purple",
               "spm/spm-packed": "tab:cyan"}


def fmt(s, digits=1, scale=1.0):
    """'median (min–max)' of a stats dict."""
    if not s:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return (f"{f.format(s['median'] * scale)} "
            f"({f.format(s['min'] * scale)}–{f.format(s['max'] * scale)})")


def rng(r):
    hi = "∞" if r["hi"] is None else f"{r['hi']:.3f}"
    return f"{r['lo']:.3f}–{hi}"


def fratio(r):
    """'median [lo–hi]' of a paired ratio."""
    return "n/a" if not r else f"{r['median']:.3f} [{rng(r)}]"


# --- bench.md --------------------------------------------------------------------

def markdown(d):
    info, cfg, res = d["info"], d["config"], d["results"]
    T = cfg["targets"]
    L = ["# spm-memory benchmarks\n",
         f"One run of `python3 -m bench.spm_bench`{' --quick' if cfg['quick'] else ''} "
         f"(repetitions: {cfg['reps']}); report by `python3 -m bench.report`.\n",
         "| | |\n|---|---|",
         f"| date | {info['date']} |",
         f"| machine | {info['nproc']} CPUs, {info['cpu']}, {info['ram_gib']:.1f} GiB "
         f"RAM, Linux {info['kernel']} |",
         f"| QEMU | {info['qemu']} (`{info['qemu_path']}`), TCG / qtest |",
         f"| load average | {info['load_start'][0]:.2f} at start, "
         f"{info.get('load_end', [math.nan])[0]:.2f} at end |",
         f"| duration | {info.get('duration_s', 0):.0f} s |", "",
         "Values: median (min–max) over the repetitions. Ratios: median of the "
         "paired per-repetition ratios (both sides measured in the same "
         "repetition) and, in brackets, their min–max, widened by the figures' "
         "resolution where it matters. A target is **met** when it holds over "
         "the whole range, **missed** when it fails over the whole range, and "
         "**inconclusive** otherwise (and with fewer than 3 repetitions): the "
         "spread of this run cannot tell.\n"]

    r = res.get("startup")
    if r:
        gap = r.get("gap_mib", 128)
        desc = ", ".join(" / ".join(NAMES[k] for k in p.split("/"))
                         for p in r.get("descriptive", []))
        L += ["## 1. Start-up time and host RSS: spm-memory vs pc-dimm\n",
              "QEMU start to QMP ready (launch until `query-memory-devices` "
              "returned, machine initialized, `-S`), then VmRSS/VmHWM of the "
              "QEMU process. q35, TCG, 2 NUMA nodes, devices of 128 MiB "
              "(memory-backend-ram) on node 1, `-m 1G,slots=N,maxmem=…` "
              "identical for all kinds. *spm-memory* is placed automatically "
              f"without an HMAT ({gap} MiB free after each device); "
              "*packed* is spm-memory placed automatically on a machine with "
              "an HMAT (`-machine hmat=on`, `initiator=0` on every node), "
              "where the device packs the devices back to back; pc-dimms are "
              "placed back to back by QEMU"
              + (f"; *pc-dimm with gaps* are pc-dimms at explicit `addr=` "
                 f"leaving the same {gap} MiB after each device as "
                 "*spm-memory*" if "dimm-gap" in r["kinds"] else "")
              + ". Every launch checked the devices' addresses against that "
              f"layout. {r['reps']} repetitions, each launching every kind "
              "once, in rotating order.\n",
              "| devices | kind | start-up (ms) | VmRSS (MiB) | VmHWM (MiB) |",
              "|---:|---|---:|---:|---:|"]
        for row in r["rows"]:
            for kind in r["kinds"]:
                s = row["kinds"][kind]
                L.append(f"| {row['n']} | {NAMES[kind]} | {fmt(s['time'], 1, 1e3)} "
                         f"| {fmt(s['rss'], 2, 1 / MiB)} | {fmt(s['hwm'], 2, 1 / MiB)} |")
        L += ["", "Per repetition: ratio of the first kind to the second, and "
              "the first's VmRSS minus the second's"
              + (f"; {desc}: no target, it describes" if desc else "")
              + ".\n",
              "| devices | ratio | start-up | VmRSS | VmHWM "
              "| VmRSS difference (MiB) |", "|---:|---|---:|---:|---:|---:|"]
        for row in r["rows"]:
            for pair, q in row["ratios"].items():
                a, b = pair.split("/")
                L.append(f"| {row['n']} | {NAMES[a]} / {NAMES[b]} "
                         f"| {fratio(q['time'])} | {fratio(q['rss'])} "
                         f"| {fratio(q['hwm'])} "
                         f"| {fmt(row['diffs'][pair]['rss'], 2, 1 / MiB)} |")
        L.append("")

    r = res.get("bandwidth")
    if r:
        L += ["## 2. Guest bandwidth: spm-memory vs node-0 RAM\n",
              f"`spmtool bench` in one guest per kernel: {r['mib']} MiB of "
              f"spm-memory and {r['mib']} MiB of anonymous memory bound to "
              f"node 0, {r['rounds']} rounds of one 64-bit store pass and one "
              "load pass over each, in 4 MiB chunks alternating between the "
              "two buffers. MB/s = 10^6 bytes/s of guest time under TCG: only "
              "the ratio means something; it is the median of the per-round "
              "ratios SPM/RAM [their min–max].\n",
              "| kernel | spm-memory as | write SPM (MB/s) | write RAM (MB/s) "
              "| write ratio | read SPM (MB/s) | read RAM (MB/s) | read ratio |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for k in r["kernels"]:
            how = (f"`{k['target']}` mmap" if k["target"].startswith("/dev")
                   else f"node {k['spm_node']} memory (kmem)")
            L.append(f"| {k['kernel']} | {how} | {fmt(k['spm_write'], 0)} "
                     f"| {fmt(k['ram_write'], 0)} | {fratio(k['ratio_write'])} "
                     f"| {fmt(k['spm_read'], 0)} | {fmt(k['ram_read'], 0)} "
                     f"| {fratio(k['ratio_read'])} |")
        L.append("")

    r = res.get("migration")
    if r:
        L += ["## 3. Live migration: a guest with spm-memory vs with a pc-dimm\n",
              f"Linux 6.12 guest, 1 GiB node-0 RAM plus {r['size_mib']} MiB of "
              "spm-memory (or a pc-dimm of the same size) on node 1, "
              f"{r['fill_mib']} MiB of it filled with the same pseudo-random "
              "data (`spmtool fill`); the guest then idles. Unix socket, "
              "max-bandwidth unlimited, downtime-limit "
              f"{r['downtime_limit'] or 'QEMU default (300)'} ms; "
              f"{len(r['samples']['spm'])} migration(s) per kind, interleaved, "
              "after one unrecorded warm-up per kind. Times from the source's "
              "`query-migrate`, in whole ms: each ratio range allows 1 ms "
              "either way.\n",
              "| | spm-memory | pc-dimm | ratio spm/pc-dimm |",
              "|---|---:|---:|---:|",
              f"| total time (ms) | {fmt(r['spm_total_ms'], 0)} "
              f"| {fmt(r['dimm_total_ms'], 0)} | {fratio(r['ratio_total_ms'])} |",
              f"| downtime (ms) | {fmt(r['spm_downtime_ms'], 0)} "
              f"| {fmt(r['dimm_downtime_ms'], 0)} | {fratio(r['ratio_downtime_ms'])} |",
              f"| transferred (MiB) | {fmt(r['spm_transferred'], 0, 1 / MiB)} "
              f"| {fmt(r['dimm_transferred'], 0, 1 / MiB)} | |",
              f"| normal pages | {fmt(r['spm_normal_pages'], 0)} "
              f"| {fmt(r['dimm_normal_pages'], 0)} | |",
              f"| throughput (Mbit/s) | {fmt(r['spm_mbps'], 0)} "
              f"| {fmt(r['dimm_mbps'], 0)} | |",
              f"| dirty bitmap syncs | {fmt(r['spm_dirty_sync'], 0)} "
              f"| {fmt(r['dimm_dirty_sync'], 0)} | |", ""]

    r = res.get("acpi")
    if r:
        L += ["## 4. ACPI table build cost vs number of spm-memory devices\n",
              "q35, qtest accelerator, same `-m` for every configuration, "
              "devices of 128 MiB on node 1. After `system_reset` the first "
              "fw_cfg DMA select of `etc/acpi/tables` rebuilds all ACPI "
              "tables; build = first select − second select (no rebuild) of "
              f"the same reset, median (IQR) over {r['iters']} resets per "
              "configuration, measured round-robin.\n",
              "| spm devices | SRAT memory entries | tables (bytes) "
              "| first select (µs) | second select (µs) | build (µs), IQR "
              "| growth per device (µs) |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
        for row in r["rows"]:
            pd, b = row.get("per_device"), row["build_stats"]
            L.append(f"| {row['n']} | {row['srat_entries']} | {row['tables_bytes']} "
                     f"| {fmt(row['first'], 0, 1e6)} | {fmt(row['second'], 0, 1e6)} "
                     f"| {row['build'] * 1e6:.0f} ({b['q1'] * 1e6:.0f}–{b['q3'] * 1e6:.0f}) "
                     f"| {'' if pd is None else f'{pd * 1e6:.2f}'} |")
        lin, nl = r["linear"], r["nlogn"]
        L += ["", f"Least-squares fits of the build time: linear "
              f"{lin['a'] * 1e6:.0f} µs + {lin['b'] * 1e6:.2f} µs × n (RMS "
              f"residual {lin['rms'] * 1e6:.0f} µs); n log n {nl['a'] * 1e6:.0f} µs "
              f"+ {nl['b'] * 1e6:.3f} µs × n·log2 n (RMS residual "
              f"{nl['rms'] * 1e6:.0f} µs).\n"]

    if d["targets"]:
        L += ["## Targets\n",
              f"spm/pc-dimm (start-up also spm-memory packed / pc-dimm and "
              f"spm-memory / pc-dimm with gaps) ≤ {T['startup']} for start-up "
              f"time and RSS, ≤ {T['migration']} for migration total time and "
              f"downtime; SPM bandwidth ≥ {T['bandwidth']} of RAM.\n",
              "| ratio | median | range | target | verdict |",
              "|---|---:|---:|---|---|"]
        for t in d["targets"]:
            note = f": {t['note']}" if t.get("note") else ""
            L.append(f"| {t['label']} | {t['value']:.3f} | {rng(t)} "
                     f"| {'≤' if t['upper'] else '≥'} {t['target']} "
                     f"| **{t['verdict']}**{note} |")
        L.append("")
    if d["errors"]:
        L.append("## Errors\n")
        L += [f"- {sec}: `{err}`" for sec, err in d["errors"].items()]
        L.append("")
    L.append("Plot: `bench.png` (and `bench.svg`); every sample: `bench.json`.\n")
    return "\n".join(L)


# --- the plot ----------------------------------------------------------------------

def errbar(ax, x, s, scale, **kw):
    """median with min–max whiskers"""
    ys = [v["median"] * scale for v in s]
    lo = [(v["median"] - v["min"]) * scale for v in s]
    hi = [(v["max"] - v["median"]) * scale for v in s]
    ax.errorbar(x, ys, yerr=[lo, hi], marker="o", capsize=3, **kw)


def plot(d, paths):
    res, targets = d["results"], d["targets"]
    panels = [k for k in ("startup", "bandwidth", "migration", "acpi") if k in res]
    nplots = len(panels) + 2 * ("startup" in panels)       # start-up: 3 panels
    rows = (nplots + 1) // 2
    th = 0.25 * len(targets) + 1 if targets else 0
    fig = plt.figure(figsize=(12, 3.6 * rows + th), layout="constrained")
    gs = fig.add_gridspec(rows + bool(targets), 2,
                          height_ratios=[3.6] * rows + ([th] if targets else []))
    axes = iter(fig.add_subplot(gs[i // 2, i % 2]) for i in range(nplots))
    info = d["info"]
    fig.suptitle(f"spm-memory benchmarks, {info['date']}: {info['nproc']} CPUs, "
                 f"{info['cpu']}; {info['qemu']}"
                 f"{' (--quick)' if d['config']['quick'] else ''}", fontsize=10)

    r = res.get("startup")
    if r:
        ns = [row["n"] for row in r["rows"]]
        for metric, scale, title, unit in (("time", 1e3, "Start-up to QMP ready", "ms"),
                                           ("rss", 1 / MiB, "Host VmRSS after start-up",
                                            "MiB")):
            ax = next(axes)
            k = len(r["kinds"])
            for j, kind in enumerate(r["kinds"]):
                x = [i + (j - (k - 1) / 2) * 0.12 for i in range(len(ns))]
                errbar(ax, x, [row["kinds"][kind][metric] for row in r["rows"]],
                       scale, color=COLORS[kind], label=NAMES[kind])
            ax.set_xticks(range(len(ns)), [str(n) for n in ns])
            ax.set(title=title, xlabel="devices", ylabel=f"{unit}, median (min–max)")
            ax.legend(fontsize=8)
        ax = next(axes)             # what the RSS explanation rests on
        pairs = list(r["rows"][0]["diffs"])
        for j, pair in enumerate(pairs):
            a, b = pair.split("/")
            x = [i + (j - (len(pairs) - 1) / 2) * 0.12 for i in range(len(ns))]
            errbar(ax, x, [row["diffs"][pair]["rss"] for row in r["rows"]],
                   1 / MiB, color=PAIR_COLORS.get(pair),
                   label=f"{NAMES[a]} − {NAMES[b]}"
                   + (" (no target)" if pair in r.get("descriptive", []) else ""))
        ax.axhline(0, color="gray", linestyle=":")
        ax.set_xticks(range(len(ns)), [str(n) for n in ns])
        ax.set(title="VmRSS difference (per repetition)",
               xlabel="devices", ylabel="MiB, median (min–max)")
        ax.legend(fontsize=8)
    r = res.get("bandwidth")
    if r:
        ax = next(axes)
        for j, op in enumerate(("write", "read")):
            ks = r["kernels"]
            x = [i + (j - 0.5) * 0.2 for i in range(len(ks))]
            ys = [k[f"ratio_{op}"]["median"] for k in ks]
            ax.errorbar(x, ys, yerr=[[y - k[f"ratio_{op}"]["lo"] for y, k in zip(ys, ks)],
                                     [k[f"ratio_{op}"]["hi"] - y for y, k in zip(ys, ks)]],
                        marker="o", capsize=3, label=op, linestyle="none")
            ax.set_xticks(range(len(ks)), [f"{k['kernel']}\n({k['driver']})" for k in ks])
        ax.axhline(1.0, color="gray", linestyle=":")
        ax.axhline(d["config"]["targets"]["bandwidth"], color="black", linestyle="--",
                   label="target")
        ax.set(title="Guest bandwidth SPM/RAM (per-round ratios)", xlabel="guest kernel",
               ylabel="ratio, median (min–max)")
        ax.legend(fontsize=8)
    r = res.get("migration")
    if r:
        ax = next(axes)
        for j, kind in enumerate(("spm", "dimm")):
            x = [i + (j - 0.5) * 0.2 for i in range(2)]
            errbar(ax, x, [r[f"{kind}_total_ms"], r[f"{kind}_downtime_ms"]], 1,
                   color=COLORS[kind], label=NAMES[kind], linestyle="none")
        ax.set_yscale("symlog", linthresh=10)
        ax.set_xticks([0, 1], ["total time", "downtime"])
        ax.set(title="Live migration", ylabel="ms (whole; symlog), median (min–max)")
        ax.legend(fontsize=8)
    r = res.get("acpi")
    if r:
        ax = next(axes)
        ns = [row["n"] for row in r["rows"]]
        b = [row["build_stats"] for row in r["rows"]]
        ys = [row["build"] * 1e6 for row in r["rows"]]
        ax.errorbar(ns, ys, yerr=[[y - s["q1"] * 1e6 for y, s in zip(ys, b)],
                                  [s["q3"] * 1e6 - y for y, s in zip(ys, b)]],
                    marker="o", capsize=3, color="tab:purple", label="build (IQR)")
        lin = r["linear"]
        ax.plot([0, max(ns)], [lin["a"] * 1e6, (lin["a"] + lin["b"] * max(ns)) * 1e6],
                color="gray", linestyle=":", label="linear fit")
        ax.set(title="ACPI table build", xlabel="spm-memory devices", ylabel="µs")
        ax.legend(fontsize=8)
    for ax in axes:                    # an odd number of panels leaves one
        ax.set_visible(False)

    if targets:
        ax = fig.add_subplot(gs[rows, :])
        lo_ax, hi_ax = 0.8, 1.25                 # ranges beyond: clipped, "<" ">"
        for i, t in enumerate(targets):
            y = len(targets) - 1 - i
            hi = math.inf if t["hi"] is None else t["hi"]
            c = COLORS[t["verdict"]]
            ax.plot([max(t["lo"], lo_ax), min(hi, hi_ax)], [y, y],
                    color=c, linewidth=6, solid_capstyle="butt")
            if t["lo"] < lo_ax:
                ax.plot([lo_ax], [y], "<", color=c)
            if hi > hi_ax:
                ax.plot([hi_ax], [y], ">", color=c)
            if lo_ax <= t["value"] <= hi_ax:
                ax.plot([t["value"]], [y], "o", color="black", markersize=3)
            ax.plot([t["target"]], [y], "|", color="black", markersize=14,
                    markeredgewidth=2)
            ax.annotate(t["verdict"], (1.01, y), xycoords=("axes fraction", "data"),
                        va="center", fontsize=8, color=c)
        ax.axvline(1.0, color="gray", linestyle=":")
        ax.set_xscale("log")
        ax.set_xlim(lo_ax / 1.01, hi_ax * 1.01)
        ticks = [0.8, 0.85, 0.9, 0.95, 1.0, 1.02, 1.05, 1.1, 1.15, 1.2, 1.25]
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.minorticks_off()
        ax.set_yticks(range(len(targets)), [t["label"] for t in reversed(targets)],
                      fontsize=8)
        ax.set_ylim(-0.7, len(targets) - 0.3)
        ax.set_title("Ratios against targets: bar = range (paired min–max), dot = "
                     "median, tick = target; green met, red missed, grey "
                     "inconclusive (log axis; < > clipped)", fontsize=9)
    for p in paths:
        fig.savefig(p, dpi=100)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="?", default=os.path.join(BUILD, "bench", "bench.json"))
    ap.add_argument("--out", help="output directory (default: the JSON's)")
    a = ap.parse_args()
    try:
        with open(a.json) as f:
            d = json.load(f)
    except OSError as e:
        print(f"report: {e} (run `make bench` first)", file=sys.stderr)
        return 1
    out = a.out or os.path.dirname(os.path.abspath(a.json))
    os.makedirs(out, exist_ok=True)
    md = os.path.join(out, "bench.md")
    with open(md, "w") as f:
        f.write(markdown(d))
    plot(d, [os.path.join(out, "bench.png"), os.path.join(out, "bench.svg")])
    print(f"report: wrote {md}, bench.png, bench.svg")
    for t in d["targets"]:
        print(f"  {t['label']:44s} {t['value']:7.3f} [{rng(t):>13s}]  "
              f"{'<=' if t['upper'] else '>='} {t['target']}  {t['verdict']}")
    counts = {v: sum(t["verdict"] == v for t in d["targets"])
              for v in ("met", "missed", "inconclusive")}
    print("targets: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    if d["errors"]:
        print(f"not measured: {', '.join(d['errors'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
