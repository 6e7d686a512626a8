#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Each VM's hot set in a recorded co-run (issue 12, fairness), from its traces, beside the
DRAM pool hmmv-corun replay gives for a DRAM fraction: does the pool hold the sum of the hot
sets?

  corun-hotsets.py DIR [--cover 0.9] [--dram F ...] [--check]

DIR holds setup.json and the traces (a hmmv-corun cache dir or --traces DIR). Per VM and
interval: the pages touched (any LLC miss) and the hot set, the fewest pages that take
--cover of that interval's misses (the most-missed first). Per VM: the mean and the 95th
percentile of both over the intervals, and the pages that are ever in a hot set. The pool for
a fraction F is hmmv-corun's default (--dram-of ram): F x the sum of the VMs' pages, rounded.
--check: exit 1 unless every interval's hot set is within its touched pages and covers
--cover of its misses (the figures' own invariants), else 0.
"""
import argparse
import json
import math
import os
import sys

import hmmvtrace


def intervals(path):
    """Yields the trace's page count, then each interval's {page: misses}."""
    _version, nr_pages, trace = hmmvtrace.read(path)
    yield nr_pages
    for entries in trace:
        yield {page: reads + writes for page, reads, writes, _ in entries if reads + writes}


def hot_set(counts, cover):
    """The fewest pages that take cover of the interval's misses, and their misses."""
    total = sum(counts.values())
    need = cover * total
    taken, pages = 0, []
    for page, m in sorted(counts.items(), key=lambda kv: -kv[1]):
        if taken >= need:
            break
        taken += m
        pages.append(page)
    return pages, taken, total


def percentile(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))] if s else 0


def vm_figures(path, cover):
    it = intervals(path)
    nr_pages = next(it)
    touched, hot, ever, bad = [], [], set(), 0
    for counts in it:
        pages, taken, total = hot_set(counts, cover)
        if len(pages) > len(counts) or (total and taken < cover * total):
            bad += 1
        touched.append(len(counts))
        hot.append(len(pages))
        ever.update(pages)
    return {"nr_pages": nr_pages, "intervals": len(hot),
            "touched_mean": sum(touched) / len(touched) if touched else 0,
            "touched_p95": percentile(touched, 0.95),
            "hot_mean": sum(hot) / len(hot) if hot else 0, "hot_p95": percentile(hot, 0.95),
            "hot_ever": len(ever), "bad": bad}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--cover", type=float, default=0.9)
    ap.add_argument("--dram", type=float, action="append")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if not 0 < a.cover <= 1:
        raise SystemExit("--cover must be in (0, 1]")
    with open(os.path.join(a.dir, "setup.json")) as f:
        setup = json.load(f)
    pct = f"{a.cover * 100:.0f}%"
    print(f"{setup.get('setup', a.dir)}: hot set = the fewest pages taking {pct} of an "
          "interval's LLC misses; pages of 4 KiB\n")
    print("| VM | workload | pages | intervals | touched an interval (mean; p95) | hot set an "
          "interval (mean; p95) | pages ever in a hot set |")
    print("|---|---|---:|---:|---:|---:|---:|")
    figs, bad = [], 0
    for vm in setup["vms"]:
        f = vm_figures(os.path.join(a.dir, vm["trace"]), a.cover)
        figs.append(f)
        bad += f["bad"]
        print(f"| {vm['name']} | {vm.get('workload', '?')} | {f['nr_pages']:,} | "
              f"{f['intervals']} | {f['touched_mean']:,.0f}; {f['touched_p95']:,} | "
              f"{f['hot_mean']:,.0f}; {f['hot_p95']:,} | {f['hot_ever']:,} |")
    total = sum(f["nr_pages"] for f in figs)
    print(f"| all | | {total:,} | | {sum(f['touched_mean'] for f in figs):,.0f}; "
          f"{sum(f['touched_p95'] for f in figs):,} | {sum(f['hot_mean'] for f in figs):,.0f}; "
          f"{sum(f['hot_p95'] for f in figs):,} | {sum(f['hot_ever'] for f in figs):,} |")
    for frac in a.dram or []:
        pool = max(int(frac * total + 0.5), 1)
        print(f"\nDRAM {frac * 100:.0f}% of RAM: a pool of {pool:,} pages; the sum of the "
              f"hot sets {sum(f['hot_mean'] for f in figs):,.0f} (mean) / "
              f"{sum(f['hot_p95'] for f in figs):,} (p95): the pool holds "
              f"{pool / sum(f['hot_mean'] for f in figs):.2f}x / "
              f"{pool / max(sum(f['hot_p95'] for f in figs), 1):.2f}x of it")
    if a.check:
        if bad or not figs or any(f["intervals"] == 0 for f in figs):
            print(f"FAIL: {bad} intervals break the hot-set invariants (or a VM has none)")
            return 1
        print("ok: every hot set within its touched pages and covering "
              f"{pct} of its interval's misses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
