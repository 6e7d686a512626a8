#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd in standalone mode against fake patched QEMUs that turn on their shared region while
# hmmvd harvests it (issue 10; tests/integration/fake-hmmv-qemu.py): one truncates it (the
# seals hmmvd set must refuse it with EPERM: before them, hmmvd died of SIGBUS ~3 s later),
# one punches a hole over all of it (allowed by the seals: the header reads back as zeros),
# one winds its generation back, beside one that behaves. hmmvd must survive, keep the
# truncating one (nothing changed) and the good one managed and harvested, refuse the other
# two with a log line each, answer `hmmvctl status` throughout and exit 0 on SIGTERM.
# Counted, not timed.
#
#   test-hostile-region.sh HMMVD HMMVCTL
#
# Needs root (the control socket is root-only) and python3. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

. "$(dirname "$0")/hmmvd-lib.sh"
hostile_args "$@"

WORK=$(mktemp -d /tmp/hmmv-region.XXXXXX)
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

qmp_args=()
for vm in good truncate punch rewind; do
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

attacked() { grep -q "^attack" "$WORK/$1.log" 2>/dev/null; }
all_attacked() { attacked truncate && attacked punch && attacked rewind; }
refused() { [[ $(field "$1" status) == "refused: QEMU tampered"* ]]; }
managed() { [[ $(field "$1" status) == managed ]]; }

# the attacks come 8 harvests in (1.6 s): count managed from the log, not from a poll
managed_once() { local v; for v in good truncate punch rewind; do grep -q "vm $v: managed:" "$WORK/hmmvd.log" || return 1; done; }
wait_for 60 "hmmvd manages all four fake QEMUs" managed_once
wait_for 60 "the three attacks happened" all_attacked
for vm in truncate punch rewind; do echo "# $vm: $(grep '^attack' "$WORK/$vm.log")"; done
if grep -q "attack truncate: EPERM EPERM" "$WORK/truncate.log"; then
  ok "the sealed region could neither shrink nor grow (EPERM)"
else
  fail "truncation: $(grep '^attack' "$WORK/truncate.log")"
fi
wait_for 60 "the punched region's VM is refused" refused punch
wait_for 60 "the rewound region's VM is refused" refused rewind
grep -q "vm punch: refused, QEMU tampered with its shared region" "$WORK/hmmvd.log" &&
  ok "log: $(grep -m1 'vm punch: refused' "$WORK/hmmvd.log" | sed 's/^.*vm punch/vm punch/')" ||
  fail "no log line for punch"
grep -q "vm rewind: refused, QEMU tampered with its shared region" "$WORK/hmmvd.log" &&
  ok "log: $(grep -m1 'vm rewind: refused' "$WORK/hmmvd.log" | sed 's/^.*vm rewind/vm rewind/')" ||
  fail "no log line for rewind"

# hmmvd goes on: 10 more intervals, the good and the truncating VM managed and harvested
before=$(intervals)
more() { [[ $(intervals) -ge $((before + 10)) ]]; }
wait_for 60 "hmmvd ran 10 more intervals after the attacks" more
for vm in good truncate; do
  if managed "$vm" && [[ $(field "$vm" written-pages) =~ ^[1-9] ]]; then
    ok "$vm still managed and harvested ($(field "$vm" written-pages) pages written last interval)"
  else
    fail "$vm: status $(field "$vm" status), written $(field "$vm" written-pages)"
  fi
done
kill -0 "$HMMVD_PID" 2>/dev/null && ok "hmmvd alive" || fail "hmmvd died"

stop_hmmvd
verdict
