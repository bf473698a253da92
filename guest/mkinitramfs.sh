#!/bin/bash
# guest/mkinitramfs.sh 6.1|6.12|7.x
#
# Build $BUILD/guest/initramfs-SERIES.cpio.gz for the kernel of the series
# that guest/kernel.sh chose ($BUILD/guest/kernel-SERIES.env): the host's
# busybox-static with its applets as symlinks in /bin, the kernel's
# device_dax, kmem and dax_hmem modules (decompressed) under
# /lib/modules/RELEASE/kernel/drivers/dax,
# guest/init.sh as /init and guest/spmtool.c built static as
# /bin/spmtool. Prints the initramfs path.
#
# The Makefile runs it when the image is older than its inputs (the
# kernel's env file, guest/init.sh, guest/spmtool.c, this script).
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/initramfs.sh"
series=${1:-}
case "$series" in
    6.1|6.12|[1-9].x|[1-9][0-9].x) ;;
    *) echo "usage: $0 6.1|6.12|7.x" >&2; exit 2 ;;
esac
kenv=$BUILD/guest/kernel-$series.env
[ -f "$kenv" ] || { echo "mkinitramfs: no $kenv (guest/kernel.sh $series)" >&2; exit 1; }
. "$kenv"

out=$BUILD/guest
img=$out/initramfs-$series.cpio.gz
mkdir -p "$out"
root=$(mktemp -d "$out/initramfs-$series.XXXXXX")
trap 'rm -rf "$root"' EXIT
initramfs_base "$root" "$here/init.sh"
# spmtool: fills and checks spm-memory from inside the guest (static)
gcc -static -O2 -Wall -o "$root/bin/spmtool" "$here/spmtool.c"

mdir=$root/lib/modules/$KERNEL_RELEASE/kernel/drivers/dax
initramfs_module "$MOD_DEVICE_DAX" "$mdir/device_dax.ko"
initramfs_module "$MOD_KMEM" "$mdir/kmem.ko"
initramfs_module "$MOD_DAX_HMEM" "$mdir/hmem/dax_hmem.ko"

initramfs_pack "$root" "$img" 9
rm -f "$out/initramfs-$series.stamp"      # (written by earlier versions)
echo "$img"
