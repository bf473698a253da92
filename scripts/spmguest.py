"""Boot a guest with spm-memory devices and collect what QEMU and the guest say.

Shared by the guest end-to-end tests (tests/guest) and the demo
(scripts/demo.py). A boot runs scripts/boot-guest.sh (TCG, a Debian kernel,
the report initramfs) with QEMU paused at first, asks QEMU over QMP where it
placed the spm-memory devices, lets the guest run to its poweroff and parses
the guest's report (scripts/parse-report.py).
"""
import importlib.util
import json
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
BUILD = os.environ.setdefault("BUILD", os.path.join(ROOT, "build"))
# Guests boot only what "make guest-deps" prepared (kernels, initramfs,
# firmware): the scripts that boot-guest.sh runs then never resolve,
# download or build anything, and fail saying what is missing instead.
os.environ.setdefault("SPM_OFFLINE", "1")

_spec = importlib.util.spec_from_file_location(
    "parse_report", os.path.join(SCRIPTS, "parse-report.py"))
parse_report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parse_report)


# Guest kernel series (scripts/guest-kernel.sh): Debian's 6.1 and 6.12
# (bookworm) and the newest 7.N (today 7.2 from sid), and the
# dax driver each binds to spm-memory: 6.1 leaves hmem dax devices to
# device_dax (/dev/daxN.M), later kernels give them to kmem, which onlines
# the memory on the device's node.
KERNELS = ["6.1", "6.12", "7.x"]
DRIVER = {"6.1": "device_dax", "6.12": "kmem", "7.x": "kmem"}


def kernel_matches(series, release):
    """Whether a guest's `uname -r` belongs to a kernel series: "6.12"
    matches 6.12.117+deb12-amd64, "7.x" any 7.N release."""
    if series.endswith(".x"):
        return release.startswith(series[:-1])
    return release.startswith(series + ".")


_firmware = None


