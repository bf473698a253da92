#!/bin/bash
# Fetch the pristine QEMU 10.0.x source from Debian's source package.
#
# Picks the newest 10.0.x (QEMU_SERIES) that the download-only suites offer
# (setup/apt-setup.sh; the version field of apt-cache showsrc, compared by
# dpkg), verifies the upstream tarball against the checksum in the .dsc
# (apt checked the .dsc against the signed Sources index), unpacks it
# untouched into $BUILD/src and records the exact version in
# $BUILD/qemu-source.env. Prints nothing on stdout; apt's output goes to
# $BUILD/logs/apt.log.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
apt_require
series=${QEMU_SERIES:-10.0}
mkdir -p "$BUILD/dl" "$BUILD/src"

ver=$(newest_source_in_series qemu "$series")
if [ -z "$ver" ]; then
    echo "fetch-qemu: no QEMU $series.x source package known to apt (deb-src of $APT_DIR; setup/apt-setup.sh)" >&2
    exit 1
fi
upver=${ver#*:}; upver=${upver%-*}       # 10.0.13+ds
plain=${upver%%+*}                      # 10.0.13
env="$BUILD/qemu-source.env"
if [ -f "$env" ] && grep -qx "QEMU_DEBIAN_VERSION=$ver" "$env" &&
   [ -f "$BUILD/src/qemu-$plain/VERSION" ]; then
    exit 0
fi

dsc="qemu_${ver#*:}.dsc"
orig="qemu_${upver}.orig.tar.xz"
echo "fetch-qemu: downloading the qemu $ver source package" >&2
exec 9> "$BUILD/dl/.lock"
flock 9
# apt verifies every file (also those already in $BUILD/dl) against the index
(cd "$BUILD/dl" && apt_logged apt_private apt-get source --download-only "qemu=$ver") || {
    echo "fetch-qemu: could not download the qemu $ver source package" >&2; exit 1; }
want=$(awk -v f="$orig" '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s && $3 == f {print $1}' "$BUILD/dl/$dsc")
have=$(sha256sum "$BUILD/dl/$orig" | cut -d' ' -f1)
if [ -z "$want" ] || [ "$want" != "$have" ]; then
    echo "fetch-qemu: $orig: sha256 $have does not match the .dsc ($want)" >&2
    exit 1
fi
rm -rf "$BUILD/src/qemu-$plain"
tar --no-same-owner -C "$BUILD/src" -xf "$BUILD/dl/$orig"
got=$(cat "$BUILD/src/qemu-$plain/VERSION")
if [ "$got" != "$plain" ]; then
    echo "fetch-qemu: tarball VERSION says $got, expected $plain" >&2
    exit 1
fi
cat > "$env" <<EOV
QEMU_DEBIAN_VERSION=$ver
QEMU_VERSION=$plain
QEMU_ORIG_SHA256=$have
QEMU_SRC=$BUILD/src/qemu-$plain
EOV
echo "fetch-qemu: QEMU $plain from Debian source $ver (orig sha256 $have)" >&2
