#!/bin/bash
# tests/setup/test_setup.sh [trixie|bookworm|bookworm+backports]
#
# The set-up on a fresh Debian host: Debian 13 (trixie, the default; this is
# the stage in make check) or Debian 12 (bookworm; "+backports": a host
# whose own sources already list bookworm-backports).
#
# In a debootstrap'd root of that release whose
# /etc/apt/sources.list.d/debian.sources lists it (RELEASE, RELEASE-updates,
# RELEASE-security), as an installed system has it (archive URIs taken from
# this host's own apt sources), run, as root in a chroot (own mount and PID
# namespace: /proc, /dev, the repository read-only at /spm-memory,
# BUILD=/build inside the root), the set-up steps of make demo and make
# check (not a build of QEMU):
#
#   setup/deps.sh     packages with the root's own apt, the private
#                            apt configuration of the download-only suites
#   setup/fetch-qemu.sh, setup/fetch-seabios.sh, fetch-deb.sh   sources
#   make guest-deps  guest kernels, initramfs, OVMF, stock SeaBIOS
#
# Before them, the files an earlier version of apt-setup.sh left in
# /etc/apt (bookworm-backports, trixie and sid added, trixie pinned to
# priority 1, which broke make demo on trixie) are planted. Then it checks
# that each step succeeded and printed only its data on stdout, that the
# root's apt sources and preferences are as debootstrap left them (the
# planted files gone; on bookworm without backports, one entry for
# bookworm-backports alone added), that apt there prints no warnings (no
# suite configured twice), that meson >= 1.5 and pycotap came from the
# release itself (trixie) or its backports (bookworm), that a second
# setup/deps.sh installs nothing, and that the prepared guest files are
# found without apt (SPM_OFFLINE=1). Each check is a TAP line in
# RESULTS_DIR/setup-SUITE.tap (make check), else in $BUILD/logs/setup-SUITE/;
# last line: "setup-SUITE: N passed, M failed".
#
# Cached: the debootstrap'd root (base/, made again only when the release,
# the URIs or the base recipe change) and the root's /var/cache/apt/archives
# (archives/) are kept per user, like ccache, in
# ${SPM_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/spm-memory}/setup-SUITE, so
# that a fresh clone does not debootstrap and download them again; root/,
# in $BUILD/setup-SUITE, is a copy of base/ with the set-up applied, reused
# while setup/deps.sh, apt-setup.sh and lib.sh are unchanged
# (SPM_SETUP_FRESH=1: always a fresh copy), so a fresh clone runs the whole
# set-up. Downloads the host already has (.debs and sources in $BUILD/dl,
# the private apt lists) are hard-linked or copied in first; apt verifies
# them against the root's own indexes and fetches only what is missing.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/setup/lib.sh"

variant=${1:-trixie}
case "$variant" in
    trixie|bookworm) release=$variant bpo_listed=0 ;;
    bookworm+backports) release=bookworm bpo_listed=1 ;;
    *) echo "usage: $0 [trixie|bookworm|bookworm+backports]" >&2; exit 2 ;;
esac
name=setup-$variant
top=$BUILD/$name
cache=${SPM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spm-memory}/$name
base=$cache/base
R=$top/root
archives=$cache/archives
logs=$BUILD/logs/$name
mkdir -p "$top" "$cache" "$archives" "$logs"
# One run at a time per cache (make check in two clones of one user): the
# base is made and the archives are used under this lock, which the test's
# processes hold until they end.
exec 8> "$cache/.lock"
if ! flock -n 8; then
    echo "$name: another run uses $cache; waiting for it"
    flock 8
