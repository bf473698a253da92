"""make demo-host: a host's dax device, passed through QEMU, in a VM.

Boots a Linux guest that plays the host (spmtest.hostvm: Debian 6.12 under
TCG; its spm-memory device is its /dev/dax0.0) and, inside it, our QEMU
with an spm-memory device backed by that dax device:

    -object memory-backend-file,id=hbm0,mem-path=/dev/dax0.0,size=512M,align=2M,share=on
    -device spm-memory,id=spm0,memdev=hbm0,node=1

and shows the chain: the host's dax device, where QEMU placed the device,
the inner VM's E820 map and SRAT (read over fw_cfg as its firmware would),
bytes written at the device's guest-physical address (through qtest, from
here) read back from /dev/dax0.0 on the host, and what QEMU says to a dax
device too small.

    python3 -m demo.host
"""
import os
import sys

from spmtest import build_dir, fwcfg, hostvm

MiB, GiB = 1 << 20, 1 << 30
SIZE, NODE, SEED = 512 * MiB, 1, 1
BACKEND = f"memory-backend-file,id=hbm0,mem-path={hostvm.DAX},size=512M,align=2M,share=on"
DEVICE = f"spm-memory,id=spm0,memdev=hbm0,node={NODE}"
INNER = ["-M", "q35", "-m", "256M,maxmem=2G", "-smp", "1",
         "-nodefaults", "-display", "none",
         "-object", "memory-backend-ram,id=r0,size=256M",
         "-numa", "node,nodeid=0,memdev=r0,cpus=0", "-numa", "node,nodeid=1"]
WRITES = (0, SIZE // 2, SIZE - 4096)
TOO_BIG = BACKEND.replace("size=512M", "size=1G")


def rng(start, length):
    return f"{start:#012x}-{start + length - 1:#012x}"


def main():
    logs = os.path.join(build_dir(), "demo")
    console, ctl = os.path.join(logs, "host-console.log"), os.path.join(logs, "host-ctl.log")
    print("Booting a Linux guest that plays the host (TCG, Debian 6.12), with "
          "our QEMU inside it...", flush=True)
    writes = [(off, hostvm.pattern(off, 4096, SEED)) for off in WRITES]
    try:
        with hostvm.HostVM(console, ctl) as l1:
            out = l1.run(INNER + ["-object", BACKEND, "-device", DEVICE],
                         writes=writes, dax=True)
            bad = l1.run(INNER + ["-object", TOO_BIG, "-device", DEVICE])
            secs = l1.boot_seconds + out.seconds + bad.seconds
    except RuntimeError as e:
        print(f"demo-host: {e}", file=sys.stderr)
        return 1
    if out.refused or out.error:
        print("demo-host: QEMU did not start with the dax backend:\n  " +
              "\n  ".join(out.stderr + [out.error or ""]), file=sys.stderr)
        return 1
    dax = [hostvm.fields(d) for d in l1.info.all("dax")]
    print(f"(done in {secs:.0f} s)\n\n1. The host's specific-purpose memory:")
    for d in dax:
        print(f"  {d['dev']}: {int(d['size']) // MiB} MiB at {d['start']}, "
              f"node {d['target_node']}, driver {d['driver']}, align {d['align']}")
    for line in l1.info.all("iomem"):
        print(f"  /proc/iomem: {line}")

    print("\n2. QEMU on the host (a VM that runs no code: -accel qtest):")
    print("  qemu-system-x86_64 ... \\\n    -object " + BACKEND +
          " \\\n    -device " + DEVICE)
    dev = out.device()
    addr = dev["memaddr"]
    print(f"  QMP query-memory-devices: {dev['id']} at {addr:#x}, "
          f"size {dev['size']:#x}, memdev {dev['memdev']}")
    hva = out.hva("hbm0")
    for lo, hi, numa_maps, smaps in out.mappings(hva, hva + dev["size"]):
        print(f"  the host's numa_maps of QEMU's mapping: {numa_maps}")

    print("\n3. The VM's firmware tables (fw_cfg, as its firmware reads them):")
    e820 = fwcfg.e820(out.e820)
    for a, n, t in e820:
        kind = {fwcfg.E820_RAM: "RAM", fwcfg.E820_RESERVED: "reserved",
                fwcfg.E820_SOFT_RESERVED: "soft reserved"}.get(t, hex(t))
        print(f"  E820 {rng(a, n)} {kind}")
    srat = fwcfg.srat_memory(out.acpi) or []
    for base, n, pxm, flags in srat:
        if n:
            what = "enabled" + (", hotpluggable" if flags & fwcfg.SRAT_HOTPLUGGABLE else "")
            print(f"  SRAT memory {rng(base, n)} node {pxm} ({what})")

    print("\n4. Bytes written at the device's guest-physical address, read on "
          f"the host from {hostvm.DAX}:")
    good = True
    for w in out.writes:
        same = w.dax == w.data == w.qtest
        good &= same
        print(f"  guest {w.gpa:#x} = {hostvm.DAX} offset {w.off:#x}: 4 KiB, "
              f"checksum {hostvm.fnv1a64(w.dax):#018x} "
              f"({'as written' if same else 'DIFFERENT'})")

    print("\n5. The same with size=1G, more than the dax device holds:")
    for line in bad.stderr:
        print(f"  {line}")
    print(f"  exit status={bad.status}")

    ok = good and len(out.writes) == len(WRITES) and \
        [(a, n) for a, n, t in e820 if t == fwcfg.E820_SOFT_RESERVED] == [(addr, SIZE)] and \
        (addr, SIZE, NODE, fwcfg.SRAT_ENABLED) in srat and \
        bad.refused and bad.status == 1
    print(f"\nHost console and request logs: {console}, {ctl}")
    print("\nResult: " + ("the host's /dev/dax0.0 is the VM's spm-memory: one soft "
                          "reserved E820 range and an SRAT entry on node 1 over it, "
                          "and what the VM writes there is in the dax device."
                          if ok else "the chain does NOT hold (see the logs)."))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
