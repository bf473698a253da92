#!/bin/bash
# Configure (once) and build the QEMU working tree: a minimal
# qemu-system-x86_64 plus the given extra ninja targets (qtests).
#
# Debian's "+ds" tarball has no firmware blobs: patches/qemu-build lets meson
# skip the missing edk2 archives, we configure with --disable-install-blobs
# and link Debian's firmware into the build's qemu-bundle data directory,
# where the built binary looks by default: bios-256k.bin built from Debian's
# SeaBIOS >= 1.17.0 source plus patches/seabios (scripts/build-seabios.sh, with
# QEMU's own SeaBIOS config), VGA BIOSes from Debian's seabios 1.16.x binary
# package (QEMU 10.0 bundles 1.16.3; downloaded, not installed), option
# ROMs from qemu-system-data, NIC ROMs from ipxe-qemu.
set -euo pipefail
BUILD=${BUILD:?}
tree="$BUILD/qemu"
out="$BUILD/qemu-build"
# SANITIZE=1: a separate build with AddressSanitizer and UBSan
extra_opts=()
if [ "${SANITIZE:-0}" = 1 ]; then
    out="$BUILD/qemu-build-asan"
    extra_opts=(--enable-asan --enable-ubsan)
fi

export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$BUILD")}
export CCACHE_NOHASHDIR=true
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}

opts=(
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-tcg --enable-kvm --enable-fdt=system --enable-slirp
    --disable-docs --disable-user --disable-werror --disable-install-blobs
    --disable-download
    --python=/usr/bin/python3
    "--cc=ccache cc"
    "${extra_opts[@]}"
)
optline="${opts[*]}"
if [ ! -f "$out/build.ninja" ] || [ "$(cat "$out/.spm-configure" 2>/dev/null)" != "$optline" ]; then
    rm -rf "$out"; mkdir -p "$out"
    ( cd "$out" && "$tree/configure" "${opts[@]}" > configure.log 2>&1 ) || {
        tail -40 "$out/configure.log" >&2
        echo "build-qemu: configure failed; see $out/configure.log" >&2
        exit 1
    }
    echo "$optline" > "$out/.spm-configure"
fi

ninja -C "$out" qemu-system-x86_64 "$@"

# Firmware from Debian packages, where the binary looks by default.
data="$out/qemu-bundle/usr/local/share/qemu"
mkdir -p "$data"
link() { [ -e "$1" ] && ln -sfn "$1" "$data/${2:-${1##*/}}"; return 0; }
# VGA BIOSes: Debian's seabios 1.16.x, the series QEMU 10.0 bundles (1.16.3)
seabios=$("$(dirname "$0")/fetch-deb.sh" seabios '>=1.16.3' '<<1.17~')
for f in "$seabios"/usr/share/seabios/*.bin; do link "$f"; done
# The default BIOS: SeaBIOS 1.17.0 plus patches/seabios, which passes
# soft reserved E820 entries on to the guest (stock SeaBIOS drops them).
link "$("$(dirname "$0")/build-seabios.sh" | tail -1)"
for f in kvmvapic.bin linuxboot.bin linuxboot_dma.bin multiboot.bin \
         multiboot_dma.bin pvh.bin qboot.rom; do
    link "/usr/share/qemu/$f"
done
for f in /usr/lib/ipxe/qemu/*.rom; do link "$f"; done
