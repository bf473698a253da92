#!/bin/bash
# The demo: the patched QEMU with two spm-memory devices on two NUMA nodes.
# It starts the machine paused (no guest yet) and asks the monitor where the
# devices went.
set -euo pipefail
BUILD=${BUILD:?}
qemu="$BUILD/qemu-build/qemu-system-x86_64"
args=(
    -M q35 -m 1G,maxmem=8G -smp 2 -display none -nodefaults -S
    -object memory-backend-ram,id=m0,size=1G
    -numa node,nodeid=0,memdev=m0,cpus=0-1
    -numa node,nodeid=1 -numa node,nodeid=2
    -object memory-backend-ram,id=hbm0,size=1G
    -device spm-memory,id=spm0,memdev=hbm0,node=1
    -object memory-backend-ram,id=hbm1,size=512M
    -device spm-memory,id=spm1,memdev=hbm1,node=2
)
echo "== qemu-system-x86_64 ${args[*]}"
echo
printf 'info memory-devices\ninfo numa\ninfo memory_size_summary\nquit\n' |
    "$(dirname "$0")/no-kvm.sh" "$qemu" "${args[@]}" -monitor stdio 2>&1 |
    sed -e 's/\r//g' -e '/^QEMU [0-9].*monitor/d' -e 's/^(qemu) //' -e '/^$/d'
