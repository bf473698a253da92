#!/bin/bash
# run-qtests.sh [-C BUILD-DIR] [--logbase NAME] TEST...
#
# Run QEMU qtests (qtest-x86_64/TEST) the way QEMU runs them, with meson test
# in the QEMU build directory (default $BUILD/qemu-build), TCG only (see
# no-kvm.sh), two at a time (QTEST_JOBS). Extra environment (e.g.
# ASAN_OPTIONS) passes through to the tests. meson writes its JSON log (each
# test's result and TAP stream; tests/results.py reads it) and its text log;
# this copies them to $BUILD/logs/NAME.json and NAME.txt (NAME: --logbase,
# default qtests), and the JSON to RESULTS_DIR too if set (make check), and
# prints meson's summary. Without a JSON log it fails.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
out="$BUILD/qemu-build" logbase=qtests
while [ $# -gt 0 ]; do
    case "$1" in
        -C) out=$2; shift 2 ;;
        --logbase) logbase=$2; shift 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "run-qtests: name the tests to run" >&2; exit 2; }
logs="$BUILD/logs"
mkdir -p "$logs"
shopt -s nullglob
meson=meson
[ ! -x "$out/pyvenv/bin/meson" ] || meson=$out/pyvenv/bin/meson
rm -f "$out/meson-logs/$logbase"*
"$meson" test -C "$out" --no-rebuild --num-processes "${QTEST_JOBS:-2}" \
    --timeout-multiplier "${QTEST_TIMEOUT_MULTIPLIER:-2}" \
    --wrapper "$here/no-kvm.sh" --logbase "$logbase" --print-errorlogs \
    "${@/#/qtest-x86_64/}" > "$logs/$logbase.meson.log" 2>&1
rc=$?
# meson names the files after the log base and the wrapper
rm -f "$logs/$logbase.json"
for f in "$out/meson-logs/$logbase"*.json; do
    cp "$f" "$logs/$logbase.json"
    [ -z "${RESULTS_DIR:-}" ] || cp "$f" "$RESULTS_DIR/$logbase.json"
done
for f in "$out/meson-logs/$logbase"*.txt; do cp "$f" "$logs/$logbase.txt"; done
grep -E '^ *[0-9]+/[0-9]+ |^(Ok|Fail|Skipped|Timeout|Expected Fail|Unexpected Pass): ' \
    "$logs/$logbase.meson.log"
[ $rc = 0 ] || grep -E '^(not ok|Bail out)|ERROR|assertion' "$logs/$logbase.meson.log" | head -20
if [ ! -s "$logs/$logbase.json" ]; then
    echo "run-qtests: meson test left no JSON log (see $logs/$logbase.meson.log)"
    exit 1
fi
echo "logs: $logs/$logbase.txt, results: $logs/$logbase.json"
exit $rc
