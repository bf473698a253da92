"""libvirt's native 'sp-mem' memory model under the patched daemon
(examples/spm-memory-libvirt-native.xml, patches/libvirt).

Run as root, from the repository, under setup/libvirt-env.sh (the patched
libvirt's build directory exists only there, at the fixed path its
binaries were built for):

    BUILD=$PWD/build setup/libvirt-env.sh /usr/bin/python3 -m pytest -q \\
        -p no:cacheprovider tests/libvirt/test_native.py

What it does:

1. starts the patched virtqemud from $BUILD/libvirt-build (built by
   setup/build-libvirt.sh, not installed; the environment of the build
   directory's "run" script) as root in its own mount namespace
   (tests/libvirt/daemon.py): the build is configured with -Dsystem=false,
   so the daemon uses /usr/local/etc/libvirt, /var/local/{lib,cache,log}/
   libvirt and /run/libvirt (configmake.h); /usr/local/etc, /var/local and
   /run/libvirt are bind mounts of a temporary directory there. qemu.conf:
   QEMU as nobody:nogroup (libvirt's DAC driver labels the domain's
   files), no security driver, cgroups or namespaces, QEMU's stderr in
   the domain log;
2. defines and starts the example domain with its placeholders filled in
   (Debian's 6.12 kernel, the report initramfs, a console log): q35,
   ACPI, TCG, NUMA cell 0 with the CPUs and RAM, cells 1 and 2 with
   memory='0', two sp-mem devices: 1 GiB on node 1 that QEMU places and
   512 MiB on node 2 at an explicit <address base=.../>. Twice, one
   after the other, with each emulator:
   - this project's QEMU (its spm-memory device, the patched SeaBIOS);
   - upstream QEMU with its own sp-mem device: Debian's QEMU >= 11.1, run
     from its own root by a wrapper (setup/fetch-upstream-qemu.sh), with
     OVMF >= 2026.05 as pflash (stock SeaBIOS drops soft reserved memory);
3. checks, against what the XML asks for (never against what QEMU or the
   device says about itself):
   - the guest (its report on the console): for each device one soft
     reserved E820 range of the device's size, whose SRAT entry is on the
     device's node, with a dax device of that range on that node, which
     kmem onlines (the node's memory is the device's size); the explicit
     device's range starts at its base;
   - `virsh dumpxml`: the running domain has <address base=.../> for both
     devices; the explicit one the XML's, the other the start the guest
     saw for it (the guest is the independent witness of where QEMU put
     it); the persistent definition still has no address for it;
   - the domain log: the QEMU command line libvirt generated has a
     `-device` per device with the driver the emulator has (spm-memory,
     sp-mem: libvirt's capabilities probing of the binary decides), its
     node, addr, and a memory backend of the device's size; bare
     `-numa node,nodeid=N` for the memory-less cells, and no taint at all
     (the passthrough example is custom-argv and custom-monitor; QEMU as
     root would be high-privileges); QEMU runs as qemu.conf's user and
     group;
   - `virsh attach-device --live` of another sp-mem device and `virsh
     detach-device --live` of one are refused by libvirt (exit status 1,
     its message), and the same QEMU keeps running;
   and once, on this project's QEMU:
   - a domain whose sp-mem size is not a multiple of 128 MiB is refused
     by `virsh define` (or `start`) with libvirt's message, and no QEMU
     is started for it;
4. destroys and undefines the domains, stops the daemon (the mounts go
   with its namespace), removes what it made. Also on failure; logs are
   kept in $BUILD/logs/libvirt-native.
"""
import grp
import json
import os
import pwd
import re
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import namedtuple

import pytest

from spmtest import ROOT, build_dir
from spmtest import guest as spmguest

from .daemon import (QEMU_CONF_UNPRIVILEGED, QEMU_GROUP, QEMU_USER, Daemon,
                     daemon_conf, fill_placeholders, runs_binary,
                     wait_for_report)

