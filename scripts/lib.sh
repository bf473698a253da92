# Shared helpers for the build scripts (sourced).

# series_id PREP_DIR SERIES_DIR: identifies the QEMU source version plus the
# patches that make the working tree; mktree.sh and export-series.sh record
# it in the tree to tell whether the tree matches patches/.
series_id() {
    { echo "$QEMU_DEBIAN_VERSION"
      find "$1" "$2" -maxdepth 1 -name '*.patch' 2>/dev/null | sort | xargs -r cat; } |
        sha256sum | cut -d' ' -f1
}
