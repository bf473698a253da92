# TAP results for the shell stages of make check (sourced):
#   tap_open FILE      start FILE (the stage's result, read by tests/results.py)
#   tap_ok NAME / tap_fail NAME / tap_skip NAME WHY
#   tap_check NAME COMMAND...   ok if COMMAND succeeds, else not ok
#   tap_close          the plan (at the end, as TAP allows)
# Each also echoes the line, so the stage's log shows it.
tap_open() { TAP_FILE=$1; TAP_N=0; : > "$TAP_FILE"; }
# (a name is one line, and a "#" in it would start a TAP directive)
_tap() {
    local name=${2//$'\n'/ }
    TAP_N=$((TAP_N + 1)); echo "$1 $TAP_N - ${name//#/no.}${3:+ # $3}" | tee -a "$TAP_FILE"
}
tap_ok() { _tap ok "$*"; }
tap_fail() { _tap "not ok" "$*"; }
tap_skip() { _tap ok "$1" "SKIP $2"; }
tap_check() { local name=$1; shift; if "$@"; then tap_ok "$name"; else tap_fail "$name"; fi; }
tap_close() { echo "1..$TAP_N" >> "$TAP_FILE"; }
