#!/usr/bin/env python3
"""Randomized spm-memory configurations against the built QEMU.

    spm_fuzz.py [--seed N] [--count N] [--time-limit SECONDS] [--qemu PATH]

Draws machine types, RAM and maxmem, NUMA nodes, pc-dimms and up to four
spm-memory devices with backends of every kind (ram, memfd, file; share,
prealloc), sizes, nodes and addresses (none, valid, misaligned,
overlapping, adjacent, out of range, memdev missing or reused). Every case
must either start, with query-memory-devices, etc/e820 and the SRAT agreeing
with each other, or exit with status 1 and an error message. A crash, an
abort, a hang (timeout) or a disagreement is a failure; its command line is
printed. The draw depends only on the seed, so failures can be replayed.
"""
import argparse
import collections
import json
import os
import random
import re
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time

MiB, GiB = 1 << 20, 1 << 30
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from spmguest import Qtest  # noqa: E402
QEMU = os.path.join(os.environ.get("BUILD", os.path.join(ROOT, "build")),
                    "qemu-build", "qemu-system-x86_64")
ALIGN = 128 * MiB
SOFT_RESERVED = 0xefffffff
TIMEOUT = 30


class Case:
    """One drawn configuration, and what the oracle needs to know of it."""

    def __init__(self, rng, tmpdir):
        self.args = ["-display", "none", "-nodefaults", "-S"]
        self.machine = rng.choices(["q35", "pc", "microvm"], [45, 45, 10])[0]
        ram = rng.choice([512, 1024])
        self.ram = ram * MiB
        self.maxmem = None if rng.random() < 0.1 else \
            self.ram + rng.choice([512, 1024, 2048, 4096, 8192]) * MiB
        self.dimms = rng.choice([0, 0, 0, 1])
        mem = f"{ram}M"
        if self.maxmem:
            mem += f",maxmem={self.maxmem // MiB}M"
            if self.dimms:
                mem += ",slots=2"
        self.args += ["-M", self.machine, "-m", mem]
        self.nodes = rng.choices([0, 1, 2, 3, 4], [15, 15, 30, 25, 15])[0]
        if self.nodes:
            self.args += ["-object", f"memory-backend-ram,id=ram0,size={ram}M",
                          "-numa", "node,nodeid=0,memdev=ram0"]
            for n in range(1, self.nodes):
                self.args += ["-numa", f"node,nodeid={n}"]
        for i in range(self.dimms):
            self.args += ["-object", f"memory-backend-ram,id=dimmmem{i},size=256M",
                          "-device", f"pc-dimm,id=dimm{i},memdev=dimmmem{i}"]
        base = 1 << 32     # device memory at 4 GiB with at most 1 GiB of RAM
        end = base + (self.maxmem or self.ram) - self.ram
        self.spm = []      # (id, size, node, addr or None)
        backends = []
        for i in range(rng.choices([0, 1, 2, 3, 4], [10, 35, 30, 15, 10])[0]):
            size = rng.choices([128, 256, 512, 1024, 384, 100, 192],
                               [20, 25, 20, 10, 10, 8, 7])[0] * MiB
            kind = rng.choice(["ram", "memfd", "file", "ram-share",
                               "ram-prealloc", "file-share"])
            if kind == "ram-prealloc" and size > 256 * MiB:
                size = 256 * MiB
            memdev = f"hbm{i}"
            obj = {"ram": "memory-backend-ram", "memfd": "memory-backend-memfd",
                   "file": "memory-backend-file"}[kind.split("-")[0]]
            opts = f"{obj},id={memdev},size={size // MiB}M"
            if kind.startswith("file"):
                opts += f",mem-path={tmpdir}/{memdev}"
            if kind.endswith("share"):
                opts += ",share=on"
            if kind.endswith("prealloc"):
                opts += ",prealloc=on"
            r = rng.random()
            if r < 0.04:
                memdev = "nope"                 # not found
            elif r < 0.07 and backends:
                memdev = rng.choice(backends)   # already in use
            elif r < 0.09:
                memdev = None                   # missing
            else:
                self.args += ["-object", opts]
                backends.append(memdev)
            node = rng.randrange(max(self.nodes, 1))
            if rng.random() < 0.05:
                node = max(self.nodes, 1)       # no such node
            r = rng.random()
            prev = [s for s in self.spm if s[3] is not None]
            if r < 0.55:
                addr = None
            elif r < 0.75:
                addr = base + rng.randrange(0, max((end - base) // ALIGN, 1)) * ALIGN
            elif r < 0.82:
                addr = base + rng.randrange(1, 1 << 12) * 4096 * 7
            elif r < 0.88 and prev:
                addr = prev[-1][3] + rng.choice([0, ALIGN])          # overlap
            elif r < 0.94 and prev:
                addr = prev[-1][3] + prev[-1][1]                     # adjacent
            else:
                addr = rng.choice([0x80000000, end, 1 << 46])        # outside
            dev = f"spm-memory,id=spm{i}"
            if memdev:
                dev += f",memdev={memdev}"
            dev += f",node={node}"
            if addr is not None:
                dev += f",addr={addr:#x}"
            self.args += ["-device", dev]
            self.spm.append((f"spm{i}", size, node, addr))

    def cmdline(self, qemu):
        return " ".join(shlex.quote(a) for a in [qemu] + self.args)


def srat_memory(tables):
    """Memory affinity entries of the SRAT in etc/acpi/tables, in order."""
    off = 0
    while off + 36 <= len(tables):
        sig, length = tables[off:off + 4], struct.unpack("<I", tables[off + 4:off + 8])[0]
        if length < 36:
            break
        if sig == b"SRAT":
            out, i = [], off + 48
            while i < off + length:
                typ, ln = tables[i], tables[i + 1]
                if typ == 1:
                    pxm, = struct.unpack("<I", tables[i + 2:i + 6])
                    base, size = struct.unpack("<QQ", tables[i + 8:i + 24])
                    flags, = struct.unpack("<I", tables[i + 28:i + 32])
                    out.append((base, size, pxm, flags))
                i += ln
            return out
        off += length
    return None


def check_started(case, qmp_devs, e820, srat):
    """The oracle: QMP, E820 and SRAT agree. Returns a problem or None."""
    spm = sorted((d["memaddr"], d["size"], d["node"]) for d in qmp_devs)
    if len(spm) != len(case.spm):
        return f"{len(case.spm)} devices given, {len(spm)} in query-memory-devices"
    for addr, size, node in spm:
        if addr % ALIGN or size % ALIGN:
            return f"device at {addr:#x} size {size:#x} not 128 MiB aligned"
    for (a, s, _), (b, _, _) in zip(spm, spm[1:]):
        if a + s >= b:
            return f"devices at {a:#x} and {b:#x} overlap or touch"
    soft = sorted((a, ln) for a, ln, t in e820 if t == SOFT_RESERVED)
    if soft != [(a, s) for a, s, _ in spm]:
        return f"E820 soft reserved {soft} != devices {spm}"
    # pc and q35 create one NUMA node by themselves when there is device
    # memory (auto_enable_numa_with_memhp); microvm has no SRAT
    nodes = case.nodes or (1 if case.maxmem else 0)
    if case.machine == "microvm":
        return None
    if nodes == 0:
        return None if srat is None else "SRAT without NUMA"
    if srat is None:
        return "no SRAT"
    if not spm and case.maxmem is None:
        return None
    dev = [e for e in srat if e[3] in (1, 3) and e[0] >= 1 << 32]
    ent = {(a, s, n, 1) for a, s, n in spm}
    if not ent <= set(dev):
        return f"SRAT {dev} lacks device entries {sorted(ent)}"
    for e in dev:
        if e not in ent and (e[2], e[3]) != (nodes - 1, 3):
            return f"SRAT entry {e} is neither a device nor hotpluggable at the last node"
    if dev != sorted(dev, key=lambda e: (e[2], e[0])):
        return f"SRAT device memory not in (node, address) order: {dev}"
    r = sorted((a, a + s) for a, s, _, _ in dev)
    for (_, e1), (s2, _) in zip(r, r[1:]):
        if e1 != s2:
            return f"SRAT device memory not contiguous: {r}"
    return None


def run_case(qemu, case, tmpdir):
    """Returns (outcome, detail): started | rejected | FAIL."""
    qmp_path = os.path.join(tmpdir, "qmp.sock")
    qt_path = os.path.join(tmpdir, "qtest.sock")
    for p in (qmp_path, qt_path):
        if os.path.exists(p):
            os.unlink(p)
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(qt_path)
    lsock.listen(1)
    lsock.settimeout(TIMEOUT)
    argv = [qemu, *case.args, "-accel", "qtest", "-qtest", f"unix:{qt_path}",
            "-qtest-log", "/dev/null",
            "-qmp", f"unix:{qmp_path},server=on,wait=off"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    conn = None

    def exited():
        """QEMU ended before it was up: it must have said why, status 1."""
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return "FAIL", "hang"
        err = err.decode(errors="replace")
        if proc.returncode == 1 and re.search(r"qemu-system-x86_64: .+", err):
            msg = err.strip().splitlines()[0]
            msg = re.sub(r"^qemu-system-x86_64: (-device [^:]*: )?", "", msg)
            return "rejected", msg
        return "FAIL", f"exit status {proc.returncode}: {err.strip()[:500]}"

    try:
        try:
            conn, _ = lsock.accept()
        except socket.timeout:
            return exited() if proc.poll() is not None else ("FAIL", "hang")
        conn.settimeout(TIMEOUT)
        qt = Qtest(conn)
        q = socket.socket(socket.AF_UNIX)
        q.settimeout(TIMEOUT)
        for _ in range(200):
            try:
                q.connect(qmp_path)
                break
            except OSError:
                if proc.poll() is not None:
                    return exited()
                time.sleep(0.05)
        qf = q.makefile("rw")

        def qmp(cmd):
            qf.write(json.dumps({"execute": cmd}) + "\n")
            qf.flush()
            while True:
                m = json.loads(qf.readline())
                if "return" in m or "error" in m:
                    return m.get("return")
        try:
            json.loads(qf.readline())       # greeting
            qmp("qmp_capabilities")
            devs = [d["data"] for d in qmp("query-memory-devices")
                    if d["type"] == "spm-memory"]
        except (OSError, ValueError):
            # the chardevs come up before the devices: QEMU may still fail
            return exited()
        if case.machine == "microvm":
            e820 = []
        else:
            raw = qt.fw_cfg_file("etc/e820") or b""
            e820 = [struct.unpack("<QQI", raw[i:i + 20])
                    for i in range(0, len(raw), 20)]
        tables = None if case.machine == "microvm" else qt.fw_cfg_file("etc/acpi/tables")
        srat = srat_memory(tables) if tables else None
        problem = check_started(case, devs, e820, srat)
        qmp("quit")
        q.close()
        proc.wait(timeout=TIMEOUT)
        if problem:
            return "FAIL", problem
        return "started", f"{len(devs)} device(s)"
    except (OSError, EOFError, ValueError, RuntimeError,
            subprocess.TimeoutExpired) as e:
        proc.kill()
        proc.wait()
        return "FAIL", f"{type(e).__name__}: {e}"
    finally:
        if conn:
            conn.close()
        lsock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=1800)
    ap.add_argument("--qemu", default=QEMU)
    ap.add_argument("--verbose", action="store_true",
                    help="print every case's outcome and command line")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    outcomes = collections.Counter()
    reasons = collections.Counter()
    failures = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmpdir:
        n = 0
        while n < args.count and time.time() - start < args.time_limit:
            case = Case(rng, tmpdir)
            outcome, detail = run_case(args.qemu, case, tmpdir)
            outcomes[outcome] += 1
            if args.verbose:
                print(f"case {n}: {outcome}: {detail}\n  "
                      f"{case.cmdline(args.qemu)}", flush=True)
            if outcome == "rejected":
                # group messages by their words, without the values
                reasons[re.sub(r"'[^']*'|0x[0-9a-f]+|\b\d+\b", "_", detail)] += 1
            elif outcome == "FAIL":
                failures.append((n, detail, case.cmdline(args.qemu)))
                print(f"FAIL case {n}: {detail}\n  {case.cmdline(args.qemu)}",
                      flush=True)
            n += 1
            for f in os.listdir(tmpdir):
                if f.startswith("hbm"):
                    os.unlink(os.path.join(tmpdir, f))
    secs = time.time() - start
    print(f"spm-memory fuzz: seed {args.seed}, {n} cases in {secs:.0f}s: "
          f"{outcomes['started']} started and agreed, "
          f"{outcomes['rejected']} rejected with exit status 1, "
          f"{outcomes['FAIL']} failed")
    for msg, count in reasons.most_common():
        print(f"  {count:5d}  {msg}")
    if n < args.count:
        print(f"(stopped by the time limit after {n} of {args.count} cases)")
    print(f"fuzz: {outcomes['started'] + outcomes['rejected']} passed, "
          f"{outcomes['FAIL']} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
