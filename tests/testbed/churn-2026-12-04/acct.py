#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Where node 0's pages went in a squeeze run (issue 8, the doubled demotions): the run's
promotions and demotions (the race's race.tsv, last row: the kernel's migrations by
direction) against node 0's page cache, anon pages and free memory in the race's
kernel-state snapshots at the mode's start and end (/proc/zoneinfo, node 0). The rule is
hmmvd's free count (libhmmv/topology-free.c): per zone, free - min - protection[Movable].

usage: acct.py RUN_DIR...   (a race.sh OUT directory of one hmmvd-writes mode)"""
import os
import re
import sys

FIELDS = ("nr_file_pages", "nr_mapped", "nr_anon_pages", "workingset_refault_file")


def node0(path):
    """Node 0's per-node counters, and per zone its free pages, min and Movable protection."""
    out, zones, zone = {}, {}, None
    with open(path) as f:
        for line in f:
            if line.startswith("### /proc/vmstat"):
                break
            m = re.match(r"Node 0, zone\s+(\S+)", line)
            if m:
                zone = zones.setdefault(m.group(1), {})
                continue
            words = line.split()
            if len(words) == 2 and words[0] in FIELDS:
                out[words[0]] = int(words[1])
            elif zone is None:
                continue
            elif words[:2] == ["pages", "free"]:
                zone["free"] = int(words[2])
            elif len(words) == 2 and words[0] == "min":
                zone["min"] = int(words[1])
            elif words and words[0] == "protection:":
                zone["prot"] = int(words[-1].rstrip(")"))
    out["free"] = sum(z.get("free", 0) for z in zones.values())
    out["rule"] = sum(max(0, z.get("free", 0) - z.get("min", 0) - z.get("prot", 0))
                      for z in zones.values())
    out["dma32_min"] = zones.get("DMA32", {}).get("min", 0)
    return out


def main():
    print("run\tpromoted\tdemoted\tnet\tfile\tmapped\trefault_file\tanon\tfree\trule\t"
          "dma32_min")
    for d in sys.argv[1:]:
        mode = "hmmvd-writes"
        s = node0(os.path.join(d, f"kernel-state-{mode}-start.txt"))
        e = node0(os.path.join(d, f"kernel-state-{mode}-end.txt"))
        with open(os.path.join(d, "race.tsv")) as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
        head, last = rows[0], rows[-1]
        prom, dem = int(last[head.index("promoted")]), int(last[head.index("demoted")])

        def span(k):
            return f"{s[k]}->{e[k]} ({e[k] - s[k]:+d})"
        print("\t".join([os.path.basename(os.path.normpath(d)), str(prom), str(dem),
                         f"{prom - dem:+d}", span("nr_file_pages"), span("nr_mapped"),
                         f"{e['workingset_refault_file'] - s['workingset_refault_file']:+d}",
                         f"{e['nr_anon_pages'] - s['nr_anon_pages']:+d}", span("free"),
                         span("rule"), f"{s['dma32_min']}->{e['dma32_min']}"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
