# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# A private libvirtd for a test (tests/integration/test-libvirt.sh, test-demo.sh's libvirt
# mode): sourced, not run. The caller runs inside its own mount and PID namespace (unshare -m -p
# --fork --mount-proc, as root) and has set WORK (a scratch directory, 0755) and URI
# (qemu:///system); the host's libvirt state is left untouched.
#
#   libvirt_private_state     tmpfs over /run and private copies of /etc/libvirt,
#                             /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt (no
#                             default network); with HMMV_LIBVIRT_ROOT another libvirt (below)
#   libvirt_start_daemons     virtlogd, then libvirtd (start_libvirtd); VIRTLOGD_PID, LIBVIRTD_PID
#   start_libvirtd            libvirtd alone (again, after a kill), answering on URI in 30 s
#   libvirt_stop_daemons DOM...   at cleanup: destroys DOM..., stops the QEMUs libvirtd could
#                             not, libvirtd and virtlogd by pid, and removes the cgroup v1
#                             "machine" partitions libvirt created (the cgroup tree is the host's)
#
# Every process is stopped by its pid (libvirt_stop_pid: SIGTERM, SIGKILL after 10 s).

VIRTLOGD_PID='' LIBVIRTD_PID='' CGROUPS_BEFORE=''

libvirt_stop_pid() {   # libvirt_stop_pid PID NAME
  local pid=$1 name=$2 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "# $name (pid $pid) ignored SIGTERM: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

libvirt_private_state() {
  local dir copy f lib
  mount -t tmpfs -o mode=0755 hmmv-it-run /run
  for dir in /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
    copy="$WORK/$(basename "$(dirname "$dir")")-$(basename "$dir").tar"
    tar -C "$dir" -cpf "$copy" .
    mount -t tmpfs -o mode=0755 hmmv-it "$dir"
    tar -C "$dir" -xpf "$copy"
    rm -f "$copy"
  done
  rm -f /etc/libvirt/qemu/networks/autostart/*.xml   # no dnsmasq, no default network
  mkdir -p /run/libvirt

  # Another libvirt than the host's, for example bookworm-backports' 11.3, unpacked with dpkg -x
  # under $HMMV_LIBVIRT_ROOT (installing it would replace the host's 9.0): its daemons, virsh,
  # drivers, data and libraries are bind-mounted over the host's inside this private mount
  # namespace only, so libvirtd, virsh and hmmvd all run it and the host never sees it.
  if [[ -n ${HMMV_LIBVIRT_ROOT:-} ]]; then
    for f in usr/sbin/libvirtd usr/sbin/virtlogd usr/bin/virsh usr/lib/x86_64-linux-gnu/libvirt \
             usr/share/libvirt; do
      [[ -e $HMMV_LIBVIRT_ROOT/$f && -e /$f ]] || { echo "FAIL: HMMV_LIBVIRT_ROOT lacks /$f"; return 1; }
      mount --bind "$HMMV_LIBVIRT_ROOT/$f" "/$f"
    done
    for lib in libvirt libvirt-qemu libvirt-admin libvirt-lxc; do
      mount --bind "$(readlink -f "$HMMV_LIBVIRT_ROOT/usr/lib/x86_64-linux-gnu/$lib.so.0")" \
        "/usr/lib/x86_64-linux-gnu/$lib.so.0"
    done
  fi
}

start_libvirtd() {
  /usr/sbin/libvirtd >>"$WORK/libvirtd.log" 2>&1 &
  LIBVIRTD_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    virsh -q -c "$URI" list --all >/dev/null 2>&1 && return 0
    kill -0 "$LIBVIRTD_PID" 2>/dev/null || { echo "libvirtd died"; return 1; }
    sleep 0.1
  done
  echo "libvirtd did not answer in 30 s"; return 1
}

libvirt_start_daemons() {
  CGROUPS_BEFORE=$(echo /sys/fs/cgroup/*/machine)
  /usr/sbin/virtlogd >"$WORK/virtlogd.log" 2>&1 &
  VIRTLOGD_PID=$!
  start_libvirtd
}

libvirt_stop_daemons() {   # libvirt_stop_daemons DOMAIN...
  local dom pidfile pid dir
  if [[ -n $LIBVIRTD_PID ]] && kill -0 "$LIBVIRTD_PID" 2>/dev/null; then
    for dom in "$@"; do
      virsh -q -c "$URI" destroy "$dom" >/dev/null 2>&1 || true
    done
  fi
  for pidfile in /run/libvirt/qemu/*.pid; do   # QEMUs libvirtd could not stop
    [[ -r $pidfile ]] && pid=$(<"$pidfile") && libvirt_stop_pid "$pid" "QEMU $pidfile"
  done
  libvirt_stop_pid "$LIBVIRTD_PID" libvirtd
  libvirt_stop_pid "$VIRTLOGD_PID" virtlogd
  # libvirt leaves its (empty) cgroup v1 partition "machine" behind in every controller; the
  # cgroup tree is the host's, so remove the ones this test created.
  for dir in /sys/fs/cgroup/*/machine; do
    [[ -d $dir && " $CGROUPS_BEFORE " != *" $dir "* ]] && { rmdir "$dir" 2>/dev/null || true; }
  done
  return 0   # the last test above fails for a partition that was there before: not an error
}
