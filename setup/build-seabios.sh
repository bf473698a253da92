#!/bin/bash
# Build SeaBIOS bios-256k.bin, as QEMU builds its bundled one, from
# Debian's SeaBIOS source (the newest >= 1.17.0: setup/fetch-seabios.sh)
# plus the series in patches/seabios/.
#
#   $BUILD/dl/           the source package download
#   $BUILD/seabios/      working tree (git): pristine upstream tarball, commit
#                        tagged "pristine" (and "rel-VERSION"), + the series
#   $BUILD/seabios-out/  build directory and the result, bios-256k.bin
#
# Develop in $BUILD/seabios and commit; then write the series back with
#   git -C $BUILD/seabios format-patch --no-signature --zero-commit \
#       pristine..HEAD -o patches/seabios
# (remove the old patch files first). Re-running this script re-applies
# patches/seabios only when it changed, and never discards work in the tree
# that is not in patches/seabios: it stops and says so instead.
#
# Environment: BUILD (required); SEABIOS_PATCHES (default patches/seabios;
# "none" builds stock SeaBIOS); SEABIOS_MIN (default 1.17.0: the oldest
# SeaBIOS accepted; the newest Debian has is taken); SEABIOS_NAME (default
# "seabios": the tree is $BUILD/NAME, the result $BUILD/NAME-out/bios-256k.bin).
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
PATCHES=${SEABIOS_PATCHES:-$(dirname "$here")/patches/seabios}
series=${SEABIOS_MIN:-1.17.0}
name=${SEABIOS_NAME:-seabios}
tree="$BUILD/$name"
out="$BUILD/$name-out"
obj="$out/build"
stamp="$tree/.git/spm-series"
PYTHON=/usr/bin/python3

# roms/config.seabios-256k of QEMU 10.0 ("for qemu machine types 2.0 + newer")
config='CONFIG_QEMU=y
CONFIG_ROM_SIZE=256
CONFIG_ATA_DMA=n'

log() { echo "build-seabios: $*" >&2; }
die() { echo "build-seabios: $*" >&2; exit 1; }
g() { git -C "$tree" -c user.name="spm-memory developers" \
      -c user.email=spm-memory@localhost -c core.autocrlf=false \
      -c advice.detachedHead=false "$@"; }

