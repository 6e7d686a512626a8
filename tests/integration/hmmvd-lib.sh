# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Helpers shared by the integration scripts that drive a standalone hmmvd (test-standalone.sh,
# test-hostile-qemu.sh, test-hostile-region.sh): sourced, not run. The script sets HMMVCTL,
# WORK (hmmvd's control socket is $WORK/hmmvd.sock, its log $WORK/hmmvd.log), HMMVD_PID and
# FAILED=0 before using them.

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
        print(vm.get(sys.argv[2]))' "$1" "$2" 2>/dev/null
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

# hostile_args "$@": the arguments of the scripts that face hmmvd with fake QEMUs (HMMVD
# HMMVCTL: sets those and HERE, the scripts' folder) and what they need: root (the control
# socket is root-only), python3 (the fake QEMUs) and the two programs; skips without them.
hostile_args() {
  [[ $# -eq 2 ]] || { echo "usage: $0 HMMVD HMMVCTL" >&2; exit 2; }
  HMMVD=$1 HMMVCTL=$2
  # shellcheck disable=SC2034  # HERE: for the sourcing script (its fake QEMUs)
  HERE=$(cd "$(dirname "$0")" && pwd)
  [[ $(id -u) -eq 0 ]] || skip "hmmvd's control socket is for root only"
  command -v python3 >/dev/null || skip "python3 is not installed"
  [[ -x $HMMVD && -x $HMMVCTL ]] || skip "hmmvd or hmmvctl is not built"
}

# guest_args "$@": the arguments of the scripts that run hmmvd over a real patched QEMU and
# the test guest (HMMVD HMMVCTL GUEST_ELF; QEMU from HMMV_QEMU) and what they need: root,
# python3 and the programs built; skips without them.
guest_args() {
  [[ $# -eq 3 ]] || { echo "usage: $0 HMMVD HMMVCTL GUEST_ELF" >&2; exit 2; }
  HMMVD=$1 HMMVCTL=$2 GUEST=$3 QEMU=${HMMV_QEMU:-}
  [[ -x $QEMU ]] || skip "no patched QEMU (HMMV_QEMU=${QEMU:-unset})"
  [[ -x $HMMVD && -x $HMMVCTL && -r $GUEST ]] || skip "hmmvd, hmmvctl or the guest is not built"
  [[ $(id -u) -eq 0 ]] || skip "hmmvd's control socket is for root only"
  command -v python3 >/dev/null || skip "python3 is not installed"
}

# wait_socket PATH WHAT: polls for the Unix socket PATH every 0.1 s, 10 s at most (liveness);
# the test fails and ends when WHAT did not create it.
wait_socket() {
  for _ in $(seq 100); do [[ -S $1 ]] && return 0; sleep 0.1; done
  fail "$2 did not start"
  exit 1
}

# stop_hmmvd: SIGTERM to hmmvd; ok when it exits 0 (the time it took is printed, a figure, not
# asserted), fail when it exits otherwise or is still running 60 s later (a liveness bound:
# then HMMVD_PID stays set for the script's cleanup to kill).
stop_hmmvd() {
  local term_ns
  term_ns=$(date +%s%N)
  kill -TERM "$HMMVD_PID"
  for _ in $(seq 600); do kill -0 "$HMMVD_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$HMMVD_PID" 2>/dev/null; then
    fail "hmmvd ignored SIGTERM for 60 s"
    return
  fi
  if wait "$HMMVD_PID"; then
    ok "SIGTERM: hmmvd exited 0 after $((($(date +%s%N) - term_ns) / 1000000)) ms"
  else
    fail "SIGTERM: hmmvd exited $?"
  fi
  HMMVD_PID=''
}

# verdict: the script's last command: exit 1 with the tail of hmmvd's log when a check failed
# (status 0 otherwise).
verdict() {
  if ((FAILED)); then
    echo "--- hmmvd log"; tail -n 40 "$WORK/hmmvd.log"
    exit 1
  fi
}
