#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The patched QEMU's Debian source package (issue 13, the quick part): debian/qemu/generate
# --source builds it from Debian 13's QEMU 10.0 source with qemu-patches/10.0/series added to
# debian/patches, and dpkg-source -b accepts it (it applies every patch, fuzz 0). lintian
# on it takes over 15 minutes here: scripts/package --qemu-source runs it, by hand. Here: the package holds exactly the series' patches, in the
# series' order after Debian's, byte for byte.
# Cached by the series' hash under /var/cache/hmmv/qemu-deb (minutes once, then seconds).
# TAP output. usage: qemu-source-test.sh SOURCE_ROOT
set -uo pipefail
root=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "1..0 # SKIP needs root (apt-get source, the cache under /var/cache/hmmv)"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi
work=$(mktemp -d /tmp/hmmv-qemu-source-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0 failed=0
check() { local what=$1; shift; n=$((n + 1))
  if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=1; fi; }

start=$(date +%s)
if bash "$root/debian/qemu/generate" --source --output "$work/out" >"$work/log" 2>&1; then
  check "generate --source: dpkg-source -b accepted it ($(($(date +%s) - start)) s)" true
else
  sed 's/^/# /' "$work/log" | tail -n 40
  echo "Bail out! debian/qemu/generate --source failed"
  exit 1
fi
dsc=$(ls "$work"/out/qemu-hmmv_*.dsc)
check "the source package is qemu-hmmv, building only qemu-system-x86-hmmv" \
  test "$(sed -n 's/^Binary: //p' "$dsc")" = "qemu-system-x86-hmmv"
# The QEMU build.sh builds (trixie's 10.0, from the same private apt state).
log() { echo "# $*"; }
die() { echo "Bail out! $*"; exit 1; }
source "$root/qemu-patches/apt-trixie.sh"
want=$(apt10_source_version)+hmmv1
got_version=$(sed -n 's/^Version: //p' "$dsc")
check "its version is trixie's QEMU 10.0 source's plus +hmmv1: $got_version" \
  bash -c "[ '$got_version' = '$want' ] && [[ '$got_version' == 1:10.0.* ]]"
# Its debian/ as dpkg-source ships it (the tarball the .dsc lists; unpacking QEMU's whole
# source again would take minutes).
mkdir -p "$work/x"
tar -xJf "$work"/out/qemu-hmmv_*.debian.tar.xz -C "$work/x" 2>/dev/null
check "the .debian.tar.xz holds debian/patches/series" test -f "$work/x/debian/patches/series"

series=()
while read -r line; do
  line=${line%%#*}; line=$(echo "$line" | xargs); [ -n "$line" ] && series+=("$line")
done <"$root/qemu-patches/10.0/series"
expected=$(printf 'hmmv/%s\n' "${series[@]}")
got=$(grep '^hmmv/' "$work/x/debian/patches/series")
check "debian/patches/series ends with qemu-patches/10.0/series, in order" \
  test "$(tail -n ${#series[@]} "$work/x/debian/patches/series")" = "$expected"
check "no other hmmv patch in debian/patches/series" test "$got" = "$expected"
for p in "${series[@]}"; do
  check "debian/patches/hmmv/$p is qemu-patches/10.0/$p" \
    cmp -s "$work/x/debian/patches/hmmv/$p" "$root/qemu-patches/10.0/$p"
done
echo "1..$n"
exit $failed
