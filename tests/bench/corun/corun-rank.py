#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What a page's bit is worth, per VM of a recorded co-run (issue 12, tracking accuracy): hmmv's
core keeps one bit per page an interval (seen or not), so beside the other VMs a VM's pages
rank by how many of its page-intervals are seen, while DRAM is worth what its pages miss. Per
VM, from its trace: its share of all the VMs' LLC misses; its share of the touched
page-intervals (a page with a miss in an interval: what one bit per page of a read tracker
counts) and of the stored page-intervals (what the write tracker's dirty bit counts); misses
per touched and per stored page-interval; and the share of its misses on pages stored to in
the last --window intervals (the rest only a read tracker finds). A VM whose share of the
misses is above its share of the bits is worth more DRAM than a one-bit ranking gives it.

  corun-rank.py DIR [--window 16] [--check]

DIR holds setup.json and the traces. --check: exit 1 unless the shares of every column sum to
1 over the VMs and each is a fraction, else 0.
"""
import argparse
import collections
import json
import os
import sys

import hmmvtrace


def vm_counts(path, window):
    _version, _nr_pages, trace = hmmvtrace.read(path)
    recent = collections.deque(maxlen=window)
    c = {"intervals": 0, "misses": 0, "touched": 0, "stored": 0, "on_window": 0}
    for entries in trace:
        st = {p for p, _r, _w, s in entries if s}
        recent.append(st)
        seen = set().union(*recent)
        for p, r, w, _s in entries:
            m = r + w
            c["misses"] += m
            c["touched"] += 1 if m else 0
            c["on_window"] += m if p in seen else 0
        c["stored"] += len(st)
        c["intervals"] += 1
    return c


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
    vms = [(vm, vm_counts(os.path.join(a.dir, vm["trace"]), a.window)) for vm in setup["vms"]]
    tot = {k: sum(c[k] for _, c in vms) for k in ("misses", "touched", "stored")}
    print(f"{setup.get('setup', '?')}: shares of all the VMs' LLC misses and of their page bits "
          f"(page-intervals); misses per page-interval\n")
    print(f"| VM | workload | share of misses | share of touched page-intervals | share of "
          f"stored page-intervals | misses per touched page-interval | misses per stored "
          f"page-interval | misses on pages stored to in the last {a.window} |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ok = all(tot.values())
    sums = collections.Counter()
    for vm, c in vms:
        share = {k: c[k] / tot[k] if tot[k] else 0.0 for k in tot}
        sums.update(share)
        per_t = c["misses"] / c["touched"] if c["touched"] else 0.0
        per_s = f"{c['misses'] / c['stored']:.1f}" if c["stored"] else "-"
        win = c["on_window"] / c["misses"] if c["misses"] else 0.0
        print(f"| {vm['name']} | {vm.get('workload', '?')} | {share['misses']:.3f} | "
              f"{share['touched']:.3f} | {share['stored']:.3f} | {per_t:.1f} | {per_s} | "
              f"{win:.3f} |")
        ok = ok and c["intervals"] > 0 and all(0 <= v <= 1 for v in share.values()) \
            and 0 <= win <= 1
    ok = ok and all(abs(sums[k] - 1) < 1e-9 for k in tot)
    if a.check:
        print("ok: every column's shares are fractions summing to 1" if ok else
              "FAIL: a share out of [0, 1], a column not summing to 1, or a VM without intervals")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
