#!/bin/bash
# setup/build-libvirt.sh [SOURCE-DIR [BUILD-DIR]] [-- NINJA-TARGET...]
#
# Configure (once per change of this script) and build libvirt with the
# smallest configuration that has the QEMU driver, its daemons (virtqemud
# and libvirtd), virsh and the QEMU driver's unit tests; everything else
# (docs, other hypervisor drivers, storage, network, nwfilter, secrets, ...)
# is off. SOURCE-DIR defaults to the working tree $BUILD/libvirt if it
# exists, else the pristine source setup/fetch-libvirt.sh unpacked;
# BUILD-DIR to $BUILD/libvirt-build. ccache is on (meson uses it when it is
# installed), with the same base directory as the QEMU builds so that a
# fresh clone in another directory hits the cache. Builds run under
# "nice -n 19": the machine is shared with timing-sensitive tests.
#
# Without NINJA-TARGETs it builds the default targets of this configuration
# (the libraries, daemons, virsh and every test program and mock library of
# the drivers that are on) plus the few generated files libvirt's own source
# checks read; then "meson test -C BUILD-DIR --no-rebuild" runs all tests of
# the configuration, "... qemuxmlconftest qemuxmlactivetest
# qemucapabilitiestest" the QEMU driver's, "... --suite syntax-check"
# libvirt's source checks (only when the source is a git tree). Run them
# with PYTEST_ADDOPTS='-p no:cacheprovider' PYTHONDONTWRITEBYTECODE=1, or
# rpcgen-pytest writes a .pytest_cache into the source tree. Prints
# nothing on stdout.
set -euo pipefail
BUILD=${BUILD:?}

targets=()
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; targets=("$@"); break ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ ${#args[@]} -ge 1 ]; then
    src=${args[0]}
elif [ -d "$BUILD/libvirt/.git" ]; then
    src=$BUILD/libvirt
else
    [ -f "$BUILD/libvirt-source.env" ] ||
        { echo "build-libvirt: no libvirt source: run setup/fetch-libvirt.sh (make libvirt-source)" >&2; exit 1; }
    . "$BUILD/libvirt-source.env"
    src=$LIBVIRT_SRC
fi
out=${args[1]:-$BUILD/libvirt-build}
[ -f "$src/meson.build" ] || { echo "build-libvirt: $src is not a libvirt source tree" >&2; exit 1; }
src=$(cd "$src" && pwd)

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$BUILD")}
export CCACHE_NOHASHDIR=true
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}

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
opts=(
    --buildtype=debugoptimized
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
