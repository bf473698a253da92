#!/bin/bash
# guest/boot.sh [OPTIONS] [-- EXTRA-QEMU-ARGS...]
#
# Boot a Debian kernel plus the spm-memory test initramfs (guest/
# mkinitramfs.sh, /init = guest/init.sh) under TCG, write the serial
# console to a log file and check that the guest printed its report.
#
# Options (each also settable through the environment variable shown):
#   -q, --qemu PATH        QEMU binary        QEMU  ($BUILD/qemu-build/qemu-system-x86_64)
#   -k, --kernel SERIES    guest kernel: 6.1, 6.12 or 7.x (the newest 7.N;
#                          guest/kernel.sh)   GUEST_KERNEL   (6.12)
#   -f, --firmware FW      GUEST_FIRMWARE (seabios):
#                            seabios     QEMU's default BIOS
#                            ovmf        Debian's OVMF >= 2026.05 (make guest-deps)
#                                        (OVMF_CODE_4M.fd + a copy of OVMF_VARS_4M.fd
#                                        as pflash)
#                            PATH        an OVMF image: a *CODE*.fd goes to pflash
#                                        unit 0 with a private copy of the VARS file
#                                        beside it (or --vars) as unit 1; any other
#                                        file (e.g. the unified OVMF.fd) is -bios
#       --vars PATH        VARS template for a CODE image   GUEST_FIRMWARE_VARS
#   -t, --timeout SECONDS  GUEST_TIMEOUT (120); QEMU is killed after that, its
#                          vCPUs' state written to LOG.hang first (guest/hmp-dump.py)
#   -o, --log PATH         GUEST_LOG ($BUILD/guest/logs/boot-KERNEL-FW.log);
#                          QEMU's own stderr goes to PATH.qemu
#   -a, --append STRING    more kernel command line, e.g. "spm.fill=256"  GUEST_APPEND
#       --reboot           let the guest reboot (no -no-reboot), for reset tests
#   --                     everything after it is passed to QEMU (memory, NUMA,
#                          spm-memory devices, -M ...); GUEST_QEMU_ARGS (word-split)
#                          is used when no "--" arguments are given
#
# GUEST_ACCEL replaces "tcg,thread=single" in -accel (e.g. "tcg" for one
# host thread per vCPU). One thread for both vCPUs by default: with a
# thread per vCPU, Linux 6.12 and 7.2 guests now and then hit a stale int3
# of their own boot-time text patching ("Oops: int3" in sched_clock_cpu,
# then a panic), and on two shared host cores one thread boots no slower.
# Always used: -accel tcg,... -cpu max -smp 2 [-no-reboot] -nodefaults -display none
# -serial file:LOG -monitor unix:TMP/hmp.sock,server=on,wait=off
# -kernel/-initrd/-append "console=ttyS0 panic=-1 ...".
#
# Prints "LOG SECONDS" on success. Exit status: 0 when the log holds the
# "=== SPM-REPORT END ===" marker and QEMU exited with status 0, 1 otherwise
# (the log's tail and QEMU's stderr are shown on stderr), 2 for usage errors.
# QEMU runs in this script's process group: a caller that stops the script
# stops QEMU by signalling the group (spmtest.guest.boot() starts it as a
# session leader and kills the group).
set -euo pipefail
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
export BUILD
here=$(cd "$(dirname "$0")" && pwd)

qemu=${QEMU:-$BUILD/qemu-build/qemu-system-x86_64}
kernel=${GUEST_KERNEL:-6.12}
firmware=${GUEST_FIRMWARE:-seabios}
vars=${GUEST_FIRMWARE_VARS:-}
timeout=${GUEST_TIMEOUT:-120}
log=${GUEST_LOG:-}
append=${GUEST_APPEND:-}
noreboot=-no-reboot
extra=()
have_extra=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        -q|--qemu)     qemu=$2; shift 2 ;;
        -k|--kernel)   kernel=$2; shift 2 ;;
        -f|--firmware) firmware=$2; shift 2 ;;
        --vars)        vars=$2; shift 2 ;;
        -t|--timeout)  timeout=$2; shift 2 ;;
        -o|--log)      log=$2; shift 2 ;;
        -a|--append)   append=$2; shift 2 ;;
        --reboot)      noreboot=; shift ;;
        -h|--help)     usage ;;
        --)            shift; extra=("$@"); have_extra=1; break ;;
        *) echo "guest/boot.sh: unknown argument $1" >&2; usage ;;
    esac
done
if [ $have_extra = 0 ] && [ -n "${GUEST_QEMU_ARGS:-}" ]; then
    read -r -a extra <<< "$GUEST_QEMU_ARGS"
fi
case "$kernel" in
    6.1|6.12|[1-9].x|[1-9][0-9].x) ;;
    *) echo "guest/boot.sh: kernel must be 6.1, 6.12 or 7.x" >&2; exit 2 ;;
esac
[ -x "$qemu" ] || { echo "guest/boot.sh: no QEMU binary at $qemu" >&2; exit 2; }

# --- guest kernel and initramfs ---------------------------------------------
# what make guest-deps prepared (guest/kernel.sh, guest/mkinitramfs.sh)
kenv=$BUILD/guest/kernel-$kernel.env
initrd=$BUILD/guest/initramfs-$kernel.cpio.gz
[ -f "$kenv" ] && [ -f "$initrd" ] ||
    { echo "guest/boot.sh: no prepared $kernel guest kernel and initramfs ($kenv, $initrd): run 'make guest-deps'" >&2; exit 1; }
