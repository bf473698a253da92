#!/bin/bash
# guest/deps.sh [SERIES...]: say what "make guest-deps" prepared for the
# guests (the Makefile makes it: guest/kernel.sh, guest/mkinitramfs.sh,
# guest/firmware.sh), on stderr, and fail if any of it is missing:
#
#   guest kernels 6.1, 6.12 and 7.x and their initramfs
#   firmware: OVMF >= 2026.05, OVMF < 2026.05 and stock SeaBIOS
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- 6.1 6.12 7.x
for k in "$@"; do
    env=$BUILD/guest/kernel-$k.env initrd=$BUILD/guest/initramfs-$k.cpio.gz
    [ -f "$env" ] && [ -f "$initrd" ] || { echo "guest-deps: kernel $k is not prepared" >&2; exit 1; }
    echo "guest-deps: kernel $k: $(sed -n 's/^KERNEL_RELEASE=//p' "$env"), ${initrd#"$BUILD"/}" >&2
done
fw=$("$here/firmware.sh")
echo "guest-deps: OVMF $(sed -n 's/^OVMF_VERSION=//p' <<< "$fw")," \
     "OVMF $(sed -n 's/^OVMF_OLD_VERSION=//p' <<< "$fw") (stock)," \
     "SeaBIOS $(sed -n 's/^SEABIOS_STOCK_VERSION=//p' <<< "$fw") (stock)" >&2
