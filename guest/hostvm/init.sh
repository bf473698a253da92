#!/bin/sh
# /init of the host VM (L1) of tests/hostvm (busybox, no udev; installed by
# guest/hostvm/mkinitramfs.sh, runs as PID 1).
#
# The test (spmtest/hostvm.py) boots this guest with an spm-memory device
# of its own and three virtio-serial ports, whose other ends are unix
# sockets of the test:
#
#   hostvm.ctl    requests to this script, answered here (below)
#   hostvm.qtest  the qtest chardev of the QEMU started here (L2)
#   hostvm.qmp    its QMP monitor
#
# so that the test drives L2 itself, with QEMU's own Python clients, and
# this guest does only what must run on the host: start QEMU, read
# /dev/dax0.0, /proc and the hugepage counters. At boot it loads device_dax
# and dax_hmem (not kmem) and binds the spm-memory range's dax device to
# device_dax if nothing bound it (Linux 6.12 marks hmem dax devices for
# kmem, which device_dax does not match unless told the device's name
# through new_id), then serves one request a line (words split at blanks;
# no quoting):
#
#   info                    what boot found: module:, dax:, iomem:, node:
#   hugepages NODE COUNT    reserve COUNT 2 MiB hugepages on NUMA node NODE
#   start ARGS...           start QEMU ARGS (in the background) with
#                           -accel qtest and its qtest and QMP on the two
#                           ports; once QEMU has exited, its exit status is
#                           written on the qtest port as one line
#                           "EXIT status=N", so that a client waiting for
#                           a qtest answer of a QEMU that refused its
#                           configuration gets one
#   dax OFFSET LENGTH       dax: the bytes of /dev/dax0.0 there, in hex
#   proc LO HI              smaps:, numa_maps: of QEMU's mappings that
#                           overlap [LO, HI) (decimal), meminfo:
#                           (HugePages_*), node-hugepages:
#   kill                    SIGKILL QEMU (if it still runs)
#   wait                    wait for QEMU's exit: exit: status=N, stderr:
#   idle                    wait until the test has closed both QEMU ports
#                           (it connects anew for each QEMU)
#   poweroff
#
# Every answer ends with the line "=== END rc=N ===" (N: 0 if the request
# succeeded). The console (ttyS0) gets boot facts and each request's first
# word, for the log.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
QEMU=/opt/qemu/qemu-system-x86_64
DAX=/dev/dax0.0
PORTS=/dev/virtio-ports
VM=/tmp/vm          # the QEMU of the last "start": pid, rc, stderr

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /tmp /dev/hugepages $PORTS
mount -t hugetlbfs hugetlbfs /dev/hugepages
# Keep kernel messages off the console.
dmesg -n 1

# Milliseconds since boot.
now_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }
# A boot fact: on the console and in the answer to "info".
fact() { echo "$*"; echo "$*" >> /tmp/info; }

echo "=== HOSTVM BEGIN ==="
fact "uptime_ms: $(now_ms)"
fact "kernel: $(uname -r)"
for m in device_dax dax_hmem; do
    f=$(find "/lib/modules/$(uname -r)" -name "$m.ko" | head -n 1)
    if [ -z "$f" ]; then
        fact "module: name=$m status=missing"
    elif err=$(insmod "$f" 2>&1); then
        fact "module: name=$m status=ok"
    else
        fact "module: name=$m status=failed error=$(echo "$err" | tr '\n' ' ')"
    fi
done

