# SPDX-License-Identifier: GPL-2.0-or-later
"""The migration cap (hmmvd's [policy] migrate-mbps, per VM, in bytes) where it binds.

At hmmvd's start every page of the nested VMs is on DRAM (first touch) and the pool is a
sixth of their footprint, so hmmvd must demote thousands of pages at once: the cap holds
them back for tens of intervals. With THP or hugetlbfs RAM a unit is a 2 MiB page, 512 of the
cap's 4 KiB pages: a cap counted in units instead of bytes would let ~976 of them (2 GB) go in
one interval. CapWatch samples, many times an interval, hmmvd's per-VM figures of its last
interval (vms: last-good-interval, moved-cap-pages, deferred-cap-pages) and the kernel's
migrations by move_pages(2) (the migrate:mm_migrate_pages tracepoint, reason
syscall_or_cpuset; pgmigrate_success without it). check() then asks, from counts only:
  - hmmvd's own count: no interval it reported moved more than the cap's pages;
  - the cap bound: hmmvd reported moves held back by the VM's cap (deferred-cap-pages less
    what the batch limit and the host-wide cap held back) in at least min_bound intervals, and in those it had moved more than the cap less one unit (the next
    unit did not fit: the cap, not something else, stopped it);
  - the kernel's count, independent of hmmvd's: between any two samples the kernel migrated
    at most (intervals that ended between them + 2) caps a VM (the interval running at the
    second sample, and tracepoint events of the one before the first read late), and over the stretch in which every VM was held back by the cap it
    migrated at least (its intervals - 1) x (cap - unit + 1) pages a VM: it moved at the
    cap's rate, within a unit.
"""
import threading
import time

from e2elib.common import Failed, say


