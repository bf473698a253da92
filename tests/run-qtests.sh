#!/bin/bash
# run-qtests.sh TEST...
#
# Run QEMU qtests (TAP) against the built qemu-system-x86_64, TCG only (see
# no-kvm.sh), one after the other, and print a summary of their test cases.
# Logs go to $BUILD/logs/qtest-NAME.log.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
out="$BUILD/qemu-build"
logs="$BUILD/logs"
mkdir -p "$logs"
passed=0 failed=0 skipped=0 bad=()
for t in "$@"; do
    log="$logs/qtest-$t.log"
    start=$(date +%s)
    (cd "$out" && timeout -k 10 1200 "$here/no-kvm.sh" \
        env QTEST_QEMU_BINARY=./qemu-system-x86_64 "./tests/qtest/$t" --tap -k) \
        > "$log" 2>&1
    rc=$?
    p=$(grep -cE '^ok [0-9]+' "$log" | head -1)
    s=$(grep -cE '^ok [0-9]+ .*# SKIP' "$log" | head -1)
    f=$(grep -cE '^not ok [0-9]+' "$log" | head -1)
    p=$((p - s))
    # The TAP plan ("1..N") says how many cases there are: every case that
    # did not report (the binary aborted, hung or was killed) is a failure.
    plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
    if [ -z "$plan" ]; then
        echo "    $t: no TAP plan in its output (did it start?)"
        f=$((f + 1))
    elif [ $((p + s + f)) -lt "$plan" ]; then
        echo "    $t: $((plan - p - s - f)) of $plan cases did not run"
        f=$((plan - p - s))
    fi
    if [ $rc != 0 ] && [ "$f" = 0 ]; then
        f=1     # failed outside a test case (e.g. at exit)
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    status=PASS
    if [ $rc != 0 ] || [ "$f" != 0 ]; then
        status=FAIL; bad+=("$t")
        grep -E '^not ok|^Bail out|ERROR|assert' "$log" | head -20 | sed 's/^/    /'
    fi
    printf '%-4s %-28s %4d passed %3d failed %3d skipped  %4ss  (%s)\n' \
        "$status" "$t" "$p" "$f" "$s" "$(( $(date +%s) - start ))" "$log"
done
echo "qtests: $passed passed, $failed failed, $skipped skipped"
[ ${#bad[@]} = 0 ]
