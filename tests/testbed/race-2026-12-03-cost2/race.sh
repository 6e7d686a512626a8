#!/bin/bash
# usage: race.sh WORKTREE OUTDIR MODES SECONDS [extra args]   (run under /work/heavy/run)
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export HMMV_QEMU=/var/cache/hmmv/qemu-401e69c956d36f6b/bin/qemu-system-x86_64
wt=$1 out=$2 modes=$3 secs=$4; shift 4
mkdir -p "$out"
cd "$wt"
echo "start $(date -u +%FT%TZ) $(uptime) $(git rev-parse --short HEAD) dirty:$(git status --porcelain | wc -l)"
( while :; do echo "$(date -u +%T) $(uptime)"; sleep 30; done ) > "$out/uptime.log" 2>&1 &
up=$!
tests/testbed/testbed run --layout 2node --kernel 6.12 --mem 2048 --timeout 4000 --keep-out "$out" -- \
  tests/testbed/tiering-race.py --hmmvd build/daemon/hmmvd --guest build/tests/guest/guest.elf \
  --hot-probe build/tests/testbed/hot-probe --modes "$modes" --seconds "$secs" "$@"
rc=$?
kill $up
echo "end rc=$rc $(date -u +%FT%TZ) $(uptime)"
