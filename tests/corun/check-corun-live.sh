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
# With MOVER numa (inside the testbed's 2node layout: testbed test corun-live-testbed, issue 12
# H1c) hmmvd's numa mover moves the VMs' real pages between node 0 and the CPU-less node 1
# (a pool of a quarter of their RAM) while they are recorded, and the kernel's view is checked
# too (corun-live's hmmvd/kernel.out, scripts/demo-kernel.py's figures, also in setup.json):
# hmmvd moved pages, the kernel migrated at least as many (move_pages(2)'s by the tracepoint,
# or pgmigrate_success), move_pages(2) status queries saw pages arrive on the slow node, and
# hmmvd's placement map agrees with the kernel's node of each page (hmmvd paused) for 99.9%.
#
#   check-corun-live.sh HMMV_CORUN [SETUP [MOVER]]   (HMMV_BUILD_DIR: the build tree; HMMV_QEMU)
set -uo pipefail
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
[[ $# -ge 1 && $# -le 3 ]] || { echo "usage: $0 HMMV_CORUN [SETUP [MOVER]]" >&2; exit 2; }
CORUN=$1
SETUP=${2:-hmmv4}
MOVER=${3:-sim}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/hmmv-corun-live.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
INTERVALS=6

"$HERE/corun-live" "$SETUP" "$WORK/rec" --vms 2 --intervals $INTERVALS --mib 8 --mover "$MOVER"
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
if [[ $MOVER == numa ]]; then
  python3 - "$WORK/rec" <<'PY' || exit 1
import json, os, sys
d = sys.argv[1]
setup = json.load(open(os.path.join(d, "setup.json")))
k = setup.get("kernel")
assert setup.get("mover") == "numa" and k, f"FAIL: setup.json has no kernel view: {setup}"
kernel = k["move_pages"] if k["move_pages"] >= 0 else k["kernel_migrated"]
fails = []
if k["hmmvd_moves"] <= 0:
    fails.append("hmmvd counted no move")
if kernel < k["hmmvd_moves"]:
    fails.append(f"the kernel migrated {kernel} pages, hmmvd counted {k['hmmvd_moves']}")
if k["seen_to_slow"] <= 0:
    fails.append("move_pages(2) status queries never saw a page arrive on the slow node")
if k["placement_agree"] < 0.999:
    fails.append(f"placement_agree {k['placement_agree']} < 0.999 over {k['pages']} pages")
vms = [json.loads(l) for l in open(os.path.join(d, "hmmvd", "vms.jsonl"))]
last = {v["name"]: v for v in vms[-1]["vms"]}
for vm in setup["vms"]:
    v = last.get(vm["name"], {})
    print(f"ok: {vm['name']}: hmmvd promoted {v.get('promotions-total')}, demoted "
          f"{v.get('demotions-total')} pages, DRAM {v.get('dram-pages')} slow {v.get('slow-pages')}")
for msg in fails:
    print("FAIL: " + msg)
if fails:
    sys.exit(1)
print(f"ok: real moves: hmmvd {k['hmmvd_moves']}, the kernel {kernel} "
      f"({'move_pages' if k['move_pages'] >= 0 else 'pgmigrate_success'}); seen to slow "
      f"{k['seen_to_slow']}, to DRAM {k['seen_to_dram']}; placement agrees for "
      f"{k['placement_agree']:.4f} of {k['pages']} pages")
PY
fi
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
