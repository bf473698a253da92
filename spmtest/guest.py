"""Boot a guest with spm-memory devices and collect what QEMU and the guest say.

Used by the guest end-to-end tests (tests/guest), the libvirt test, the
benchmark and the demo. A boot runs guest/boot.sh (TCG, a Debian kernel,
the report initramfs) with QEMU paused at first, asks QEMU over QMP (QEMU's
own client, spmtest.qemupy.QEMUMonitorProtocol) where it placed the
spm-memory devices, lets the guest run to its poweroff and parses the
guest's report (spmtest.report).

Guests boot only what "make guest-deps" prepared (kernels, initramfs,
firmware): guest/boot.sh runs with SPM_OFFLINE=1, so nothing is resolved,
downloaded or built, and a missing file is an error that names the target.
"""
import os
import re
import signal
import subprocess
import tempfile
import time

from spmtest import ROOT, build_dir
from spmtest import report as guest_report
from spmtest.qemupy import QEMUMonitorProtocol, QMPError

BOOT = os.path.join(ROOT, "guest", "boot.sh")


def boot_env():
    """The environment of guest/boot.sh: this one, offline, with BUILD."""
    return dict(os.environ, BUILD=build_dir(), SPM_OFFLINE="1")


# Guest kernel series (guest/kernel.sh): Debian's 6.1 and 6.12
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


def prepared_kernel(series):
    """The kernel of a series and its initramfs that "make guest-deps"
    prepared (guest/kernel.sh, guest/mkinitramfs.sh): (the KEY=VALUE lines
    of $BUILD/guest/kernel-SERIES.env as a dict, the initramfs path).
    Raises RuntimeError naming what is missing."""
    d = os.path.join(build_dir(), "guest")
    env, initrd = os.path.join(d, f"kernel-{series}.env"), \
        os.path.join(d, f"initramfs-{series}.cpio.gz")
    try:
        with open(env) as f:
            kernel = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except FileNotFoundError:
        raise RuntimeError(f"no prepared {series} guest kernel ({env}): "
                           "run 'make guest-deps'") from None
    for path in (kernel.get("VMLINUZ", env + ": VMLINUZ"), initrd):
        if not os.path.isfile(path):
            raise RuntimeError(f"{path} is missing: run 'make guest-deps'")
    return kernel, initrd


def prepared_firmware():
    """The firmware files that "make guest-deps" prepared (guest/firmware.sh,
    $BUILD/guest/firmware.env): {"OVMF": path, "OVMF_VARS": ..., "OVMF_OLD",
    "OVMF_OLD_VARS", "SEABIOS_STOCK", and their *_VERSION}. Raises
    RuntimeError naming what is missing and how to prepare it."""
    path = os.path.join(build_dir(), "guest", "firmware.env")
    try:
        with open(path) as f:
            fw = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except FileNotFoundError:
        raise RuntimeError(f"no prepared firmware ({path}): run 'make guest-deps'") from None
    for key, value in fw.items():
        if not key.endswith("_VERSION") and not os.path.isfile(value):
            raise RuntimeError(f"{key}: {value} is missing: run 'make guest-deps'")
    return fw


# firmware names besides QEMU's default BIOS: (code key, VARS key) in
# prepared_firmware()
FIRMWARE_FILES = {
    "ovmf": ("OVMF", "OVMF_VARS"),                 # OVMF >= 2026.05
    "ovmf-old": ("OVMF_OLD", "OVMF_OLD_VARS"),     # OVMF < 2026.05
    "seabios-stock": ("SEABIOS_STOCK", None),      # SeaBIOS without patches
}


