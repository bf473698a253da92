#!/bin/bash
# guest/firmware.sh [--prepare]
#
# The firmware that guests boot besides QEMU's default BIOS (the patched
# SeaBIOS that make qemu builds), as KEY=VALUE lines kept in
# $BUILD/guest/firmware.env:
#
#   OVMF, OVMF_VARS, OVMF_VERSION
#       OVMF_CODE_4M.fd and its VARS template of the newest Debian OVMF
#       >= 2026.05 (ovmf-generic or ovmf, any download-only suite): it hands
#       soft reserved memory to the guest (EFI_MEMORY_SP)
#   OVMF_OLD, OVMF_OLD_VARS, OVMF_OLD_VERSION
#       the same of the newest OVMF < 2026.05, which does not
#   SEABIOS_STOCK, SEABIOS_STOCK_VERSION
#       stock SeaBIOS (>= 1.17.0, without patches/seabios), built like the
#       patched one (setup/build-seabios.sh), which drops soft reserved
#
# --prepare (make guest-deps) resolves, downloads and builds them and writes
# the file. Without it the file is printed after checking that every file it
# names is there; it never downloads or builds anything.
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../setup/lib.sh"
OVMF_SP_MIN=2026.05               # edk2-stable202605: EfiAcpiAddressRangeSoftReserved
env_file=$BUILD/guest/firmware.env
die() { echo "guest/firmware.sh: $*" >&2; exit 1; }

if [ "${1:-}" != --prepare ]; then
    [ $# = 0 ] || { echo "usage: $0 [--prepare]" >&2; exit 2; }
    [ -s "$env_file" ] || die "no prepared firmware ($env_file): run 'make guest-deps'"
    while IFS='=' read -r k v; do
        case "$k" in
            OVMF|OVMF_VARS|OVMF_OLD|OVMF_OLD_VARS|SEABIOS_STOCK)
                [ -f "$v" ] || die "$k: $v is missing: run 'make guest-deps'" ;;
        esac
    done < "$env_file"
    cat "$env_file"
    exit 0
fi
apt_require

# ovmf RELATION...: "VERSION DIR" of the newest OVMF satisfying the
# relations that holds OVMF_CODE_4M.fd. Debian has it in ovmf-generic since
# 2026 (ovmf then only depends on it) and in ovmf before; on a tie
# ovmf-generic wins, and a package without the file is passed over.
ovmf() {
    local p v cands=() i j t dir
    for p in ovmf-generic ovmf; do
        v=$(apt_binary_versions "$p" | newest_version "$@")
        [ -z "$v" ] || cands+=("$v $p")
    done
    # newest first (stable: ovmf-generic before ovmf on equal versions)
    for ((i = 1; i < ${#cands[@]}; i++)); do
        for ((j = i; j > 0; j--)); do
            dpkg --compare-versions "${cands[j]%% *}" gt "${cands[j-1]%% *}" || break
            t=${cands[j]}; cands[j]=${cands[j-1]}; cands[j-1]=$t
        done
    done
    for t in "${cands[@]}"; do
        v=${t%% *} p=${t#* }
        dir=$("$here/../setup/fetch-deb.sh" "$p" "=$v")
        if [ -f "$dir/usr/share/OVMF/OVMF_CODE_4M.fd" ] && [ -f "$dir/usr/share/OVMF/OVMF_VARS_4M.fd" ]; then
            echo "$v $dir"; return 0
        fi
    done
    die "no OVMF $* with usr/share/OVMF/OVMF_CODE_4M.fd known to apt (packages ovmf-generic, ovmf; private lists in $APT_DIR)"
}

new=$(ovmf ">=$OVMF_SP_MIN")
old=$(ovmf "<<$OVMF_SP_MIN")
stock=$(SEABIOS_PATCHES=none SEABIOS_NAME=seabios-stock "$here/../setup/build-seabios.sh" | tail -n 1)
. "$BUILD/seabios-source.env"

mkdir -p "$BUILD/guest"
tmp=$(mktemp "$env_file.XXXXXX")
cat > "$tmp" <<EOF
OVMF=${new#* }/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=${new#* }/usr/share/OVMF/OVMF_VARS_4M.fd
OVMF_VERSION=${new%% *}
OVMF_OLD=${old#* }/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_OLD_VARS=${old#* }/usr/share/OVMF/OVMF_VARS_4M.fd
OVMF_OLD_VERSION=${old%% *}
SEABIOS_STOCK=$stock
SEABIOS_STOCK_VERSION=$SEABIOS_VERSION
EOF
chmod 644 "$tmp"
# (changed only by a new answer: make rebuilds what depends on it only then)
if cmp -s "$tmp" "$env_file"; then rm -f "$tmp"; else mv -f "$tmp" "$env_file"; fi
cat "$env_file"
