#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The testbed tool's own contract, one boot: COMMAND's stdout reaches stdout byte for byte
# and its stderr stderr, its exit status comes back, HMMV_* variables and the working
# directory come in, the root is writable in the guest and the host does not see it.
#
# usage: tool-self-test.sh SOURCE_ROOT
set -uo pipefail
testbed=$(realpath "${1:?usage: tool-self-test.sh SOURCE_ROOT}")/tests/testbed/testbed
work=$(mktemp -d)
marker=/etc/hmmv-testbed-self-test.$$
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export HMMV_SELF_TEST="a b'c"
"$testbed" run --mem 512 -- bash -c '
  printf "out:%s:%s\n" "$HMMV_SELF_TEST" "$(cat <(echo "$PWD"))"
  echo err-line >&2
  echo guest >'"$marker"' && echo "wrote '"$marker"'"
  printf "no newline at the end"
  exit 7' >"$work/stdout" 2>"$work/stderr"
rc=$?
bad=0
check() { # description, condition...
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; bad=1; fi
}
expected=$(printf 'out:%s:%s\nwrote %s\nno newline at the end' "$HMMV_SELF_TEST" "$work" "$marker")
check "exit status 7 came back (got $rc)" test "$rc" -eq 7
check "stdout is exactly COMMAND's" test "$(cat "$work/stdout"; echo .)" = "$expected."
check "stderr has COMMAND's line" grep -qx err-line "$work/stderr"
check "stderr has the layout check" grep -q '^testbed: layout' "$work/stderr"
check "the host did not get $marker" test ! -e "$marker"
if ((bad)); then
  echo "--- stdout"; cat "$work/stdout"; echo; echo "--- stderr"; cat "$work/stderr"
  exit 1
fi
