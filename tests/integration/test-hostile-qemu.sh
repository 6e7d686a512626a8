#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd in standalone mode against a hostile QEMU that answers no command but trickles an
# event every 200 ms (issue 10, item 3; tests/integration/fake-qemu.py). It was there at
# start-up, hmmvd never finished starting; connected later, it froze the interval loop, the
# control socket and SIGTERM. Checks: hmmvd answers `hmmvctl status` while the fake QEMU is
# connected, lists the VM as not managed with a missed deadline as the reason, retries it
# (counted connections), and exits 0 on SIGTERM. Times are printed as figures, not asserted.
#
#   test-hostile-qemu.sh HMMVD HMMVCTL
#
# Needs root (the control socket is root-only) and python3. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

. "$(dirname "$0")/hmmvd-lib.sh"
hostile_args "$@"

WORK=$(mktemp -d /tmp/hmmv-hostile.XXXXXX)
FAKE_PID='' HMMVD_PID='' FAILED=0
cleanup() {
  [[ -n $HMMVD_PID ]] && kill -9 "$HMMVD_PID" 2>/dev/null && wait "$HMMVD_PID" 2>/dev/null
  [[ -n $FAKE_PID ]] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 "$HERE/fake-qemu.py" "$WORK/slow.qmp" "$WORK/connections" 0.2 &
FAKE_PID=$!
wait_socket "$WORK/slow.qmp" "the fake QEMU"

cat > "$WORK/hmmvd.conf" <<CONF
[memory]
mover = sim
sim-dram-mib = 128
sim-slow-mib = 512
[libvirt]
reconnect-ms = 1000
CONF
start_ns=$(date +%s%N)
"$HMMVD" --foreground --config "$WORK/hmmvd.conf" --no-libvirt --interval-ms 300 \
  --control-socket "$WORK/hmmvd.sock" --qmp "slow=$WORK/slow.qmp" > "$WORK/hmmvd.log" 2>&1 &
HMMVD_PID=$!

# status answers while the fake QEMU is connected and trickling (60 s: liveness only)
answered=0 first_ms=''
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  if ctl status > "$WORK/status" 2>/dev/null; then
    answered=$((answered + 1))
    [[ -n $first_ms ]] || first_ms=$((($(date +%s%N) - start_ns) / 1000000))
    ((answered >= 5)) && break
  fi
  sleep 0.5
done
if ((answered >= 5)); then
  ok "hmmvctl status answered 5 times while the QEMU trickled (first after ${first_ms} ms)"
else
  fail "hmmvctl status answered $answered times in 60 s"
fi

reason() { field slow status; }
# each exchange's deadline, or the start-up's, whichever comes first
timed_out() { [[ $1 == *"did not answer in time"* || $1 == *"did not complete start-up"* ]]; }
until timed_out "$(reason)" || ((SECONDS >= deadline + 60)); do
  sleep 0.5
done
status=$(reason)
if timed_out "$status"; then
  ok "the VM is listed as not managed: $status"
else
  fail "the VM's status is: $status"
fi
until (($(wc -l < "$WORK/connections") >= 2)) || ((SECONDS >= deadline + 120)); do sleep 0.5; done
n=$(wc -l < "$WORK/connections")
if ((n >= 2)); then ok "the VM was tried again ($n connections)"; else fail "$n connections"; fi

stop_hmmvd
verdict
