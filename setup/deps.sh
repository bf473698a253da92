#!/bin/bash
# make deps: what building and testing need, from Debian packages only, on
# Debian 12 (bookworm) or 13 (trixie).
#
# 1. Installs with the host's own apt whatever is missing of the packages
#    below, and the "libvirt-qemu" system user that libvirtd looks up at
#    start (normally made by libvirt-daemon-system, which would pull in
#    systemd). meson >= 1.5 and python3-pycotap come from the host's release
#    where it has them (Debian 13), else from its backports suite (Debian
#    12: bookworm-backports). If the host's apt does not list that suite, a
#    sources entry for it alone is added
#    (/etc/apt/sources.list.d/spm-memory-backports.sources): installed
#    packages must come from a suite the host's apt knows, so that its
#    upgrades (security fixes) reach them; backports are "NotAutomatic", so
#    the entry installs or upgrades nothing else by itself, and nothing is
#    pinned. The entry is removed again when the host lists the suite
#    itself, so no suite is ever configured twice. What earlier versions
#    of apt-setup.sh wrote into /etc/apt is removed first.
# 2. setup/apt-setup.sh: the private apt configuration of the suites that
#    are only downloaded from (sources, firmware, guest kernels), which
#    leaves the host's apt alone.
#
# Prints nothing on stdout; apt's output goes to $BUILD/logs/apt.log and is
# shown when apt fails.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
die() { echo "setup/deps.sh: $*" >&2; exit 1; }

pkgs=(
    # build (QEMU, SeaBIOS, the guest initramfs)
    build-essential ccache ninja-build pkg-config python3 python3-venv dpkg-dev git
    libglib2.0-dev libfdt-dev libslirp-dev libpixman-1-dev zlib1g-dev
    libnuma-dev         # NUMA binding of memory backends (host-nodes=, policy=)
    # QEMU's manual (make docs): Sphinx and its theme
    python3-sphinx python3-sphinx-rtd-theme
    # firmware and ROMs the built binary loads by default
    qemu-system-data ipxe-qemu
    # tests and guests
    acpica-tools cpio xz-utils busybox-static python3-pytest
    python3-pytest-xdist    # make check runs two guests at a time (pytest -n 2)
    # tests/libvirt: a real libvirtd (Debian's QEMU is not used)
    libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
    # tests/host: the set-up in a Debian 13 root
    debootstrap
    # make bench: the report's plot
    python3-matplotlib
    # make libvirt-build (setup/build-libvirt.sh): libvirt 11.3 with its QEMU
    # driver, daemons, virsh and unit tests
    libxml2-dev libxml2-utils xsltproc libgnutls28-dev libjson-c-dev
    libtirpc-dev libnl-3-dev libnl-route-3-dev
)
MESON_MIN=1.5
QEMU_USER=libvirt-qemu          # Debian libvirt's compiled-in QEMU user
BPO_FILE=/etc/apt/sources.list.d/spm-memory-backports.sources
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
bpo=${codename:+$codename-backports}
export DEBIAN_FRONTEND=noninteractive

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
installed_version() { installed "$1" && dpkg-query -W -f='${Version}' "$1"; }

# host_lists SUITE: whether the host's apt sources, other than our entry,
# list SUITE (apt's own reading of them: apt-get indextargets).
host_lists() {
    local parts f rc=1
    parts=$(mktemp -d)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] && [ "$f" != "$BPO_FILE" ] && ln -s "$f" "$parts/"
    done
    if apt-get indextargets -o Dir::Etc::SourceParts="$parts" --format '$(TARGET_OF) $(RELEASE)' \
           2>/dev/null | grep -xF "deb $1" > /dev/null; then
        rc=0
    fi
    rm -rf "$parts"
    return $rc
}

# host_version PACKAGE RELATION...: the newest version the host's apt can
# install that satisfies the relations (version column of apt-cache madison)
host_version() {
    local p=$1; shift
    apt-cache madison "$p" 2>/dev/null |
        awk -F'|' '$3 !~ /Sources[ \t]*$/ {gsub(/[ \t]/, "", $2); print $2}' |
        newest_version "$@"
}

# host_apt ARGS...: apt-get with the host's own configuration, output to
# $APT_LOG (its end shown on failure); waits while another apt holds the
# host's locks (up to 10 minutes)
host_apt() {
    local tries=0 start
    while :; do
        start=$(($(stat -c %s "$APT_LOG" 2>/dev/null || echo 0) + 1))
        apt_logged apt-get -o DPkg::Lock::Timeout=600 "$@" 2>/dev/null && return 0
        if tail -c +"$start" "$APT_LOG" | grep '^E: Could not get lock' > /dev/null && [ $((tries += 1)) -le 60 ]; then
            [ $tries -gt 1 ] || echo "setup/deps.sh: another apt holds the host's lock; waiting" >&2
            sleep 10
            continue
        fi
        echo "setup/deps.sh: 'apt-get $*' failed; from $APT_LOG:" >&2
        tail -c +"$start" "$APT_LOG" | grep -v '^###' | tail -n 25 >&2
        return 1
    done
}

