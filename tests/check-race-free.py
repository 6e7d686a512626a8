#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/testbed/tiering-race.py's free memory on node 0 (issue 8): the default leaves room
for the VMs' hot sets twice over above node 0's high watermark, read from /proc/zoneinfo; a
value at or below it is refused. The zoneinfo is the testbed's (kernel 6.12.95, 2node,
2 GiB): with THP on at boot (min_free_kbytes 67,584;
tests/testbed/nbcheck-2026-12-02/nb-kernel-knobs.txt), and after `echo never` to THP, which
tiering-race.py does first and which makes 6.12 recompute min_free_kbytes (5,546; read in
the testbed 2026-12-02 20:30 UTC).

usage: check-race-free.py SOURCE_ROOT"""
import importlib.util
import os
import sys

ZONEINFO = """Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 12
  pages free     3776
        boost    0
        min      128
        low      160
        high     192
        promo    224
        spanned  4095
        present  3998
        managed  3840
        cma      0
        protection: (0, 953, 953, 953, 953)
Node 0, zone    DMA32
  pages free     234465
        boost    0
        min      8130
        low      10162
        high     12194
        promo    14226
        spanned  258048
        present  258048
        managed  244220
Node 0, zone   Normal
  pages free     0
        boost    0
        min      0
        low      0
        high     0
        promo    0
        spanned  0
        present  0
        managed  0
Node 0, zone  Movable
  pages free     0
        boost    0
        min      32
        low      32
        high     32
        promo    32
        spanned  0
        present  0
        managed  0
Node 1, zone    DMA32
  pages free     256367
        boost    0
        min      8636
        low      10795
        high     12954
        promo    15113
        spanned  262112
        present  262112
        managed  257960
"""


# node 0's DMA and DMA32 after THP off (the testbed, 2026-12-02 20:30 UTC)
ZONEINFO_THP_OFF = """Node 0, zone      DMA
  pages free     3776
        min      10
        low      13
        high     16
        promo    19
        managed  3840
Node 0, zone    DMA32
  pages free     234465
        min      668
        low      912
        high     1156
        promo    1400
        managed  244220
Node 0, zone  Movable
  pages free     0
        min      32
        low      32
        high     32
        promo    32
        managed  0
"""


def main():
    root = sys.argv[1]
    path = os.path.join(root, "tests", "testbed", "tiering-race.py")
    spec = importlib.util.spec_from_file_location("race", path)
    race = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(race)
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append(f"{what}: {got!r}, want {want!r}")

    marks = race.zone_watermarks(ZONEINFO, 0)
    # DMA + DMA32; the empty Movable zone's 32 pages and node 1's zones left out
    check("node 0 watermarks", marks, {"min": 8258, "low": 10322, "high": 12386, "promo": 14450})
    check("node 1 high", race.zone_watermarks(ZONEINFO, 1).get("high"), 12954)
    # default: the high watermark (48 MiB) + two 8 MiB hot sets, twice
    check("default free, THP on", race.free_target_mib(None, marks, 16), 48 + 32)
    check("60 MiB asked", race.free_target_mib(60, marks, 16), 60)
    off = race.zone_watermarks(ZONEINFO_THP_OFF, 0)
    check("node 0 watermarks, THP off", off, {"min": 678, "low": 925, "high": 1172,
                                              "promo": 1419})
    # what the race runs with: 4 MiB + 32
    check("default free, THP off", race.free_target_mib(None, off, 16), 4 + 32)
    check("24 MiB asked, THP off", race.free_target_mib(24, off, 16), 24)
    for bad in (24, 48):
        try:
            race.free_target_mib(bad, marks, 16)
            failures.append(f"--dram-free-mib {bad} (at or below the high watermark) accepted")
        except race.Failed as e:
            if "high watermark" not in str(e):
                failures.append(f"--dram-free-mib {bad}: {e}")
    for f in failures:
        print(f"check-race-free: FAIL: {f}")
    if not failures:
        print("check-race-free: 9 checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
