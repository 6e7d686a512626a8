#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd beside a hung (not dead) libvirtd (suite 'integration', issue 8).
#
#   test-libvirt-hung.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT
#
# Two TCG domains of the patched QEMU under a private libvirtd (libvirt-test-lib.sh, in a private
# mount and PID namespace as test-libvirt.sh), managed by hmmvd. Then libvirtd is stopped with
# SIGSTOP, right after a `virsh metadata` change of B (its event reaches hmmvd, which must ask
# libvirtd for the element), and while it is stopped an `hmmvctl set-quota A` asks hmmvd to
# write A's metadata through libvirt, and the connection is given up (libvirt's keepalive, or
# hmmvd's deadline on a call) and made again: a virConnectOpen to a stopped libvirtd never
# returns. Through the stop the
# control socket and the metrics endpoint must answer every request (counted), intervals must
# go on (counted), and hmmvd must not die. After SIGCONT: A and B managed and run again, B's
# quota from the metadata and A's from set-quota applied (nothing lost).
#
# Nothing is timed: the stop lasts until the connection was given up and 20 more status
# requests were answered or not (or 90 s, a liveness bound); times are printed as figures.
# Every process is stopped by its pid, also on failure (libvirtd gets SIGCONT first).
# Exit 0 pass, 1 fail, 77 skip (with the reason).
set -euo pipefail
# shellcheck source=tests/integration/libvirt-test-lib.sh
. "$(dirname "$0")/libvirt-test-lib.sh"

lvt_args "$@"
DOMAINS=(hmmv-hung-a hmmv-hung-b)
A=${DOMAINS[0]} B=${DOMAINS[1]}
lvt_init it-hung
lvt_start_libvirt "$QEMU" "$GUEST"
lvt_domains_start 64 'mode=workload hot_mib=4 cold_mib=20 report_every=0' "${DOMAINS[@]}"

# The metrics endpoint on a loopback port of the host's network namespace (this test shares
# it): one the kernel found free just now (a fixed or random one may be taken, and hmmvd does
# not start when it cannot listen); one that does not answer before the stop costs only that
# check, said so.
METRICS_PORT=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
lvt_hmmvd_conf 500 64 256 '[metrics]' "listen=127.0.0.1:$METRICS_PORT"
lvt_start_hmmvd "$HMMVD"

metrics_answer() {
  python3 -c 'import sys, urllib.request
sys.exit(0 if b"hmmv" in urllib.request.urlopen(sys.argv[1], timeout=10).read() else 1)' \
    "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null
}

wait_for 120 "both domains managed" all_managed "${DOMAINS[@]}" || exit 1
ok "managed: ${DOMAINS[*]}"
from=$(intervals)
wait_for 60 "both run by interval $from or later" ran_since "$from" "$A" "$B" || exit 1
METRICS=1
metrics_answer || { METRICS=0; log "metrics endpoint on port $METRICS_PORT does not answer before the stop (port taken?): its check is skipped"; }

# ---- libvirtd stopped --------------------------------------------------------------------------
# the connection given up: keepalive's "lost the connection", or hmmvd's deadline on a call
given_up() { log_count "lost the connection\|has not returned in"; }
lost_before=$(given_up)
set_meta "$B" '<memory dram-min-mib="4" dram-max-mib="24" weight="100"/>'
intervals_before=$(intervals)
lvt_sigstop "$LIBVIRTD_PID"
t_stop=$(date +%s%N)
log "libvirtd stopped (SIGSTOP) right after B's metadata change; interval $intervals_before"
# set-quota while libvirtd does not answer: hmmvd must take it without waiting for libvirtd
# (the write waits on hmmvd's libvirt thread), its reply a figure; it runs in the background
# so a hmmvd that waits for libvirtd does not stop the count below.
( t0=$(date +%s%N)
  timeout 120 "$HMMVCTL" --socket "$WORK/hmmvd.sock" set-quota "$A" --min 4 --max 20 --weight 100 \
    >"$WORK/setq.out" 2>&1; echo "rc=$? after $((($(date +%s%N) - t0) / 1000000)) ms" >>"$WORK/setq.out" ) &