fi
rm -f "$logs"/*.log "$logs"/*.out
passed=0 failed=0
t_start=$(date +%s)
. "$repo/tests/tap.sh"
tap_open "${RESULTS_DIR:-$logs}/$name.tap"

ok()   { passed=$((passed + 1)); tap_ok "$*"; }
bad()  { failed=$((failed + 1)); tap_fail "$*"; }
check() { # NAME COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() {
    tap_close
    echo "$name: $(( $(date +%s) - t_start ))s; logs in $logs"
    echo "$name: $passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}

uri=$(archive_uri main)
securi=$(archive_uri security)
if [ -z "$uri" ]; then
    bad "archive URI: none in $HOST_SOURCES or /etc/apt/sources.list"; finish
fi
if ! command -v debootstrap > /dev/null; then
    bad "debootstrap is not installed (make deps installs it)"; finish
fi

# The root's apt sources, as the Debian installer writes them.
suites="$release $release-updates"
[ $bpo_listed = 0 ] || suites="$suites $release-backports"
sources="Types: deb
URIs: $uri
Suites: $suites
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg${securi:+

Types: deb
URIs: $securi
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg}"

# --- base: the debootstrap'd root ------------------------------------------------
base_key=$(printf '%s\n' "base 1 $release minbase $uri" "$sources" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$base/.spm-base" 2>/dev/null)" != "$base_key" ]; then
    echo "== debootstrap $release (minbase) into $base"
    t0=$(date +%s)
    rm -rf "$base" "$R"
    if ! debootstrap --variant=minbase \
            --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
            "$release" "$base" "$uri" > "$logs/debootstrap.log" 2>&1; then
        tail -20 "$logs/debootstrap.log"
        bad "debootstrap $release (see $logs/debootstrap.log)"; finish
    fi
    rm -f "$base/etc/apt/sources.list"
    printf '%s\n' "$sources" > "$base/etc/apt/sources.list.d/debian.sources"
    # a chroot starts no services
    printf '#!/bin/sh\nexit 101\n' > "$base/usr/sbin/policy-rc.d"
    chmod 755 "$base/usr/sbin/policy-rc.d"
    mkdir -p "$base/spm-memory" "$base/build"
    rm -rf "$base/var/cache/apt/archives"/*.deb "$base/var/lib/apt/lists"/*_*
    echo "$base_key" > "$base/.spm-base"
    echo "   $(( $(date +%s) - t0 ))s"
fi

# --- root: base plus the set-up ---------------------------------------------------
root_key=$( { echo "$base_key"; cat "$repo/setup/deps.sh" "$repo/setup/apt-setup.sh" \
              "$repo/setup/lib.sh"; } | sha256sum | cut -d' ' -f1)
fresh=0
if [ "${SPM_SETUP_FRESH:-0}" = 1 ] || [ "$(cat "$R/.spm-root" 2>/dev/null)" != "$root_key" ]; then
    rm -rf "$R"
    cp -a "$base" "$R"
    # dpkg without an fsync per unpacked file, as in Debian's own build
    # chroots and container images: the root is thrown away after a crash,
    # and fsync would be most of the install's time. (Not in /etc/apt, which
    # the checks below compare with base/; setup/deps.sh does not see it.)
    echo force-unsafe-io > "$R/etc/dpkg/dpkg.cfg.d/spm-test-unsafe-io"
    fresh=1
fi
rm -f "$R/.spm-root"
# What this machine's network needs of apt (proxy, the validity of a
# snapshot mirror's Release files), which any machine here has: the host's
# Acquire settings; and its resolver.
for f in /etc/apt/apt.conf.d/*; do
    if [ -f "$f" ] && grep -qiE '^[[:space:]]*Acquire::(Check-Valid-Until|Check-Date|https?::Proxy)' "$f"; then
        cp "$f" "$R/etc/apt/apt.conf.d/"
    fi
done
cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
# Downloads the host has already: apt re-verifies them and fetches the rest.
mkdir -p "$R/build/dl" "$R/build/apt/state/lists"
for f in "$BUILD"/dl/*.deb "$BUILD"/dl/*.orig.tar.* "$BUILD"/dl/*.dsc "$BUILD"/dl/*.debian.tar.*; do
    [ -f "$f" ] && [ ! -e "$R/build/dl/${f##*/}" ] && { ln "$f" "$R/build/dl/" 2>/dev/null || cp "$f" "$R/build/dl/"; }
