#!/bin/sh
# /init of the spm-memory test guest (busybox, no udev). Installed into the
# initramfs by guest/mkinitramfs.sh; runs as PID 1.
#
# 1. mounts proc, sysfs, devtmpfs;
# 2. loads the dax modules: device_dax, kmem, then dax_hmem (see "Modules");
# 3. waits until every soft reserved E820 range (dmesg "BIOS-e820: ... soft
#    reserved") has a dax device with a driver;
# 4. prints the report between "=== SPM-REPORT BEGIN ===" and
#    "=== SPM-REPORT END ===" (parsed by spmtest/report.py);
# 5. with spm.fill=MIB, fills and keeps checking spm-memory (spmtool);
#    with spm.bench=MIB, measures its bandwidth against node 0 RAM (spmtool);
#    with spm.hold=1, stays up; otherwise powers off (with QEMU -no-reboot
#    the VM exits).
#
# Report lines, one fact per line, "KEY: VALUE":
#   kernel: <uname -r>
#   cmdline: <kernel command line>
#   module: name=<mod> status=ok|failed|missing [error=<insmod message>]
#   auto_online_blocks: <online|offline|...>          (memory hotplug policy)
#   block_size: <hex>  (memory block size in bytes, hex without 0x as sysfs
#                       prints it; the unit in which kmem onlines memory;
#                       "none" without memory hotplug)
#   iomem: <a /proc/iomem line, indentation kept>
#   dmesg: <a kernel log line about e820, SRAT, soft reserved, dax/hmem/kmem>
#   dax: name=dax0.0 start=0x... size=<bytes> target_node=N driver=device_dax|kmem|none
#   node: id=N memtotal_kb=<kB>                        (each online node)
#   tier: name=memory_tierN nodes=<node list>          (each memory tier in
#         /sys/devices/virtual/memory_tiering, by ascending N; its nodelist
#         as sysfs prints it: "0", "1-2", "0,2", or empty; "unknown" when
#         unreadable; no such lines when the directory is absent)
#   nodestate: name=has_cpu|has_memory|has_generic_initiator|online|possible
#         nodes=<node list>            (/sys/devices/system/node/<name>, each
#                                       file the kernel has)
#   wait: ms=<time spent waiting for dax probing> dax=<devices>
#         soft_reserved=<soft reserved ranges in the boot log's E820 map>
#
# Kernel command line options (all optional):
#   spm.modules=a,b,c  modules to insmod, in order (default device_dax,kmem,dax_hmem)
#   spm.wait=SECONDS   longest wait for dax devices to be probed (default 5)
#   spm.fill=MIB       after the report, fill MIB MiB of the first spm-memory
#                      device and print its checksum every second (for ever)
#   spm.fillnode=N     with spm.fill: fill memory of NUMA node N ("node:N")
#                      instead of the first spm-memory device (for comparisons
#                      with pc-dimm memory, which 6.12 onlines on its node)
#   spm.fillevery=S    with spm.fill: check the checksum every S seconds (1)
#   spm.bench=MIB[:R]  after the report, run "spmtool bench" on the first
#                      spm-memory device (MIB MiB, R rounds, default 5) against
#                      node 0 RAM, then power off (bench/spm_bench.py)
#   spm.hold=1         after the report, stay up instead of powering off
#
# Modules: none of the three has module dependencies. dax_hmem creates one
# dax region + device per soft reserved range (platform devices hmem.N made
# at boot by the built-in part of CONFIG_DEV_DAX_HMEM_DEVICES); the dax bus then
# binds device_dax (6.1: device_dax matches every dax device, kmem only by
# explicit new_id) or kmem (6.12 and 7.x: hmem regions are "kmem type",
# device_dax does not match them, and CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO
# onlines the memory at once). Order does not matter (checked on 6.1 and 6.12):
# a driver loaded after dax_hmem binds the waiting device when it registers.
# Loading the drivers first just makes binding happen inside dax_hmem's insmod.
# Without device_dax (6.1) or kmem (6.12, 7.x) the device stays unbound
# (driver=none).
#
# Soft reserved ranges are counted from the E820 map in the boot log, not from
# /proc/iomem: Linux 7.x shows no "Soft Reserved" line there (the dax device
# is a top-level resource), 6.x does.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
mkdir -p /tmp

REL=$(uname -r)
MODDIR=/lib/modules/$REL
CMDLINE=$(cat /proc/cmdline)

