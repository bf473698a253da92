"""Guest end-to-end tests: real Debian kernels see each spm-memory device.

Each test boots the patched QEMU (TCG) with a placement of spm-memory
devices, a firmware and a Debian kernel (scripts/boot-guest.sh), asks QEMU
over QMP where it put the devices, and checks what the guest made of them
from its report (scripts/guest-init.sh, parsed by scripts/parse-report.py):

- /proc/iomem has "Soft Reserved" exactly over each device;
- the SRAT lines: each device's range at its node (guest node == QEMU node)
  without "hotplug"; the rest of device memory "hotplug" at the last node;
- one dax device per spm-memory device with its start, size and target
  node, bound to device_dax (6.1) or kmem (6.12, where the node's memory
  grows by the device's size).

Firmware without soft-reserved support (stock SeaBIOS, OVMF before 2026.05)
is tested for its documented behaviour: SRAT as above, but no Soft Reserved
range and no dax device.
"""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))), "scripts"))
import spmguest  # noqa: E402

SCRIPTS = spmguest.SCRIPTS
BUILD = spmguest.BUILD
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
DEVMEM = 0x100000000          # device memory starts at 4 GiB with 1 GiB of RAM


def spm(n, size_mib, node, addr=None):
    dev = f"spm-memory,id=spm{n},memdev=hbm{n},node={node}"
    if addr is not None:
        dev += f",addr={addr:#x}"
    return ["-object", f"memory-backend-ram,id=hbm{n},size={size_mib}M",
            "-device", dev]


def numa(nodes, hmat=False):
    init = ",initiator=0" if hmat else ""
    args = ["-object", "memory-backend-ram,id=m0,size=1G",
            "-numa", "node,nodeid=0,memdev=m0,cpus=0-1" + init]
    for n in range(1, nodes):
        args += ["-numa", f"node,nodeid={n}{init}"]
    return args


def merged(ranges):
    """Ranges as Linux keeps them: adjacent ones of one type merged."""
    out = []
    for start, end in sorted(ranges):
        if out and out[-1][1] + 1 == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


# name: machine, NUMA nodes, QEMU arguments, expected devices
# (id, addr, size, node) and device memory (base, size).
PLACEMENTS = {
    "natural": dict(
        machine="q35", nodes=2,
        args=["-m", "1G,maxmem=8G"] + numa(2) + spm(0, 512, 1),
        spm=[("spm0", DEVMEM, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB)),
    "addr-after-gap": dict(
        machine="q35", nodes=2,
        args=["-m", "1G,maxmem=8G"] + numa(2) + spm(0, 512, 1, 0x140000000),
        spm=[("spm0", 0x140000000, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB)),
    # natural placement leaves 128 MiB between the devices, so that the
    # guest does not merge them into one range on the first node
    "two-nodes-natural": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3) + spm(0, 512, 1) + spm(1, 512, 2),
        spm=[("spm0", DEVMEM, 512 * MiB, 1),
             ("spm1", DEVMEM + 640 * MiB, 512 * MiB, 2)],
        devmem=(DEVMEM, 7 * GiB)),
    # the higher node at the lower address
    "two-nodes-gap": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3) + spm(0, 512, 2, DEVMEM)
        + spm(1, 512, 1, 0x180000000),
        spm=[("spm0", DEVMEM, 512 * MiB, 2),
             ("spm1", 0x180000000, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB)),
    "beside-pc-dimm": dict(
        machine="q35", nodes=3,
        args=["-m", "1G,slots=2,maxmem=8G"] + numa(3)
        + ["-object", "memory-backend-ram,id=d0,size=512M",
           "-device", "pc-dimm,id=dimm0,memdev=d0,node=2"] + spm(0, 512, 1),
        spm=[("spm0", DEVMEM + 512 * MiB, 512 * MiB, 1)],
        devmem=(DEVMEM, 9 * GiB)),
    # back to back on two nodes: only right with an ACPI HMAT, where Linux
    # registers each SRAT range separately; without one QEMU refuses this
    # (Soft Reserved is still one merged range in /proc/iomem)
    "adjacent-hmat": dict(
        machine="q35,hmat=on", nodes=3,
        args=["-m", "1G,maxmem=8G"] + numa(3, hmat=True)
        + spm(0, 512, 1, DEVMEM) + spm(1, 512, 2, DEVMEM + 512 * MiB),
        spm=[("spm0", DEVMEM, 512 * MiB, 1),
             ("spm1", DEVMEM + 512 * MiB, 512 * MiB, 2)],
        devmem=(DEVMEM, 7 * GiB)),
    "pc-machine": dict(
        machine="pc", nodes=2,
        args=["-m", "1G,maxmem=8G"] + numa(2) + spm(0, 512, 1),
        spm=[("spm0", DEVMEM, 512 * MiB, 1)],
        devmem=(DEVMEM, 7 * GiB)),
}

KERNELS = ["6.1", "6.12"]
DRIVER = {"6.1": "device_dax", "6.12": "kmem"}