done
if [ -z "$(ls "$R/build/apt/state/lists" 2>/dev/null)" ] && [ -d "$APT_DIR/state/lists" ]; then
    cp -a "$APT_DIR/state/lists/." "$R/build/apt/state/lists/"
    rm -f "$R/build/apt/state/lists/lock"
fi

# inroot NAME COMMAND: run the shell COMMAND in the root; stdout to
# $logs/NAME.out, stderr to $logs/NAME.log
inroot() {
    local what=$1 cmd=$2
    # (own PID namespace too: nothing started in the root outlives the step)
    unshare --mount --propagation private --pid --fork -- /bin/sh -c '
        set -e
        R=$1 repo=$2 archives=$3 cmd=$4
        mount -t proc proc "$R/proc"
        mount --rbind /dev "$R/dev"
        mount --bind "$repo" "$R/spm-memory"
        mount -o remount,bind,ro "$R/spm-memory"
        mount --bind "$archives" "$R/var/cache/apt/archives"
        exec chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LANG=C.UTF-8 BUILD=/build DEBIAN_FRONTEND=noninteractive /bin/bash -c "$cmd"
    ' sh "$R" "$repo" "$archives" "$cmd" > "$logs/$what.out" 2> "$logs/$what.log"
}
step() { # NAME COMMAND: a timed set-up step
    local t0 rc=0
    t0=$(date +%s)
    inroot "$1" "$2" || rc=$?
    if [ $rc = 0 ]; then
        ok "$1 ($(( $(date +%s) - t0 ))s)"
    else
        bad "$1 (status $rc, $(( $(date +%s) - t0 ))s); its stderr ends:"
        tail -n 15 "$logs/$1.log" | sed 's/^/    /'
    fi
    return $rc
}
etc_apt() { # DIR: the apt sources and preferences under DIR/etc/apt, with digests
    (cd "$1/etc/apt" && find sources.list sources.list.d preferences preferences.d -type f 2>/dev/null |
         sort | xargs -r sha256sum)
}

echo "== set-up in a $variant root ($R, $([ $fresh = 1 ] && echo "fresh copy of the debootstrap root" || echo "reused"))"
check "the root lists $suites in debian.sources" \
    grep -qx "Suites: $suites" "$R/etc/apt/sources.list.d/debian.sources"

# what an earlier version of apt-setup.sh wrote (trixie a second time on a
# trixie host, pinned to 1; sid)
cat > "$R/etc/apt/sources.list.d/spm-memory.sources" <<EOF
# Written by spm-memory scripts/apt-setup.sh; archive URI taken from /etc/apt/sources.list.d/debian.sources.
Types: deb
URIs: $uri
Suites: bookworm-backports trixie sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
printf '%s\n' '# Written by spm-memory scripts/apt-setup.sh: download-only suites.' \
    'Package: *' 'Pin: release n=trixie' 'Pin-Priority: 1' > "$R/etc/apt/preferences.d/spm-memory"

