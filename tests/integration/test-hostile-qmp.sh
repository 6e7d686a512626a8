#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd in standalone mode against fake patched QEMUs whose QMP stream breaks while their
# process lives (review 15, finding 4; tests/integration/fake-hmmv-qemu.py): one answers a
# hmmv-sync with an event that is not JSON (the stream is out of step for good), one closes
# its QMP connection, one stalls past the 2 s deadline (the VM is frozen) and then sends the
# same broken event, beside one that behaves. Before, the first stayed in the core failing
# every interval, the second was listed "gone" and the third stayed frozen, all for as long as
# their QEMU ran. Now each is removed with a warning and connected again from scratch (the
# fake logs a second connection; hmmvd manages and harvests it again), the posted hmmv-stop
# reaches the two whose socket is still open, and the good VM is never touched: one
# connection, never removed or frozen. Counted, not timed.
#
#   test-hostile-qmp.sh HMMVD HMMVCTL
#
# Needs root (the control socket is root-only) and python3. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

. "$(dirname "$0")/hmmvd-lib.sh"
hostile_args "$@"

WORK=$(mktemp -d /tmp/hmmv-qmpbreak.XXXXXX)
declare -A FAKE_PID=()
HMMVD_PID='' FAILED=0
cleanup() {
  [[ -n $HMMVD_PID ]] && kill -9 "$HMMVD_PID" 2>/dev/null && wait "$HMMVD_PID" 2>/dev/null
  for vm in "${!FAKE_PID[@]}"; do
    kill "${FAKE_PID[$vm]}" 2>/dev/null && wait "${FAKE_PID[$vm]}" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

BROKEN=(garbage hangup stallgarbage)
qmp_args=()
for vm in good "${BROKEN[@]}"; do
  attack=$vm; [[ $vm == good ]] && attack=none
  python3 "$HERE/fake-hmmv-qemu.py" "$WORK/$vm.qmp" "$WORK/$vm.log" "$attack" 8 &
  FAKE_PID[$vm]=$!
  qmp_args+=(--qmp "$vm=$WORK/$vm.qmp")
done
for vm in "${!FAKE_PID[@]}"; do wait_socket "$WORK/$vm.qmp" "fake QEMU $vm"; done

cat > "$WORK/hmmvd.conf" <<CONF
[memory]
mover = sim
sim-dram-mib = 32
sim-slow-mib = 128
[libvirt]
reconnect-ms = 1000
CONF
"$HMMVD" --foreground --config "$WORK/hmmvd.conf" --no-libvirt --interval-ms 200 \
  --control-socket "$WORK/hmmvd.sock" "${qmp_args[@]}" > "$WORK/hmmvd.log" 2>&1 &
HMMVD_PID=$!

# counted from the logs: hmmvd's "managed:" lines and the fakes' connections
times_managed() { grep -c "vm $1: managed:" "$WORK/hmmvd.log"; }
connections() { grep -c '^connection' "$WORK/$1.log" 2>/dev/null; }
managed_once() { local v; for v in good "${BROKEN[@]}"; do [[ $(times_managed "$v") -ge 1 ]] || return 1; done; }
attacked() { grep -q "^attack" "$WORK/$1.log" 2>/dev/null; }
all_attacked() { local v; for v in "${BROKEN[@]}"; do attacked "$v" || return 1; done; }
harvested() { [[ $(field "$1" status) == managed && $(field "$1" written-pages) =~ ^[1-9] ]]; }
back() { [[ $(times_managed "$1") -ge 2 && $(connections "$1") -ge 2 ]] && harvested "$1"; }
all_back() { local v; for v in "${BROKEN[@]}"; do back "$v" || return 1; done; }

wait_for 60 "hmmvd manages all four fake QEMUs" managed_once
wait_for 60 "the three QMP streams broke" all_attacked
wait_for 120 "the three VMs are managed again on a new connection, and harvested" all_back
for vm in "${BROKEN[@]}"; do
  line=$(grep -m1 "vm $vm: its QMP connection failed while QEMU pid ${FAKE_PID[$vm]} runs" \
    "$WORK/hmmvd.log")
  [[ -n $line ]] && ok "log: vm $vm${line#*vm $vm}" || fail "no warning for $vm naming pid ${FAKE_PID[$vm]}"
  echo "# $vm: $(connections "$vm") connection(s), managed $(times_managed "$vm") time(s)"
done
grep "vm stallgarbage: its QMP connection failed" "$WORK/hmmvd.log" | grep -q "it was frozen" &&
  grep -q "vm stallgarbage: frozen" "$WORK/hmmvd.log" &&
  ok "stallgarbage was frozen, then removed when its socket failed" ||
  fail "stallgarbage: not frozen first, or not said"
# hmmv-stop is posted when a VM leaves: it reaches a QEMU whose socket is open, out of step
# or not (its first region is stopped before the second connection)
for vm in garbage stallgarbage; do
  if grep -A1 '^stopped' "$WORK/$vm.log" | grep -q '^connection'; then
    ok "$vm: hmmv-stop reached it on the broken connection"
  else
    fail "$vm: no hmmv-stop before it was connected again: $(tr '\n' '|' < "$WORK/$vm.log")"
  fi
done

# the good VM was left alone throughout
[[ $(connections good) -eq 1 ]] && ok "good: one connection" || fail "good: $(connections good) connections"
if grep -qE "vm good: (removed|frozen|its QMP)" "$WORK/hmmvd.log"; then
  fail "good was touched: $(grep -m1 -E 'vm good: (removed|frozen|its QMP)' "$WORK/hmmvd.log")"
else
  ok "good was never removed or frozen"
fi
before=$(intervals)
more() { [[ $(intervals) -ge $((before + 10)) ]]; }
wait_for 60 "hmmvd ran 10 more intervals" more
for vm in good "${BROKEN[@]}"; do
  harvested "$vm" && ok "$vm managed and harvested ($(field "$vm" written-pages) pages)" ||
    fail "$vm: status $(field "$vm" status), written $(field "$vm" written-pages)"
done
kill -0 "$HMMVD_PID" 2>/dev/null && ok "hmmvd alive" || fail "hmmvd died"

stop_hmmvd
verdict
