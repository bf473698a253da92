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
   namespace (tests/libvirt/daemon.py, shared with test_native.py):
   /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt and
   /var/log/libvirt are bind mounts of a temporary directory there, so
   the test's qemu.conf, state, capability cache and logs never touch the
   system's; virsh talks to it through
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

import pytest

from spmtest import ROOT, build_dir
from spmtest import guest as spmguest

from .daemon import (QEMU_CONF, Daemon, daemon_conf, fill_placeholders, run,
                     wait_for_report)

BUILD = build_dir()
QEMU = os.path.join(BUILD, "qemu-build", "qemu-system-x86_64")
EXAMPLE = os.path.join(ROOT, "examples", "spm-memory-libvirt.xml")
LOGS = os.path.join(BUILD, "logs", "libvirt")
DOMAIN = "spm-memory-example"
MiB, GiB = 1 << 20, 1 << 30

PACKAGES = ["libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients"]
QEMU_USER = "libvirt-qemu"       # Debian's build default (qemu_user)

# what the example asks for; natural placement leaves 128 MiB between them
EXPECTED = [("spm0", 0x100000000, 1 * GiB, 1),
            ("spm1", 0x100000000 + 1 * GiB + 128 * MiB, 512 * MiB, 2)]


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


class Libvirtd(Daemon):
    """Debian's libvirtd, with its system-mode directories replaced by
    private ones."""

    NAME = "libvirtd"
    MOUNTS = {"etc": "/etc/libvirt", "run": "/run/libvirt",
              "lib": "/var/lib/libvirt", "cache": "/var/cache/libvirt",
              "log": "/var/log/libvirt"}
    FILES = {"etc/libvirtd.conf":
             daemon_conf("/var/log/libvirt/libvirtd.log"),
             "etc/qemu.conf": QEMU_CONF}
    SOCKET = "run/libvirt-sock"
    LOG = "log/libvirtd.log"
    QEMU_LOGS = "log/qemu"
    QEMU_RUN = "run/qemu"

    def command(self):
        return ["libvirtd", "--pid-file", self.path("libvirtd.pid")]


@pytest.fixture(scope="module")
def libvirtd():
    if os.geteuid() != 0:
        pytest.skip("needs root (a system-mode libvirtd, mounts)")
    check_installed()
    daemon = Libvirtd(QEMU, LOGS)
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
    return fill_placeholders(EXAMPLE, {
        "EMULATOR": QEMU, "KERNEL": kenv["VMLINUZ"], "INITRD": initrd,
        "CONSOLE_LOG": console_log})


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
        report = wait_for_report(libvirtd, DOMAIN, console_log)

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
        assert "tainted: custom-argv" in libvirtd.domain_log(DOMAIN)
        assert libvirtd.virsh("domstate", DOMAIN).stdout.strip() == "running"
    finally:
        libvirtd.virsh("destroy", DOMAIN, check=False)
        libvirtd.virsh("undefine", DOMAIN, check=False)
    assert libvirtd.virsh("list", "--all", "--name").stdout.split() == []
