#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd in standalone mode against fake patched QEMUs whose QMP stream breaks while their
# process lives (review 15, finding 4; review 17b, findings C and E; tests/integration/
# fake-hmmv-qemu.py): one answers a hmmv-sync with an event that is not JSON (the stream is out
# of step for good), one closes its QMP connection, one stalls past the 2 s deadline (the VM is
# frozen) and then sends the same broken event, beside one that behaves. Before, the first
# stayed in the core failing every interval, the second was listed "gone" and the third stayed
# frozen, all for as long as their QEMU ran. Now each is removed with a warning and connected
# again from scratch (the fake logs a second connection; hmmvd manages and harvests it again),
# the new start-up takes the old export over (the fake, as QEMU, runs one export at a time and
# drops the commands it has not run when hmmvd closes the connection, so the hmmv-stop posted
# on a broken connection may never run), and the good VM is never touched: one connection,
# never removed or frozen.
#
# A fifth fake breaks every connection at its 2nd hmmv-sync. Before, hmmvd connected it again
# every reconnect-ms (1 s here), forever, warning each time; now each break in a row doubles
# the wait (1, 2, 4, 8 s ...; at most 60 s), warned once, then counted at g_message. Checked
# from the logs: one warning, the announced waits doubling, and its connections within what
# that backoff allows in the test's elapsed time (log2-ish; before: about one per 2 s). Then
# that QEMU exits (it is dropped as before) and one started again on its socket is managed.
# A sixth closes its QMP connection at its 2nd hmmv-sync on every connection: the interval's
# harvest sees that first, the VM leaves the core as gone, and it backs off the same way. Its
# DRAM stays held while it is out (the status's held-dram-pages; review 18b, F2 part b:
# before, a VM found gone by the harvest left without a hold, its DRAM lent to the others). It
# exits right after a break, during a wait of several checks: its exit is seen at the next
# check ("QEMU pid N is gone") and a QEMU started again on the socket is managed without
# waiting the rest out (review 18b, F2: before, nothing looked at that QEMU until the wait
# ended, up to 60 s, and no "gone" line came).
#
# Review 19, F7. A seventh, late, breaks its connection 15 checks (counted by counter, below)
# after each of its first 4 start-ups, past the old end of a streak (10 checks in a row
# managed): before, each break ended a streak of 1 and the next wait was 1 s again, a start-up
# every ~16 s for ever (waits 1, 1, 1, 1); now a streak ends only after the longest wait (60
# checks), so its waits double (1, 2, 4, 8). The test tells it when to break (SIGUSR1), so its
# connections last 15 checks however loaded the machine (review 19b, F3: a break at its 75th
# hmmv-sync came after more than 60 checks when the intervals lag). An eighth, refuse, answers every hmmv-start with
# an error: before, a start-up every check for ever; now the n-th failed start-up in a row
# waits as the n-th break does, the status says so, and a QEMU started again on its socket is
# tried at once. A ninth, counter, closes each connection before its greeting (nobody serves:
# not backed off), so its connections count hmmvd's checks: the other bounds are counted
# against them.
#
# Review 19b, F1. A tenth, paused, is SIGSTOPped while it listens, before hmmvd starts: a QEMU
# still in its init (preallocating its memory, -S, paused) that accepts no connection and
# sends no greeting yet. Before, each such failed start-up was backed off as a refusal, so once
# it was resumed it waited up to 60 s (16 checks after 5 failures); now a start-up that read no
# greeting is tried at every check: it is resumed after 5 failures in a row (or 20 checks), and
# managed within 3 checks. F2. An eleventh, capsfail, greets and refuses qmp_capabilities (a
# failure after the greeting: backed off). Killed after its 5th failure in a row (a wait of 16
# checks), its exit is seen at the next check, and one started again on the same path is
# managed within 4 checks. Before, such a failure left QEMU's pid unknown (read after the
# handshake only), so only another inode at the path ended the wait, and ext4 often hands the
# same one out again: the whole wait went by.
# Counted, not timed: times are printed as figures.
#
#   test-hostile-qmp.sh HMMVD HMMVCTL
#
# Needs root (the control socket is root-only) and python3. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

