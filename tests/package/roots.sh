# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the package tests: clean Debian 12 roots from the package registry, cached outside
# the tree under /var/cache/hmmv/debootstrap (HMMV_DEBOOTSTRAP_CACHE), shared between tests
# through flock on $cache/.lock.
#
#   roots_base                 the debootstrap (minbase) of bookworm: $cache/bookworm-minbase
#   roots_layer NAME PKGS...   the files that `apt-get install PKGS` adds to the base, kept as
#                              an overlay layer $cache/layer-NAME/upper (rebuilt when PKGS or
#                              the base changes): mount it with roots_mount
#   roots_runtime              the layer 'runtime' the package tests share: systemd (a real
#                              PID 1 for systemd-nspawn), apparmor (apparmor_parser), hmmv's
#                              runtime libraries, and QEMU's with the firmware
#                              qemu-system-x86-hmmv depends on
#   roots_mount DIR UPPER LAYER...  an overlay at DIR of the base under the layers (first is
#                              topmost) with the writable UPPER (a fresh directory: exactly
#                              what the test changed), recorded in roots_mounted for roots_cleanup
#   roots_cleanup              unmounts what roots_mount and the layers mounted, newest first
#
# Needs root, debootstrap, overlayfs and the registry (once per cache). Functions print their
# diagnostics on stderr and return non-zero on failure.

roots_cache=${HMMV_DEBOOTSTRAP_CACHE:-/var/cache/hmmv/debootstrap}
roots_mirror=${HMMV_DEBIAN_MIRROR:-http://deb.debian.org/debian}
roots_mounted=()

roots_cleanup() {
  local i
  for ((i = ${#roots_mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${roots_mounted[i]}" 2>/dev/null
  done
  roots_mounted=()
}

roots_base() {
  local base=$roots_cache/bookworm-minbase start
  mkdir -p "$roots_cache"
  (
    flock 9
    if [ ! -x "$base/usr/bin/dpkg" ]; then
      start=$(date +%s)
      rm -rf "$base.tmp"
      debootstrap --variant=minbase bookworm "$base.tmp" "$roots_mirror" >"$base.log" 2>&1 ||
        { tail -n 20 "$base.log" >&2; echo "roots: debootstrap failed" >&2; exit 1; }
      mv "$base.tmp" "$base"
      echo "# debootstrap of bookworm (minbase) cached in $base: $(($(date +%s) - start)) s" >&2
    fi
  ) 9>"$roots_cache/.lock" || return 1
  echo "$base"
}

# The stamp of what a layer was built from: its packages and the base's own state (the
# layer's /var/lib/dpkg/status is a whole copy, so a changed base means a stale layer).
roots_stamp() { # packages...
  local base=$roots_cache/bookworm-minbase
  printf '%s\n' "$*" "$(cat "$base/.hmmv-depends" 2>/dev/null)" \
    "$(sha256sum "$base/var/lib/dpkg/status" | cut -c1-16)"
}

roots_layer() { # name packages...
  local name=$1; shift
  local base layer=$roots_cache/layer-$name start
  base=$(roots_base) || return 1
  (
    flock 9
    if [ "$(cat "$layer/stamp" 2>/dev/null)" != "$(roots_stamp "$@")" ]; then
      start=$(date +%s)
      rm -rf "$layer" "$layer.tmp"
      mkdir -p "$layer.tmp/upper" "$layer.tmp/work" "$layer.tmp/root"
      mount -t overlay overlay \
        -o "lowerdir=$base,upperdir=$layer.tmp/upper,workdir=$layer.tmp/work" "$layer.tmp/root" ||
        { echo "roots: overlay mount failed" >&2; exit 1; }
      r=$layer.tmp/root
      cp /etc/resolv.conf "$r/etc/resolv.conf"
      mount -t proc proc "$r/proc"
      # No service starts inside the root.
      printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
      chmod 755 "$r/usr/sbin/policy-rc.d"
      ok=0
      { chroot "$r" apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -q \
          --no-install-recommends "$@" &&
        chroot "$r" apt-get clean; } >"$layer.tmp/apt.log" 2>&1 && ok=1
      rm -f "$r/usr/sbin/policy-rc.d" "$r/etc/resolv.conf"
      umount "$r/proc"
      umount "$r"
      if [ "$ok" != 1 ]; then
        tail -n 20 "$layer.tmp/apt.log" >&2
        echo "roots: apt-get install $* in layer $name failed" >&2
        exit 1
      fi
      rm -rf "$layer.tmp/work" "$layer.tmp/root"
      roots_stamp "$@" >"$layer.tmp/stamp"
      mv "$layer.tmp" "$layer"
      echo "# layer $name ($*) cached in $layer: $(($(date +%s) - start)) s" >&2
    fi
  ) 9>"$roots_cache/.lock" || return 1
  echo "$layer/upper"
}

roots_mount() { # dir upper layers...
  local dir=$1 upper=$2; shift 2
  local lower work=$upper.work
  lower=$(printf '%s:' "$@")$roots_cache/bookworm-minbase
  mkdir -p "$dir" "$upper" "$work"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$dir" ||
    { echo "roots: overlay mount of $lower failed" >&2; return 1; }
  roots_mounted+=("$dir")
}

roots_runtime_packages=(systemd apparmor libglib2.0-0 libjson-glib-1.0-0 libnuma1 libvirt0
  libpixman-1-0 libfdt1 zlib1g seabios qemu-system-data ipxe-qemu)
roots_runtime() {
  roots_layer runtime "${roots_runtime_packages[@]}"
}
