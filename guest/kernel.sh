#!/bin/bash
# guest/kernel.sh 6.1|6.12|7.x
#
# Resolve the newest Debian kernel of the given series known to apt,
# download and extract it (setup/fetch-deb.sh, cached under $BUILD/deb),
# and print KEY=VALUE lines, also written to $BUILD/guest/kernel-SERIES.env.
#
# Series:
#   6.1   linux-image-6.1.0-NN-amd64 (bookworm, bookworm-security)
#   6.12  linux-image-6.12.NN+deb12-amd64 (bookworm-backports, bookworm-security)
#   N.x   the newest Linux N.M of any suite apt knows (7.x: today 7.2 from
#         sid): every release R with a package linux-image-R
#         (R = N.M.P+debNN-amd64) whose version is >= N and < N+1. Debian
#         splits these kernels: linux-image-R only depends on
#         linux-binary-R (vmlinuz) and linux-modules-R (modules), which are
#         used when apt knows them, linux-image-R itself otherwise.
#
#   KERNEL_SERIES=6.12
#   KERNEL_PKG=linux-image-6.12.117+deb12-amd64   (package holding vmlinuz)
#   KERNEL_PKG_VERSION=6.12.117-1~deb12u1
#   KERNEL_MODULES_PKG=linux-image-6.12.117+deb12-amd64 (package holding the modules)
#   KERNEL_MODULES_PKG_VERSION=6.12.117-1~deb12u1
#   KERNEL_RELEASE=6.12.117+deb12-amd64          (uname -r in the guest)
#   KERNEL_DIR=$BUILD/deb/linux-image-..._VER     (extracted package)
#   VMLINUZ=$KERNEL_DIR/boot/vmlinuz-RELEASE      (or usr/lib/modules/RELEASE/vmlinuz)
#   MOD_DEVICE_DAX=.../kernel/drivers/dax/device_dax.ko[.xz]
#   MOD_KMEM=.../kernel/drivers/dax/kmem.ko[.xz]
#   MOD_DAX_HMEM=.../kernel/drivers/dax/hmem/dax_hmem.ko[.xz]
#
# Usage from another script:  eval "$(guest/kernel.sh 6.12)"
# Set GUEST_KERNEL_PKG (linux-image-R or linux-binary-R) to use a specific
# kernel release instead of the newest one.
# Packages come from the download-only suites of the private apt
# configuration (setup/apt-setup.sh), never the host's apt. The result is
# reused while its files exist and the look-up ran after the last update
# of those package lists ($BUILD/guest/kernel-SERIES.env.checked);
# GUEST_KERNEL_REFRESH=1 forces a new look-up. When apt cannot resolve
# anything (e.g. no lists) but an earlier run left that file, it is printed
# instead. With SPM_OFFLINE=1 (tests, demo) only that file is used: no
# look-up, no download (make guest-deps prepares it).
#
# Only machine-usable apt output is read: `apt-cache pkgnames` (one package
# name a line) and the version column of `apt-cache madison`.
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../setup/lib.sh"
series=${1:-}
min_ver='' max_ver=''
case "$series" in
    6.1)  prefix=linux-image-6.1.0-
          name_re='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) prefix=linux-image-6.12.
          name_re='^linux-image-6\.12\.[0-9]+\+deb12-amd64$' ;;
    [1-9].x|[1-9][0-9].x)
          major=${series%.x}
          prefix=linux-image-$major.
          name_re="^linux-image-$major\\.[0-9]+\\.[0-9]+\\+deb[0-9]+-amd64\$"
          min_ver=$major~ max_ver=$((major + 1))~ ;;
    *) echo "usage: $0 6.1|6.12|7.x" >&2; exit 2 ;;
esac
out=$BUILD/guest
env_file=$out/kernel-$series.env
mkdir -p "$out"

# release of a linux-image-R / linux-binary-R package name
release_of() {
    local r=${1#linux-image-}
    r=${r#linux-binary-unsigned-}
    echo "${r#linux-binary-}"
}
want_release=
[ -z "${GUEST_KERNEL_PKG:-}" ] || want_release=$(release_of "$GUEST_KERNEL_PKG")

# Cached answer usable (its release as asked, its files there)?
cached_ok() {
    [ -s "$env_file" ] || return 1
    local k v
    while IFS='=' read -r k v; do
        case "$k" in
            KERNEL_RELEASE) [ -z "$want_release" ] || [ "$v" = "$want_release" ] || return 1 ;;
            VMLINUZ|MOD_*) [ -f "$v" ] || return 1 ;;
        esac
    done < "$env_file"
    # written before KERNEL_MODULES_PKG existed: resolve again
    grep -q '^KERNEL_MODULES_PKG=' "$env_file"
}
if [ "${SPM_OFFLINE:-0}" = 1 ]; then
    if cached_ok; then cat "$env_file"; exit 0; fi
    offline_refuse "the $series guest kernel${want_release:+ $want_release} ($env_file)"
