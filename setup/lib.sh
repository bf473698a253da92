# Shared helpers for the build scripts (sourced).

# project_vars qemu|libvirt: the source that setup/fetch-PROJECT.sh
# recorded in $BUILD/PROJECT-source.env, as name, src, version and
# debian_version; untracked: paths of the source that upstream's git does
# not track (mktree.sh keeps them out of the tree's history).
project_vars() {
    case "$1" in
        qemu)    . "$BUILD/qemu-source.env"; name=QEMU src=$QEMU_SRC
                 version=$QEMU_VERSION debian_version=$QEMU_DEBIAN_VERSION
                 untracked=() ;;
        # upstream's git has keycodemapdb as a submodule: tracked, its test
        # files would fail libvirt's syntax-check
        libvirt) . "$BUILD/libvirt-source.env"; name=libvirt src=$LIBVIRT_SRC
                 version=$LIBVIRT_VERSION debian_version=$LIBVIRT_DEBIAN_VERSION
                 untracked=(subprojects/keycodemapdb) ;;
        *) echo "unknown project '$1' (qemu or libvirt)" >&2; return 1 ;;
    esac
}

# series_id DEBIAN_VERSION PREP_DIR SERIES_DIR: identifies the source
# version plus the patches that make a working tree (PREP_DIR may be
# empty); mktree.sh and export-series.sh record it in the tree to tell
# whether the tree matches patches/.
series_id() {
    local d dirs=()
    for d in "$2" "$3"; do [ -n "$d" ] && dirs+=("$d"); done
    { echo "$1"
      find "${dirs[@]}" -maxdepth 1 -name '*.patch' 2>/dev/null | sort | xargs -r cat; } |
        sha256sum | cut -d' ' -f1
}

# --- apt ---------------------------------------------------------------------
# Suites that are only downloaded from and extracted (sources, firmware,
# guest kernels) go through a private apt configuration in $BUILD/apt
# (setup/apt-setup.sh writes it): its own sources, lists, cache and an
# empty dpkg status, so the host's apt never sees them. Only data is read
# from apt: deb822 records (apt-cache showsrc), the version column of
# apt-cache madison, versions compared with dpkg --compare-versions. What apt
# says goes to a log ($BUILD/logs/apt.log), never to stdout.

APT_DIR=${BUILD:+$BUILD/apt}
APT_LOG=${BUILD:+$BUILD/logs/apt.log}

