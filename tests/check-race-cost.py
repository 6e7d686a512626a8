#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/testbed/tiering-race.py's cost figures (issue 8), on a made-up series: the QEMUs'
user and system time are rated apart (the kernel's hint faults are system time in QEMU's
threads, hidden in a share of both), and each mode's rates become ratios to the mean of its
neighbouring `none` modes.

usage: check-race-cost.py SOURCE_ROOT"""
import importlib.util
import os
import sys


def series(user_per_s, sys_per_s, writes_per_s, seconds=100, every=10):
    """Samples as run_mode() appends them: (t, writes a VM, verified a VM, QEMU CPU a VM,
    the mechanism's CPU, kswapd's, the QEMUs' user s, their system s), two VMs."""
    out = []
    for t in range(every, seconds + 1, every):
        user, sys_ = user_per_s * t, sys_per_s * t
        out.append((float(t), [writes_per_s * t // 2] * 2, [t] * 2, [(user + sys_) / 2] * 2,
                    0.1 * t, 0.0, user, sys_))
    return out


def main():
    root = sys.argv[1]
    spec = importlib.util.spec_from_file_location(
        "race", os.path.join(root, "tests", "testbed", "tiering-race.py"))
    race = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(race)
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append(f"{what}: {got!r}, want {want!r}")

    ticks = [(i, float(i), [1.0, 1.0]) for i in range(101)]
    none = race.cost_figures(series(1.8, 0.05, 20000), ticks, 50)
    kernel = race.cost_figures(series(1.5, 0.35, 15000), ticks, 50)
    check("window", kernel["steady_window_s"], "50-100")
    check("user a second", kernel["steady_qemu_user_per_s"], "1.500")
    check("system a second", kernel["steady_qemu_sys_per_s"], "0.350")
    check("both a second", kernel["steady_qemu_cpu_per_s"], "1.850")
    check("whole-mode system", kernel["whole_qemu_sys_per_s"], "0.350")
    none2 = race.cost_figures(series(1.6, 0.05, 18000), ticks, 50)
    results = [dict(mode="none", **none), dict(mode="kernel", **kernel),
               dict(mode="none.2", **none2)]
    (line,) = race.cost_table(results)
    check("against", line["against"], "none,none.2")
    # the share of both hides the hint faults (1.85 / 1.75); user and system apart do not
    check("QEMU CPU ratio", line["steady_qemu_cpu_per_s_ratio"], "1.057")
    check("user ratio", line["steady_qemu_user_per_s_ratio"], "0.882")
    check("system ratio", line["steady_qemu_sys_per_s_ratio"], "7.000")
    check("writes ratio", line["steady_writes_per_s_ratio"], "0.789")
    for f in failures:
        print(f"check-race-cost: FAIL: {f}")
    if not failures:
        print("check-race-cost: 9 checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
