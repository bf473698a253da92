#!/bin/bash
# make guest-deps: everything guests boot, prepared before any test or the
# demo runs (they run with SPM_OFFLINE=1 and never download or build):
#
#   guest kernels 6.1, 6.12 and 7.x (GUEST_KERNELS; scripts/guest-kernel.sh)
#   and their initramfs (scripts/mkinitramfs.sh)
#   firmware: OVMF >= 2026.05, OVMF < 2026.05 and stock SeaBIOS
#   (scripts/guest-firmware.sh --prepare)
#
# Cached: a second run only checks. Prints what it prepared on stderr.
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
unset SPM_OFFLINE

for k in ${GUEST_KERNELS:-6.1 6.12 7.x}; do
    kenv=$("$here/guest-kernel.sh" "$k")
    initrd=$("$here/mkinitramfs.sh" "$k")
    rel=$(sed -n 's/^KERNEL_RELEASE=//p' <<< "$kenv")
    echo "guest-deps: kernel $k: $rel, ${initrd#"$BUILD"/}" >&2
done
fw=$("$here/guest-firmware.sh" --prepare)
echo "guest-deps: OVMF $(sed -n 's/^OVMF_VERSION=//p' <<< "$fw")," \
     "OVMF $(sed -n 's/^OVMF_OLD_VERSION=//p' <<< "$fw") (stock)," \
     "SeaBIOS $(sed -n 's/^SEABIOS_STOCK_VERSION=//p' <<< "$fw") (stock)" >&2
