#!/bin/sh
# diagnostic (reads2 session): the "vaddr with writes" case for GUEST:CHECK pairs
for pair in "$@"; do
  guest=${pair%%:*}; check=${pair#*:}
  rm -f /tmp/reads-serial.log /tmp/hmmv-ram
  qemu-system-x86_64 -accel tcg -M pc -m 64 \
    -object memory-backend-file,id=ram,size=64M,mem-path=/tmp/hmmv-ram,share=on \
    -machine memory-backend=ram -display none -nic none -monitor none \
    -serial file:/tmp/reads-serial.log -kernel "$guest" \
    -append "mode=reads report_every=0 write_pages=512 write_ratio=25" </dev/null &
  qpid=$!
  echo "diag: ===== $guest $check"
  "$check" --pid "$qpid" --backing /tmp/hmmv-ram --serial /tmp/reads-serial.log \
    --ops vaddr --run-dir /tmp/hmmv-damon --min-precision 0.8 --min-recall 0.9 --intervals 30 --verbose
  echo "diag: rc=$? $guest $check"
  grep HMMV-READS-BEGIN /tmp/reads-serial.log
  cat /sys/kernel/mm/transparent_hugepage/shmem_enabled /sys/kernel/mm/transparent_hugepage/enabled
  grep -A3 hmmv-ram /proc/$qpid/smaps | head -4; grep -E "AnonHuge|ShmemPmd|FilePmd|Shmem" /proc/$qpid/smaps_rollup
  kill $qpid; wait $qpid
done