BUILD = build_dir()
LVBUILD = os.path.join(BUILD, "libvirt-build")
QEMU = os.path.join(BUILD, "qemu-build", "qemu-system-x86_64")
# upstream QEMU's sp-mem: Debian's QEMU >= 11.1 run from its own root
# through a wrapper (setup/fetch-upstream-qemu.sh)
UPSTREAM_QEMU = os.path.join(BUILD, "qemu-upstream", "qemu-system-x86_64")
EXAMPLE = os.path.join(ROOT, "examples", "spm-memory-libvirt-native.xml")
LOGS = os.path.join(BUILD, "logs", "libvirt-native")
KERNEL = "6.12"          # the guest kernel series (spmtest.guest.KERNELS)
MiB, GiB = 1 << 20, 1 << 30
BLOCK = 128 * MiB       # what libvirt requires of an sp-mem size and address

# libvirt's messages (src/qemu/qemu_domain.c, qemu_hotplug.c,
# qemu_validate.c of patches/libvirt)
HOTPLUG_REFUSED = "hotplug is not supported for the sp-mem device"
UNPLUG_REFUSED = "hot unplug is not supported for the sp-mem device"
# (the granule is 128 MiB, or more for a backend with larger pages or
# alignment; libvirt says it in MiB or, since it can be larger, in KiB)
SIZE_REFUSED = re.compile(r"size of sp-mem memory device must be a multiple "
                          r"of (128 MiB|131072 KiB)\b")


# --- the emulators ---------------------------------------------------------

# name: the QEMU device libvirt must choose for <memory model='sp-mem'>;
# emulator: the XML's <emulator>; binary: the program that runs (the
# wrapper of the upstream QEMU starts it through its own dynamic loader);
# ovmf: boot with OVMF (>= 2026.05) rather than QEMU's default BIOS.
# This project's QEMU comes with the patched SeaBIOS; with upstream's, OVMF
# is the firmware that passes soft reserved memory to the guest (stock
# SeaBIOS drops it).
Emulator = namedtuple("Emulator", "name emulator binary ovmf")


def outer_to_build(path):
    """A path that a file written outside setup/libvirt-env.sh gives (the
    build directory at its own path) as a path under $BUILD, the build
    directory's fixed mount, which QEMU as nobody can reach whatever the
    permissions of the clone's parent directories."""
    outer = os.environ.get("SPM_BUILD_OUTER")
    if outer and path.startswith(outer.rstrip("/") + "/"):
        return os.path.join(BUILD, path[len(outer.rstrip("/")) + 1:])
    return path


def emulator(name):
    if name == "spm-memory":
        return Emulator(name, QEMU, QEMU, False)
    env = os.path.join(BUILD, "qemu-upstream", "env")
    try:
        with open(env) as f:
            values = dict(l.rstrip("\n").split("=", 1) for l in f if "=" in l)
    except FileNotFoundError:
        pytest.fail(f"no upstream QEMU ({env}): run 'make upstream-qemu'",
                    pytrace=False)
    return Emulator(name, UPSTREAM_QEMU,
                    os.path.join(BUILD, values["QEMU_UPSTREAM_BINARY"]), True)


# --- the patched libvirt from its build directory ---------------------------

def configmake():
    """The directories compiled into the build ({"SYSCONFDIR": ...})."""
    with open(os.path.join(LVBUILD, "configmake.h")) as f:
        return dict(re.findall(r'^#define (\w+) "([^"]*)"$', f.read(), re.M))


def check_build():
    """The patched libvirt is built, and at the path its binaries expect
    (which holds only under setup/libvirt-env.sh)."""
    missing = [p for p in ("src/virtqemud", "tools/virsh", "run",
                           "configmake.h")
               if not os.path.exists(os.path.join(LVBUILD, p))]
    if missing:
        pytest.fail(f"no patched libvirt build in {LVBUILD} (missing "
                    f"{', '.join(missing)}): run 'make libvirt-build'",
                    pytrace=False)
    with open(os.path.join(LVBUILD, "run")) as f:
        here = re.search(r'^here = "([^"]*)"$', f.read(), re.M)
    if here is None or os.path.realpath(here.group(1)) != \
            os.path.realpath(LVBUILD):
        pytest.fail(f"{LVBUILD} was built for "
                    f"{here.group(1) if here else '?'}: run the test under "
                    "setup/libvirt-env.sh", pytrace=False)


