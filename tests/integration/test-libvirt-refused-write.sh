#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# libvirtd refuses set-quota's metadata write while hmmvd is connected (suite 'integration',
# issue 8, review 17 finding 3).
#
#   test-libvirt-refused-write.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT
#
# Two TCG domains of the patched QEMU under a private libvirtd (libvirt-lib.sh, in a private
# mount and PID namespace as test-libvirt.sh). hmmvd connects through libvirtd's read-only
# socket (libvirt-sock-ro): it lists the domains, reads their XML and metadata and gets their
# events, but libvirtd refuses every write ("read only access prevents virDomainSetMetadata")
# and every QMP pass-through (so no domain is managed: listed with the reason, which this test
# does not judge). `virsh` on the read-write socket plays the operator.
#
# Checked: `hmmvctl set-quota A` is accepted, libvirtd refuses the write, hmmvd warns that the
# quota was NOT applied and shows why in A's quota-error (hmmvctl vms, --json vms); the write
# is dropped, not retried (one warning over 6 more intervals); nothing else is lost: A's quota
# in hmmvd and in libvirt as before, B's quota from virsh metadata still applied, the
# connection never given up nor made again; hmmvd keeps serving: status answered, intervals go
# on, and a later `virsh metadata A` reaches hmmvd (A's quota applied, its quota-error gone).
#
# Nothing is timed: waits are liveness bounds only (counted in intervals where it matters);
# times are printed as figures. Every process is stopped by its pid, also on failure.
# Exit 0 pass, 1 fail, 77 skip (with the reason).
set -euo pipefail

skip() { echo "SKIP: $*"; exit 77; }

