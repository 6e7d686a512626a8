#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The QEMU 10.0 series is checkpatch clean, as QEMU's maintainers check it (issue 9, "Upstream
# form"): QEMU 10.0's own scripts/checkpatch.pl, from the Debian source build.sh unpacked in
# its cache, over every patch qemu-patches/10.0/series lists, in order. A patch with an error
# or a warning fails the test; the report names each patch and ends with checkpatch's totals.
#
#   test-checkpatch.sh SERIES_DIR
#
# The checker: $HMMV_CHECKPATCH, else the newest 10.0 source tree under
# ${HMMV_CACHE_DIR:-/var/cache/hmmv}/qemu-src/ (bash qemu-patches/build.sh puts it there).
# Needs perl. Exit 0 pass, 1 fail, 77 skip (no checker: says where it looked).
set -uo pipefail

skip() { echo "SKIP: $*"; exit 77; }
[[ $# -eq 1 ]] || { echo "usage: $0 SERIES_DIR" >&2; exit 2; }
dir=$1
series=$dir/series
[[ -f $series ]] || { echo "FAIL: no series file at $series"; exit 1; }
command -v perl >/dev/null || skip "no perl to run checkpatch.pl"

cache=${HMMV_CACHE_DIR:-/var/cache/hmmv}
checkpatch=${HMMV_CHECKPATCH:-}
if [[ -z $checkpatch ]]; then
  # build.sh unpacks each Debian version under qemu-src/VERSION/tree: the 10.0 one (epoch 1:).
  for tree in $(ls -d "$cache"/qemu-src/*10.0.*/tree 2>/dev/null | sort -V -r); do
    if [[ -f $tree/scripts/checkpatch.pl ]]; then checkpatch=$tree/scripts/checkpatch.pl; break; fi
  done
  [[ -n $checkpatch ]] ||
    skip "no QEMU 10.0 source in $cache/qemu-src/*10.0.*/tree (run bash qemu-patches/build.sh once)"
fi
[[ -f $checkpatch ]] || skip "no checkpatch.pl at $checkpatch (HMMV_CHECKPATCH)"
echo "# checker: $checkpatch"

patches=()
while read -r line; do
  line=${line%%#*}
  line=${line//[[:space:]]/}
  [[ -n $line ]] && patches+=("$line")
done <"$series"
[[ ${#patches[@]} -gt 0 ]] || { echo "FAIL: $series lists no patch"; exit 1; }

status=0 n=0
for p in "${patches[@]}"; do
  n=$((n + 1))
  if [[ ! -f $dir/$p ]]; then
    echo "not ok $n - $p: missing"; status=1; continue
  fi
  out=$(perl "$checkpatch" "$dir/$p" 2>&1)
  rc=$?
  total=$(grep -m1 '^total:' <<<"$out")
  if [[ $rc -eq 0 && $total == "total: 0 errors, 0 warnings,"* ]]; then
    echo "ok $n - $p: $total"
  else
    echo "not ok $n - $p: ${total:-no totals} (exit $rc)"
    sed 's/^/#   /' <<<"$out" | head -n 60
    status=1
  fi
done
echo "1..$n"
exit "$status"