class Virtqemud(Daemon):
    """The patched virtqemud, run from its build directory."""

    NAME = "virtqemud"
    SOCKET = "run/virtqemud-sock"
    LOG = "var/log/libvirt/virtqemud.log"
    QEMU_LOGS = "var/log/libvirt/qemu"
    QEMU_RUN = "run/qemu"

    def __init__(self, qemu, logs):
        dirs = configmake()
        # -Dsystem=false: SYSCONFDIR /usr/local/etc, LOCALSTATEDIR
        # /var/local, RUNSTATEDIR /run. Mounted over as a whole where they
        # are libvirt's own prefix (/usr/local/etc, /var/local exist on
        # Debian, so nothing is created outside the namespace for them).
        self.MOUNTS = {"etc": dirs["SYSCONFDIR"],
                       "var": dirs["LOCALSTATEDIR"],
                       "run": os.path.join(dirs["RUNSTATEDIR"], "libvirt")}
        log = os.path.join(dirs["LOCALSTATEDIR"], "log", "libvirt",
                           "virtqemud.log")
        self.FILES = {"etc/libvirt/virtqemud.conf": daemon_conf(log),
                      "etc/libvirt/qemu.conf": QEMU_CONF_UNPRIVILEGED}
        super().__init__(qemu, logs)

    def command(self):
        # its default pid file is /run/virtqemud.pid, outside the mounts
        return [os.path.join(LVBUILD, "src", "virtqemud"),
                "--pid-file", self.path("virtqemud.pid")]

    def env(self):
        # what $LVBUILD/run sets up (it is not used itself: on a systemd
        # host it stops the host's libvirt units while the program runs)
        env = dict(os.environ)
        for var, value in (("LD_LIBRARY_PATH", os.path.join(LVBUILD, "src")),
                           ("PATH", os.path.join(LVBUILD, "tools")),
                           ("PATH", os.path.join(LVBUILD, "src"))):
            env[var] = value + (":" + env[var] if env.get(var) else "")
        env.update(LIBVIRT_DIR_OVERRIDE="1", abs_builddir=LVBUILD,
                   abs_top_builddir=LVBUILD)
        return env

    def virsh_command(self):
        return [os.path.join(LVBUILD, "tools", "virsh")]


@pytest.fixture(scope="module")
def daemon():
    if os.geteuid() != 0:
        pytest.skip("needs root (a system-mode virtqemud, mounts)")
    if os.environ.get("SPM_LIBVIRT_ENV") != "1":
        pytest.skip("the patched libvirt runs only under setup/libvirt-env.sh")
    # QEMU runs as nobody: in a user namespace (setup/libvirt-env.sh as
    # non-root) only uid 0 is mapped, and libvirt could not hand it files
    with open("/proc/self/uid_map") as f:
        mapped = [tuple(map(int, l.split())) for l in f if l.strip()]
    uid = pwd.getpwnam(QEMU_USER).pw_uid
    if not any(inner <= uid < inner + count for inner, _, count in mapped):
        pytest.skip(f"needs real root: {QEMU_USER} (uid {uid}) is not "
                    "mapped in this user namespace")
    check_build()
    d = Virtqemud((QEMU, emulator("sp-mem").binary), LOGS)
    try:
        d.start()
        # the daemon is the patched one from the build directory, with the
        # QEMU driver module from there too
        exe = os.path.realpath(f"/proc/{d.proc.pid}/exe")
        assert exe == os.path.realpath(os.path.join(LVBUILD, "src",
                                                    "virtqemud")), exe
        with open(f"/proc/{d.proc.pid}/maps") as f:
            maps = f.read()
        assert os.path.join(LVBUILD, "src", "libvirt_driver_qemu.so") in maps, \
            f"virtqemud did not load the QEMU driver from {LVBUILD}/src"
        yield d
    finally:
        d.stop()


# --- what the XML asks for --------------------------------------------------