VMLINUZ=$(sed -n 's/^VMLINUZ=//p' "$kenv")
[ -f "$VMLINUZ" ] || { echo "guest/boot.sh: $VMLINUZ is missing: run 'make guest-deps'" >&2; exit 1; }

# --- firmware ----------------------------------------------------------------
fw_args=()
fw_tag=seabios
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/boot-guest.XXXXXX")
trap 'rm -rf "$tmpdir"' EXIT
case "$firmware" in
    seabios|default) ;;
    ovmf)
        fw=$("$here/firmware.sh") || exit 2      # OVMF >= 2026.05 (make guest-deps)
        firmware=$(sed -n 's/^OVMF=//p' <<< "$fw")
        [ -n "$vars" ] || vars=$(sed -n 's/^OVMF_VARS=//p' <<< "$fw")
        ;;
esac
if [ "$firmware" != seabios ] && [ "$firmware" != default ]; then
    [ -f "$firmware" ] || { echo "guest/boot.sh: no firmware file $firmware" >&2; exit 2; }
    base=$(basename "$firmware")
    fw_tag=${base%.fd}
    if [[ $base == *CODE* ]]; then
        if [ -z "$vars" ]; then
            vars=$(dirname "$firmware")/${base/CODE/VARS}
            # OVMF_CODE_4M.secboot.fd pairs with OVMF_VARS_4M.fd
            [ -f "$vars" ] || vars=$(dirname "$firmware")/$(echo "$base" | sed 's/CODE/VARS/; s/\.[^.]*\.fd$/.fd/; s/\.[^.]*\.fd$/.fd/')
        fi
        [ -f "$vars" ] || { echo "guest/boot.sh: no VARS file for $firmware (use --vars)" >&2; exit 2; }
        cp "$vars" "$tmpdir/vars.fd"
        fw_args=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$firmware"
                 -drive "if=pflash,format=raw,unit=1,file=$tmpdir/vars.fd")
    else
        fw_args=(-bios "$firmware")
    fi
fi

# --- boot --------------------------------------------------------------------
[ -n "$log" ] || log=$BUILD/guest/logs/boot-$kernel-$fw_tag.log
mkdir -p "$(dirname "$log")"
: > "$log"
cmdline="console=ttyS0 panic=-1${append:+ $append}"
hmp=$tmpdir/hmp.sock
cmd=("$qemu" -accel "${GUEST_ACCEL:-tcg,thread=single}" -cpu max -smp 2 $noreboot -nodefaults -display none
     -serial "file:$log" -monitor "unix:$hmp,server=on,wait=off"
     "${fw_args[@]}"
     -kernel "$VMLINUZ" -initrd "$initrd" -append "$cmdline"
     "${extra[@]}")
printf '%q ' "${cmd[@]}" > "$log.qemu"; echo >> "$log.qemu"
start=$(date +%s.%N)
rc=0
"${cmd[@]}" >> "$log.qemu" 2>&1 < /dev/null &
qemu_pid=$!
watchdog=
# an interrupt or a stop of this script stops QEMU and the watchdog too
stop() { kill -TERM $qemu_pid ${watchdog:-} 2>/dev/null; exit "$1"; }
trap 'stop 130' INT
trap 'stop 143' TERM
# The time limit: a guest that is still running then is stopped, its
# vCPUs' state written to LOG.hang first (HMP "info registers -a", the
# code and stack at each vCPU's RIP and RSP), so that a hang can be told
# apart (a guest waiting for another vCPU, a fault loop, QEMU stuck).
(
    set +e
    sleep "$timeout" &
    trap "kill $! 2>/dev/null; exit 0" TERM
    wait $!
    kill -0 $qemu_pid 2>/dev/null || exit 0
    : > "$tmpdir/timed-out"
    timeout 20 /usr/bin/python3 "$here/hmp-dump.py" "$hmp" > "$log.hang" 2>&1
    kill -TERM $qemu_pid 2>/dev/null
    sleep 5
    kill -KILL $qemu_pid 2>/dev/null
) < /dev/null > /dev/null 2>&1 &
# (its output closed: a sleep left behind must not hold the caller's pipes)
watchdog=$!
wait $qemu_pid || rc=$?
kill $watchdog 2>/dev/null || true
wait $watchdog 2>/dev/null || true
[ ! -e "$tmpdir/timed-out" ] || rc=124
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')

# Both must hold: the guest printed its whole report, and QEMU ended
# cleanly (an abort at shutdown, a crash in unrealize or the timeout's kill
# are failures even after a complete report).
ok=1
# (no pipe into grep -q here: with pipefail, grep's early exit can kill the
# writer with SIGPIPE and fail the test on a complete report)
if ! grep -Eqx $'=== SPM-REPORT END ===\r?' "$log"; then
    echo "guest/boot.sh: no report END marker in $log (${secs}s); last lines:" >&2
    tail -n 30 "$log" >&2
    ok=0
fi
if [ $rc = 124 ] || [ $rc = 137 ]; then
    echo "guest/boot.sh: QEMU killed after ${timeout}s timeout (vCPU state in $log.hang):" >&2
    grep -E '^(VM status|CPU#|RIP=|RSP=|CR0=)' "$log.hang" >&2 || true
    ok=0
elif [ $rc != 0 ]; then
    echo "guest/boot.sh: QEMU exited with status $rc:" >&2
    tail -n 20 "$log.qemu" >&2
    ok=0
fi
[ $ok = 1 ] || exit 1
echo "$log $secs"
