#!/bin/bash
# Make (or bring up to date) the QEMU working tree:
#   pristine source            (commit tagged "pristine")
#   + patches/qemu-build/      (harness-only source adjustments; tag "base")
#   + patches/qemu/            (the spm-memory series), applied with git am.
#
# Develop in the tree, commit, then "make export" writes base..HEAD back to
# patches/qemu. This script never discards work: if the tree has commits or
# changes that are not in patches/ it stops and says so.
set -euo pipefail
BUILD=${BUILD:?}
PATCHES=${PATCHES:?}            # the series
PREP=${PREP:?}                  # harness-only patches applied below it
. "$BUILD/qemu-source.env"
. "$(dirname "$0")/lib.sh"
tree="$BUILD/qemu"
stamp="$tree/.git/spm-series"
g() { git -C "$tree" -c user.name=spm-memory -c user.email=spm-memory@localhost \
      -c core.autocrlf=false -c advice.detachedHead=false "$@"; }

apply() {   # apply all patches of a directory
    local dir=$1 list
    list=$(find "$dir" -maxdepth 1 -name '*.patch' 2>/dev/null | sort)
    [ -n "$list" ] || return 0
    # shellcheck disable=SC2086
    if ! g am -q --whitespace=nowarn --committer-date-is-author-date $list; then
        g am --abort || true
        echo "mktree: the patches in $dir do not apply to QEMU $QEMU_VERSION" >&2
        exit 1
    fi
}
want=$(series_id "$PREP" "$PATCHES")

if [ -d "$tree/.git" ] && [ "$(cat "$tree/.git/spm-pristine" 2>/dev/null)" = "$QEMU_DEBIAN_VERSION" ]; then
    if [ "$(head -1 "$stamp" 2>/dev/null)" = "$want" ]; then
        touch "$stamp"      # the Makefile's target: up to date with patches/
        exit 0
    fi
    applied_head=$(sed -n 2p "$stamp" 2>/dev/null || true)
    if [ -n "$(g status --porcelain --untracked-files=no)" ] ||
       { [ -n "$applied_head" ] && [ "$(g rev-parse HEAD)" != "$applied_head" ]; }; then
        echo "mktree: $tree has work that is not in patches/:" >&2
        g status --short --untracked-files=no | head >&2
        g log --oneline "${applied_head:-pristine}..HEAD" | head >&2
        echo "mktree: run 'make export' to save it, or remove $tree to start over." >&2
        exit 1
    fi
    echo "mktree: patches changed; re-applying them"
    g reset -q --hard pristine
else
    # another QEMU version: the old tree goes, but only if patches/ has all
    # of its work (it is clean and at the commit mktree or export recorded)
    if [ -d "$tree/.git" ] &&
       { [ -n "$(g status --porcelain --untracked-files=no)" ] ||
         [ "$(g rev-parse -q --verify HEAD)" != "$(sed -n 2p "$stamp" 2>/dev/null)" ]; }; then
        echo "mktree: $tree (QEMU $(cat "$tree/.git/spm-pristine" 2>/dev/null || echo "of unknown version")) has work that is not in patches/;" >&2
        echo "mktree: run 'make export' to save it, or remove $tree to start over with QEMU $QEMU_VERSION." >&2
        exit 1
    fi
    echo "mktree: creating $tree from pristine QEMU $QEMU_VERSION"
    rm -rf "$tree"
    cp -R --preserve=mode,timestamps "$QEMU_SRC" "$tree"
    g init -q -b master
    g add -A -f .
    g commit -q -m "Pristine QEMU $QEMU_VERSION (Debian source $QEMU_DEBIAN_VERSION)"
    g tag -f pristine >/dev/null
    echo "$QEMU_DEBIAN_VERSION" > "$tree/.git/spm-pristine"
fi

apply "$PREP"
g tag -f base >/dev/null
apply "$PATCHES"
printf '%s\n%s\n' "$want" "$(g rev-parse HEAD)" > "$stamp"
echo "mktree: $tree: $(g rev-list --count base..HEAD) series patch(es) over $QEMU_VERSION"