SpMem = namedtuple("SpMem", "size node base")     # bytes, node, bytes or None

UNITS = {"b": 1, "bytes": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 10 ** 3,
         "m": MiB, "mib": MiB, "mb": 10 ** 6, "g": GiB, "gib": GiB,
         "gb": 10 ** 9, "t": 1 << 40, "tib": 1 << 40, "tb": 10 ** 12}


def size_bytes(elem):
    """A libvirt scaled integer (KiB unless unit= says otherwise)."""
    return int(elem.text) * UNITS[elem.get("unit", "KiB").lower()]


def sp_mem_devices(xml):
    """The sp-mem devices of a domain XML, in document order."""
    devs = []
    for mem in ET.fromstring(xml).findall("./devices/memory[@model='sp-mem']"):
        addr = mem.find("./target/address")
        devs.append(SpMem(size_bytes(mem.find("./target/size")),
                          int(mem.find("./target/node").text),
                          None if addr is None else int(addr.get("base"), 0)))
    return devs


def fill_example(name_suffix="", emu=None):
    """The example with its placeholders filled in, and for an emulator
    that boots with OVMF, OVMF as pflash with its VARS template."""
    emu = emu or emulator("spm-memory")
    try:
        kenv, initrd = spmguest.prepared_kernel(KERNEL)
        fw = spmguest.prepared_firmware() if emu.ovmf else None
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    xml = fill_placeholders(EXAMPLE, {
        "EMULATOR": emu.emulator, "KERNEL": outer_to_build(kenv["VMLINUZ"]),
        "INITRD": outer_to_build(initrd),
        "CONSOLE_LOG": os.path.join(LOGS, f"console{name_suffix}.log")})
    if fw:
        name = domain_name(xml)
        loader = (f"\n    <loader readonly='yes' type='pflash' format='raw'>"
                  f"{outer_to_build(fw['OVMF'])}</loader>"
                  f"\n    <nvram template='{outer_to_build(fw['OVMF_VARS'])}' "
                  f"format='raw'>{os.path.join(LOGS, name + name_suffix)}"
                  f"_VARS.fd</nvram>")
        xml, n = re.subn(r"(<type [^>]*>hvm</type>)", r"\1" + loader, xml)
        assert n == 1, f"{EXAMPLE}: no <os><type>...</type> for the loader"
    return xml


def domain_name(xml):
    return ET.fromstring(xml).findtext("./name")


def device_xml(dev):
    """<memory model='sp-mem'> for virsh attach-device/detach-device."""
    addr = "" if dev.base is None else f"<address base='{dev.base:#x}'/>"
    return (f"<memory model='sp-mem'><target><size unit='KiB'>"
            f"{dev.size // 1024}</size><node>{dev.node}</node>{addr}"
            "</target></memory>\n")


# --- the running domain -----------------------------------------------------

Running = namedtuple("Running", "name xml devs report pid emu")


def assert_qemu_can_read(xml, emu):
    """Every file of the domain that QEMU itself opens is readable (and the
    emulator executable) by qemu.conf's user, whatever the permissions of
    the clone's parent directories: a clear failure rather than QEMU's."""
    root = ET.fromstring(xml)
    paths = [(emu.emulator, "-x"), (emu.binary, "-x")]
    paths += [(root.findtext(f"./os/{e}"), "-r")
              for e in ("kernel", "initrd", "loader")]
    if not emu.ovmf:   # QEMU's default BIOS: the patched SeaBIOS it links
        paths.append((os.path.join(BUILD, "qemu-build", "qemu-bundle", "usr",
                                   "local", "share", "qemu", "bios-256k.bin"),
                      "-r"))
    for path, test in paths:
        if path and subprocess.run(
                ["setpriv", f"--reuid={QEMU_USER}", f"--regid={QEMU_GROUP}",
                 "--clear-groups", "test", test, path]).returncode != 0:
            pytest.fail(f"QEMU runs as {QEMU_USER}:{QEMU_GROUP}, who cannot "
                        f"{'run' if test == '-x' else 'read'} {path}",
                        pytrace=False)


