#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# libvirt-caps.sh OUTDIR EMULATOR...
#
# libvirt's QEMU capabilities cache (/var/cache/libvirt/qemu/capabilities/*.xml) for the
# emulators a libvirtd finds by itself (`virsh capabilities`) and for each EMULATOR, probed
# by a private libvirtd on this host and copied to OUTDIR, for a libvirtd inside the testbed
# (hmmvd-libvirt.py --caps OUTDIR) that would otherwise probe every emulator itself: a QEMU
# started with ~100 QMP queries, ~8 s here under TCG but minutes under nested TCG (define and
# start of the first domain took ~13 min at load 33-47 with three emulators to probe).
#
# libvirt 9.0 keeps a cached entry (virQEMUCapsIsValid) while libvirt itself (version, ctime
# of its binary and driver modules), the emulator's ctime and the QEMU module directory's
# mtime are unchanged; the host CPU, microcode and kernel are compared only when KVM is
# usable, and neither this host nor the testbed has /dev/kvm. The testbed's root is this
# host's root over 9p, which passes the host's ctimes through, so the entries stay valid
# inside. hmmvd-libvirt.py counts the probes the inner libvirtd made anyway.
#
# Runs in a private mount and PID namespace (as tests/integration/test-libvirt.sh): tmpfs
# over /run and private copies of /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and
# /var/log/libvirt; nothing of the host's libvirt state changes, and the kernel kills what is
# left in the namespace when it ends. Exit 0, or 1 with the reason; 77 when libvirt is missing.
set -euo pipefail

say() { echo "libvirt-caps: $*" >&2; }

if [[ ${1:-} != --inner ]]; then
  [[ $# -ge 2 ]] || { echo "usage: $0 OUTDIR EMULATOR..." >&2; exit 2; }
  [[ $(id -u) -eq 0 ]] || { say "SKIP: needs root"; exit 77; }
  for tool in /usr/sbin/libvirtd virsh unshare; do
    command -v "$tool" >/dev/null || { say "SKIP: $tool is not installed"; exit 77; }
  done
  exec unshare --mount --propagation private --pid --fork --mount-proc \
    --kill-child=SIGTERM "$0" --inner "$@"
fi
shift
out=$1
shift
mkdir -p "$out"
work=$(mktemp -d /tmp/hmmv-lvcaps.XXXXXX)
libvirtd_pid=''
cleanup() {
  if [[ -n $libvirtd_pid ]] && kill -0 "$libvirtd_pid" 2>/dev/null; then
    kill "$libvirtd_pid"
    wait "$libvirtd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

mount -t tmpfs -o mode=0755 hmmv-lvcaps-run /run
for dir in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
  copy="$work/$(basename "$(dirname "$dir")")-$(basename "$dir").tar"
  tar -C "$dir" -cpf "$copy" .
  mount -t tmpfs -o mode=0755 hmmv-lvcaps "$dir"
  tar -C "$dir" -xpf "$copy"
  rm -f "$copy"
done
rm -f /etc/libvirt/qemu/networks/autostart/*.xml   # no dnsmasq, no default network
rm -f /var/cache/libvirt/qemu/capabilities/*.xml  # probed here, not inherited
# The probe runs the emulator as qemu.conf's user; the patched QEMU lives in a root-only
# cache (/var/cache/hmmv), and the testbed's libvirtd runs QEMU as root too.
printf '\nuser = "root"\ngroup = "root"\n' >>/etc/libvirt/qemu.conf
mkdir -p /run/libvirt

/usr/sbin/libvirtd >"$work/libvirtd.log" 2>&1 &
libvirtd_pid=$!
for ((i = 0; i < 600; i++)); do
  virsh -q -c qemu:///system version >/dev/null 2>&1 && break
  kill -0 "$libvirtd_pid" 2>/dev/null || { say "libvirtd died: $(tail -n 5 "$work/libvirtd.log")"; exit 1; }
  sleep 0.1
done
t0=$SECONDS
virsh -q -c qemu:///system capabilities >/dev/null
for emulator in "$@"; do
  virsh -q -c qemu:///system domcapabilities --emulatorbin "$emulator" --virttype qemu \
    >/dev/null || { say "libvirt cannot probe $emulator"; exit 1; }
done
shopt -s nullglob
files=(/var/cache/libvirt/qemu/capabilities/*.xml)
[[ ${#files[@]} -gt 0 ]] || { say "libvirtd wrote no capabilities cache"; exit 1; }
cp "${files[@]}" "$out/"
for f in "${files[@]}"; do
  say "$(sed -n 's:.*<emulator>\(.*\)</emulator>.*:\1:p' "$f" | head -n 1) -> $(basename "$f")"
done
say "${#files[@]} emulators probed in $((SECONDS - t0)) s"
