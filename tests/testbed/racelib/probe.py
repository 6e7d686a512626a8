# SPDX-License-Identifier: GPL-2.0-or-later
"""The hot sets on DRAM, read every second by hot-probe (tests/testbed/hot-probe.c) on its
own schedule, and what a mode's ticks say: which window of a shifting hot set was hot when,
how long each new hot set took to be 99% on DRAM, the VMs' RAM on DRAM."""
import os
import subprocess

from e2elib.common import PAGE, Failed
from racelib.cpu import cpu_s


class HotProbe:
    """hot-probe (tests/testbed/hot-probe.c) over every VM's hot set, one tick a second from
    start, into DIR/race-probe-MODE.txt; ticks() reads back (t since t0, fractions...).
    With a shifting hot set (--shift-every) it reads every window of each VM and the RAM
    around them: a tick's fraction is that of the window hot then (ShiftWatch), and
    dram_ticks() gives each VM's RAM on node 0 (pages), for the DRAM pool's check."""

    def __init__(self, opts, mode, vms):
        self.path = os.path.join(opts.out_dir, f"race-probe-{mode}.txt")
        self.sizes = [len(vm.hot) for vm in vms]
        self.vms = vms
        self.shifting = opts.shift_every > 0
        ranges = []
        self.slots = []    # per VM: the indices of its ranges (shifting: windows first)
        for vm in vms:
            if self.shifting:
                mine = vm.windows + vm.around
            else:   # the hot set is one run of pages (layout())
                assert vm.hot[-1] - vm.hot[0] == (len(vm.hot) - 1) * PAGE
                mine = [(vm.hot[0], len(vm.hot))]
            self.slots.append(list(range(len(ranges), len(ranges) + len(mine))))
            ranges += [f"{vm.proc.pid}:{a:#x}:{n}" for a, n in mine]
        self.nr = len(ranges)
        self.out = open(self.path, "w")
        self.proc = subprocess.Popen(
            [opts.hot_probe, "--every-ms", "1000", "--node", "0"] + ranges,
            stdout=self.out, stderr=subprocess.PIPE, text=True)
        self.cpu = 0.0

    def lines(self):
        """[(tick, T (absolute), [pages on node 0 a range])] of the complete lines so far."""
        out = []
        with open(self.path) as f:
            lines = f.read().split("\n")[:-1]
        for line in lines:
            fields = line.split()
            if len(fields) != 2 + 2 * self.nr:
                continue
            out.append((int(fields[0]), float(fields[1]),
                        [int(x) for x in fields[2:2 + self.nr]]))
        return out

    def ticks(self, t0):
        """[(tick, t - t0, [fraction on node 0 a VM])] of the complete lines so far."""
        out = []
        for tick, t, on in self.lines():
            fr = []
            for i, vm in enumerate(self.vms):
                if self.shifting:
                    w = hot_window(list(vm.watch.events), t, vm.first, vm.hot_pages)
                    fr.append(on[self.slots[i][w]] / vm.hot_pages)
                else:
                    fr.append(on[self.slots[i][0]] / self.sizes[i])
            out.append((tick, t - t0, fr))
        return out

    def dram_ticks(self, t0):
        """[(t - t0, [each VM's probed RAM pages on node 0])] (shifting only: all its RAM)."""
        return [(t - t0, [sum(on[j] for j in slot) for slot in self.slots])
                for _, t, on in self.lines()]

    def stop(self):
        """Stops it (by its pid); its CPU seconds in self.cpu. Fails when it had failed."""
        if self.proc is None:
            return
        self.cpu = cpu_s(self.proc.pid)
        failed = self.proc.poll()
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        self.proc = None
        self.out.close()
        if failed is not None:
            raise Failed(f"hot-probe exited {failed}: {err.strip()}")


def hot_window(events, t, first, hot_pages):
    """The index of the window hot at time t: the last shift event read by t (events: (t,
    hot_first_pfn), in time order), else the first window."""
    pfn = first
    for te, p in events:
        if te > t:
            break
        pfn = p
    return (pfn - first) // hot_pages


def recoveries(ticks, shifts, t_end, bar=0.99):
    """After each shift of one VM (shifts: its times, seconds since the mode started, in
    order), the seconds until the new hot set was at bar on DRAM (ticks: (t, fraction) of
    that VM, in order): [(t_shift, seconds or None when it never was before the next shift
    or t_end, the seconds it had)]."""
    out = []
    for i, ts in enumerate(shifts):
        until = shifts[i + 1] if i + 1 < len(shifts) else t_end
        done = next((t - ts for t, f in ticks if ts <= t < until and f >= bar), None)
        out.append((ts, done, until - ts))
    return out


def recovery_summary(recs):
    """'k/n reached, median M s, max X s' of recoveries() (n: shifts with at least 10 s
    before the next one or the mode's end, so a shift at the very end does not count)."""
    fair = [r for r in recs if r[2] >= 10]
    done = sorted(r[1] for r in fair if r[1] is not None)
    if not fair:
        return "no shift"
    if not done:
        return f"0/{len(fair)} reached"
    return (f"{len(done)}/{len(fair)} reached, median {done[len(done) // 2]:.0f} s, "
            f"max {done[-1]:.0f} s")


def shift_figures(vms, ticks, dram, shifts0, t0, t_end, steady_from):
    """A shifting hot set's figures over one mode: each VM's shifts in it and how long the
    new hot set took to be 99% on DRAM (recoveries()), and the VMs' RAM on node 0 (pages,
    summed over the VMs: the DRAM a mechanism gave them, against hmmvd's pool) at most and
    on average from steady_from."""
    out = {}
    for i, vm in enumerate(vms):
        times = [te - t0 for te, _ in vm.watch.events[shifts0[vm.name]:]
                 if 0 <= te - t0 <= t_end]
        recs = recoveries([(t, fr[i]) for _, t, fr in ticks], times, t_end)
        out[f"{vm.name}_shifts"] = len(times)
        out[f"{vm.name}_recovery"] = recovery_summary(recs).replace(" ", "_")
        out[f"{vm.name}_recovery_s"] = ",".join(
            f"{r[1]:.0f}" if r[1] is not None else f"never({r[2]:.0f})" for r in recs) or "-"
    sums = [(t, sum(p)) for t, p in sorted(dram.items())]
    steady = [p for t, p in sums if t >= steady_from]
    if sums:
        out["ram_on_dram_pages_max"] = max(p for _, p in sums)
        out["ram_on_dram_pages_steady_max"] = max(steady) if steady else "n/a"
        out["ram_on_dram_pages_steady_mean"] = (f"{sum(steady) / len(steady):.0f}"
                                                if steady else "n/a")
    return out
