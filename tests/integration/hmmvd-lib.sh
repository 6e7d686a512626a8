# SPDX-License-Identifier: GPL-2.0-or-later
#
# Helpers shared by the integration scripts that drive a standalone hmmvd (test-standalone.sh,
# test-hostile-qemu.sh, test-hostile-region.sh): sourced, not run. The script sets HMMVCTL,
# WORK (hmmvd's control socket is $WORK/hmmvd.sock) and FAILED=0 before using them.

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; FAILED=1; }
ok() { echo "ok: $*"; }

ctl() { "$HMMVCTL" --socket "$WORK/hmmvd.sock" "$@"; }

# field VM KEY: a member of VM's entry in `hmmvctl --json vms` ('' when absent)
field() {
  ctl --json vms 2>/dev/null | python3 -c '
import json, sys
for vm in json.load(sys.stdin):
    if vm["name"] == sys.argv[1]:
        print(vm.get(sys.argv[2]))' "$1" "$2"
}

# intervals: hmmvd's interval count from `hmmvctl --json status`
intervals() { ctl --json status 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["intervals"])'; }

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.3 s; ok or fail with the
# description. The deadline is liveness only (generous), never a figure the test asserts.
wait_for() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || { fail "$what"; return 1; }
    sleep 0.3
  done
  ok "$what"
}
