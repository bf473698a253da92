"""The host VM (L1): a Linux guest that plays a host with real
specific-purpose memory (/dev/dax0.0), a second NUMA node and hugepages,
and runs our QEMU inside itself as the host of a second-level VM (L2),
which the caller drives from here.

L1 boots Debian's 6.12 kernel (make guest-deps) under TCG with the
initramfs of guest/hostvm/mkinitramfs.sh (make hostvm): busybox, our QEMU
and daxhex (guest/hostvm/daxhex.c, reads /dev/dax0.0). Three virtio-serial
ports of L1 end in unix sockets here:

    ctl.sock   ── port hostvm.ctl   ── L1's /init (guest/hostvm/init.sh):
                                       start QEMU, read /dev/dax0.0, /proc,
                                       hugepage counters; QEMU's exit
    qtest.sock ── port hostvm.qtest ── L2's QEMU: -qtest pipe:PORT
    qmp.sock   ── port hostvm.qmp   ── L2's QEMU: -mon (QMP)

so that L2 is driven with QEMU's own clients (spmtest.qemupy:
QEMUQtestProtocol, QEMUMonitorProtocol) and read with spmtest.fwcfg, as
a QEMU on this machine would be; L1 runs only what must run on the host.

    with HostVM(console_log, ctl_log) as l1:
        l1.request("hugepages 0 128")
        run = l1.run(qemu_args, writes=[(offset, data)], dax=True)

Used by tests/hostvm and demo.host. Nothing here knows what the values
should be: the callers decide that from their own command lines.
"""
import dataclasses
import os
import re
import socket
import subprocess
import tempfile
import time

from spmtest import build_dir, fwcfg, qemu_binary
from spmtest.guest import prepared_kernel
from spmtest.qemupy import QEMUMonitorProtocol, QEMUQtestProtocol

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
    "-device", "virtio-serial-pci,id=vser0",
]
PORTS = ("ctl", "qtest", "qmp")     # L1's virtio-serial ports hostvm.NAME
DAX = "/dev/dax0.0"


def initramfs():
    return os.path.join(build_dir(), "guest", "hostvm-initramfs.cpio.gz")


class Section:
    """The "key: value" lines of an answer of L1's /init, in order."""

    def __init__(self, lines=()):
        self.lines = []             # (key, value)
        for line in lines:
            key, sep, value = line.partition(":")
            if sep:
                self.lines.append((key, value[1:] if value[:1] == " " else value))

    def all(self, key):
        return [v for k, v in self.lines if k == key]

    def one(self, key):
        values = self.all(key)
        if len(values) != 1:
            raise AssertionError(f"expected one '{key}:' line, got {values}")
        return values[0]


def fields(value):
    """"a=1 b=x" -> {"a": "1", "b": "x"}"""
    return dict(w.split("=", 1) for w in value.split() if "=" in w)


@dataclasses.dataclass
class Write:
    """Data written at guest address gpa (device offset off) and read back:
    through qtest, and (with dax=True) from /dev/dax0.0 in L1."""
    off: int
    gpa: int
    data: bytes
    qtest: bytes = None
    dax: bytes = None


@dataclasses.dataclass
class Run:
    """What one QEMU in L1 showed. refused: it exited before its main loop
    answered qtest (a refused configuration: only status and stderr)."""
    argv: list
    refused: bool = False
    status: int = None              # exit status (128 + N: signal N)
    stderr: list = dataclasses.field(default_factory=list)
    error: str = None               # what went wrong talking to it
    seconds: float = None
    memory_devices: list = None     # QMP query-memory-devices
    memdev: list = None             # QMP query-memdev
    ramblocks: list = None          # HMP "info ramblock", one line each
    e820: bytes = None              # fw_cfg etc/e820
    acpi: bytes = None              # fw_cfg etc/acpi/tables
    writes: list = None             # [Write]
    proc: Section = None            # of the device's RAM block: smaps:, numa_maps:;
                                    # meminfo:, node-hugepages:

    def device(self):
        """The data of the (first) spm-memory device of query-memory-devices."""
        devs = [d["data"] for d in self.memory_devices or () if d["type"] == "spm-memory"]
        if not devs:
            raise AssertionError(f"no spm-memory device in {self.memory_devices}")
        return devs[0]

    def ramblock(self, name):
        """The words of RAM block `name`'s "info ramblock" line:
        name, page size (e.g. "2 MiB": two words), offset, used, total, HVA, RO."""
        rows = [line.split() for line in self.ramblocks or ()
                if line.split()[:1] == [name]]
        if len(rows) != 1:
            raise AssertionError(f"no one RAM block {name!r}: {self.ramblocks}")
        return rows[0]

    def hva(self, name):
        """QEMU's host virtual address of RAM block `name`."""
        return int([w for w in self.ramblock(name) if w.startswith("0x")][3], 16)

    def mappings(self, lo, hi):
        """[(start, end, numa_maps line, {smaps key: value})] of QEMU's
        mappings that overlap [lo, hi), from L1's /proc."""
        numa = {line.split()[0]: line for line in self.proc.all("numa_maps")}
        out, cur = [], None
        for line in self.proc.all("smaps"):
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if m:
                start, end = int(m.group(1), 16), int(m.group(2), 16)
                cur = (start, end, numa.get(m.group(1), ""), {}) \
                    if start < hi and end > lo else None
                if cur:
                    out.append(cur)
            elif cur is not None:
                key, _, val = line.partition(":")
                cur[3][key] = val.strip()
        return out


