#!/bin/bash
# mkinitramfs.sh 6.1|6.12|7.x
#
# Build $BUILD/guest/initramfs-SERIES.cpio.gz for the newest Debian kernel of
# the series (scripts/guest-kernel.sh; 7.x: the newest 7.N): the host's
# busybox-static with its applets as symlinks in /bin, the kernel's
# device_dax, kmem and dax_hmem modules (decompressed) under
# /lib/modules/RELEASE/kernel/drivers/dax,
# scripts/guest-init.sh as /init and scripts/guest-spmtool.c built static as
# /bin/spmtool. Prints the initramfs path.
#
# Cached: rebuilt only when the kernel package, busybox, guest-init.sh,
# guest-spmtool.c or this script change (the inputs' digest is kept in
# initramfs-SERIES.stamp). With SPM_OFFLINE=1 (tests, demo) it only prints
# an up-to-date image and fails otherwise (make guest-deps builds it).
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
series=${1:-}
case "$series" in
    6.1|6.12|[1-9].x|[1-9][0-9].x) ;;
    *) echo "usage: $0 6.1|6.12|7.x" >&2; exit 2 ;;
esac
kenv=$("$here/guest-kernel.sh" "$series")
eval "$kenv"

busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    busybox=/bin/busybox
fi
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "mkinitramfs: busybox not found (install busybox-static: scripts/host-deps.sh)" >&2
    exit 1
fi

out=$BUILD/guest
img=$out/initramfs-$series.cpio.gz
stamp=$out/initramfs-$series.stamp
key=$( { echo "$KERNEL_PKG $KERNEL_PKG_VERSION ${KERNEL_MODULES_PKG:-} ${KERNEL_MODULES_PKG_VERSION:-}"
         sha256sum "$busybox" "$here/guest-init.sh" "$here/guest-spmtool.c" "$0" |
             cut -d' ' -f1; } |
       sha256sum | cut -d' ' -f1)
if [ -f "$img" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
    echo "$img"; exit 0
fi
offline_refuse "an up-to-date $img"

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
install -m 755 "$here/guest-init.sh" "$root/init"
# spmtool: fills and checks spm-memory from inside the guest (static)
gcc -static -O2 -Wall -o "$root/bin/spmtool" "$here/guest-spmtool.c"

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
echo "$key" > "$stamp"
echo "$img"
