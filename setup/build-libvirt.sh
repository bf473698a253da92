#!/bin/bash
# setup/build-libvirt.sh [NINJA-TARGET...]
#
# Configure (once per change of this script) and build libvirt from the
# working tree $BUILD/libvirt (setup/mktree.sh libvirt: Debian 13's 11.3.0
# plus patches/libvirt) into $BUILD/libvirt-build, with the smallest
# configuration that has the QEMU driver, its daemons (virtqemud and
# libvirtd), virsh and the QEMU driver's unit tests; everything else (docs,
# other hypervisor drivers, storage, network, nwfilter, secrets, ...) is
# off. It runs under setup/libvirt-env.sh, which mounts $BUILD at one fixed
# path so that ccache serves every clone (libvirt compiles its absolute
# paths into its objects); so must every command that uses the build
# directory. Builds run under "nice -n 19".
#
# Without NINJA-TARGETs it builds the default targets of this configuration
# (the libraries, daemons, virsh and every test program and mock library of
# the drivers that are on) plus the few generated files libvirt's own source
# checks read; then, under setup/libvirt-env.sh, "meson test -C
# $BUILD/libvirt-build --no-rebuild" runs all tests of the configuration,
# "... qemuxmlconftest ..." one, "... --suite syntax-check" libvirt's
# source checks. Run them with PYTEST_ADDOPTS='-p no:cacheprovider'
# PYTHONDONTWRITEBYTECODE=1, or rpcgen-pytest writes a .pytest_cache into
# the source tree. Prints nothing on stdout.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
[ "${SPM_LIBVIRT_ENV:-}" = 1 ] || exec "$here/libvirt-env.sh" "$here/build-libvirt.sh" "$@"

targets=("$@")
src=$BUILD/libvirt out=$BUILD/libvirt-build
[ -f "$src/meson.build" ] ||
    { echo "build-libvirt: no libvirt working tree in $src: run make libvirt-tree" >&2; exit 1; }

. "$here/lib.sh"
ccache_env

# The configuration. auto_features=disabled turns every optional feature
# and driver off; then only what the QEMU driver, its daemon and its tests
# need is turned on:
#   driver_qemu      the QEMU driver (needs json_c, driver_libvirtd)
#   driver_libvirtd  the daemons: libvirtd and the modular virtqemud
#   driver_remote    the RPC client and server (virsh talks to a daemon)
#   json_c           QEMU's QMP and -object/-device JSON
#   numactl          host NUMA: <numatune> and host nodemasks of memory backends
#   libnl            netlink; 11.3.0 does not compile on Linux without it
#                    (src/util/virnetdevbridge.c uses virNetlink* unguarded)
#   tests            the unit tests (qemuxmlconftest, qemuxmlactivetest,
#                    qemucapabilitiestest, ...)
# -Dsystem=false with the default /usr/local prefix: the build is run from
# its directory, never installed. Warnings are not errors (git_werror is
# for libvirt's own git checkouts; the tree here is a git tree too).
# -O0 without debug information: the build is for tests, and compiles in
# about half the time of libvirt's default -O2 -g.
opts=(
    -Doptimization=0
    -Ddebug=false
    -Dauto_features=disabled
    -Ddriver_qemu=enabled
    -Ddriver_libvirtd=enabled
    -Ddriver_remote=enabled
    -Djson_c=enabled
    -Dnumactl=enabled
    -Dlibnl=enabled
    -Dtests=enabled
    -Dexpensive_tests=disabled
    -Ddocs=disabled
    -Dgit_werror=disabled
    -Dinit_script=none
    -Dsystem=false
)
# Debian's python3 (with python3-pytest), not whichever python3 comes first
# on PATH (a pyenv one lacks pytest, and rpcgen-pytest fails): meson's
# find_program('python3') takes it from this native file.
native=$(printf '[binaries]\npython3 = %s\n' "'/usr/bin/python3'")
stamp="$out/.spm-configured"
want=$(printf '%s\n' "$src" "${opts[@]}" "$native" | sha256sum | cut -d' ' -f1)
if [ ! -f "$out/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "build-libvirt: configuring $out from $src" >&2
    rm -rf "$out"
    mkdir -p "$BUILD/logs" "$out"
    printf '%s\n' "$native" > "$out/spm-native.ini"
    if ! nice -n 19 meson setup --native-file "$out/spm-native.ini" "${opts[@]}" "$src" "$out" \
            > "$BUILD/logs/libvirt-configure.log" 2>&1; then
        echo "build-libvirt: meson setup failed; from $BUILD/logs/libvirt-configure.log:" >&2
        tail -n 25 "$BUILD/logs/libvirt-configure.log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi

# With the LXC driver off, nothing builds the LXC monitor's generated
# headers, yet the source checks check-driverimpls and check-aclrules read
# them (11.3.0): build them with the default targets.
if [ ${#targets[@]} = 0 ]; then
    targets=(all src/lxc/lxc_monitor_protocol.h src/lxc/lxc_monitor_protocol.c
             src/lxc/lxc_monitor_dispatch.h)
fi
nice -n 19 ninja -C "$out" "${targets[@]}" >&2
