"""spm-memory under a real libvirt daemon (examples/spm-memory-libvirt.xml).

Run as root, from the repository:  /usr/bin/python3 -m pytest -q tests/libvirt

What it does:

1. checks that Debian's libvirt (libvirt-daemon,
   libvirt-daemon-driver-qemu, libvirt-clients) and the "libvirt-qemu"
   system user that libvirtd looks up at start are there: "make deps"
   (setup/deps.sh) installs them; the test installs nothing, and
   fails saying what is missing. The guest kernel and initramfs are the
   ones "make guest-deps" prepared;
2. starts a private system-mode libvirtd (as root) in its own mount
   namespace: /etc/libvirt, /run/libvirt, /var/lib/libvirt,
   /var/cache/libvirt and /var/log/libvirt are bind mounts of a temporary
   directory there, so the test's qemu.conf, state, capability cache and
   logs never touch the system's; virsh talks to it through
   qemu:///system?socket=TMP/run/libvirt-sock. qemu.conf runs QEMU as root
   without security driver, cgroups or namespaces (none of which this
   container has), with QEMU's stderr in a plain file (no virtlogd);
3. defines the example domain with its placeholders filled in (our patched
   QEMU, a Debian 6.12 kernel, the report initramfs, a console log), starts
   it paused, asks QEMU (virsh qemu-monitor-command) where the two
   spm-memory devices are, resumes it and reads the guest's report from
   the console log: a soft reserved E820 range (boot log) exactly over each
   device, its SRAT entry on its node, one dax device per device on its
   node (sysfs, and its range in /proc/iomem), kmem onlines it: the node's
   memory is the device's size;
4. destroys and undefines the domain, stops libvirtd, removes what it made.
   Also on failure; logs are kept in $BUILD/logs/libvirt.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from spmtest import ROOT, build_dir
from spmtest import guest as spmguest
from spmtest import report as guest_report

BUILD = build_dir()
QEMU = os.path.join(BUILD, "qemu-build", "qemu-system-x86_64")
EXAMPLE = os.path.join(ROOT, "examples", "spm-memory-libvirt.xml")
LOGS = os.path.join(BUILD, "logs", "libvirt")
DOMAIN = "spm-memory-example"
MiB, GiB = 1 << 20, 1 << 30

PACKAGES = ["libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients"]
QEMU_USER = "libvirt-qemu"       # Debian's build default (qemu_user)
# system-mode directories, replaced by private ones inside the namespace
DIRS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt",
        "cache": "/var/cache/libvirt", "log": "/var/log/libvirt"}

LIBVIRTD_CONF = """\
# private test daemon: local unix socket only, root only
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""
QEMU_CONF = """\
# QEMU as root, no confinement: the container has no usable cgroup
# controllers, no SELinux/AppArmor, and needs no per-VM mount namespace.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
seccomp_sandbox = 0
# QEMU's stderr straight into /var/log/libvirt/qemu/NAME.log (no virtlogd)
stdio_handler = "file"
"""

# what the example asks for; natural placement leaves 128 MiB between them
EXPECTED = [("spm0", 0x100000000, 1 * GiB, 1),
            ("spm1", 0x100000000 + 1 * GiB + 128 * MiB, 512 * MiB, 2)]


def run(cmd, check=True, timeout=600, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          capture_output=True, **kw)


def check_installed():
    """libvirt and the QEMU user libvirtd wants, as "make deps" left them."""
    missing = [p for p in PACKAGES
               if run(["dpkg-query", "-W", "-f=${Status}", p], check=False)
               .stdout.strip() != "install ok installed"]
    if run(["getent", "passwd", QEMU_USER], check=False).returncode != 0:
        missing.append(f"the system user {QEMU_USER}")
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)}; run 'make deps' "
                    "(setup/deps.sh) first", pytrace=False)


