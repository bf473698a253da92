#!/bin/bash
# make sanitize: build QEMU with AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer, run spm-memory-test and a slice of the fuzzer
# (tests/fuzz) on it, and fail on any sanitizer report.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
logs="$BUILD/logs/sanitize"
mkdir -p "$logs"
rm -f "$logs"/*
start=$(date +%s)

# (the Makefile configured it: setup/configure-qemu.sh --asan)
out="$BUILD/qemu-build-asan"
"$here/../setup/build-qemu.sh" "$out" tests/qtest/spm-memory-test || exit 1
built=$(date +%s)

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=0:print_summary=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0
export LSAN_OPTIONS=suppressions=$here/lsan.supp:print_suppressions=0

echo "== spm-memory-test on the sanitized build"
# Full stacks at allocation here, so that the suppressions can match QEMU
# frames.
(cd "$out" && timeout -k 10 1800 "$here/no-kvm.sh" \
    env ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" \
    QTEST_QEMU_BINARY=./qemu-system-x86_64 ./tests/qtest/spm-memory-test --tap -k) \
    > "$logs/spm-memory-test.log" 2>&1
t_rc=$?
grep -cE '^ok ' "$logs/spm-memory-test.log" | sed 's/^/  test cases passed: /'

echo "== fuzz slice on the sanitized build"
# Randomized configurations, each started or refused by the sanitized QEMU
# (qtest accelerator): the fuzzer fails a case on any sanitizer report in
# QEMU's stderr, and on any difference from its model. This reaches the
# device's error paths, placement and table building with many more
# configurations than one guest boot, in a fraction of the time; guests
# themselves run on the normal build (the guest stage).
# Full stacks at allocation too, for the suppressions (QEMU 10.0's own
# leak with reserve=off is reached from many configurations).
(cd "$here/.." && ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" \
    timeout -k 10 900 /usr/bin/python3 -m tests.fuzz.spm_fuzz \
    --qemu "$out/qemu-system-x86_64" --count "${SANITIZE_FUZZ_COUNT:-60}" \
    --seed 20261205 --time-limit 600) > "$logs/fuzz.log" 2>&1
f_rc=$?
tail -1 "$logs/fuzz.log" | sed 's/^/  /'

reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$logs"/* 2>/dev/null)
echo "sanitize: build $((built - start))s, tests $(( $(date +%s) - built ))s"
if [ -n "$reports" ]; then
    echo "sanitize: sanitizer reports in:"
    for f in $reports; do
        echo "  $f"
        grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY' "$f" | sort | uniq -c | head -20
    done
fi
if [ $t_rc != 0 ] || [ $f_rc != 0 ] || [ -n "$reports" ]; then
    echo "sanitize: 0 passed, 1 failed"
    exit 1
fi
echo "sanitize: 1 passed, 0 failed"
