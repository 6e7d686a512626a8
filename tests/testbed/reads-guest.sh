#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# In the testbed guest (kernel 6.12: DAMON vaddr, fvaddr, paddr; the 2node layout): hmmv's
# read tracking against the test guest's own page sets, run by the testbed suite's "reads"
# test (tests/testbed/meson.build) as: testbed run --layout 2node --kernel 6.12 -- THIS. Nested QEMU under TCG (the
# testbed guest itself runs under TCG, so this is ~17x slower than TCG on the host): the
# nested guest reads 2048 pages (32 chunks of 64, one every 256 pages) of a 64 MiB RAM, a
# few hundred thousand accesses a second.
#
# usage: reads-guest.sh BUILD_ROOT
# Prints one `reads: source=NAME precision=0.NNN recall=0.NNN` line per source and case;
# exits 1 when DAMON vaddr falls below recall 0.9 or precision 0.8 (the aim is recall 0.95 at
# precision 0.9: each case says whether it was met), DAMON paddr calls
# cold pages read (precision < 0.9), or hmmv touched another user's kdamond.
build=${1:?usage: reads-guest.sh BUILD_ROOT}
qemu=${HMMV_GUEST_QEMU:-qemu-system-x86_64}
check=$build/tests/testbed/reads-check
guest=$build/tests/guest/guest.elf
admin=/sys/kernel/mm/damon/admin/kdamonds
run_dir=/tmp/hmmv-damon
# The aim is recall 0.95 at precision 0.9; DAMON is sampled and the nested guest's speed
# varies with the host's load (runs: precision 0.892..0.986, recall 0.950..0.998), so the
# suite holds DAMON vaddr to precision 0.8 and recall 0.9 and says whether the aim was met.
min="--min-precision 0.8 --min-recall 0.9 --intervals 30"
rc=0
qpid=

say() { echo "reads-guest: $*"; }
fail() { say "FAIL: $*"; rc=1; }

start_guest() {
  rm -f /tmp/reads-serial.log /tmp/hmmv-ram
  "$qemu" -accel tcg -M pc -m 64 \
    -object memory-backend-file,id=ram,size=64M,mem-path=/tmp/hmmv-ram,share=on \
    -machine memory-backend=ram -display none -nic none -monitor none \
    -serial file:/tmp/reads-serial.log -kernel "$guest" \
    -append "mode=reads report_every=0 $*" </dev/null &
  qpid=$!
}

stop_guest() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
  qpid=
}
trap stop_guest EXIT

check() {   # ops, extra reads-check options
  ops=$1
  shift
  "$check" --pid "$qpid" --backing /tmp/hmmv-ram --serial /tmp/reads-serial.log \
    --ops "$ops" --run-dir "$run_dir" "$@"
}

state() { cat "$admin/$1/state" 2>/dev/null; }

# Says whether a reads: line met the aim (recall >= 0.95 at precision >= 0.9).
aim() {
  awk '/^reads: / { split($3, p, "="); split($4, r, "=");
         print "reads-guest: aim (recall 0.95 at precision 0.9) " \
               ((p[2] >= 0.9 && r[2] >= 0.95) ? "met" : "missed") " by " $2 }' "$1"
}

[ -x "$check" ] && [ -f "$guest" ] || { say "SKIP: $check or $guest is not built"; exit 77; }
command -v "$qemu" >/dev/null || { say "SKIP: no $qemu for the nested guest"; exit 77; }
[ -d "$admin" ] || { say "SKIP: no DAMON sysfs in kernel $(uname -r)"; exit 77; }
say "kernel $(uname -r); DAMON operations: $(echo 1 >$admin/nr_kdamonds &&
  echo 1 >$admin/0/contexts/nr_contexts && tr '\n' ' ' <$admin/0/contexts/0/avail_operations;
  echo 0 >$admin/0/contexts/nr_contexts; echo 0 >$admin/nr_kdamonds)"
if [ -e /sys/kernel/mm/page_idle/bitmap ]; then
  say "idle page tracking: present (hmmv's idle-page tracker is not scored by this suite yet)"
else
  say "idle page tracking: not in this kernel (CONFIG_IDLE_PAGE_TRACKING off)"
fi

