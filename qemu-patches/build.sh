#!/bin/bash
# Build Debian bookworm's QEMU 7.2 with the hmmv patch series applied.
#
# Usage: qemu-patches/build.sh [--with-qtests] [--jobs N] [--force]
#
# Prints the path of the built qemu-system-x86_64 as the last line of stdout;
# everything else goes to stderr.  Results are cached under
# ${HMMV_CACHE_DIR:-/var/cache/hmmv}/qemu-<hash>/, where <hash> covers the
# series file, every patch it lists, the Debian source version and the
# configure arguments, so a rerun with nothing changed takes seconds.
#
# The build itself happens in one persistent tree ($cache/qemu-work).  For a
# new hash the pristine source plus the series is assembled in a scratch
# directory and mirrored into that tree with rsync --checksum, so only files
# whose content changed get a new mtime and ninja rebuilds just those
# (a one-patch change rebuilds in well under the ~4 minutes of a full build).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly script_dir
readonly series_file="$script_dir/series"
readonly cache_dir="${HMMV_CACHE_DIR:-/var/cache/hmmv}"
readonly deb_src_file=/etc/apt/sources.list.d/hmmv-deb-src.sources
readonly configure_args=(
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-kvm
    --enable-tcg
    --enable-numa
    --disable-install-blobs
    --disable-docs
    --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)
readonly build_deps=(
    dpkg-dev gcc make ninja-build meson pkg-config python3 rsync
    libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev libnuma-dev flex bison
    qemu-system-data seabios ipxe-qemu
)
# Debian's source has no embedded meson, and 7.2's configure refuses --python
# with an external meson: make sure 'python3' is Debian's (meson runs with it),
# not some pyenv shim earlier in PATH.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
readonly qtests=(tests/qtest/qmp-cmd-test tests/qtest/migration-test)

with_qtests=0
force=0
jobs="$(nproc)"

log() {
    printf 'build.sh: %s\n' "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $0 [--with-qtests] [--jobs N] [--force]
  --with-qtests  also build ${qtests[*]}
                 (copied to \$cache/qemu-<hash>/tests/)
  --jobs N       ninja parallelism (default: $(nproc))
  --force        rebuild even if the cached binary exists
environment: HMMV_CACHE_DIR (default /var/cache/hmmv)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --with-qtests) with_qtests=1 ;;
    --force) force=1 ;;
    --jobs)
        [ $# -ge 2 ] || die "--jobs needs an argument"
        jobs="$2"
        shift
        ;;
    --jobs=*) jobs="${1#--jobs=}" ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        usage
        die "unknown argument: $1"
        ;;
    esac
    shift
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "bad --jobs value: $jobs"
[ -f "$series_file" ] || die "no series file at $series_file"

# Patches named in the series file, in order.  Blank lines and '#' comments
# are ignored; a name must look like NNNN-something.patch and exist.
read_series() {
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        line="${line%%#*}"
        line="${line//[[:space:]]/}"
        [ -n "$line" ] || continue
        [[ "$line" =~ ^[0-9]{4}-[A-Za-z0-9._-]+\.patch$ ]] ||
            die "series: bad patch name '$line'"
        [ -f "$script_dir/$line" ] || die "series: missing $script_dir/$line"
        printf '%s\n' "$line"
    done <"$series_file"
}

# (No 'cmd | grep -q' below: with pipefail, grep exiting early can fail the
# pipeline with SIGPIPE.)
pkg_installed() {
    local status
    status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
    [ "$status" = "install ok installed" ]
}

has_qemu_source() {
    local out
    out="$(apt-cache showsrc qemu 2>/dev/null)" || return 1
    grep -q '^Package: qemu$' <<<"$out"
}

install_missing() {
    local missing=() p
    for p in "$@"; do
        pkg_installed "$p" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}" >&2
    fi
}

# Add deb-src stanzas mirroring every deb stanza of debian.sources, unless
# apt already knows a source for qemu.
ensure_deb_src() {
    if has_qemu_source; then
        return 0
    fi
    if [ ! -f "$deb_src_file" ]; then
        local src=/etc/apt/sources.list.d/debian.sources
        [ -f "$src" ] || die "no $src to derive deb-src entries from"
        log "adding $deb_src_file"
        sed -e 's/^Types:.*/Types: deb-src/' "$src" >"$deb_src_file.tmp"
        mv "$deb_src_file.tmp" "$deb_src_file"
    fi
    log "apt-get update (for deb-src)"
    apt-get update -q >&2
    has_qemu_source ||
        die "apt still has no source package for qemu"
}

# The version apt-get source would fetch, read from local lists only.
debian_source_version() {
    local uris dsc
    uris="$(apt-get source --print-uris qemu 2>/dev/null)" ||
        die "apt-get source --print-uris qemu failed"
    dsc="$(sed -n "s/^'[^']*' \(qemu_[^ ]*\.dsc\) .*/\1/p" <<<"$uris")"
    dsc="${dsc%%$'\n'*}"
    [ -n "$dsc" ] || die "cannot determine qemu source version"
    dsc="${dsc#qemu_}"
    printf '%s\n' "${dsc%.dsc}"
}