class Libvirtd:
    """A private system-mode libvirtd in its own mount namespace."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="spm-libvirt.")
        self.proc = None
        self.made = []                  # mount points this test created
        self.uri = f"qemu:///system?socket={self.tmp}/run/libvirt-sock"
        for sub in DIRS:
            os.makedirs(os.path.join(self.tmp, sub))
        with open(os.path.join(self.tmp, "etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
        with open(os.path.join(self.tmp, "etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)

    def start(self, timeout=60):
        for target in DIRS.values():
            if not os.path.isdir(target):
                os.makedirs(target)
                self.made.append(target)
        script = "set -e\n" + "".join(
            f'mount --bind "{self.tmp}/{sub}" "{target}"\n'
            for sub, target in DIRS.items())
        script += f'exec libvirtd --pid-file "{self.tmp}/libvirtd.pid"\n'
        self.out = open(os.path.join(self.tmp, "libvirtd.out"), "w")
        # unshare and sh exec: self.proc.pid is libvirtd's pid
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("libvirtd exited with status "
                                   f"{self.proc.returncode}:\n{self.diag()}")
            if os.path.exists(os.path.join(self.tmp, "run", "libvirt-sock")) \
                    and self.virsh("list", "--all", check=False).returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(f"libvirtd did not come up:\n{self.diag()}")
            time.sleep(0.2)

    def virsh(self, *args, check=True, timeout=120):
        r = run(["virsh", "-q", "-c", self.uri, *args], check=False,
                timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} failed:\n{r.stderr}"
                               f"{r.stdout}\n{self.diag()}")
        return r

    def log(self, *parts):
        path = os.path.join(self.tmp, *parts)
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def diag(self):
        """The daemon's and the domain's logs, for error messages."""
        lines = self.log("log", "libvirtd.log").splitlines()
        return ("--- libvirtd.log (tail):\n" + "\n".join(lines[-20:])
                + "\n--- libvirtd output:\n" + self.log("libvirtd.out")
                + f"\n--- qemu/{DOMAIN}.log (tail):\n"
                + "\n".join(self.log("log", "qemu", f"{DOMAIN}.log")
                            .splitlines()[-20:]))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            # domains libvirt still runs (normally none: the test destroys
            # and undefines its own)
            for name in self.virsh("list", "--all", "--name",
                                   check=False).stdout.split():
                self.virsh("destroy", name, check=False)
                self.virsh("undefine", name, check=False)
        # a QEMU left behind (e.g. libvirtd died): its pid file
        piddir = os.path.join(self.tmp, "run", "qemu")
        for name in os.listdir(piddir) if os.path.isdir(piddir) else []:
            if name.endswith(".pid"):
                try:
                    with open(os.path.join(piddir, name)) as f:
                        pid = int(f.read().strip())
                    # only if that pid is still our QEMU
                    if os.path.realpath(f"/proc/{pid}/exe") == \
                            os.path.realpath(QEMU):
                        os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.out.close()
        os.makedirs(LOGS, exist_ok=True)
        for parts in (("log", "libvirtd.log"), ("libvirtd.out",),
                      ("log", "qemu", f"{DOMAIN}.log")):
            src = os.path.join(self.tmp, *parts)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(LOGS, parts[-1]))
        for target in reversed(self.made):
            try:
                os.rmdir(target)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def libvirtd():
    if os.geteuid() != 0:
        pytest.skip("needs root (a system-mode libvirtd, mounts)")
    check_installed()
    daemon = Libvirtd()
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()


def domain_xml(console_log):
    try:
        kenv, initrd = spmguest.prepared_kernel("6.12")
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    with open(EXAMPLE) as f:
        xml = f.read()
    values = {"EMULATOR": QEMU, "KERNEL": kenv["VMLINUZ"], "INITRD": initrd,
              "CONSOLE_LOG": console_log}
    for key, value in values.items():
        assert f"@{key}@" in xml, f"example lacks the @{key}@ placeholder"
        xml = xml.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", xml)
    assert not left, f"unfilled placeholders: {left}"
    return xml


def wait_for_report(daemon, console_log, timeout=300):
    deadline = time.time() + timeout
    while True:
        try:
            with open(console_log, errors="replace") as f:
                text = f.read().replace("\r", "")
        except FileNotFoundError:
            text = ""
        if re.search(r"^" + re.escape(guest_report.END) + r"$", text, re.M):
            return guest_report.parse_report(text)
        state = daemon.virsh("domstate", DOMAIN, check=False).stdout.strip()
        if state != "running":
            raise RuntimeError(f"domain {state!r} before the report END "
                               f"marker ({console_log}):\n{daemon.diag()}")
        if time.time() > deadline:
            raise TimeoutError(f"no report END marker in {console_log} "
                               f"after {timeout}s")
        time.sleep(0.5)


def test_spm_memory_under_libvirt(libvirtd):
    os.makedirs(LOGS, exist_ok=True)
    console_log = os.path.join(LOGS, "console.log")
    if os.path.exists(console_log):
        os.unlink(console_log)
    xml_path = os.path.join(libvirtd.tmp, "domain.xml")
    with open(xml_path, "w") as f:
        f.write(domain_xml(console_log))

    libvirtd.virsh("define", xml_path)
    try:
        # paused first, so that QEMU is asked before the guest can stop
        libvirtd.virsh("start", "--paused", DOMAIN)
        qmp = json.loads(libvirtd.virsh(
            "qemu-monitor-command", DOMAIN,
            '{"execute":"query-memory-devices"}').stdout)
        devices = [d["data"] for d in qmp["return"] if d["type"] == "spm-memory"]
        got = sorted((d["id"], d["memaddr"], d["size"], d["node"])
                     for d in devices)
        assert got == EXPECTED, f"query-memory-devices: {qmp}"

        libvirtd.virsh("resume", DOMAIN)
        report = wait_for_report(libvirtd, console_log)

        # a soft reserved E820 range exactly over each device (they are not
        # adjacent), and the dax device's range in /proc/iomem
        devs = sorted((a, a + s - 1) for _, a, s, _ in EXPECTED)
        assert spmguest.e820_soft_reserved(report) == devs, report["e820"]
        assert spmguest.iomem_ranges(report, spmguest.DAX_NAME) == devs, \
            report["iomem"]
        assert spmguest.iomem_ranges(report, "System RAM (kmem)") == devs, \
            report["iomem"]
        # each device's SRAT entry on its node, not hotpluggable
        for _, addr, size, node in EXPECTED:
            srat = [e for e in report["srat"] if e["start"] == addr]
            assert [(e["end"], e["node"], e["hotplug"]) for e in srat] == \
                [(addr + size - 1, node, False)], report["srat"]
        # one dax device per spm-memory device, on its node; kmem (6.12)
        # onlines it, so the node has exactly the device's memory
        dax = sorted((d["start"], d["size"], d["target_node"])
                     for d in report["dax"])
        assert dax == [(a, s, n) for _, a, s, n in EXPECTED], report["dax"]
        nodes = {n["id"]: n["memtotal_kb"] for n in report["nodes"]}
        for _, _, size, node in EXPECTED:
            assert nodes.get(node) == size // 1024, report["nodes"]

        # libvirt knows what it was told: the passthrough taints the domain
        assert "tainted: custom-argv" in libvirtd.log("log", "qemu",
                                                      f"{DOMAIN}.log")
        assert libvirtd.virsh("domstate", DOMAIN).stdout.strip() == "running"
    finally:
        libvirtd.virsh("destroy", DOMAIN, check=False)
        libvirtd.virsh("undefine", DOMAIN, check=False)
    assert libvirtd.virsh("list", "--all", "--name").stdout.split() == []