class CapWatch:
    def __init__(self, hmmvd, migs, names, cap, unit, intervals, period=0.1):
        """names: the VMs; cap: pages a VM an interval; unit: the largest unit in pages;
        intervals: stop after this many of hmmvd's intervals were seen."""
        self.ctl, self.migs, self.names = hmmvd.ctl, migs, list(names)
        self.cap, self.unit, self.limit, self.period = cap, unit, intervals, period
        self.samples = []      # (hmmvd's newest interval, kernel move_pages, pgmigrate_success)
        self.per = {}          # (vm, interval) -> (moved-cap-pages, pages the VM's cap
        #                         held back, deferred-batch-pages)
        self.error = None
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        first = None
        while not self.stop_ev.wait(self.period):
            try:
                rows = {v["name"]: v for v in self.ctl.request("vms")}
            except (OSError, ValueError, Failed):
                continue   # not serving yet
            seen = [rows[n].get("last-good-interval") for n in self.names if n in rows]
            if len(seen) < len(self.names) or None in seen:
                continue   # not every VM has had a good interval yet
            mp, total = self.migs.quick()
            # hmmvd's newest interval: a VM paused in hmmvd (the placement checkpoints)
            # may lag behind in its own last-good-interval
            now = max(seen)
            if first is None:
                first = now
            self.samples.append((now, mp, total))
            for n in self.names:
                v = rows[n]
                self.per[(n, v["last-good-interval"])] = (
                    v.get("moved-cap-pages", 0),
                    # deferred-cap-pages includes what the batch limit and the host-wide cap
                    # held back (core.h): the VM's own cap held back the rest
                    v.get("deferred-cap-pages", 0) - v.get("deferred-batch-pages", 0)
                    - v.get("deferred-host-cap-pages", 0),
                    v.get("deferred-batch-pages", 0))
            if now - first >= self.limit:
                return

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=30)

    def check(self, failures, min_bound=3):
        self.stop()
        cap, unit, nvm = self.cap, self.unit, len(self.names)
        if len(self.samples) < 2:
            failures.append("cap: the watch took fewer than two samples")
            return
        first, last = self.samples[0][0], self.samples[-1][0]
        traced = self.samples[0][1] is not None
        col = 1 if traced else 2
        seen = {n: sorted(i for (m, i) in self.per if m == n) for n in self.names}
        over = [(n, i, v[0]) for (n, i), v in sorted(self.per.items()) if v[0] > cap]
        bound = {k: v for k, v in self.per.items() if v[1] > 0}
        full = [k for k, v in bound.items() if v[0] > cap - unit]
        say(f"e2e: cap: {cap} pages a VM an interval (largest unit {unit}), intervals "
            f"{first}-{last} watched in {len(self.samples)} samples; hmmvd's reports seen: " +
            ", ".join(f"{n} {len(s)}" for n, s in seen.items()) +
            f"; held back by the cap in {len(bound)} VM intervals (moved "
            f"{min((v[0] for v in bound.values()), default=0)}-"
            f"{max((v[0] for v in bound.values()), default=0)} in them, "
            f"{len(full)} within a unit of the cap); largest moved "
            f"{max((v[0] for v in self.per.values()), default=0)}; batch held back in "
            f"{sum(1 for v in self.per.values() if v[2] > 0)}")
        for n, i, moved in over[:4]:
            failures.append(f"cap: hmmvd says {n} moved {moved} pages in interval {i}, over "
                            f"the cap of {cap}")
        if len(bound) < min_bound:
            failures.append(f"cap: the cap held moves back in {len(bound)} VM intervals "
                            f"(want {min_bound}): it did not bind")
        if bound and not full:
            failures.append("cap: in no interval the cap held back was the cap used to "
                            f"within a unit ({unit} pages): something else stopped the moves")
        # the kernel's count between samples
        worst = None
        for (i0, *k0), (i1, *k1) in zip(self.samples, self.samples[1:]):
            moved = k1[col - 1] - k0[col - 1]
            allowed = (i1 - i0 + 2) * cap * nvm
            if moved > allowed:
                failures.append(f"cap: the kernel migrated {moved} pages while hmmvd's "
                                f"intervals went {i0} -> {i1}, over {allowed}")
            if worst is None or moved / allowed > worst[0]:
                worst = (moved / allowed, moved, i0, i1)
        # the stretch in which every VM was held back, by the kernel's count
        both = sorted(i for i in range(first, last + 1)
                      if all((n, i) in bound for n in self.names))
        run = longest_run(both)
        stretch = ""
        if len(run) >= 2:
            inside = [s for s in self.samples if run[0] <= s[0] <= run[-1]]
            if len(inside) >= 2:
                k = inside[-1][0] - inside[0][0]
                moved = inside[-1][col] - inside[0][col]
                want = max(k - 1, 0) * (cap - unit + 1) * nvm
                stretch = (f"; intervals {inside[0][0]}-{inside[-1][0]}, every VM held back: "
                           f"kernel {moved} pages in {k} intervals "
                           f"({moved / max(k, 1) / nvm:.0f} a VM an interval, want > "
                           f"{cap - unit} and <= {cap})")
                if moved < want:
                    failures.append(f"cap: while hmmvd held every VM's moves back for the cap "
                                    f"(intervals {inside[0][0]}-{inside[-1][0]}) the kernel "
                                    f"migrated {moved} pages, under the {want} the cap "
                                    f"allowed less a unit: the cap is not what bound them")
        say(f"e2e: cap: kernel ({'move_pages by tracepoint' if traced else 'pgmigrate_success'}"
            f"): fullest window {worst[1] if worst else 0} pages in intervals "
            f"{worst[2] if worst else '-'}-{worst[3] if worst else '-'} "
            f"({worst[0] if worst else 0:.2f} of its bound){stretch}")
        print(f"testbed: cap pages={cap} unit={unit} bound_intervals={len(bound)} "
              f"largest_interval={max((v[0] for v in self.per.values()), default=0)} "
              f"kernel_fullest_window={worst[0] if worst else 0:.2f}", flush=True)


def longest_run(xs):
    """The longest run of consecutive integers in sorted xs."""
    best, cur = [], []
    for x in xs:
        cur = cur + [x] if cur and x == cur[-1] + 1 else [x]
        if len(cur) > len(best):
            best = cur
    return best
