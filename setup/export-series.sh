#!/bin/bash
# setup/export-series.sh [qemu|libvirt] DIR: write a working tree's series
# (base..HEAD) to DIR as git format-patch files, replacing what DIR had, and
# mark the tree as in sync with it. PREP: QEMU's harness-only patches.
set -euo pipefail
BUILD=${BUILD:?}
project=qemu
case "${1:-}" in qemu|libvirt) project=$1; shift ;; esac
dir=${1:?usage: $0 [qemu|libvirt] DIR}
PREP=${PREP:-}
. "$(dirname "$0")/lib.sh"
project_vars "$project"
tree="$BUILD/$project"
if [ -n "$(git -C "$tree" status --porcelain --untracked-files=no)" ]; then
    echo "export: $tree has uncommitted changes; commit them first" >&2
    git -C "$tree" status --short --untracked-files=no >&2
    exit 1
fi
mkdir -p "$dir"
rm -f "$dir"/*.patch
git -C "$tree" format-patch -q --no-signature --zero-commit --full-index \
    --binary -o "$dir" base..HEAD
# The tree now matches patches/: record it, so mktree leaves it alone.
id=$(series_id "$debian_version" "$PREP" "$dir")
printf '%s\n%s\n' "$id" "$(git -C "$tree" rev-parse HEAD)" > "$tree/.git/spm-series"
echo "export: $(ls "$dir"/*.patch 2>/dev/null | wc -l) patch(es) in $dir"
ls "$dir"
