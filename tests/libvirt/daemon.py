"""A private system-mode libvirt daemon for the libvirt tests.

Shared by tests/libvirt/test_libvirt.py (Debian's libvirtd, the
<qemu:commandline> passthrough) and tests/libvirt/test_native.py (the
patched virtqemud from $BUILD/libvirt-build, the native 'sp-mem' model).

Daemon runs a libvirt daemon as root in its own mount namespace: the
directories the daemon uses (MOUNTS) are bind mounts of a temporary
directory there, so the test's configuration, state, capability cache and
logs never touch the system's, and the mounts go away with the daemon.
virsh talks to it through the daemon's socket in that temporary directory.
A subclass says which daemon, which directories, which configuration
files and which virsh.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from spmtest import report as guest_report

def qemu_conf(user, group):
    """qemu.conf for QEMU as USER:GROUP, without confinement: the container
    has no usable cgroup controllers, no SELinux/AppArmor, and needs no
    per-VM mount namespace. For a user other than root, libvirt's DAC driver
    (always on for a privileged daemon) gives QEMU the files the domain
    names (kernel, initramfs, console log, NVRAM) for the domain's lifetime
    and gives them back to root after."""
    unprivileged = int(user != "root")
    return f"""\
# QEMU as {user}:{group}, no security driver, cgroups or namespaces
user = "{user}"
group = "{group}"
dynamic_ownership = {unprivileged}
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
seccomp_sandbox = 0
# QEMU's stderr straight into the domain's log file (no virtlogd)
stdio_handler = "file"
"""


# Debian's libvirtd of the passthrough test: QEMU as root (that domain is
# tainted anyway).
QEMU_CONF = qemu_conf("root", "root")

# The patched virtqemud: QEMU unprivileged, as a libvirt host runs it
# (Debian's libvirt-qemu), as Debian's own "nobody"/"nogroup"
# (base-passwd), which every Debian system has: the test creates no user.
QEMU_USER, QEMU_GROUP = "nobody", "nogroup"
QEMU_CONF_UNPRIVILEGED = qemu_conf(QEMU_USER, QEMU_GROUP)


def daemon_conf(log_file):
    """libvirtd.conf / virtqemud.conf: a local unix socket for root only,
    warnings and errors into log_file (a path inside the namespace)."""
    return f"""\
