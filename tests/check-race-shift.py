#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/testbed/tiering-race.py with a shifting hot set and a reference VM (issue 8), on
made-up data: which window is hot when (the guest's HMMV-VERIFY-SHIFT lines, read as they
come by ShiftWatch from a file written here), how long each new hot set took to be 99% on
DRAM, and the raced guests' writes per reference write rated against `none`.

usage: check-race-shift.py SOURCE_ROOT"""
import importlib.util
import os
import re
import sys
import tempfile
import time


class FakeVm:
    """What ShiftWatch reads of a VM: its serial log and the line parser."""

    def __init__(self, log, figures):
        self.log = log
        self.figures = figures


def main():
    root = sys.argv[1]
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location(
        "race", os.path.join(root, "tests", "testbed", "tiering-race.py"))
    race = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(race)
    failures, checks = [], []

    def check(what, got, want):
        checks.append(what)
        if got != want:
            failures.append(f"{what}: {got!r}, want {want!r}")

    # windows of 2,048 pages from pfn 0x400; the guest starts in window 0
    first, hot = 0x400, 2048
    events = [(10.0, first + 2048), (20.0, first + 4096), (30.0, first)]
    check("before any shift", race.hot_window(events, 5.0, first, hot), 0)
    check("after the first", race.hot_window(events, 10.0, first, hot), 1)
    check("after the second", race.hot_window(events, 25.0, first, hot), 2)
    check("wrapped", race.hot_window(events, 31.0, first, hot), 0)

    # one VM's fractions a second: the first shift's set reached 99% 4 s after it, the
    # second's never in its 10 s, the last (at 38 s, 2 s before the end) too short to count
    ticks = [(float(t), 0.0) for t in range(0, 50)]
    ticks = [(t, 1.0 if 14 <= t < 20 else 0.5) for t, _ in ticks]
    recs = race.recoveries(ticks, [10.0, 20.0, 38.0], 40.0)
    check("recoveries", recs, [(10.0, 4.0, 10.0), (20.0, None, 18.0), (38.0, None, 2.0)])
    check("summary", race.recovery_summary(recs), "1/2 reached, median 4 s, max 4 s")
    check("no shift", race.recovery_summary([]), "no shift")
    # a tick at the next shift's moment is the next hot set's, not the earlier one's
    check("boundary", race.recoveries([(20.0, 1.0)], [10.0, 20.0], 30.0),
          [(10.0, None, 10.0), (20.0, 0.0, 10.0)])

    # ShiftWatch: lines as the serial copy writes them, a torn one completed later
    with tempfile.TemporaryDirectory() as d:
        log = os.path.join(d, "vm0.log")

        def figures(line):
            return {k: int(v, 0) for k, v in re.findall(r"(\w+)=(0x[0-9a-f]+|\d+)", line)}
        with open(log, "w") as f:
            f.write("HMMV-VERIFY-PROGRESS writes=20000 hot_first_pfn=0x400\n"
                    "HMMV-VERIFY-SHIFT writes=40000 hot_first_pfn=0xc00\nHMMV-VERIFY-SH")
        watch = race.ShiftWatch(FakeVm(log, figures))
        watch.stop()      # its thread's polls are the same as these
        watch.poll()
        check("shifts read", [p for _, p in watch.events], [0xc00])
        with open(log, "a") as f:
            f.write("IFT writes=60000 hot_first_pfn=0x1400\n")
        watch.poll()
        check("torn line completed", [p for _, p in watch.events], [0xc00, 0x1400])
        check("stamped in order", watch.events[0][0] <= watch.events[1][0] <= time.monotonic(),
              True)

    # the reference VM's writes: raced writes per reference write, rated against none
    def series(writes_per_s, ref_per_s, seconds=100, every=10):
        return [(float(t), [writes_per_s * t // 2] * 2, [t] * 2, [0.9 * t] * 2, 0.0, 0.0,
                 1.8 * t, 0.0, ref_per_s * t) for t in range(every, seconds + 1, every)]
    ticks3 = [(i, float(i), [1.0, 1.0]) for i in range(101)]
    none = race.cost_figures(series(20000, 40000), ticks3, 50)
    slow = race.cost_figures(series(10000, 25000), ticks3, 50)   # the testbed slowed down
    none2 = race.cost_figures(series(20000, 40000), ticks3, 50)
    check("writes per reference write", slow["steady_writes_per_ref"], "0.4000")
    check("reference writes a second", slow["steady_ref_writes_per_s"], "25000")
    (line,) = race.cost_table([dict(mode="none", **none), dict(mode="kernel", **slow),
                               dict(mode="none.2", **none2)])
    check("writes ratio", line["steady_writes_per_s_ratio"], "0.500")
    check("writes per reference ratio", line["steady_writes_per_ref_ratio"], "0.800")
    check("no reference: no figure", "steady_writes_per_ref" in race.cost_figures(
        [s[:8] for s in series(1, 1)], ticks3, 50), False)
    for f in failures:
        print(f"check-race-shift: FAIL: {f}")
    if not failures:
        print(f"check-race-shift: {len(checks)} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
