# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by qemu-patches/build.sh and debian/qemu/generate: Debian 13 (trixie)'s QEMU source
# and bookworm-backports' meson on a Debian 12 host, through a private apt state under
# ${HMMV_CACHE_DIR:-/var/cache/hmmv}/apt-10.0 (its own sources list and lists), so the host's
# apt sources and its meson 1.0 (which hmmv's own build uses) stay exactly as they are.
#
#   apt10 TOOL ARGS...        apt-get or apt-cache with the private state
#   ensure_apt10              its sources list and an `apt-get update` (once)
#   apt10_source_version      the version of trixie's qemu source (highest in the lists)
#   ensure_meson_10           meson >= 1.5 unpacked (not installed) from bookworm-backports;
#                             prints the directory to put on PYTHONPATH (QEMU 10.0's configure
#                             needs meson >= 1.5 and finds it there)
#
# The caller defines log MESSAGE and die MESSAGE (which exits).

readonly apt10_dir="${HMMV_CACHE_DIR:-/var/cache/hmmv}/apt-10.0"
readonly apt10_sources=(
    "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main"
    "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security trixie-security main"
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main"
)

apt10() { # apt-get or apt-cache, arguments...
    local tool="$1"
    shift
    "$tool" -q -o Dir::Etc::sourcelist="$apt10_dir/sources.list" \
        -o Dir::Etc::sourceparts=- -o Dir::State::Lists="$apt10_dir/lists" \
        -o Dir::Cache="$apt10_dir/cache" -o Debug::NoLocking=1 "$@"
}

ensure_apt10() {
    [ -f "$apt10_dir/.updated" ] && return 0
    mkdir -p "$apt10_dir/lists/partial" "$apt10_dir/cache/archives/partial"
    printf '%s\n' "${apt10_sources[@]}" >"$apt10_dir/sources.list"
    log "apt-get update (private: trixie deb-src, bookworm-backports)"
    apt10 apt-get update >&2 || die "apt-get update for trixie/bookworm-backports failed"
    touch "$apt10_dir/.updated"
}

apt10_source_version() {
    local out v
    out="$(apt10 apt-cache showsrc qemu 2>/dev/null)" || die "no qemu source in trixie"
    v="$(sed -n 's/^Version: //p' <<<"$out" | sort -V | tail -n 1)"
    [ -n "$v" ] || die "cannot determine trixie's qemu source version"
    printf '%s\n' "$v"
}

ensure_meson_10() {
    local dir="${HMMV_CACHE_DIR:-/var/cache/hmmv}/meson-bpo"
    if [ ! -f "$dir/.unpacked" ]; then
        ensure_apt10
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$dir" && apt10 apt-get download meson/bookworm-backports >&2) ||
            die "cannot download meson from bookworm-backports"
        dpkg -x "$dir"/meson_*.deb "$dir/root" || die "cannot unpack meson"
        touch "$dir/.unpacked"
    fi
    printf '%s\n' "$dir/root/usr/lib/python3/dist-packages"
}
