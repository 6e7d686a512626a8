#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The testbed tool's own contract, one boot: COMMAND's stdout reaches stdout byte for byte
# and its stderr stderr, its exit status comes back, HMMV_* variables and the working
# directory come in, the root is writable in the guest and the host does not see it.
# With BUILD_ROOT, the same boot (2node layout) first runs hmmv's numa mover across the two
# nodes (mover-two-node.sh: test-mover-numa's two-node and huge-page cases), its output on
# COMMAND's stderr and its exit status through $TESTBED_OUT, so the contract's stdout and
# exit status stay COMMAND's own: one boot where the suite had two (issue 8: the suite's time).
#
# usage: tool-self-test.sh SOURCE_ROOT [BUILD_ROOT]
set -uo pipefail
source_root=$(realpath "${1:?usage: tool-self-test.sh SOURCE_ROOT [BUILD_ROOT]}")
testbed=$source_root/tests/testbed/testbed
build_root=${2:+$(realpath "$2")}
work=$(mktemp -d)
marker=/etc/hmmv-testbed-self-test.$$
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export HMMV_SELF_TEST="a b'c"
mover=
if [[ -n $build_root ]]; then
  mover="$source_root/tests/testbed/mover-two-node.sh $build_root >&2; "
  mover+='echo $? >"$TESTBED_OUT/two-node.status"; '
fi
"$testbed" run --keep-out "$work/out" -- bash -c "$mover"'
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
# run's defaults (issue 8: 2node, kernel 6.12; 2048 MiB): this boot gave no flag
check "the defaults: 2node layout, kernel 6.12, 2048 MiB" \
  grep -Eq '^testbed: kernel 6\.12\.[^,]*, layout 2node, 2048 MiB,' "$work/stderr"
check "the host did not get $marker" test ! -e "$marker"
mover_rc=
if [[ -n $build_root ]]; then
  mover_rc=$(cat "$work/out/two-node.status" 2>/dev/null)
  echo "--- the numa mover's two-node case (same boot, its output from COMMAND's stderr)"
  grep -v -x -e err-line -e '^testbed: .*' "$work/stderr"
  [[ $mover_rc == 77 ]] ||
    check "the numa mover's two-node case passed (exit ${mover_rc:-none})" test "$mover_rc" = 0
fi
if ((bad)); then
  echo "--- stdout"; cat "$work/stdout"; echo; echo "--- stderr"; cat "$work/stderr"
  exit 1
fi
if [[ $mover_rc == 77 ]]; then
  echo "SKIP: the tool's contract held, the two-node case skipped (see above)"
  exit 77
fi
exit 0
