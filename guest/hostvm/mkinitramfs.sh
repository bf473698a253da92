#!/bin/bash
# guest/hostvm/mkinitramfs.sh QEMU-BINARY
#
# Build $BUILD/guest/hostvm-initramfs.cpio.gz, the initramfs of the "host
# VM" (L1) of tests/hostvm: a Linux guest that has an spm-memory range as
# /dev/dax0.0 and runs QEMU-BINARY inside itself, as the host of a second
# VM (L2) with an spm-memory device backed by that dax device, by
# host-node-bound RAM or by hugepages. It holds:
#
#   /init                  guest/hostvm/init.sh
#   /bin/busybox + applets the host's busybox-static
#   /bin/daxhex            guest/hostvm/daxhex.c, built static (reads
#                          /dev/dax0.0, which busybox cannot)
#   /lib/modules/RELEASE/  device_dax and dax_hmem of the guest kernel
#                          (decompressed; no kmem: the range must stay a
#                          device-dax device); virtio_console, for the ports
#                          the test drives QEMU through, is built in
#   /opt/qemu/qemu-system-x86_64   QEMU-BINARY, stripped
#   /opt/qemu/qemu-bundle/usr/local/share/qemu/   its firmware (FIRMWARE
#                          below), where a binary with a qemu-bundle
#                          directory beside it looks by default
#   every shared library that ldd lists for QEMU-BINARY, and the dynamic
#   loader, at the same paths as on this host
#
# The kernel is described by $KERNEL_ENV (default
# $BUILD/guest/kernel-6.12.env, written by guest/kernel.sh 6.12).
# Prints the image's path. "make hostvm" runs it when an input changed
# (QEMU, its firmware, the kernel, this folder).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$(cd "$here/../.." && pwd)/build}
KERNEL_ENV=${KERNEL_ENV:-$BUILD/guest/kernel-6.12.env}
die() { echo "hostvm/mkinitramfs: $*" >&2; exit 1; }
. "$here/../initramfs.sh"

[ $# = 1 ] || { echo "usage: $0 QEMU-BINARY" >&2; exit 2; }
qemu=$(readlink -f "$1")
[ -x "$qemu" ] || die "no QEMU binary at $1"
[ -f "$KERNEL_ENV" ] || die "no kernel description $KERNEL_ENV (guest/kernel.sh 6.12)"
# KERNEL_RELEASE, MOD_DEVICE_DAX, MOD_DAX_HMEM (KEY=VALUE lines)
KERNEL_RELEASE='' MOD_DEVICE_DAX='' MOD_DAX_HMEM=''
while IFS='=' read -r k v; do
    case "$k" in
        KERNEL_RELEASE|MOD_DEVICE_DAX|MOD_DAX_HMEM) printf -v "$k" '%s' "$v" ;;
    esac
done < "$KERNEL_ENV"
if [ -z "$KERNEL_RELEASE" ] || [ ! -f "$MOD_DEVICE_DAX" ] || [ ! -f "$MOD_DAX_HMEM" ]; then
    die "$KERNEL_ENV names no kernel release or dax modules"
fi
# Firmware the L2 QEMU loads: -accel qtest runs no code, but the machine
# still loads its BIOS image and, for the APIC of TCG and qtest, the vapic
# option ROM (q35 with -nodefaults needs nothing else).
FIRMWARE=(bios-256k.bin kvmvapic.bin)
datadir=$(dirname "$qemu")/qemu-bundle/usr/local/share/qemu
for f in "${FIRMWARE[@]}"; do
    [ -e "$datadir/$f" ] || die "no $datadir/$f (make qemu links it)"
done

# Shared libraries: the "=> /path" entries of ldd, plus the loader (the
# only entry that is a bare absolute path).
mapfile -t libs < <(ldd "$qemu" | awk '$2 == "=>" && $3 ~ /^\// {print $3}
                                      $1 ~ /^\// {print $1}')
[ ${#libs[@]} -gt 0 ] || die "ldd lists no libraries for $qemu"

out=$BUILD/guest
img=$out/hostvm-initramfs.cpio.gz
mkdir -p "$out"
root=$(mktemp -d "$out/hostvm-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
initramfs_base "$root" "$here/init.sh"
gcc -static -O2 -Wall -o "$root/bin/daxhex" "$here/daxhex.c"

mdir=$root/lib/modules/$KERNEL_RELEASE/kernel/drivers
initramfs_module "$MOD_DEVICE_DAX" "$mdir/device_dax.ko"
initramfs_module "$MOD_DAX_HMEM" "$mdir/dax_hmem.ko"

mkdir -p "$root/opt/qemu/qemu-bundle/usr/local/share/qemu"
strip -o "$root/opt/qemu/qemu-system-x86_64" "$qemu"
for f in "${FIRMWARE[@]}"; do
    cp -L "$datadir/$f" "$root/opt/qemu/qemu-bundle/usr/local/share/qemu/$f"
done
for lib in "${libs[@]}"; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

initramfs_pack "$root" "$img" 6
echo "$img"
