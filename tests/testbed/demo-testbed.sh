#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# scripts/demo --testbed end to end (suite 'testbed-open', issue 8): the four quarter-size VMs
# under hmmvd with the numa mover on the 2node testbed's real nodes, as a one-node user runs
# it. From the demo's own output it checks that
#   - the demo ran on a REAL slow tier (the numa mover, not the modelled one);
#   - the kernel saw pages move both ways: pages found on the slow node that were on DRAM one
#     sample before, and the reverse (scripts/demo-kernel.py, move_pages status queries on each
#     QEMU, every 2 s), at least MIN_MOVES each way;
#   - every move hmmvd counted is a migration the kernel counted (move_pages(2)'s migrations
#     by the tracepoint, or pgmigrate_success without it) and hmmvd counted some;
#   - hmmvd's placement map agrees with the kernel's node of each page (hmmvd paused) for at
#     least 99.9% of the VMs' pages.
#
#   demo-testbed.sh SOURCE_ROOT [SECONDS]  (HMMV_BUILD_DIR: the build tree; HMMV_QEMU: the
#                                           patched QEMU)
#
# Exit 0 pass, 1 fail, 77 skip (with the reason: no patched QEMU, not root, or the testbed
# cannot run here). The demo stops what it started (the testbed's QEMU with everything inside)
# at its exit; this script stops the demo by its pid (SIGTERM) if it is stopped itself.
set -uo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 SOURCE_ROOT [SECONDS]" >&2; exit 2; }
SECONDS_RUN=${2:-90}
MIN_MOVES=256          # pages seen moving each way (a lower bound of the moves)
MIN_AGREE=0.999
# shellcheck source=tests/integration/demo-lib.sh
. "$(dirname "$0")/../integration/demo-lib.sh"
demo_setup "$1" demo-tb

demo_run --testbed --seconds "$SECONDS_RUN"
if [[ $DEMO_RC -eq 77 ]]; then
  tail -n 5 "$WORK/stderr"
  skip "the testbed cannot run here (tests/testbed/testbed exited 77, above)"
fi
demo_check_rc 40
echo "---- the demo's summary ----"
sed -n '/^summary after/,$p' "$WORK/stdout"
echo "----------------------------"

python3 - "$WORK/stdout" "$MIN_MOVES" "$MIN_AGREE" <<'PY'
import re, sys

path, min_moves, min_agree = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
text = open(path).read()
fails = []
if "slow tier REAL" not in text:
    fails.append("the demo did not run on a real slow tier (no 'slow tier REAL' in its output)")
m = re.findall(r"^demo: kernel: (.*)$", text, re.M)
if not m:
    sys.exit("FAIL: no 'demo: kernel:' line: the kernel's view did not run\n" + "\n".join(fails))
f = {k: float(v) for k, v in (kv.split("=") for kv in m[-1].split())}
print("demo-testbed: " + m[-1])
kernel = f["move_pages"] if f["move_pages"] >= 0 else f["kernel_migrated"]
if f["hmmvd_moves"] <= 0:
    fails.append("hmmvd counted no move")
if kernel < f["hmmvd_moves"]:
    fails.append(f"the kernel migrated {kernel:.0f} pages, hmmvd counted {f['hmmvd_moves']:.0f}")
for key in ("seen_to_slow", "seen_to_dram"):
    if f[key] < min_moves:
        fails.append(f"{key}={f[key]:.0f}: the kernel saw fewer than {min_moves} pages move "
                     f"that way")
if f["placement_agree"] < min_agree:
    fails.append(f"placement_agree={f['placement_agree']:.4f} < {min_agree} over "
                 f"{f['pages']:.0f} pages")
for msg in fails:
    print("FAIL: " + msg)
sys.exit(1 if fails else 0)
PY
