#!/bin/bash
# Install what building and testing needs, from Debian packages only.
set -euo pipefail
here=$(dirname "$0")
"$here/apt-setup.sh"

pkgs=(
    # build
    build-essential ccache ninja-build pkg-config python3-venv dpkg-dev
    libglib2.0-dev libfdt-dev libslirp-dev libpixman-1-dev zlib1g-dev
    # firmware and ROMs the built binary loads by default
    qemu-system-data ipxe-qemu
    # tests and guests
    acpica-tools cpio xz-utils busybox-static python3-pytest
)
bpo=(meson python3-pycotap)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' meson 2>/dev/null || echo 0)" ge 1.5; then
    missing+=("${bpo[0]}/bookworm-backports")
fi
dpkg-query -W -f='${Status}\n' python3-pycotap 2>/dev/null | grep -q '^install ok installed' ||
    missing+=("${bpo[1]}/bookworm-backports")

if [ ${#missing[@]} -gt 0 ]; then
    echo "host-deps: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