def firmware_args(firmware):
    """guest/boot.sh options for a firmware: "seabios" (QEMU's default BIOS,
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


def merged(ranges):
    """Inclusive ranges as firmware and Linux keep them: adjacent ones
    merged into one."""
    out = []
    for start, end in sorted(ranges):
        if out and out[-1][1] + 1 == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def iomem_ranges(report, name):
    """/proc/iomem ranges (any depth) named `name`, a string or a compiled
    regular expression matching the whole name: [(start, end)]."""
    if isinstance(name, str):
        return sorted((r["start"], r["end"]) for r in report["iomem"]
                      if r["name"] == name)
    return sorted((r["start"], r["end"]) for r in report["iomem"]
                  if name.fullmatch(r["name"]))


# console lines of guest/spmtool.c ("spmtool fill")
FILLED = r"spmtool: filled target=\S+ bytes=(\d+) checksum=(0x[0-9a-f]+) node=(-?\d+)"
VERIFY = r"spmtool: verify round=\d+ checksum=(0x[0-9a-f]+) (ok|BAD)"



def qmp_connect(path, proc, wait=600, timeout=None):
    """QEMU's QMP client (QEMUMonitorProtocol) connected to the QMP server
    socket at `path` of the QEMU that `proc` starts (guest/boot.sh, which
    kills QEMU after its own timeout), trying until QEMU listens: for at
    most `wait` seconds and only while `proc` runs, else the last
    QMPError (ConnectError) is raised. Commands then wait at most
    `timeout` seconds (None: no limit)."""
    deadline = time.monotonic() + wait
    qmp = QEMUMonitorProtocol(path)
    qmp.settimeout(timeout)
    while True:
        try:
            qmp.connect()
            return qmp
        except QMPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.05)


def qmp_quit(qmp):
    """Ask QEMU to quit and close the connection; QEMU going away first
    (or already gone) is not an error here."""
    try:
        qmp.cmd("quit")
    except (QMPError, OSError, EOFError):
        pass
    try:
        qmp.close()
    except (QMPError, OSError, EOFError):
        pass           # EOFError: QEMU closed the connection on quit


def wait_migration(qmp, timeout=600):
    """Poll query-migrate until the migration ends; return its last answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = qmp.cmd("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.1)
    raise TimeoutError("migration did not end")


def boot(qemu_args, kernel="6.12", firmware="seabios", log=None, append=None,
         timeout=180, qemu=None, device="spm-memory"):
    """Boot; return (QMP infos of the `device` memory devices, parsed guest
    report).

    kernel: a series of KERNELS. firmware: "seabios" (QEMU's default
    BIOS), "ovmf" (OVMF >= 2026.05), "ovmf-old" (OVMF < 2026.05),
    "seabios-stock" or a firmware file (firmware_args()). A boot that
    fails, also for want of a prepared kernel, initramfs or firmware,
    raises RuntimeError with guest/boot.sh's own message. qemu: another
    QEMU binary (upstream's, whose device is "sp-mem").
    """
    if log is None:
        log = os.path.join(build_dir(), "logs", "guest", f"boot-{kernel}.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        qmp_path = os.path.join(tmp, "qmp.sock")
        cmd = [BOOT, "-k", kernel, *(["-q", qemu] if qemu else []),
               *firmware_args(firmware), "-o", log, "-t", str(timeout)]
        if append:
            cmd += ["-a", append]
        cmd += ["--", *qemu_args, "-S",
                "-qmp", f"unix:{qmp_path},server=on,wait=off"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env=boot_env())
        devices = None
        try:
            try:
                qmp = qmp_connect(qmp_path, proc, timeout=60)
            except QMPError:
                # QEMU never listened: guest/boot.sh's stderr says why
                if proc.poll() is None:
                    stop_group(proc)
            else:
                devices = [d["data"] for d in qmp.cmd("query-memory-devices")
                           if d["type"] == device]
                qmp.cmd("cont")
                qmp.close()
            out, err = proc.communicate(timeout=timeout + 60)
        finally:
            stop_group(proc)
    if proc.returncode != 0 or devices is None:
        raise RuntimeError(f"boot failed ({log}):\n{err}{out}")
    with open(log, errors="replace") as f:
        report = guest_report.parse_report(f.read())
    return devices, report


def stop_group(proc):
    """Kill what is left of the process group that `proc` leads (a
    guest/boot.sh started with start_new_session=True, and its QEMU)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Guest:
    """A guest that keeps running: start, watch its console, drive it.

    Runs guest/boot.sh in the background with a QMP socket. With
    incoming=URI the QEMU waits for a migration ("defer" to set it up over
    QMP first); otherwise it starts paused and cont() lets it run.
    """

    def __init__(self, qemu_args, log, kernel="6.12", firmware="seabios",
                 append=None, reboot=False, incoming=None, timeout=900):
        self.log = log
        os.makedirs(os.path.dirname(log), exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory()
        qmp_path = os.path.join(self.tmp.name, "qmp.sock")
        cmd = [BOOT, "-k", kernel,
               *firmware_args(firmware), "-o", log, "-t", str(timeout)]
        if append:
            cmd += ["-a", append]
        if reboot:
            cmd += ["--reboot"]
        cmd += ["--", *qemu_args, "-qmp", f"unix:{qmp_path},server=on,wait=off"]
        cmd += ["-incoming", incoming] if incoming else ["-S"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env=boot_env())
        try:
            self.qmp = qmp_connect(qmp_path, self.proc, timeout=600)
        except QMPError:
            stop_group(self.proc)
            raise RuntimeError("QEMU did not start: " + self.proc.stderr.read())

    def qemu_stderr(self):
        """What QEMU printed on stderr (guest/boot.sh keeps it in LOG.qemu)."""
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
        parts = text.split(guest_report.BEGIN)[1:]
        return [guest_report.parse_report(guest_report.BEGIN + p)
                for p in parts if guest_report.END in p]

    def quit(self):
        qmp_quit(self.qmp)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        stop_group(self.proc)
        self.tmp.cleanup()
