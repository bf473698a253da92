#!/bin/bash
# Build SeaBIOS bios-256k.bin, as QEMU builds its bundled one, from
# Debian's SeaBIOS 1.17.0 source plus the series in patches/seabios/.
#
#   $BUILD/dl/           the source package download
#   $BUILD/seabios/      working tree (git): pristine upstream tarball, commit
#                        tagged "pristine" (and "rel-1.17.0"), + the series
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
# "none" builds stock SeaBIOS); SEABIOS_SERIES (default 1.17.0);
# SEABIOS_NAME (default "seabios": the tree is $BUILD/NAME, the result
# $BUILD/NAME-out/bios-256k.bin).
set -euo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
PATCHES=${SEABIOS_PATCHES:-$(dirname "$here")/patches/seabios}
series=${SEABIOS_SERIES:-1.17.0}
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

log() { echo "build-seabios: $*"; }
die() { echo "build-seabios: $*" >&2; exit 1; }
g() { git -C "$tree" -c user.name="spm-memory developers" \
      -c user.email=spm-memory@localhost -c core.autocrlf=false \
      -c advice.detachedHead=false "$@"; }

# --- host tools ------------------------------------------------------------
"$here/apt-setup.sh"
missing=()
for p in build-essential python3 git xz-utils; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
        missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# --- source ----------------------------------------------------------------
# Newest seabios source version 1.17.0-* that apt knows (deb-src trixie-backports).
ver=""
for v in $(apt-cache showsrc seabios 2>/dev/null | awk '/^Version:/ {print $2}'); do
    case ${v#*:} in "$series"-*) ;; *) continue ;; esac
    if [ -z "$ver" ] || dpkg --compare-versions "$v" gt "$ver"; then ver=$v; fi
done
[ -n "$ver" ] || die "no seabios $series-* source package known to apt (is deb-src for trixie-backports set up? see scripts/apt-setup.sh)"

# Its Sources record (apt checked it against the signed InRelease).
record=$(apt-cache showsrc seabios | awk -v v="$ver" 'BEGIN {RS=""} index($0 "\n", "\nVersion: " v "\n") {print; exit}')
sums() { awk '/^Checksums-Sha256:/ {s=1; next} /^[^ ]/ {s=0} s && NF == 3 {print $1, $3}'; }
orig=$(printf '%s\n' "$record" | sums | awk -v p="seabios_${series}.orig.tar." 'index($2, p) == 1 {print $2; exit}')
index_sum=$(printf '%s\n' "$record" | sums | awk -v f="$orig" '$2 == f {print $1}')
dsc="seabios_${ver#*:}.dsc"
if [ -z "$orig" ] || [ -z "$index_sum" ]; then
    die "cannot find the orig tarball of seabios $ver in apt's Sources record"
fi

mkdir -p "$BUILD/dl"
have() { [ -f "$BUILD/dl/$1" ] && sha256sum "$BUILD/dl/$1" | cut -d' ' -f1; }
if [ "$(have "$orig")" != "$index_sum" ]; then
    log "downloading the seabios $ver source package"
    # The .dsc and the Debian tarball are not needed, only the upstream
    # tarball: a mirror that lacks them is not fatal, a missing orig is.
    if ! (cd "$BUILD/dl" && apt-get source --download-only -qq "seabios=$ver") \
         > "$BUILD/dl/seabios-download.log" 2>&1; then
        if [ ! -f "$BUILD/dl/$orig" ]; then
            grep -v '^W: Download is performed unsandboxed' "$BUILD/dl/seabios-download.log" >&2 || true
            die "could not download $orig"
        fi
        log "note: the archive did not serve all of the package, only $orig (see $BUILD/dl/seabios-download.log)"
    fi
    [ -f "$BUILD/dl/$orig" ] || die "could not download $orig"
fi
# Verify the upstream tarball against the .dsc's Checksums-Sha256 (once the
# .dsc itself matches apt's Sources record), or, where the archive did not
# serve the .dsc, against the Checksums-Sha256 of that Sources record, which
# lists the same checksum and which apt verified against the signed InRelease.
got=$(have "$orig")
if [ -f "$BUILD/dl/$dsc" ] && [ "$(have "$dsc")" = "$(printf '%s\n' "$record" | sums | awk -v f="$dsc" '$2 == f {print $1}')" ]; then
    want=$(sums < "$BUILD/dl/$dsc" | awk -v f="$orig" '$2 == f {print $1}')
    from=$dsc
else
    want=$index_sum
    from="the Sources index (no $dsc)"
fi
if [ -z "$want" ] || [ "$got" != "$want" ]; then
    die "$orig: sha256 $got does not match $from (${want:-none})"
fi

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
log "$(grep -m1 -o 'Version: .*' "$out/build.log" || echo "up to date")"
echo "$out/bios-256k.bin"
