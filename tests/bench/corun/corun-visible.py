#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What write-only tracking can see of a recorded co-run (issue 12, tracking accuracy): per VM,
from its trace, how many pages an interval have a write miss (what a trace without the stored
bit showed hmmv-writes) and how many were stored to (the stored bit: what a dirty bitmap sees),
and the share of the VM's LLC misses that fall on a page stored to in the same interval, and
on a page stored to in any of the last --window intervals (hmmv's temperature keeps a page
warm for about that long). Misses on pages never stored to in the window are what only a read
tracker finds.

  corun-visible.py DIR [--window 16] [--check]

DIR holds setup.json and the traces. --check: exit 1 unless, for every VM, the write-miss
pages are within the stored pages (version 3) and the shares are fractions that grow with the
window, else 0.
"""
import argparse
import collections
import json
import os
import sys

import hmmvtrace


def intervals(path):
    """Yields the trace's version, then each interval's {page: (misses, write_miss, stored)}."""
    version, _nr_pages, trace = hmmvtrace.read(path)
    yield version
    for entries in trace:
        yield {page: (reads + writes, writes > 0, stored)
               for page, reads, writes, stored in entries}


def vm_figures(path, window):
    it = intervals(path)
    version = next(it)
    recent = collections.deque(maxlen=window)     # the stored sets of the last intervals
    n = wmiss = stored = 0
    misses = on_same = on_window = 0
    bad = 0
    for pages in it:
        st = {p for p, (_, _, s) in pages.items() if s}
        wm = sum(1 for _, w, _ in pages.values() if w)
        if version == 3 and any(w and not s for _, w, s in pages.values()):
            bad += 1
        recent.append(st)
        seen = set().union(*recent)
        for p, (m, _, _) in pages.items():
            misses += m
            on_same += m if p in st else 0
            on_window += m if p in seen else 0
        n += 1
        wmiss += wm
        stored += len(st)
    return {"version": version, "intervals": n, "wmiss": wmiss / n if n else 0,
            "stored": stored / n if n else 0, "same": on_same / misses if misses else 0,
            "window": on_window / misses if misses else 0, "bad": bad}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.window <= 10000:
        raise SystemExit("--window must be in [1, 10000]")
    with open(os.path.join(a.dir, "setup.json")) as f:
        setup = json.load(f)
    print(f"| VM | workload | trace version | intervals | pages with a write miss an interval "
          f"| pages stored to an interval | misses on pages stored to that interval | misses "
          f"on pages stored to in the last {a.window} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for vm in setup["vms"]:
        f = vm_figures(os.path.join(a.dir, vm["trace"]), a.window)
        print(f"| {vm['name']} | {vm.get('workload', '?')} | {f['version']} | {f['intervals']} "
              f"| {f['wmiss']:,.0f} | {f['stored']:,.0f} | {f['same']:.3f} | "
              f"{f['window']:.3f} |")
        if (f["bad"] or f["intervals"] == 0 or f["wmiss"] > f["stored"] or
                not 0 <= f["same"] <= f["window"] <= 1):
            ok = False
    if a.check:
        print("ok: write misses within the stored pages, shares in [0, 1] and growing with the "
              "window" if ok else "FAIL: a VM breaks the invariants (or has no intervals)")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