# --- command line ----------------------------------------------------------
SPM_MODULES=device_dax,kmem,dax_hmem
SPM_WAIT=5
SPM_FILL=
SPM_FILLNODE=
SPM_FILLEVERY=1
SPM_BENCH=
SPM_HOLD=
for arg in $CMDLINE; do
    case "$arg" in
        spm.modules=*) SPM_MODULES=${arg#spm.modules=} ;;
        spm.wait=*)    SPM_WAIT=${arg#spm.wait=} ;;
        spm.fill=*)    SPM_FILL=${arg#spm.fill=} ;;
        spm.fillnode=*)  SPM_FILLNODE=${arg#spm.fillnode=} ;;
        spm.fillevery=*) SPM_FILLEVERY=${arg#spm.fillevery=} ;;
        spm.bench=*)   SPM_BENCH=${arg#spm.bench=} ;;
        spm.hold=*)    SPM_HOLD=${arg#spm.hold=} ;;
    esac
done

# --- modules ---------------------------------------------------------------
: > /tmp/modules.out
for m in $(echo "$SPM_MODULES" | tr ',' ' '); do
    f=$(find "$MODDIR" -name "$m.ko" | head -n 1)
    if [ -z "$f" ]; then
        echo "module: name=$m status=missing" >> /tmp/modules.out
    elif err=$(insmod "$f" 2>&1); then
        echo "module: name=$m status=ok" >> /tmp/modules.out
    else
        echo "module: name=$m status=failed error=$(echo "$err" | tr '\n' ' ')" >> /tmp/modules.out
    fi
done

# --- wait for probing (no udev: drivers bind synchronously, but be patient) --
# (7.x pads the type: "]  soft reserved")
soft_reserved=$(dmesg | grep -cE 'BIOS-e820: \[mem 0x[0-9a-f]+-0x[0-9a-f]+\] +soft reserved')
dax_ready() {
    n=0
    for d in /sys/bus/dax/devices/*; do
        [ -e "$d" ] || continue
        [ -e "$d/driver" ] || return 1
        n=$((n + 1))
    done
    [ "$n" -ge "$soft_reserved" ]
}
waited=0
limit=$((SPM_WAIT * 1000))
while ! dax_ready && [ "$waited" -lt "$limit" ]; do
    usleep 100000
    waited=$((waited + 100))
done
ndax=$(ls /sys/bus/dax/devices 2>/dev/null | wc -l)

# --- report ----------------------------------------------------------------
# Keep kernel messages off the console so they cannot split report lines.
dmesg -n 1 2>/dev/null || echo 1 > /proc/sys/kernel/printk

hex() { printf '0x%x' "$1"; }
attr() { [ -r "$1" ] && cat "$1" 2>/dev/null || echo "$2"; }

report() {
    echo "kernel: $REL"
    echo "cmdline: $CMDLINE"
    cat /tmp/modules.out
    echo "auto_online_blocks: $(attr /sys/devices/system/memory/auto_online_blocks none)"
    echo "block_size: $(attr /sys/devices/system/memory/block_size_bytes none)"
    echo "wait: ms=$waited dax=$ndax soft_reserved=$soft_reserved"
    while IFS= read -r line; do
        echo "iomem: $line"
    done < /proc/iomem
    dmesg | grep -E 'BIOS-e820|e820|SRAT|[Ss]oft [Rr]eserved|dax|hmem|kmem' |
        while IFS= read -r line; do echo "dmesg: $line"; done
    for d in /sys/bus/dax/devices/*; do
        [ -e "$d" ] || continue
        name=${d##*/}
        start=$(attr "$d/resource" "")
        [ -n "$start" ] || start=$(attr "$d/mapping0/start" "")
        [ -n "$start" ] || start=unknown
        case "$start" in 0x*|unknown) ;; *) start=$(hex "$start") ;; esac
        size=$(attr "$d/size" unknown)
        node=$(attr "$d/target_node" unknown)
        drv=none
        [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
        echo "dax: name=$name start=$start size=$size target_node=$node driver=$drv"
    done
    for part in $(tr ',' ' ' < /sys/devices/system/node/online); do
        lo=${part%-*} hi=${part#*-}
        i=$lo
        while [ "$i" -le "$hi" ]; do
            kb=$(awk '/MemTotal:/ {print $(NF-1)}' "/sys/devices/system/node/node$i/meminfo")
            echo "node: id=$i memtotal_kb=$kb"
            i=$((i + 1))
        done
    done
    # memory tiers (kmem places onlined dax memory by its HMAT performance,
    # or in the default dax tier below DRAM without one), by ascending id
    tiers=/sys/devices/virtual/memory_tiering
    if [ -d "$tiers" ]; then
        for id in $(ls "$tiers" | sed -n 's/^memory_tier\([0-9][0-9]*\)$/\1/p' | sort -n); do
            echo "tier: name=memory_tier$id nodes=$(attr "$tiers/memory_tier$id/nodelist" unknown)"
        done
    fi
    for st in has_cpu has_memory has_generic_initiator online possible; do
        f=/sys/devices/system/node/$st
        if [ -r "$f" ]; then
            echo "nodestate: name=$st nodes=$(cat "$f")"
        fi
    done
}

echo "=== SPM-REPORT BEGIN ==="
report
echo "=== SPM-REPORT END ==="
sync

# --- after the report ---------------------------------------------------------
# spm.fill=MIB: fill MIB MiB of the first spm-memory device and keep checking
# it (guest/spmtool.c): through /dev/dax0.0 when device_dax has it
# (6.1), or as memory of its NUMA node when kmem onlined it (6.12, 7.x). Runs
# until QEMU is stopped, so that the tests can migrate, reset or poke the VM.
spm_target() {
    d=/sys/bus/dax/devices/dax0.0
    drv=none
    [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    case "$drv" in
        device_dax) target=/dev/dax0.0 ;;
        kmem)       target=node:$(cat "$d/target_node") ;;
        *)          echo "spmtool: no dax device to $1 (driver=$drv)"
                    target= ;;
    esac
}
if [ -n "$SPM_FILL" ]; then
    if [ -n "$SPM_FILLNODE" ]; then
        target=node:$SPM_FILLNODE
    else
        spm_target fill
    fi
    [ -n "$target" ] && spmtool fill "$target" "$SPM_FILL" "$SPM_FILLEVERY"
fi
# spm.bench=MIB[:ROUNDS]: bandwidth of spm-memory against node 0 RAM.
if [ -n "$SPM_BENCH" ] && [ -z "$SPM_FILL" ]; then
    spm_target bench
    mib=${SPM_BENCH%%:*}
    rounds=5
    case "$SPM_BENCH" in *:*) rounds=${SPM_BENCH#*:} ;; esac
    [ -n "$target" ] && spmtool bench "$target" "$mib" "$rounds"
fi
# spm.hold=1: stay up after the report (for system_reset and monitor tests).
if [ "$SPM_HOLD" = 1 ] || [ -n "$SPM_FILL" ]; then
    while :; do sleep 60; done
fi
poweroff -f
# poweroff -f should not return; never let PID 1 exit.
while :; do sleep 60; done
