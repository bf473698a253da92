#!/bin/bash
# guest-kernel.sh 6.1|6.12
#
# Resolve the newest Debian kernel of the given series known to apt
# (6.1: linux-image-6.1.0-NN-amd64 from bookworm; 6.12:
# linux-image-6.12.NN+deb12-amd64 from bookworm-backports/-security),
# download and extract it (scripts/fetch-deb.sh, cached under $BUILD/deb),
# and print KEY=VALUE lines, also written to $BUILD/guest/kernel-SERIES.env:
#
#   KERNEL_SERIES=6.12
#   KERNEL_PKG=linux-image-6.12.117+deb12-amd64
#   KERNEL_PKG_VERSION=6.12.117-1~deb12u1
#   KERNEL_RELEASE=6.12.117+deb12-amd64          (uname -r in the guest)
#   KERNEL_DIR=$BUILD/deb/linux-image-..._VER     (extracted package)
#   VMLINUZ=$KERNEL_DIR/boot/vmlinuz-RELEASE
#   MOD_DEVICE_DAX=.../kernel/drivers/dax/device_dax.ko[.xz]
#   MOD_KMEM=.../kernel/drivers/dax/kmem.ko[.xz]
#   MOD_DAX_HMEM=.../kernel/drivers/dax/hmem/dax_hmem.ko[.xz]
#
# Usage from another script:  eval "$(scripts/guest-kernel.sh 6.12)"
# Set GUEST_KERNEL_PKG to use a specific package instead of the newest one.
# Resolving costs several seconds of apt-cache, so the result is reused while
# $BUILD/guest/kernel-SERIES.env is newer than apt's package lists (i.e. until
# the next apt-get update) and its files exist; GUEST_KERNEL_REFRESH=1 forces
# a new look-up. When apt cannot resolve anything (e.g. no lists) but an
# earlier run left that file, it is printed instead.
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
series=${1:-}
case "$series" in
    6.1)  name_re='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) name_re='^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
    *) echo "usage: $0 6.1|6.12" >&2; exit 2 ;;
esac
out=$BUILD/guest
env_file=$out/kernel-$series.env
mkdir -p "$out"

# Cached answer still valid?
if [ "${GUEST_KERNEL_REFRESH:-0}" != 1 ] && [ -s "$env_file" ] &&
   [ "$env_file" -nt /var/lib/apt/lists ] &&
   { [ ! -e /var/cache/apt/pkgcache.bin ] || [ "$env_file" -nt /var/cache/apt/pkgcache.bin ]; }; then
    cached_ok=1
    while IFS='=' read -r k v; do
        case "$k" in
            KERNEL_PKG) [ -z "${GUEST_KERNEL_PKG:-}" ] || [ "$v" = "$GUEST_KERNEL_PKG" ] || cached_ok=0 ;;
            VMLINUZ|MOD_*) [ -f "$v" ] || cached_ok=0 ;;
        esac
    done < "$env_file"
    if [ $cached_ok = 1 ]; then cat "$env_file"; exit 0; fi
fi

pkg=${GUEST_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
    # Newest package name of the series that apt can actually download.
    for cand in $(apt-cache search --names-only "$name_re" 2>/dev/null |
                  awk '{print $1}' | sort -rV); do
        if [ -n "$(apt-cache madison "$cand" 2>/dev/null)" ]; then
            pkg=$cand; break
        fi
    done
fi
if [ -z "$pkg" ]; then
    if [ -s "$env_file" ]; then
        echo "guest-kernel: apt knows no $series kernel; using cached $env_file" >&2
        cat "$env_file"; exit 0
    fi
    echo "guest-kernel: no package matching $name_re known to apt (run scripts/apt-setup.sh)" >&2
    exit 1
fi

dir=$("$here/fetch-deb.sh" "$pkg" '.*')
release=${pkg#linux-image-}
vmlinuz=$dir/boot/vmlinuz-$release
moddir=$dir/lib/modules/$release/kernel/drivers/dax
[ -d "$moddir" ] || moddir=$dir/usr/lib/modules/$release/kernel/drivers/dax
find_mod() {
    local f
    for f in "$moddir/$1.ko" "$moddir/$1.ko.xz" "$moddir/$1.ko.zst"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    echo "guest-kernel: $1 module not found under $moddir" >&2
    return 1
}
[ -f "$vmlinuz" ] || { echo "guest-kernel: $vmlinuz missing" >&2; exit 1; }
m_dd=$(find_mod device_dax)
m_kmem=$(find_mod kmem)
m_hmem=$(find_mod hmem/dax_hmem)

tmp=$(mktemp "$env_file.XXXXXX")
cat > "$tmp" <<EOS
KERNEL_SERIES=$series
KERNEL_PKG=$pkg
KERNEL_PKG_VERSION=$(cat "$dir/.done")
KERNEL_RELEASE=$release
KERNEL_DIR=$dir
VMLINUZ=$vmlinuz
MOD_DEVICE_DAX=$m_dd
MOD_KMEM=$m_kmem
MOD_DAX_HMEM=$m_hmem
EOS
chmod 644 "$tmp"
mv -f "$tmp" "$env_file"
cat "$env_file"
