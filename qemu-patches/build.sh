#!/bin/bash
# Build Debian's QEMU with the hmmv patch series applied: trixie's 10.0 (series in
# qemu-patches/10.0/), the one supported version. The 7.2 series (bookworm's QEMU) was retired
# on 2026-12-03; it is in git history (README, "Supported QEMU versions"), and --qemu 7.2 says so.
#
# Usage: qemu-patches/build.sh [--qemu 10.0] [--with-qtests] [--unpatched] [--jobs N] [--force]
#
# Prints the path of the built qemu-system-x86_64 as the last line of stdout
# (the TCG plugin header of that build is in ../include/qemu-plugin.h);
# everything else goes to stderr.  Results are cached under
# ${HMMV_CACHE_DIR:-/var/cache/hmmv}/qemu-<hash>/, where <hash> covers the
# series file, every patch it lists, the Debian source version and the
# configure arguments, so a rerun with nothing changed takes seconds.
#
# The build itself happens in one persistent tree ($cache/qemu-work-10.0).  For a new hash
# the pristine source plus the series is assembled in a scratch
# directory and mirrored into that tree with rsync --checksum, so only files
# whose content changed get a new mtime and ninja rebuilds just those
# (a one-patch change rebuilds in well under the ~4 minutes of a full build).
#
# --unpatched builds the same Debian source with the same configure and none of the series
# (the baseline that issue 9's migration comparison needs) in its own work tree
# ($cache/qemu-work-10.0-unpatched) and cache directory ($cache/qemu-unpatched-<hash>), so
# it never disturbs the patched tree's incremental builds.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly script_dir
readonly cache_dir="${HMMV_CACHE_DIR:-/var/cache/hmmv}"
# The same minimal configuration for every version.  TCG plugins (issue 12's
# trace recorder loads one with -plugin) need glib's gmodule, which
# libglib2.0-dev brings; the API header is copied out beside the binary.
# vhost-user (netdev vhost-user, as Debian's QEMU has it) so the integration suite can run
# a vhost back-end beside the export (issue 9: migration blockers, test-qemu-vhost).
readonly common_configure_args=(
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-kvm
    --enable-tcg
    --enable-plugins
    --enable-numa
    --enable-vhost-user
    --enable-vhost-net
    --disable-install-blobs
    --disable-docs
    --firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
)
readonly build_deps=(
    dpkg-dev gcc make ninja-build meson pkg-config python3 rsync
    libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev libnuma-dev flex bison
    qemu-system-data seabios ipxe-qemu
)
# Make sure 'python3' is Debian's (configure's venv and meson run with it), not
# some pyenv shim earlier in PATH.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
# QEMU's own tests that the series could disturb; 10.0's series adds its
# own libqtest test (hmmv-test) and a migration-test case.
qtests=(tests/qtest/qmp-cmd-test tests/qtest/migration-test)

with_qtests=0
unpatched=0
force=0
jobs="$(nproc)"
qemu_version="${HMMV_QEMU_VERSION:-10.0}"

log() {
    printf 'build.sh: %s\n' "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

usage() {
    cat >&2 <<EOF
usage: $0 [--qemu 10.0] [--with-qtests] [--unpatched] [--jobs N] [--force]
  --qemu V       QEMU version: 10.0 (trixie), the only one (7.2 was retired)
  --with-qtests  also build ${qtests[*]}
                 (copied to \$cache/qemu-<hash>/tests/)
  --unpatched    the same source and configure without the series (its own work tree,
                 \$cache/qemu-unpatched-<hash>/)
  --jobs N       ninja parallelism (default: $(nproc))
  --force        rebuild even if the cached binary exists
environment: HMMV_CACHE_DIR (default /var/cache/hmmv), HMMV_QEMU_VERSION (--qemu)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --with-qtests) with_qtests=1 ;;
    --unpatched) unpatched=1 ;;
    --force) force=1 ;;
    --qemu)
        [ $# -ge 2 ] || die "--qemu needs an argument"
        qemu_version="$2"
        shift
        ;;
    --qemu=*) qemu_version="${1#--qemu=}" ;;
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

# Per version: where the series is, where the source comes from, the build tree.
case "$qemu_version" in
7.2)
    die "QEMU 7.2 is no longer supported: its series was retired on 2026-12-03 (git history
