#!/bin/bash
# setup/libvirt-env.sh COMMAND [ARG...]: run COMMAND with BUILD set to
# /var/tmp/spm-memory-build, where this clone's build directory is mounted
# (SPM_BUILD_OUTER: its own path, which files written outside still name).
#
# libvirt compiles the absolute paths of its source and build directories
# into most of its objects (abs_top_builddir and abs_top_srcdir, as -D
# options and in config.h), so a build of the same source at another path
# finds nothing in ccache: every fresh clone would build libvirt cold. So
# every command that configures, builds, tests or runs libvirt runs here,
# in a private mount namespace in which $BUILD is bind-mounted at one fixed
# path: the build looks the same to ccache from any clone, and runs of
# different clones at the same time do not see each other's mount. Outside
# this wrapper the libvirt build directory's own paths do not exist.
#
# Root uses a plain mount namespace; anyone else a user namespace in which
# they are root (unshare -r), as tests/no-kvm.sh does.
set -euo pipefail
BUILD=${BUILD:?}
fixed=/var/tmp/spm-memory-build

# already inside (a command of this wrapper calls it again)
if [ "${SPM_LIBVIRT_ENV:-}" = 1 ] && [ "$BUILD" = "$fixed" ]; then
    exec "$@"
fi
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
BUILD=$(cd "$BUILD" && pwd)
mkdir -p "$fixed"
if [ "$(id -u)" != 0 ]; then
    exec unshare -rm --propagation private "$0" "$@"
fi
exec unshare -m --propagation private /bin/sh -c '
    mount --bind "$1" "$2" || exit 1
    BUILD=$2 SPM_LIBVIRT_ENV=1 SPM_BUILD_OUTER=$1
    export BUILD SPM_LIBVIRT_ENV SPM_BUILD_OUTER
    shift 2
    exec "$@"' sh "$BUILD" "$fixed" "$@"
