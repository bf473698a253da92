#!/bin/bash
# setup/configure-qemu.sh [--asan|--docs] SOURCE-TREE BUILD-DIR
#
# Configure a QEMU build directory. The one definition of QEMU's configure
# options: the build (make qemu), the build of every patch of the series
# (make series-build), the sanitizer build (make sanitize, --asan:
# AddressSanitizer with LeakSanitizer, and UBSan) and the documentation
# build (make docs, --docs: Sphinx, warnings are errors) all come from here, and
# the Makefile reconfigures a build directory when this file changes.
#
# The sanitizer build starts only spm-memory-test and the fuzz slice, both
# on the qtest accelerator: it has no TCG, only the machines and devices in
# setup/qemu-sanitize.mak, -O1 and line tables only (-g1), so that a new
# machine builds it in about half the time of a full build. ASan and UBSan
# instrument -O1 code fully, and their reports still name functions and
# lines.
#
# A minimal qemu-system-x86_64 plus what a user of spm-memory needs on a
# real host: NUMA binding of memory backends (libnuma: host-nodes=,
# policy=bind), file, memfd and hugetlbfs backends (no option needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
extra=() docs=--disable-docs werror=--disable-werror tcg=--enable-tcg
case "${1:-}" in
    --asan) asan=1; shift ;;
    --docs) docs=--enable-docs werror=--enable-werror; shift ;;   # sphinx -W
esac
[ $# = 2 ] || { echo "usage: $0 [--asan|--docs] SOURCE-TREE BUILD-DIR" >&2; exit 2; }
src=$(cd "$1" && pwd) out=$2
if [ -n "${asan:-}" ]; then
    # configure takes a device list only by its name under the tree's
    # configs/devices/x86_64-softmmu, so name ours relative to there
    devices=$(realpath --relative-to="$src/configs/devices/x86_64-softmmu" \
              "$here/qemu-sanitize")
    tcg=--disable-tcg
    extra=(--enable-asan --enable-ubsan --without-default-devices
           "--with-devices-x86_64=$devices" "--extra-cflags=-O1 -g1")
fi

opts=(
    --target-list=x86_64-softmmu
    --without-default-features
    "$tcg" --enable-kvm --enable-fdt=system --enable-slirp
    --enable-numa
    "$docs" --disable-user "$werror" --disable-install-blobs
    --disable-download
    --python=/usr/bin/python3
    "--cc=ccache cc"
    "${extra[@]}"
)

rm -rf "$out"; mkdir -p "$out"
if ! (cd "$out" && "$src/configure" "${opts[@]}" > configure.log 2>&1); then
    tail -40 "$out/configure.log" >&2
    echo "configure-qemu: configure failed; see $out/configure.log" >&2
    rm -f "$out/build.ninja"
    exit 1
fi
