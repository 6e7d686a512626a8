#!/bin/bash
# usage: race.sh OUTDIR MODES SECONDS [extra args]
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export HMMV_QEMU=/var/cache/hmmv/qemu-b0d57ab2ff23cd25/bin/qemu-system-x86_64
out=$1 modes=$2 secs=$3; shift 3
mkdir -p "$out"
cd /work/wt-cost
echo "start $(date -u +%FT%TZ) $(uptime) $(git rev-parse --short HEAD) dirty:$(git status --porcelain | wc -l)"
( while :; do echo "$(date -u +%T) $(uptime)"; sleep 60; done ) > "$out/uptime.log" 2>&1 &
up=$!
tests/testbed/testbed run --layout 2node --kernel 6.12 --mem 2048 --timeout 3600 --keep-out "$out" -- \
  tests/testbed/tiering-race.py --hmmvd build/daemon/hmmvd --guest build/tests/guest/guest.elf \
  --hot-probe build/tests/testbed/hot-probe --modes "$modes" --seconds "$secs" "$@"
rc=$?
kill $up
echo "end rc=$rc $(date -u +%FT%TZ) $(uptime)"
