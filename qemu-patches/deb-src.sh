#!/bin/bash
# Make sure apt knows Debian's qemu source package (apt-get source qemu), as root: unless apt
# already has it, add deb-src stanzas mirroring every deb stanza of
# /etc/apt/sources.list.d/debian.sources (Debian 12's default) in
# /etc/apt/sources.list.d/hmmv-deb-src.sources, and run apt-get update. Idempotent.
# Used by qemu-patches/build.sh (7.2) and debian/qemu/generate (the package suite runs
# generate before anything has built QEMU, so it cannot rely on build.sh having run).
# Messages go to stderr; exit status 0 when apt has the source afterwards.
set -euo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
readonly deb_src_file=/etc/apt/sources.list.d/hmmv-deb-src.sources

log() { printf 'deb-src.sh: %s\n' "$*" >&2; }

has_qemu_source() {
    local out
    out="$(apt-cache showsrc qemu 2>/dev/null)" || return 1
    grep -q '^Package: qemu$' <<<"$out"
}

has_qemu_source && exit 0
if [ "$(id -u)" -ne 0 ]; then
    log "error: apt has no source package for qemu; run as root to add deb-src entries"
    exit 1
fi
if [ ! -f "$deb_src_file" ]; then
    src=/etc/apt/sources.list.d/debian.sources
    if [ ! -f "$src" ]; then
        log "error: no $src to derive deb-src entries from"
        exit 1
    fi
    log "adding $deb_src_file"
    sed -e 's/^Types:.*/Types: deb-src/' "$src" >"$deb_src_file.tmp"
    mv "$deb_src_file.tmp" "$deb_src_file"
fi
log "apt-get update (for deb-src)"
apt-get update -q >&2
if ! has_qemu_source; then
    log "error: apt still has no source package for qemu"
    exit 1
fi