class HostVM:
    """L1, running between start() and stop() (or as a context manager)."""

    def __init__(self, console_log, ctl_log, timeout=300):
        self.console_log, self.ctl_log, self.timeout = console_log, ctl_log, timeout
        self.info = None            # Section: module:, dax:, iomem:, node:
        self.boot_seconds = None
        self._proc = self._tmp = self._ctl = self._ctl_in = self._transcript = None
        self._stderr = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Boot L1 and wait until its /init serves requests. Raises
        RuntimeError if something is not prepared or L1 does not come up."""
        qemu, initrd = qemu_binary(), initramfs()
        for path, target in ((qemu, "make qemu"), (initrd, "make hostvm")):
            if not os.path.exists(path):
                raise RuntimeError(f"no {path}: run '{target}'")
        kernel, _ = prepared_kernel("6.12")
        for log in (self.console_log, self.ctl_log):
            os.makedirs(os.path.dirname(log), exist_ok=True)
        self._tmp = tempfile.TemporaryDirectory(prefix="hostvm.")
        ports = []
        for name in PORTS:
            ports += ["-chardev", f"socket,id={name},path={self._sock(name)},"
                                  "server=on,wait=off",
                      "-device", f"virtserialport,bus=vser0.0,chardev={name},"
                                 f"name=hostvm.{name}"]
        cmd = [qemu, *L1_ARGS, *ports,
               "-kernel", kernel["VMLINUZ"], "-initrd", initrd,
               "-append", "console=ttyS0 panic=-1",
               "-serial", f"file:{self.console_log}"]
        self._transcript = open(self.ctl_log, "w", encoding="utf-8")
        self._stderr = open(self._sock("stderr"), "w", encoding="utf-8")
        start = self._t0 = time.monotonic()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            self._ctl = self._connect("ctl")
            self._ctl_in = self._ctl.makefile("r", encoding="utf-8", errors="replace")
            self.info = self.request("info")
        except (OSError, RuntimeError) as e:
            self.stop()
            raise RuntimeError(f"L1 did not come up ({e}); see {self.console_log}") from None
        self.boot_seconds = time.monotonic() - start

    def stop(self):
        """Power L1 off (kill it if it does not go) and clean up."""
        if self._proc is None:
            return
        try:
            if self._ctl_in is not None and self._proc.poll() is None:
                self.request("poweroff")
            self._proc.wait(timeout=60)
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        for f in (self._ctl_in, self._ctl, self._transcript, self._stderr):
            if f is not None:
                f.close()
        self._proc = self._ctl = self._ctl_in = None
        self._tmp.cleanup()

    def _sock(self, name):
        return os.path.join(self._tmp.name, f"{name}.sock")

    def _connect(self, name):
        """A new connection to the socket of L1's port hostvm.NAME (its
        QEMU listens once it has started)."""
        deadline = time.monotonic() + 60
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self._sock(name))
                return s
            except OSError:
                s.close()
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    with open(self._sock("stderr")) as f:
                        raise RuntimeError(f"L1's QEMU did not listen on {name}: "
                                           f"{f.read().strip()}") from None
                time.sleep(0.05)

    def request(self, line):
        """Send one request to L1's /init (guest/hostvm/init.sh); its
        answer. Raises RuntimeError if it failed or L1 went away."""
        self._transcript.write(f"> {time.monotonic() - self._t0:8.3f} {line}\n")
        self._ctl.settimeout(self.timeout)
        try:
            self._ctl.sendall((line + "\n").encode())
            lines = []
            while True:
                got = self._ctl_in.readline()
                if not got:
                    raise RuntimeError(f"L1 closed its port during '{line[:40]}'")
                got = got.rstrip("\r\n")
                m = re.fullmatch(r"=== END rc=(\d+) ===", got)
                if m:
                    self._transcript.write(f"< {time.monotonic() - self._t0:8.3f} {got}\n")
                    break
                self._transcript.write(f"< {got}\n")
                lines.append(got)
        except OSError as e:            # socket.timeout included
            raise RuntimeError(f"L1: '{line[:40]}': {e}") from None
        finally:
            self._transcript.flush()
        if m.group(1) != "0":
            raise RuntimeError(f"L1: '{line[:40]}' failed: {'; '.join(lines[-3:])}")
        return Section(lines)

    def run(self, args, writes=(), dax=False, addr=None):
        """Run our QEMU in L1 with `args` (L1 adds -accel qtest and its qtest
        and QMP on the ports) and report what it shows: QMP's view of its
        memory devices, backends and RAM blocks; fw_cfg etc/e820 and
        etc/acpi/tables; each (offset, data) of `writes` written at `addr`
        (default: the address QMP gives the spm-memory device) + offset
        through qtest and read back, and with `dax` read from /dev/dax0.0
        at that offset in L1; L1's /proc of QEMU's mappings of the device's
        RAM block, and L1's hugepage counters, while it runs. Then QMP quit, and its exit status and stderr.

        A QEMU that exits before it answers qtest (a refused configuration)
        gives a Run with refused=True, its status and stderr. Errors while
        talking to a running QEMU are in Run.error (QEMU is killed)."""
        if any(re.search(r"\s", a) or not a for a in args):
            raise ValueError("L1 splits the arguments at blanks")
        run = Run(argv=list(args))
        start = time.monotonic()
        qt_sock, qmp_sock = self._connect("qtest"), self._connect("qmp")
        qtest = QEMUQtestProtocol(sock=qt_sock)
        qtest.connect()
        qtest.settimeout(self.timeout)
        try:
            self.request("start " + " ".join(args))
            try:
                # qtest answers in QEMU's main loop, i.e. once the machine
                # is complete; a QEMU that exits first leaves L1's "EXIT"
                # line.
                first = qtest.cmd("endianness")
                if first.startswith("EXIT"):
                    run.refused = True
                else:
                    if not first.startswith("OK"):
                        raise RuntimeError(f"qtest: endianness: {first.strip()}")
                    self._inspect(run, qtest, qmp_sock, writes, dax, addr)
            except Exception as e:      # noqa: BLE001 (reported in the Run)
                # (a time-out included: no QEMU outlives its variant)
                run.error = f"{type(e).__name__}: {e}"
                self.request("kill")
            done = self.request("wait")
            run.status = int(fields(done.one("exit"))["status"])
            run.stderr = done.all("stderr")
        finally:
            qtest.close()
            qmp_sock.close()
            self.request("idle")
        run.seconds = time.monotonic() - start
        return run

    def _inspect(self, run, qtest, qmp_sock, writes, dax, addr):
        qmp = QEMUMonitorProtocol(qmp_sock)
        qmp.settimeout(self.timeout)
        qmp.connect()
        try:
            run.memory_devices = qmp.cmd("query-memory-devices")
            run.memdev = qmp.cmd("query-memdev")
            run.ramblocks = [line for line in qmp.cmd(
                "human-monitor-command", **{"command-line": "info ramblock"}
            ).splitlines() if line.strip()]
            run.e820 = fwcfg.fw_cfg_file(qtest, "etc/e820")
            run.acpi = fwcfg.fw_cfg_file(qtest, "etc/acpi/tables")
            base = run.device()["memaddr"] if addr is None else addr
            run.writes = []
            for off, data in writes:
                w = Write(off, base + off, data)
                fwcfg.write_memory(qtest, w.gpa, data)
                w.qtest = fwcfg.read_memory(qtest, w.gpa, len(data))
                if dax:
                    w.dax = bytes.fromhex(
                        self.request(f"dax {off:#x} {len(data)}").one("dax"))
                run.writes.append(w)
            dev = run.device()
            hva = run.hva(dev["memdev"].rsplit("/", 1)[-1])
            run.proc = self.request(f"proc {hva} {hva + dev['size']}")
            qmp.cmd("quit")
        finally:
            qmp.close()


# --- data to write, and its checksum -----------------------------------

def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def pattern(offset, length, seed):
    """Test data for device offset `offset`: the word at offset o is
    mix64(o ^ (seed << 48)) (SplitMix64's finaliser), little-endian, so
    that data another variant (seed) or offset left cannot pass for it."""
    salt = (seed << 48) & _U64
    return b"".join(_mix64((offset + i) ^ salt).to_bytes(8, "little")
                    for i in range(0, length, 8))


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & _U64
    return h