D=/spm-memory
bpo_entry=sources.list.d/spm-memory-backports.sources
if step host-deps "$D/setup/deps.sh"; then
    check "setup/deps.sh prints nothing on stdout" test ! -s "$logs/host-deps.out"
    check "the earlier version's /etc/apt files are removed" \
        test ! -e "$R/etc/apt/sources.list.d/spm-memory.sources" -a ! -e "$R/etc/apt/preferences.d/spm-memory"
    if [ "$variant" = bookworm ]; then
        check "the root's apt sources and preferences: as debootstrap left them, plus $bpo_entry" \
            test "$(etc_apt "$R" | grep -v " $bpo_entry\$")" = "$(etc_apt "$base")"
        check "$bpo_entry lists bookworm-backports alone" \
            sh -c "grep -x 'Suites: bookworm-backports' '$R/etc/apt/$bpo_entry' &&
                   [ \$(grep -c '^Suites:' '$R/etc/apt/$bpo_entry') = 1 ]" > /dev/null
    else
        check "the root's apt sources and preferences are as debootstrap left them" \
            test "$(etc_apt "$R")" = "$(etc_apt "$base")"
    fi
    rc=0
    inroot meson 'set -e; dpkg-query -W -f="\${Package} \${Version}\n" meson python3-pycotap
                  meson --version; python3 -c "import pycotap"' || rc=$?
    mver=$(sed -n 3p "$logs/meson.out")
    if [ $release = bookworm ]; then
        check "meson >= 1.5 (${mver:-none}) and pycotap, from bookworm-backports" \
            sh -c "[ $rc = 0 ] && dpkg --compare-versions '$mver' ge 1.5 &&
                   [ \$(grep -c '~bpo12' '$logs/meson.out') = 2 ]"
    else
        check "meson >= 1.5 (${mver:-none}) and pycotap, from $release itself (no backports)" \
            sh -c "[ $rc = 0 ] && dpkg --compare-versions '$mver' ge 1.5 && ! grep -q bpo '$logs/meson.out'"
    fi
    step host-deps-again "$D/setup/deps.sh"
    check "a second setup/deps.sh installs nothing" \
        sh -c "! grep -q 'installing' '$logs/host-deps-again.log'"
    inroot apt-update 'apt-get update'
    check "apt in the root: no warnings or errors (no suite configured twice)" \
        sh -c "[ -s '$logs/apt-update.out' ] && ! grep -E '^(W|E):' '$logs/apt-update.out' '$logs/apt-update.log'"
    inroot apt-policy 'apt-cache policy'
    check "apt in the root: nothing pinned (no priority 1)" \
        sh -c "! grep -qE '^ +1 ' '$logs/apt-policy.out'"
    check "the private apt configuration read no suite twice" \
        sh -c "! grep -q 'configured multiple times' '$R/build/logs/apt.log'"
fi
if step fetch-qemu "$D/setup/fetch-qemu.sh"; then
    check "fetch-qemu.sh prints nothing on stdout" test ! -s "$logs/fetch-qemu.out"
    qver=$(sed -n 's/^QEMU_VERSION=//p' "$R/build/qemu-source.env" 2>/dev/null)
    check "QEMU 10.0.x source (${qver:-none})" \
        sh -c "echo '$qver' | grep -qE '^10\.0\.[0-9]+$' && test -f '$R/build/src/qemu-$qver/VERSION'"
fi
if step fetch-seabios "$D/setup/fetch-seabios.sh"; then
    check "fetch-seabios.sh prints only its 4 KEY=VALUE lines" \
        sh -c "[ \$(grep -cvE '^SEABIOS_[A-Z0-9_]+=' '$logs/fetch-seabios.out') = 0 ] &&
               [ \$(wc -l < '$logs/fetch-seabios.out') = 4 ]"
    sver=$(sed -n 's/^SEABIOS_VERSION=//p' "$logs/fetch-seabios.out")
    check "SeaBIOS source >= 1.17.0 (${sver:-none})" dpkg --compare-versions "${sver:-0}" ge 1.17.0
fi
if step fetch-deb "$D/setup/fetch-deb.sh seabios '>=1.16.3' '<<1.17~'"; then
    check "fetch-deb.sh prints one line, the extracted directory" \
        sh -c "[ \$(wc -l < '$logs/fetch-deb.out') = 1 ] && test -d '$R'\$(cat '$logs/fetch-deb.out')/usr/share/seabios"
fi
if step guest-deps "make -s -C $D BUILD=/build guest-deps"; then
    check "make guest-deps prints nothing on stdout" test ! -s "$logs/guest-deps.out"
    step prepared "set -e; export SPM_OFFLINE=1
        for k in 6.1 6.12 7.x; do grep '^VMLINUZ=' /build/guest/kernel-\$k.env; test -s /build/guest/initramfs-\$k.cpio.gz; done
        $D/guest/firmware.sh"
    check "guest kernels, initramfs and firmware are there and found without apt (SPM_OFFLINE=1)" \
        sh -c "[ \$(grep -c '^VMLINUZ=' '$logs/prepared.out') = 3 ] && grep -q '^OVMF=' '$logs/prepared.out'"
fi
[ "$failed" != 0 ] || echo "$root_key" > "$R/.spm-root"
finish
