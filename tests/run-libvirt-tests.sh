#!/bin/bash
# tests/run-libvirt-tests.sh: libvirt's own checks of the patched libvirt
# (the libvirt-series stage of make check), as libvirt checks its patches:
# every unit test of this configuration (qemuxmlconftest with the sp-mem
# cases, qemuxmlactivetest, qemuhotplugtest, qemumonitorjsontest,
# virschematest, ...), then the syntax-check suite over the working tree
# build/libvirt. meson's JSON logs go to RESULTS_DIR (else $BUILD/logs).
# Runs under setup/libvirt-env.sh, like everything that uses the build.
set -uo pipefail
BUILD=${BUILD:?}
here=$(cd "$(dirname "$0")" && pwd)
[ "${SPM_LIBVIRT_ENV:-}" = 1 ] ||
    exec "$here/../setup/libvirt-env.sh" "$here/run-libvirt-tests.sh" "$@"
out=$BUILD/libvirt-build
logs=$BUILD/logs
mkdir -p "$logs"
[ -f "$out/build.ninja" ] ||
    { echo "run-libvirt-tests: libvirt is not built (make libvirt-build)" >&2; exit 1; }
# rpcgen's pytest would write caches into the source tree
export PYTEST_ADDOPTS='-p no:cacheprovider' PYTHONDONTWRITEBYTECODE=1
# meson's default run is all of it: the unit tests and the syntax-check suite
logbase=libvirt-tests
rm -f "$out/meson-logs/$logbase".*
meson test -C "$out" --no-rebuild --num-processes 2 --logbase "$logbase" \
    --print-errorlogs > "$logs/$logbase.meson.log" 2>&1
rc=$?
grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' \
    "$logs/$logbase.meson.log" | paste -sd ' ' | tr -s ' '
grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)' "$logs/$logbase.meson.log" | head -20
if [ -s "$out/meson-logs/$logbase.json" ]; then
    cp "$out/meson-logs/$logbase.json" "${RESULTS_DIR:-$logs}/$logbase.json"
else
    echo "run-libvirt-tests: meson left no JSON log" >&2
    rc=1
fi
exit $rc
