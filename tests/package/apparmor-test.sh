#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# qemu-system-x86-hmmv's AppArmor abstraction (debian/qemu/libvirt-qemu-hmmv, installed as
# /etc/apparmor.d/abstractions/libvirt-qemu-hmmv) against Debian 12's libvirt profiles,
# parsed by Debian's apparmor_parser (issue 13). No kernel is needed: -Q (--skip-kernel-load)
# parses and compiles without loading, so this runs with AppArmor off, as on this machine;
# what an enforcing kernel then allows or denies is NOT tested here.
#
# A domain's profile is made as virt-aa-helper makes it (libvirt's TEMPLATE.qemu renamed
# libvirt-UUID, its .files include added), with the include line README.Debian tells the
# operator to add to /etc/apparmor.d/local/abstractions/libvirt-qemu. Checked: it compiles;
# the binary's rule reaches the domain's profile (apparmor_parser -p), and without the local
# line it does not (the operator's step is what allows it); libvirtd's own profile, which
# starts the emulator, compiles and executes /usr/bin/* (PUx).
#
# Runs in a chroot of the cached bookworm root plus the 'runtime' layer (apparmor from the
# registry; tests/package/roots.sh). libvirt's profiles come from the host's
# libvirt-daemon-system (Debian 12's, as scripts/setup installs it).
# TAP output. usage: apparmor-test.sh SOURCE_ROOT
set -uo pipefail
root=$(cd "$1" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "1..0 # SKIP needs root (chroot, overlay mount)"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi
if ! command -v debootstrap >/dev/null || ! grep -qw overlay /proc/filesystems; then
  echo "1..0 # SKIP needs debootstrap and the overlay file system"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi
libvirt_version=$(dpkg-query -W -f='${Version}' libvirt-daemon-system 2>/dev/null)
if [ -z "$libvirt_version" ] || [ ! -f /etc/apparmor.d/libvirt/TEMPLATE.qemu ]; then
  echo "1..0 # SKIP libvirt-daemon-system (its AppArmor profiles) is not installed"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi
source "$root/tests/package/roots.sh"
work=$(mktemp -d /tmp/hmmv-apparmor-test.XXXXXX)
trap 'roots_cleanup; rm -rf "$work"' EXIT
n=0 failed=0
check() { local what=$1; shift; n=$((n + 1))
  if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=1; fi; }

# The cache's notes go to the TAP stream (fd 3), not into the path captured by $(...): a
# process substitution inherits the capture's stdout, and on a cold cache the note became part of
# the path (the package suite failed on every fresh machine).
exec 3>&1
layer=$(roots_runtime 2> >(sed 's/^/# /' >&3)) || { echo "Bail out! the runtime layer"; exit 1; }
r=$work/root
roots_mount "$r" "$work/upper" "$layer" || { echo "Bail out! overlay mount"; exit 1; }
echo "# $(chroot "$r" apparmor_parser --version | head -n 1); libvirt-daemon-system $libvirt_version (host)"

# libvirt's profiles as its package installs them, and its postinst's empty local files.
aa=$r/etc/apparmor.d
mkdir -p "$aa/libvirt" "$aa/local/abstractions"
for f in abstractions/libvirt-qemu libvirt/TEMPLATE.qemu usr.sbin.libvirtd \
         usr.lib.libvirt.virt-aa-helper; do
  cp "/etc/apparmor.d/$f" "$aa/$f"
done
: >"$aa/local/abstractions/libvirt-qemu"
: >"$aa/local/usr.sbin.libvirtd"
: >"$aa/local/usr.lib.libvirt.virt-aa-helper"
# What the package installs.
install -m 0644 "$root/debian/qemu/libvirt-qemu-hmmv" "$aa/abstractions/libvirt-qemu-hmmv"

# A domain's profile as virt-aa-helper writes it: the template under the domain's name, and
# its disk paths in libvirt/libvirt-UUID.files.
name=libvirt-3c0d7f5e-9b1a-4c55-8e2f-6a1d2b3c4d5e
sed "s/^profile LIBVIRT_TEMPLATE/profile $name/; s|^}|  #include <libvirt/$name.files>\n}|" \
  "$aa/libvirt/TEMPLATE.qemu" >"$aa/libvirt/$name"
printf '  "/var/lib/libvirt/images/hmmv.qcow2" rwk,\n' >"$aa/libvirt/$name.files"

parse() { # profile: compiles it, as libvirt's apparmor_parser -r would, without the kernel
  chroot "$r" apparmor_parser -Q -K -T "$1" >"$work/parse.log" 2>&1 ||
    { sed 's/^/# /' "$work/parse.log"; return 1; }
}
expanded() { chroot "$r" apparmor_parser -p "/etc/apparmor.d/libvirt/$name" 2>/dev/null; }
rule='/usr/bin/qemu-system-x86_64-hmmv rmix,'

check "the abstraction alone compiles inside a profile" \
  bash -c "printf 'profile hmmv-t {\n  #include <abstractions/libvirt-qemu-hmmv>\n}\n' >'$aa/hmmv-t' &&
           chroot '$r' apparmor_parser -Q -K -T /etc/apparmor.d/hmmv-t 2>/dev/null"
check "without the operator's line the domain's profile lacks the rule" \
  bash -c "! grep -qF '$rule' <<<\"\$(chroot '$r' apparmor_parser -p /etc/apparmor.d/libvirt/$name 2>/dev/null)\""
# The operator's step (README.Debian).
echo 'include <abstractions/libvirt-qemu-hmmv>' >>"$aa/local/abstractions/libvirt-qemu"
check "a domain's profile with the operator's line compiles" parse "/etc/apparmor.d/libvirt/$name"
check "it allows the emulator: '$rule'" grep -qF "$rule" <<<"$(expanded)"
check "libvirtd's profile compiles" parse /etc/apparmor.d/usr.sbin.libvirtd
check "libvirtd's profile executes /usr/bin/* (the emulator's path) with PUx" \
  grep -qE '^\s*/usr/bin/\* PUx,' "$aa/usr.sbin.libvirtd"
check "virt-aa-helper's profile compiles" parse /etc/apparmor.d/usr.lib.libvirt.virt-aa-helper
echo "1..$n"
exit $failed
