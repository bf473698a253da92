#!/bin/bash
# make check: every test, each stage with its own log and summary line, then
# one line for all of them.
#   qtests    QEMU's own and the series' spm-memory-test (tests/run-qtests.sh)
#   guest     real Linux guests (tests/guest, pytest)
#   hostvm    a Linux guest as the host: spm-memory backed by its /dev/dax0.0,
#             by RAM bound to its node 1, by its hugepages (tests/hostvm)
#   fuzz      a slice of the randomized configurations (tests/fuzz)
#   libvirt-series  libvirt's own unit tests and syntax-check of the
#             patched libvirt (tests/run-libvirt-tests.sh)
#   libvirt   real libvirt daemons: Debian's libvirtd runs the passthrough
#             example examples/spm-memory-libvirt.xml, the patched virtqemud
#             the native model (tests/libvirt)
#   sanitize  ASan+UBSan build: spm-memory-test and a fuzz slice
#   setup     the set-up on Debian 13 in a debootstrap'd root (tests/setup/test_setup.sh)
#   series    the QEMU series with cover letter, checkpatch-clean (setup/series.sh)
#   docs      QEMU's manual with the series' page: Sphinx, warnings are errors
# docs runs beside qtests, setup beside sanitize, each pair on the two cores
# at once (CHECK_BESIDE; CHECK_BESIDE= runs every stage alone).
# CHECK_STAGES selects stages (default: all of them); an unknown name is an
# error. Each stage writes its runner's machine-readable results into
# $BUILD/logs/results/STAGE/ (pytest's JUnit XML, meson's JSON log of the
# qtests, TAP from the fuzzer and the shell stages), and tests/results.py
# counts them: a stage fails when its command fails, when a result says a
# test failed, or when it left no result; skipped tests are counted and
# shown.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
logs="$BUILD/logs"
cd "$root"     # Python runs from here: the spmtest package and tests.* modules
mkdir -p "$logs"
stages=${CHECK_STAGES:-series docs qtests guest hostvm fuzz libvirt-series libvirt sanitize setup}
QTESTS=("$@")

known="series docs qtests guest hostvm fuzz libvirt-series libvirt sanitize setup"
for s in $stages; do
    case " $known " in
        *" $s "*) ;;
        *) echo "check: unknown stage '$s' (stages: $known)" >&2; exit 2 ;;
    esac
done

pytest() { /usr/bin/python3 -m pytest -q -p no:cacheprovider \
               --junitxml="$RESULTS_DIR/pytest.xml" "$@"; }
stage() {
    case "$1" in
        qtests)   "$here/run-qtests.sh" "${QTESTS[@]}" ;;
        # two guests at a time: each is one TCG thread
        guest)    pytest -n "${GUEST_JOBS:-2}" tests/guest \
                       ${GUEST_TESTS:+-k "$GUEST_TESTS"} ;;
        hostvm)   pytest tests/hostvm ;;
        fuzz)     /usr/bin/python3 -m tests.fuzz.spm_fuzz \
                       --count "${FUZZ_COUNT:-200}" --time-limit 600 \
                       ${FUZZ_SEED:+--seed "$FUZZ_SEED"} \
                       --tap "$RESULTS_DIR/fuzz.tap" ;;
        sanitize) "$here/sanitize.sh" ;;
        series)   "$here/../setup/series.sh" ;;
        docs)     . "$here/tap.sh"; tap_open "$RESULTS_DIR/docs.tap"
                  tap_check "QEMU's manual with the spm-memory page (Sphinx, warnings are errors)" \
                      ninja -C "$BUILD/qemu-docs" sphinxdocs
                  tap_close ;;
        libvirt-series) "$here/run-libvirt-tests.sh" ;;
        # the patched libvirt's build directory exists only under
        # setup/libvirt-env.sh (it mounts $BUILD at a fixed path)
        libvirt)  "$root/setup/libvirt-env.sh" /usr/bin/python3 -m pytest -q \
                      -p no:cacheprovider --junitxml="$RESULTS_DIR/pytest.xml" \
                      tests/libvirt ;;
        setup)    "$root/tests/setup/test_setup.sh" trixie ;;
    esac
}

# What the stages run: the versions that the set-up chose
# (build/*.env, build/guest/*.env, written by setup/ and guest/ scripts).
val() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -1; }
kernels=
for k in "$BUILD"/guest/kernel-*.env; do
    [ -e "$k" ] && kernels="$kernels $(val "$k" KERNEL_RELEASE)"
done
echo "check: QEMU $(val "$BUILD/qemu-source.env" QEMU_DEBIAN_VERSION)," \
     "SeaBIOS $(val "$BUILD/seabios-source.env" SEABIOS_DEBIAN_VERSION) + patches/seabios," \
     "OVMF $(val "$BUILD/guest/firmware.env" OVMF_VERSION)" \
     "(old: $(val "$BUILD/guest/firmware.env" OVMF_OLD_VERSION))," \
     "libvirt $(val "$BUILD/libvirt-source.env" LIBVIRT_DEBIAN_VERSION) + patches/libvirt," \
     "upstream QEMU $(val "$BUILD/qemu-upstream/env" QEMU_UPSTREAM_VERSION) (sp-mem, libvirt stage)," \
     "kernels:${kernels:- none}"

passed=0 failed=0 skipped=0 bad=()