# private test daemon: local unix socket only, root only
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:{log_file}"
"""


def run(cmd, check=True, timeout=600, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout, text=True,
                          capture_output=True, **kw)


class Daemon:
    """A private system-mode libvirt daemon in its own mount namespace.

    Subclasses set:
      NAME      the daemon's name (its output goes to TMP/NAME.out)
      MOUNTS    {subdirectory of TMP: directory the daemon uses}; each
                target is bind-mounted over by TMP/subdirectory (a missing
                target is created for the test and removed after it)
      FILES     {path under TMP: text} written before the start (config)
      SOCKET    the daemon's read-write socket, path under TMP
      LOG       the daemon's log file (daemon_conf()), path under TMP
      QEMU_LOGS the directory of the domains' logs, path under TMP
      QEMU_RUN  the directory of QEMU's pid files, path under TMP
    and implement command() (the daemon's argv) and virsh_command().
    `qemu` is the emulator the domains use, or a list of them (a QEMU left
    behind is killed only if it runs one of them), `logs` where logs are
    kept after stop().
    """

    NAME = MOUNTS = FILES = SOCKET = LOG = QEMU_LOGS = QEMU_RUN = None

    def __init__(self, qemu, logs):
        self.qemus = (qemu,) if isinstance(qemu, str) else tuple(qemu)
        self.logs = logs
        self.tmp = tempfile.mkdtemp(prefix=f"spm-{self.NAME}.")
        self.proc = None
        self.out = None
        self.made = []                  # mount points this test created
        self.uri = f"qemu:///system?socket={self.path(self.SOCKET)}"
        for sub in self.MOUNTS:
            os.makedirs(self.path(sub))
        # the daemon opens its log file but makes no directory for it
        os.makedirs(os.path.dirname(self.path(self.LOG)), exist_ok=True)
        for rel, text in self.FILES.items():
            os.makedirs(os.path.dirname(self.path(rel)), exist_ok=True)
            with open(self.path(rel), "w") as f:
                f.write(text)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    # --- what a subclass provides ------------------------------------------
    def command(self):
        """The daemon's argv (run inside the namespace, as root)."""
        raise NotImplementedError

    def env(self):
        """The environment of the daemon and of virsh."""
        return dict(os.environ)

    def virsh_command(self):
        """virsh's argv up to its options."""
        return ["virsh"]

    # --- the daemon ----------------------------------------------------------
    def start(self, timeout=60):
        for target in self.MOUNTS.values():
            if not os.path.isdir(target):
                os.makedirs(target)
                self.made.append(target)
        script = "set -e\n" + "".join(
            f'mount --bind "{self.path(sub)}" "{target}"\n'
            for sub, target in self.MOUNTS.items())
        script += 'exec "$@"\n'
        self.out = open(self.path(f"{self.NAME}.out"), "w")
        # unshare and sh exec: self.proc.pid is the daemon's pid
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             "sh", "-c", script, "sh", *self.command()],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True, env=self.env())
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.NAME} exited with status "
                                   f"{self.proc.returncode}:\n{self.diag()}")
            if os.path.exists(self.path(self.SOCKET)) \
                    and self.virsh("list", "--all", check=False).returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(f"{self.NAME} did not come up:\n{self.diag()}")
            time.sleep(0.2)

    def virsh(self, *args, check=True, timeout=120):
        r = run([*self.virsh_command(), "-q", "-c", self.uri, *args],
                check=False, timeout=timeout, env=self.env())
        if check and r.returncode != 0:
            raise RuntimeError(f"virsh {' '.join(args)} failed:\n{r.stderr}"
                               f"{r.stdout}\n{self.diag()}")
        return r

    def read(self, *parts):
        """A file under TMP ("" if there is none)."""
        try:
            with open(self.path(*parts), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def domain_log_path(self, domain):
        return self.path(self.QEMU_LOGS, f"{domain}.log")

    def domain_log(self, domain):
        """The domain's log: libvirt's lines (command line, taint) and
        QEMU's stderr."""
        return self.read(self.QEMU_LOGS, f"{domain}.log")

    def qemu_pid(self, domain):
        """The pid of the domain's QEMU from its pid file, or None."""
        try:
            with open(self.path(self.QEMU_RUN, f"{domain}.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def runs_our_qemu(self, pid):
        return any(runs_binary(pid, qemu) for qemu in self.qemus)

    def diag(self):
        """The daemon's and the domains' logs, for error messages."""
        text = (f"--- {self.LOG} (tail):\n"
                + "\n".join(self.read(self.LOG).splitlines()[-20:])
                + f"\n--- {self.NAME} output:\n"
                + self.read(f"{self.NAME}.out"))
        logdir = self.path(self.QEMU_LOGS)
        for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
            if name.endswith(".log"):
                text += (f"\n--- qemu/{name} (tail):\n" + "\n".join(
                    self.read(self.QEMU_LOGS, name).splitlines()[-20:]))
        return text

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            # domains the daemon still runs (normally none: the tests
            # destroy and undefine their own)
            for name in self.virsh("list", "--all", "--name",
                                   check=False).stdout.split():
                self.virsh("destroy", name, check=False)
                self.virsh("undefine", "--nvram", name, check=False)
        # a QEMU left behind (e.g. the daemon died): its pid file
        piddir = self.path(self.QEMU_RUN)
        for name in os.listdir(piddir) if os.path.isdir(piddir) else []:
            if name.endswith(".pid"):
                pid = self.qemu_pid(name[:-len(".pid")])
                # only if that pid is still our QEMU
                if pid is not None and self.runs_our_qemu(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.out is not None:
            self.out.close()
        self.keep_logs()
        for target in reversed(self.made):
            try:
                os.rmdir(target)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def keep_logs(self):
        """Copy the daemon's log and output and the domains' logs to
        self.logs."""
        os.makedirs(self.logs, exist_ok=True)
        files = [self.LOG, f"{self.NAME}.out"]
        logdir = self.path(self.QEMU_LOGS)
        files += [os.path.join(self.QEMU_LOGS, name) for name in
                  (sorted(os.listdir(logdir)) if os.path.isdir(logdir) else [])
                  if name.endswith(".log")]
        for rel in files:
            if os.path.isfile(self.path(rel)):
                shutil.copy(self.path(rel),
                            os.path.join(self.logs, os.path.basename(rel)))


def runs_binary(pid, binary):
    """Whether process PID runs BINARY, directly or as the program of the
    dynamic loader it was started with (the upstream QEMU's wrapper,
    setup/fetch-upstream-qemu.sh: ld.so --library-path DIR PROGRAM ...)."""
    try:
        if os.path.samefile(f"/proc/{pid}/exe", binary):
            return True
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
        loader = os.path.basename(os.path.realpath(f"/proc/{pid}/exe"))
        return loader.startswith("ld-linux") and any(
            a.startswith("/") and os.path.exists(a) and
            os.path.samefile(a, binary) for a in argv[1:4])
    except OSError:
        return False


def fill_placeholders(path, values):
    """The text of an example domain XML with its @KEY@ placeholders
    replaced by values[KEY]; each key must be a placeholder, and none may
    remain."""
    with open(path) as f:
        xml = f.read()
    for key, value in values.items():
        assert f"@{key}@" in xml, f"{path} lacks the @{key}@ placeholder"
        xml = xml.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", xml)
    assert not left, f"unfilled placeholders in {path}: {left}"
    return xml


def wait_for_report(daemon, domain, console_log, timeout=300):
    """The guest's report (spmtest.report) once its END marker is in the
    console log; fails if the domain stops running before."""
    deadline = time.time() + timeout
    while True:
        try:
            with open(console_log, errors="replace") as f:
                text = f.read().replace("\r", "")
        except FileNotFoundError:
            text = ""
        if re.search(r"^" + re.escape(guest_report.END) + r"$", text, re.M):
            return guest_report.parse_report(text)
        state = daemon.virsh("domstate", domain, check=False).stdout.strip()
        if state != "running":
            raise RuntimeError(f"domain {state!r} before the report END "
                               f"marker ({console_log}):\n{daemon.diag()}")
        if time.time() > deadline:
            raise TimeoutError(f"no report END marker in {console_log} "
                               f"after {timeout}s")
        time.sleep(0.5)
