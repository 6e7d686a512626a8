#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Inside the testbed (tests/testbed/testbed run -- this BUILD_ROOT): hmmv's numa mover moves
# pages of a test process to the CPU-less node 1 and back (test-mover-numa's two-node case),
# data checked. Exit 0 only when that case ran and passed.
set -uo pipefail
build_root=${1:?usage: mover-two-node.sh BUILD_ROOT}
test_binary=$build_root/tests/test-mover-numa
[[ -x $test_binary ]] || { echo "SKIP: $test_binary is not built"; exit 77; }
echo "guest: kernel $(uname -r), $(ls -d /sys/devices/system/node/node* | wc -l) nodes"
# 2 MiB hugetlbfs pages for the hugetlb_moves_whole case: 3 used on node 0, room for them
# on node 1 (the guest's own sysfs; nothing on the host changes)
for n in 0 1; do
  echo 4 >/sys/devices/system/node/node$n/hugepages/hugepages-2048kB/nr_hugepages 2>/dev/null
done
echo "guest: THP $(cat /sys/kernel/mm/transparent_hugepage/enabled), free 2 MiB pages" \
  "$(cat /sys/devices/system/node/node{0,1}/hugepages/hugepages-2048kB/free_hugepages | tr '\n' ' ')"
export CK_TAP_LOG_FILE_NAME=- CK_VERBOSITY=silent CK_DEFAULT_TIMEOUT=120
start=$(date +%s)
HMMV_MOVER_FILL_NODE1=1 CK_RUN_CASE=two-node "$test_binary" >/tmp/tap.out 2>&1
rc=$?
cat /tmp/tap.out
echo "guest: test-mover-numa two-node case: exit $rc after $(($(date +%s) - start)) s"
[[ $rc -eq 0 ]] || exit 1
grep -q 'test_two_node_round_trip: Passed' /tmp/tap.out ||
  { echo "guest: the two-node case did not pass"; exit 1; }
# the huge-page cases and the full node ran (not skipped for want of THPs, hugetlbfs pages or
# root) and passed
for c in case_thp_moves_whole case_thp_pinned_holds_all case_hugetlb_moves_whole case_full_target_node; do
  grep -q "$c: Passed" /tmp/tap.out || { echo "guest: shared case $c did not run and pass"; exit 1; }
done