# account STAGE RC SECONDS: count the stage's results, print its line
account() {
    local s=$1 rc=$2 secs=$3 results counts results_rc p f k
    RESULTS_DIR="$logs/results/$s"
    results=("$RESULTS_DIR"/*)
    [ -e "${results[0]}" ] || results=()
    counts=$(/usr/bin/python3 -m tests.results "${results[@]}")
    results_rc=$?
    read -r p _ f _ k _ <<< "$(head -1 <<< "$counts")"
    p=${p:-0} f=${f:-0} k=${k:-0}
    if [ "$results_rc" != 0 ] && [ "${#results[@]}" != 0 ]; then
        echo "check: stage $s left a result that cannot be read (see above)"
        f=$((f + 1))
    fi
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "check: stage $s exited with status $rc"
        f=1
    fi
    if [ $((p + f)) = 0 ]; then
        echo "check: stage $s: no test passed or failed ($k skipped; results in $RESULTS_DIR)"
        f=1
    fi
    tail -n +2 <<< "$counts" | head -20
    [ "$rc" = 0 ] && [ "$f" = 0 ] || bad+=("$s")
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + k))
    echo "-- $s: $p passed, $f failed, $k skipped in ${secs}s"
}

fresh_results() {
    export RESULTS_DIR="$logs/results/$1"
    rm -rf "$RESULTS_DIR"; mkdir -p "$RESULTS_DIR"
}

# Stages that run beside another, as BESIDE:PARTNER: on two cores each
# partner leaves one mostly idle for a long stretch (bios-tables-test is
# the qtests' last minute alone; the sanitized spm-memory-test runs alone
# after the fuzz slice), which Sphinx and the Debian 13 set-up fill. The
# stage beside starts with its partner, its output goes to its log and is
# shown, with its line, after the partner's. CHECK_BESIDE= runs each stage
# alone.
beside=${CHECK_BESIDE-docs:qtests setup:sanitize}
partner_of() { # STAGE: the selected stage it runs beside, if any
    local pair
    for pair in $beside; do
        if [ "${pair%%:*}" = "$1" ] && [[ " $stages " == *" ${pair#*:} "* ]]; then
            echo "${pair#*:}"; return
        fi
    done
}
companion_of() { # STAGE: the selected stage that runs beside it, if any
    local pair
    for pair in $beside; do
        if [ "${pair#*:}" = "$1" ] && [[ " $stages " == *" ${pair%%:*} "* ]]; then
            echo "${pair%%:*}"; return
        fi
    done
}

# The sanitizer build starts with the first stage, in the background at the
# lowest priority, so that it takes mostly the CPU time the stages before
# sanitize leave idle (a guest stage's last boot, hostvm's and libvirt's
# single guest, ...); on a new machine that build is the longest one of
# all. The sanitize stage waits for it (its own build step then finds
# nothing to do, or shows the error). Its log: $logs/sanitize-build.log.
asan_pid=
if [[ " $stages " == *" sanitize "* ]] && [ -f "$BUILD/qemu-build-asan/build.ninja" ]; then
    rm -f "$logs/sanitize-build.status"
    # (its own session, so that it can be stopped whole, and so its own
    # scheduler autogroup where the kernel has them: that group's nice
    # value, not the processes', ranks it against the stages)
    STATUS=$logs/sanitize-build.status setsid bash -c \
        'echo 19 2> /dev/null > /proc/self/autogroup
         nice -n 19 "$@"; rc=$?; echo "$rc $(date +%s)" > "$STATUS"; exit $rc' \
        build "$root/setup/build-qemu.sh" "$BUILD/qemu-build-asan" \
        tests/qtest/spm-memory-test > "$logs/sanitize-build.log" 2>&1 < /dev/null &
    asan_pid=$!
    # (stopped with the script unless it has ended; a build left running
    # by a run killed outright holds setup/build-qemu.sh's lock, which the
    # next build of that directory waits for)
    trap '[ -z "$asan_pid" ] || [ -e "$logs/sanitize-build.status" ] ||
          kill -- -"$asan_pid" 2>/dev/null' EXIT
fi

t_all=$(date +%s)
for s in $stages; do
    [ -z "$(partner_of "$s")" ] || continue      # runs with its partner
    t0=$(date +%s)
    c=$(companion_of "$s")
    if [ -n "$c" ]; then
        fresh_results "$c"
        rm -f "$logs/check-$c.status"
        ( t0=$(date +%s); rc=0
          stage "$c" > "$logs/check-$c.log" 2>&1 < /dev/null || rc=$?
          echo "$rc $(( $(date +%s) - t0 ))" > "$logs/check-$c.status" ) &
        c_pid=$!
    fi
    echo "== $s${c:+ (with $c beside it)}"
    if [ "$s" = sanitize ] && [ -n "$asan_pid" ]; then
        wait "$asan_pid" || echo "check: the background sanitizer build failed (see $logs/sanitize-build.log); sanitize builds again"
        asan_pid=
        read -r _ a_end 2>/dev/null < "$logs/sanitize-build.status"
        echo "check: the sanitizer build (in the background) ended ${a_end:+$((a_end - t_all))s after the first stage began, }$(( $(date +%s) - t0 ))s waited for it"
    fi
    fresh_results "$s"
    stage "$s" 2>&1 | tee "$logs/check-$s.log"
    rc=${PIPESTATUS[0]}
    account "$s" "$rc" $(( $(date +%s) - t0 ))
    if [ -n "$c" ]; then
        wait "$c_pid"
        echo "== $c (beside $s)"
        cat "$logs/check-$c.log"
        read -r c_rc c_secs 2>/dev/null < "$logs/check-$c.status" || c_rc=1 c_secs=0
        account "$c" "${c_rc:-1}" "${c_secs:-0}"
    fi
done
echo "check: $passed passed, $failed failed, $skipped skipped in $(( $(date +%s) - t_all ))s${bad[*]:+ (failed: ${bad[*]})}"
[ ${#bad[@]} = 0 ]