def seabios_stock():
    """Stock SeaBIOS 1.17.0, built like the patched one but without patches."""
    env = dict(os.environ, SEABIOS_PATCHES="none", SEABIOS_NAME="seabios-stock")
    out = subprocess.run([os.path.join(SCRIPTS, "build-seabios.sh")], env=env,
                         check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1]


def ovmf_before_2026_05():
    """Debian trixie's OVMF (edk2 2025.02): no soft reserved support."""
    out = subprocess.run([os.path.join(SCRIPTS, "fetch-deb.sh"), "ovmf",
                          r"2025\.02"], check=True, capture_output=True,
                         text=True).stdout
    return os.path.join(out.strip().splitlines()[-1],
                        "usr/share/OVMF/OVMF_CODE_4M.fd")


# firmware: (boot-guest.sh -f value or a function giving it, soft reserved?)
FIRMWARE = {
    "seabios": ("seabios", True),           # QEMU's default: patched 1.17.0
    "ovmf": ("ovmf", True),                 # Debian ovmf-generic 2026.08
    "seabios-stock": (seabios_stock, False),
    "ovmf-2025.02": (ovmf_before_2026_05, False),
}


def boot(placement, firmware, kernel):
    p = PLACEMENTS[placement]
    fw = FIRMWARE[firmware][0]
    log = os.path.join(BUILD, "logs", "guest",
                       f"{placement}-{firmware}-{kernel}.log")
    return spmguest.boot(["-M", p["machine"], *p["args"]], kernel=kernel,
                         firmware=fw() if callable(fw) else fw, log=log)


def check_qmp(devices, p):
    got = sorted((d["id"], d["memaddr"], d["size"], d["node"]) for d in devices)
    assert got == sorted(p["spm"])


def check_srat(report, p):
    """Device ranges at their nodes, the rest hotplug at the last node."""
    last = p["nodes"] - 1
    base, size = p["devmem"]
    devmem = [s for s in report["srat"]
              if s["start"] >= base and s["end"] < base + size]
    for _, addr, sz, node in p["spm"]:
        match = [s for s in devmem if s["start"] == addr]
        assert len(match) == 1, f"no single SRAT entry at {addr:#x}: {devmem}"
        s = match[0]
        assert (s["end"], s["pxm"], s["node"], s["hotplug"]) == \
            (addr + sz - 1, node, node, False)
    spm_starts = {addr for _, addr, _, _ in p["spm"]}
    rest = [s for s in devmem if s["start"] not in spm_starts]
    assert rest, "no hotpluggable device memory in SRAT"
    for s in rest:
        assert (s["pxm"], s["node"], s["hotplug"]) == (last, last, True), s
    # together: exactly device memory, without overlaps
    ranges = sorted((s["start"], s["end"]) for s in devmem)
    assert ranges[0][0] == base and ranges[-1][1] == base + size - 1
    for (_, end), (start, _) in zip(ranges, ranges[1:]):
        assert start == end + 1, f"SRAT device memory not contiguous: {ranges}"


def check_soft_reserved(report, p, kernel):
    sr = sorted((r["start"], r["end"]) for r in report["iomem"]
                if r["name"] == "Soft Reserved")
    devs = [(addr, addr + sz - 1) for _, addr, sz, _ in p["spm"]]
    assert sr == merged(devs)
    dax = sorted((d["start"], d["size"], d["target_node"], d["driver"])
                 for d in report["dax"])
    assert dax == sorted((addr, sz, node, DRIVER[kernel])
                         for _, addr, sz, node in p["spm"])
    if kernel == "6.12":
        # kmem onlined the memory: nodes with only spm-memory have its size
        nodes = {n["id"]: n["memtotal_kb"] for n in report["nodes"]}
        for node in {n for _, _, _, n in p["spm"]}:
            want = sum(sz for _, _, sz, n in p["spm"] if n == node) // KiB
            assert nodes.get(node) == want, f"node {node}: {report['nodes']}"
        kmem = [r for r in report["iomem"] if r["name"] == "System RAM (kmem)"]
        assert sorted((r["start"], r["end"]) for r in kmem) == sorted(devs)


def check_no_soft_reserved(report):
    assert not [r for r in report["iomem"] if r["name"] == "Soft Reserved"]
    assert not [e for e in report["e820"] if e["type"] == "soft reserved"]
    assert report["dax"] == []


CASES = [(pl, fw, k) for pl in PLACEMENTS for fw in ("seabios", "ovmf")
         for k in KERNELS]
CASES += [("natural", fw, k) for fw in ("seabios-stock", "ovmf-2025.02")
          for k in KERNELS]


@pytest.mark.parametrize("placement,firmware,kernel", CASES,
                         ids=["-".join(c) for c in CASES])
def test_guest(placement, firmware, kernel):
    p = PLACEMENTS[placement]
    devices, report = boot(placement, firmware, kernel)
    assert report["kernel"].startswith(kernel + ".")
    check_qmp(devices, p)
    check_srat(report, p)
    if FIRMWARE[firmware][1]:
        check_soft_reserved(report, p, kernel)
    else:
        check_no_soft_reserved(report)