. "$(dirname "$0")/hmmvd-lib.sh"
hostile_args "$@"

WORK=$(mktemp -d /tmp/hmmv-qmpbreak.XXXXXX)
declare -A FAKE_PID=()
HMMVD_PID='' FAILED=0 LATE_DRIVER=
cleanup() {
  [[ -n $HMMVD_PID ]] && kill -9 "$HMMVD_PID" 2>/dev/null && wait "$HMMVD_PID" 2>/dev/null
  [[ -n $LATE_DRIVER ]] && kill "$LATE_DRIVER" 2>/dev/null && wait "$LATE_DRIVER" 2>/dev/null
  for vm in "${!FAKE_PID[@]}"; do
    kill -CONT "${FAKE_PID[$vm]}" 2>/dev/null   # paused: a stopped process ignores SIGTERM
    kill "${FAKE_PID[$vm]}" 2>/dev/null && wait "${FAKE_PID[$vm]}" 2>/dev/null
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

BROKEN=(garbage hangup stallgarbage)
START_NS=$(date +%s%N)
qmp_args=()
for vm in good "${BROKEN[@]}" repeat rehang late refuse counter paused capsfail; do
  case $vm in
    good|paused) args=(none 8) ;;
    repeat) args=(garbage 2 every) ;;
    rehang) args=(hangup 2 every) ;;
    late) args=(garbage usr1) ;;
    refuse) args=(refuse) ;;
    counter) args=(slam) ;;
    capsfail) args=(capsfail) ;;
    *) args=("$vm" 8) ;;
  esac
  python3 "$HERE/fake-hmmv-qemu.py" "$WORK/$vm.qmp" "$WORK/$vm.log" "${args[@]}" &
  FAKE_PID[$vm]=$!
  qmp_args+=(--qmp "$vm=$WORK/$vm.qmp")
done
for vm in "${!FAKE_PID[@]}"; do wait_socket "$WORK/$vm.qmp" "fake QEMU $vm"; done
# paused: stopped once it listens (its socket file is there from bind(), before listen())
for _ in $(seq 100); do grep -q '^listening' "$WORK/paused.log" 2>/dev/null && break; sleep 0.1; done
kill -STOP "${FAKE_PID[paused]}"

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
# counter: nobody serves its socket, so hmmvd tries it at every check (not backed off): its
# connections count hmmvd's checks (at most one a check; fewer when a try is still under way)
checks() { connections counter; }

# late: told to break (SIGUSR1: at its next hmmv-sync) 15 checks after each of its first 4
# start-ups, in the background while the rest goes on (review 19b, F3)
late_driver() {
  local i k
  for i in 1 2 3 4; do
    until (($(grep -c '^started on connection' "$WORK/late.log") >= i)); do sleep 0.2; done
    k=$(checks)
    until (($(checks) >= k + 15)); do sleep 0.2; done
    kill -USR1 "${FAKE_PID[late]}"
    until (($(grep -c '^attack' "$WORK/late.log") >= i)); do sleep 0.2; done
  done
}
late_driver &
LATE_DRIVER=$!
# mono: CLOCK_MONOTONIC now (the fakes stamp their lines with it); checks_between T0 T1: the
# checks (counter's connections) stamped after T0 and before T1; started_at LOG: the stamp of
# the fake's first export started (the last step of hmmvd's start-up), '' before
mono() { python3 -c 'import time; print("%.6f" % time.monotonic())'; }
checks_between() {
  python3 - "$WORK/counter.log" "$1" "$2" <<'PY'
import re, sys
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
stamps = [float(m[1]) for m in (re.match(r'connection \d+ at ([0-9.]+)', l) for l in open(sys.argv[1])) if m]
print(sum(t0 < t < t1 for t in stamps))
PY
}
started_at() { grep -m1 -oE '^started on connection [0-9]+ at [0-9.]+' "$1" 2>/dev/null | grep -oE '[0-9.]+$'; }
managed_once() { local v; for v in good "${BROKEN[@]}" repeat; do [[ $(times_managed "$v") -ge 1 ]] || return 1; done; }
attacked() { grep -q "^attack" "$WORK/$1.log" 2>/dev/null; }
all_attacked() { local v; for v in "${BROKEN[@]}"; do attacked "$v" || return 1; done; }
harvested() { [[ $(field "$1" status) == managed && $(field "$1" written-pages) =~ ^[1-9] ]]; }
back() { [[ $(times_managed "$1") -ge 2 && $(connections "$1") -ge 2 ]] && harvested "$1"; }
all_back() { local v; for v in "${BROKEN[@]}"; do back "$v" || return 1; done; }

