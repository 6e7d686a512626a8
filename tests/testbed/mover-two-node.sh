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
export CK_TAP_LOG_FILE_NAME=- CK_VERBOSITY=silent CK_DEFAULT_TIMEOUT=120
start=$(date +%s)
CK_RUN_CASE=two-node "$test_binary" >/tmp/tap.out 2>&1
rc=$?
cat /tmp/tap.out
echo "guest: test-mover-numa two-node case: exit $rc after $(($(date +%s) - start)) s"
[[ $rc -eq 0 ]] || exit 1
grep -q 'test_two_node_round_trip: Passed' /tmp/tap.out ||
  { echo "guest: the two-node case did not pass"; exit 1; }
