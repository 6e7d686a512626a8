#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A harvest that drains bits QEMU is still publishing (issue 9): QEMU sets a publication's bits
# before it moves the generation, and a loaded QEMU whose timer fires while the tracker
# harvests is caught between the two. The tracker used to count such a harvest as 0 intervals,
# and every consumer skips those whole, so the bits were lost: hmmvctl-track lost the guest's
# 64 writes at load ~30 (QEMU had published 65 pages, hmmvctl printed none in 600 intervals).
# Here a fake patched QEMU (fake-hmmv-qemu.py, mode midpublish) stops half way through its 3rd
# publication (seq odd, pages 8-15 set, the generation unmoved) until the next hmmv-sync, and
# `hmmvctl track --interval-ms 0` (one hmmv-sync per harvest) must print pages 8-15
# (0x8000-0x10000) as well as the pages 0-7 every publication sets. Counted, not timed.
#
#   test-mid-publication.sh HMMVD HMMVCTL
#
# Needs root (hmmvctl maps the region) and python3. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

. "$(dirname "$0")/hmmvd-lib.sh"
hostile_args "$@"

WORK=$(mktemp -d /tmp/hmmv-midpub.XXXXXX)
FAKE_PID=''
cleanup() {
  [[ -n $FAKE_PID ]] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 "$HERE/fake-hmmv-qemu.py" "$WORK/qemu.qmp" "$WORK/qemu.log" midpublish 3 &
FAKE_PID=$!
wait_socket "$WORK/qemu.qmp" "the fake QEMU"

# --count 4: every harvest of a published interval prints one; the 5 hmmv-syncs needed are
# 5 harvests 1 s apart.
if ! "$HMMVCTL" track --qmp "$WORK/qemu.qmp" --interval-ms 0 --count 4 \
     > "$WORK/track.out" 2> "$WORK/track.err"; then
  fail "hmmvctl track failed: $(cat "$WORK/track.err")"
  exit 1
fi
sed 's/^/# hmmvctl: /' "$WORK/track.out"
sed 's/^/# fake QEMU: /' "$WORK/qemu.log"
grep -q "^attack midpublish" "$WORK/qemu.log" || { fail "the fake QEMU never stopped half way"; exit 1; }
# pages 8-15 printed, alone or merged with 0-7 into one range
mid=$(grep -cE '^  0x(8000-0x10000|0-0x10000) ' "$WORK/track.out")
low=$(grep -cE '^  0x0-0x(8000|10000) ' "$WORK/track.out")
echo "# intervals printing pages 8-15: $mid; printing pages 0-7: $low"
[[ $mid -ge 1 ]] || { fail "pages 8-15, drained while QEMU was publishing them, were never printed"; exit 1; }
[[ $low -ge 3 ]] || { fail "pages 0-7 printed in $low intervals, want at least 3"; exit 1; }
echo "ok"
exit 0
