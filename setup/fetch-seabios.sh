#!/bin/bash
# fetch-seabios.sh: the upstream SeaBIOS source tarball of the newest
# Debian seabios source package whose version is >= SEABIOS_MIN (1.17.0),
# wherever the download-only suites have it (setup/apt-setup.sh; today
# trixie-backports), verified and kept in $BUILD/dl. Prints, and writes to
# $BUILD/seabios-source.env, only:
#
#   SEABIOS_DEBIAN_VERSION=1.17.0-1~bpo13+1
#   SEABIOS_VERSION=1.17.0
#   SEABIOS_ORIG=$BUILD/dl/seabios_1.17.0.orig.tar.gz
#   SEABIOS_ORIG_SHA256=...
#
# apt's output goes to $BUILD/logs/apt.log. Used by build-seabios.sh.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
min=${SEABIOS_MIN:-1.17.0}
die() { echo "fetch-seabios: $*" >&2; exit 1; }
apt_require

# the Sources records are deb822: read the Version fields and, for the
# chosen version, its Checksums-Sha256 (apt checked the record against the
# signed InRelease)
records=$(apt_private apt-cache showsrc seabios 2>/dev/null || true)
ver=$(awk '/^Version:/ {print $2}' <<< "$records" | newest_version ">=$min")
[ -n "$ver" ] || die "no seabios source package >= $min known to apt (deb-src of $APT_DIR; setup/apt-setup.sh)"
upstream=${ver#*:}; upstream=${upstream%-*}
record=$(awk -v v="$ver" 'BEGIN {RS=""} index($0 "\n", "\nVersion: " v "\n") {print; exit}' <<< "$records")
sums() { awk '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s && NF == 3 {print $1, $3}'; }
orig=$(sums <<< "$record" | awk -v p="seabios_${upstream}.orig.tar." 'index($2, p) == 1 {print $2; exit}')
index_sum=$(sums <<< "$record" | awk -v f="$orig" '$2 == f {print $1}')
dsc="seabios_${ver#*:}.dsc"
[ -n "$orig" ] && [ -n "$index_sum" ] ||
    die "cannot find the orig tarball of seabios $ver in apt's Sources record"

mkdir -p "$BUILD/dl"
have() { [ -f "$BUILD/dl/$1" ] && sha256sum "$BUILD/dl/$1" | cut -d' ' -f1; }
if [ "$(have "$orig")" != "$index_sum" ]; then
    echo "fetch-seabios: downloading the seabios $ver source package" >&2
    exec 9> "$BUILD/dl/.lock"
    flock 9
    # The .dsc and the Debian tarball are not needed, only the upstream
    # tarball: a mirror that lacks them is not fatal, a missing orig is.
    if ! (cd "$BUILD/dl" && apt_logged apt_private apt-get source --download-only "seabios=$ver") 2>/dev/null; then
        if [ ! -f "$BUILD/dl/$orig" ]; then
            tail -n 15 "$APT_LOG" >&2
            die "could not download $orig (see $APT_LOG)"
        fi
        echo "fetch-seabios: note: the archive did not serve all of the package, only $orig (see $APT_LOG)" >&2
    fi
fi
# Verify the upstream tarball against the .dsc's Checksums-Sha256 (once the
# .dsc itself matches apt's Sources record), or, where the archive did not
# serve the .dsc, against the Checksums-Sha256 of that Sources record, which
# lists the same checksum and which apt verified against the signed InRelease.
got=$(have "$orig" || true)
if [ -f "$BUILD/dl/$dsc" ] && [ "$(have "$dsc")" = "$(sums <<< "$record" | awk -v f="$dsc" '$2 == f {print $1}')" ]; then
    want=$(sums < "$BUILD/dl/$dsc" | awk -v f="$orig" '$2 == f {print $1}')
    from=$dsc
else
    want=$index_sum
    from="the Sources index (no $dsc)"
fi
[ -n "$want" ] && [ "$got" = "$want" ] || die "$orig: sha256 ${got:-(none)} does not match $from (${want:-none})"

env=$(printf 'SEABIOS_DEBIAN_VERSION=%s\nSEABIOS_VERSION=%s\nSEABIOS_ORIG=%s\nSEABIOS_ORIG_SHA256=%s\n' \
          "$ver" "$upstream" "$BUILD/dl/$orig" "$got")
[ "$(cat "$BUILD/seabios-source.env" 2>/dev/null)" = "$env" ] ||
    printf '%s\n' "$env" > "$BUILD/seabios-source.env"
printf '%s\n' "$env"
