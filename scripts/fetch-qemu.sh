#!/bin/bash
# Fetch the pristine QEMU 10.0.x source from Debian's trixie source package.
#
# Picks the newest 10.0.x that apt offers, verifies the upstream tarball
# against the checksum in the .dsc (whose own checksum apt checked against
# the signed Sources index), unpacks it untouched into $BUILD/src and records
# the exact version in $BUILD/qemu-source.env.
set -euo pipefail
BUILD=${BUILD:?}
series=${QEMU_SERIES:-10.0}
mkdir -p "$BUILD/dl" "$BUILD/src"

ver=$(apt-cache showsrc qemu | awk '/^Version:/ {print $2}' |
      grep -E "^([0-9]+:)?${series//./\\.}\.[0-9]+" | sort -V | tail -1 || true)
if [ -z "$ver" ]; then
    echo "fetch-qemu: no QEMU $series.x source package known to apt (is deb-src for trixie set up?)" >&2
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
( cd "$BUILD/dl" && { [ -f "$dsc" ] && [ -f "$orig" ] ||
    apt-get source --download-only -qq "qemu=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true; } )
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
echo "fetch-qemu: QEMU $plain from Debian source $ver (orig sha256 $have)"