# --- source ----------------------------------------------------------------
# The newest Debian seabios source >= SEABIOS_MIN, verified (fetch-seabios.sh).
senv=$(SEABIOS_MIN=$series "$here/fetch-seabios.sh")
eval "$senv"
ver=$SEABIOS_DEBIAN_VERSION
got=$SEABIOS_ORIG_SHA256
orig=${SEABIOS_ORIG##*/}
series=$SEABIOS_VERSION

# --- working tree ----------------------------------------------------------
pristine_id="$ver $got"
want_id=$({ echo "$pristine_id"
            { find "$PATCHES" -maxdepth 1 -name '*.patch' 2>/dev/null || true; } | sort | xargs -r cat; } |
          sha256sum | cut -d' ' -f1)
patch_list() { { find "$PATCHES" -maxdepth 1 -name '*.patch' 2>/dev/null || true; } | sort; }

# apply_series DIR: git am the series in the git tree DIR (at pristine)
apply_series() {
    local list
    list=$(patch_list)
    [ -n "$list" ] || return 0
    # shellcheck disable=SC2086
    git -C "$1" -c user.name="spm-memory developers" -c user.email=spm-memory@localhost \
        am -q --whitespace=nowarn --committer-date-is-author-date $list
}

# True if the tree has changes or commits that re-applying patches/ would lose.
has_work() {
    [ -d "$tree/.git/rebase-apply" ] && return 0
    [ -n "$(g status --porcelain --untracked-files=no)" ] && return 0
    local applied
    applied=$(sed -n 2p "$stamp" 2>/dev/null || true)
    [ "$(g rev-parse HEAD)" != "${applied:-$(g rev-parse pristine)}" ] || return 1
    # Commits that were made here and then exported to patches/ are not lost:
    # compare with the series applied to a scratch worktree.
    local scratch
    scratch=$(mktemp -d "$BUILD/seabios-check.XXXXXX")
    if g worktree add -q --detach "$scratch/t" pristine 2>/dev/null &&
       apply_series "$scratch/t" >/dev/null 2>&1 &&
       [ "$(git -C "$scratch/t" rev-parse 'HEAD^{tree}')" = "$(g rev-parse 'HEAD^{tree}')" ] &&
       [ "$(git -C "$scratch/t" log --format='%an <%ae>%n%B' pristine..HEAD)" = \
         "$(g log --format='%an <%ae>%n%B' pristine..HEAD)" ]; then
        in_sync=1
    fi
    g worktree remove --force "$scratch/t" >/dev/null 2>&1 || true
    rm -rf "$scratch"; g worktree prune
    [ $in_sync = 0 ]
}
in_sync=0

if [ -e "$tree" ] && [ ! -d "$tree/.git" ]; then
    die "$tree exists but is not a git tree made by this script; move it away"
fi
if [ -d "$tree/.git" ] && [ "$(head -1 "$stamp" 2>/dev/null)" = "$want_id" ]; then
    :   # up to date with patches/seabios; build whatever the tree has
elif [ -d "$tree/.git" ] && has_work; then
    echo "build-seabios: $tree has work that is not in $PATCHES:" >&2
    g status --short --untracked-files=no | head >&2
    g log --oneline "$(sed -n 2p "$stamp" 2>/dev/null || echo pristine)..HEAD" 2>/dev/null | head >&2
    echo "build-seabios: export it (rm $PATCHES/*.patch; git -C $tree format-patch --no-signature --zero-commit pristine..HEAD -o $PATCHES)," >&2
    echo "build-seabios: or remove $tree to start over." >&2
    exit 1
elif [ $in_sync = 1 ]; then
    # The tree's commits are what patches/seabios holds: just record that.
    printf '%s\n%s\n' "$want_id" "$(g rev-parse HEAD)" > "$stamp"
    log "$tree matches $PATCHES"
else
    if [ -d "$tree/.git" ] && [ "$(cat "$tree/.git/spm-pristine" 2>/dev/null)" = "$pristine_id" ]; then
        if [ "$(g rev-parse HEAD)" != "$(g rev-parse pristine)" ] &&
           [ "$(g rev-parse HEAD)" = "$(sed -n 2p "$stamp" 2>/dev/null)" ]; then
            log "$PATCHES changed; re-applying it"
        fi
        g reset -q --hard pristine
    else
        log "creating $tree from pristine SeaBIOS $series (Debian source $ver)"
        rm -rf "$tree" "$tree.new"
        mkdir -p "$tree.new"
        tar --no-same-owner -C "$tree.new" -xf "$BUILD/dl/$orig"
        top=$(ls "$tree.new")
        [ "$(cat "$tree.new/$top/.version" 2>/dev/null)" = "$series" ] ||
            die "$orig does not hold SeaBIOS $series"
        mv "$tree.new/$top" "$tree"; rmdir "$tree.new"
        # Fixed dates keep the commit ids, and so the version string that
        # the build takes from "git describe", reproducible.
        date="@$(stat -c %Y "$tree/.version") +0000"
        g init -q -b master
        g add -A -f .
        GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
            g commit -q -m "Pristine SeaBIOS $series (Debian source $ver)"
        g tag -f pristine >/dev/null
        GIT_COMMITTER_DATE=$date g tag -f -a -m "SeaBIOS $series" "rel-$series" >/dev/null
        echo "$pristine_id" > "$tree/.git/spm-pristine"
    fi
    if ! apply_series "$tree"; then
        g am --abort >/dev/null 2>&1 || true
        g reset -q --hard pristine
        printf '%s\n%s\n' none "$(g rev-parse HEAD)" > "$stamp"
        die "the patches in $PATCHES do not apply to SeaBIOS $series"
    fi
    printf '%s\n%s\n' "$want_id" "$(g rev-parse HEAD)" > "$stamp"
    log "$tree: $(g rev-list --count pristine..HEAD) patch(es) over SeaBIOS $series"
fi

# --- build -----------------------------------------------------------------
# As QEMU's roms/Makefile does for bios-256k.bin, out of tree.
mk() { make -C "$tree" PYTHON=$PYTHON EXTRAVERSION=-spm-memory \
            KCONFIG_CONFIG="$obj/.config" OUT="$obj/" "$@"; }
mkdir -p "$obj"
: > "$out/build.log"
# (oldnoconfig rewrites .config, which rebuilds everything: only on a change)
if [ "$(cat "$obj/.config.in" 2>/dev/null)" != "$config" ] || [ ! -f "$obj/.config" ]; then
    rm -f "$obj/.config.in"
    printf '%s\n' "$config" > "$obj/.config"
    mk oldnoconfig > "$out/build.log" 2>&1 || { cat "$out/build.log" >&2; die "configuring failed"; }
    printf '%s\n' "$config" > "$obj/.config.in"
fi
if ! mk -j2 all >> "$out/build.log" 2>&1; then
    tail -30 "$out/build.log" >&2
    die "build failed; see $out/build.log"
fi
cmp -s "$obj/bios.bin" "$out/bios-256k.bin" || cp "$obj/bios.bin" "$out/bios-256k.bin"
touch "$out/bios-256k.bin"     # the Makefile's target: up to date
log "$(grep -m1 -o 'Version: .*' "$out/build.log" || echo "up to date")"
echo "$out/bios-256k.bin"
