#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A domain's QEMU hung (SIGSTOP), libvirtd healthy, and `hmmvctl set-quota` for that domain
# (suite 'integration', issue 8, review 17 finding 1).
#
#   test-libvirt-qemu-hung.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT
#
# Two TCG domains of the patched QEMU under a private libvirtd (libvirt-lib.sh, in a private
# mount and PID namespace as test-libvirt.sh), managed by hmmvd. A's QEMU is stopped; once
# hmmvd froze A, `hmmvctl set-quota A` is made. libvirt's SetMetadata takes a job on the
# domain, which the QMP exchange to the hung QEMU holds: written now, libvirtd makes it wait
# its 30 s job timeout. hmmvd must keep the write until A's QEMU answers again, never give up
# its (healthy) libvirt connection, and keep serving B (a `virsh metadata` of B applied while
# A hangs). After SIGCONT: A thawed, A's quota written to libvirt and applied.
#
# Nothing is timed: A stays stopped for 80 of hmmvd's intervals (interval-ms=500, so at
# least 40 s, more than hmmvd's 15 s call deadline and libvirt's 30 s job wait); waits are
# liveness bounds only; times are printed as figures. Every process is stopped by its pid,
# also on failure (A's QEMU gets SIGCONT first). Exit 0 pass, 1 fail, 77 skip (with reason).
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
NS=https://hmmv.dev/ns/quota/1
DOMAINS=(hmmv-qhung-a hmmv-qhung-b)
A=${DOMAINS[0]} B=${DOMAINS[1]}
T0=$SECONDS
WORK=$(mktemp -d /tmp/hmmv-it-qhung.XXXXXX)
chmod 0755 "$WORK"
FAILED=0
HMMVD_PID=''
QPID=''
# shellcheck source=tests/integration/libvirt-lib.sh
. "$(dirname "$0")/libvirt-lib.sh"