@pytest.fixture(scope="module", params=["spm-memory", "sp-mem"])
def domain(request, daemon):
    """The example running, on this project's QEMU (spm-memory) and on
    upstream QEMU (sp-mem): the same XML, one domain after the other."""
    os.makedirs(LOGS, exist_ok=True)
    emu = emulator(request.param)
    suffix = "" if emu.name == "spm-memory" else "-upstream"
    xml = fill_example(suffix, emu)
    root = ET.fromstring(xml)
    root.find("./name").text += suffix
    xml = ET.tostring(root, encoding="unicode")
    name, devs = domain_name(xml), sp_mem_devices(xml)
    # the example is what these tests are about: two devices on different
    # nodes, one placed by QEMU and one at an explicit address
    assert len(devs) == 2 and {d.node for d in devs} == {1, 2} and \
        sorted(d.base is None for d in devs) == [False, True], \
        f"{EXAMPLE}: expected two sp-mem devices, on nodes 1 and 2, one " \
        f"with and one without <address base=.../>: {devs}"
    console_log = os.path.join(LOGS, f"console{suffix}.log")
    if os.path.exists(console_log):
        os.unlink(console_log)
    xml_path = os.path.join(LOGS, f"domain{suffix}.xml")
    assert_qemu_can_read(xml, emu)
    # (a VARS file of an earlier run, perhaps of another OVMF: start afresh)
    nvram = ET.fromstring(xml).findtext("./os/nvram")
    if nvram and os.path.exists(nvram):
        os.unlink(nvram)
    with open(xml_path, "w") as f:
        f.write(xml)

    daemon.virsh("define", xml_path)
    try:
        t0 = time.time()
        daemon.virsh("start", name)
        pid = daemon.qemu_pid(name)
        assert pid is not None and runs_binary(pid, emu.binary), \
            f"no QEMU {emu.binary} for {name} (pid {pid}):\n{daemon.diag()}"
        report = wait_for_report(daemon, name, console_log, timeout=240)
        print(f"{name}: guest report after {time.time() - t0:.0f}s")
        yield Running(name, xml, devs, report, pid, emu)
    finally:
        daemon.virsh("destroy", name, check=False)
        # (libvirt refuses to undefine a domain with NVRAM without --nvram)
        daemon.virsh("undefine", "--nvram", name, check=False)


def guest_range(report, dev):
    """The soft reserved range the guest has for `dev`: (start, end) of
    the one E820 soft reserved range of the device's size whose SRAT entry
    is on the device's node."""
    srat = {(e["start"], e["end"]): e["node"] for e in report["srat"]}
    ranges = [(s, e) for s, e in spmguest.e820_soft_reserved(report)
              if e - s + 1 == dev.size and srat.get((s, e)) == dev.node]
    assert len(ranges) == 1, \
        f"{dev}: expected one soft reserved E820 range of {dev.size:#x} " \
        f"bytes with an SRAT entry on node {dev.node}, the guest has " \
        f"{ranges}; E820 {report['e820']}; SRAT {report['srat']}"
    return ranges[0]


def live_devices(daemon, name, *flags):
    xml = daemon.virsh("dumpxml", name, *flags).stdout
    with open(os.path.join(LOGS, "dumpxml" + "".join(flags) + ".xml"),
              "w") as f:
        f.write(xml)
    return sp_mem_devices(xml)


# --- the tests --------------------------------------------------------------

