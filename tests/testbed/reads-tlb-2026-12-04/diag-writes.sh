#!/bin/sh
# diagnostic (reads2 session): the "vaddr with writes" case only, twice, with DAMON's regions
build=${1:?}
qemu=qemu-system-x86_64
check=$build/tests/testbed/reads-check
guest=$build/tests/guest/guest.elf
for n in 1 2; do
  rm -f /tmp/reads-serial.log /tmp/hmmv-ram
  "$qemu" -accel tcg -M pc -m 64 \
    -object memory-backend-file,id=ram,size=64M,mem-path=/tmp/hmmv-ram,share=on \
    -machine memory-backend=ram -display none -nic none -monitor none \
    -serial file:/tmp/reads-serial.log -kernel "$guest" \
    -append "mode=reads report_every=0 write_pages=512 write_ratio=25" </dev/null &
  qpid=$!
  "$check" --pid "$qpid" --backing /tmp/hmmv-ram --serial /tmp/reads-serial.log \
    --ops vaddr --run-dir /tmp/hmmv-damon --min-precision 0.8 --min-recall 0.9 --intervals 30 --verbose
  echo "diag: run $n rc=$?"
  grep HMMV-READS-BEGIN /tmp/reads-serial.log
  kill $qpid; wait $qpid
done