fi
lists=$APT_DIR/state/lists pkgcache=$APT_DIR/cache/pkgcache.bin
checked=$env_file.checked         # when the look-up last ran (see the end)
if [ "${GUEST_KERNEL_REFRESH:-0}" != 1 ] && [ -d "$lists" ] && [ "$checked" -nt "$lists" ] &&
   { [ ! -e "$pkgcache" ] || [ "$checked" -nt "$pkgcache" ]; } && cached_ok; then
    cat "$env_file"; exit 0
fi
apt_require

# "PACKAGE VERSION" for each binary version of the given packages that apt
# can download (apt-cache madison: "package | version | archive").
versions() {
    [ $# -gt 0 ] || return 0
    apt_private apt-cache madison "$@" 2>/dev/null |
        awk -F'|' '{gsub(/ /, "", $1); gsub(/ /, "", $2)}
                   $3 !~ /Sources[ ]*$/ {print $1, $2}'
}

release=$want_release
if [ -z "$release" ]; then
    # Newest release of the series that apt can actually download (one
    # madison call for all candidate names: each apt-cache call takes seconds).
    best='' best_ver=''
    mapfile -t cands < <(apt_private apt-cache pkgnames "$prefix" 2>/dev/null | grep -E "$name_re" || true)
    while read -r cand ver; do
        if [ -n "$min_ver" ]; then
            dpkg --compare-versions "$ver" ge "$min_ver" || continue
            dpkg --compare-versions "$ver" lt "$max_ver" || continue
        fi
        if [ -z "$best" ] || dpkg --compare-versions "$ver" gt "$best_ver"; then
            best=$cand best_ver=$ver
        fi
    done < <(versions "${cands[@]}")
    [ -z "$best" ] || release=$(release_of "$best")
fi
if [ -z "$release" ]; then
    if [ -s "$env_file" ]; then
        echo "guest/kernel.sh: apt knows no $series kernel; using cached $env_file" >&2
        cat "$env_file"; exit 0
    fi
    echo "guest/kernel.sh: no package matching $name_re known to apt (private lists in $APT_DIR: make deps)" >&2
    exit 1
fi

# Split kernels (Debian 7.x): vmlinuz in linux-binary-R, modules in
# linux-modules-R; otherwise both in linux-image-R.
known=$(versions "linux-binary-$release" "linux-modules-$release" | awk '{print $1}')
pkg=linux-image-$release mpkg=linux-image-$release
if grep -qx "linux-binary-$release" <<< "$known"; then pkg=linux-binary-$release; fi
if grep -qx "linux-modules-$release" <<< "$known"; then mpkg=linux-modules-$release; fi

dir=$("$here/../setup/fetch-deb.sh" "$pkg")
mdir=$dir
[ "$mpkg" = "$pkg" ] || mdir=$("$here/../setup/fetch-deb.sh" "$mpkg")
vmlinuz=
for f in "$dir/boot/vmlinuz-$release" "$dir/usr/lib/modules/$release/vmlinuz" \
         "$dir/lib/modules/$release/vmlinuz"; do
    [ -f "$f" ] && { vmlinuz=$f; break; }
done
[ -n "$vmlinuz" ] || { echo "guest/kernel.sh: no vmlinuz for $release in $dir" >&2; exit 1; }
moddir=$mdir/lib/modules/$release/kernel/drivers/dax
[ -d "$moddir" ] || moddir=$mdir/usr/lib/modules/$release/kernel/drivers/dax
find_mod() {
    local f
    for f in "$moddir/$1.ko" "$moddir/$1.ko.xz" "$moddir/$1.ko.zst"; do
        [ -f "$f" ] && { echo "$f"; return 0; }
    done
    echo "guest/kernel.sh: $1 module not found under $moddir" >&2
    return 1
}
m_dd=$(find_mod device_dax)
m_kmem=$(find_mod kmem)
m_hmem=$(find_mod hmem/dax_hmem)

tmp=$(mktemp "$env_file.XXXXXX")
cat > "$tmp" <<EOS
KERNEL_SERIES=$series
KERNEL_PKG=$pkg
KERNEL_PKG_VERSION=$(cat "$dir/.done")
KERNEL_MODULES_PKG=$mpkg
KERNEL_MODULES_PKG_VERSION=$(cat "$mdir/.done")
KERNEL_RELEASE=$release
KERNEL_DIR=$dir
VMLINUZ=$vmlinuz
MOD_DEVICE_DAX=$m_dd
MOD_KMEM=$m_kmem
MOD_DAX_HMEM=$m_hmem
EOS
chmod 644 "$tmp"
# Only a new answer changes the file (so that make rebuilds the initramfs
# only then); the look-up itself is recorded beside it.
if cmp -s "$tmp" "$env_file"; then
    rm -f "$tmp"
else
    mv -f "$tmp" "$env_file"
fi
touch "$checked"
cat "$env_file"
