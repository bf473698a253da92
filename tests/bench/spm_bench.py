#!/usr/bin/env python3
"""spm-memory benchmarks: spm-memory against pc-dimm and against RAM.

    spm_bench.py [--reps N] [--quick] [--out DIR] [--only SECTIONS]
                 [--downtime-limit MS]

Measures, in one run, with the patched QEMU ($BUILD/qemu-build/
qemu-system-x86_64, TCG or qtest, never KVM), and writes DIR/bench.md (a
Markdown report with the date, the machine and every table), DIR/bench.svg
(the plot) and DIR/bench.json (every sample); consoles and QEMU logs go to
DIR/logs/. DIR defaults to $BUILD/bench.

1. startup   QEMU start to QMP-ready time and host RSS with 1, 16 and 64
             spm-memory devices against as many pc-dimm devices (128 MiB
             each, memory-backend-ram, on node 1 of 2; q35, TCG, -S, the
             same -m 1G,slots=N,maxmem=... for both). Time: from the fork
             of QEMU until query-memory-devices (answered only once the
             machine is initialized and the main loop runs) has returned;
             QEMU connects to our QMP socket, so no polling. RSS: VmRSS and
             VmHWM of the QEMU process right after that. Repetitions
             interleaved, the order of the two kinds alternating.
2. bandwidth Guest read and write bandwidth of spm-memory against node-0 RAM
             in the same guest ("spmtool bench", scripts/guest-spmtool.c,
             started by spm.bench= in scripts/guest-init.sh): 6.1 maps
             /dev/dax0.0, 6.12 binds anonymous memory to the spm-memory's
             node; the RAM buffer is anonymous memory bound to node 0. Each
             round times one 64-bit store pass and one load pass over each
             buffer, in 4 MiB chunks alternating between the two buffers,
             so that changes of the host's load hit both alike. Reported:
             MB/s per buffer and the median of the per-round ratios SPM/RAM.
             Under TCG only the ratio means something.
3. migration Live migration over loopback TCP (6.12 guest, 1 GiB node-0
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
             parameters QEMU's defaults. Reported: query-migrate
             "total-time" and "downtime" (whole ms) of the source.
4. acpi      ACPI table build cost with 0, 16, 64 (and 128, 256) spm-memory
             devices (q35, qtest accelerator, the same -m for all): after a
             system_reset (which marks the tables stale) the first fw_cfg
             DMA select of etc/acpi/tables rebuilds every ACPI table; the
             build cost is the time of that first select minus the time of
             a second select of the same item (no rebuild), median over the
             resets; all configurations run at once and are measured
             round-robin. Reported per configuration with SRAT memory
             entries and table size, the growth per device between
             configurations, and linear and n log n fits.

Targets (printed next to each ratio; benchmark figures, not tests):
spm/pc-dimm <= 1.02 for start-up time and RSS, <= 1.05 for migration time
and downtime; SPM bandwidth >= 0.95 of RAM. The script exits 0 when it
measured everything (whether or not the targets are met), 1 when a section
failed, 2 for usage errors.

--reps N (default 7) sets the repetitions of every section: start-up 5*N
launches per configuration (one takes about 50 ms), bandwidth 3*N rounds
(at least 10), migration N per kind after one warm-up, ACPI 30*N rebuilds
per configuration. --quick is a tiny run for validating the script (2
repetitions, small memory sizes, 1 migration per kind). --only takes a
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
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import spmguest  # noqa: E402  (sets BUILD in the environment)

BUILD = spmguest.BUILD
QEMU = os.environ.get("QEMU", os.path.join(BUILD, "qemu-build",
                                           "qemu-system-x86_64"))
MiB, GiB = 1 << 20, 1 << 30
SECTIONS = ["startup", "bandwidth", "migration", "acpi"]
TARGETS = {"startup": 1.02, "rss": 1.02, "migration": 1.05, "bandwidth": 0.95}


# --- statistics --------------------------------------------------------------

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


def ratio(a, b):
    return a["median"] / b["median"] if a and b and b["median"] else float("nan")


def fmt(s, digits=1, scale=1.0):
    """'median (min–max)' of a stats dict."""
    if not s:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return (f"{f.format(s['median'] * scale)} "
            f"({f.format(s['min'] * scale)}–{f.format(s['max'] * scale)})")


def verdict(value, target, upper=True):
    ok = value <= target if upper else value >= target
    return ("met" if ok else "NOT met"), ok


# --- QEMU with our own QMP (and qtest) sockets -------------------------------

class Qmp:
    """QMP over a socket QEMU connected to; keeps the events it skips."""

    def __init__(self, conn):
        self.sock = conn
        self.file = conn.makefile("rw")
        self.events = []
        json.loads(self.file.readline())              # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise EOFError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']}")
            self.events.append(msg)

    def wait_event(self, name):
        while True:
            for i, e in enumerate(self.events):
                if e.get("event") == name:
                    del self.events[i]
                    return e
            self.events.append(self._read())


Qtest = spmguest.Qtest


class Qemu:
    """A QEMU process whose QMP (and optionally qtest) chardev connects to
    sockets we listen on. `ready` is the time from fork to the end of the
    first query-memory-devices."""

    def __init__(self, args, log, qtest=False, timeout=120):
        self.tmp = tempfile.TemporaryDirectory(prefix="spm-bench.")
        qmp_path = os.path.join(self.tmp.name, "qmp.sock")
        listeners = {}
        for name in ["qmp"] + (["qtest"] if qtest else []):
            s = socket.socket(socket.AF_UNIX)
            s.bind(os.path.join(self.tmp.name, name + ".sock"))
            s.listen(1)
            s.settimeout(timeout)
            listeners[name] = s
        argv = [QEMU, *args, "-qmp", f"unix:{qmp_path}"]
        if qtest:
            argv += ["-qtest", "unix:" + os.path.join(self.tmp.name, "qtest.sock"),
                     "-qtest-log", "/dev/null"]
        self.log = open(log, "w")
        self.log.write(" ".join(argv) + "\n")
        self.log.flush()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        try:
            self.qtest = None
            if qtest:
                conn, _ = listeners["qtest"].accept()
                self.qtest = Qtest(conn)
            conn, _ = listeners["qmp"].accept()
            self.qmp = Qmp(conn)
            self.devices = self.qmp.cmd("query-memory-devices")
            self.ready = time.perf_counter() - t0
        except Exception:
            self.kill()
            self.log.close()
            self.tmp.cleanup()
            raise RuntimeError(f"QEMU did not come up, see {log}")
        finally:
            for s in listeners.values():
                s.close()

    def status(self):
        out = {}
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def quit(self):
        try:
            self.qmp.cmd("quit")
        except (OSError, RuntimeError, EOFError, ValueError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()
        self.tmp.cleanup()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def numa_args(ram="1G"):
    return ["-object", f"memory-backend-ram,id=ram0,size={ram}",
            "-numa", "node,nodeid=0,memdev=ram0,cpus=0-1",
            "-numa", "node,nodeid=1"]


def devices(kind, n, size_mib, node=1, prefix="b"):
    args = []
    for i in range(n):
        args += ["-object", f"memory-backend-ram,id={prefix}{i},size={size_mib}M"]
        if kind == "spm":
            args += ["-device", f"spm-memory,id=spm{i},memdev={prefix}{i},node={node}"]
        else:
            args += ["-device", f"pc-dimm,id=dimm{i},memdev={prefix}{i},node={node}"]
    return args


def maxmem_mib(n, size_mib, ram_mib=1024):
    # automatic spm-memory placement leaves 128 MiB after each device
    return ram_mib + n * (size_mib + 128)


# --- 1. start-up time and RSS ------------------------------------------------

def bench_startup(cfg, log):
    counts = cfg["startup_counts"]
    samples = {(k, n): [] for n in counts for k in ("spm", "dimm")}

    def one(kind, n):
        args = ["-M", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "2",
                "-m", f"1G,slots={n},maxmem={maxmem_mib(n, 128)}M",
                *numa_args(), *devices(kind, n, 128),
                "-nodefaults", "-display", "none", "-S"]
        q = Qemu(args, os.path.join(cfg["logs"], f"startup-{kind}-{n}.log"))
        try:
            typ = "spm-memory" if kind == "spm" else "dimm"
            got = sum(1 for d in q.devices if d["type"] == typ)
            if got != n:
                raise RuntimeError(f"{kind} x{n}: query-memory-devices shows {got}")
            st = q.status()
        finally:
            q.quit()
        return {"time": q.ready, "rss": st["VmRSS"], "hwm": st["VmHWM"]}

    one("spm", 1)                              # warm-up (page cache), dropped
    one("dimm", 1)
    reps = cfg["startup_reps"]
    for rep in range(reps):
        for n in counts:
            order = ("spm", "dimm") if (rep + n) % 2 == 0 else ("dimm", "spm")
            for kind in order:
                samples[(kind, n)].append(one(kind, n))
        if (rep + 1) % max(1, reps // 4) == 0:
            log(f"  startup: repetition {rep + 1}/{reps} done")

    res = {"counts": counts, "rows": []}
    for n in counts:
        row = {"n": n}
        for kind in ("spm", "dimm"):
            for m in ("time", "rss", "hwm"):
                row[f"{kind}_{m}"] = stats([s[m] for s in samples[(kind, n)]])
        for m in ("time", "rss", "hwm"):
            row[f"ratio_{m}"] = ratio(row[f"spm_{m}"], row[f"dimm_{m}"])
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
    for kernel in ("6.1", "6.12"):
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
        k = {"kernel": kernel, "target": head.group(1),
             "spm_node": int(head.group(3)), "ram_node": int(head.group(4))}
        for i, name in enumerate(("spm_write", "spm_read", "ram_write", "ram_read")):
            k[name] = stats([r[i] for r in rounds])
        # per-round ratios (SPM and RAM measured back to back): host load
        # drift between rounds cancels out; the median is the headline
        k["paired_write"] = stats([r[0] / r[2] for r in rounds])
        k["paired_read"] = stats([r[1] / r[3] for r in rounds])
        k["ratio_write"] = k["paired_write"]["median"]
        k["ratio_read"] = k["paired_read"]["median"]
        k["ratio_of_medians_write"] = ratio(k["spm_write"], k["ram_write"])
        k["ratio_of_medians_read"] = ratio(k["spm_read"], k["ram_read"])
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
    res["ratio_total"] = ratio(res["spm_total_ms"], res["dimm_total_ms"])
    res["ratio_downtime"] = ratio(res["spm_downtime_ms"], res["dimm_downtime_ms"])
    return res


# --- 4. ACPI table build cost --------------------------------------------------

def srat_memory_entries(tables):
    off = 0
    while off + 36 <= len(tables):
        sig = tables[off:off + 4]
        length = struct.unpack("<I", tables[off + 4:off + 8])[0]
        if length < 36:
            break
        if sig == b"SRAT":
            n, i = 0, off + 48
            while i < off + length:
                n += tables[i] == 1
                i += tables[i + 1]
            return n
        off += length
    return 0


def tables_length(tables):
    """Bytes of ACPI tables in the etc/acpi/tables blob (which is padded)."""
    off = 0
    while off + 8 <= len(tables):
        length = struct.unpack("<I", tables[off + 4:off + 8])[0]
        if length < 36 or not tables[off:off + 4].isalnum():
            break
        off += length
    return off


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
            q = Qemu(args, os.path.join(cfg["logs"], f"acpi-{n}.log"), qtest=True)
            vms[n] = q
            got = sum(1 for d in q.devices if d["type"] == "spm-memory")
            if got != n:
                raise RuntimeError(f"acpi x{n}: query-memory-devices shows {got}")
            key, size = q.qtest.fw_cfg_files()["etc/acpi/tables"]
            tables = q.qtest.fw_cfg_read(key, size)
            q.acpi = {"key": key, "first": [], "second": [], "build": [],
                      "srat_entries": srat_memory_entries(tables),
                      "tables_bytes": tables_length(tables)}
        warmup = 3
        for it in range(warmup + iters):
            for n in counts:
                q, a = vms[n], vms[n].acpi
                q.qmp.cmd("system_reset")
                q.qmp.wait_event("RESET")
                dt = []
                for _ in range(2):
                    q.qtest.dma_setup(a["key"], 4)
                    t = time.perf_counter()
                    q.qtest.dma_go()
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


# --- report ------------------------------------------------------------------

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
            "kernel": platform.release(), "qemu": ver, "qemu_path": QEMU,
            "load_start": os.getloadavg()}


def mark(value, target, upper=True):
    if value != value:                       # nan
        return "n/a"
    word, _ = verdict(value, target, upper)
    return f"**{value:.3f}** ({'≤' if upper else '≥'} {target}: {word})"


def write_markdown(path, info, cfg, results, errors, targets):
    L = []
    L.append("# spm-memory benchmarks\n")
    L.append(f"Run of `tests/bench/spm_bench.py` {'--quick ' if cfg['quick'] else ''}"
             f"(repetitions: {cfg['reps']}).\n")
    L.append("| | |\n|---|---|")
    L.append(f"| date | {info['date']} |")
    L.append(f"| machine | {info['nproc']} CPUs, {info['cpu']}, "
             f"{info['ram_gib']:.1f} GiB RAM, Linux {info['kernel']} |")
    L.append(f"| QEMU | {info['qemu']} (`{os.path.relpath(info['qemu_path'], ROOT)}`), "
             "TCG / qtest |")
    la, lb = info["load_start"], info.get("load_end", (float("nan"),) * 3)
    L.append(f"| load average | {la[0]:.2f} at start, {lb[0]:.2f} at end "
             "(numbers are only comparable on an idle machine) |")
    L.append(f"| duration | {info.get('duration_s', 0):.0f} s |")
    L.append("")
    L.append("Values: median (min–max) over the repetitions; ratio = ratio of "
             "the medians.\n")

    r = results.get("startup")
    if r:
        L.append("## 1. Start-up time and host RSS: spm-memory vs pc-dimm\n")
        L.append("QEMU start to QMP ready (fork until `query-memory-devices` "
                 "returned, machine initialized, `-S`), then VmRSS/VmHWM of "
                 "the QEMU process. q35, TCG, 2 NUMA nodes, devices of 128 MiB "
                 "(memory-backend-ram) on node 1, `-m 1G,slots=N,maxmem=…` "
                 f"identical for both kinds; {cfg['startup_reps']} interleaved "
                 "launches per configuration.\n")
        L.append("| devices | start-up spm (ms) | start-up pc-dimm (ms) | ratio "
                 "| VmRSS spm (MiB) | VmRSS pc-dimm (MiB) | ratio "
                 "| VmHWM spm (MiB) | VmHWM pc-dimm (MiB) | ratio |")
        L.append("|---:|---:|---:|---|---:|---:|---|---:|---:|---|")
        for row in r["rows"]:
            L.append(f"| {row['n']} | {fmt(row['spm_time'], 1, 1e3)} "
                     f"| {fmt(row['dimm_time'], 1, 1e3)} "
                     f"| {mark(row['ratio_time'], TARGETS['startup'])} "
                     f"| {fmt(row['spm_rss'], 1, 1 / MiB)} | {fmt(row['dimm_rss'], 1, 1 / MiB)} "
                     f"| {mark(row['ratio_rss'], TARGETS['rss'])} "
                     f"| {fmt(row['spm_hwm'], 1, 1 / MiB)} | {fmt(row['dimm_hwm'], 1, 1 / MiB)} "
                     f"| {mark(row['ratio_hwm'], TARGETS['rss'])} |")
        L.append("")

    r = results.get("bandwidth")
    if r:
        L.append("## 2. Guest bandwidth: spm-memory vs node-0 RAM\n")
        L.append(f"`spmtool bench` in one guest: {r['mib']} MiB of spm-memory "
                 f"and {r['mib']} MiB of anonymous memory bound to node 0, "
                 f"{r['rounds']} rounds of one 64-bit store pass and one load "
                 "pass over each, in 4 MiB chunks alternating between the two "
                 "buffers. MB/s = 10^6 bytes/s of "
                 "guest time under TCG: only the ratio is meaningful. Ratio = "
                 "median of the per-round ratios SPM/RAM (both measured "
                 "side by side, so load drift between rounds cancels), with "
                 "their min–max.\n")
        L.append("| kernel | spm-memory as | write SPM | write RAM | ratio "
                 "| read SPM | read RAM | ratio |")
        L.append("|---|---|---:|---:|---|---:|---:|---|")
        for k in r["kernels"]:
            how = (f"`{k['target']}` mmap" if k["target"].startswith("/dev")
                   else f"memory of node {k['spm_node']} (kmem)")
            L.append(f"| {k['kernel']} | {how} | {fmt(k['spm_write'], 0)} "
                     f"| {fmt(k['ram_write'], 0)} "
                     f"| {mark(k['ratio_write'], TARGETS['bandwidth'], False)} "
                     f"({k['paired_write']['min']:.3f}–{k['paired_write']['max']:.3f}) "
                     f"| {fmt(k['spm_read'], 0)} | {fmt(k['ram_read'], 0)} "
                     f"| {mark(k['ratio_read'], TARGETS['bandwidth'], False)} "
                     f"({k['paired_read']['min']:.3f}–{k['paired_read']['max']:.3f}) |")
        L.append("")
        L.append("Ratios of the medians, for comparison: " + "; ".join(
            f"{k['kernel']} write {k['ratio_of_medians_write']:.3f}, read "
            f"{k['ratio_of_medians_read']:.3f}" for k in r["kernels"]) + ".\n")

    r = results.get("migration")
    if r:
        L.append("## 3. Live migration: 1 guest with spm-memory vs pc-dimm\n")
        L.append(f"Linux 6.12 guest, 1 GiB node-0 RAM plus {r['size_mib']} MiB of "
                 "spm-memory (or a pc-dimm of the same size) on node 1; the "
                 f"guest filled {r['fill_mib']} MiB of it with a pseudo-random "
                 "pattern (`spmtool fill`, the same data in both guests) and then "
                 "idles. Loopback TCP, max-bandwidth unlimited, downtime-limit "
                 f"{r['downtime_limit'] or 'QEMU default (300)'} ms; "
                 f"{len(r['samples']['spm'])} migration(s) per kind, "
                 "interleaved, after one unrecorded warm-up migration per kind "
                 "(each guest goes on from its last destination; the one not "
                 "being migrated is paused). Times from the source's "
                 "`query-migrate`.\n")
        L.append("| | spm-memory | pc-dimm | ratio spm/pc-dimm |")
        L.append("|---|---:|---:|---|")
        L.append(f"| total-time (ms) | {fmt(r['spm_total_ms'], 0)} | "
                 f"{fmt(r['dimm_total_ms'], 0)} | "
                 f"{mark(r['ratio_total'], TARGETS['migration'])} |")
        L.append(f"| downtime (ms) | {fmt(r['spm_downtime_ms'], 0)} | "
                 f"{fmt(r['dimm_downtime_ms'], 0)} | "
                 f"{mark(r['ratio_downtime'], TARGETS['migration'])} |")
        L.append(f"| transferred (MiB) | {fmt(r['spm_transferred'], 0, 1 / MiB)} | "
                 f"{fmt(r['dimm_transferred'], 0, 1 / MiB)} | |")
        L.append(f"| normal pages | {fmt(r['spm_normal_pages'], 0)} | "
                 f"{fmt(r['dimm_normal_pages'], 0)} | |")
        L.append(f"| throughput (Mbit/s) | {fmt(r['spm_mbps'], 0)} | "
                 f"{fmt(r['dimm_mbps'], 0)} | |")
        L.append(f"| dirty bitmap syncs | {fmt(r['spm_dirty_sync'], 0)} | "
                 f"{fmt(r['dimm_dirty_sync'], 0)} | |")
        L.append("")
        L.append("QEMU stops the guest as soon as the data left fits into "
                 "downtime-limit at the throughput it measured; with the low "
                 "limit the guest (idle) converges first and the downtime is "
                 "the final stop-and-copy (a few ms, reported in whole ms, so "
                 "its ratio is coarse); the total time follows the loopback "
                 "throughput, which the host's load moves.")
        L.append("")

    r = results.get("acpi")
    if r:
        L.append("## 4. ACPI table build cost vs number of spm-memory devices\n")
        L.append("q35, qtest accelerator, same `-m` for every configuration, "
                 "devices of 128 MiB on node 1. After `system_reset` the first "
                 "fw_cfg DMA select of `etc/acpi/tables` rebuilds all ACPI "
                 "tables; build = first select − second select (no rebuild) "
                 f"of the same reset, median (IQR) over {r['iters']} resets per "
                 "configuration; the configurations run side by side and are "
                 "measured round-robin.\n")
        L.append("| spm devices | SRAT memory entries | tables (bytes) "
                 "| first select (µs) | second select (µs) | build (µs), IQR "
                 "| growth per device (µs) |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        for row in r["rows"]:
            pd = row.get("per_device")
            L.append(f"| {row['n']} | {row['srat_entries']} | {row['tables_bytes']} "
                     f"| {fmt(row['first'], 0, 1e6)} | {fmt(row['second'], 0, 1e6)} "
                     f"| {row['build'] * 1e6:.0f} ({row['build_stats']['q1'] * 1e6:.0f}–"
                     f"{row['build_stats']['q3'] * 1e6:.0f}) "
                     f"| {'' if pd is None else f'{pd * 1e6:.2f}'} |")
        L.append("")
        lin, nl = r["linear"], r["nlogn"]
        L.append(f"Least-squares fits of the build time: linear "
                 f"{lin['a'] * 1e6:.0f} µs + {lin['b'] * 1e6:.2f} µs × n "
                 f"(RMS residual {lin['rms'] * 1e6:.0f} µs); n log n "
                 f"{nl['a'] * 1e6:.0f} µs + {nl['b'] * 1e6:.3f} µs × n·log2 n "
                 f"(RMS residual {nl['rms'] * 1e6:.0f} µs). A growth per device "
                 "that stays flat from one configuration to the next means "
                 "linear; n log n makes it rise slowly (by about log2 of the "
                 "ratio of the counts); quadratic would make it double with "
                 "the count.\n")

    L.append("## Targets\n")
    L.append("| ratio | value | target | |")
    L.append("|---|---:|---|---|")
    for name, value, target, upper in targets:
        w = "n/a" if value != value else verdict(value, target, upper)[0]
        L.append(f"| {name} | {value:.3f} | {'≤' if upper else '≥'} {target} | {w} |")
    L.append("")
    if errors:
        L.append("## Errors\n")
        for sec, err in errors.items():
            L.append(f"- {sec}: `{err}`")
        L.append("")
    L.append("Plot: `bench.svg`; every sample: `bench.json`.\n")
    with open(path, "w") as f:
        f.write("\n".join(L))


def collect_targets(results):
    t = []
    r = results.get("startup")
    if r:
        for row in r["rows"]:
            t.append((f"start-up time spm/pc-dimm, {row['n']} dev", row["ratio_time"],
                      TARGETS["startup"], True))
        for row in r["rows"]:
            t.append((f"VmRSS spm/pc-dimm, {row['n']} dev", row["ratio_rss"],
                      TARGETS["rss"], True))
    r = results.get("bandwidth")
    if r:
        for k in r["kernels"]:
            t.append((f"write bandwidth SPM/RAM, {k['kernel']}", k["ratio_write"],
                      TARGETS["bandwidth"], False))
            t.append((f"read bandwidth SPM/RAM, {k['kernel']}", k["ratio_read"],
                      TARGETS["bandwidth"], False))
    r = results.get("migration")
    if r:
        t.append(("migration total-time spm/pc-dimm", r["ratio_total"],
                  TARGETS["migration"], True))
        t.append(("migration downtime spm/pc-dimm", r["ratio_downtime"],
                  TARGETS["migration"], True))
    return t


# --- plot (SVG by hand: stdlib only) -------------------------------------------

def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Svg:
    def __init__(self, w, h):
        self.w, self.h, self.items = w, h, []

    def add(self, s):
        self.items.append(s)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", fill="#222"):
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" '
                 f'text-anchor="{anchor}" font-weight="{weight}" fill="{fill}">'
                 f'{esc(s)}</text>')

    def line(self, x1, y1, x2, y2, color="#222", width=1, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                 f'stroke="{color}" stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, stroke="none"):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" '
                 f'height="{max(h, 0):.1f}" fill="{fill}" stroke="{stroke}"/>')

    def circle(self, x, y, r, fill):
        self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}"/>')

    def render(self):
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" '
                f'height="{self.h}" viewBox="0 0 {self.w} {self.h}" '
                'font-family="DejaVu Sans, Arial, sans-serif">\n'
                f'<rect width="{self.w}" height="{self.h}" fill="white"/>\n'
                + "\n".join(self.items) + "\n</svg>\n")


def nice_max(v):
    if v <= 0:
        return 1
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def line_panel(svg, x0, y0, w, h, title, ylabel, series, xs, xlabel="devices",
               connect=True, numeric=False):
    """series: [(label, color, [stats dict per x], scale)]; numeric: x
    positions proportional to the values of xs (else evenly spaced)"""
    svg.text(x0 + w / 2, y0 - 8, title, 13, "middle", "bold")
    px, py, pw, ph = x0 + 55, y0 + 5, w - 70, h - 45
    top = nice_max(max(s["max"] * sc for _, _, ss, sc in series for s in ss if s))
    svg.line(px, py + ph, px + pw, py + ph)
    svg.line(px, py, px, py + ph)
    for i in range(6):
        v = top * i / 5
        y = py + ph - ph * i / 5
        svg.line(px - 4, y, px, y)
        svg.line(px, y, px + pw, y, "#ddd", 0.5)
        svg.text(px - 6, y + 4, f"{v:g}", 10, "end")
    svg.add(f'<text transform="translate({x0 + 10:.1f},{py + ph / 2:.1f}) rotate(-90)" '
            f'font-size="11" text-anchor="middle">{esc(ylabel)}</text>')
    n = len(xs)

    def xpos(i):
        if numeric:
            return px + pw * (0.05 + 0.9 * xs[i] / max(max(xs), 1))
        return px + pw * (i + 0.5) / n
    for i, xv in enumerate(xs):
        svg.text(xpos(i), py + ph + 16, str(xv), 10, "middle")
    svg.text(px + pw / 2, py + ph + 32, xlabel, 11, "middle")
    for j, (label, color, ss, sc) in enumerate(series):
        off = (j - (len(series) - 1) / 2) * 8
        pts = []
        for i, s in enumerate(ss):
            if not s:
                continue
            x = xpos(i) + off
            y = py + ph - ph * s["median"] * sc / top
            svg.line(x, py + ph - ph * s["min"] * sc / top, x,
                     py + ph - ph * s["max"] * sc / top, color, 1.5)
            svg.circle(x, y, 3.5, color)
            pts.append((x, y))
        if connect and len(pts) > 1:
            svg.add('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>'
                    % (color, " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)))
        svg.rect(px + 8, py + 6 + j * 16, 10, 10, color)
        svg.text(px + 22, py + 15 + j * 16, label, 11)


def ratio_panel(svg, x0, y0, w, targets):
    svg.text(x0 + w / 2, y0 - 8, "Ratios against targets (green: met, red: not met)",
             13, "middle", "bold")
    lw = 270
    px, pw = x0 + lw, w - lw - 70
    lo, hi = 0.8, 1.2
    vals = [v for _, v, _, _ in targets if v == v]
    if vals:       # widen to the values, but not beyond 0.5-1.5 (clipped)
        lo = max(0.5, min(lo, min(vals) - 0.02))
        hi = min(1.5, max(hi, max(vals) + 0.02))

    def xpos(v):
        return px + pw * (min(max(v, lo), hi) - lo) / (hi - lo)
    rowh = 18
    for i, (name, value, target, upper) in enumerate(targets):
        y = y0 + 8 + i * rowh
        svg.text(px - 8, y + 12, name, 11, "end")
        if value == value:
            ok = verdict(value, target, upper)[1]
            color = "#3a9d4a" if ok else "#d0453b"
            a, b = sorted((xpos(1.0), xpos(value)))
            svg.rect(a, y + 3, max(b - a, 1.5), rowh - 6, color)
            svg.text(xpos(hi) + 8, y + 12, f"{value:.3f}", 10)
        tx = xpos(target)
        svg.line(tx, y + 1, tx, y + rowh - 1, "#222", 2)
    ybot = y0 + 8 + len(targets) * rowh
    svg.line(xpos(1.0), y0 + 4, xpos(1.0), ybot, "#888", 1, "3,3")
    steps = 8
    for i in range(steps + 1):
        v = lo + (hi - lo) * i / steps
        svg.line(xpos(v), ybot, xpos(v), ybot + 4)
        svg.text(xpos(v), ybot + 15, f"{v:.2f}", 10, "middle")
    svg.text(px + pw / 2, ybot + 30, "ratio (black tick: target; bars clipped "
             "to the axis)", 11, "middle")
    return ybot + 40


def write_svg(path, info, results, targets):
    W = 1000
    panels = []
    r = results.get("startup")
    if r:
        xs = [row["n"] for row in r["rows"]]
        panels.append(("Start-up to QMP ready", "ms", [
            ("spm-memory", "#1f77b4", [row["spm_time"] for row in r["rows"]], 1e3),
            ("pc-dimm", "#ff7f0e", [row["dimm_time"] for row in r["rows"]], 1e3)], xs))
        panels.append(("Host VmRSS after start-up", "MiB", [
            ("spm-memory", "#1f77b4", [row["spm_rss"] for row in r["rows"]], 1 / MiB),
            ("pc-dimm", "#ff7f0e", [row["dimm_rss"] for row in r["rows"]], 1 / MiB)], xs))
    r = results.get("acpi")
    if r:
        xs = [row["n"] for row in r["rows"]]
        builds = [{"median": row["build"], "min": row["build_stats"]["q1"],
                   "max": row["build_stats"]["q3"]} for row in r["rows"]]
        panels.append(("ACPI table build (first − second select, IQR)", "µs", [
            ("build", "#2ca02c", builds, 1e6)], xs,
            "spm-memory devices (linear axis)", True, True))
    r = results.get("migration")
    if r:
        panels.append(("Migration total-time / downtime", "ms", [
            ("spm-memory", "#1f77b4", [r["spm_total_ms"], r["spm_downtime_ms"]], 1),
            ("pc-dimm", "#ff7f0e", [r["dimm_total_ms"], r["dimm_downtime_ms"]], 1)],
            ["total-time", "downtime"], "", False))
    ph = 240
    rows = (len(panels) + 1) // 2
    ratio_h = 80 + 18 * len(targets)
    H = 60 + rows * (ph + 40) + ratio_h
    svg = Svg(W, H)
    svg.text(W / 2, 24, f"spm-memory benchmarks — {info['date']}", 16, "middle", "bold")
    svg.text(W / 2, 42, f"{info['nproc']} CPUs, {info['cpu']}, {info['ram_gib']:.0f} GiB; "
             f"{info['qemu']}; load {info['load_start'][0]:.1f}", 11, "middle")
    for i, (title, ylabel, series, xs, *more) in enumerate(panels):
        x0 = 10 + (i % 2) * (W / 2)
        y0 = 75 + (i // 2) * (ph + 40)
        line_panel(svg, x0, y0, W / 2 - 20, ph, title, ylabel, series, xs, *more)
    if targets:
        ratio_panel(svg, 10, 75 + rows * (ph + 40), W - 20, targets)
    with open(path, "w") as f:
        f.write(svg.render())


# --- main ----------------------------------------------------------------------

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
    cfg = {"quick": a.quick, "reps": reps,
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
           "acpi_iters": 20 if a.quick else 30 * reps}
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
        except Exception as e:               # report, go on with the rest
            traceback.print_exc()
            errors[sec] = f"{type(e).__name__}: {e}"
            log(f"{sec} FAILED: {errors[sec]}")
    info["load_end"] = os.getloadavg()
    info["duration_s"] = time.time() - t_start
    targets = collect_targets(results)

    md = os.path.join(a.out, "bench.md")
    write_markdown(md, info, cfg, results, errors, targets)
    write_svg(os.path.join(a.out, "bench.svg"), info, results, targets)
    with open(os.path.join(a.out, "bench.json"), "w") as f:
        json.dump({"info": info, "config": cfg, "results": results,
                   "errors": errors}, f, indent=1, default=str)

    log(f"wrote {md}, bench.svg, bench.json")
    for name, value, target, upper in targets:
        w = "n/a" if value != value else verdict(value, target, upper)[0]
        print(f"  {name:42s} {value:7.3f}  {'<=' if upper else '>='} {target}  {w}")
    met = sum(1 for _, v, t, u in targets if v == v and verdict(v, t, u)[1])
    print(f"targets met: {met} of {len(targets)}")
    if errors:
        print(f"not measured: {', '.join(errors)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
