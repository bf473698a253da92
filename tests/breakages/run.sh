#!/bin/bash
# tests/breakages/run.sh [NAME...]  (make breakages)
#
# Break the device on purpose, one way at a time, and show that make
# check's stages catch each breakage: each line of tests/breakages/list
# (all, or those NAMEd) is applied to the QEMU working tree (build/qemu),
# qemu-system-x86_64 and spm-memory-test are rebuilt, the stages
# BREAK_STAGES (default: qtests fuzz; the qtests stage runs spm-memory-test)
# run through tests/check.sh (first once on the unbroken device, which
# must pass), and the file is restored. One line per
# breakage says which stages failed; a breakage that none fails fails this
# script. At the end QEMU is rebuilt from the restored tree. Logs:
# $BUILD/logs/breakages/NAME.log.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tree=$BUILD/qemu qb=$BUILD/qemu-build
logs=$BUILD/logs/breakages
stages=${BREAK_STAGES:-qtests fuzz}
mkdir -p "$logs"

if [ -n "$(git -C "$tree" status --porcelain --untracked-files=no)" ]; then
    echo "breakages: $tree has uncommitted changes; commit or drop them first" >&2
    exit 2
fi
mapfile -t lines < <(grep -v '^#' "$here/list" | grep .)
if [ $# -gt 0 ]; then
    want=" $* "
    mapfile -t lines < <(for l in "${lines[@]}"; do [[ $want == *" ${l%%|*} "* ]] && echo "$l"; done)
    [ ${#lines[@]} = $# ] || { echo "breakages: unknown name among: $*" >&2; exit 2; }
fi

restore() {
    git -C "$tree" diff --quiet || git -C "$tree" checkout -q -- .
}
# (however the script exits, the tree is the series again; checkout writes
# a restored file anew, so the next build rebuilds from it)
trap restore EXIT
trap 'exit 130' INT TERM HUP

# The stages must pass first on the unbroken device: otherwise a failure
# below would not be the breakage's.
echo "breakages: the stages ($stages) on the unbroken device"
if ! "$root/setup/build-qemu.sh" "$qb" tests/qtest/spm-memory-test > "$logs/baseline.log" 2>&1 ||
   ! (cd "$root" && CHECK_STAGES=$stages CHECK_BESIDE= tests/check.sh spm-memory-test) >> "$logs/baseline.log" 2>&1; then
    grep -E '^(-- |FAIL )' "$logs/baseline.log" | head -5
    echo "breakages: the stages fail without a breakage (see $logs/baseline.log)"
    exit 1
fi

missed=()
for l in "${lines[@]}"; do
    IFS='|' read -r name file expr <<< "$l"
    sed -i "$expr" "$tree/$file"
    if git -C "$tree" diff --quiet -- "$file"; then
        echo "breakages: $name: the expression changes nothing in $file (the list is out of date)"
        missed+=("$name"); continue
    fi
    log=$logs/$name.log
    git -C "$tree" diff -- "$file" > "$log"
    if ! "$root/setup/build-qemu.sh" "$qb" tests/qtest/spm-memory-test >> "$log" 2>&1; then
        echo "breakages: $name: the broken tree does not build (see $log)"
        restore; missed+=("$name"); continue
    fi
    (cd "$root" && CHECK_STAGES=$stages CHECK_BESIDE= tests/check.sh spm-memory-test) >> "$log" 2>&1
    restore
    caught=$(sed -n 's/^-- \([a-z-]*\): [0-9]* passed, \([1-9][0-9]*\) failed.*/\1 (\2 failed)/p' "$log" | paste -sd, -)
    if [ -n "$caught" ]; then
        echo "breakages: $name: caught by ${caught//,/, }"
        grep -m1 '^FAIL ' "$log" | cut -c1-240 | sed 's/^/    first: /'
    else
        echo "breakages: $name: NOT CAUGHT by $stages"
        missed+=("$name")
    fi
done
echo "breakages: rebuilding QEMU from the restored tree"
"$root/setup/build-qemu.sh" "$qb" tests/qtest/spm-memory-test > "$logs/rebuild.log" 2>&1 ||
    { echo "breakages: the restored tree does not build (see $logs/rebuild.log)"; exit 1; }
if [ ${#missed[@]} -gt 0 ]; then
    echo "breakages: ${#missed[@]} of ${#lines[@]} not caught: ${missed[*]}"
    exit 1
fi
echo "breakages: all ${#lines[@]} caught"