wait_for 60 "hmmvd manages all four fake QEMUs" managed_once

# paused (review 19b, F1): resumed after its 5th failed start-up in a row as hmmvd logs them
# when backed off, or after 20 checks when they are not; managed within 3 checks
k_start=$(checks)
paused_long() { grep -q "vm paused: start-up failed again (5 times" "$WORK/hmmvd.log" || (($(checks) >= k_start + 20)); }
wait_for 120 "paused failed 5 start-ups in a row, or 20 checks went by" paused_long
pstatus=$(field paused status)
echo "# paused: $(($(checks) - k_start)) checks while stopped; $(grep -c "vm paused: start-up failed again" "$WORK/hmmvd.log") 'failed again' lines; status: $pstatus"
[[ $pstatus == *"(retrying every 1000 ms)" ]] &&
  ok "paused: listening without a greeting is not backed off" ||
  fail "paused: status while stopped '$pstatus'"
t0=$(mono)
kill -CONT "${FAKE_PID[paused]}"
pstarted() { [[ -n $(started_at "$WORK/paused.log") ]]; }
wait_for 120 "paused managed once resumed" pstarted
n=$(checks_between "$t0" "$(started_at "$WORK/paused.log")")
((n <= 3)) && ok "paused managed $n checks after it was resumed (at most 3)" ||
  fail "paused managed $n checks after it was resumed (more than 3)"

# capsfail (review 19b, F2): killed right after its 5th failure in a row (a wait of 16 checks
# begins), its socket file left as it was: its exit is seen (its pid is known from the failed
# start-ups; the file alone says nothing), and one started again on the same path is managed
# within 4 checks of its socket
cfifth() { grep -q "vm capsfail: start-up failed again (5 times" "$WORK/hmmvd.log"; }
wait_for 120 "capsfail failed 5 start-ups in a row" cfifth
grep "vm capsfail: start-up failed again" "$WORK/hmmvd.log" | sed 's/^.*vm capsfail/# capsfail/'
old_pid=${FAKE_PID[capsfail]} ino0=$(stat -c %i "$WORK/capsfail.qmp")
kill "$old_pid" && wait "$old_pid" 2>/dev/null
unset 'FAKE_PID[capsfail]'
cgone() { grep -q "vm capsfail: after 5 failed start-up(s) in a row, that QEMU is gone" "$WORK/hmmvd.log"; }
wait_for 30 "capsfail's exit seen during its wait (its pid known)" cgone
python3 "$HERE/fake-hmmv-qemu.py" "$WORK/capsfail.qmp" "$WORK/capsfail-again.log" none 8 &
FAKE_PID[capsfail]=$!
cstarted() { [[ -n $(started_at "$WORK/capsfail-again.log") ]]; }
wait_for 120 "capsfail's new QEMU managed" cstarted
t0=$(grep -m1 -oE '^listening at [0-9.]+' "$WORK/capsfail-again.log" | grep -oE '[0-9.]+$')
n=$(checks_between "$t0" "$(started_at "$WORK/capsfail-again.log")")
echo "# capsfail: socket inode $ino0 -> $(stat -c %i "$WORK/capsfail.qmp") (a figure: the inode may be the same)"
((n <= 4)) && ok "capsfail's new QEMU managed $n checks after its socket listened (at most 4; the wait then: 16)" ||
  fail "capsfail's new QEMU managed $n checks after its socket listened (more than 4)"
