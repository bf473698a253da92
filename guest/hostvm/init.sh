#!/bin/sh
# /init of the host VM (L1) of tests/hostvm (busybox, no udev; installed by
# guest/hostvm/mkinitramfs.sh, runs as PID 1).
#
# The test boots this guest with an spm-memory device of its own and hands
# it a plan in the fw_cfg file opt/hostvm/plan. This guest:
#
#  1. loads qemu_fw_cfg, device_dax and dax_hmem (not kmem), and binds the
#     spm-memory range's dax device to device_dax if nothing bound it
#     (Linux 6.12 marks hmem dax devices for kmem, which device_dax does
#     not match unless told the device's name through new_id);
#  2. prints what it has: dax devices, the /proc/iomem lines of the range,
#     NUMA nodes;
#  3. runs the plan, one line at a time:
#       hugepages NODE COUNT
#           reserve COUNT 2 MiB hugepages on NUMA node NODE
#       variant NAME [QTESTFW-OPTIONS] -- [QEMU-ARGS]
#           run "qtestfw QTESTFW-OPTIONS -- QEMU QEMU-ARGS" (a second-level
#           VM under -accel qtest; guest/hostvm/qtestfw.c), QEMU being the
#           binary in this initramfs
#     (words are split at blanks; no quoting);
#  4. powers off (with QEMU -no-reboot the VM exits).
#
# Console output, for the test to parse ("key: value" lines):
#   === HOSTVM BEGIN ===
#   uptime_ms: / kernel: / module: name=M status=ok|failed|missing / dax: ... /
#   iomem: ... / node: id=N memtotal_kb=K / plan: <line> / hugepages: ...
#   === VARIANT NAME BEGIN ===
#   <qtestfw's lines>
#   === VARIANT NAME END rc=N ms=N ===
#   === HOSTVM END ===

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
QEMU=/opt/qemu/qemu-system-x86_64
PLAN=/sys/firmware/qemu_fw_cfg/by_name/opt/hostvm/plan/raw

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
mkdir -p /tmp /dev/hugepages
mount -t hugetlbfs hugetlbfs /dev/hugepages
# Keep kernel messages off the console: they would split report lines.
dmesg -n 1

# Milliseconds since boot.
now_ms() { awk '{printf "%d", $1 * 1000}' /proc/uptime; }

echo "=== HOSTVM BEGIN ==="
echo "uptime_ms: $(now_ms)"
echo "kernel: $(uname -r)"
for m in qemu_fw_cfg device_dax dax_hmem; do
    f=$(find "/lib/modules/$(uname -r)" -name "$m.ko" | head -n 1)
    if [ -z "$f" ]; then
        echo "module: name=$m status=missing"
    elif err=$(insmod "$f" 2>&1); then
        echo "module: name=$m status=ok"
    else
        echo "module: name=$m status=failed error=$(echo "$err" | tr '\n' ' ')"
    fi
done

# dax_hmem makes the device while it loads; give probing a moment anyway.
dax=/sys/bus/dax/devices/dax0.0
i=0
while [ ! -e "$dax" ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done
if [ -e "$dax" ] && [ ! -e "$dax/driver" ]; then
    echo dax0.0 > /sys/bus/dax/drivers/device_dax/new_id
    echo "dax-bind: dax0.0 had no driver; new_id of device_dax"
fi
i=0
while [ -e "$dax" ] && [ ! -e /dev/dax0.0 ] && [ $i -lt 50 ]; do usleep 100000; i=$((i + 1)); done

for d in /sys/bus/dax/devices/*; do
    [ -e "$d" ] || continue
    drv=none
    [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    echo "dax: name=${d##*/} start=$(cat "$d/resource" 2>/dev/null) size=$(cat "$d/size")" \
         "target_node=$(cat "$d/target_node") align=$(cat "$d/align" 2>/dev/null)" \
         "driver=$drv dev=$([ -c "/dev/${d##*/}" ] && echo "/dev/${d##*/}" || echo none)"
done
grep -iE 'soft reserved|dax' /proc/iomem | while IFS= read -r line; do
    echo "iomem: $line"
done
for n in /sys/devices/system/node/node[0-9]*; do
    echo "node: id=${n##*node} memtotal_kb=$(awk '/MemTotal:/ {print $(NF-1)}' "$n/meminfo")"
done

if [ ! -r "$PLAN" ]; then
    echo "error: no plan (fw_cfg file opt/hostvm/plan)"
else
    set -f      # plan words are never globs
    while read -r kind name rest; do
        echo "plan: $kind $name $rest"
        case "$kind" in
        hugepages)
            f=/sys/devices/system/node/node$name/hugepages/hugepages-2048kB/nr_hugepages
            echo "$rest" > "$f"
            echo "hugepages: node=$name asked=$rest got=$(cat "$f")"
            ;;
        variant)
            echo "=== VARIANT $name BEGIN ==="
            t0=$(now_ms)
            # "[OPTIONS] -- ARGS": the binary goes between the two
            r=" $rest"
            opts=${r%% -- *}
            args=${r#* -- }
            # shellcheck disable=SC2086 # split into words on purpose
            qtestfw $opts -- "$QEMU" $args
            rc=$?
            echo "=== VARIANT $name END rc=$rc ms=$(($(now_ms) - t0)) ==="
            ;;
        *)
            echo "error: unknown plan line"
            ;;
        esac
    done < "$PLAN"
    set +f
fi
echo "=== HOSTVM END ==="
sync
poweroff -f
# poweroff -f should not return; never let PID 1 exit.
while :; do sleep 60; done
