#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Unpacks bookworm-backports' libvirt (11.3 today) beside the host's own 9.0, for
# test-libvirt.sh's HMMV_LIBVIRT_ROOT: installing it would replace the host's libvirt.
#
#   libvirt-root.sh [SUITE]      (default bookworm-backports)
#
# Downloads the packages libvirtd, virtlogd, virsh and the QEMU driver come in with
# `apt-get download` (Debian's registry; scripts/setup adds the suite), unpacks them with
# `dpkg -x` into /var/cache/hmmv/libvirt-VERSION (once: a later call finds the tree complete
# and downloads nothing) and prints that directory on stdout's last line.
# Exit 0 with the directory; 77 when the suite or the download is not available (the reason on
# stderr); 1 on anything else.
set -euo pipefail

SUITE=${1:-bookworm-backports}
CACHE=${HMMV_CACHE:-/var/cache/hmmv}
PACKAGES=(libvirt0 libvirt-common libvirt-clients libvirt-daemon libvirt-daemon-common
          libvirt-daemon-log libvirt-daemon-lock libvirt-daemon-driver-qemu)

skip() { echo "libvirt-root: $*" >&2; exit 77; }

command -v apt-cache >/dev/null && command -v dpkg-deb >/dev/null ||
  skip "apt-cache or dpkg-deb missing (not a Debian host)"
version=$(apt-cache show "libvirt0/$SUITE" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
[[ -n $version ]] || skip "no libvirt0 in $SUITE in apt's lists (scripts/setup adds bookworm-backports and runs apt-get update)"
[[ $version =~ ^[0-9A-Za-z.+~:-]+$ ]] || { echo "libvirt-root: odd version '$version'" >&2; exit 1; }
root=$CACHE/libvirt-${version//:/_}
if [[ -e $root/.complete ]]; then echo "$root"; exit 0; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/libvirt-root.lock"
flock 9
if [[ -e $root/.complete ]]; then echo "$root"; exit 0; fi
work=$(mktemp -d "$CACHE/libvirt-dl.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/debs" "$work/root"
echo "libvirt-root: downloading libvirt $version from $SUITE" >&2
# apt's _apt sandbox cannot write a root-only cache dir: let it download as root.
(cd "$work/debs" && apt-get download -q -o APT::Sandbox::User=root \
    "${PACKAGES[@]/%/=$version}" >&2) ||
  skip "apt-get download of libvirt $version failed (no network to Debian's registry?)"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done
for f in usr/sbin/libvirtd usr/sbin/virtlogd usr/bin/virsh usr/lib/x86_64-linux-gnu/libvirt.so.0; do
  [[ -e $work/root/$f ]] || { echo "libvirt-root: the packages lack /$f" >&2; exit 1; }
done
printf '%s\n' "$version" >"$work/root/.complete"
rm -rf "$root"
mv "$work/root" "$root"
echo "$root"
