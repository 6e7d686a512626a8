#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What hmmvd saw in a live co-run (tests/corun/corun-live), held against the recorder's
ground truth, per VM: of the pages the trace shows written (LLC store misses) in the
workload's window (a Linux guest's: all its RAM), the share hmmvd's tracker saw written at
some point of the run (recall);
the share of all LLC misses that fell on pages hmmvd never saw touched (what write-only
tracking cannot see: pages only read); pages hmmvd saw written that the trace never shows
missing (writes the LLC absorbed). hmmvd's page index is mapped to guest-physical pages
through its placement's regions.

  corun-seen.py DIR            the table
  corun-seen.py DIR --check    and exit 1 unless every VM's written recall is 1.0 (every
                               window page is written once at the start, with hmmvd tracking
                               from the first instruction), exit 0 otherwise
"""
import glob
import json
import os
import struct
import sys


def read_trace(path):
    """(nr_pages, flags, [{page: (reads, writes, stored)}]) of a version 1, 2 or 3 trace;
    stored is version 3's bit (the page was stored to, hit or miss), else writes > 0."""
    with open(path, "rb") as f:
        data = f.read()
    magic, version, shift, nr_pages, _interval_ms, flags = struct.unpack_from("<8sIIQII", data)
    if magic != b"HMMVTRC1" or version not in (1, 2, 3) or shift != 12:
        raise SystemExit(f"{path}: not an hmmv trace")
    header = 32 if version in (2, 3) else 24
    off, intervals = 32, []
    while off < len(data):
        _imagic, n = struct.unpack_from("<II", data, off)
        off += header
        pages = {}
        for i in range(n):
            page, reads, writes = struct.unpack_from("<QII", data, off + 16 * i)
            stored = bool(page >> 63) if version == 3 else writes > 0
            pages[page & ~(1 << 63)] = (reads, writes, stored)
        off += 16 * n
        intervals.append(pages)
    return nr_pages, flags, intervals


def gpa_pages(placement, pages):
    """hmmvd page indices -> guest-physical page numbers, through the regions."""
    out = set()
    for region in placement["regions"]:
        first, count, gpfn = region["first-page"], region["pages"], region["gpa"] >> 12
        out.update(gpfn + p - first for p in pages if first <= p < first + count)
    return out


def vm_figures(d, vm):
    name = vm["name"]
    with open(os.path.join(d, name + ".json")) as f:
        side = json.load(f)
    args = dict(w.split("=", 1) for w in side["append"].split() if "=" in w)
    nr_pages, _, truth = read_trace(os.path.join(d, vm["trace"]))
    if "base" in args:
        base = int(args["base"], 16) >> 12
        window = range(base, base + int(args["mib"]) * 256)
    else:
        # a Linux guest (redis): its load's pages are wherever its kernel put them
        window = range(0, nr_pages)
    written, misses, miss_pages = set(), {}, set()
    for pages in truth:
        for page, (r, w, stored) in pages.items():
            if stored and page in window:
                written.add(page)
            misses[page] = misses.get(page, 0) + r + w
    placement_path = os.path.join(d, "hmmvd", f"placement-{name}.json")
    with open(placement_path) as f:
        placement = json.load(f)
    seen_w, seen_any, hmmvd_intervals = set(), set(), 0
    for path in sorted(glob.glob(os.path.join(d, "hmmvd", name + ".trace")) +
                       glob.glob(os.path.join(d, "hmmvd", name + ".*.trace"))):
        _, _, seen = read_trace(path)
        hmmvd_intervals += len(seen)
        for pages in seen:
            seen_w.update(p for p, (_, _, stored) in pages.items() if stored)
            seen_any.update(pages)
    seen_w, seen_any = gpa_pages(placement, seen_w), gpa_pages(placement, seen_any)
    total = sum(misses.values())
    unseen = sum(m for p, m in misses.items() if p not in seen_any)
    return {
        "vm": name, "workload": vm["workload"], "trace_intervals": len(truth),
        "hmmvd_intervals": hmmvd_intervals, "written": len(written),
        "recall": len(written & seen_w) / len(written) if written else 1.0,
        "unseen_miss_share": unseen / total if total else 0.0,
        "absorbed": len((seen_w & set(window)) - written),
    }


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and sys.argv[2] != "--check"):
        raise SystemExit("usage: corun-seen.py DIR [--check]")
    d = sys.argv[1]
    with open(os.path.join(d, "setup.json")) as f:
        setup = json.load(f)
    print("| VM | workload | trace intervals | hmmvd intervals | window pages written "
          "(trace) | seen written by hmmvd | LLC misses on pages hmmvd never saw | written "
          "pages the LLC absorbed |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for vm in setup["vms"]:
        f = vm_figures(d, vm)
        print(f"| {f['vm']} | {f['workload']} | {f['trace_intervals']} | "
              f"{f['hmmvd_intervals']} | {f['written']:,} | {f['recall']:.4f} | "
              f"{f['unseen_miss_share']:.4f} | {f['absorbed']:,} |")
        if f["hmmvd_intervals"] == 0 or f["written"] == 0 or f["recall"] != 1.0:
            ok = False
    if len(sys.argv) == 3:
        print("ok: hmmvd saw every page the trace shows written" if ok else
              "FAIL: a VM's written pages were not all seen by hmmvd (or nothing recorded)")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
