#!/bin/bash
# make sanitize: build QEMU with AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer, run spm-memory-test and boot a Linux guest with
# two spm-memory devices on it, and fail on any sanitizer report.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
logs="$BUILD/logs/sanitize"
mkdir -p "$logs"
rm -f "$logs"/*
start=$(date +%s)

# (the Makefile configured it: host/configure-qemu.sh --asan)
out="$BUILD/qemu-build-asan"
"$here/../host/build-qemu.sh" "$out" tests/qtest/spm-memory-test || exit 1
built=$(date +%s)

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=0:print_summary=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=0
export LSAN_OPTIONS=suppressions=$here/lsan.supp:print_suppressions=0

echo "== spm-memory-test on the sanitized build"
# Full stacks at allocation here, so that the suppressions can match QEMU
# frames (not for the guest boot: a 6.12 guest under so slow a TCG panicked
# in its early text patching).
(cd "$out" && timeout -k 10 1800 "$here/no-kvm.sh" \
    env ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" \
    QTEST_QEMU_BINARY=./qemu-system-x86_64 ./tests/qtest/spm-memory-test --tap -k) \
    > "$logs/spm-memory-test.log" 2>&1
t_rc=$?
grep -cE '^ok ' "$logs/spm-memory-test.log" | sed 's/^/  test cases passed: /'

echo "== guest boot (Linux 6.12, two spm-memory devices) on the sanitized build"
# (the kernel and initramfs that make guest-deps prepared: SPM_OFFLINE=1).
# One TCG thread for both vCPUs: under the slow sanitized build, a 6.12
# guest once hit a stale int3 of its own text patching with one thread per
# vCPU ("Oops: int3" in sched_clock_cpu).
GUEST_ACCEL=tcg,thread=single SPM_OFFLINE=1 QEMU="$out/qemu-system-x86_64" \
    "$here/../guest/boot.sh" -k 6.12 -t 600 \
    -o "$logs/guest.log" -- -M q35 -m 1G,maxmem=8G \
    -object memory-backend-ram,id=m0,size=1G \
    -numa node,nodeid=0,memdev=m0,cpus=0-1 -numa node,nodeid=1 -numa node,nodeid=2 \
    -object memory-backend-ram,id=hbm0,size=512M \
    -device spm-memory,id=spm0,memdev=hbm0,node=1 \
    -object memory-backend-ram,id=hbm1,size=256M \
    -device spm-memory,id=spm1,memdev=hbm1,node=2
g_rc=$?
dax=$(grep -c '^dax: .*driver=kmem' "$logs/guest.log" | head -1)
echo "  guest dax devices bound to kmem: $dax"

reports=$(grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$logs"/* 2>/dev/null)
echo "sanitize: build $((built - start))s, tests $(( $(date +%s) - built ))s"
if [ -n "$reports" ]; then
    echo "sanitize: sanitizer reports in:"
    for f in $reports; do
        echo "  $f"
        grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY' "$f" | sort | uniq -c | head -20
    done
fi
if [ $t_rc != 0 ] || [ $g_rc != 0 ] || [ "$dax" != 2 ] || [ -n "$reports" ]; then
    echo "sanitize: 0 passed, 1 failed"
    exit 1
fi
echo "sanitize: 1 passed, 0 failed"