has it: git show 988d72e:qemu-patches/series); 10.0 is the supported version (README, \"Supported
QEMU versions\")"
    ;;
10.0)
    series_dir="$script_dir/10.0"
    work_name=qemu-work-10.0
    # 10.0's configure makes a venv from this python and needs meson >= 1.5
    # in it (found through PYTHONPATH, see ensure_meson_10).
    configure_args=(--python=/usr/bin/python3 "${common_configure_args[@]}")
    # configure's venv (python/scripts/mkvenv.py) needs ensurepip unless pip and setuptools
    # are installed: Debian ships it in python3-venv, not in python3.
    version_deps=(python3-venv)
    # The series' own libqtest test (0007); an unpatched tree has none.
    [ "$unpatched" = 1 ] || qtests+=(tests/qtest/hmmv-test)
    ;;
*) die "unknown QEMU version '$qemu_version' (10.0 is the supported one)" ;;
esac
if [ "$unpatched" = 1 ]; then
    work_name+=-unpatched
fi
readonly series_dir work_name configure_args version_deps qtests
readonly series_file="$series_dir/series"
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
        [ -f "$series_dir/$line" ] || die "series: missing $series_dir/$line"
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
            apt10 apt-get source --download-only "qemu=$version" >&2
        fi
        rm -rf tree
        log "dpkg-source -x (applies Debian's patches)"
        dpkg-source -x ./qemu_*.dsc tree >&2
        touch .unpacked
    )
    printf '%s\n' "$dir/tree"
}

# 10.0 comes from trixie's source package and needs bookworm-backports' meson 1.7, both
# through a private apt state (apt10, ensure_apt10, apt10_source_version, ensure_meson_10).
# shellcheck source=qemu-patches/apt-trixie.sh
source "$script_dir/apt-trixie.sh"

main() {
    local version pristine key patches p out work scratch
    mkdir -p "$cache_dir"
    chmod 0755 "$cache_dir"

    # One build per work tree at a time. The fd is bash's pick (10 or above), not 9:
    # /work/heavy holds its slot lock on fd 9, and `exec 9>` here closed it, so a build under
    # /work/heavy gave its slot up at once.
    local lock_fd
    if [ "$unpatched" = 1 ]; then
        exec {lock_fd}>"$cache_dir/.build-$qemu_version-unpatched.lock"
    else
        exec {lock_fd}>"$cache_dir/.build-$qemu_version.lock"
    fi
    if ! flock -n "$lock_fd"; then
        log "waiting for another build.sh to finish"
        flock "$lock_fd"
    fi

    if ! pkg_installed dpkg-dev; then
        install_missing dpkg-dev
    fi
    ensure_apt10
    version="$(apt10_source_version)"
    PYTHONPATH="$(ensure_meson_10)"
    export PYTHONPATH
    if [ "$unpatched" = 1 ]; then
        patches=()
    else
        mapfile -t patches < <(read_series)
    fi

    key="$(
        {
            printf 'debian-source %s\n' "$version"
            printf 'configure %s\n' "${configure_args[*]}"
            if [ "$unpatched" = 1 ]; then
                printf 'unpatched\n'
            else
                printf 'series\n'
                cat "$series_file"
            fi
            for p in "${patches[@]}"; do
                printf 'patch %s\n' "$p"
                cat "$series_dir/$p"
            done
        } | sha256sum | cut -c1-16
    )"
    if [ "$unpatched" = 1 ]; then
        out="$cache_dir/qemu-unpatched-$key"
    else
        out="$cache_dir/qemu-$key"
    fi
    log "QEMU $qemu_version: debian source $version, ${#patches[@]} patch(es), key $key"

    if [ "$force" = 0 ] && [ -x "$out/bin/qemu-system-x86_64" ] &&
        { [ "$with_qtests" = 0 ] || [ -x "$out/tests/migration-test" ]; }; then
        log "cached: $out"
        printf '%s\n' "$out/bin/qemu-system-x86_64"
        return 0
    fi

    install_missing "${build_deps[@]}" "${version_deps[@]}"
    pristine="$(ensure_pristine "$version")"

    # Assemble pristine + series in scratch, then mirror into the work tree.
    work="$cache_dir/$work_name"
    scratch="$cache_dir/$work_name-scratch"
    rm -rf "$scratch"
    log "copying pristine source"
    cp -a "$pristine" "$scratch"
    for p in "${patches[@]}"; do
        log "applying $p"
        patch -d "$scratch" -p1 --batch --forward --quiet \
            <"$series_dir/$p" >&2 || die "$p does not apply"
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
            ../configure "${configure_args[@]}" >&2)
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
    # The plugin API of exactly this build (a plugin built against another
    # version's header is refused at load: QEMU_PLUGIN_VERSION).
    mkdir -p "$out.tmp/include"
    install -m 0644 "$work/src/include/qemu/qemu-plugin.h" "$out.tmp/include/"
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
        if [ "$unpatched" = 1 ]; then
            printf ' (none: --unpatched)'
        else
            printf ' %s' "${patches[@]}"
        fi
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