wait_for 60 "capsfail's new QEMU harvested" harvested capsfail
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
# Each new start-up took the old export over: the fake (as QEMU) refuses hmmv-start while an
# export is active, so each start after the first needs the export before it stopped, on its
# own connection (the posted hmmv-stop ran before the close was seen) or by the next start-up's
# hmmv-stop. Which one is a race (QEMU too runs the first command before a close, or not).
exports() {
  python3 - "$WORK/$1.log" <<'PY'
import re, sys
active, starts, own, over, bad = None, 0, 0, 0, []
for line in open(sys.argv[1]):
    m = re.match(r'started on connection (\d+)', line)
    if m:
        if active is not None:
            bad.append('started on %s while the export of %s was active' % (m[1], active))
        active, starts = m[1], starts + 1
    m = re.match(r'stopped on connection (\d+) \(export of connection (\d+)\)', line)
    if m:
        if m[2] != active:
            bad.append('stopped the export of %s, active was %s' % (m[2], active))
        own, over = own + (m[1] == m[2]), over + (m[1] != m[2])
        active = None
    if line.startswith('start refused'):
        bad.append(line.strip())
print(starts, own, over, '; '.join(bad) or '-')
PY
}
for vm in "${BROKEN[@]}"; do
  read -r starts own over bad < <(exports "$vm")
  if [[ $starts -ge 2 && $bad == - && $((own + over)) -ge $((starts - 1)) ]]; then
    ok "$vm: $starts exports started, each old one stopped first ($own on its own connection, $over taken over by the next start-up)"
  else
    fail "$vm: exports: $starts started, $own stopped on their connection, $over taken over: $bad"
  fi
  grep -q "^closed on connection" "$WORK/$vm.log" &&
    echo "# $vm: $(grep -m1 '^closed on connection' "$WORK/$vm.log")"
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

# repeat: backed off. Its 5th break in a row announces a wait of 16 s: by then it has waited
# 1 + 2 + 4 + 8 s at least.
agains() { grep -c "vm repeat: its QMP connection failed again" "$WORK/hmmvd.log"; }
breaks() { grep -c "vm repeat: its QMP connection failed" "$WORK/hmmvd.log"; }
fifth() { [[ $(breaks) -ge 5 ]]; }
wait_for 300 "repeat broke 5 times in a row" fifth
elapsed=$(python3 -c 'import sys; print("%.1f" % ((int(sys.argv[1]) - int(sys.argv[2])) / 1e9))' \
  "$(date +%s%N)" "$START_NS")
conns=$(connections repeat)
warned=$(grep -c "vm repeat: its QMP connection failed while" "$WORK/hmmvd.log")
# the warnings' reasons, in order: a warning comes again only when the reason changed
same=$(grep -oE "vm repeat: its QMP connection failed while QEMU pid [0-9]+ runs \(.*\): removed" \
  "$WORK/hmmvd.log" | uniq -d | wc -l)
waits=$(grep -oE "vm repeat: its QMP connection failed .*(connecting again in|next try in) [0-9.]+ s" \
  "$WORK/hmmvd.log" | grep -oE "[0-9.]+ s$" | tr -d ' s' | tr '\n' ' ')
echo "# repeat: $conns connections in ${elapsed} s, $warned warning(s), $(agains) repeats, waits (s): $waits"
grep -m3 "vm repeat: not managed:" "$WORK/hmmvd.log" | sed 's/^/# /' 
[[ $warned -ge 1 && $same -eq 0 ]] && ok "repeat: warned $warned time(s), never twice in a row for one reason" ||
  fail "repeat: $warned warnings, $same repeated with the same reason"
