#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# libvirtd refuses set-quota's metadata write while hmmvd is connected (suite 'integration',
# issue 8, review 17 finding 3).
#
#   test-libvirt-refused-write.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT
#
# Two TCG domains of the patched QEMU under a private libvirtd (libvirt-test-lib.sh, in a
# private mount and PID namespace as test-libvirt.sh). hmmvd connects through libvirtd's read-only
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
# shellcheck source=tests/integration/libvirt-test-lib.sh
. "$(dirname "$0")/libvirt-test-lib.sh"

lvt_args "$@"
DOMAINS=(hmmv-ro-a hmmv-ro-b)
A=${DOMAINS[0]} B=${DOMAINS[1]}
lvt_init it-rowrite
RO_SOCKET=/run/libvirt/libvirt-sock-ro
RO_URI="qemu+unix:///system?socket=$RO_SOCKET"
lvt_start_libvirt "$QEMU" "$GUEST"
[[ -S $RO_SOCKET ]] || skip "libvirtd made no read-only socket ($RO_SOCKET)"
lvt_domains_start 64 'mode=workload hot_mib=4 cold_mib=20 report_every=0' "${DOMAINS[@]}"

set_meta_on() {   # set_meta_on URI DOMAIN ELEMENT
  virsh -q -c "$1" metadata "$2" --uri "$NS" --key hmmv --live --config --set "$3"
}
libvirt_meta() { virsh -q -c "$URI" metadata "$1" --uri "$NS" --live 2>/dev/null | tr -d '\n' || true; }

# The premise: libvirtd's read-only socket refuses a metadata write (virsh on it, as hmmvd
# will be); nothing written.
if out=$(set_meta_on "$RO_URI" "$A" '<memory dram-max-mib="12"/>' 2>&1); then
  fail "the read-only socket took a metadata write: the test proves nothing"; exit 1
fi
check "premise: libvirtd's read-only socket refuses virDomainSetMetadata: ${out//$'\n'/ }" \
  grep -q "read only access prevents virDomainSetMetadata" <<<"$out"

URI=$RO_URI lvt_hmmvd_conf 500 64 256
lvt_start_hmmvd "$HMMVD"

ctl30() { timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" "$@"; }
# listed, its start-up over (refused too: no QMP through a read-only connection)
settled() { local s; s=$(vm_field "$1" 'v["status"]'); [[ $s != '<'* && $s != starting* ]]; }
quota_max() { vm_field "$1" 'v["quota"].get("dram-max-mib")'; }
quota_error() { vm_field "$1" 'v.get("quota-error") or ""'; }
intervals_past() { local n; n=$(intervals); ((n >= $1)); }
connects() { log_count "libvirt: connected to"; }
both_settled() { settled "$A" && settled "$B"; }

wait_for 120 "hmmvd connected through the read-only socket" eval '(( $(connects) >= 1 ))' || exit 1
wait_for 120 "$A and $B discovered" both_settled || exit 1
log "listed: $A: $(vm_field "$A" 'v["status"]'); $B: $(vm_field "$B" 'v["status"]')"

# B's quota from the operator (virsh, read-write socket): the event reaches hmmvd through its
# read-only connection, which reads the element.
set_meta "$B" '<memory dram-min-mib="4" dram-max-mib="24" weight="100"/>'
wait_for 60 "B's quota from virsh metadata applied (max 24 MiB)" eval '[[ $(quota_max "$B") == 24 ]]' &&
  ok "B's quota from virsh metadata applied (max 24 MiB)"
a_before=$(quota_max "$A")
a_meta_before=$(libvirt_meta "$A")
log "A's quota in hmmvd before: max $a_before MiB; A's element in libvirt: '${a_meta_before}'"

# ---- set-quota A: libvirtd refuses the write ------------------------------------------------------
t0=$(date +%s%N)
if out=$(ctl30 set-quota "$A" --min 4 --max 20 --weight 100 2>&1); then
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
vms_text=$(ctl30 vms 2>&1 || true)
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
check "connected once ($(connects))" test "$(connects)" -eq 1
check "hmmvctl status answered" ctl30 status >/dev/null

# ---- hmmvd keeps serving: the operator's later change of A reaches it ---------------------------
set_meta "$A" '<memory dram-min-mib="4" dram-max-mib="28" weight="100"/>'
wait_for 60 "A's later quota from virsh metadata applied (max 28 MiB)" eval '[[ $(quota_max "$A") == 28 ]]' &&
  ok "A's later quota from virsh metadata applied (max 28 MiB)"
wait_for 60 "A's quota error cleared by the good quota" eval '[[ -z $(quota_error "$A") ]]' &&
  ok "A's quota error cleared by the good quota"
check "hmmvd alive at the end" alive