updated=0
host_update() {
    echo "setup/deps.sh: updating the host's package lists" >&2
    host_apt update && updated=1
}

# ensure_bpo: make the host's apt list $bpo (our entry, unless it does);
# true if it was added now
ensure_bpo() {
    [ -n "$bpo" ] || die "meson >= $MESON_MIN or python3-pycotap needs a backports suite, but /etc/os-release names no codename"
    [ ! -f "$BPO_FILE" ] || return 1
    ! host_lists "$bpo" || return 1
    local uri
    uri=$(archive_uri main)
    [ -n "$uri" ] || die "cannot find the Debian archive URI in $HOST_SOURCES or /etc/apt/sources.list"
    printf '%s\n' \
        "# Written by spm-memory setup/deps.sh for meson >= $MESON_MIN and" \
        "# python3-pycotap: Debian's backports suite of this release, not pinned" \
        "# (backports install only on request). Archive URI from $HOST_SOURCES." \
        "Types: deb" "URIs: $uri" "Suites: $bpo" "Components: main" \
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" > "$BPO_FILE"
    echo "setup/deps.sh: added $BPO_FILE ($bpo)" >&2
}

remove_legacy_apt

# --- our backports entry: only where the host does not list the suite ----------
# (checked again when the host's sources changed after it was written)
if [ -f "$BPO_FILE" ] && [ -n "$bpo" ] &&
   [ -n "$(find /etc/apt/sources.list /etc/apt/sources.list.d -maxdepth 1 -newer "$BPO_FILE" 2>/dev/null)" ]; then
    if host_lists "$bpo"; then
        rm -f "$BPO_FILE"
        echo "setup/deps.sh: removed $BPO_FILE: the host's apt lists $bpo itself" >&2
    else
        touch "$BPO_FILE"
    fi
fi

# --- what is missing ----------------------------------------------------------
missing=()
for p in "${pkgs[@]}"; do installed "$p" || missing+=("$p"); done
meson_ver=$(installed_version meson || true)
pycotap_ver=$(installed_version python3-pycotap || true)
need_meson=0 need_pycotap=0
[ -n "$meson_ver" ] && dpkg --compare-versions "$meson_ver" ge "$MESON_MIN" || need_meson=1
[ -n "$pycotap_ver" ] || need_pycotap=1
# installed from backports (e.g. by an earlier version of this script):
# the host's apt must keep knowing where they came from
case "$meson_ver $pycotap_ver" in
    *~bpo*) if ensure_bpo || [ "$BPO_FILE" -nt /var/lib/apt/lists ]; then host_update; fi ;;
esac

if [ ${#missing[@]} -gt 0 ] || [ $need_meson = 1 ] || [ $need_pycotap = 1 ]; then
    # a machine that never ran apt-get update has no lists
    if [ $updated = 0 ] && ! compgen -G '/var/lib/apt/lists/*_Packages*' > /dev/null; then
        host_update
    fi
    extra=()
    if [ $need_meson = 1 ] || [ $need_pycotap = 1 ]; then
        pick() {    # the versions to install, if the host's apt has them
            m=$(host_version meson ">=$MESON_MIN")
            c=$(host_version python3-pycotap)
        }
        pick
        if [ -z "$m" ] || [ -z "$c" ]; then
            # not in the host's release (Debian 12): its backports suite
            if ensure_bpo || [ $updated = 0 ]; then host_update; fi
            pick
            [ -n "$m" ] || die "no meson >= $MESON_MIN in $codename or $bpo (see $APT_LOG)"
            [ -n "$c" ] || die "no python3-pycotap in $codename or $bpo (see $APT_LOG)"
        fi
        [ $need_meson = 0 ] || extra+=("meson=$m")
        [ $need_pycotap = 0 ] || extra+=("python3-pycotap=$c")
    fi
    echo "setup/deps.sh: installing ${missing[*]} ${extra[*]}" >&2
    install=(install -y --no-install-recommends "${missing[@]}" "${extra[@]}")
    if ! host_apt "${install[@]}"; then
        # stale lists (files gone from the archive): once more after an update
        [ $updated = 0 ] || die "could not install the packages above (see $APT_LOG)"
        echo "setup/deps.sh: retrying after apt-get update" >&2
        host_update
        host_apt "${install[@]}" || die "could not install the packages above (see $APT_LOG)"
    fi
fi

if ! getent passwd "$QEMU_USER" > /dev/null; then
    useradd --system --user-group --no-create-home --home-dir /var/lib/libvirt \
        --shell /usr/sbin/nologin "$QEMU_USER"
fi

"$here/apt-setup.sh"
