#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The testbed on bookworm's own kernel (--kernel 6.1, what a Debian 12 host runs unless it
# takes the backports kernel): the guest boots 6.1, the 2node layout comes up (6.1 ranks no
# memory by HMAT, so the tool checks nodes and distances only), and hmmv's numa mover passes
# the same cases as on 6.12 (mover-two-node.sh: the two-node round trip, THP, hugetlbfs and
# the full target node). Exit 0 only when all of that held.
#
# usage: kernel-6.1.sh SOURCE_ROOT BUILD_ROOT
set -uo pipefail
source_root=$(realpath "${1:?usage: kernel-6.1.sh SOURCE_ROOT BUILD_ROOT}")
build_root=$(realpath "${2:?usage: kernel-6.1.sh SOURCE_ROOT BUILD_ROOT}")
[[ -x $build_root/tests/test-mover-numa ]] ||
  { echo "SKIP: $build_root/tests/test-mover-numa is not built"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$source_root/tests/testbed/testbed" run --kernel 6.1 -- \
  "$source_root/tests/testbed/mover-two-node.sh" "$build_root" >"$work/out" 2>"$work/err"
rc=$?
cat "$work/out"
grep '^testbed: ' "$work/err"
bad=0
kernel=$(sed -n 's/^guest: kernel \([^,]*\),.*/\1/p' "$work/out")
if [[ $kernel != 6.1.* ]]; then
  echo "FAIL: the guest ran kernel '${kernel:-none}', not 6.1"; bad=1
fi
if ! grep -q '^testbed: layout: kernel 6\.1.* tiers not checked' "$work/err"; then
  echo "FAIL: the tool did not check the 6.1 layout as 6.1's (see its lines above)"; bad=1
fi
if ((rc != 0)); then
  echo "FAIL: the numa mover's cases on 6.1: exit $rc"; bad=1
fi
((bad)) && { echo "--- stderr"; cat "$work/err"; exit 1; }
echo "ok: kernel $kernel, the numa mover's two-node, huge-page and full-node cases passed"
