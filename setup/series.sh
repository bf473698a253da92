#!/bin/bash
# setup/series.sh [--build-each]
#
# Write the spm-memory QEMU series, as it would go to the list, to
# $BUILD/series: git format-patch of the working tree's base..HEAD with a
# cover letter (patches/qemu-cover-letter.txt: first line subject, then
# blurb), and check every patch with the tree's scripts/checkpatch.pl.
# Expected-table patches get checkpatch's SPDX warnings for the binary
# blobs that QEMU's own bios-tables-test process adds; errors fail.
#
# --build-each also builds qemu-system-x86_64 at every patch of the series
# (in a separate worktree and build directory, configured as the main build
# by setup/configure-qemu.sh), to show that each one builds on its own, and
# runs the device's qtest (spm-memory-test) at every patch that has it.
#
# Results, a TAP line per patch (checkpatch) and per build: RESULTS_DIR/series.tap
# (make check), else $BUILD/logs/series.tap.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
tree="$BUILD/qemu"
out="$BUILD/series"
cover="$root/patches/qemu-cover-letter.txt"

. "$root/tests/tap.sh"
mkdir -p "$BUILD/logs"
tap_open "${RESULTS_DIR:-$BUILD/logs}/series.tap"
trap tap_close EXIT
rm -rf "$out"; mkdir -p "$out"
git -C "$tree" format-patch -q --cover-letter --thread --no-signature \
    --zero-commit -o "$out" base..HEAD || exit 1
subject=$(head -1 "$cover")
python3 - "$out/0000-cover-letter.patch" "$cover" <<'PY'
import sys
path, cover = sys.argv[1], sys.argv[2]
lines = open(cover).read().split("\n")
subject, blurb = lines[0], "\n".join(lines[1:]).strip("\n")
text = open(path).read()
text = text.replace("*** SUBJECT HERE ***", subject)
text = text.replace("*** BLURB HERE ***", blurb)
open(path, "w").write(text)
PY

errors=0 warnings=0 n=0
for p in "$out"/0*.patch; do
    case "$p" in *0000-cover-letter.patch) continue ;; esac
    n=$((n + 1))
    res=$(perl "$tree/scripts/checkpatch.pl" "$p" 2>&1 | grep '^total:')
    e=$(sed -n 's/^total: \([0-9]*\) errors.*/\1/p' <<< "$res")
    w=$(sed -n 's/.*errors, \([0-9]*\) warnings.*/\1/p' <<< "$res")
    errors=$((errors + ${e:-1})) warnings=$((warnings + ${w:-0}))
    if [ "${e:-1}" = 0 ]; then
        tap_ok "checkpatch $(basename "$p"): ${res#total: }"
    else
        tap_fail "checkpatch $(basename "$p"): ${res:-checkpatch.pl gave no total}"
    fi
done
echo "series: $n patches and a cover letter in $out"

failed=0
if [ "${1:-}" = --build-each ]; then
    wt="$BUILD/series-tree" bd="$BUILD/series-build"
    git -C "$tree" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
    git -C "$tree" worktree prune
    git -C "$tree" worktree add -q --detach "$wt" base || exit 1
    export CCACHE_BASEDIR=$BUILD
    "$here/configure-qemu.sh" "$wt" "$bd" || { echo "series: configure failed"; exit 1; }
    for c in $(git -C "$tree" rev-list --reverse base..HEAD); do
        git -C "$wt" checkout -q "$c"
        t0=$(date +%s)
        qtest=()
        [ ! -f "$wt/tests/qtest/spm-memory-test.c" ] || qtest=(tests/qtest/spm-memory-test)
        r=ok t=-
        if ! "$here/build-qemu.sh" "$bd" "${qtest[@]}" > "$bd/ninja.log" 2>&1; then
            r=FAILED; failed=$((failed + 1)); tail -20 "$bd/ninja.log"
        elif [ ${#qtest[@]} = 1 ]; then
            # the device's qtest on this patch's own build (TCG only)
            if (cd "$bd" && timeout -k 10 1200 "$root/tests/no-kvm.sh" \
                    env QTEST_QEMU_BINARY=./qemu-system-x86_64 \
                    ./tests/qtest/spm-memory-test --tap -k) > "$bd/qtest.log" 2>&1; then
                t="spm-memory-test $(grep -c '^ok ' "$bd/qtest.log") ok"
            else
                t="spm-memory-test FAILED"; failed=$((failed + 1))
                grep -E '^not ok|Bail out' "$bd/qtest.log" | head -10
            fi
        fi
        line=$(printf 'build %-6s %4ss  %-28s %s' "$r" "$(( $(date +%s) - t0 ))" "$t" \
            "$(git -C "$tree" log -1 --format=%s "$c")")
        case "$r$t" in *FAILED*) tap_fail "$line" ;; *) tap_ok "$line" ;; esac
    done
    git -C "$tree" worktree remove --force "$wt"
fi

echo "series: checkpatch $errors errors, $warnings warnings"
[ "$errors" = 0 ] && [ "$failed" = 0 ]
