#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The package suite (issue 13): builds the hmmv packages with scripts/package (lintian
# included), installs them with dpkg into a clean Debian 12 root, checks what they put there,
# then removes and purges them and checks that nothing is left behind.
#
# The clean root is a debootstrap (minbase) of bookworm cached outside the tree under
# /var/cache/hmmv/debootstrap (minutes once; hmmv's runtime dependencies are added to it
# once per dependency list), used through an overlay so that the cache stays clean and the
# overlay's upper layer is exactly what installing and purging changed.
#
# TAP output. Needs root (dpkg in a chroot, mounts) and Debian's package registry.
# usage: install-test.sh SOURCE_ROOT
set -uo pipefail
root=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "1..0 # SKIP needs root (debootstrap, chroot, overlay mount)"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi
if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
  echo "1..0 # SKIP the kernel has no overlay file system"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi

cache=${HMMV_DEBOOTSTRAP_CACHE:-/var/cache/hmmv/debootstrap}
work=$(mktemp -d /tmp/hmmv-package-test.XXXXXX)
chroot_dir=$work/root
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; failed=1; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
check_logged() { # description, command... (its output goes to the install log, shown on failure)
  local what=$1; shift
  if "$@" >>"$work/install.log" 2>&1; then ok "$what"; else
    not_ok "$what"; sed 's/^/# /' "$work/install.log"; fi
}
bail() { echo "Bail out! $1"; exit 1; }

# ---- the packages ----
start=$(date +%s)
if ! bash "$root/scripts/package" --nocheck --output "$work/debs" >"$work/package.log" 2>&1; then
  tail -n 60 "$work/package.log" | sed 's/^/# /'
  bail "scripts/package failed (its log's end is above)"
fi
ok "scripts/package built the packages, lintian clean ($(($(date +%s) - start)) s)"
sed -n '/lintian/,/in \//p' "$work/package.log" | grep -E '^[EWIPX]: ' | sed 's/^/# lintian: /'
deb=$(ls "$work"/debs/hmmv_*_amd64.deb)
dev=$(ls "$work"/debs/libhmmv-dev_*_amd64.deb)
version=$(dpkg-deb -f "$deb" Version)

# ---- the cached base root ----
command -v debootstrap >/dev/null || bail "debootstrap missing (scripts/setup installs it)"
source "$root/tests/package/roots.sh"
# The cache's notes go to the TAP stream (fd 3), not into the path captured by $(...): a
# process substitution inherits the capture's stdout, and on a cold cache the note became part of
# the path (the package suite failed on every fresh machine).
exec 3>&1
base=$(roots_base 2> >(sed 's/^/# /' >&3)) || bail "debootstrap failed"
exec 9>"$cache/.lock"
flock 9
# hmmv's runtime dependencies go into the base once per dependency list: installing them is
# not what is tested, and they must stay when hmmv is purged.
depends=$(dpkg-deb -f "$deb" Depends)
if [ "$(cat "$base/.hmmv-depends" 2>/dev/null)" != "$depends" ]; then
  start=$(date +%s)
  cp /etc/resolv.conf "$base/etc/resolv.conf"
  mount -t proc proc "$base/proc" && mounted+=("$base/proc")
  # No service starts inside the root.
  printf '#!/bin/sh\nexit 101\n' >"$base/usr/sbin/policy-rc.d"
  chmod 755 "$base/usr/sbin/policy-rc.d"
  if ! { chroot "$base" apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive chroot "$base" apt-get satisfy -y -q \
           --no-install-recommends "$depends" &&
         chroot "$base" apt-get clean; } >"$work/deps.log" 2>&1; then
    tail -n 20 "$work/deps.log" | sed 's/^/# /'
    bail "installing hmmv's dependencies ($depends) into $base failed"
  fi
  umount "$base/proc" && unset 'mounted[-1]'
  printf '%s\n' "$depends" >"$base/.hmmv-depends"
  echo "# hmmv's dependencies added to $base: $(($(date +%s) - start)) s"
fi
flock -u 9

mkdir -p "$work/upper" "$work/ovl" "$chroot_dir"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/ovl" \
  "$chroot_dir" || bail "overlay mount failed"
mounted+=("$chroot_dir")
cp "$deb" "$chroot_dir/tmp/"
in_root() { chroot "$chroot_dir" "$@"; }

# ---- install ----
check_logged "dpkg -i $(basename "$deb")" in_root dpkg -i "/tmp/$(basename "$deb")"
rm -f "$chroot_dir/tmp/$(basename "$deb")"
check "hmmvd --version prints hmmvd $version" \
  test "$(in_root hmmvd --version 2>&1)" = "hmmvd $version"
help=$(in_root hmmvctl --help 2>&1)
check "hmmvctl --help lists its commands" \
  grep -q "set-quota DOM" <<<"$help"
for f in /usr/sbin/hmmvd /usr/bin/hmmvctl /etc/hmmv/hmmvd.conf /lib/systemd/system/hmmvd.service \
         /usr/share/man/man8/hmmvd.8.gz /usr/share/man/man8/hmmvctl.8.gz \
         /usr/share/man/man5/hmmvd.conf.5.gz /usr/share/bash-completion/completions/hmmvctl \
         /usr/share/hmmv/domain-example.xml /usr/share/doc/hmmv/copyright; do
  check "installed: $f" test -f "$chroot_dir$f"
