"""The host VM (L1): a Linux guest that plays a host with real
specific-purpose memory (/dev/dax0.0), a second NUMA node and hugepages,
and runs our QEMU inside itself as the host of a second-level VM (L2).

L1 boots Debian's 6.12 kernel (make guest-deps) with the initramfs of
guest/hostvm/mkinitramfs.sh (make hostvm), which holds our QEMU and
guest/hostvm/qtestfw.c; its /init (guest/hostvm/init.sh) runs a plan handed
over as the fw_cfg file opt/hostvm/plan and prints "key: value" lines:

    === HOSTVM BEGIN ===
    dax: name=dax0.0 start=0x100000000 ...
    === VARIANT NAME BEGIN ===
    e820: <hex>
    ...
    === VARIANT NAME END rc=N ms=N ===
    === HOSTVM END ===

Used by tests/hostvm and demo.host. Nothing here knows what the
values should be: the callers decide that from their own command lines
(E820 and SRAT bytes are decoded by spmtest.fwcfg).
"""
import os
import re
import subprocess
import tempfile
import time

from spmtest import build_dir, qemu_binary
from spmtest.guest import prepared_kernel

_U64 = (1 << 64) - 1
MiB, GiB = 1 << 20, 1 << 30

# L1: 2 GiB of RAM (all below 4 GiB) on nodes 0 and 1, and a 512 MiB
# spm-memory device on node 1; placed automatically at the start of device
# memory, 4 GiB, it becomes L1's /dev/dax0.0.
L1_SPM_ADDR, L1_SPM_SIZE, L1_SPM_NODE = 4 * GiB, 512 * MiB, 1
L1_ARGS = [
    "-accel", "tcg,thread=single", "-cpu", "max", "-M", "q35", "-smp", "2",
    "-m", "2G,maxmem=8G",
    "-object", "memory-backend-ram,id=m0,size=1536M",
    "-numa", "node,nodeid=0,memdev=m0,cpus=0-1",
    "-object", "memory-backend-ram,id=m1,size=512M",
    "-numa", "node,nodeid=1,memdev=m1",
    "-object", f"memory-backend-ram,id=hbm,size={L1_SPM_SIZE // MiB}M",
    "-device", f"spm-memory,id=spm0,memdev=hbm,node={L1_SPM_NODE}",
    "-no-reboot", "-nodefaults", "-display", "none", "-monitor", "none",
]
DAX = "/dev/dax0.0"


def initramfs():
    return os.path.join(build_dir(), "guest", "hostvm-initramfs.cpio.gz")


def boot(plan, log, timeout=600):
    """Boot L1 with `plan` (the text of opt/hostvm/plan); return (its parsed
    console, seconds). Raises RuntimeError if something is not prepared,
    QEMU fails or L1 does not finish its plan."""
    qemu, initrd = qemu_binary(), initramfs()
    for path, target in ((qemu, "make qemu"), (initrd, "make hostvm")):
        if not os.path.exists(path):
            raise RuntimeError(f"no {path}: run '{target}'")
    kernel, _ = prepared_kernel("6.12")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        plan_file = os.path.join(tmp, "plan")
        with open(plan_file, "w") as f:
            f.write(plan)
        cmd = [qemu, *L1_ARGS,
               "-fw_cfg", f"name=opt/hostvm/plan,file={plan_file}",
               "-kernel", kernel["VMLINUZ"], "-initrd", initrd,
               "-append", "console=ttyS0 panic=-1", "-serial", f"file:{log}"]
        start = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"L1 did not finish in {timeout} s; see {log}") from None
        secs = time.monotonic() - start
    with open(log, errors="replace") as f:
        report = parse_console(f.read())
    if r.returncode != 0:
        raise RuntimeError(f"L1's QEMU exited with {r.returncode}: {r.stderr}")
    if not report.complete:
        raise RuntimeError(f"L1 did not finish its plan; see {log}")
    return report, secs


class Section:
    """The "key: value" lines of one part of the console, in order."""

    def __init__(self):
        self.lines = []             # (key, value)

    def add(self, key, value):
        self.lines.append((key, value))

    def all(self, key):
        return [v for k, v in self.lines if k == key]

    def one(self, key):
        values = self.all(key)
        if len(values) != 1:
            raise AssertionError(f"expected one '{key}:' line, got {values}")
        return values[0]


class Report:
    """The console of one host VM boot: .host (its own lines), .variants
    (name -> Section, with .rc and .ms of its END marker), .complete."""

    def __init__(self):
        self.host = Section()
        self.variants = {}
        self.complete = False


_LINE = re.compile(r"^([A-Za-z0-9_-]+): ?(.*)$")
_BEGIN = re.compile(r"^=== VARIANT (\S+) BEGIN ===$")
_END = re.compile(r"^=== VARIANT (\S+) END rc=(\d+) ms=(\d+) ===$")


def parse_console(text):
    """Parse a host VM console log into a Report."""
    report = Report()
    started = False
    current = None
    for raw in text.replace("\r", "").split("\n"):
        line = raw.rstrip()
        if line == "=== HOSTVM BEGIN ===":
            started = True
            continue
        if not started:
            continue                # firmware and kernel boot messages
        if line == "=== HOSTVM END ===":
            report.complete = True
            break
        m = _BEGIN.match(line)
        if m:
            current = report.variants[m.group(1)] = Section()
            current.rc = current.ms = None
            continue
        m = _END.match(line)
        if m and current is not None:
            current.rc, current.ms = int(m.group(2)), int(m.group(3))
            current = None
            continue
        m = _LINE.match(line)
        if m:
            (current or report.host).add(m.group(1), m.group(2))
    return report


def fields(value):
    """"a=1 b=x" -> {"a": "1", "b": "x"}"""
    return dict(w.split("=", 1) for w in value.split() if "=" in w)


# --- the pattern qtestfw writes --------------------------------------------

def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def pattern(offset, length, seed):
    """The bytes qtestfw writes at device offset `offset`: the word at
    offset o is mix64(o ^ (seed << 48)), little-endian."""
    salt = (seed << 48) & _U64
    return b"".join(_mix64((offset + i) ^ salt).to_bytes(8, "little")
                    for i in range(0, length, 8))


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & _U64
    return h
