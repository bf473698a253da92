#!/bin/bash
# fetch-deb.sh PACKAGE [RELATION...]
#
# Download the newest version of the Debian binary package PACKAGE that
# satisfies every RELATION (a dpkg relation and a version: ">=2026.05",
# "<<2026.05", "=6.1.192-2"; none: the newest of all) among the
# download-only suites (setup/apt-setup.sh), and extract it, without
# installing it, into $BUILD/deb/PACKAGE_VERSION. Prints that directory and
# nothing else on stdout. apt verifies the download against the signed index
# (also a .deb already in $BUILD/dl); the extraction is cached.
#
# With SPM_OFFLINE=1 (tests, demo) it refuses: what tests use is prepared by
# make targets beforehand.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 PACKAGE [RELATION...]" >&2; exit 2; }
pkg=$1; shift
offline_refuse "$pkg $*"
apt_require

ver=$(apt_binary_versions "$pkg" | newest_version "$@") || exit $?
if [ -z "$ver" ]; then
    echo "fetch-deb: no version of $pkg ${*:+satisfying $* }known to apt (private lists in $APT_DIR; see setup/apt-setup.sh)" >&2
    exit 1
fi
dir="$BUILD/deb/${pkg}_${ver//:/%3a}"
done_() { [ -f "$dir/.done" ] && [ "$(cat "$dir/.done")" = "$ver" ]; }
if ! done_; then
    mkdir -p "$BUILD/dl"
    # one download and extraction at a time into $BUILD (make -j); a run
    # that waited finds the work done (and must not extract again under a
    # user of the directory)
    exec 9> "$BUILD/dl/.lock"
    flock 9
fi
if ! done_; then
    # apt-get download skips a file that is already there with the right hash
    if ! (cd "$BUILD/dl" && apt_logged apt_private apt-get download "$pkg=$ver"); then
        echo "fetch-deb: could not download $pkg=$ver" >&2
        exit 1
    fi
    # the file apt wrote: the one whose control fields say PACKAGE and VERSION
    deb=
    for f in "$BUILD/dl/${pkg}_${ver#*:}_"*.deb "$BUILD/dl/${pkg}_${ver//:/%3a}_"*.deb; do
        [ -f "$f" ] || continue
        if [ "$(dpkg-deb -f "$f" Package)" = "$pkg" ] && [ "$(dpkg-deb -f "$f" Version)" = "$ver" ]; then
            deb=$f; break
        fi
    done
    [ -n "$deb" ] || { echo "fetch-deb: apt reported no error but no $pkg $ver .deb is in $BUILD/dl" >&2; exit 1; }
    rm -rf "$dir"; mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
    echo "$ver" > "$dir/.done"
fi
echo "$dir"
