#!/bin/bash
# make check: every test, each stage with its own log and summary line, then
# one line for all of them.
#   qtests    QEMU's own and the series' spm-memory-test (scripts/run-qtests.sh)
#   guest     real Linux guests (tests/guest, pytest)
#   fuzz      a slice of the randomized configurations (tests/fuzz)
#   libvirt   a real libvirtd runs examples/spm-memory-libvirt.xml (tests/libvirt)
#   sanitize  ASan+UBSan build: spm-memory-test and a guest boot
#   series    the QEMU series with cover letter, checkpatch-clean (series.sh)
# CHECK_STAGES selects stages (default: all of them).
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
logs="$BUILD/logs"
mkdir -p "$logs"
stages=${CHECK_STAGES:-series qtests guest fuzz libvirt sanitize}
QTESTS=("$@")

stage() {
    case "$1" in
        qtests)   "$here/run-qtests.sh" "${QTESTS[@]}" ;;
        guest)    (cd "$root/tests/guest" && /usr/bin/python3 -m pytest -q \
                       -p no:cacheprovider ${GUEST_TESTS:+-k "$GUEST_TESTS"}) ;;
        fuzz)     /usr/bin/python3 "$root/tests/fuzz/spm_fuzz.py" \
                       --count "${FUZZ_COUNT:-200}" --time-limit 600 ;;
        sanitize) "$here/sanitize.sh" ;;
        series)   "$here/series.sh" ;;
        libvirt)  (cd "$root/tests/libvirt" && /usr/bin/python3 -m pytest -q \
                       -p no:cacheprovider) ;;
    esac
}

passed=0 failed=0 bad=()
for s in $stages; do
    echo "== $s"
    t0=$(date +%s)
    stage "$s" 2>&1 | tee "$logs/check-$s.log"
    rc=${PIPESTATUS[0]}
    last=$(grep -E '[0-9]+ passed|[0-9]+ failed' "$logs/check-$s.log" | tail -1)
    p=$(grep -oE '[0-9]+ passed' <<< "$last" | cut -d' ' -f1)
    f=$(grep -oE '[0-9]+ (failed|error)' <<< "$last" | awk '{s += $1} END {print s + 0}')
    p=${p:-0} f=${f:-0}
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; fi
    [ "$rc" = 0 ] || bad+=("$s")
    passed=$((passed + p)) failed=$((failed + f))
    echo "-- $s: $p passed, $f failed in $(( $(date +%s) - t0 ))s"
done
echo "check: $passed passed, $failed failed"
[ ${#bad[@]} = 0 ] && [ "$failed" = 0 ]
