"""spmtest: the test side of spm-memory, one package for the tests, the
fuzzer, the benchmark (bench/) and the demos (demo/).

    spmtest.qemupy  QEMU's own Python from the working tree (qemu.qmp,
                    qemu.machine): the QMP and qtest clients and the
                    machine launcher, for everything that talks to QEMU
    spmtest.fwcfg   guest memory and fw_cfg over DMA through QEMU's qtest
                    client, etc/e820 and the ACPI tables (SRAT) decoded
                    from bytes
    spmtest.report  the guest's report (guest/init.sh) parsed from a console
    spmtest.guest   booting Linux guests (guest/boot.sh) and watching them
    spmtest.hostvm  the guest that plays a host with dax devices, NUMA nodes
                    and hugepages (guest/hostvm), and our QEMU inside it,
                    driven from here over the guest's virtio-serial ports

Importing it has no side effects: nothing in os.environ changes and no
process starts. Run its users from the repository root (python3 -m ...);
the tests are a package below it, so pytest finds this one on its own.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_dir():
    """The build directory: $BUILD, else build/ in the repository."""
    return os.environ.get("BUILD") or os.path.join(ROOT, "build")


def qemu_binary():
    """The QEMU to test: $QEMU, else the one "make qemu" built."""
    return os.environ.get("QEMU") or os.path.join(
        build_dir(), "qemu-build", "qemu-system-x86_64")