def test_guest_sees_each_device(domain):
    report, devs = domain.report, domain.devs
    soft = spmguest.e820_soft_reserved(report)
    assert len(soft) == len(devs), \
        f"expected {len(devs)} soft reserved E820 ranges, one per sp-mem " \
        f"device, the guest has {[(hex(s), hex(e)) for s, e in soft]}"
    nodes = {n["id"]: n["memtotal_kb"] for n in report["nodes"]}
    for dev in devs:
        start, end = guest_range(report, dev)
        if dev.base is not None:
            assert start == dev.base, \
                f"{dev}: the guest has its range at {start:#x}, the XML " \
                f"says <address base='{dev.base:#x}'/>"
        # a dax device over the range on the device's node; kmem (6.12)
        # onlines it: the node has exactly the device's memory
        driver = spmguest.DRIVER[KERNEL]
        dax = [(d["start"], d["size"], d["target_node"], d["driver"])
               for d in report["dax"] if d["start"] == start]
        assert dax == [(start, dev.size, dev.node, driver)], \
            f"{dev}: expected one dax device at {start:#x} on node " \
            f"{dev.node} bound to {driver}, the guest has {report['dax']}"
        if driver == "kmem":
            assert nodes.get(dev.node) == dev.size // 1024, \
                f"{dev}: node {dev.node} should have the device's " \
                f"{dev.size // 1024} kB, the guest has {report['nodes']}"
    assert len(report["dax"]) == len(devs), report["dax"]


def test_live_xml_has_addresses(domain, daemon):
    live = live_devices(daemon, domain.name)
    assert [(d.size, d.node) for d in live] == \
        [(d.size, d.node) for d in domain.devs], \
        f"virsh dumpxml: sp-mem devices {live}, defined {domain.devs}"
    for dev, got in zip(domain.devs, live):
        assert got.base is not None, \
            f"virsh dumpxml: no <address base=.../> for {dev}"
        if dev.base is not None:
            want = dev.base
        else:
            want = guest_range(domain.report, dev)[0]
        assert got.base == want, \
            f"virsh dumpxml: {dev} at {got.base:#x}, expected {want:#x} " \
            f"({'the XML' if dev.base is not None else 'where the guest has it'})"
    # the persistent definition keeps what was defined: QEMU's choice is
    # only a property of this run
    inactive = live_devices(daemon, domain.name, "--inactive")
    assert inactive == domain.devs, \
        f"virsh dumpxml --inactive: {inactive}, defined {domain.devs}"


def qemu_command_line(log):
    """The argv libvirt logged for the (first) start of QEMU, without the
    environment assignments before the binary."""
    lines = log.splitlines()
    try:
        i = next(i for i, l in enumerate(lines) if l.startswith("LC_ALL="))
    except StopIteration:
        return None
    cmd = []
    for line in lines[i:]:
        cmd.append(line[:-1] if line.endswith("\\") else line)
        if not line.endswith("\\"):
            break
    argv = shlex.split(" ".join(cmd))
    while argv and re.match(r"^\w+=", argv[0]):
        argv.pop(0)
    return argv


def options(argv, name):
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name]


def test_command_line_and_no_taint(domain, daemon):
    log = daemon.domain_log(domain.name)
    argv = qemu_command_line(log)
    assert argv, f"no QEMU command line in the domain log:\n{log}"
    assert os.path.realpath(argv[0]) == \
        os.path.realpath(domain.emu.emulator), argv[0]
    objects = {}
    for o in options(argv, "-object"):
        if o.startswith("{"):
            o = json.loads(o)
            objects[o["id"]] = o
    devices = [json.loads(d) for d in options(argv, "-device")
               if d.startswith("{")]
    spm = [d for d in devices if d.get("driver") in ("spm-memory", "sp-mem")]
    # the device the emulator has: this project's QEMU has spm-memory
    # (libvirt's capabilities probing must find it), upstream's sp-mem
    want = domain.emu.name
    assert [d["driver"] for d in spm] == [want] * len(domain.devs), \
        f"expected a -device {want} per sp-mem device, QEMU got {spm}"
    for dev, d in zip(domain.devs, spm):
        assert d["node"] == dev.node, f"{dev}: {d}"
        assert d.get("addr") == dev.base, \
            f"{dev}: addr={d.get('addr')} on the command line: {d}"
        backend = objects.get(d["memdev"])
        assert backend is not None and backend["size"] == dev.size, \
            f"{dev}: memdev {d['memdev']} is {backend}"
    # the memory-less cells are bare NUMA nodes (no memory backend)
    numa = options(argv, "-numa")
    for dev in domain.devs:
        assert f"node,nodeid={dev.node}" in numa, \
            f"no bare -numa node,nodeid={dev.node}: {numa}"
    # nothing libvirt does not support: the domain is not tainted (the
    # passthrough example is tainted custom-argv, and custom-monitor by
    # its qemu-monitor-command; QEMU as root would be high-privileges)
    taint = [l for l in log.splitlines() if "taint" in l.lower()]
    assert taint == [], f"the domain is tainted: {taint}"
    # and QEMU runs as the user and group qemu.conf names, not as root
    with open(f"/proc/{domain.pid}/status") as f:
        ids = dict(l.split(":", 1) for l in f.read().splitlines())
    want = (pwd.getpwnam(QEMU_USER).pw_uid, grp.getgrnam(QEMU_GROUP).gr_gid)
    got = (int(ids["Uid"].split()[1]), int(ids["Gid"].split()[1]))
    assert got == want, f"QEMU runs as uid/gid {got}, qemu.conf says " \
        f"{QEMU_USER}:{QEMU_GROUP} {want}"