# dax_hmem makes the device while it loads; give probing a moment anyway.
dax=/sys/bus/dax/devices/dax0.0
i=0
while [ ! -e "$dax" ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
if [ -e "$dax" ] && [ ! -e "$dax/driver" ]; then
    echo dax0.0 > /sys/bus/dax/drivers/device_dax/new_id
    fact "dax-bind: dax0.0 had no driver; new_id of device_dax"
fi
i=0
while [ -e "$dax" ] && [ ! -e $DAX ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done

for d in /sys/bus/dax/devices/*; do
    [ -e "$d" ] || continue
    drv=none
    [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    fact "dax: name=${d##*/} start=$(cat "$d/resource" 2>/dev/null) size=$(cat "$d/size")" \
         "target_node=$(cat "$d/target_node") align=$(cat "$d/align" 2>/dev/null)" \
         "driver=$drv dev=$([ -c "/dev/${d##*/}" ] && echo "/dev/${d##*/}" || echo none)"
done
grep -iE 'soft reserved|dax' /proc/iomem | while IFS= read -r line; do
    fact "iomem: $line"
done
for n in /sys/devices/system/node/node[0-9]*; do
    fact "node: id=${n##*node} memtotal_kb=$(awk '/MemTotal:/ {print $(NF-1)}' "$n/meminfo")"
done

# The ports by name, /dev/virtio-ports/NAME (udev's links, made here).
i=0
while [ ! -e $PORTS/hostvm.qmp ] && [ $i -lt 300 ]; do
    for p in /sys/class/virtio-ports/vport*; do
        [ -e "$p/name" ] && ln -sf "../${p##*/}" "$PORTS/$(cat "$p/name")"
    done
    [ -e $PORTS/hostvm.ctl ] && [ -e $PORTS/hostvm.qtest ] && [ -e $PORTS/hostvm.qmp ] && break
    usleep 100000; i=$((i + 1))
done
QT=$PORTS/hostvm.qtest
QMP=$PORTS/hostvm.qmp

# host_connected PORT 0|1: wait (up to 20 s) until the test's end of PORT
# is (1) or is not (0) connected. A port whose host side is not connected
# reads as end of file, which QEMU takes for a closed chardev.
host_connected() {
    f=$(readlink "$PORTS/$1")
    f=/sys/kernel/debug/virtio-ports/${f##*/}
    i=0
    while :; do
        while read -r key value; do
            [ "$key" = host_connected: ] && [ "$value" = "$2" ] && return 0
        done < "$f"
        [ $i -lt 2000 ] || { echo "error: $1: host_connected is not $2"; return 1; }
        usleep 10000; i=$((i + 1))
    done
}

start_qemu() {
    host_connected hostvm.qtest 1 && host_connected hostvm.qmp 1 || return 1
    rm -rf $VM
    mkdir -p $VM
    set -- "$@" -accel qtest -qtest "pipe:$QT" -qtest-log none \
        -chardev "pipe,id=hostvm-qmp,path=$QMP" -mon chardev=hostvm-qmp,mode=control
    echo "argv: $QEMU $*"
    (
        "$QEMU" "$@" < /dev/null > /dev/null 2> $VM/stderr &
        echo $! > $VM/pid.new && mv $VM/pid.new $VM/pid
        wait $!
        rc=$?
        echo "EXIT status=$rc" > "$QT"
        echo $rc > $VM/rc.new && mv $VM/rc.new $VM/rc
    ) > /dev/null 2>&1 3>&- &
    until [ -e $VM/pid ]; do usleep 10000; done
    echo "pid: $(cat $VM/pid)"
}

wait_qemu() {
    [ -e $VM/pid ] || { echo "error: no QEMU started"; return 1; }
    until [ -e $VM/rc ]; do usleep 20000; done
    echo "exit: status=$(cat $VM/rc)"
    sed 's/^/stderr: /' $VM/stderr
}

# proc LO HI: QEMU's mappings that overlap [LO, HI) (decimal), in smaps
# and numa_maps; the hugepage counters.
proc_report() {
    if ! pid=$(cat $VM/pid) || [ -e $VM/rc ]; then
        echo "error: QEMU does not run"
        return 1
    fi
    awk -v lo="$1" -v hi="$2" '
        FNR == NR && /^[0-9a-f]+-[0-9a-f]+ / {
            split($1, r, "-")
            on = ("0x" r[1]) + 0 < hi + 0 && ("0x" r[2]) + 0 > lo + 0
            if (on) want[r[1]] = 1
        }
        FNR == NR && on { print "smaps: " $0 }
        FNR != NR && ($1 in want) { print "numa_maps: " $0 }
    ' /proc/"$pid"/smaps /proc/"$pid"/numa_maps
    grep -E '^(HugePages_|Hugepagesize:)' /proc/meminfo | sed 's/^/meminfo: /'
    set +f
    for d in /sys/devices/system/node/node[0-9]*/hugepages/hugepages-2048kB; do
        n=${d#/sys/devices/system/node/node}
        echo "node-hugepages: node=${n%%/*} size_kb=2048" \
             "nr=$(cat "$d/nr_hugepages") free=$(cat "$d/free_hugepages")"
    done
    set -f
}

if ! host_connected hostvm.ctl 1; then
    echo "error: no test on the port hostvm.ctl"
else
    echo "=== HOSTVM READY uptime_ms=$(now_ms) ==="
    exec 3<> $PORTS/hostvm.ctl
    set -f      # request words are never globs
    # shellcheck disable=SC2086 # $args: split into words on purpose
    while read -r cmd args <&3; do
        echo "request: $cmd"
        rc=0
        case "$cmd" in
        info) cat /tmp/info ;;
        hugepages)
            set -- $args
            f=/sys/devices/system/node/node$1/hugepages/hugepages-2048kB/nr_hugepages
            echo "$2" > "$f"
            echo "hugepages: node=$1 asked=$2 got=$(cat "$f")"
            ;;
        start) start_qemu $args || rc=1 ;;
        dax) if h=$(daxhex $DAX $args); then echo "dax: $h"; else rc=1; fi ;;
        proc) proc_report $args || rc=1 ;;
        kill)
            # (kill succeeds until QEMU's parent has reaped it; once it
            # fails, QEMU has ended and its status comes in a moment)
            if [ ! -e $VM/rc ] && ! kill -9 "$(cat $VM/pid)" 2> /dev/null; then
                i=0
                until [ -e $VM/rc ] || [ $i -ge 200 ]; do usleep 10000; i=$((i + 1)); done
                [ -e $VM/rc ] || { echo "error: QEMU neither runs nor ended"; rc=1; }
            fi
            ;;
        wait) wait_qemu || rc=1 ;;
        idle) host_connected hostvm.qtest 0 && host_connected hostvm.qmp 0 || rc=1 ;;
        poweroff) echo "=== END rc=0 ===" >&3; break ;;
        *) echo "error: unknown request"; rc=1 ;;
        esac >&3 2>&1
        echo "=== END rc=$rc ===" >&3
    done
fi
echo "=== HOSTVM END ==="
sync
poweroff -f
# poweroff -f should not return; never let PID 1 exit.
while :; do sleep 60; done