python3 - "$waits" <<'PY' && ok "repeat: each break in a row doubled the wait" || fail "repeat: waits $waits"
import sys
waits = [float(w) for w in sys.argv[1].split()]
sys.exit(not (len(waits) >= 5 and all(w == min(2.0 ** i, 60.0) for i, w in enumerate(waits))))
PY
# Tries the backoff allows in the elapsed time (plus one per start-up that failed, e.g. past
# its deadline at high load: retried at the next check): the k-th try after the first break comes
# 1 + 2 + ... + 2^(k-1) s after it at the earliest (each wait at least that many 1 s checks;
# 0.5 s more for the checks' timer slack), and the first break is after the start of the test.
# Without the backoff: about one try per start-up and reconnect-ms (~1.5-3 s).
allowed=$(python3 -c '
import sys
e, k, t = float(sys.argv[1]) + 0.5, 0, 0.0
while t + min(2.0 ** k, 60.0) <= e:
    t += min(2.0 ** k, 60.0); k += 1
print(k + 1)' "$elapsed")
# failed start-ups: hmmvd logs a repeated identical failure only once (note_failure), so also
# count the fake's connections that never started an export (review 18b, F3); the larger wins
failed=$(grep -c "vm repeat: not managed:" "$WORK/hmmvd.log")
unstarted=$((conns - $(grep -c '^started on connection' "$WORK/repeat.log")))
((unstarted > failed)) && failed=$unstarted
allowed=$((allowed + failed)) announced=$(($(breaks) + failed + 1))
[[ $conns -le $allowed && $conns -le $announced ]] &&
  ok "repeat: $conns connections, at most $allowed in ${elapsed} s with the backoff, each try announced" ||
  fail "repeat: $conns connections in ${elapsed} s: more than the backoff allows ($allowed) or than announced ($announced)"

# its QEMU exits: dropped as before (the core's hold on its DRAM ends); one started again on
# the socket is connected without the backoff and managed
old_pid=${FAKE_PID[repeat]}
kill "$old_pid" && wait "$old_pid" 2>/dev/null
unset 'FAKE_PID[repeat]'
gone() { grep -q "vm repeat: QEMU pid $old_pid is gone" "$WORK/hmmvd.log"; }
wait_for 60 "repeat's QEMU exit seen" gone
restart_ns=$(date +%s%N)
python3 "$HERE/fake-hmmv-qemu.py" "$WORK/repeat.qmp" "$WORK/repeat-again.log" none 8 &
FAKE_PID[repeat]=$!
managed_again() { [[ $(field repeat pid) == "${FAKE_PID[repeat]}" ]] && harvested repeat; }
wait_for 120 "repeat's new QEMU managed and harvested" managed_again &&
  echo "# repeat's new QEMU managed $((($(date +%s%N) - restart_ns) / 1000000)) ms after it started (a figure)"

# rehang: exits right after its next break (a wait of >= 2 checks then: its breaks in a row
# are >= 2 by now), seen as gone during the wait; a new QEMU on its socket managed
rbreaks() { grep -c "vm rehang: its QMP connection failed" "$WORK/hmmvd.log"; }
wait_for 120 "rehang broke 2 times in a row" eval '(($(rbreaks) >= 2))'
# found gone by the harvest, out of the core: its DRAM still counted (status: rehang's own
# entry in "holds", that QEMU's pid, not the pool's total another VM's hold could make;
# the holds' held-dram-pages is part of held-outside-pages, one snapshot)
held_pages() {
  ctl --json status 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
own = [h for h in s["holds"] if h["name"] == "rehang" and h["pid"] == int(sys.argv[1])]
print(own[0]["dram-pages"] if own else "none", len(own), s["held-dram-pages"], s["held-outside-pages"])' "$1"
}
rheld() {
  [[ $(field rehang in-core) != True ]] &&
    read -r held entries total outside < <(held_pages "${FAKE_PID[rehang]}") &&
    [[ $held =~ ^[1-9] && $entries == 1 && $total -ge $held && $outside -ge $total ]]
}
held=0 entries=0 total=0 outside=0
wait_for 60 "rehang's DRAM held while it is out of the core" rheld &&
  ok "rehang out of the core: its hold (pid ${FAKE_PID[rehang]}) $held pages; held-dram-pages $total, held-outside-pages $outside"
grep -q "vm rehang: its QMP connection closed .*; QEMU pid ${FAKE_PID[rehang]} may still run: its DRAM stays counted" "$WORK/hmmvd.log" &&
  ok "rehang found gone by the harvest, its DRAM held" ||
  fail "rehang: no hold when the harvest found it gone"
n=$(rbreaks)
wait_for 120 "rehang broke once more" eval '(($(rbreaks) > n))'
old_pid=${FAKE_PID[rehang]}
kill "$old_pid" && wait "$old_pid" 2>/dev/null
unset 'FAKE_PID[rehang]'
echo "# rehang: killed after break $((n + 1)): $(grep -oE "vm rehang: its QMP connection failed .*(connecting again in|next try in) [0-9.]+ s" \
  "$WORK/hmmvd.log" | tail -n 1 | grep -oE "[0-9.]+ s$")"
rgone() { grep -q "vm rehang: QEMU pid $old_pid is gone; waiting for it" "$WORK/hmmvd.log"; }
wait_for 60 "rehang's QEMU exit seen during its backoff wait" rgone
read -r held entries total outside < <(held_pages "$old_pid")
[[ $held == none && $entries == 0 ]] && ok "rehang's hold ended with its QEMU" ||
  fail "rehang's QEMU (pid $old_pid) is gone, yet its hold is listed: $held pages"
python3 "$HERE/fake-hmmv-qemu.py" "$WORK/rehang.qmp" "$WORK/rehang-again.log" none 8 &
FAKE_PID[rehang]=$!
rmanaged() { [[ $(field rehang pid) == "${FAKE_PID[rehang]}" ]] && harvested rehang; }
wait_for 120 "rehang's new QEMU managed and harvested" rmanaged

# tries the doubling allows in N checks: at check 0, then after 1, 2, 4, ... (at most 60)
doubling_tries() {
  python3 -c '
import sys
n, k, t = int(sys.argv[1]), 0, 0
while True:
    t += min(2 ** k, 60); k += 1
    if t > n: break
print(k)' "$1"
}

# refuse: every start-up fails; the n-th in a row waits 2^(n-1) checks. Killed right after
# its 7th (a wait of 60 checks begins), a QEMU started again on its socket is tried at once.
refusals() { grep -c '^start refused on connection .*(refuse)' "$WORK/refuse.log" 2>/dev/null; }
wait_for 400 "refuse failed 6 start-ups" eval '(($(refusals) >= 6))'
r=$(refusals)
one_more() { (($(refusals) > r)); }
wait_for 400 "refuse failed one more start-up" one_more
old_pid=${FAKE_PID[refuse]}
kill "$old_pid" && wait "$old_pid" 2>/dev/null
unset 'FAKE_PID[refuse]'
k0=$(checks) r_now=$(refusals) conns=$(connections refuse)
python3 "$HERE/fake-hmmv-qemu.py" "$WORK/refuse.qmp" "$WORK/refuse-again.log" none 8 &
FAKE_PID[refuse]=$!
fmanaged() { [[ $(field refuse pid) == "${FAKE_PID[refuse]}" ]] && harvested refuse; }
wait_for 120 "refuse's new QEMU managed and harvested" fmanaged
k1=$(checks)
grep "vm refuse: after" "$WORK/hmmvd.log" | sed 's/^/# /'
((k1 - k0 <= 12)) && ok "refuse's new QEMU managed $((k1 - k0)) checks after its start, killed after failure $r_now (at most 12; the wait then: 60)" ||
  fail "refuse's new QEMU managed $((k1 - k0)) checks after its start (more than 12)"
# the checks (counter's connections) between each failed start-up and the next: the wait
# after the n-th is 2^(n-1) checks; asserted a quarter of it (the counter misses a check when
# its try is still under way at the next, at high load); without the backoff: 0-1 each
gaps=$(python3 - "$WORK/refuse.log" "$WORK/counter.log" <<'PY'
import re, sys
times = lambda path, pattern: [float(m[1]) for m in (re.match(pattern, l) for l in open(path)) if m]
refused = times(sys.argv[1], r'start refused on connection \d+ \(refuse\) at ([0-9.]+)')
checks = times(sys.argv[2], r'connection \d+ at ([0-9.]+)')
print(' '.join(str(sum(a < c < b for c in checks)) for a, b in zip(refused, refused[1:])))
PY
)
echo "# refuse: $conns connections, $r_now start-ups refused over $k0 checks (counter); checks between failures in a row: $gaps"
python3 - "$gaps" <<'PY' && ok "refuse: failed start-ups in a row backed off (checks between them: $gaps)" || fail "refuse: checks between failed start-ups: $gaps"
import sys
gaps = [int(g) for g in sys.argv[1].split()]
sys.exit(not (len(gaps) >= 6 and all(g >= min(2 ** n, 60) // 4 for n, g in enumerate(gaps))))
PY
allowed=$(($(doubling_tries $((2 * k0 + 2))) + 1))
[[ $conns -le $allowed ]] && ok "refuse: $conns connections over $k0 checks, at most $allowed with the backoff" ||
  fail "refuse: $conns connections over $k0 checks: more than the backoff allows ($allowed)"
# "failed again (N times in a row) ...: next try in T s", as N:T
rwaits=$(grep -oE "vm refuse: start-up failed again \([0-9]+ times in a row\).*next try in [0-9.]+ s" \
  "$WORK/hmmvd.log" | sed -E 's/.*\(([0-9]+) times.*next try in ([0-9.]+) s/\1:\2/' | tr '\n' ' ')
python3 - "$rwaits" <<'PY' && ok "refuse: each failed start-up in a row announced the doubled wait ($rwaits)" || fail "refuse: waits $rwaits"
import sys
waits = [(int(n), float(w)) for n, w in (x.split(':') for x in sys.argv[1].split())]
sys.exit(not (len(waits) >= 5 and all(w == min(2.0 ** (n - 1), 60.0) for n, w in waits)))
PY
grep -m1 "vm refuse: not managed:" "$WORK/hmmvd.log" | grep -q "(retrying after 1000 ms, the wait doubling with each failure in a row, at most 60 s)" &&
  ok "refuse: status '$(grep -m1 "vm refuse: not managed:" "$WORK/hmmvd.log" | sed 's/.*not managed: //')'" ||
  fail "refuse: status $(grep -m1 "vm refuse: not managed:" "$WORK/hmmvd.log")"
# every status counter had said it is tried at each check (its "not managed" lines: a
# starved try may say "timed out" instead of "closed", never backed off; review 19b, F4)
cstatus=$(grep "vm counter: not managed:" "$WORK/hmmvd.log" | sed 's/.*not managed: //')
[[ -n $cstatus ]] && ! grep -qv "(retrying every 1000 ms)$" <<< "$cstatus" &&
  ok "counter: status '$(head -n 1 <<< "$cstatus")' ($(wc -l <<< "$cstatus") line(s))" ||
  fail "counter: status $cstatus"

# late: breaks 15 checks after each of its first 4 start-ups; its streak goes on, the waits
# double
lbreaks() { grep -c "vm late: its QMP connection failed" "$WORK/hmmvd.log"; }
wait_for 600 "late broke 4 times" eval '(($(lbreaks) >= 4))'
lwaits=$(grep -oE "vm late: its QMP connection failed .*(connecting again in|next try in) [0-9.]+ s" \
  "$WORK/hmmvd.log" | grep -oE "[0-9.]+ s$" | tr -d ' s' | tr '\n' ' ')
conns=$(connections late) k_now=$(checks)
echo "# late: $conns connections, $(lbreaks) breaks over $k_now checks (counter), $(grep -c '^attack' "$WORK/late.log") when told; waits (s): $lwaits"
python3 - "$lwaits" <<'PY' && ok "late: each break in a row doubled the wait" || fail "late: waits $lwaits"
import sys
waits = [float(w) for w in sys.argv[1].split()]
sys.exit(not (len(waits) >= 4 and all(w == min(2.0 ** i, 60.0) for i, w in enumerate(waits))))
PY
# not between its 4 breaks (after the last it may, 60 checks on: nothing breaks it any more)
ended=$(awk '/vm late: its QMP connection failed/ { b++ } /vm late: managed for/ && b < 4 { print; exit }' "$WORK/hmmvd.log")
[[ -z $ended ]] && ok "late: its streak never ended between its breaks" || fail "late: its streak ended: $ended"
[[ $conns -le $(($(lbreaks) + 1 + $(grep -c "vm late: not managed:" "$WORK/hmmvd.log"))) ]] &&
  ok "late: each of its $conns connections announced" || fail "late: $conns connections, $(lbreaks) breaks"

stop_hmmvd
verdict