log() { echo "# [$((SECONDS - T0))s] $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
ok() { echo "ok: $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }

cleanup() {
  local status=$?
  trap - EXIT TERM INT
  [[ -n $QPID ]] && kill -CONT "$QPID" 2>/dev/null
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

cat >"$WORK/hmmvd.conf" <<EOF
[daemon]
interval-ms=500
control-socket=$WORK/hmmvd.sock
log-level=debug
[libvirt]
uri=$URI
reconnect-ms=500
[memory]
mover=sim
sim-dram-mib=64
sim-slow-mib=256
EOF
"$HMMVD" --foreground --config "$WORK/hmmvd.conf" --pid-file "$WORK/hmmvd.pid" \
  >"$WORK/hmmvd.log" 2>&1 &
HMMVD_PID=$!

ctl() { "$HMMVCTL" --socket "$WORK/hmmvd.sock" "$@"; }
vm_field() {   # vm_field NAME EXPR (on the VM's object v of hmmvctl --json vms)
  timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" --json vms 2>/dev/null | python3 -c '
import json, sys
for v in json.load(sys.stdin):
    if v["name"] == sys.argv[1]:
        print(eval(sys.argv[2])); break
else:
    print("<absent>")' "$1" "$2" 2>/dev/null || echo "<no answer>"
}
intervals() {   # -1 (and the reason on stderr) when hmmvd did not answer
  local out
  if out=$(timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" --json status 2>&1); then
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
is_managed() { [[ $(vm_field "$1" 'v["status"]') == managed ]]; }
all_managed() { local d; for d in "$@"; do is_managed "$d" || return 1; done; }
log_count() { grep -c -- "$1" "$WORK/hmmvd.log" || true; }
ran_since() {   # ran_since N NAME...: each managed and run by interval N or later
  local from=$1 d n
  shift
  alive || return 1
  for d in "$@"; do
    n=$(vm_field "$d" 'v.get("last-good-interval", -1) if v["status"] == "managed" else -1')
    [[ $n =~ ^[0-9]+$ ]] && ((n >= from)) || return 1
  done
}
set_meta() { virsh -q -c "$URI" metadata "$1" --uri "$NS" --key hmmv --live --config --set "$2"; }


wait_for 60 "hmmvd serves its control socket" test -S "$WORK/hmmvd.sock"
wait_for 120 "both domains managed" all_managed "${DOMAINS[@]}" || exit 1
ok "managed: ${DOMAINS[*]}"
from=$(intervals)
wait_for 60 "both run by interval $from or later" ran_since "$from" "$A" "$B" || exit 1

# ---- A's QEMU stopped, set-quota A ------------------------------------------------------------
given_up() { grep -c -- "has not returned in" "$WORK/hmmvd.log" || true; }
lost() { grep -c -- "lost the connection" "$WORK/hmmvd.log" || true; }
connects() { grep -c -- "libvirt: connected to" "$WORK/hmmvd.log" || true; }
QPID=$(cat "/run/libvirt/qemu/$A.pid")
kill -STOP "$QPID"
t_stop=$(date +%s%N)
log "QEMU of $A (pid $QPID) stopped"
a_frozen() { [[ $(vm_field "$A" 'v.get("frozen", False)') == True ]]; }
wait_for 60 "$A frozen" a_frozen || exit 1
log "$A frozen $(( ($(date +%s%N) - t_stop) / 1000000 )) ms after the stop"
connects_before=$(connects)
out=$(timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" set-quota "$A" --min 4 --max 20 --weight 100 2>&1) &&
  rc=0 || rc=$?
log "set-quota $A: rc=$rc: $out"
check "set-quota for a domain whose QEMU hangs accepted" test "$rc" -eq 0
i0=$(intervals)
# B, healthy, is served while A hangs: its metadata change applied
set_meta "$B" '<memory dram-min-mib="4" dram-max-mib="28" weight="100"/>'
t_meta=$(date +%s%N)
b_quota() { [[ $(vm_field "$B" 'v["quota"]["dram-max-mib"]') == 28 ]]; }
wait_for 120 "B's virsh metadata applied while A's QEMU hangs" b_quota &&
  ok "B's virsh metadata applied while A's QEMU hangs ($(( ($(date +%s%N) - t_meta) / 1000000 )) ms)"
# A stays stopped for 80 intervals (>= 40 s: past hmmvd's 15 s deadline and libvirt's 30 s
# job wait), counted; 600 s is a liveness bound
held() { local n; n=$(intervals); ((n >= 0 && n >= i0 + 80)); }
wait_for 600 "80 intervals ran while A's QEMU hangs" held || exit 1
log "A's QEMU stopped for $(( ($(date +%s%N) - t_stop) / 1000000 )) ms; intervals $i0 -> $(intervals)"
kill -0 "$QPID" && check "A's QEMU still stopped" grep -q '^T' <(ps -o stat= -p "$QPID")
check "hmmvd gave its libvirt connection up 0 times while A's QEMU hangs (log 'has not returned in': $(given_up))" test "$(given_up)" -eq 0
check "libvirt's connection not lost ($(lost))" test "$(lost)" -eq 0
check "no new connection to libvirtd ($(connects) connects, $connects_before before)" \
  test "$(connects)" -eq "$connects_before"
meta=$(timeout 30 virsh -q -c "$URI" metadata "$A" --uri "$NS" --live 2>&1 || true)
check "A's quota not written while its QEMU hangs: $meta" \
  eval '! grep -q "dram-max-mib=\"20\"" <<<"$meta"'

# ---- A's QEMU continued ----------------------------------------------------------------------
kill -CONT "$QPID"
t_cont=$(date +%s%N)
QPID=''
log "QEMU of $A continued"
a_written() { timeout 30 virsh -q -c "$URI" metadata "$A" --uri "$NS" --live 2>/dev/null | grep -q 'dram-max-mib="20"'; }
wait_for 120 "A's quota from set-quota written to libvirt after its QEMU answered" a_written &&
  ok "A's quota from set-quota written to libvirt ($(( ($(date +%s%N) - t_cont) / 1000000 )) ms after SIGCONT)"
a_quota() { [[ $(vm_field "$A" 'v["quota"]["dram-max-mib"]') == 20 ]]; }
wait_for 60 "A's quota applied (max 20 MiB)" a_quota && ok "A's quota applied (max 20 MiB)"
wait_for 120 "A managed again" is_managed "$A" && ok "A thawed, managed again"
check "no give-up after A's QEMU continued ($(given_up))" test "$(given_up)" -eq 0
check "hmmvd alive" alive
exit 0
