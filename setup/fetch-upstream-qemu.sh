#!/bin/bash
# setup/fetch-upstream-qemu.sh
#
# Upstream QEMU's own specific-purpose memory device, 'sp-mem' (QEMU 11.1
# and later), as Debian builds it: the newest qemu-system-x86 >= 1:11.1 of
# the download-only suites (sid, setup/apt-setup.sh) with every package it
# needs from there, downloaded (apt verifies each against the signed
# indexes) and extracted, never installed, into
# $BUILD/deb/qemu-upstream_VERSION/root. Its C library is newer than the
# host's, so $BUILD/qemu-upstream/qemu-system-x86_64 is a wrapper that runs
# it with that root's dynamic loader, libraries, modules and firmware
# files. The patched libvirt's test starts it as a domain's emulator
# (tests/libvirt/test_native.py): the same XML that drives this project's
# spm-memory must drive it.
#
# $BUILD/qemu-upstream/env says which version it is and where the real
# binary is (relative to $BUILD). Prints nothing on stdout. Cached: a second
# run with the same version downloads and extracts nothing.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
pkg=qemu-system-x86
offline_refuse "upstream QEMU ($pkg >= 1:11.1)" upstream-qemu
apt_require

ver=$(apt_binary_versions "$pkg" | newest_version '>=1:11.1~') || exit $?
if [ -z "$ver" ]; then
    echo "fetch-upstream-qemu: no $pkg >= 1:11.1 (with sp-mem) known to apt" \
         "(private lists in $APT_DIR; see setup/apt-setup.sh)" >&2
    exit 1
fi
top="$BUILD/deb/qemu-upstream_${ver//:/%3a}"
root=$top/root
wrapper=$BUILD/qemu-upstream/qemu-system-x86_64

if [ ! -f "$top/.done" ] || [ "$(cat "$top/.done")" != "$ver" ]; then
    archives=$BUILD/dl/qemu-upstream
    mkdir -p "$archives/partial"
    # only this version's closure (what an interrupted run of another
    # version left would be extracted with it)
    rm -f "$archives"/*.deb
    # The package and what it needs, resolved against an empty status
    # (nothing counts as installed: the closure down to the C library); apt
    # picks the newest version of each, which is what the newest QEMU was
    # built against.
    status=$(mktemp)
    trap 'rm -f "$status"' EXIT
    if ! apt_logged apt_private apt-get -y --no-install-recommends \
             -o Dir::State::status="$status" -o Dir::Cache::Archives="$archives" \
             install --download-only "$pkg=$ver"; then
        echo "fetch-upstream-qemu: could not download $pkg=$ver and its dependencies" >&2
        exit 1
    fi
    rm -rf "$top"; mkdir -p "$root"
    for deb in "$archives"/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
    [ -x "$root/usr/bin/qemu-system-x86_64" ] ||
        { echo "fetch-upstream-qemu: no usr/bin/qemu-system-x86_64 in $pkg $ver" >&2; exit 1; }
    rm -f "$archives"/*.deb
    echo "$ver" > "$top/.done"
fi

mkdir -p "$(dirname "$wrapper")"
cat > "$wrapper.tmp" <<EOF
#!/bin/sh
# Debian's $pkg $ver (upstream QEMU, with sp-mem) from its own root,
# written by setup/fetch-upstream-qemu.sh: its loader, libraries, modules
# and firmware files, not the host's.
# (found from this script's own path: the build directory is also seen
# at another path, setup/libvirt-env.sh)
R=\$(dirname "\$0")/../deb/${top##*/}/root
QEMU_MODULE_DIR=\$R/usr/lib/x86_64-linux-gnu/qemu
export QEMU_MODULE_DIR
exec "\$R/usr/lib64/ld-linux-x86-64.so.2" --library-path "\$R/usr/lib/x86_64-linux-gnu" \\
    "\$R/usr/bin/qemu-system-x86_64" -L "\$R/usr/share/qemu" -L "\$R/usr/share/seabios" "\$@"
EOF
chmod 755 "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"
"$wrapper" -device sp-mem,help > /dev/null ||
    { echo "fetch-upstream-qemu: $wrapper does not run or has no sp-mem device" >&2; exit 1; }
# what the tests read (and make's target, so written last): the version
# and the real binary, relative to $BUILD
printf '%s\n' "QEMU_UPSTREAM_VERSION=$ver" \
    "QEMU_UPSTREAM_BINARY=deb/${top##*/}/root/usr/bin/qemu-system-x86_64" \
    > "$BUILD/qemu-upstream/env.tmp"
mv "$BUILD/qemu-upstream/env.tmp" "$BUILD/qemu-upstream/env"
