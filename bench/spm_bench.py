"""spm-memory benchmarks: spm-memory against pc-dimm and against RAM.

    python3 -m bench.spm_bench [--reps N] [--quick] [--out DIR] [--only SECTIONS]
                                     [--downtime-limit MS]

Measures, in one run, with the patched QEMU ($BUILD/qemu-build/
qemu-system-x86_64, TCG or qtest, never KVM), and writes every sample, its
statistics and the verdicts on the targets to DIR/bench.json (DIR defaults
to $BUILD/bench); consoles and QEMU logs go to DIR/logs/. The report
(bench.md and the plot) is drawn from that file by bench/report.py.

1. startup   QEMU start to QMP-ready time and host RSS with 1, 16 and 64
             devices of 128 MiB each, of four kinds: "spm", spm-memory
             placed automatically (no HMAT, so 128 MiB free after each
             device); "spm-packed", spm-memory placed automatically on a
             machine with an HMAT (-machine hmat=on, initiator=0 on every
             node), where the device packs them back to back; "dimm",
             pc-dimm placed automatically (back to back); "dimm-gap",
             pc-dimm at explicit addr= leaving the same 128 MiB after each
             device as "spm". Every run checks the addresses of
             query-memory-devices against that layout (device i at 4 GiB +
             i * 256 MiB for spm and dimm-gap, 4 GiB + i * 128 MiB for
             spm-packed and dimm), so "spm-packed" also checks the device's
             rule. memory-backend-ram, node 1 of 2; q35, TCG, -S, the same
             -m 1G,slots=N,maxmem=... for all kinds; only "spm-packed" has
             an HMAT. Time: from the launch of QEMU (QEMU's launcher,
             qemu.machine.QEMUMachine.launch(), which forks it) until
             query-memory-devices (answered only once the machine is
             initialized and the main loop runs) has returned; QEMU
             connects to the launcher's QMP socket, so no polling. RSS: VmRSS and
             VmHWM of the QEMU process right after that (the guest has not
             run: -S). Repetitions interleaved (every repetition launches
             each kind once, in rotating order), so each repetition gives
             one paired ratio per pair: spm/dimm (the device's cost as
             used), spm-packed/dimm (without the gaps), dimm-gap/dimm (the
             gaps alone, without spm-memory) and spm/dimm-gap (the device
             with the gaps against pc-dimms with the same gaps).
2. bandwidth Guest read and write bandwidth of spm-memory against node-0 RAM
             in the same guest ("spmtool bench", guest/spmtool.c,
             started by spm.bench= in guest/init.sh), on every guest
             kernel of spmtest/guest.py (KERNELS): device_dax kernels map
             /dev/dax0.0, kmem kernels bind anonymous memory to the
             spm-memory's node; the RAM buffer is anonymous memory bound to
             node 0. Each round times one 64-bit store pass and one load
             pass over each buffer, in 4 MiB chunks alternating between the
             two buffers, so that changes of the host's load hit both alike;
             each round gives one paired ratio SPM/RAM. Under TCG only the
             ratio means something.
3. migration Live migration over a unix socket (6.12 guest, 1 GiB node-0
             RAM) with 1 GiB of spm-memory against the same guest with a
             1 GiB pc-dimm instead, both on node 1. The guest first fills
             7/8 of it with a pseudo-random pattern (spm.fill=; for the
             pc-dimm spm.fillnode=1: the same spmtool fill on node-1 memory,
             which 6.12 onlines) and then idles. Each kind's guest is
             migrated to a fresh destination once per repetition, kinds
             interleaved (the idle one paused), after one unrecorded
             warm-up migration per kind; max-bandwidth unlimited,
             downtime-limit 20 ms (--downtime-limit; QEMU's 300 ms makes
             QEMU stop the guest with a throughput-dependent amount of data
             left, which makes downtime and total time bimodal), other
             parameters QEMU's defaults. Recorded: query-migrate
             "total-time" and "downtime" of the source, in whole ms.
4. acpi      ACPI table build cost with 0, 16, 64, 128 and 256 spm-memory
             devices (q35, qtest accelerator, the same -m for all): after a
             system_reset (which marks the tables stale) the first fw_cfg
             DMA select of etc/acpi/tables rebuilds every ACPI table; the
             build cost is the time of that first select minus the time of
             a second select of the same item (no rebuild), median over the
             resets; all configurations run at once and are measured
             round-robin. Recorded per configuration with SRAT memory
             entries and table size, the growth per device between
             configurations, and linear and n log n fits.

Targets (benchmark figures, not tests): spm/dimm, spm-packed/dimm and
spm/dimm-gap <= 1.02 for start-up time and RSS (dimm-gap/dimm is
descriptive: no target), spm/pc-dimm <= 1.05 for migration time and
downtime; SPM bandwidth >= 0.95 of RAM. A verdict looks at the
range of the ratio, not at one number: the min-max of the paired
per-repetition ratios, each widened by the resolution of the figure where
that matters (downtime and total time: 1 ms, so a pair (a, b) spans
(a-1)/(b+1) to (a+1)/(b-1)). "met": the target holds over the whole range;
"missed": it fails over the whole range; "inconclusive" otherwise, and
always with fewer than 3 pairs (a --quick migration has one). The
script exits 0 when it measured everything (whether or not the targets are
met), 1 when a section failed (bench.json is written all the same), 2 for
usage errors.

bench.json: "info" (date, machine, QEMU, load), "config" (the run's
parameters and the targets), "results" (per section every sample, with
stats {n, median, min, max, q1, q3} and paired ratios {n, median, lo, hi,
...}), "targets" ([{id, label, value, lo, hi (null: unbounded), target,
upper, verdict, note}]) and "errors" ({section: message}).

--reps N (default 7) sets the repetitions of every section: start-up 5*N
launches per configuration and kind (0.1 to 0.4 s each here), bandwidth 3*N
rounds (at least 10), migration N per kind after one warm-up, ACPI 30*N
rebuilds per configuration. --quick is a tiny run for validating the script
(2 repetitions, small memory sizes, 1 migration per kind). --only takes a
comma list of the section names above. --downtime-limit MS sets the
migration downtime limit (default 20; 0: QEMU's default, 300 ms).
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

from spmtest import ROOT, build_dir, fwcfg, qemu_binary
from spmtest import guest as spmguest
from spmtest.qemupy import QEMUMachine, QEMUQtestProtocol

BUILD = build_dir()
QEMU = qemu_binary()
MiB, GiB = 1 << 20, 1 << 30
SECTIONS = ["startup", "bandwidth", "migration", "acpi"]
# start-up kinds, and the ratios taken between them (numerator, denominator);
# the pairs in DESCRIPTIVE get no target (they describe, they do not judge)
KINDS = ["spm", "spm-packed", "dimm", "dimm-gap"]
PAIRS = [("spm", "dimm"), ("spm-packed", "dimm"), ("dimm-gap", "dimm"),
         ("spm", "dimm-gap")]
DESCRIPTIVE = [("dimm-gap", "dimm")]
LABELS = {"spm": "spm", "spm-packed": "spm-packed", "dimm": "pc-dimm",
          "dimm-gap": "pc-dimm-gap"}
TARGETS = {"startup": 1.02, "rss": 1.02, "migration": 1.05, "bandwidth": 0.95}


# --- statistics and verdicts ---------------------------------------------------

def stats(xs):
    xs = sorted(xs)
    if not xs:
        return None
    if len(xs) >= 4:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1, q3 = xs[0], xs[-1]
    return {"n": len(xs), "median": statistics.median(xs), "min": xs[0],
            "max": xs[-1], "q1": q1, "q3": q3}


def paired(a, b, res=0.0):
    """Ratio a/b of two interleaved sample lists (a[i] and b[i] measured in
    the same repetition): the median of the per-repetition ratios and their
    range, each pair widened by the figures' resolution `res` ((a-res)/(b+res)
    to (a+res)/(b-res); unbounded, None, when b-res <= 0). Also the ratio of the
    medians and the range from the two samples alone ([min a/max b, max
    a/min b]), for comparison."""
    n = min(len(a), len(b))
    if not n:
        return None
    a, b = a[:n], b[:n]
    rs = [x / y for x, y in zip(a, b)]
    lo = min((x - res) / (y + res) for x, y in zip(a, b))
    hi = max((x + res) / (y - res) if y > res else math.inf for x, y in zip(a, b))
    return {"n": n, "median": statistics.median(rs), "lo": lo,
            "hi": None if hi == math.inf else hi,            # None: unbounded
            "paired_min": min(rs), "paired_max": max(rs), "res": res,
            "of_medians": statistics.median(a) / statistics.median(b),
            "unpaired_lo": min(a) / max(b), "unpaired_hi": max(a) / min(b)}


def verdict(lo, hi, target, upper=True):
    """'met' when the target holds over the whole range [lo, hi], 'missed'
    when it fails over the whole range, 'inconclusive' otherwise."""
    hi = math.inf if hi is None else hi
    if upper:
        return "met" if hi <= target else "missed" if lo > target else "inconclusive"
    return "met" if lo >= target else "missed" if hi < target else "inconclusive"


MIN_PAIRS = 3                  # fewer pairs show no spread: no verdict


def target(tid, label, r, limit, upper=True, note=None):
    t = {"id": tid, "label": label, "target": limit, "upper": upper,
         "value": r["median"], "lo": r["lo"], "hi": r["hi"], "n": r["n"],
         "verdict": verdict(r["lo"], r["hi"], limit, upper)}
    if r["n"] < MIN_PAIRS:
        t["verdict"] = "inconclusive"
        note = "; ".join(filter(None, [f"only {r['n']} repetition(s)", note]))
    if note:
        t["note"] = note
    return t


def collect_targets(results):
    """The verdicts, from the ratio ranges the sections computed."""
    t = []
    r = results.get("startup")
    if r:
        for metric, name, key in (("time", "start-up time", "startup"),
                                  ("rss", "VmRSS", "rss")):
            for a, b in PAIRS:
                if (a, b) in DESCRIPTIVE:
                    continue
                for row in r["rows"]:
                    t.append(target(f"startup-{metric}-{a}/{b}-{row['n']}",
                                    f"{name} {LABELS[a]}/{LABELS[b]}, "
                                    f"{row['n']} dev",
                                    row["ratios"][f"{a}/{b}"][metric],
                                    TARGETS[key]))
    r = results.get("bandwidth")
    if r:
        for k in r["kernels"]:
            for op in ("write", "read"):
                t.append(target(f"bandwidth-{op}-{k['kernel']}",
                                f"{op} bandwidth SPM/RAM, {k['kernel']}",
                                k[f"ratio_{op}"], TARGETS["bandwidth"], False))
    r = results.get("migration")
    if r:
        for m, name in (("total_ms", "total time"), ("downtime_ms", "downtime")):
            q = r[f"ratio_{m}"]
            note = None
            small = min(r["spm_" + m]["min"], r["dimm_" + m]["min"])
            need = q["res"] / (TARGETS["migration"] - 1)
            if small < need:
                note = (f"whole ms: {q['res']:g} ms resolution cannot show a "
                        f"{TARGETS['migration'] - 1:.0%} difference below "
                        f"{need:.0f} ms (measured from {small:g} ms)")
            t.append(target(f"migration-{m[:-3]}", f"migration {name} spm/pc-dimm",
                            q, TARGETS["migration"], True, note))
    return t
# --- QEMU through QEMU's own launcher -------------------------------------------

class Qemu(QEMUMachine):
    """QEMU's machine launcher (qemu.machine.QEMUMachine) whose QMP chardev
    connects to a socket that the launcher listens on (accepted within
    `timeout` seconds), and with qtest=True a qtest chardev that connects
    to QEMU's qtest client (self.qtest, QEMUQtestProtocol) the same way:
    no polling. QEMU's stdout and stderr go to LOGS/NAME.log. `ready` is the
    time from launch() (which forks QEMU) to the end of the first
    query-memory-devices, `devices` its answer."""

    def __init__(self, args, name, logs, qtest=False, timeout=120):
        self.tmp = tempfile.TemporaryDirectory(prefix="spm-bench.")
        super().__init__(QEMU, args, name=name, log_dir=logs,
                         monitor_address=os.path.join(self.tmp.name, "qmp.sock"),
                         qmp_timer=timeout)
        self.qtest = None
        if qtest:
            path = os.path.join(self.tmp.name, "qtest.sock")
            self.qtest = QEMUQtestProtocol(path, server=True)
            self.qtest.settimeout(timeout)
            self.add_args("-qtest", f"unix:{path}", "-qtest-log", "/dev/null")
        t0 = time.perf_counter()
        try:
            self.launch()
            if qtest:
                self.qtest.accept()
                self.qtest.settimeout(timeout)
            self.devices = self.cmd("query-memory-devices")
        except Exception as e:
            self.quit()
            raise RuntimeError(f"QEMU did not come up ({logs}/{name}.log): "
                               f"{e}") from e
        self.ready = time.perf_counter() - t0

    def status(self):
        out = {}
        with open(f"/proc/{self.get_pid()}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def quit(self):
        """QMP quit (QEMUMachine.shutdown: killed if it has not exited 30 s
        later, and then AbnormalShutdown is raised)."""
        try:
            self.shutdown()
        finally:
            if self.qtest:
                self.qtest.close()
            self.tmp.cleanup()


DEVMEM = 0x100000000          # device memory starts at 4 GiB with 1 GiB of RAM


def numa_args(ram="1G", initiator=False):
    init = ",initiator=0" if initiator else ""
    return ["-object", f"memory-backend-ram,id=ram0,size={ram}",
            "-numa", f"node,nodeid=0,memdev=ram0,cpus=0-1{init}",
            "-numa", f"node,nodeid=1{init}"]


GAP_MIB = 128                 # what automatic spm-memory placement leaves
                              # after each device without an HMAT (one block)


def layout(kind, n, size_mib):
    """The addresses the start-up kinds' devices must get: back to back from
    the start of device memory ("spm-packed", "dimm"), or with GAP_MIB after
    each device ("spm" without an HMAT, "dimm-gap" by explicit addr=)."""
    step = size_mib + (GAP_MIB if kind in ("spm", "dimm-gap") else 0)
    return [DEVMEM + i * step * MiB for i in range(n)]


def devices(kind, n, size_mib, node=1, prefix="b"):
    """n devices of one kind. "spm" and "spm-packed" are both placed by the
    device (packed only on a machine with an HMAT); "dimm-gap": pc-dimms at
    explicit addresses with the gaps of automatic spm-memory placement."""
    args = []
    addrs = layout(kind, n, size_mib)
    for i in range(n):
        args += ["-object", f"memory-backend-ram,id={prefix}{i},size={size_mib}M"]
        if kind in ("spm", "spm-packed"):
            args += ["-device", f"spm-memory,id=spm{i},memdev={prefix}{i},node={node}"]
        elif kind == "dimm-gap":
            args += ["-device", f"pc-dimm,id=dimm{i},memdev={prefix}{i},"
                     f"node={node},addr={addrs[i]:#x}"]
        else:
            args += ["-device", f"pc-dimm,id=dimm{i},memdev={prefix}{i},node={node}"]
    return args


def maxmem_mib(n, size_mib, ram_mib=1024):
    # automatic spm-memory placement leaves GAP_MIB after each device
    return ram_mib + n * (size_mib + GAP_MIB)


# --- 1. start-up time and RSS ------------------------------------------------

def bench_startup(cfg, log):
    counts = cfg["startup_counts"]
    samples = {(k, n): [] for n in counts for k in KINDS}

    def one(kind, n):
        packed = kind == "spm-packed"
        args = ["-M", "q35,hmat=on" if packed else "q35", "-accel", "tcg",
                "-cpu", "max", "-smp", "2",
                "-m", f"1G,slots={n},maxmem={maxmem_mib(n, 128)}M",
                *numa_args(initiator=packed), *devices(kind, n, 128),
                "-nodefaults", "-display", "none", "-S"]
        q = Qemu(args, f"startup-{kind}-{n}", cfg["logs"])
        try:
            typ = "spm-memory" if kind.startswith("spm") else "dimm"
            devs = [d["data"] for d in q.devices if d["type"] == typ]
            if len(devs) != n:
                raise RuntimeError(f"{kind} x{n}: query-memory-devices shows {len(devs)}")
            # the layout the comparison rests on; for "spm" and "spm-packed"
            # the device's placement rule (gap without an HMAT, packed with)
            addrs = sorted(d["memaddr" if typ == "spm-memory" else "addr"]
                           for d in devs)
            want = layout(kind, n, 128)
            if addrs != want:
                rule = ("back to back" if kind in ("spm-packed", "dimm")
                        else f"{GAP_MIB} MiB free after each device")
                if packed:
                    rule += " (automatic placement with an HMAT)"
                bad = next(i for i, (x, y) in enumerate(zip(addrs, want)) if x != y)
                raise RuntimeError(f"{kind} x{n}: device {bad} at {addrs[bad]:#x}, "
                                   f"expected {want[bad]:#x}: not {rule}")
            st = q.status()
        finally:
            q.quit()
        return {"time": q.ready, "rss": st["VmRSS"], "hwm": st["VmHWM"]}

    for kind in KINDS:                         # warm-up (page cache), dropped
        one(kind, 1)
    reps = cfg["startup_reps"]
    for rep in range(reps):
        for j, n in enumerate(counts):
            s = (rep + j) % len(KINDS)         # rotate the order of the kinds
            for kind in KINDS[s:] + KINDS[:s]:
                samples[(kind, n)].append(one(kind, n))
        if (rep + 1) % max(1, reps // 4) == 0:
            log(f"  startup: repetition {rep + 1}/{reps} done")

    res = {"counts": counts, "kinds": KINDS, "reps": reps, "rows": [],
           "gap_mib": GAP_MIB, "descriptive": [f"{a}/{b}" for a, b in DESCRIPTIVE]}
    for n in counts:
        row = {"n": n, "kinds": {}, "ratios": {}, "diffs": {}}
        for kind in KINDS:
            row["kinds"][kind] = {m: stats([s[m] for s in samples[(kind, n)]])
                                  for m in ("time", "rss", "hwm")}
        for a, b in PAIRS:
            sa, sb = samples[(a, n)], samples[(b, n)]
            row["ratios"][f"{a}/{b}"] = {
                m: paired([s[m] for s in sa], [s[m] for s in sb])
                for m in ("time", "rss", "hwm")}
            # what the difference costs in bytes: a - b per repetition
            row["diffs"][f"{a}/{b}"] = {
                m: stats([x[m] - y[m] for x, y in zip(sa, sb)])
                for m in ("rss", "hwm")}
        res["rows"].append(row)
    res["samples"] = {f"{k}-{n}": v for (k, n), v in samples.items()}
    return res


# --- 2. guest bandwidth --------------------------------------------------------

BENCH_ROUND = re.compile(r"spmtool: bench round=(\d+) spm_write=([\d.]+) "
                         r"spm_read=([\d.]+) ram_write=([\d.]+) ram_read=([\d.]+)")
BENCH_HEAD = re.compile(r"spmtool: bench target=(\S+) bytes=(\d+) spm_node=(-?\d+) "
                        r"ram_node=(-?\d+)")


def bench_bandwidth(cfg, log):
    res = {"mib": cfg["bw_mib"], "rounds": cfg["bw_rounds"], "kernels": []}
    dev_mib = max(256, 2 * cfg["bw_mib"])
    for kernel in spmguest.KERNELS:
        args = ["-M", "q35", "-m", f"1G,maxmem={1024 + dev_mib}M", *numa_args(),
                *devices("spm", 1, dev_mib)]
        glog = os.path.join(cfg["logs"], f"bandwidth-{kernel}.log")
        spmguest.boot(args, kernel=kernel, log=glog, timeout=900,
                      append=f"spm.bench={cfg['bw_mib']}:{cfg['bw_rounds']}")
        with open(glog, errors="replace") as f:
            text = f.read()
        head = BENCH_HEAD.search(text)
        rounds = [tuple(float(x) for x in m.groups()[1:])
                  for m in BENCH_ROUND.finditer(text)]
        if not head or len(rounds) != cfg["bw_rounds"]:
            raise RuntimeError(f"no complete spmtool bench output in {glog}")
        k = {"kernel": kernel, "driver": spmguest.DRIVER.get(kernel),
             "target": head.group(1),
             "spm_node": int(head.group(3)), "ram_node": int(head.group(4))}
        for i, name in enumerate(("spm_write", "spm_read", "ram_write", "ram_read")):
            k[name] = stats([r[i] for r in rounds])
        # per-round ratios (SPM and RAM measured side by side): host load
        # drift between rounds cancels out
        k["ratio_write"] = paired([r[0] for r in rounds], [r[2] for r in rounds])
        k["ratio_read"] = paired([r[1] for r in rounds], [r[3] for r in rounds])
        k["samples"] = rounds
        res["kernels"].append(k)
        log(f"  bandwidth: {kernel} done ({k['target']})")
    return res
# --- 3. migration --------------------------------------------------------------

FILLED = spmguest.FILLED
wait_migration = spmguest.wait_migration


def bench_migration(cfg, log):
    size, fill = cfg["mig_mib"], cfg["mig_fill"]

    def machine(kind):
        return ["-M", "q35", "-m", f"1G,slots=1,maxmem={1024 + size}M",
                *numa_args(), *devices(kind, 1, size)]

    def append(kind):
        a = f"spm.fill={fill} spm.fillevery=3600"
        return a + (" spm.fillnode=1" if kind == "dimm" else "")

    guests, checksums, seq, live = {}, {}, [0], []

    def start(kind, what, **kw):
        g = spmguest.Guest(machine(kind), glog(kind, what), kernel="6.12",
                           timeout=1800, **kw)
        live.append(g)
        return g

    def stop(g):
        live.remove(g)
        g.quit()

    samples, warmup = {"spm": [], "dimm": []}, {"spm": [], "dimm": []}

    def glog(kind, what):
        seq[0] += 1
        return os.path.join(cfg["logs"], f"migration-{kind}-{seq[0]:02d}-{what}.log")

    try:
        for kind in ("spm", "dimm"):
            g = start(kind, "boot", append=append(kind))
            guests[kind] = g
            g.qmp.cmd("cont")
            m, _ = g.wait_for(FILLED, timeout=900)
            if int(m.group(1)) != fill * MiB or int(m.group(3)) != 1:
                raise RuntimeError(f"{kind}: unexpected fill: {m.group(0)}")
            checksums[kind] = m.group(2)
            g.qmp.cmd("stop")
        if checksums["spm"] != checksums["dimm"]:
            raise RuntimeError("the two guests filled different data")
        # repetition -1 warms up: the first migration of a freshly booted
        # guest is slower than the later ones (of a migrated guest)
        socket_dir = tempfile.mkdtemp(prefix="spm-bench-")
        for rep in range(-1, cfg["mig_reps"]):
            order = ("spm", "dimm") if rep % 2 == 0 else ("dimm", "spm")
            for kind in order:
                src = guests[kind]
                uri = f"unix:{socket_dir}/migrate-{kind}-{rep + 1}.sock"
                dst = start(kind, "dst", incoming=uri)
                params = {"max-bandwidth": 1 << 40}
                if cfg["downtime_limit"]:
                    params["downtime-limit"] = cfg["downtime_limit"]
                src.qmp.cmd("migrate-set-parameters", **params)
                src.qmp.cmd("cont")
                time.sleep(1)
                src.qmp.cmd("migrate", uri=uri)
                info = wait_migration(src.qmp)
                if info["status"] != "completed":
                    raise RuntimeError(f"{kind}: migration {info['status']}: "
                                       f"{info.get('error-desc', '')}")
                dst_status = dst.qmp.cmd("query-status")["status"]
                deadline = time.time() + 60
                while dst_status != "running" and time.time() < deadline:
                    time.sleep(0.1)
                    dst_status = dst.qmp.cmd("query-status")["status"]
                if dst_status != "running":
                    raise RuntimeError(f"{kind}: destination is {dst_status}")
                dst.qmp.cmd("stop")
                stop(src)
                guests[kind] = dst
                ram = info.get("ram", {})
                (samples[kind] if rep >= 0 else warmup[kind]).append({
                    "total_ms": info["total-time"], "downtime_ms": info["downtime"],
                    "setup_ms": info.get("setup-time"),
                    "transferred": ram.get("transferred"),
                    "normal_pages": ram.get("normal"),
                    "duplicate_pages": ram.get("duplicate"),
                    "dirty_sync": ram.get("dirty-sync-count"),
                    "mbps": ram.get("mbps")})
            log(f"  migration: {'warm-up' if rep < 0 else 'repetition'} "
                f"{rep + 1}/{cfg['mig_reps']} done")
    finally:
        for g in list(live):
            stop(g)
    res = {"size_mib": size, "fill_mib": fill, "samples": samples,
           "downtime_limit": cfg["downtime_limit"],
           "warmup": warmup}
    for kind in ("spm", "dimm"):
        for m in ("total_ms", "downtime_ms", "transferred", "normal_pages",
              "mbps", "dirty_sync"):
            res[f"{kind}_{m}"] = stats([s[m] for s in samples[kind]])
    # per-repetition ratios; query-migrate gives whole ms: each figure is
    # known to 1 ms only
    for m in ("total_ms", "downtime_ms"):
        res[f"ratio_{m}"] = paired([s[m] for s in samples["spm"]],
                                   [s[m] for s in samples["dimm"]], res=1.0)
    return res


# --- 4. ACPI table build cost --------------------------------------------------

def bench_acpi(cfg, log):
    """All configurations run at once (idle qtest QEMUs) and are measured
    round-robin, so that drift of the host's load hits them alike."""
    counts, iters = cfg["acpi_counts"], cfg["acpi_iters"]
    top = max(counts)
    res = {"counts": counts, "iters": iters, "rows": []}
    vms = {}
    try:
        for n in counts:
            args = ["-M", "q35", "-accel", "qtest", "-smp", "2",
                    "-m", f"1G,maxmem={maxmem_mib(top, 128)}M",
                    *numa_args(), *devices("spm", n, 128),
                    "-nodefaults", "-display", "none"]
            q = Qemu(args, f"acpi-{n}", cfg["logs"], qtest=True)
            vms[n] = q
            got = sum(1 for d in q.devices if d["type"] == "spm-memory")
            if got != n:
                raise RuntimeError(f"acpi x{n}: query-memory-devices shows {got}")
            key, size = fwcfg.fw_cfg_files(q.qtest)["etc/acpi/tables"]
            tables = fwcfg.fw_cfg_read(q.qtest, key, size)
            q.acpi = {"key": key, "first": [], "second": [], "build": [],
                      "srat_entries": len(fwcfg.srat_memory(tables) or []),
                      "tables_bytes": fwcfg.acpi_length(tables)}
        warmup = 3
        for it in range(warmup + iters):
            for n in counts:
                q, a = vms[n], vms[n].acpi
                q.cmd("system_reset")
                q.event_wait("RESET", timeout=120.0)
                dt = []
                for _ in range(2):
                    fwcfg.fw_cfg_dma_setup(q.qtest, a["key"], 4)
                    t = time.perf_counter()
                    fwcfg.fw_cfg_dma_go(q.qtest)
                    dt.append(time.perf_counter() - t)
                if it >= warmup:
                    a["first"].append(dt[0])
                    a["second"].append(dt[1])
                    a["build"].append(dt[0] - dt[1])
            if (it + 1 - warmup) % max(1, iters // 4) == 0 and it >= warmup:
                log(f"  acpi: {it + 1 - warmup}/{iters} rebuilds per configuration")
    finally:
        for q in vms.values():
            q.quit()
    for n in counts:
        a = vms[n].acpi
        res["rows"].append({"n": n, "first": stats(a["first"]),
                            "second": stats(a["second"]),
                            "build_stats": stats(a["build"]),
                            "build": statistics.median(a["build"]),
                            "srat_entries": a["srat_entries"],
                            "tables_bytes": a["tables_bytes"]})
    rows = res["rows"]
    for a, b in zip(rows, rows[1:]):
        b["per_device"] = (b["build"] - a["build"]) / (b["n"] - a["n"])
    # least-squares fits of a + b*f(n), f(n) = n and n*log2(n)
    ys = [r["build"] for r in rows]
    for model, f in (("linear", lambda n: n),
                     ("nlogn", lambda n: n * math.log2(n) if n > 1 else 0)):
        xs = [f(r["n"]) for r in rows]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0
        a = my - b * mx
        rms = math.sqrt(statistics.mean((y - a - b * x) ** 2 for x, y in zip(xs, ys)))
        res[model] = {"a": a, "b": b, "rms": rms}
    return res




# --- main ----------------------------------------------------------------------

def machine_info():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) * 1024
    ver = subprocess.run([QEMU, "-version"], capture_output=True,
                         text=True).stdout.splitlines()[0]
    return {"date": datetime.datetime.now(datetime.timezone.utc)
                    .strftime("%Y-%m-%d %H:%M:%S UTC"),
            "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": mem / GiB,
            "kernel": platform.release(), "qemu": ver,
            "qemu_path": os.path.relpath(QEMU, ROOT),
            "load_start": os.getloadavg()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--reps", type=int, default=7,
                    help="repetitions of each measurement (default 7)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny run to validate the script (overrides --reps)")
    ap.add_argument("--out", default=os.path.join(BUILD, "bench"),
                    help="output directory (default $BUILD/bench)")
    ap.add_argument("--downtime-limit", type=int, default=20, metavar="MS",
                    help="migration downtime-limit in ms (default 20; 0: "
                         "QEMU's default, 300)")
    ap.add_argument("--only", default=",".join(SECTIONS),
                    help=f"comma list of sections (default {','.join(SECTIONS)})")
    a = ap.parse_args()
    only = [s for s in a.only.split(",") if s]
    bad = [s for s in only if s not in SECTIONS]
    if bad or a.reps < 1:
        ap.error(f"unknown section(s) {bad}" if bad else "--reps must be >= 1")
    if not os.access(QEMU, os.X_OK):
        print(f"spm_bench: no QEMU binary at {QEMU}", file=sys.stderr)
        return 2

    reps = 2 if a.quick else a.reps
    cfg = {"quick": a.quick, "reps": reps, "sections": only,
           "logs": os.path.join(a.out, "logs"),
           "startup_counts": [1, 16, 64],
           "startup_reps": 5 * reps,
           "bw_mib": 32 if a.quick else 256,
           "bw_rounds": 3 if a.quick else max(10, 3 * reps),
           "mig_mib": 256 if a.quick else 1024,
           "mig_fill": 192 if a.quick else 896,
           "mig_reps": 1 if a.quick else reps,
           "downtime_limit": a.downtime_limit,
           "acpi_counts": [0, 16, 64, 128, 256],
           "acpi_iters": 20 if a.quick else 30 * reps,
           "targets": TARGETS}
    os.makedirs(cfg["logs"], exist_ok=True)
    info = machine_info()
    t_start = time.time()

    def log(msg):
        print(f"[{time.time() - t_start:6.0f}s] {msg}", flush=True)

    log(f"spm_bench: {', '.join(only)}; repetitions {reps}; output {a.out}")
    results, errors = {}, {}
    funcs = {"startup": bench_startup, "bandwidth": bench_bandwidth,
             "migration": bench_migration, "acpi": bench_acpi}
    for sec in SECTIONS:
        if sec not in only:
            continue
        log(f"{sec} ...")
        try:
            results[sec] = funcs[sec](cfg, log)
        except Exception as e:               # record, go on with the rest
            traceback.print_exc()
            errors[sec] = f"{type(e).__name__}: {e}"
            log(f"{sec} FAILED: {errors[sec]}")
    info["load_end"] = os.getloadavg()
    info["duration_s"] = time.time() - t_start

    path = os.path.join(a.out, "bench.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"info": info, "config": cfg, "results": results,
                   "targets": collect_targets(results), "errors": errors},
                  f, indent=1)
    os.replace(path + ".tmp", path)
    log(f"wrote {path}")
    if errors:
        print(f"not measured: {', '.join(errors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
