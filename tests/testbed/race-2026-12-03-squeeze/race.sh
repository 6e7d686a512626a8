#!/bin/bash
# usage: race.sh TREE OUTDIR MODES SECONDS [extra args]   (run under /work/heavy/run)
# TREE: a source tree with its build/ (a frozen copy while the run goes); HMMV_QEMU: QEMU 10.0
# key 8507f8bdddcfa2f2 (0001-0016, session 13's cache); `uptime` every 30 s into
# OUTDIR/uptime.log. race3's race.sh with this session's QEMU key. On a machine whose cache
# lacks that key: HMMV_QEMU from the environment, else what TREE's qemu-patches/build.sh builds.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
recorded=/var/cache/hmmv/qemu-8507f8bdddcfa2f2/bin/qemu-system-x86_64
if [[ -z ${HMMV_QEMU:-} ]]; then
  if [[ -x $recorded ]]; then
    HMMV_QEMU=$recorded
  else
    HMMV_QEMU=$(bash "$1/qemu-patches/build.sh" | tail -n 1) || exit 1
  fi
fi
export HMMV_QEMU
tree=$1 out=$2 modes=$3 secs=$4; shift 4
mkdir -p "$out"
cd "$tree" || exit 1
echo "start $(date -u +%FT%TZ) $(uptime) tree $tree $(cat .race-commit 2>/dev/null)"
( while :; do echo "$(date -u +%T) $(uptime)"; sleep 30; done ) > "$out/uptime.log" 2>&1 &
up=$!
tests/testbed/testbed run --layout 2node --kernel 6.12 --mem 2048 --timeout 4000 --keep-out "$out" -- \
  tests/testbed/tiering-race.py --hmmvd build/daemon/hmmvd --guest build/tests/guest/guest.elf \
  --hot-probe build/tests/testbed/hot-probe --modes "$modes" --seconds "$secs" "$@"
rc=$?
kill $up
echo "end rc=$rc $(date -u +%FT%TZ) $(uptime)"
