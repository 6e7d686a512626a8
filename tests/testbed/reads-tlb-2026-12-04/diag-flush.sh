#!/bin/sh
# diagnostic (reads2 session): the "vaddr with writes" case with main's reads-check, without
# and with context switches on both CPUs (pipe ping-pong pairs: a CR3 switch flushes TCG's TLB)
guest=$1; check=$2
one() {
  rm -f /tmp/reads-serial.log /tmp/hmmv-ram
  qemu-system-x86_64 -accel tcg -M pc -m 64 \
    -object memory-backend-file,id=ram,size=64M,mem-path=/tmp/hmmv-ram,share=on \
    -machine memory-backend=ram -display none -nic none -monitor none \
    -serial file:/tmp/reads-serial.log -kernel "$guest" \
    -append "mode=reads report_every=0 write_pages=512 write_ratio=25" </dev/null &
  qpid=$!
  "$check" --pid "$qpid" --backing /tmp/hmmv-ram --serial /tmp/reads-serial.log \
    --ops vaddr --run-dir /tmp/hmmv-damon --min-precision 0.8 --min-recall 0.9 --intervals 30
  echo "diag: rc=$? $1"
  kill $qpid; wait $qpid
}
echo "diag: ===== plain"; one plain
echo "diag: ===== switches"
groups=
for cpu in 0 1; do taskset -c $cpu setsid sh -c 'yes | cat >/dev/null' & groups="$groups $!"; done
one switches
for g in $groups; do kill -- -$g; done; sleep 1
echo "diag: ===== plain again"; one plain2
echo "diag: ===== switches again"
groups=
for cpu in 0 1; do taskset -c $cpu setsid sh -c 'yes | cat >/dev/null' & groups="$groups $!"; done
one switches2
for g in $groups; do kill -- -$g; done; sleep 1
