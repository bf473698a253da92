#!/bin/bash
# setup/mktree.sh [qemu|libvirt]: make (or bring up to date) a working tree:
#   pristine source            (commit tagged "pristine")
#   + $PREP                    (QEMU only, patches/qemu-build/: harness-only
#                               source adjustments; tag "base")
#   + $PATCHES                 (the series: patches/qemu/ or patches/libvirt/),
#                               applied with git am.
# QEMU's tree is $BUILD/qemu, libvirt's $BUILD/libvirt.
#
# Develop in the tree, commit, then "make export" writes base..HEAD back to
# the series' folder. This script never discards work: if the tree has
# commits or changes that are not in patches/ it stops and says so.
set -euo pipefail
BUILD=${BUILD:?}
PATCHES=${PATCHES:?}            # the series
PREP=${PREP:-}                  # harness-only patches applied below it
project=${1:-qemu}
here=$(dirname "$0")
. "$here/lib.sh"
project_vars "$project"         # name src version debian_version untracked
tree="$BUILD/$project"
stamp="$tree/.git/spm-series"
g() { git -C "$tree" -c user.name=spm-memory -c user.email=spm-memory@localhost \
      -c core.autocrlf=false -c advice.detachedHead=false "$@"; }

apply() {   # apply all patches of a directory
    local dir=$1 list
    [ -n "$dir" ] || return 0
    list=$(find "$dir" -maxdepth 1 -name '*.patch' 2>/dev/null | sort)
    [ -n "$list" ] || return 0
    # shellcheck disable=SC2086
    if ! g am -q --whitespace=nowarn --committer-date-is-author-date $list; then
        g am --abort || true
        echo "mktree: the patches in $dir do not apply to $name $version" >&2
        exit 1
    fi
}
want=$(series_id "$debian_version" "$PREP" "$PATCHES")

if [ -d "$tree/.git" ] && [ "$(cat "$tree/.git/spm-pristine" 2>/dev/null)" = "$debian_version" ]; then
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
    # another version: the old tree goes, but only if patches/ has all
    # of its work (it is clean and at the commit mktree or export recorded)
    if [ -d "$tree/.git" ] &&
       { [ -n "$(g status --porcelain --untracked-files=no)" ] ||
         [ "$(g rev-parse -q --verify HEAD)" != "$(sed -n 2p "$stamp" 2>/dev/null)" ]; }; then
        echo "mktree: $tree ($name $(cat "$tree/.git/spm-pristine" 2>/dev/null || echo "of unknown version")) has work that is not in patches/;" >&2
        echo "mktree: run 'make export' to save it, or remove $tree to start over with $name $version." >&2
        exit 1
    fi
    echo "mktree: creating $tree from pristine $name $version"
    rm -rf "$tree"
    cp -R --preserve=mode,timestamps "$src" "$tree"
    g init -q -b master
    # what upstream's git does not track (a submodule's checkout) stays
    # in the tree, untracked and ignored
    for path in ${untracked[@]+"${untracked[@]}"}; do
        echo "/$path/" >> "$tree/.git/info/exclude"
    done
    printf '%s\n' .pytest_cache/ __pycache__/ >> "$tree/.git/info/exclude"
    g add -A -f .
    for path in ${untracked[@]+"${untracked[@]}"}; do
        g rm -r -q --cached "$path"
    done
    g commit -q -m "Pristine $name $version (Debian source $debian_version)"
    g tag -f pristine >/dev/null
    echo "$debian_version" > "$tree/.git/spm-pristine"
fi

apply "$PREP"
g tag -f base >/dev/null
apply "$PATCHES"
printf '%s\n%s\n' "$want" "$(g rev-parse HEAD)" > "$stamp"
echo "mktree: $tree: $(g rev-list --count base..HEAD) series patch(es) over $name $version"