# 1. Read-only guest: DAMON vaddr (fvaddr over guest RAM), held to the aims; DAMON paddr,
#    the fallback (now over the runs of the VM's frames; its recall with them is not measured
#    unloaded yet, BENCHMARKS.md): its figures are printed and only its precision is held (it
#    must not call cold pages read).
start_guest
check vaddr $min >/tmp/reads-vaddr.out
got=$?
cat /tmp/reads-vaddr.out
[ $got -eq 0 ] || fail "damon-vaddr below precision 0.8 / recall 0.9"
aim /tmp/reads-vaddr.out
stop_guest
start_guest
check paddr --min-precision 0.9 --intervals 30
got=$?
[ $got -eq 0 ] || fail "damon-paddr: reads-check exited $got (cold pages read, or its error above)"
stop_guest

# 2. A guest that reads one set and writes another: both are accessed, both must be hot.
#    (Telling the written ones apart is qemu-dirty's part, with the patched QEMU.) Its recall
#    depends on how often the testbed's CPUs flush TCG's TLB (DAMON clears accessed bits
#    without a flush): 0.90-0.92 on a quiet testbed, 1.000 with context switches beside it
#    (BENCHMARKS.md, "2026-12-04: vaddr with writes ... the TCG testbed's TLB").
start_guest write_pages=512 write_ratio=25
check vaddr $min >/tmp/reads-vaddr.out
got=$?
cat /tmp/reads-vaddr.out
[ $got -eq 0 ] || fail "damon-vaddr with writes below precision 0.8 / recall 0.9"
aim /tmp/reads-vaddr.out
stop_guest

# 3. Another user's kdamond. (a) It runs and is the only one: hmmv finds none free and
#    writes nothing; (b) its user made a second, free kdamond: hmmv takes that one only;
#    (c) hmmv killed while tracking: the next start turns its kdamond off, and only its.
echo 1 >$admin/nr_kdamonds
echo 1 >$admin/0/contexts/nr_contexts
echo paddr >$admin/0/contexts/0/operations
echo on >$admin/0/state || fail "cannot start the foreign kdamond"
start_guest
check vaddr --intervals 1
got=$?
[ $got -eq 77 ] || fail "with one foreign kdamond running, reads-check exited $got, not 77"
[ "$(state 0)" = on ] || fail "the foreign kdamond is no longer on"
[ "$(cat $admin/nr_kdamonds)" = 1 ] || fail "nr_kdamonds changed"
[ "$(cat $admin/0/contexts/0/operations)" = paddr ] || fail "the foreign context changed"
say "foreign kdamond alone: hmmv stayed out, kdamond 0 $(state 0)"
# (b): the foreign user grows to two (it must stop its own to do so: DAMON's rule)
echo off >$admin/0/state
echo 2 >$admin/nr_kdamonds
echo 1 >$admin/0/contexts/nr_contexts
echo paddr >$admin/0/contexts/0/operations
echo on >$admin/0/state
# (3 intervals: this checks whose kdamond is used, not what it sees)
check vaddr --intervals 3 >/tmp/reads-foreign.out || fail "hmmv did not use the free kdamond 1"
grep -v '^reads: ' /tmp/reads-foreign.out
[ "$(state 0)" = on ] || fail "the foreign kdamond is no longer on"
[ "$(state 1)" = off ] || fail "hmmv left kdamond 1 $(state 1)"
[ "$(cat $admin/1/contexts/nr_contexts)" = 0 ] || fail "hmmv left a context in kdamond 1"
say "foreign kdamond 0 beside a free one: hmmv used kdamond 1, gave it back; kdamond 0 $(state 0)"
# (c)
check vaddr --abandon >/dev/null
[ "$(state 1)" = on ] || fail "the abandoned kdamond 1 is not on ($(state 1))"
[ -f $run_dir/kdamond-1 ] || fail "no record of kdamond 1"
out=$("$check" --cleanup --run-dir "$run_dir")
say "after a killed tracker: $out"
[ "$out" = "reads-check: cleaned 1 stale hmmv kdamond(s)" ] || fail "stale cleanup: $out"
[ "$(state 1)" = off ] || fail "kdamond 1 still $(state 1) after cleanup"
[ "$(state 0)" = on ] || fail "cleanup touched the foreign kdamond 0"
[ ! -e $run_dir/kdamond-1 ] || fail "the stale record stayed"
stop_guest
echo off >$admin/0/state
echo 0 >$admin/nr_kdamonds

# 4. A read-mostly VM under a DRAM budget: reads-hmmvd.py (suite testbed) runs it with hmmvd
#    itself (qemu-dirty + DAMON vaddr, a 4,096-page pool; writes only as the contrast);
#    `reads-check --budget-pages N [--no-reads]` still runs it by hand with the core alone.
exit $rc
