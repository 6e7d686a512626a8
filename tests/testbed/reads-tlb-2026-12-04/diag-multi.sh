#!/bin/sh
# diagnostic (reads2 session): the "vaddr with writes" case with main's guest, once per reads-check given
guest=${1:?}; shift
for check in "$@"; do
  rm -f /tmp/reads-serial.log /tmp/hmmv-ram
  qemu-system-x86_64 -accel tcg -M pc -m 64 \
    -object memory-backend-file,id=ram,size=64M,mem-path=/tmp/hmmv-ram,share=on \
    -machine memory-backend=ram -display none -nic none -monitor none \
    -serial file:/tmp/reads-serial.log -kernel "$guest" \
    -append "mode=reads report_every=0 write_pages=512 write_ratio=25" </dev/null &
  qpid=$!
  echo "diag: ===== $check"
  "$check" --pid "$qpid" --backing /tmp/hmmv-ram --serial /tmp/reads-serial.log \
    --ops vaddr --run-dir /tmp/hmmv-damon --min-precision 0.8 --min-recall 0.9 --intervals 30 --verbose
  echo "diag: rc=$? $check"
  kill $qpid; wait $qpid
done
