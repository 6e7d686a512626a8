#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmvd against Linux's own tiering, live, inside the testbed (kernel 6.12, 2node layout).

--vms nested VMs of the patched QEMU ($HMMV_QEMU) run the verify guest (a static hot set of
--hot-mib, --cold-mib of cold data, 98% of the writes to the hot set, every write checking a
word first). They are started once and race every mode in turn. Before each mode the same
start is laid out: every VM's hot set is moved to the slow node 1 and its cold data to node 0
(move_pages(2), MPOL_MF_MOVE_ALL), then node 0's remaining free memory is taken down to
--dram-free-mib by a reservation of 2 MiB hugetlb pages on node 0 (no tiering system can move
them: not on an LRU list, not in a VM), so the VMs' cold data fills the DRAM that is left;
when the kernel gives fewer huge pages than asked, the node is compacted and the caches
dropped and the pool grown again (3 times at most), and what is left above the target is
taken by locked 4 KiB pages this script holds on node 0 (racelib/fill.py). The free memory
reached is read back and printed at every mode's start; more than 4 MiB off the target fails
the mode (and the run). By default that leaves room for the hot sets twice over above node 0's high watermark
(/proc/zoneinfo, read after THP is turned off: the kernel promotes into a node only above it;
free_target_mib() says why); a value at or below the high watermark is refused.
Then, for --seconds:
  hmmvd    hmmvd standalone, numa mover, no pool (dram-pool-mib = 0: node 0's capacity, as
           the kernel has), node-reserve-mib = --reserve-mib; NUMA balancing and kernel
           demotion off
  hmmvd-pool  the same with dram-pool-mib = --pool-mib, smaller than the cold data the VMs
           hold on node 0: hmmvd must demote it (a quota the kernel knows nothing about)
  hmmvd-writes  hmmvd as in mode hmmvd with [reads] source = none: write tracking only, no
           DAMON read tracker (not in the default modes: where hmmvd's own cost comes from)
  kernel   numa_balancing = 2 (memory tiering: hint-fault promotion) and demotion_enabled =
           true (kswapd demotes to node 1); the kernel's other knobs at their defaults
  damos    two kdamonds this script creates (paddr; DAMON sysfs) and removes afterwards: one
           over node 1's physical range with migrate_hot to node 0, one over node 0's with
           migrate_cold to node 1 (the pairing of the kernel's samples/damon/mtier.c, with
           fixed thresholds: 6.12 has no node-memory quota goals); thresholds below
  none     nothing moves pages
Read back every second, on its own schedule: each VM's hot pages on node 0, by hot-probe
(--hot-probe; tests/testbed/hot-probe.c: move_pages(2) status queries with arrays built once,
one line a tick into DIR/race-probe-MODE.txt; gathered into DIR/race-hot.tsv, one line a
second: mode, seconds since the mode started, each VM's fraction). Every --sample-every
seconds (default 5; this process's sampler, python: its samples took 1-6 s and 16-24 CPU s a
mode when it read the hot sets itself every second): /proc/vmstat's pgmigrate_success,
pgpromote_success and pgdemote_*, hmmvd's promotions and demotions, the kdamonds' DAMOS
sz_applied, and each guest's writes (its progress lines), and the CPU time the guests'
QEMUs, the mechanism (hmmvd; the kdamonds) and the kernel's kswapd0/kcompactd0 used. One TSV
line a sample (DIR/race.tsv, its hot-set columns the probe's latest) and a summary line per
mode on stdout ("race: mode=... ..."; the hot-set figures from the probe's ticks), which
splits the mode's migrations by the kernel's reason (the mm_migrate_pages tracepoint:
syscall_or_cpuset = move_pages, numa_misplaced = hint-fault promotion, demotion, damon,
compaction, ...). In the hmmvd modes also DIR/race-MODE.tsv (hmmvd's view a sample:
its intervals, skipped intervals, budget, DRAM, hot pages and last interval's moves per VM)
and DIR/race-MODE.log (its log, each line stamped with the seconds since the mode started).
Every mode: DIR/kernel-state-MODE-start.txt and -end.txt (node 0's /proc/zoneinfo and
/proc/vmstat, after the fill and at the end: the zones' free pages and kswapd's counters). With gnuplot, DIR/race-hot.png (hot set on DRAM over time),
DIR/race-writes.png (guest progress) and DIR/race-moves.png (pages migrated). The guests check
every page at the end; any bad word fails the run.

The cost to the guests (issue 8: "cost the guests less" than the kernel): each mode's summary
has rates over its steady window (--steady-from seconds to its end: steady_*) and over the
whole mode (whole_*): the guests' writes and verified pages a second, their QEMUs' CPU s a
second, the mechanism's (hmmvd, the kdamonds) and kswapd + kcompactd's, and the hot sets'
mean on DRAM in the window. With `none` named several times between the other modes
(--modes none,hmmvd-writes,kernel,none,hmmvd-writes,kernel,none), each other mode's rates are
also given as ratios to the mean of its nearest `none` before and after it (and the writes
per QEMU CPU second: the outer host's load changes the testbed's speed, so writes a second
swing up to 2x between two `none` modes of one run, 2026-12-03, the CPU shares far less) ("cost: " lines
at the end and DIR/race-cost.tsv), so a load that drifts over the run cancels as far as it
is linear between the neighbours. The QEMUs' user and system time are rated apart
(qemu_user_per_s, qemu_sys_per_s): the kernel's NUMA hint faults, and the promotions done in
them, run in the QEMU threads' context as system time, so a share of both counts the kernel's
cost as CPU the guests got; the guests' own progress (writes) against `none` is what a mode
cost them. Each mode also reports the kernel's NUMA balancing counters over it (numa_counters:
numa_pte_updates, numa_hint_faults, numa_hint_faults_local, pgpromote_candidate,
pgpromote_success; race.tsv's last columns per sample): a kernel mode whose scanner marked
nothing did no work.

The kernel keeps NUMA balancing's state in the processes (each thread's scan period, which the
first kernel mode's promotions double up to its maximum of 60 s: in memory-tiering mode every
hint fault it records is remote and private, and a scan window without local or shared faults
slows the scan; the mm's scan position; each VMA's scan sequence and the PIDs that touched it,
without which a VMA is skipped); numa_balancing = 0 neither resets nor ages it. On the same
QEMUs a later kernel mode started where the first left off (2026-12-03: 99% of the hot sets,
then 26-44%, then nothing). So by default (--fresh-vms kernel) a kernel mode after another
runs on new VMs: the old ones end with every page checked, new QEMUs start, fill and are laid
out like the first (serial-NAME.gN.log). The kernel's defaults and pgdat's promotion state
(threshold, rate limit) are left as they are.

A hot set that shifts (--shift-every N, issue 8: with a static hot set the kernel's scanner
stops marking once the hot sets are on DRAM, so it costs nothing there): the guests move their
hot set by its size through the window every N writes (HMMV-VERIFY-SHIFT lines, read as they
come by ShiftWatch), every window page starts a mode on node 1, and the probe reads every
window and the RAM around it: a tick's fraction is that of the window hot then; per mode each
VM's shifts and the seconds each new hot set took to be 99% on DRAM (VM_recovery_s,
VM_recovery), and the VMs' RAM on node 0 (ram_on_dram_pages_*: against hmmvd's pool in
hmmvd-pool and hmmvd-writes-pool, which is hmmvd-pool with writes only; the kernel knows no
pool). DIR/race-dram.png plots it. A reference VM (--reference): the same guest on the
testbed's CPU 1, its RAM bound to node 0 and locked, which no mechanism here moves or scans
(checked at each mode's end: ref_on_node0), while this script, all it starts and kswapd /
kcompactd run on CPU 0: its writes a second are the testbed's speed at the time, and the
raced guests' writes per reference write (writes_per_ref, rated against `none` as above)
cancel the outer host's swings.

Before/after in one run: --hmmvd-base PATH (another build of hmmvd) and the hmmvd modes with
"-base" appended (hmmvd-base, hmmvd-writes-base, ...) run that build in the same way. A mode
named again in --modes runs again, as MODE.2, MODE.3, ... (so A,B,A,B alternates two builds
against the load's drift).

The parts are in racelib/ beside this file, one concern a module: fill (node 0's free
memory), kernel (the kernel's knobs, DAMOS, the migrations by reason), vms (the nested VMs),
probe (the hot sets on DRAM), cpu (CPU time, hmmvd's start-up, perf), figures (the cost
figures and the plots); this file runs the modes.

usage: tiering-race.py --hmmvd PATH --guest guest.elf [--hot-probe PATH] [--out-dir DIR]
       [--modes hmmvd,hmmvd-pool,kernel,damos,none] [--seconds 150] [--hmmvd-base PATH]
       [--shift-every N] [--reference] [--pool-mib 40]
       (DIR defaults to $TESTBED_OUT; use testbed --keep-out; --hot-probe defaults to
       tests/testbed/hot-probe in hmmvd's build tree)
"""
import argparse
import importlib.util
import os
import resource
import shutil
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "hmmvd-e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
say, skip, Failed, wait_for = e2e.say, e2e.skip, e2e.Failed, e2e.wait_for
node_free_mib = e2e.node_free_mib
# the parts, one concern a module (racelib/, beside this file: hmmvd-e2e.py put this
# directory on sys.path); the names tests/check-race-*.py use are reached as race.NAME
from racelib.cpu import (Perf, StartupSampler, cpu_s, cpu_split,  # noqa: E402
                         exec_cost, kthreads, threads_cpu)
from racelib.figures import cost_figures, cost_table, plot  # noqa: E402
from racelib.fill import Fill, free_target_mib, zone_watermarks  # noqa: E402
from racelib.kernel import (NUMA_COUNTERS, Damos, MigrateReasons,  # noqa: E402
                            kdamonds_running, move, read_sys, settle, snapshot,
                            vmstat_all, write_sys)
from racelib.probe import (HotProbe, hot_window, recoveries,  # noqa: E402,F401
                           recovery_summary, shift_figures)
from racelib.vms import (RaceVm, ShiftWatch, check_alive, finish_vms,  # noqa: E402,F401
                         start_vms)

PAGE = 4096
MODES = ("hmmvd", "hmmvd-pool", "kernel", "damos", "none", "hmmvd-writes", "hmmvd-writes-pool")
DEFAULT_MODES = MODES[:5]
BASE = "-base"   # an hmmvd mode with this suffix runs --hmmvd-base
HMMVD_FIELDS = ("budget-pages", "dram-pages", "hot-pages", "written-pages", "promoted-pages",
                "demoted-pages", "deferred-cap-pages", "deferred-room-pages",
                "placement-unread-pages", "intervals-merged", "watch", "rescan-gap",
                "plans-kept-total")


def run_mode(mode, opts, vms, work, out, reasons, hot_out, ref=None):
    """One mode over the running VMs (and the reference VM ref, which it only watches);
    returns its summary."""
    hmmvd = fill = damos = perf = probe = None
    hout = None
    try:
        settle()
        for vm in vms:
            check_alive(vms)
            if opts.shift_every:
                # every window slow: whichever the guest heats next starts on node 1
                on1 = move(vm.proc.pid, vm.hot + vm.cold, 1)
                say(f"race: {mode}: {vm.name}: {on1}/{len(vm.hot) + len(vm.cold)} window "
                    f"pages on node 1 (the hot set shifts)")
            else:
                on1 = move(vm.proc.pid, vm.hot, 1)
                on0 = move(vm.proc.pid, vm.cold, 0)
                say(f"race: {mode}: {vm.name}: hot {on1}/{len(vm.hot)} pages on node 1, "
                    f"cold {on0}/{len(vm.cold)} on node 0")
        fill = Fill(opts.dram_free_mib)
        free0 = node_free_mib(0)
        say(f"race: {mode}: fill: {fill.describe()}; at the mode's start node 0 free {free0} "
            f"MiB, node 1 free {node_free_mib(1)} MiB")
        start = {vm.name: sum(1 for n in e2e.kernel_nodes(vm.proc.pid, vm.hot) if n == 0)
                 for vm in vms}
        leftover = kdamonds_running()
        if leftover:
            say(f"race: {mode}: {leftover} kdamond(s) running before the mode starts "
                f"(left by an earlier mode)")
        flagged0 = snapshot(os.path.join(opts.out_dir, f"kernel-state-{mode}-start.txt"))
        if flagged0:
            # kswapd gave up on node 0 earlier in the run (an hmmvd mode took it under its min
            # watermark with demotion off and no swap): the kernel's wake-ups leave it alone,
            # so a kernel mode here demotes nothing (BENCHMARKS.md, the squeeze, run 3)
            say(f"race: {mode}: WARNING: node 0 is flagged node_unreclaimable at the mode's "
                f"start: kswapd will not demote from it in this mode")
        v0 = vmstat_all()
        w0 = {vm.name: vm.writes() for vm in vms}
        ref0 = ref.writes() if ref else 0
        shifts0 = {vm.name: len(vm.watch.events) for vm in vms}
        v0w = {vm.name: vm.writes("verified_pages") for vm in vms}
        bad0 = {vm.name: vm.corrupt_words() for vm in vms}
        reasons.reset()
        kswapd = kthreads(("kswapd", "kcompactd"))
        c0 = {vm.name: cpu_s(vm.proc.pid) for vm in vms}
        us0 = [cpu_split(vm.proc.pid) for vm in vms]
        k0 = sum(cpu_s(p) for p in kswapd)
        t0 = time.monotonic()
        probe = HotProbe(opts, mode, vms)
        t_managed = None
        # a mode named again in --modes runs again as MODE.2, MODE.3, ... (its files too)
        name = mode.split(".")[0]
        kind = name[:-len(BASE)] if name.endswith(BASE) else name
        if kind.startswith("hmmvd"):
            hopts = argparse.Namespace(**vars(opts))
            hopts.pool_mib = opts.pool_mib if kind.endswith("-pool") else 0
            hopts.reads_source = "none" if kind.startswith("hmmvd-writes") else None
            if name.endswith(BASE):
                hopts.hmmvd = opts.hmmvd_base
            hmmvd = e2e.Hmmvd(hopts, work, vms, mode, t0=t0)
            sampler = StartupSampler(hmmvd.proc.pid,
                                     os.path.join(opts.out_dir, f"race-{mode}-startup.tsv"), t0)
            try:
                wait_for("hmmvd manages every VM", 180, lambda: e2e.managed(hmmvd, vms))
            finally:
                sampler.stop()
            t_managed = time.monotonic() - t0
            hout = open(os.path.join(opts.out_dir, f"race-{mode}.tsv"), "w")
            hout.write("t\tintervals\tintervals_skipped\tlast_interval_ms\thmmvd_cpu\t"
                       "hmmvd_threads_cpu\t" +
                       "\t".join(f"{vm.name}_{f}" for vm in vms for f in HMMVD_FIELDS) + "\n")
        elif kind == "kernel":
            write_sys("/sys/kernel/mm/numa/demotion_enabled", "true")
            write_sys("/proc/sys/kernel/numa_balancing", 2)
        elif kind == "damos":
            try:
                damos = Damos(opts)
            except OSError as e:
                raise Failed(f"damos: setting up the kdamonds: {e}")
        elif kind != "none":
            raise Failed(f"unknown mode {mode}")
        agent = ([hmmvd.proc.pid] if hmmvd else
                 kthreads(("kdamond",)) if damos else [])
        prom = dem = 0
        samples = 0
        table = {}     # hmmvd's last answer to vms
        # the kdamonds are kernel threads that live across modes: their CPU from here
        a0 = sum(cpu_s(p) for p in agent) if damos else 0.0
        perf = Perf(opts, mode, hmmvd.proc.pid) if hmmvd and opts.perf else None
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        # t0 is before hmmvd's start-up: its time to manage the VMs counts against it
        t_loop = time.monotonic() - t0
        sec = 0
        # (t, each VM's writes and verified pages, each QEMU's CPU s, the mechanism's CPU s,
        # kswapd + kcompactd) since the mode started, a sample each: the cost figures
        series = []
        while sec <= opts.seconds:
            time.sleep(max(0.0, t0 + sec - time.monotonic()))
            sec = min(opts.seconds + 1, (int(time.monotonic() - t0) // opts.sample_every + 1)
                      * opts.sample_every)
            check_alive(vms)
            if hmmvd and not hmmvd.alive():
                raise Failed(f"hmmvd exited {hmmvd.proc.returncode} mid-run")
            v = vmstat_all()
            now = time.monotonic() - t0
            row = [mode, f"{now:.1f}"]
            ticks = probe.ticks(t0)
            last = ticks[-1][2] if ticks else [float("nan")] * len(vms)
            for i, vm in enumerate(vms):
                row += [f"{last[i]:.4f}", str(vm.writes() - w0[vm.name])]
            mig = v["pgmigrate_success"] - v0["pgmigrate_success"]
            # hmmvd's own view (control socket: vms, status) every --hmmvd-every samples:
            # answering is hmmvd's CPU, charged to it (the read-back above is this process's)
            ask = hmmvd is not None and (samples % opts.hmmvd_every == 0 or sec > opts.seconds)
            samples += 1
            if hmmvd:
                if ask:
                    table = hmmvd.table() or {}
                    prom, dem, _ = hmmvd.moves()
            elif kind == "kernel":
                prom = v.get("pgpromote_success", 0) - v0.get("pgpromote_success", 0)
                dem = sum(v[k] - v0.get(k, 0) for k in v if k.startswith("pgdemote_"))
            elif kind == "damos":
                prom, dem = damos.applied()
            row += [str(mig), str(prom), str(dem)]
            # CPU seconds since the mode started: each VM's QEMU, the mechanism's own
            # (hmmvd, the kdamonds), kswapd0 + kcompactd0
            row += [f"{cpu_s(vm.proc.pid) - c0[vm.name]:.1f}" for vm in vms]
            row += [f"{sum(cpu_s(p) for p in agent):.1f}",
                    f"{sum(cpu_s(p) for p in kswapd) - k0:.1f}"]
            us = [cpu_split(vm.proc.pid) for vm in vms]
            user = sum(u[0] - b[0] for u, b in zip(us, us0))
            sys_ = sum(u[1] - b[1] for u, b in zip(us, us0))
            row += [f"{user:.1f}", f"{sys_:.1f}"]
            row += [str(v.get(k, 0) - v0.get(k, 0)) for k in NUMA_COUNTERS]
            out.write("\t".join(row) + "\n")
            out.flush()
            series.append((now, [vm.writes() - w0[vm.name] for vm in vms],
                           [vm.writes("verified_pages") - v0w[vm.name] for vm in vms],
                           [cpu_s(vm.proc.pid) - c0[vm.name] for vm in vms],
                           sum(cpu_s(p) for p in agent) - a0,
                           sum(cpu_s(p) for p in kswapd) - k0, user, sys_) +
                          ((ref.writes() - ref0,) if ref else ()))
            if hout and ask:
                st = hmmvd.ctl.request("status")
                threads = threads_cpu(hmmvd.proc.pid)
                hout.write("\t".join(
                    [f"{now:.1f}", str(st["intervals"]), str(st.get("intervals-skipped", "")),
                     f"{st.get('last-interval-ns', 0) / 1e6:.0f}",
                     f"{cpu_s(hmmvd.proc.pid):.1f}",
                     ",".join(f"{n}:{c:.1f}" for n, c in sorted(threads.items()))] +
                    [str(table.get(vm.name, {}).get(f, "")) for vm in vms
                     for f in HMMVD_FIELDS]) + "\n")
                hout.flush()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        flagged1 = snapshot(os.path.join(opts.out_dir, f"kernel-state-{mode}-end.txt"))
        t_end = time.monotonic() - t0
        probe.stop()
        ticks = [t for t in probe.ticks(t0) if t[1] <= t_end]
        if not ticks:
            raise Failed("hot-probe wrote no tick")
        dram = dict(probe.dram_ticks(t0)) if opts.shift_every else {}
        for tick, t, fr in ticks:
            hot_out.write("\t".join([mode, f"{t:.2f}"] + [f"{x:.4f}" for x in fr] +
                                    [str(x) for x in dram.get(t, [])]) + "\n")
        hot_out.flush()
        names = [vm.name for vm in vms]
        # the mean over the ticks from when the sampler began (hmmvd: once it managed the
        # VMs, as before the probe), and over all from the mode's start
        fractions = {n: [fr[i] for _, t, fr in ticks if t >= t_loop] or [ticks[-1][2][i]]
                     for i, n in enumerate(names)}
        fractions_all = {n: [fr[i] for _, _, fr in ticks] for i, n in enumerate(names)}
        first_full = {}
        for _, t, fr in ticks:
            for i, n in enumerate(names):
                if fr[i] >= 0.99 and n not in first_full:
                    first_full[n] = t
        if perf:
            perf.stop()   # recording only: the report comes after the mode
        writes = {vm.name: vm.writes() - w0[vm.name] for vm in vms}
        by_thread = threads_cpu(hmmvd.proc.pid) if hmmvd else {}
        # kdamonds alive now: DAMOS's, or hmmvd's read tracker's (created in this mode)
        kdamond_cpu = sum(cpu_s(p) for p in kthreads(("kdamond",)))
        v_end = vmstat_all()
        migrated = v_end["pgmigrate_success"] - v0["pgmigrate_success"]
        us = [cpu_split(vm.proc.pid) for vm in vms]
        by_reason = {k: v for k, v in reasons.read().items() if v}
        gained = sum(fractions[vm.name][-1] * len(vm.hot) - start[vm.name] for vm in vms)
        summary = dict(
            mode=mode,
            hot_on_dram_final=",".join(f"{n}:{f[-1]:.3f}" for n, f in fractions.items()),
            hot_on_dram_mean=",".join(f"{n}:{sum(f) / len(f):.3f}"
                                      for n, f in fractions.items()),
            hot_on_dram_mean_from_start=",".join(f"{n}:{sum(f) / len(f):.3f}"
                                                 for n, f in fractions_all.items()),
            probe_ticks=f"{len(ticks)}/{ticks[-1][0] - ticks[0][0] + 1}",
            probe_cpu_s=f"{probe.cpu:.1f}",
            t99=",".join(f"{n}:{first_full[n]:.0f}s" if n in first_full else f"{n}:never"
                         for n in fractions),
            writes=",".join(f"{n}:{w}" for n, w in writes.items()),
            promoted=prom, demoted=dem, migrated=migrated,
            migrated_by_reason=(",".join(f"{k}:{v}" for k, v in sorted(by_reason.items()))
                                or "none") if reasons.ok else "n/a",
            churn=(f"{migrated / gained:.2f}" if gained > 0 and not opts.shift_every
                   else "n/a"),
            qemu_cpu_s=",".join(f"{vm.name}:{cpu_s(vm.proc.pid) - c0[vm.name]:.0f}"
                                for vm in vms),
            qemu_user_sys_s=",".join(f"{vm.name}:{u[0] - b[0]:.0f}/{u[1] - b[1]:.0f}"
                                     for vm, u, b in zip(vms, us, us0)),
            # the kernel's NUMA balancing over the mode: PTEs its scanner made PROT_NONE,
            # the hint faults they took, the slow-node pages it found hot enough
            # (pgpromote_candidate): the scanner did no work when the first is 0
            numa_counters=",".join(f"{k}:{v_end.get(k, 0) - v0.get(k, 0)}"
                                   for k in NUMA_COUNTERS),
            agent_cpu_s=f"{sum(cpu_s(p) for p in agent):.0f}",
            kswapd_kcompactd_cpu_s=f"{sum(cpu_s(p) for p in kswapd) - k0:.0f}",
            kdamond_cpu_s=f"{kdamond_cpu:.0f}",
            kdamonds_on_at_start=leftover,
            sampler_cpu_s=f"{r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime:.0f}",
            node0_free_mib_at_start=free0,
            node0_free_mib_at_end=node_free_mib(0),
            node0_unreclaimable_start_end=f"{flagged0}/{flagged1}",
            fill=f"{fill.pages}x2MiB+{fill.held_mib}MiB_held({fill.compactions}_compactions)",
            # bad words the guests found during this mode (and the ones before it)
            corrupt_words_in_mode=",".join(
                f"{vm.name}:{vm.corrupt_words() - bad0[vm.name]}(before:{bad0[vm.name]})"
                for vm in vms))
        if hmmvd:
            # hmmvd's failed page moves over the mode by cause, summed over the VMs of its last
            # answer (no-memory: move_pages' ENOMEM; issue 8, zonefree)
            fails = {}
            for v in (table or {}).values():
                for k, n in v.get("move-failures", {}).items():
                    fails[k] = fails.get(k, 0) + n
            summary["move_failures"] = ",".join(
                f"{k}:{n}" for k, n in sorted(fails.items()) if n) or "none"
        if by_thread:   # threads alive at the end (a finished GTask thread's time is gone)
            summary["hmmvd_threads_cpu_s"] = ",".join(
                f"{n}:{c:.0f}" for n, c in sorted(by_thread.items(), key=lambda x: -x[1])[:4])
        if t_managed is not None:
            summary["managed_after_s"] = f"{t_managed:.0f}"
        if opts.shift_every:
            summary.update(shift_figures(vms, ticks, dram, shifts0, t0, t_end,
                                         opts.steady_from))
        if ref:
            summary["ref_writes"] = ref.writes() - ref0
            on0 = sum(1 for n in e2e.kernel_nodes(ref.proc.pid, ref.hot + ref.cold) if n == 0)
            summary["ref_on_node0"] = f"{on0}/{len(ref.hot) + len(ref.cold)}"
        summary.update(cost_figures(series, ticks, opts.steady_from))
        say("race: " + " ".join(f"{k}={v}" for k, v in summary.items()))
        return summary
    finally:
        if hout:
            hout.close()
        if probe:
            try:
                probe.stop()
            except Failed as e:
                say(f"race: {mode}: {e}")
        if perf:
            perf.stop()
        if hmmvd:
            hmmvd.stop()
            shutil.copy(hmmvd.log, os.path.join(opts.out_dir, f"race-{mode}.log"))
        if perf:
            perf.report()
        if damos:
            damos.stop()
        settle()
        if fill:
            fill.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmmvd", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--out-dir", default=os.environ.get("TESTBED_OUT"))
    ap.add_argument("--modes", default=",".join(DEFAULT_MODES))
    ap.add_argument("--vms", type=int, default=2)
    ap.add_argument("--mem-mib", type=int, default=64)
    ap.add_argument("--hot-mib", type=int, default=8)
    ap.add_argument("--cold-mib", type=int, default=48)
    # 150: hmmvd took 36-125 s to manage both VMs at load 14-21 (its start-up counts
    # against it), and 90 s left it no time at 125
    ap.add_argument("--seconds", type=int, default=150)
    ap.add_argument("--steady-from", type=int, default=50,
                    help="seconds from a mode's start where its steady window begins (the "
                         "cost figures' steady_* rates run from there to the mode's end)")
    ap.add_argument("--report-every", type=int, default=20000,
                    help="guest writes between progress lines (the progress resolution)")
    ap.add_argument("--fill-deadline", type=int, default=900)
    ap.add_argument("--dram-free-mib", type=int, default=None,
                    help="node 0 free memory left by the hugetlb reservation (default: node "
                         "0's high watermark + twice the VMs' hot sets; refused at or below "
                         "the high watermark)")
    ap.add_argument("--pool-mib", type=int, default=40, help="hmmvd's DRAM pool in hmmvd-pool")
    ap.add_argument("--reserve-mib", type=int, default=8, help="hmmvd's node-reserve-mib")
    ap.add_argument("--interval-ms", type=int, default=500)
    ap.add_argument("--hmmvd-every", type=int, default=1,
                    help="ask hmmvd for its view (vms, status) every N samples (its answers "
                         "cost hmmvd CPU)")
    ap.add_argument("--sample-every", type=int, default=5,
                    help="seconds between this script's samples (writes, CPU, vmstat, "
                         "hmmvd's view); the hot sets are read every second by hot-probe")
    ap.add_argument("--hot-probe", default=None,
                    help="tests/testbed/hot-probe (default: beside hmmvd's build tree)")
    ap.add_argument("--fresh-vms", choices=("kernel", "never"), default="kernel",
                    help="kernel (default): before a kernel mode, when an earlier kernel mode "
                         "ran on the VMs, stop them (every page checked) and start new ones: "
                         "NUMA balancing's state lives in the QEMU processes (each thread's "
                         "scan period, grown to its maximum by the first mode's promotions; "
                         "the mm's scan position; each VMA's scan and access-PID state) "
                         "and numa_balancing 0 neither resets nor ages it, so on the same "
                         "processes a later kernel mode starts where the first left off "
                         "(2026-12-03: 99%%, then 26-44%%, then 0%% of the hot sets). "
                         "never: one set of VMs for every mode")
    ap.add_argument("--hmmvd-base", default=None,
                    help="another hmmvd build, run by the modes named MODE-base")
    ap.add_argument("--shift-every", type=int, default=0,
                    help="guest writes between hot-set shifts (0: a static hot set). The hot "
                         "set moves by its size through the window: every window page starts "
                         "a mode on node 1, the probe reads every window, and the summary "
                         "says how long each new hot set took to be 99%% on DRAM and the "
                         "VMs' RAM on DRAM; --cold-mib a multiple of --hot-mib")
    ap.add_argument("--reference", action="store_true",
                    help="a reference VM (the same guest) on the testbed's CPU 1, its RAM "
                         "bound to node 0 and locked (QEMU mem-lock: no demotion, no NUMA "
                         "scanning, no mechanism here touches it), this script and all it "
                         "starts on CPU 0: its writes a second are the testbed's own speed, "
                         "and the raced guests' writes per reference write cancel its swings")
    ap.add_argument("--perf", action="store_true",
                    help="perf record hmmvd (cpu-clock, 199 Hz, call graphs) in the hmmvd modes "
                         "from when it manages the VMs to the mode's end: DIR/perf-MODE.data "
                         "and its report DIR/perf-MODE.txt")
    opts = ap.parse_args()
    opts.migrate_mbps = 0   # hmmvd's default cap (e2e.Hmmvd writes none)
    modes = opts.modes.split(",")
    known = set(MODES) | {m + BASE for m in MODES if m.startswith("hmmvd")}
    if not set(modes) <= known:
        ap.error(f"--modes: one or more of {','.join(sorted(known))}")
    if any(m.endswith(BASE) for m in modes) and not opts.hmmvd_base:
        ap.error("a -base mode needs --hmmvd-base")
    if opts.sample_every < 1:
        ap.error("--sample-every: at least 1")
    if opts.shift_every < 0 or (opts.shift_every and opts.cold_mib % opts.hot_mib):
        ap.error("--shift-every: >= 0, and then --cold-mib a multiple of --hot-mib")
    if not os.environ.get("TESTBED_LAYOUT"):
        skip("runs only inside tests/testbed/testbed (it changes NUMA balancing, demotion, "
             "hugetlb pages and DAMON)")
    if not opts.out_dir:
        skip("no --out-dir and no $TESTBED_OUT")
    if opts.hot_probe is None:
        opts.hot_probe = os.path.join(os.path.dirname(os.path.abspath(opts.hmmvd)), "..",
                                      "tests", "testbed", "hot-probe")
    if not os.access(opts.hot_probe, os.X_OK):
        ap.error(f"--hot-probe: {opts.hot_probe} is not an executable (ninja -C BUILD)")
    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip("no patched QEMU (HMMV_QEMU)")
    if not os.path.exists("/sys/kernel/mm/numa/demotion_enabled"):
        skip("this kernel has no memory tiering (use --kernel 6.12)")
    write_sys("/sys/kernel/mm/transparent_hugepage/enabled", "never")
    with open("/proc/zoneinfo") as f:
        marks = zone_watermarks(f.read(), 0)
    opts.dram_free_mib = free_target_mib(opts.dram_free_mib, marks, opts.vms * opts.hot_mib)
    say("race: node 0 watermarks (pages): " +
        ", ".join(f"{k} {v}" for k, v in sorted(marks.items())) +
        f"; min_free_kbytes {read_sys('/proc/sys/vm/min_free_kbytes')}; "
        f"the fill leaves {opts.dram_free_mib} MiB free")
    os.makedirs(opts.out_dir, exist_ok=True)
    tsv = os.path.join(opts.out_dir, "race.tsv")
    hot_tsv = os.path.join(opts.out_dir, "race-hot.tsv")
    work = tempfile.mkdtemp(prefix="hmmv-race.")
    vms, results = [], []
    ref = None
    pinned = {}     # kernel threads moved to CPU 0: their CPUs before
    if opts.reference:
        if len(os.sched_getaffinity(0)) < 2 or not {0, 1} <= os.sched_getaffinity(0):
            raise Failed("--reference needs CPUs 0 and 1 (testbed --smp 2)")
        # this process and all it starts (the raced QEMUs, hmmvd, the probe) on CPU 0, and
        # the kernel threads that work for the raced VMs (kswapd's demotions, compaction)
        os.sched_setaffinity(0, {0})
        for pid in kthreads(("kswapd", "kcompactd")):
            try:
                pinned[pid] = os.sched_getaffinity(pid)
                os.sched_setaffinity(pid, {0})
            except OSError as e:
                say(f"race: --reference: kernel thread {pid} stays where it was: {e}")
    generation = 1        # the VMs' start: serial-NAME.log, then serial-NAME.gN.log
    try:
        settle()
        say(f"race: hmmvd --version in the testbed, nothing else running: "
            f"{exec_cost(opts.hmmvd)}")
        if opts.reference:
            os.makedirs(os.path.join(work, "ref"))
            ref = RaceVm("ref", os.path.join(work, "ref"), qemu, opts.guest, opts, cpus="1",
                         extra=["-object", f"memory-backend-ram,id=ref-ram,size="
                                f"{opts.mem_mib}M,host-nodes=0,policy=bind",
                                "-machine", "memory-backend=ref-ram",
                                "-overcommit", "mem-lock=on-fault"])
        start_vms(opts, work, qemu, vms)
        if ref:
            wait_for("ref: the guest filled its memory", opts.fill_deadline, ref.began)
            ref.layout()
        balanced = False      # a kernel mode ran on these VMs' processes
        with open(tsv, "w") as out, open(hot_tsv, "w") as hot_out:
            hot_out.write("mode\tt\t" + "\t".join(f"vm{i}_hot_dram" for i in range(opts.vms))
                          + "".join(f"\tvm{i}_ram_on_dram_pages" for i in range(opts.vms)
                                    if opts.shift_every) + "\n")
            out.write("mode\tt\t" + "\t".join(f"vm{i}_hot_dram\tvm{i}_writes"
                                              for i in range(opts.vms))
                      + "\tpgmigrate\tpromoted\tdemoted\t"
                      + "\t".join(f"vm{i}_qemu_cpu" for i in range(opts.vms))
                      + "\tagent_cpu\tkswapd_kcompactd_cpu\tqemu_user\tqemu_sys\t"
                      + "\t".join(NUMA_COUNTERS) + "\n")
            reasons = MigrateReasons()
            try:
                for i, mode in enumerate(modes):
                    if mode in modes[:i]:
                        mode = f"{mode}.{modes[:i].count(mode) + 1}"
                    if mode.split(".")[0] == "kernel":
                        if balanced and opts.fresh_vms == "kernel":
                            t = time.monotonic()
                            finish_vms(vms, opts, "" if generation == 1 else f".g{generation}")
                            for vm in vms:
                                vm.stop()
                                os.close(vm.tx)
                            vms.clear()
                            generation += 1
                            start_vms(opts, os.path.join(work, f"g{generation}"), qemu, vms)
                            say(f"race: {mode}: new VMs (generation {generation}: their "
                                f"QEMUs never ran with NUMA balancing) in "
                                f"{time.monotonic() - t:.0f} s")
                        balanced = True
                    # one mode's failure (a DAMON refusal, hmmvd's start-up) leaves the
                    # others' figures standing; the run still fails
                    try:
                        results.append(run_mode(mode, opts, vms, work, out, reasons,
                                                hot_out, ref))
                    except Failed as e:
                        say(f"race: {mode}: FAIL: {e}")
                        results.append(dict(mode=mode, failed=str(e)))
            finally:
                reasons.stop()
        # the guests' last act: every page checked
        finish_vms(vms, opts, "" if generation == 1 else f".g{generation}")
        if ref:
            finish_vms([ref], opts, "")
        plot(opts, tsv, modes)
    finally:
        for vm in vms + ([ref] if ref else []):
            vm.stop()
        for pid, cpus in pinned.items():
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError:
                pass
        settle()
        # the guests' serial lines (progress, any HMMV-VERIFY-CORRUPT with pfn and epoch)
        for vm in vms + ([ref] if ref else []):
            if os.path.exists(vm.log):
                tag = "" if generation == 1 or vm is ref else f".g{generation}"
                shutil.copy(vm.log, os.path.join(opts.out_dir, f"serial-{vm.name}{tag}.log"))
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print("race: " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    # the cost table: each mode's rates as ratios to its neighbouring `none` modes
    costs = cost_table(results)
    for c in costs:
        print("cost: " + " ".join(f"{k}={v}" for k, v in c.items()), flush=True)
    if costs and opts.out_dir:
        keys = list(dict.fromkeys(k for c in costs for k in c))
        with open(os.path.join(opts.out_dir, "race-cost.tsv"), "w") as f:
            f.write("\t".join(keys) + "\n")
            for c in costs:
                f.write("\t".join(str(c.get(k, "")) for k in keys) + "\n")
    return 1 if any("failed" in r for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        say(f"FAIL: {e}")
        sys.exit(1)
