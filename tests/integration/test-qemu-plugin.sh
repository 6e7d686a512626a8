#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The patched QEMU loads TCG plugins (build.sh configures --enable-plugins and copies the
# plugin API header of that very build to qemu-<hash>/include/qemu-plugin.h): a plugin built
# here against that header (plugin-writes.c) runs beside the test guest under TCG and must
# see exactly the 64 pages the guest stores to (pfn 0x1000-0x103f) in its 1024-page window,
# with physical addresses, as a write-trace recorder needs (issue 12). Counted, not timed.
#
#   test-qemu-plugin.sh GUEST_ELF PLUGIN_SOURCE
#
# Needs HMMV_QEMU (build.sh's binary), cc and glib's pkg-config. Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail

skip() { echo "SKIP: $*"; exit 77; }
[[ $# -eq 2 ]] || { echo "usage: $0 GUEST_ELF PLUGIN_SOURCE" >&2; exit 2; }
GUEST=$1 SOURCE=$2
QEMU=${HMMV_QEMU:-}
[[ -n $QEMU && -x $QEMU ]] || skip "no patched QEMU (HMMV_QEMU=${QEMU:-unset}; qemu-patches/build.sh)"
HEADER=$(dirname "$(dirname "$QEMU")")/include/qemu-plugin.h
[[ -f $HEADER ]] || skip "no $HEADER: this QEMU was built before build.sh enabled plugins"
command -v cc >/dev/null || skip "no C compiler"
GLIB=$(pkg-config --cflags --libs glib-2.0) || skip "no glib-2.0 pkg-config"

WORK=$(mktemp -d /tmp/hmmv-plugin.XXXXXX)
QEMU_PID=''
cleanup() {
  [[ -n $QEMU_PID ]] && kill -9 "$QEMU_PID" 2>/dev/null && wait "$QEMU_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck disable=SC2086 # GLIB is a list of flags
cc -shared -fPIC -O2 -Wall -Werror -I"$(dirname "$HEADER")" -o "$WORK/plugin.so" "$SOURCE" \
  $GLIB || { echo "FAIL: the plugin does not build against $HEADER"; exit 1; }

# The guest writes its 64 pages at once (wait=0) and ends QEMU through isa-debug-exit:
# exit code 0 from the guest is QEMU's (0 << 1) | 1 = 1.
"$QEMU" -accel tcg -M pc -m 128 -display none -nic none -monitor none \
  -serial "file:$WORK/serial" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -plugin "$WORK/plugin.so,base=0x1000000,pages=1024" -d plugin -D "$WORK/plugin.log" \
  -kernel "$GUEST" -append "phases=1 pages=64 pattern=seq wait=0" \
  </dev/null >"$WORK/qemu.out" 2>&1 &
QEMU_PID=$!
wait "$QEMU_PID"
status=$?
QEMU_PID=''
failed=0
if [[ $status -ne 1 ]]; then
  echo "FAIL: QEMU exited $status, not the guest's 0 through isa-debug-exit (1)"
  cat "$WORK/qemu.out" "$WORK/serial" 2>/dev/null
  failed=1
fi
grep -q 'HMMV-PHASE-END 0 pages=64' "$WORK/serial" ||
  { echo "FAIL: the guest did not finish its phase"; cat "$WORK/serial"; failed=1; }
line=$(grep '^plugin-writes:' "$WORK/plugin.log" 2>/dev/null)
echo "# $(basename "$(dirname "$(dirname "$QEMU")")"): ${line:-no plugin output}"
if [[ $line != 'plugin-writes: pages=64 first_pfn=0x1000 last_pfn=0x103f' ]]; then
  echo "FAIL: the plugin saw other stores than the guest's 64 pages from pfn 0x1000"
  cat "$WORK/qemu.out" "$WORK/plugin.log" 2>/dev/null
  failed=1
fi
[[ $failed -eq 0 ]] && echo "ok: a plugin built against $HEADER saw the guest's 64 stores"
exit "$failed"
