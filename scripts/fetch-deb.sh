#!/bin/bash
# fetch-deb.sh PACKAGE VERSION-PATTERN
#
# Download the newest version of a Debian binary package whose version
# matches the extended regular expression VERSION-PATTERN (from any suite
# apt knows, whatever its pin) and extract it, without installing it, into
# $BUILD/deb/PACKAGE_VERSION. Prints that directory. Cached.
set -euo pipefail
BUILD=${BUILD:?}
pkg=$1 pattern=$2
ver=$(apt-cache madison "$pkg" | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
      grep -E "^($pattern)" | sort -uV | tail -1 || true)
if [ -z "$ver" ]; then
    echo "fetch-deb: no version of $pkg matching '$pattern' known to apt" >&2
    exit 1
fi
dir="$BUILD/deb/${pkg}_${ver//:/%3a}"
if [ ! -f "$dir/.done" ]; then
    mkdir -p "$BUILD/dl"
    deb=$(cd "$BUILD/dl" && ls "${pkg}_${ver#*:}_"*.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        (cd "$BUILD/dl" && apt-get download -qq "$pkg=$ver" 2>&1 |
             grep -v '^W: Download is performed unsandboxed' || true)
        deb=$(cd "$BUILD/dl" && ls "${pkg}_${ver#*:}_"*.deb 2>/dev/null | head -1 || true)
    fi
    if [ -z "$deb" ]; then
        echo "fetch-deb: could not download $pkg=$ver" >&2
        exit 1
    fi
    rm -rf "$dir"; mkdir -p "$dir"
    dpkg-deb -x "$BUILD/dl/$deb" "$dir"
    echo "$ver" > "$dir/.done"
fi
echo "$dir"
