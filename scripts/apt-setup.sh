#!/bin/bash
# Configure apt for the suites this project needs, deriving the archive URI
# from the machine's own apt configuration (no registry host is written here).
#
#   bookworm-backports  meson >= 1.5, python3-pycotap, linux-image 6.12 (binary)
#   trixie              QEMU 10.0.x source (deb-src); SeaBIOS 1.16.3, the
#                       firmware QEMU 10.0 is tested with (binary, downloaded only)
#   trixie-backports    SeaBIOS 1.17.0 source (deb-src)
#   sid                 ovmf-generic >= 2026.05 and the newest Linux 7.x guest
#                       kernel (binary, downloaded only)
#
# Newer suites are pinned to priority 1 so that nothing is ever installed
# from them by accident; we only download and extract from them.
set -euo pipefail

SRC=/etc/apt/sources.list.d/debian.sources
OUT=/etc/apt/sources.list.d/spm-memory.sources
PREFS=/etc/apt/preferences.d/spm-memory
STAMP=/var/lib/apt/spm-memory.updated

uri=""
if [ -r "$SRC" ]; then
    # First URIs: line of the stanza that carries the main suite.
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:/ && u != "" && $0 !~ /security/ {print u; exit}' "$SRC")
fi
if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
if [ -z "$uri" ]; then
    echo "apt-setup: cannot find a Debian archive URI in $SRC or /etc/apt/sources.list" >&2
    exit 1
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

want=$(cat <<EOS
# Written by spm-memory scripts/apt-setup.sh; archive URI taken from $SRC.
Types: deb
URIs: $uri
Suites: bookworm-backports trixie sid
Components: main
Signed-By: $keyring

Types: deb-src
URIs: $uri
Suites: trixie trixie-backports
Components: main
Signed-By: $keyring
EOS
)
prefs=$(cat <<'EOS'
# Written by spm-memory scripts/apt-setup.sh: download-only suites.
Package: *
Pin: release n=sid
Pin-Priority: 1

Package: *
Pin: release n=trixie
Pin-Priority: 1

Package: *
Pin: release n=trixie-backports
Pin-Priority: 1

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
EOS
)

changed=0
if [ "$(cat "$OUT" 2>/dev/null)" != "$want" ]; then
    printf '%s\n' "$want" > "$OUT"
    changed=1
fi
if [ "$(cat "$PREFS" 2>/dev/null)" != "$prefs" ]; then
    printf '%s\n' "$prefs" > "$PREFS"
    changed=1
fi
# Refresh the lists when our sources changed or the lists are over a day old.
if [ $changed = 1 ] || [ ! -e "$STAMP" ] || [ -n "$(find "$STAMP" -mmin +1440)" ]; then
    apt-get update -qq
    touch "$STAMP"
fi