def prepared_firmware():
    """The firmware files that "make guest-deps" prepared
    (scripts/guest-firmware.sh): {"OVMF": path, "OVMF_VARS": ..., "OVMF_OLD",
    "OVMF_OLD_VARS", "SEABIOS_STOCK", and their *_VERSION}. Raises
    RuntimeError naming what is missing and how to prepare it."""
    global _firmware
    if _firmware is None:
        r = subprocess.run([os.path.join(SCRIPTS, "guest-firmware.sh")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip() or "guest-firmware.sh failed")
        _firmware = dict(line.split("=", 1) for line in r.stdout.splitlines()
                         if "=" in line)
    return _firmware


# firmware names besides QEMU's default BIOS: (code key, VARS key) in
# prepared_firmware()
FIRMWARE_FILES = {
    "ovmf": ("OVMF", "OVMF_VARS"),                 # OVMF >= 2026.05
    "ovmf-old": ("OVMF_OLD", "OVMF_OLD_VARS"),     # OVMF < 2026.05
    "seabios-stock": ("SEABIOS_STOCK", None),      # SeaBIOS without patches
}


def firmware_args(firmware):
    """boot-guest.sh options for a firmware: "seabios" (QEMU's default BIOS,
    the patched SeaBIOS), a name of FIRMWARE_FILES (the prepared file) or a
    firmware file."""
    if firmware in FIRMWARE_FILES:
        code, vars_ = FIRMWARE_FILES[firmware]
        fw = prepared_firmware()
        return ["-f", fw[code]] + (["--vars", fw[vars_]] if vars_ else [])
    return ["-f", firmware]


# /proc/iomem name of a dax device's range (device_dax and kmem request it)
DAX_NAME = re.compile(r"dax\d+\.\d+")


def e820_soft_reserved(report):
    """The soft reserved ranges of the guest's E820 map, as its boot log
    printed them ("BIOS-e820: [mem S-E] soft reserved"): [(start, end)]."""
    return sorted((e["start"], e["end"]) for e in report["e820"]
                  if e["type"] == "soft reserved")


def iomem_ranges(report, name):
    """/proc/iomem ranges (any depth) named `name`, a string or a compiled
    regular expression matching the whole name: [(start, end)]."""
    if isinstance(name, str):
        return sorted((r["start"], r["end"]) for r in report["iomem"]
                      if r["name"] == name)
    return sorted((r["start"], r["end"]) for r in report["iomem"]
                  if name.fullmatch(r["name"]))


# console lines of scripts/guest-spmtool.c ("spmtool fill")
FILLED = r"spmtool: filled target=\S+ bytes=(\d+) checksum=(0x[0-9a-f]+) node=(-?\d+)"
VERIFY = r"spmtool: verify round=\d+ checksum=(0x[0-9a-f]+) (ok|BAD)"



def wait_migration(qmp, timeout=600):
    """Poll query-migrate until the migration ends; return its last answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.1)
    raise TimeoutError("migration did not end")


class Qmp:
    """A minimal QMP client on a unix socket.

    Waits up to `timeout` seconds for QEMU to listen, or until `proc` (the
    process that starts QEMU, if given) exits: boot-guest.sh may first
    download and build the guest kernel and initramfs.
    """

    def __init__(self, path, timeout=600, proc=None):
        deadline = time.time() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX)
            try:
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline or \
                        (proc is not None and proc.poll() is not None):
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())            # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.file.flush()
        while True:
            msg = json.loads(self.file.readline())
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']}")

    def close(self):
        self.file.close()
        self.sock.close()


def boot(qemu_args, kernel="6.12", firmware="seabios", log=None, append=None,
         timeout=180):
    """Boot; return (QMP spm-memory device infos, parsed guest report).

    kernel: a series of KERNELS. firmware: "seabios" (QEMU's default
    BIOS), "ovmf" (OVMF >= 2026.05), "ovmf-old" (OVMF < 2026.05),
    "seabios-stock" or a firmware file (firmware_args()). A boot that
    fails, also for want of a prepared kernel, initramfs or firmware,
    raises RuntimeError with boot-guest.sh's own message.
    """
    if log is None:
        log = os.path.join(BUILD, "logs", "guest", f"boot-{kernel}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        qmp_path = os.path.join(tmp, "qmp.sock")
        cmd = [os.path.join(SCRIPTS, "boot-guest.sh"), "-k", kernel,
               *firmware_args(firmware), "-o", log, "-t", str(timeout)]
        if append:
            cmd += ["-a", append]
        cmd += ["--", *qemu_args, "-S",
                "-qmp", f"unix:{qmp_path},server=on,wait=off"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        devices = None
        try:
            try:
                qmp = Qmp(qmp_path, proc=proc)
            except OSError:
                # QEMU never listened: boot-guest.sh's stderr says why
                if proc.poll() is None:
                    stop_group(proc)
            else:
                devices = [d["data"] for d in qmp.cmd("query-memory-devices")
                           if d["type"] == "spm-memory"]
                qmp.cmd("cont")
                qmp.close()
            out, err = proc.communicate(timeout=timeout + 60)
        finally:
            stop_group(proc)
    if proc.returncode != 0 or devices is None:
        raise RuntimeError(f"boot failed ({log}):\n{err}{out}")
    with open(log, errors="replace") as f:
        report = parse_report.parse_report(f.read())
    return devices, report


def stop_group(proc):
    """Kill what is left of the process group that `proc` leads (a
    boot-guest.sh started with start_new_session=True, and its QEMU)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Guest:
    """A guest that keeps running: start, watch its console, drive it.

    Runs scripts/boot-guest.sh in the background with a QMP socket. With
    incoming=URI the QEMU waits for a migration ("defer" to set it up over
    QMP first); otherwise it starts paused and cont() lets it run.
    """

    def __init__(self, qemu_args, log, kernel="6.12", firmware="seabios",
                 append=None, reboot=False, incoming=None, timeout=900):
        self.log = log
        os.makedirs(os.path.dirname(log), exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory()
        qmp_path = os.path.join(self.tmp.name, "qmp.sock")
        cmd = [os.path.join(SCRIPTS, "boot-guest.sh"), "-k", kernel,
               *firmware_args(firmware), "-o", log, "-t", str(timeout)]
        if append:
            cmd += ["-a", append]
        if reboot:
            cmd += ["--reboot"]
        cmd += ["--", *qemu_args, "-qmp", f"unix:{qmp_path},server=on,wait=off"]
        cmd += ["-incoming", incoming] if incoming else ["-S"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        try:
            self.qmp = Qmp(qmp_path, proc=self.proc)
        except OSError:
            stop_group(self.proc)
            raise RuntimeError("QEMU did not start: " + self.proc.stderr.read())

    def qemu_stderr(self):
        """What QEMU printed on stderr (boot-guest.sh keeps it in LOG.qemu)."""
        try:
            with open(self.log + ".qemu", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read().replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait_for(self, regex, timeout=120, after=0):
        """Wait for a console line matching regex at or after offset `after`;
        return (match, end offset)."""
        deadline = time.time() + timeout
        pat = re.compile(regex, re.M)
        while True:
            text = self.text()
            m = pat.search(text, after)
            if m:
                return m, m.end()
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited waiting for {regex!r} "
                                   f"({self.log})")
            if time.time() > deadline:
                raise TimeoutError(f"no {regex!r} in {self.log}")
            time.sleep(0.2)

    def reports(self):
        """Every report the guest printed so far (one per boot), parsed."""
        text = self.text()
        parts = text.split(parse_report.BEGIN)[1:]
        return [parse_report.parse_report(parse_report.BEGIN + p)
                for p in parts if parse_report.END in p]

    def quit(self):
        try:
            self.qmp.cmd("quit")
        except (OSError, RuntimeError, ValueError):
            pass
        try:
            self.qmp.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        stop_group(self.proc)
        self.tmp.cleanup()


class Qtest:
    """The qtest protocol (QEMU -qtest), enough to read fw_cfg by DMA."""

    DESC, BUF = 0x100000, 0x200000

    def __init__(self, conn):
        self.f = conn.makefile("rw")

    def cmd(self, line):
        self.f.write(line + "\n")
        self.f.flush()
        while True:
            reply = self.f.readline()
            if not reply:
                raise EOFError("qtest connection closed")
            if reply.startswith("OK") or reply.startswith("FAIL"):
                return reply.split()

    def dma_setup(self, key, length):
        control = (key << 16) | 0x08 | 0x02           # SELECT | READ
        d = struct.pack(">IIQ", control, length, self.BUF)
        self.cmd(f"write {self.DESC:#x} 16 0x{d.hex()}")

    def dma_go(self):
        addr = int.from_bytes(struct.pack(">I", self.DESC), "little")
        self.cmd(f"outl 0x518 {addr:#x}")

    def fw_cfg_read(self, key, length):
        if length == 0:
            return b""
        self.dma_setup(key, length)
        self.dma_go()
        status = self.cmd(f"read {self.DESC:#x} 4")
        if int(status[1], 16) & 0x01:
            raise RuntimeError("fw_cfg DMA error")
        data = self.cmd(f"read {self.BUF:#x} {length}")
        return bytes.fromhex(data[1][2:])

    def fw_cfg_files(self):
        n = struct.unpack(">I", self.fw_cfg_read(0x19, 4))[0]
        d = self.fw_cfg_read(0x19, 4 + 64 * n)
        files = {}
        for i in range(n):
            size, select = struct.unpack(">IH", d[4 + 64 * i:10 + 64 * i])
            name = d[12 + 64 * i:68 + 64 * i].split(b"\0")[0].decode()
            files[name] = (select, size)
        return files

    def fw_cfg_file(self, name):
        """The contents of fw_cfg file `name`, or None."""
        f = self.fw_cfg_files().get(name)
        return None if f is None else self.fw_cfg_read(*f)
