#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The real 6.12 kernel's NUMA-balancing tiering curve, for checking hmmv-corun's
# `numa-balancing` policy against it (issue 12). Inside the testbed (2node, kernel 6.12):
# turns THP off (as tiering-race.py does), records the kernel's knobs and node 0's watermarks
# (/proc/zoneinfo, min_free_kbytes), then
# runs tiering-race.py --modes kernel (its race.tsv: each VM's hot set on node 0, the
# promotions and demotions, every ~1 s) while sampling /proc/vmstat's NUMA-balancing counters
# (numa_hint_faults, pgpromote_candidate, pgpromote_success, pgdemote_*, numa_pages_migrated)
# and node 0's free pages every second into $OUT/nb-vmstat.tsv.
#
# usage (from the source root, on the host):
#   HMMV_QEMU=$(bash qemu-patches/build.sh | tail -n1) tests/testbed/testbed run --layout 2node \
#     --kernel 6.12 --mem 2048 --timeout 1800 --keep-out DIR -- tests/testbed/nb-kernel-curve.sh \
#     --hmmvd build/daemon/hmmvd --guest build/tests/guest/guest.elf [tiering-race.py args]
set -euo pipefail
here=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
[[ -n ${TESTBED_LAYOUT:-} ]] || { echo "nb-kernel-curve: SKIP: runs only inside the testbed" >&2; exit 77; }
out=${TESTBED_OUT:?}

mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
# THP off first, as tiering-race.py does: 6.12 then recomputes min_free_kbytes and the
# watermarks (node 0 DMA32 high 12,194 -> 1,156 pages), and the knobs must be the mode's
echo never > /sys/kernel/mm/transparent_hugepage/enabled
{
  echo "# kernel $(uname -r), layout $TESTBED_LAYOUT"
  for f in /proc/sys/kernel/numa_balancing* /sys/kernel/debug/sched/numa_balancing/*; do
    [[ -f $f ]] && echo "$f $(cat "$f")"
  done
  echo "min_free_kbytes $(cat /proc/sys/vm/min_free_kbytes)"
  echo "watermark_scale_factor $(cat /proc/sys/vm/watermark_scale_factor)"
  echo "thp $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
  echo "# /proc/zoneinfo (pages)"
  awk '/^Node/ {z=$0} /^ +(pages free|min|low|high|promo|present|managed) / {print z ": " $0}' /proc/zoneinfo
} > "$out/nb-kernel-knobs.txt" 2>&1

fields="numa_hint_faults numa_hint_faults_local numa_pages_migrated numa_pte_updates pgpromote_success pgpromote_candidate pgdemote_kswapd pgdemote_direct pgmigrate_success pgmigrate_fail"
# one awk a sample (forks are slow in the nested TCG guest: a bc and three awks a sample took
# 5-60 s at load 25 in the first run)
sampler() {
  local t0=$EPOCHREALTIME
  echo -e "t\tnode0_free_pages\t${fields// /\\t}"
  while :; do
    awk -v t0="$t0" -v now="$EPOCHREALTIME" -v f="$fields" '
      FNR == NR { if ($0 ~ /^Node 0, zone/) n = 1; else if ($0 ~ /^Node /) n = 0
                  if (n && $1 == "pages" && $2 == "free") s += $3; next }
      { v[$1] = $2 }
      END { printf "%.1f\t%d", now - t0, s; k = split(f, a, " ")
            for (i = 1; i <= k; i++) printf "\t%s", (a[i] in v ? v[a[i]] : ""); printf "\n" }' \
      /proc/zoneinfo /proc/vmstat
    sleep 1
  done
}
sampler > "$out/nb-vmstat.tsv" &
spid=$!
trap 'kill $spid 2>/dev/null || true' EXIT
"$here/tiering-race.py" --modes kernel --out-dir "$out" "$@"
