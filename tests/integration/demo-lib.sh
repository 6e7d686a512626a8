# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# Helpers shared by the scripts that run scripts/demo end to end and check its output
# (tests/integration/test-demo.sh, tests/testbed/demo-testbed.sh): sourced, not run.

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

# demo_setup SOURCE_ROOT NAME: skips (77, with the reason) without a patched QEMU (HMMV_QEMU)
# or root; makes WORK (a scratch directory, removed at exit) and the traps that stop the demo
# by its pid if this script exits or is stopped first.
demo_setup() {
  [[ -x ${HMMV_QEMU:-} ]] ||
    skip "no patched QEMU (HMMV_QEMU=${HMMV_QEMU:-unset}; bash qemu-patches/build.sh | tail -n1)"
  [[ $(id -u) -eq 0 ]] || skip "scripts/demo runs as root"
  DEMO_SRC=$1
  WORK=$(mktemp -d "/tmp/hmmv-test-$2.XXXXXX")
  DEMO_PID=''
  trap demo_cleanup EXIT
  trap 'exit 1' INT TERM
}

demo_cleanup() {
  if [[ -n $DEMO_PID ]] && kill -0 "$DEMO_PID" 2>/dev/null; then
    kill -TERM "$DEMO_PID" 2>/dev/null
    wait "$DEMO_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}

# demo_run ARGS...: SOURCE_ROOT/scripts/demo ARGS with its output in $WORK/stdout and $WORK/stderr; sets
# DEMO_RC to its exit status.
demo_run() {
  "$DEMO_SRC/scripts/demo" "$@" >"$WORK/stdout" 2>"$WORK/stderr" </dev/null &
  DEMO_PID=$!
  wait "$DEMO_PID"
  DEMO_RC=$?
  DEMO_PID=''
}

# demo_check_rc STDOUT_LINES: unless the demo exited 0, shows the end of its stderr (40 lines)
# and stdout (STDOUT_LINES) and fails.
demo_check_rc() {
  [[ $DEMO_RC -eq 0 ]] && return 0
  echo "---- demo stderr (last 40 lines) ----"; tail -n 40 "$WORK/stderr"
  echo "---- demo stdout (last $1 lines) ----"; tail -n "$1" "$WORK/stdout"
  fail "scripts/demo exited $DEMO_RC"
}