SETQ_PID=$!
asked=0 answered=0 worst_ms=0 m_asked=0 m_answered=0 after_lost=0
for ((i = 0; i < 400; i++)); do
  t0=$(date +%s%N)
  asked=$((asked + 1))
  if timeout 10 "$HMMVCTL" --socket "$WORK/hmmvd.sock" status >"$WORK/status.out" 2>&1; then
    answered=$((answered + 1))
  else
    echo "# [$((SECONDS - T0))s] status request $asked not answered (rc $?): $(head -c 300 "$WORK/status.out" | tr '\n' ' ')"
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  ((ms > worst_ms)) && worst_ms=$ms
  if [[ $METRICS -eq 1 && $((i % 5)) -eq 0 ]]; then
    m_asked=$((m_asked + 1))
    metrics_answer && m_answered=$((m_answered + 1))
  fi
  (($(given_up) > lost_before)) && after_lost=$((after_lost + 1))
  ((after_lost >= 20)) && break
  (((($(date +%s%N) - t_stop) / 1000000000) >= 90)) && break   # liveness bound
  sleep 0.2
done
intervals_during=$(intervals)
stop_ms=$((($(date +%s%N) - t_stop) / 1000000))
log "libvirtd stopped for $stop_ms ms (a figure); the connection given up: $((after_lost > 0)) ($(grep -c 'lost the connection' "$WORK/hmmvd.log" || true) by keepalive, $(grep -c 'has not returned in' "$WORK/hmmvd.log" || true) by hmmvd's deadline)"
check "libvirtd stopped: hmmvctl status answered $answered of $asked times (slowest $worst_ms ms, a figure)" \
  test "$answered" -eq "$asked"
if [[ $METRICS -eq 1 ]]; then
  check "libvirtd stopped: the metrics endpoint answered $m_answered of $m_asked scrapes" \
    test "$m_answered" -eq "$m_asked"
fi
check "libvirtd stopped: hmmvd ran $((intervals_during - intervals_before)) intervals meanwhile (at least 5)" \
  test "$intervals_during" -ge $((intervals_before + 5))
check "libvirtd stopped: the connection was given up and hmmvd went on (20 status requests after)" \
  test "$after_lost" -ge 20
check "libvirtd stopped: hmmvd alive" alive
lvt_sigcont_all
t_cont=$(date +%s%N)
log "libvirtd continued (SIGCONT)"
wait "$SETQ_PID" || true
log "hmmvctl set-quota $A during the stop: $(tr '\n' ' ' <"$WORK/setq.out")"
check "set-quota during the stop was accepted" grep -q "rc=0 " "$WORK/setq.out"

# ---- libvirtd answers again: everything managed, nothing lost ------------------------------------
wait_for 120 "hmmvd connected to libvirtd again" \
  eval '(( $(log_count "libvirt: connected to") >= 2 ))' &&
  ok "reconnected $((($(date +%s%N) - t_cont) / 1000000)) ms after SIGCONT (a figure)"
wait_for 120 "$A and $B managed again" all_managed "$A" "$B" &&
  ok "$A and $B managed again $((($(date +%s%N) - t_cont) / 1000000)) ms after SIGCONT (a figure)"
from=$(intervals)
wait_for 120 "$A and $B run by interval $from or later" ran_since "$from" "$A" "$B" &&
  ok "$A and $B run by interval $from or later"
b_quota() { [[ $(vm_field "$B" 'v["quota"]["dram-max-mib"]') == 24 ]]; }
wait_for 60 "B's quota from virsh metadata before the stop applied (max 24 MiB)" b_quota &&
  ok "B's quota from virsh metadata before the stop applied (max 24 MiB)"
a_quota() { [[ $(vm_field "$A" 'v["quota"]["dram-max-mib"]') == 20 ]]; }
wait_for 60 "A's quota from set-quota during the stop applied (max 20 MiB)" a_quota &&
  ok "A's quota from set-quota during the stop applied (max 20 MiB)"
meta=$(virsh -q -c "$URI" metadata "$A" --uri "$NS" --live 2>/dev/null | tr -d '\n' || true)
check "A's set-quota is in libvirt's metadata: $meta" grep -q 'dram-max-mib="20"' <<<"$meta"
check "hmmvd alive at the end" alive
log "hmmvd log: $(log_count 'has not returned in') libvirt calls past hmmvd's deadline, $(log_count 'lost the connection') connections lost to keepalive"