if [[ ${1:-} != --inner ]]; then
  [[ $# -eq 4 ]] || { echo "usage: $0 HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT" >&2; exit 2; }
  [[ $(id -u) -eq 0 ]] || skip "needs root (starts its own libvirtd)"
  for tool in /usr/sbin/libvirtd /usr/sbin/virtlogd virsh unshare python3 timeout; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (libvirt-daemon-system, libvirt-clients, util-linux, python3, coreutils)"
  done
  [[ -x $1 && -x $2 ]] || skip "hmmvd or hmmvctl not built"
  [[ -r $3 ]] || skip "test guest $3 not built"
  qemu=${HMMV_QEMU:-}
  if [[ -z $qemu ]]; then
    build_log=$(mktemp /tmp/hmmv-it-qemu-build.XXXXXX)
    qemu=$(bash "$4/qemu-patches/build.sh" 2>"$build_log" | tail -n 1) ||
      skip "qemu-patches/build.sh failed (see $build_log)"
    rm -f "$build_log"
  fi
  [[ -x $qemu ]] || skip "no patched QEMU (HMMV_QEMU unset and build.sh gave '$qemu')"
  exec unshare --mount --propagation private --pid --fork --mount-proc \
    --kill-child=SIGTERM "$0" --inner "$1" "$2" "$3" "$qemu"
fi

HMMVD=$2 HMMVCTL=$3 GUEST=$4 QEMU=$5
URI=qemu:///system
RO_SOCKET=/run/libvirt/libvirt-sock-ro
RO_URI="qemu+unix:///system?socket=$RO_SOCKET"
NS=https://hmmv.dev/ns/quota/1
DOMAINS=(hmmv-ro-a hmmv-ro-b)
A=${DOMAINS[0]} B=${DOMAINS[1]}
T0=$SECONDS
WORK=$(mktemp -d /tmp/hmmv-it-rowrite.XXXXXX)
chmod 0755 "$WORK"
FAILED=0
HMMVD_PID=''
# shellcheck source=tests/integration/libvirt-lib.sh
. "$(dirname "$0")/libvirt-lib.sh"

log() { echo "# [$((SECONDS - T0))s] $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
ok() { echo "ok: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

cleanup() {
  local status=$?
  trap - EXIT TERM INT
  libvirt_stop_pid "$HMMVD_PID" hmmvd
  libvirt_stop_daemons "${DOMAINS[@]}"
  if [[ $status -ne 0 || $FAILED -ne 0 ]]; then
    echo "---- hmmvd log (tail) ----"; tail -n 60 "$WORK/hmmvd.log" 2>/dev/null || true
    echo "---- libvirtd log (tail) ----"; tail -n 20 "$WORK/libvirtd.log" 2>/dev/null || true
  fi
  if [[ -n ${HMMV_IT_KEEP_LOGS:-} ]]; then
    mkdir -p "$HMMV_IT_KEEP_LOGS" && cp "$WORK"/*.log "$HMMV_IT_KEEP_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  log "done in $((SECONDS - T0)) s"
  [[ $status -ne 0 ]] && exit "$status"
  exit "$FAILED"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

libvirt_private_state || { FAILED=1; exit 1; }
mkdir -m 0755 "$WORK/bin"
install -m 0755 "$QEMU" "$WORK/bin/qemu-system-x86_64"
install -m 0644 "$GUEST" "$WORK/bin/guest.elf"
libvirt_start_daemons || { fail "libvirtd does not start"; exit 1; }
log "libvirt $(/usr/sbin/libvirtd --version | awk '{print $NF}'), libvirtd pid $LIBVIRTD_PID"
[[ -S $RO_SOCKET ]] || skip "libvirtd made no read-only socket ($RO_SOCKET)"

for dom in "${DOMAINS[@]}"; do
  cat >"$WORK/$dom.xml" <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$dom</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$WORK/bin/guest.elf</kernel>
    <cmdline>mode=workload hot_mib=4 cold_mib=20 report_every=0</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>$WORK/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$WORK/$dom.serial.log'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-device'/><qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=0x04'/>
  </qemu:commandline>
</domain>
EOF
  virsh -q -c "$URI" define "$WORK/$dom.xml" >/dev/null
  virsh -q -c "$URI" start "$dom" >/dev/null || { fail "domain $dom does not start"; exit 1; }
done
log "domains started: ${DOMAINS[*]}"

set_meta() {   # set_meta URI DOMAIN ELEMENT
  virsh -q -c "$1" metadata "$2" --uri "$NS" --key hmmv --live --config --set "$3"
}
libvirt_meta() { virsh -q -c "$URI" metadata "$1" --uri "$NS" --live 2>/dev/null | tr -d '\n' || true; }

# The premise: libvirtd's read-only socket refuses a metadata write (virsh on it, as hmmvd
# will be); nothing written.
if out=$(set_meta "$RO_URI" "$A" '<memory dram-max-mib="12"/>' 2>&1); then
  fail "the read-only socket took a metadata write: the test proves nothing"; exit 1
fi
check "premise: libvirtd's read-only socket refuses virDomainSetMetadata: ${out//$'\n'/ }" \
  grep -q "read only access prevents virDomainSetMetadata" <<<"$out"

cat >"$WORK/hmmvd.conf" <<EOF
[daemon]
interval-ms=500
control-socket=$WORK/hmmvd.sock
log-level=info
[libvirt]
uri=$RO_URI
reconnect-ms=500
[memory]
mover=sim
sim-dram-mib=64
sim-slow-mib=256
EOF
"$HMMVD" --foreground --config "$WORK/hmmvd.conf" --pid-file "$WORK/hmmvd.pid" \
  >"$WORK/hmmvd.log" 2>&1 &
HMMVD_PID=$!

ctl() { timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" "$@"; }
vm_field() {   # vm_field NAME EXPR (on the VM's object v of hmmvctl --json vms)
  ctl --json vms 2>/dev/null | python3 -c '
import json, sys
for v in json.load(sys.stdin):
    if v["name"] == sys.argv[1]:
        print(eval(sys.argv[2])); break
else:
    print("<absent>")' "$1" "$2" 2>/dev/null || echo "<no answer>"
}
intervals() {   # -1 (and the reason on stderr) when hmmvd did not answer
  local out
  if out=$(ctl --json status 2>&1); then
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["intervals"])' "$out" 2>/dev/null && return
  fi
  echo "# intervals: no answer: ${out:0:300}" >&2
  echo -1
}
wait_for() {   # wait_for SECONDS DESCRIPTION COMMAND...: liveness bound only
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit * 5; i++)); do
    "$@" && return 0
    sleep 0.2
  done
  fail "$what (waited $limit s)"
  return 1
}
alive() { kill -0 "$HMMVD_PID" 2>/dev/null; }
log_count() { grep -c -- "$1" "$WORK/hmmvd.log" || true; }
# listed, its start-up over (refused too: no QMP through a read-only connection)
settled() { local s; s=$(vm_field "$1" 'v["status"]'); [[ $s != '<absent>' && $s != '<no answer>' && $s != starting* ]]; }
quota_max() { vm_field "$1" 'v["quota"].get("dram-max-mib")'; }
quota_error() { vm_field "$1" 'v.get("quota-error") or ""'; }
intervals_past() { local n; n=$(intervals 2>/dev/null); ((n >= $1)); }

wait_for 60 "hmmvd serves its control socket" test -S "$WORK/hmmvd.sock" || exit 1
wait_for 120 "hmmvd connected through the read-only socket" \
  eval '(( $(log_count "libvirt: connected to") >= 1 ))' || exit 1
wait_for 120 "$A and $B discovered" eval 'settled "$A" && settled "$B"' || exit 1
log "listed: $A: $(vm_field "$A" 'v["status"]'); $B: $(vm_field "$B" 'v["status"]')"

# B's quota from the operator (virsh, read-write socket): the event reaches hmmvd through its
# read-only connection, which reads the element.
set_meta "$URI" "$B" '<memory dram-min-mib="4" dram-max-mib="24" weight="100"/>'
wait_for 60 "B's quota from virsh metadata applied (max 24 MiB)" eval '[[ $(quota_max "$B") == 24 ]]' &&
  ok "B's quota from virsh metadata applied (max 24 MiB)"
a_before=$(quota_max "$A")
a_meta_before=$(libvirt_meta "$A")
log "A's quota in hmmvd before: max $a_before MiB; A's element in libvirt: '${a_meta_before}'"

# ---- set-quota A: libvirtd refuses the write ------------------------------------------------------
t0=$(date +%s%N)
if out=$(ctl set-quota "$A" --min 4 --max 20 --weight 100 2>&1); then
  ok "set-quota $A accepted in $((($(date +%s%N) - t0) / 1000000)) ms (a figure): ${out//$'\n'/ }"
else
  fail "set-quota $A not accepted: ${out//$'\n'/ }"
fi
refused="vm $A: the quota from set-quota was NOT applied: libvirt refused the write"
wait_for 60 "hmmvd warns that libvirtd refused A's write" \
  eval '(( $(log_count "$refused") >= 1 ))' &&
  ok "hmmvd warns: $(grep -m1 -o -- "$refused.*" "$WORK/hmmvd.log")"
check "the warning names libvirtd's reason (read only access)" \
  grep -q -- "$refused.*read only access prevents virDomainSetMetadata" "$WORK/hmmvd.log"
qe=$(quota_error "$A")
check "A's quota-error says so (hmmvctl --json vms): $qe" \
  grep -q "not written to libvirt.*read only access prevents virDomainSetMetadata" <<<"$qe"
vms_text=$(ctl vms 2>&1 || true)
check "hmmvctl vms shows A's quota error" \
  grep -q "$A: quota rejected.*not written to libvirt" <<<"$vms_text"

# ---- dropped, not retried; nothing else lost ----------------------------------------------------
from=$(intervals)
wait_for 60 "6 more intervals after the refusal (from $from)" intervals_past $((from + 6)) &&
  ok "hmmvd ran 6 more intervals after the refusal (intervals go on)"
check "the refused write was dropped, not retried: one warning in 6 intervals ($(log_count "$refused"))" \
  test "$(log_count "$refused")" -eq 1
check "A's quota in hmmvd as before (max $(quota_max "$A"), before $a_before)" \
  test "$(quota_max "$A")" == "$a_before"
check "A's element in libvirt as before ('$(libvirt_meta "$A")')" \
  test "$(libvirt_meta "$A")" == "$a_meta_before"
check "B's quota still applied (max $(quota_max "$B"))" test "$(quota_max "$B")" == 24
check "B has no quota error ('$(quota_error "$B")')" test -z "$(quota_error "$B")"
check "the connection was never given up (deadline: $(log_count 'has not returned in'), keepalive: $(log_count 'lost the connection'))" \
  test "$(log_count 'has not returned in')" -eq 0 -a "$(log_count 'lost the connection')" -eq 0
check "connected once ($(log_count 'libvirt: connected to'))" test "$(log_count 'libvirt: connected to')" -eq 1
check "hmmvctl status answered" ctl status >/dev/null

# ---- hmmvd keeps serving: the operator's later change of A reaches it ---------------------------
set_meta "$URI" "$A" '<memory dram-min-mib="4" dram-max-mib="28" weight="100"/>'
wait_for 60 "A's later quota from virsh metadata applied (max 28 MiB)" eval '[[ $(quota_max "$A") == 28 ]]' &&
  ok "A's later quota from virsh metadata applied (max 28 MiB)"
wait_for 60 "A's quota error cleared by the good quota" eval '[[ -z $(quota_error "$A") ]]' &&
  ok "A's quota error cleared by the good quota"
check "hmmvd alive at the end" alive
