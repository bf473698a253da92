#!/bin/bash
# make sanitize: build QEMU with AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer, run spm-memory-test and a slice of the fuzzer
# (tests/fuzz) on it, and fail on any sanitizer report.
#
# Results go to RESULTS_DIR (make check; else $BUILD/logs/sanitize): meson's
# JSON log of spm-memory-test, the fuzz slice's TAP, and sanitize.tap (the
# build, and one line per log with or without sanitizer reports).
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
logs="$BUILD/logs/sanitize"
mkdir -p "$logs"
rm -f "$logs"/*
results=${RESULTS_DIR:-$logs}
. "$here/tap.sh"
tap_open "$results/sanitize.tap"
trap tap_close EXIT
start=$(date +%s)

# (the Makefile configured it: setup/configure-qemu.sh --asan)
out="$BUILD/qemu-build-asan"
if ! "$here/../setup/build-qemu.sh" "$out" tests/qtest/spm-memory-test > "$logs/build.log" 2>&1; then
    tail -20 "$logs/build.log"
    tap_fail "ASan+UBSan build of qemu-system-x86_64 and spm-memory-test"
    exit 1
fi
tap_ok "ASan+UBSan build of qemu-system-x86_64 and spm-memory-test"
built=$(date +%s)

# The build has only the machines and devices of setup/qemu-sanitize.mak;
# spm-memory-test leaves out (does not fail) a case whose machine or device
# a build lacks, so check that this one has every one the tests start.
qemu_lists=$(for what in -machine -device -object; do "$out/qemu-system-x86_64" "$what" help; done 2>&1)
for want in pc q35 microvm pc-i440fx-5.0 pc-q35-5.0 spm-memory pc-dimm edu \
            pxb-cxl acpi-generic-initiator acpi-generic-port; do
    if grep -qE "^(name \"$want\"|\s*$want( |$))" <<< "$qemu_lists"; then
        tap_ok "the sanitizer build has $want"
    else
        tap_fail "the sanitizer build has $want (setup/qemu-sanitize.mak)"
        exit 1
    fi
done

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=0:print_summary=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0
export LSAN_OPTIONS=suppressions=$here/lsan.supp:print_suppressions=0

# The fuzz slice (one QEMU at a time) runs beside spm-memory-test (one
# qtest and its QEMU at a time): two cores.
echo "== fuzz slice on the sanitized build (in the background, $logs/fuzz.log)"
# Randomized configurations, each started or refused by the sanitized QEMU
# (qtest accelerator): the fuzzer fails a case on any sanitizer report in
# QEMU's stderr, and on any difference from its model. This reaches the
# device's error paths, placement and table building with many more
# configurations than one guest boot, in a fraction of the time; guests
# themselves run on the normal build (the guest stage).
# Stacks at allocation through DWARF (slower than frame pointers, which
# Debian's glib lacks), so that the suppressions can match QEMU frames:
# QEMU 10.0's own leak with reserve=off is reached from many configurations.
# 10 frames instead of 30 reach it (5 frames from malloc) and are enough to
# find an allocation; the unwinding at every malloc is most of the time.
unwind=fast_unwind_on_malloc=0:malloc_context_size=10
(cd "$here/.." && ASAN_OPTIONS="$ASAN_OPTIONS:$unwind" \
    timeout -k 10 900 /usr/bin/python3 -m tests.fuzz.spm_fuzz \
    --qemu "$out/qemu-system-x86_64" --count "${SANITIZE_FUZZ_COUNT:-60}" \
    --seed 20261205 --time-limit 600 --tap "$results/sanitize-fuzz.tap") \
    > "$logs/fuzz.log" 2>&1 &
fuzz_pid=$!
trap 'kill $fuzz_pid 2>/dev/null; tap_close' EXIT

echo "== spm-memory-test on the sanitized build"
ASAN_OPTIONS="$ASAN_OPTIONS:$unwind" \
    RESULTS_DIR=$results "$here/run-qtests.sh" -C "$out" --logbase sanitize-qtests \
    spm-memory-test
t_rc=$?
mv "$BUILD/logs/sanitize-qtests".* "$logs/" 2>/dev/null
# the scan below needs the test's log (QEMU's stderr is in it)
[ -s "$logs/sanitize-qtests.json" ] || { tap_fail "spm-memory-test left a log to scan"; t_rc=1; }

wait $fuzz_pid
f_rc=$?
echo "== fuzz slice: $(tail -1 "$logs/fuzz.log")"

# Any sanitizer report in any log (a test that passed may still have one in
# a QEMU's stderr).
for f in "$logs"/*; do
    case "$f" in *.tap) continue ;; esac
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
        tap_fail "no sanitizer report in $f"
        grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY' "$f" |
            sort | uniq -c | head -20
    else
        tap_ok "no sanitizer report in $f"
    fi
done
echo "sanitize: build $((built - start))s, tests $(( $(date +%s) - built ))s"
[ $t_rc = 0 ] && [ $f_rc = 0 ]
