#!/bin/bash
# setup/build-qemu.sh BUILD-DIR [NINJA-TARGET...]
#
# Build qemu-system-x86_64 (and the given targets, e.g. qtests) in a build
# directory that setup/configure-qemu.sh configured (the Makefile does that
# first), then link Debian's firmware where the binary looks by default.
#
# Debian's "+ds" tarball has no firmware blobs: patches/qemu-build lets meson
# skip the missing edk2 archives, we configure with --disable-install-blobs
# and link Debian's firmware into the build's qemu-bundle data directory,
# where the built binary looks by default: bios-256k.bin built from Debian's
# SeaBIOS >= 1.17.0 source plus patches/seabios (setup/build-seabios.sh, with
# QEMU's own SeaBIOS config), VGA BIOSes from Debian's seabios 1.16.x binary
# package (QEMU 10.0 bundles 1.16.3; downloaded, not installed), option
# ROMs from qemu-system-data, NIC ROMs from ipxe-qemu.
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: $0 BUILD-DIR [NINJA-TARGET...]}; shift
[ -f "$out/build.ninja" ] || { echo "build-qemu: $out is not configured (setup/configure-qemu.sh)" >&2; exit 1; }

. "$here/lib.sh"
ccache_env

# One build at a time in a build directory (ninja takes no lock of its
# own): make check's background sanitizer build and a sanitize stage that
# starts its own, or one left running by an interrupted run.
exec 9> "$out/.spm-build.lock"
flock 9
ninja -C "$out" qemu-system-x86_64 "$@"

# Firmware from Debian packages, where the binary looks by default.
data="$out/qemu-bundle/usr/local/share/qemu"
mkdir -p "$data"
# (relative where the file is in $BUILD: the link then holds wherever the
# build directory is seen, e.g. at setup/libvirt-env.sh's fixed path, and
# needs no access to the clone's parent directories, which QEMU run by
# libvirt as an unprivileged user may lack)
link() {
    local opt=-sfn
    case "$1" in "$BUILD"/*) opt=-sfnr ;; esac
    [ -e "$1" ] && ln $opt "$1" "$data/${2:-${1##*/}}"
    return 0
}
# VGA BIOSes: Debian's seabios 1.16.x, the series QEMU 10.0 bundles (1.16.3)
seabios=$("$here/fetch-deb.sh" seabios '>=1.16.3' '<<1.17~')
for f in "$seabios"/usr/share/seabios/*.bin; do link "$f"; done
# The default BIOS: SeaBIOS 1.17.0 plus patches/seabios, which passes
# soft reserved E820 entries on to the guest (stock SeaBIOS drops them).
link "$BUILD/seabios-out/bios-256k.bin"   # setup/build-seabios.sh (make)
for f in kvmvapic.bin linuxboot.bin linuxboot_dma.bin multiboot.bin \
         multiboot_dma.bin pvh.bin qboot.rom; do
    link "/usr/share/qemu/$f"
done
for f in /usr/lib/ipxe/qemu/*.rom; do link "$f"; done
