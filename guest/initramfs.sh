# Shared by guest/mkinitramfs.sh and guest/hostvm/mkinitramfs.sh (sourced):
# the parts every initramfs of ours has.

# initramfs_base ROOT INIT: a busybox system in the empty directory ROOT
# (the host's static busybox, its applets as links in /bin, the console
# and null devices) with the script INIT as /init.
initramfs_base() {
    local root=$1 init=$2 busybox applet
    busybox=$(command -v busybox || true)
    if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
        busybox=/bin/busybox
    fi
    if ! "$busybox" --list > /dev/null 2>&1; then
        echo "${0##*/}: busybox not found (install busybox-static: setup/deps.sh)" >&2
        return 1
    fi
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root}
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    mknod -m 600 "$root/dev/console" c 5 1
    mknod -m 666 "$root/dev/null" c 1 3
    install -m 755 "$init" "$root/init"
}

# initramfs_module SOURCE DEST: a kernel module, decompressed (.ko, .ko.xz
# or .ko.zst) to DEST.
initramfs_module() {
    mkdir -p "$(dirname "$2")"
    case "$1" in
        *.ko.xz)  xz -dc "$1" > "$2" ;;
        *.ko.zst) zstd -qdc "$1" > "$2" ;;
        *.ko)     cp "$1" "$2" ;;
        *) echo "${0##*/}: unknown module format $1" >&2; return 1 ;;
    esac
}

# initramfs_pack ROOT IMAGE GZIP-LEVEL: ROOT as a reproducible newc cpio
# (fixed mtimes, sorted names, no gzip timestamp), replacing IMAGE at once.
initramfs_pack() {
    local root=$1 img=$2 tmp
    find "$root" -exec touch -h -d @0 {} +
    tmp=$(mktemp "$img.XXXXXX")
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
         cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip "-$3n" > "$tmp"
    chmod 644 "$tmp"
    mv -f "$tmp" "$img"
}
