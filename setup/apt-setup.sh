#!/bin/bash
# apt-setup.sh: the private apt configuration for the suites this project
# only downloads from and extracts, never installs from:
#
#   bookworm, bookworm-security, bookworm-backports   guest kernels 6.1, 6.12
#   trixie        QEMU 10.0.x source (deb-src); SeaBIOS 1.16.x (VGA BIOSes)
#                 and OVMF < 2026.05 (binary)
#   trixie-backports   SeaBIOS >= 1.17.0 source (deb-src)
#   sid           OVMF >= 2026.05 and the newest Linux 7.x guest kernel
#
# It lives in $BUILD/apt (apt.conf, sources.list.d, lists, cache and an empty
# dpkg status); scripts use it through apt_private (setup/lib.sh), i.e.
# apt-get/apt-cache -c $BUILD/apt/apt.conf. The host's own apt sources and
# preferences are left alone, so a host that already lists one of these
# suites gets no duplicate entries and no pins. The archive URI (and the
# security archive's) is taken from the host's own apt sources, so no
# archive host is written here. Installs (setup/deps.sh) go through
# the host's apt.
#
# Also removes what earlier versions of this script wrote into /etc/apt.
# Lists are refreshed when the configuration changed, when they are over a
# day old, or with SPM_APT_REFRESH=1. Prints nothing on stdout; apt's output
# goes to $BUILD/logs/apt.log.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

DEB_SUITES="bookworm bookworm-backports trixie sid"
SECURITY_SUITES="bookworm-security"
SRC_SUITES="trixie trixie-backports"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

remove_legacy_apt     # setup/lib.sh

# --- archive URIs from the host's sources (setup/lib.sh) ---------------------
uri=$(archive_uri main)
securi=$(archive_uri security)
if [ -z "$uri" ]; then
    echo "apt-setup: cannot find a Debian archive URI in $HOST_SOURCES or /etc/apt/sources.list" >&2
    exit 1
fi

# --- the private configuration ---------------------------------------------------
A=$APT_DIR
mkdir -p "$A/sources.list.d" "$A/preferences.d" "$A/state/lists/partial" \
         "$A/cache/archives/partial"
[ -e "$A/state/status" ] || : > "$A/state/status"
[ -e "$A/sources.list" ] || : > "$A/sources.list"

conf=$(cat <<EOC
// Private apt configuration of spm-memory (setup/apt-setup.sh): the
// download-only suites. Use: apt-get -c $A/apt.conf ...
Dir::Etc::SourceList "$A/sources.list";
Dir::Etc::SourceParts "$A/sources.list.d";
Dir::Etc::Preferences "$A/preferences";
Dir::Etc::PreferencesParts "$A/preferences.d";
Dir::State "$A/state";
Dir::State::Lists "$A/state/lists";
Dir::State::status "$A/state/status";
Dir::State::extended_states "$A/state/extended_states";
Dir::Cache "$A/cache";
Dir::Cache::Archives "$A/cache/archives";
Dir::Cache::pkgcache "$A/cache/pkgcache.bin";
Dir::Cache::srcpkgcache "$A/cache/srcpkgcache.bin";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
EOC
)
stanza() { # TYPE URI SUITES TARGET
    printf 'Types: %s\nURIs: %s\nSuites: %s\nComponents: main\nTargets: %s\nSigned-By: %s\n' \
        "$1" "$2" "$3" "$4" "$keyring"
}
sources=$( echo "# spm-memory download-only suites (setup/apt-setup.sh); archive URIs from the host's apt sources."
           stanza deb "$uri" "$DEB_SUITES" Packages
           if [ -n "$securi" ]; then echo; stanza deb "$securi" "$SECURITY_SUITES" Packages; fi
           echo; stanza deb-src "$uri" "$SRC_SUITES" Sources )

changed=0
write() { # FILE CONTENT
    if [ "$(cat "$1" 2>/dev/null)" != "$2" ]; then
        printf '%s\n' "$2" > "$1.new" && mv -f "$1.new" "$1"
        changed=1
    fi
}
write "$A/apt.conf" "$conf"
write "$A/sources.list.d/spm-memory.sources" "$sources"

stamp=$A/state/updated
if [ $changed = 1 ] || [ "${SPM_APT_REFRESH:-0}" = 1 ] || [ ! -e "$stamp" ] ||
   [ -n "$(find "$stamp" -mmin +1440)" ]; then
    echo "apt-setup: updating the package lists of the download-only suites ($A)" >&2
    if apt_logged apt_private apt-get update; then
        touch "$stamp"
    elif [ -e "$stamp" ] && [ $changed = 0 ]; then
        echo "apt-setup: keeping the lists of $(date -r "$stamp" '+%F %T')" >&2
    else
        exit 1
    fi
fi