# archive_uri main|security: the URI of the host's Debian archive (or of its
# security archive), from the host's own apt sources: the deb822 stanzas of
# /etc/apt/sources.list.d/debian.sources, else the one-line entries of
# /etc/apt/sources.list. So no archive host is ever written in this project.
HOST_SOURCES=/etc/apt/sources.list.d/debian.sources
archive_uri() {
    {
        if [ -r "$HOST_SOURCES" ]; then
            # "URI SUITE..." of each enabled deb stanza
            awk 'BEGIN {RS = ""; FS = "\n"}
                 {types = ""; uri = ""; suites = ""; enabled = "yes"
                  for (i = 1; i <= NF; i++) {
                      if ($i ~ /^[ \t]*#/) continue
                      n = index($i, ":"); key = tolower(substr($i, 1, n - 1)); val = substr($i, n + 1)
                      gsub(/^[ \t]+|[ \t]+$/, "", val)
                      if (key == "types") types = val
                      else if (key == "uris") { split(val, u, /[ \t]+/); uri = u[1] }
                      else if (key == "suites") suites = val
                      else if (key == "enabled") enabled = tolower(val)
                  }
                  if (enabled != "no" && (" " types " ") ~ / deb / && uri != "") print uri, suites}' "$HOST_SOURCES"
        fi
        if [ -r /etc/apt/sources.list ]; then
            awk '$1 == "deb" {for (i = 2; i < NF; i++) if ($i ~ /:\/\//) {print $i, $(i + 1); next}}' \
                /etc/apt/sources.list
        fi
    } | if [ "$1" = security ]; then
        awk '$0 ~ /-security|\/updates/ {print $1; exit}'
    else
        awk '$0 !~ /-security|\/updates/ {print $1; exit}'
    fi
}

# remove_legacy_apt: remove what earlier versions of apt-setup.sh wrote into
# the host's /etc/apt (download-only suites and pins to priority 1).
remove_legacy_apt() {
    local f
    for f in /etc/apt/sources.list.d/spm-memory.sources /etc/apt/preferences.d/spm-memory; do
        if [ -f "$f" ] && grep -qE 'Written by spm-memory (scripts|host)/apt-setup\.sh' "$f"; then
            rm -f "$f"
            echo "${0##*/}: removed $f (written by an earlier version; the host's apt sources are left alone now)" >&2
        fi
    done
    rm -f /var/lib/apt/spm-memory.updated
}

# apt_require: stop unless the private configuration is there.
apt_require() {
    if [ ! -f "$APT_DIR/apt.conf" ]; then
        echo "${0##*/}: no private apt configuration in $APT_DIR: run 'make deps' (setup/deps.sh)" >&2
        exit 1
    fi
}

# apt_private apt-get|apt-cache ARGS...: apt with the private configuration.
apt_private() {
    local cmd=$1; shift
    "$cmd" -c "$APT_DIR/apt.conf" "$@"
}

# apt_logged COMMAND...: run an apt command (or a subshell around one) with
# all its output in $APT_LOG; on failure show the new part of the log on
# stderr and return its status.
apt_logged() {
    mkdir -p "$(dirname "$APT_LOG")"
    local start rc=0
    start=$(($(stat -c %s "$APT_LOG" 2>/dev/null || echo 0) + 1))
    { echo "### $(date -u '+%F %T') ${0##*/}: $*"; "$@"; } >> "$APT_LOG" 2>&1 || rc=$?
    if [ $rc != 0 ]; then
        echo "${0##*/}: '$*' failed (status $rc); from $APT_LOG:" >&2
        tail -c +"$start" "$APT_LOG" | grep -v '^###' | tail -n 25 >&2
    fi
    return $rc
}

# apt_binary_versions PACKAGE...: the binary versions (not Sources lines)
# the private lists know, one a line, from the version column of madison.
apt_binary_versions() {
    apt_private apt-cache madison "$@" 2>/dev/null |
        awk -F'|' '$3 !~ /Sources[ \t]*$/ {gsub(/[ \t]/, "", $2); print $2}'
}

# version_ok VERSION [RELATION...]: whether VERSION satisfies every relation,
# each a dpkg relation and a version: ">=2026.05", "<<1.17~", "=1.2-3".
version_ok() {
    local v=$1 r op; shift
    for r in "$@"; do
        case "$r" in
            '>='*) op=ge ;; '<='*) op=le ;; '>>'*) op=gt ;; '<<'*) op=lt ;;
            '='*)  op=eq ;;
            *) echo "${0##*/}: bad version relation '$r' (use >=, <=, >>, << or =)" >&2
               return 2 ;;
        esac
        r=${r#[<>=]}; r=${r#[<>=]}
        dpkg --compare-versions "$v" "$op" "$r" || return 1
    done
}

# newest_version [RELATION...]: the newest of the versions on stdin (one a
# line) that satisfy the relations, by dpkg's ordering; nothing if none does.
newest_version() {
    local v best='' rc
    while read -r v; do
        [ -n "$v" ] || continue
        rc=0; version_ok "$v" "$@" || rc=$?
        [ $rc != 2 ] || return 2
        [ $rc = 0 ] || continue
        if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    [ -z "$best" ] || echo "$best"
}

# newest_source_in_series PACKAGE SERIES: the newest version of source
# package PACKAGE known to the private apt configuration whose upstream
# version is in SERIES (e.g. 10.0: >= 10.0 and < 10.1); nothing if none is.
newest_source_in_series() {
    local pkg=$1 series=$2 next v
    next=${series%.*}.$((${series##*.} + 1))
    apt_private apt-cache showsrc "$pkg" 2>/dev/null |
        awk -v pkg="$pkg" '/^Package:/ {p = $2} /^Version:/ && p == pkg {print $2}' |
        while read -r v; do
            version_ok "${v#*:}" ">=$series~" "<<$next~" && echo "$v" || true
        done | newest_version
}

# offline_refuse WHAT [TARGET]: with SPM_OFFLINE=1 (set by the tests and
# the demo), nothing is resolved, downloaded or built: fail and say which
# make target prepares WHAT (TARGET, default guest-deps).
offline_refuse() {
    if [ "${SPM_OFFLINE:-0}" = 1 ]; then
        echo "${0##*/}: $1 is not prepared (SPM_OFFLINE=1: tests never download or build);" \
             "prepare it with 'make ${2:-guest-deps}'" >&2
        exit 1
    fi
}

# ccache_env: ccache's settings for every build here (QEMU's, libvirt's):
# paths under the clone's parent hashed relative to it, so that a fresh
# clone hits what an earlier one compiled; and the depend mode, in which a
# miss runs the compiler only, not also the preprocessor to hash its output
# (the builds pass -MD, from whose dependency file ccache takes the
# headers); ccache's manual puts a miss's overhead at 1-3% with it and
# 5-20% without. Hits come from the direct mode either way.
ccache_env() {
    export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$BUILD")}
    export CCACHE_NOHASHDIR=true
    export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
    export CCACHE_DEPEND=${CCACHE_DEPEND:-true}
}
