#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The co-run live mode end to end (suite 'integration', issue 12): tests/corun/corun-live
# records two VMs of setup hmmv4 (8 MiB footprints, 6 intervals of 20M instructions) under
# the real hmmvd with the recorder plugin in the patched QEMU; checks the outputs (setup.json
# written, every trace exactly 6 intervals, hmmvd saw every page the trace shows written:
# corun-seen.py --check) and replays the recording through every policy with
# hmmv-corun replay --traces (the CSV: each policy, each VM and 'all'; all-DRAM serves 100%
# and is the fastest in total). Exit 0 pass, 1 fail, 77 skip (corun-live's reason).
# With SETUP hmmv4-redis the second VM is the redis guest (tests/corun/redis-guest: Linux,
# its trace from its start mark; 8 MiB of keys): the same checks.
#
#   check-corun-live.sh HMMV_CORUN [SETUP]   (HMMV_BUILD_DIR: the build tree; HMMV_QEMU)
set -uo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
[[ $# -eq 1 || $# -eq 2 ]] || { echo "usage: $0 HMMV_CORUN [SETUP]" >&2; exit 2; }
CORUN=$1
SETUP=${2:-hmmv4}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/hmmv-corun-live.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
INTERVALS=6

"$HERE/corun-live" "$SETUP" "$WORK/rec" --vms 2 --intervals $INTERVALS --mib 8
rc=$?
[[ $rc -eq 77 ]] && exit 77
[[ $rc -eq 0 ]] || { echo "FAIL: corun-live exited $rc"; exit 1; }
[[ -f $WORK/rec/setup.json && ! -e $WORK/rec/setup.json.tmp ]] ||
  { echo "FAIL: no setup.json"; exit 1; }
python3 - "$WORK/rec" $INTERVALS "$SETUP" <<'PY' || exit 1
import json, os, struct, sys
d, want, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
setup = json.load(open(os.path.join(d, "setup.json")))
assert setup["setup"] == name and len(setup["vms"]) == 2, setup
for vm in setup["vms"]:
    data = open(os.path.join(d, vm["trace"]), "rb").read()
    magic, version, _, nr_pages, _, flags = struct.unpack_from("<8sIIQII", data)
    assert (magic, version, flags) == (b"HMMVTRC1", 3, 7), (magic, version, flags)
    assert nr_pages == vm["ram_mib"] * 256, (nr_pages, vm)
    off, n = 32, 0
    while off < len(data):
        _, entries, _, index, insns = struct.unpack_from("<IIQQQ", data, off)
        assert index == n and insns >= setup["interval_insns"], (index, insns)
        off += 32 + 16 * entries
        n += 1
    assert n == want, f"{vm['name']}: {n} intervals, expected {want}"
    side = json.load(open(os.path.join(d, vm["name"] + ".json")))
    assert side["stats"]["ok"] and side["stats"]["intervals"] == want, side["stats"]
    print(f"ok: {vm['name']} ({vm['workload']}): {n} intervals, "
          f"{side['stats']['llc_misses']} LLC misses of {side['stats']['accesses']} accesses")
PY
python3 "$HERE/corun-seen.py" "$WORK/rec" --check || exit 1
"$CORUN" replay --traces "$WORK/rec" --profile optane --dram 0.5 --csv "$WORK/r.csv" ||
  { echo "FAIL: hmmv-corun replay exited $?"; exit 1; }
python3 - "$WORK/r.csv" <<'PY' || exit 1
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
policies = {r["policy"] for r in rows}
assert len(policies) == 12, policies
for p in policies:
    assert {r["vm"] for r in rows if r["policy"] == p} == {"vm0", "vm1", "all"}, p
total = {r["policy"]: float(r["runtime_ns"]) for r in rows if r["vm"] == "all"}
dram = [r for r in rows if r["policy"] == "all-dram" and r["vm"] == "all"][0]
assert abs(float(dram["dram_served_share"]) - 1.0) < 1e-9, dram
assert all(total["all-dram"] <= t for t in total.values()), total
print(f"ok: replay of the recording: {len(rows)} rows, {len(policies)} policies; "
      f"hmmv-writes {total['hmmv-writes'] / total['all-dram']:.3f}x all-DRAM")
PY
