#!/bin/bash
# export-series.sh DIR: write the working tree's series (base..HEAD) to DIR
# as git format-patch files, replacing what DIR had, and mark the tree as
# in sync with it.
set -euo pipefail
BUILD=${BUILD:?}
dir=$1
tree="$BUILD/qemu"
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
. "$BUILD/qemu-source.env"
. "$(dirname "$0")/lib.sh"
id=$(series_id "${PREP:?}" "$dir")
printf '%s\n%s\n' "$id" "$(git -C "$tree" rev-parse HEAD)" > "$tree/.git/spm-series"
echo "export: $(ls "$dir"/*.patch 2>/dev/null | wc -l) patch(es) in $dir"
ls "$dir"
