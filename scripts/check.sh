#!/bin/bash
# make check: the qtests (QEMU's own and the series' spm-memory-test), then
# the guest end-to-end tests (tests/guest, pytest), and one summary line.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$BUILD/logs"

echo "== qtests"
"$here/run-qtests.sh" "$@" | tee "$BUILD/logs/qtests.summary"
q_rc=${PIPESTATUS[0]}
qline=$(tail -1 "$BUILD/logs/qtests.summary")
q_pass=$(sed -n 's/.* \([0-9]*\) passed.*/\1/p' <<< "$qline")
q_fail=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<< "$qline")

echo "== guest end-to-end tests (tests/guest)"
(cd "$here/../tests/guest" && /usr/bin/python3 -m pytest -q -p no:cacheprovider \
    --junitxml="$BUILD/logs/guest-tests.xml" ${GUEST_TESTS:+-k "$GUEST_TESTS"}) \
    | tee "$BUILD/logs/guest-tests.log"
g_rc=${PIPESTATUS[0]}
gline=$(tail -1 "$BUILD/logs/guest-tests.log")
g_pass=$(grep -o '[0-9]* passed' <<< "$gline" | cut -d' ' -f1)
g_fail=$(( $(grep -o '[0-9]* failed' <<< "$gline" | cut -d' ' -f1 || echo 0) +
           $(grep -o '[0-9]* error' <<< "$gline" | cut -d' ' -f1 || echo 0) ))
if [ "$g_rc" != 0 ] && [ "$g_fail" = 0 ]; then g_fail=1; fi

passed=$(( ${q_pass:-0} + ${g_pass:-0} ))
failed=$(( ${q_fail:-1} + g_fail ))
echo "check: $passed passed, $failed failed"
[ "$q_rc" = 0 ] && [ "$g_rc" = 0 ] && [ "$failed" = 0 ]