def assert_still_running(daemon, domain):
    state = daemon.virsh("domstate", domain.name).stdout.strip()
    assert state == "running", f"domain {state!r} after a refused hotplug"
    assert daemon.qemu_pid(domain.name) == domain.pid and \
        runs_binary(domain.pid, domain.emu.binary), \
        f"QEMU (pid {domain.pid}) is gone:\n{daemon.diag()}"
    live = live_devices(daemon, domain.name)
    assert [(d.size, d.node) for d in live] == \
        [(d.size, d.node) for d in domain.devs], live


def assert_refused_live(daemon, domain, verb, dev, expected):
    """virsh VERB DOMAIN FILE --live with DEV's XML: refused by libvirt
    with exit status 1 and EXPECTED, and the same QEMU keeps running."""
    path = os.path.join(LOGS, f"{verb}.xml")
    with open(path, "w") as f:
        f.write(device_xml(dev))
    r = daemon.virsh(verb, domain.name, path, "--live", check=False)
    assert r.returncode == 1 and expected in r.stderr, \
        f"virsh {verb} --live: status {r.returncode}, expected 1 " \
        f"with {expected!r}:\n{r.stderr}{r.stdout}"
    assert_still_running(daemon, domain)


def test_hotplug_refused(domain, daemon):
    assert_refused_live(daemon, domain, "attach-device",
                        SpMem(256 * MiB, 1, None), HOTPLUG_REFUSED)


def test_hot_unplug_refused(domain, daemon):
    dev = next(d for d in domain.devs if d.base is not None)
    assert_refused_live(daemon, domain, "detach-device", dev, UNPLUG_REFUSED)


def test_unaligned_size_refused(daemon):
    os.makedirs(LOGS, exist_ok=True)
    root = ET.fromstring(fill_example("-unaligned"))
    name = root.findtext("./name") + "-unaligned"
    root.find("./name").text = name
    size = root.find("./devices/memory[@model='sp-mem']/target/size")
    size.set("unit", "MiB")
    size.text = "192"
    assert (192 * MiB) % BLOCK != 0
    path = os.path.join(LOGS, "unaligned.xml")
    ET.ElementTree(root).write(path)
    r = daemon.virsh("define", path, check=False)
    try:
        step = "define"
        if r.returncode == 0:
            # refused at the latest when it is started
            step = "start"
            r = daemon.virsh("start", name, check=False)
        print(f"{name}: {step}: {r.stderr.strip()}")
        assert r.returncode == 1 and SIZE_REFUSED.search(r.stderr), \
            f"virsh define/start of a 192 MiB sp-mem device: status " \
            f"{r.returncode}, expected 1 with {SIZE_REFUSED.pattern!r}:\n" \
            f"{r.stderr}{r.stdout}"
        # and before any QEMU was started for it
        assert daemon.qemu_pid(name) is None, f"a QEMU was started for {name}"
        assert qemu_command_line(daemon.domain_log(name)) is None, \
            f"a QEMU was started for {name}:\n{daemon.domain_log(name)}"
        assert name not in daemon.virsh("list", "--name").stdout.split()
    finally:
        daemon.virsh("destroy", name, check=False)
        daemon.virsh("undefine", name, check=False)
