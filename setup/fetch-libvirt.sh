#!/bin/bash
# Fetch the pristine libvirt source from Debian's source package.
#
# Picks the newest libvirt LIBVIRT_SERIES.x (default 11.3, what Debian 13
# ships) that the download-only suites offer (setup/apt-setup.sh: deb-src
# of trixie; the version field of apt-cache showsrc, compared by dpkg),
# verifies the upstream tarball against the checksum of the signed Sources
# index (apt-cache showsrc) and, when the archive serves it, the .dsc's
# (which apt checked against the same index), unpacks it untouched
# into $BUILD/src and records the exact version in
# $BUILD/libvirt-source.env. Prints nothing on stdout; apt's output goes to
# $BUILD/logs/apt.log.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
apt_require
series=${LIBVIRT_SERIES:-11.3}
mkdir -p "$BUILD/dl" "$BUILD/src"

ver=$(newest_source_in_series libvirt "$series")
if [ -z "$ver" ]; then
    echo "fetch-libvirt: no libvirt $series.x source package known to apt (deb-src of $APT_DIR; setup/apt-setup.sh)" >&2
    exit 1
fi
upver=${ver#*:}; upver=${upver%-*}       # 11.3.0
plain=${upver%%+*}
env="$BUILD/libvirt-source.env"
if [ -f "$env" ] && grep -qx "LIBVIRT_DEBIAN_VERSION=$ver" "$env" &&
   [ -f "$BUILD/src/libvirt-$plain/meson.build" ]; then
    exit 0
fi

dsc="libvirt_${ver#*:}.dsc"
orig="libvirt_${upver}.orig.tar.xz"
# sha256 of FILE in the Checksums-Sha256 field of a deb822 record on stdin
sum_of() { awk -v f="$1" '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s && $3 == f && !n++ {print $1}'; }
# the checksum the signed Sources index gives for the tarball (the record of $ver)
want_index=$(apt_private apt-cache showsrc libvirt 2>/dev/null |
             awk -v v="$ver" 'BEGIN {RS = ""; ORS = "\n\n"} index($0 "\n", "\nVersion: " v "\n")' | sum_of "$orig")
if [ -z "$want_index" ]; then
    echo "fetch-libvirt: the Sources record of libvirt $ver lists no $orig" >&2
    exit 1
fi
echo "fetch-libvirt: downloading the libvirt $ver source package" >&2
exec 9> "$BUILD/dl/.lock"
flock 9
# apt verifies every file it fetches (also those already in $BUILD/dl)
# against the index. The archive here may not serve every file of the
# package (the .dsc and the tarball's .asc were 404 on 2026-12-05): what
# counts is that the tarball is here and matches the index (and the .dsc,
# if it came). apt's complaint about a missing file stays in the log.
(cd "$BUILD/dl" && apt_logged apt_private apt-get source --download-only "libvirt=$ver") 2>/dev/null || true
if [ ! -f "$BUILD/dl/$orig" ]; then
    echo "fetch-libvirt: could not download $orig (libvirt $ver); see $APT_LOG" >&2
    exit 1
fi
have=$(sha256sum "$BUILD/dl/$orig" | cut -d' ' -f1)
if [ "$want_index" != "$have" ]; then
    echo "fetch-libvirt: $orig: sha256 $have does not match the signed Sources index ($want_index)" >&2
    exit 1
fi
if [ -f "$BUILD/dl/$dsc" ]; then
    want=$(sum_of "$orig" < "$BUILD/dl/$dsc")
    if [ "$want" != "$have" ]; then
        echo "fetch-libvirt: $orig: sha256 $have does not match the .dsc ($want)" >&2
        exit 1
    fi
    checked="the .dsc and the Sources index"
else
    checked="the Sources index (the archive did not serve the .dsc)"
fi
rm -rf "$BUILD/src/libvirt-$plain"
tar --no-same-owner -C "$BUILD/src" -xf "$BUILD/dl/$orig"
# the version libvirt's meson.build declares: project('libvirt', 'c', version: 'X.Y.Z', ...)
got=$(sed -n "/^project(/,/)/ s/^ *version: *'\([^']*\)'.*/\1/p" "$BUILD/src/libvirt-$plain/meson.build" | head -1)
if [ "$got" != "$plain" ]; then
    echo "fetch-libvirt: tarball meson.build says version '$got', expected $plain" >&2
    exit 1
fi
cat > "$env" <<EOV
LIBVIRT_DEBIAN_VERSION=$ver
LIBVIRT_VERSION=$plain
LIBVIRT_ORIG_SHA256=$have
LIBVIRT_SRC=$BUILD/src/libvirt-$plain
EOV
echo "fetch-libvirt: libvirt $plain from Debian source $ver (orig sha256 $have, checked against $checked)" >&2