done
check "/etc/hmmv/hmmvd.conf is the tree's configs/hmmvd.conf" \
  cmp -s "$chroot_dir/etc/hmmv/hmmvd.conf" "$root/configs/hmmvd.conf"
check "/etc/hmmv/hmmvd.conf is a conffile" \
  grep -q '^ /etc/hmmv/hmmvd.conf ' <<<"$(in_root dpkg-query -W -f='${Conffiles}\n' hmmv)"
check "the unit is installed disabled (no multi-user.target.wants link)" \
  test ! -e "$chroot_dir/etc/systemd/system/multi-user.target.wants/hmmvd.service"
# The installed unit, with its man pages found where the package put them (systemd-analyze
# runs man for Documentation=); ExecStart pointed at the installed binary from outside.
if command -v systemd-analyze >/dev/null; then
  sed "s|^ExecStart=/usr/sbin/hmmvd|ExecStart=$chroot_dir/usr/sbin/hmmvd|" \
    "$chroot_dir/lib/systemd/system/hmmvd.service" >"$work/hmmvd.service"
  out=$(MANPATH=$chroot_dir/usr/share/man systemd-analyze verify "$work/hmmvd.service" 2>&1)
  check "systemd-analyze verify of the installed unit, man pages included" test -z "$out"
  [ -z "$out" ] || sed 's/^/# /' <<<"$out"
fi
# A configuration the operator changed stays on remove and goes on purge.
sed -i 's/^# interval-ms = 1000$/interval-ms = 500/' "$chroot_dir/etc/hmmv/hmmvd.conf"
check "hmmvd reads the changed configuration (a bad key is still refused with exit 2)" \
  bash -c "printf '[daemon]\nno-such-key = 1\n' >>'$chroot_dir/etc/hmmv/hmmvd.conf';
           chroot '$chroot_dir' hmmvd --foreground --no-libvirt 2>&1 | grep -q 'no-such-key';
           test \${PIPESTATUS[0]} -eq 2"
check_logged "dpkg -r hmmv" in_root dpkg -r hmmv
check "the changed conffile stays after remove" \
  grep -q '^interval-ms = 500$' "$chroot_dir/etc/hmmv/hmmvd.conf"
check "hmmvd is gone after remove" test ! -e "$chroot_dir/usr/sbin/hmmvd"
check_logged "dpkg --purge hmmv" in_root dpkg --purge hmmv
check "dpkg no longer knows hmmv" bash -c "! chroot '$chroot_dir' dpkg-query -W hmmv 2>/dev/null"

# ---- nothing left behind: the overlay's upper layer holds every change since the base ----
# dpkg's own bookkeeping changes by design; every other file, and every directory the base
# did not have, is something the packages left behind.
left=$(cd "$work/upper" && find . -mindepth 1 \( -type d -o -print \) |
  grep -vE '^\./var/lib/dpkg/(status|status-old|lock|lock-frontend|triggers/.*|available|diversions|statoverride)$|^\./var/log/dpkg\.log$|^\./var/cache/debconf/.*|^\./var/lib/dpkg/info/format$')
newdirs=$(cd "$work/upper" && find . -mindepth 1 -type d | while read -r d; do
  [ -d "$base/$d" ] || echo "$d"; done)
echo "# after purge the overlay holds $(cd "$work/upper" && find . -mindepth 1 ! -type d | wc -l) changed files, all dpkg's bookkeeping"
check "nothing left behind after purge" test -z "$left$newdirs"
[ -z "$left$newdirs" ] || printf '%s\n' $left $newdirs | sed 's/^/# left: /'
umount "$chroot_dir" && unset 'mounted[-1]'

# ---- libhmmv-dev: a program builds and links against what the package ships ----
dpkg-deb -x "$dev" "$work/dev"
cat >"$work/use-libhmmv.c" <<'C'
#include <hmmv/hmmv.h>
#include <stdio.h>
int main(void) {
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  printf("%s\n", topo != NULL ? "ok" : "no topology");
  return topo != NULL ? 0 : 1;
}
C
# The package's hmmv.pc with its prefix moved to where it was unpacked; glib & co. are the host's.
mkdir -p "$work/pc"
sed "s|^prefix=.*|prefix=$work/dev/usr|" "$(find "$work/dev" -name hmmv.pc)" >"$work/pc/hmmv.pc"
flags=$(PKG_CONFIG_PATH=$work/pc pkg-config --cflags --libs --static hmmv 2>&1)
check "libhmmv-dev: a program compiles, links (pkg-config hmmv) and runs" \
  bash -c "cc -o '$work/use-libhmmv' '$work/use-libhmmv.c' $flags && '$work/use-libhmmv' | grep -qx ok"
for f in usr/include/hmmv/hmmv.h usr/include/hmmv/shm-abi.h; do
  check "libhmmv-dev ships /$f" test -f "$work/dev/$f"
done

echo "1..$n"
exit $failed