# Fetch and unpack the Debian source (with Debian's patches) once per version.
ensure_pristine() {
    local version="$1"
    local dir="$cache_dir/qemu-src/$version"
    if [ -f "$dir/.unpacked" ]; then
        printf '%s\n' "$dir/tree"
        return 0
    fi
    mkdir -p "$dir"
    (
        cd "$dir"
        if ! ls qemu_*.dsc >/dev/null 2>&1; then
            log "apt-get source --download-only qemu ($version)"
            apt-get source -q --download-only qemu >&2
        fi
        rm -rf tree
        log "dpkg-source -x (applies Debian's patches)"
        dpkg-source -x ./qemu_*.dsc tree >&2
        touch .unpacked
    )
    printf '%s\n' "$dir/tree"
}

main() {
    local version pristine key patches p out work scratch
    mkdir -p "$cache_dir"
    chmod 0755 "$cache_dir"

    exec 9>"$cache_dir/.build.lock"
    if ! flock -n 9; then
        log "waiting for another build.sh to finish"
        flock 9
    fi

    if ! pkg_installed dpkg-dev; then
        install_missing dpkg-dev
    fi
    ensure_deb_src
    version="$(debian_source_version)"
    mapfile -t patches < <(read_series)

    key="$(
        {
            printf 'debian-source %s\n' "$version"
            printf 'configure %s\n' "${configure_args[*]}"
            printf 'series\n'
            cat "$series_file"
            for p in "${patches[@]}"; do
                printf 'patch %s\n' "$p"
                cat "$script_dir/$p"
            done
        } | sha256sum | cut -c1-16
    )"
    out="$cache_dir/qemu-$key"
    log "debian source $version, ${#patches[@]} patch(es), key $key"

    if [ "$force" = 0 ] && [ -x "$out/bin/qemu-system-x86_64" ] &&
        { [ "$with_qtests" = 0 ] || [ -x "$out/tests/migration-test" ]; }; then
        log "cached: $out"
        printf '%s\n' "$out/bin/qemu-system-x86_64"
        return 0
    fi

    install_missing "${build_deps[@]}"
    pristine="$(ensure_pristine "$version")"

    # Assemble pristine + series in scratch, then mirror into the work tree.
    work="$cache_dir/qemu-work"
    scratch="$cache_dir/qemu-scratch"
    rm -rf "$scratch"
    log "copying pristine source"
    cp -a "$pristine" "$scratch"
    for p in "${patches[@]}"; do
        log "applying $p"
        patch -d "$scratch" -p1 --batch --forward --quiet \
            <"$script_dir/$p" >&2 || die "$p does not apply"
    done
    mkdir -p "$work/src"
    # No -t: a file whose content is unchanged keeps its old mtime (so ninja
    # leaves it alone) and a changed one gets a new mtime.
    rsync -rlp --checksum --delete --exclude=/build/ "$scratch/" "$work/src/" >&2
    rm -rf "$scratch"

    # (Re)configure only when the configure arguments changed or there is no
    # build tree; meson regenerates itself when a meson.build changes.
    local stamp="$work/src/build/.hmmv-configure"
    if [ ! -f "$work/src/build/build.ninja" ] || [ ! -f "$stamp" ] ||
        [ "$(cat "$stamp")" != "${configure_args[*]}" ]; then
        rm -rf "$work/src/build"
        mkdir -p "$work/src/build"
        log "configure ${configure_args[*]}"
        (cd "$work/src/build" &&
            ../configure --meson=/usr/bin/meson "${configure_args[@]}" >&2)
        printf '%s' "${configure_args[*]}" >"$stamp"
    fi

    local targets=(qemu-system-x86_64)
    if [ "$with_qtests" = 1 ]; then
        targets+=("${qtests[@]}")
    fi
    local start=$SECONDS
    log "ninja -j$jobs ${targets[*]}"
    (cd "$work/src/build" && ninja -j"$jobs" "${targets[@]}" >&2) ||
        die "build failed (tree: $work/src/build)"
    log "build took $((SECONDS - start)) s"

    # Copy the results out of the build tree: inside it QEMU looks for
    # firmware under qemu-bundle/, outside it uses --firmwarepath.
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp/bin"
    install -m 0755 "$work/src/build/qemu-system-x86_64" "$out.tmp/bin/"
    if [ "$with_qtests" = 1 ]; then
        mkdir -p "$out.tmp/tests"
        for p in "${qtests[@]}"; do
            install -m 0755 "$work/src/build/$p" "$out.tmp/tests/"
        done
    elif [ -d "$out/tests" ]; then
        cp -a "$out/tests" "$out.tmp/"
    fi
    {
        printf 'debian-source: %s\n' "$version"
        printf 'configure: %s\n' "${configure_args[*]}"
        printf 'patches:'
        printf ' %s' "${patches[@]}"
        printf '\nbuilt: %s\n' "$(date -u +%FT%TZ)"
    } >"$out.tmp/BUILD-INFO"
    rm -rf "$out"
    mv "$out.tmp" "$out"

    # libvirt runs QEMU as libvirt-qemu: everything on the path must be
    # world-readable and searchable.
    chmod -R a+rX "$out"
    p="$out"
    while [ "$p" != / ]; do
        chmod a+rx "$p"
        p="$(dirname "$p")"
    done

    log "done: $out"
    printf '%s\n' "$out/bin/qemu-system-x86_64"
}

main
