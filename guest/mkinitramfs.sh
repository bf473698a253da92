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
. "$here/../host/lib.sh"
series=${1:-}
case "$series" in
    6.1|6.12|[1-9].x|[1-9][0-9].x) ;;
    *) echo "usage: $0 6.1|6.12|7.x" >&2; exit 2 ;;
esac
kenv=$BUILD/guest/kernel-$series.env
[ -f "$kenv" ] || { echo "mkinitramfs: no $kenv (guest/kernel.sh $series)" >&2; exit 1; }
. "$kenv"

busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    busybox=/bin/busybox
fi
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "mkinitramfs: busybox not found (install busybox-static: host/deps.sh)" >&2
    exit 1
fi

out=$BUILD/guest
img=$out/initramfs-$series.cpio.gz
mkdir -p "$out"
root=$(mktemp -d "$out/initramfs-$series.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
install -m 755 "$here/init.sh" "$root/init"
# spmtool: fills and checks spm-memory from inside the guest (static)
gcc -static -O2 -Wall -o "$root/bin/spmtool" "$here/spmtool.c"

mdir=$root/lib/modules/$KERNEL_RELEASE/kernel/drivers/dax
mkdir -p "$mdir/hmem"
put_mod() { # SOURCE DEST.ko
    case "$1" in
        *.ko.xz)  xz -dc "$1" > "$2" ;;
        *.ko.zst) zstd -qdc "$1" > "$2" ;;
        *.ko)     cp "$1" "$2" ;;
        *) echo "mkinitramfs: unknown module format $1" >&2; exit 1 ;;
    esac
}
put_mod "$MOD_DEVICE_DAX" "$mdir/device_dax.ko"
put_mod "$MOD_KMEM" "$mdir/kmem.ko"
put_mod "$MOD_DAX_HMEM" "$mdir/hmem/dax_hmem.ko"

# Reproducible archive: fixed mtimes, sorted names, no gzip timestamp.
find "$root" -exec touch -h -d @0 {} +
tmp=$(mktemp "$img.XXXXXX")
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
     cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9n > "$tmp"
chmod 644 "$tmp"
mv -f "$tmp" "$img"
rm -f "$out/initramfs-$series.stamp"      # (written by earlier versions)
echo "$img"
