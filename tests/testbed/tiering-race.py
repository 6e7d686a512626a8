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
and DIR/race-MODE.log (its log, each line stamped with the seconds since the mode started). With gnuplot, DIR/race-hot.png (hot set on DRAM over time),
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

usage: tiering-race.py --hmmvd PATH --guest guest.elf [--hot-probe PATH] [--out-dir DIR]
       [--modes hmmvd,hmmvd-pool,kernel,damos,none] [--seconds 150] [--hmmvd-base PATH]
       [--shift-every N] [--reference] [--pool-mib 40]
       (DIR defaults to $TESTBED_OUT; use testbed --keep-out; --hot-probe defaults to
       tests/testbed/hot-probe in hmmvd's build tree)
"""
import argparse
import ctypes
import importlib.util
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "hmmvd-e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
say, skip, Failed, wait_for = e2e.say, e2e.skip, e2e.Failed, e2e.wait_for
from racelib.fill import Fill  # noqa: E402  (tests/testbed is on sys.path: hmmvd-e2e.py)
PAGE = 4096
MPOL_MF_MOVE_ALL = 4
DAMON = "/sys/kernel/mm/damon/admin/kdamonds"
MODES = ("hmmvd", "hmmvd-pool", "kernel", "damos", "none", "hmmvd-writes", "hmmvd-writes-pool")
DEFAULT_MODES = MODES[:5]
BASE = "-base"   # an hmmvd mode with this suffix runs --hmmvd-base
TRACING = "/sys/kernel/tracing"
MIGRATE_EVENT = f"{TRACING}/events/migrate/mm_migrate_pages"
HMMVD_FIELDS = ("budget-pages", "dram-pages", "hot-pages", "written-pages", "promoted-pages",
                "demoted-pages", "deferred-cap-pages", "deferred-room-pages",
                "placement-unread-pages", "intervals-merged", "watch", "rescan-gap",
                "plans-kept-total")


class RaceVm(e2e.Vm):
    def __init__(self, name, work, qemu, guest, opts, cpus=None, extra=()):
        # the e2e VM with frequent progress lines and a static hot set, or one that shifts
        # every --shift-every writes
        super().__init__(name, work, qemu, guest, opts.mem_mib, opts.hot_mib, opts.cold_mib,
                         opts.shift_every, list(extra), cpus=cpus,
                         report_every=opts.report_every)
        self.hot = self.cold = None
        self.watch = ShiftWatch(self)

    def stop(self):
        self.watch.stop()
        super().stop()

    def layout(self):
        """Host addresses of the hot set and the cold data: QEMU's RAM mapping (pc machine,
        one block from GPA 0 under 3.5 GiB) from /proc/PID/maps, and the guest's pfns."""
        begin = self.figures(self.last("HMMV-VERIFY-BEGIN"))
        size = self.mem_mib << 20
        found = []
        with open(f"/proc/{self.proc.pid}/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if parts[1].startswith("rw") and len(parts) < 6 and hi - lo >= size:
                    found.append((hi - lo, lo))
        if not found:
            raise Failed(f"{self.name}: no {self.mem_mib} MiB mapping in QEMU")
        base = min(found)[1]
        first = begin["base_pfn"]
        self.hot = [base + (first + i) * PAGE for i in range(begin["hot_pages"])]
        self.cold = [base + (first + begin["hot_pages"] + i) * PAGE
                     for i in range(begin["cold_pages"])]
        # the shifting hot set's windows (the guest moves it by hot_pages, wrapping at the
        # window's end: --cold-mib a multiple of --hot-mib keeps the windows aligned) and
        # the RAM around them, as probe ranges (address, pages): the VM's RAM on DRAM
        self.first, self.hot_pages = first, begin["hot_pages"]
        total = begin["hot_pages"] + begin["cold_pages"]
        self.windows = [(base + (first + w) * PAGE, self.hot_pages)
                        for w in range(0, total, self.hot_pages)]
        ram_pages = size // PAGE
        self.around = [(a, n) for a, n in ((base, first),
                                           (base + (first + total) * PAGE,
                                            ram_pages - first - total)) if n > 0]

    def writes(self, field="writes"):
        """The guest's writes (or another count: verified_pages) at its last complete
        progress line (the serial copy is read while cat writes it: a torn last line read
        as a small count, seen 2026-12-02)."""
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().split("\n")[:-1]   # the piece after the last \n is torn
        except FileNotFoundError:
            return 0
        found = [l for l in lines if l.startswith("HMMV-VERIFY-PROGRESS")]
        return self.figures(found[-1]).get(field, 0) if found else 0

    def corrupt_words(self):
        """Bad words the guest has found so far: its last progress line's corrupt_words, or
        more when it reported HMMV-VERIFY-CORRUPT lines after it (so a mode's summary says
        whether the guest saw a bad word during that mode)."""
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().split("\n")[:-1]
        except FileNotFoundError:
            return 0
        found = [l for l in lines if l.startswith("HMMV-VERIFY-PROGRESS")]
        words = self.figures(found[-1]).get("corrupt_words", 0) if found else 0
        return max(words, sum(1 for l in lines if l.startswith("HMMV-VERIFY-CORRUPT")))


class ShiftWatch:
    """A guest's hot-set shifts as they come: its serial log's HMMV-VERIFY-SHIFT lines, read
    every 0.2 s by a thread, each stamped with time.monotonic() when read (the probe's clock):
    which window is hot when. Before its first shift the hot set is the window's first
    hot_pages (the guest starts there)."""

    def __init__(self, vm):
        self.vm, self.pos, self.rest = vm, 0, b""
        self.events = []    # (t, hot_first_pfn)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def poll(self):
        try:
            with open(self.vm.log, "rb") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            return
        now = time.monotonic()
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()    # a line still arriving
        for line in lines:
            if line.startswith(b"HMMV-VERIFY-SHIFT"):
                pfn = self.vm.figures(line.decode(errors="replace")).get("hot_first_pfn")
                if pfn is not None:
                    self.events.append((now, pfn))

    def run(self):
        while not self.done.wait(0.2):
            self.poll()

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)


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


def move(pid, addrs, node):
    """Moves addrs of pid to node; returns how many are there afterwards."""
    done = 0
    for i in range(0, len(addrs), 4096):
        chunk = addrs[i:i + 4096]
        n = len(chunk)
        pages = (ctypes.c_void_p * n)(*chunk)
        nodes = (ctypes.c_int * n)(*([node] * n))
        status = (ctypes.c_int * n)()
        e2e.libc.syscall(ctypes.c_long(e2e.SYS_MOVE_PAGES), ctypes.c_long(pid),
                         ctypes.c_ulong(n), pages, nodes, status, ctypes.c_int(MPOL_MF_MOVE_ALL))
    for s in e2e.kernel_nodes(pid, addrs):
        done += s == node
    return done


def vmstat_all():
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            out[k] = int(v)
    return out


def node_free_mib(node):
    return e2e.node_free_mib(node)


def write_sys(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def read_sys(path):
    with open(path) as f:
        return f.read().strip()


def zone_watermarks(text, node):
    """{"min", "low", "high", "promo"}: node's free-memory watermarks in pages, summed over its
    zones that manage memory (/proc/zoneinfo's text; an empty Movable zone lists a min of 32
    pages it never uses). Missing names (promo: kernels before 6.1) are left out."""
    out, zone, managed, marks = {}, None, 0, {}

    def close():
        if zone is not None and managed > 0:
            for k, v in marks.items():
                out[k] = out.get(k, 0) + v

    for line in text.splitlines():
        words = line.split()
        if line.startswith("Node "):
            close()
            zone = words[1].rstrip(",") == str(node) or None
            managed, marks = 0, {}
        elif zone and len(words) == 2 and words[1].isdigit():
            if words[0] in ("min", "low", "high", "promo") and words[0] not in marks:
                marks[words[0]] = int(words[1])
            elif words[0] == "managed":
                managed = int(words[1])
    close()
    return out


def free_target_mib(requested, marks, hot_mib):
    """Node 0's free memory the fill leaves, MiB: requested, or (None) room for every VM's hot
    set twice over (hot_mib in all: once to promote the hot sets, once to spare) above node
    0's high watermark: the kernel promotes into a node only while it stays above its high
    watermark (migrate_balanced_pgdat), and hmmvd watches a VM coarsely only with room to
    spare. The watermarks are read after main() turned THP off, which makes the kernel
    recompute min_free_kbytes (testbed, 6.12: 67,584 KiB with THP on at boot, 5,546 after;
    node 0's high watermark 48 MiB -> 4 MiB): the default is 4 + 2 x 16 = 36 MiB there.
    Raises Failed for a requested value at or below the high watermark."""
    high = marks.get("high", 0) * PAGE >> 20
    if requested is None:
        return high + 2 * hot_mib
    if requested <= high:
        raise Failed(f"--dram-free-mib {requested} leaves node 0 at or below its high "
                     f"watermark ({high} MiB): the kernel would not promote into it")
    return requested


def node_range(node):
    """[start, end) of node's physical memory, from its memory blocks."""
    bs = int(read_sys("/sys/devices/system/memory/block_size_bytes"), 16)
    blocks = [int(d[6:]) for d in os.listdir(f"/sys/devices/system/node/node{node}")
              if d.startswith("memory") and d[6:].isdigit()]
    if not blocks:
        raise Failed(f"node {node} has no memory blocks in sysfs")
    return min(blocks) * bs, (max(blocks) + 1) * bs


class Damos:
    """Two kdamonds (paddr) this script creates: kdamond 0 over node 1 with migrate_hot to
    node 0, kdamond 1 over node 0 with migrate_cold to node 1. Sampling every 10 ms,
    aggregating every 200 ms (so nr_accesses runs 0..20): hot = accessed in >= 4 of 20 samples,
    cold = not accessed for >= 5 aggregations (1 s); 10..200 regions each; quota 64 MiB/s per
    scheme (what the kernel's own tiering samples leave unbounded, bounded so a mistaken
    threshold cannot thrash the testbed). Removed by stop(), leaving DAMON as found (no
    kdamonds: this refuses to start over anybody else's)."""

    SCHEMES = ((1, "migrate_hot", 0, (4, 20), (0, 2 ** 32 - 1)),
               (0, "migrate_cold", 1, (0, 0), (5, 2 ** 32 - 1)))

    def __init__(self, opts):
        if not os.path.isdir(DAMON):
            raise Failed("damos: no DAMON sysfs in this kernel")
        if int(read_sys(f"{DAMON}/nr_kdamonds")) != 0:
            raise Failed("damos: kdamonds exist already (somebody else's): not touching them")
        write_sys(f"{DAMON}/nr_kdamonds", len(self.SCHEMES))
        self.on = []
        try:
            for k, (node, action, target, acc, age) in enumerate(self.SCHEMES):
                kd = f"{DAMON}/{k}"
                write_sys(f"{kd}/contexts/nr_contexts", 1)
                ctx = f"{kd}/contexts/0"
                write_sys(f"{ctx}/operations", "paddr")
                attrs = f"{ctx}/monitoring_attrs"
                write_sys(f"{attrs}/intervals/sample_us", 10000)
                write_sys(f"{attrs}/intervals/aggr_us", 200000)
                write_sys(f"{attrs}/intervals/update_us", 1000000)
                write_sys(f"{attrs}/nr_regions/min", 10)
                write_sys(f"{attrs}/nr_regions/max", 200)
                write_sys(f"{ctx}/targets/nr_targets", 1)
                regions = f"{ctx}/targets/0/regions"
                write_sys(f"{regions}/nr_regions", 1)
                start, end = node_range(node)
                write_sys(f"{regions}/0/start", start)
                write_sys(f"{regions}/0/end", end)
                write_sys(f"{ctx}/schemes/nr_schemes", 1)
                s = f"{ctx}/schemes/0"
                write_sys(f"{s}/action", action)
                write_sys(f"{s}/target_nid", target)
                write_sys(f"{s}/access_pattern/sz/min", PAGE)
                write_sys(f"{s}/access_pattern/sz/max", end - start)
                write_sys(f"{s}/access_pattern/nr_accesses/min", acc[0])
                write_sys(f"{s}/access_pattern/nr_accesses/max", acc[1])
                write_sys(f"{s}/access_pattern/age/min", age[0])
                write_sys(f"{s}/access_pattern/age/max", age[1])
                write_sys(f"{s}/quotas/bytes", 64 << 20)
                write_sys(f"{s}/quotas/reset_interval_ms", 1000)
                write_sys(f"{s}/watermarks/metric", "none")
                say(f"race: damos: kdamond {k}: node {node} [{start:#x}, {end:#x}) {action} "
                    f"-> node {target}, nr_accesses {acc[0]}..{acc[1]}, age >= {age[0]}")
            for k in range(len(self.SCHEMES)):
                write_sys(f"{DAMON}/{k}/state", "on")
                self.on.append(k)
        except BaseException:
            self.stop()
            raise

    def applied(self):
        """Pages the schemes applied their action to: (migrate_hot, migrate_cold)."""
        out = []
        for k in range(len(self.SCHEMES)):
            write_sys(f"{DAMON}/{k}/state", "update_schemes_stats")
            out.append(int(read_sys(f"{DAMON}/{k}/contexts/0/schemes/0/stats/sz_applied"))
                       // PAGE)
        return tuple(out)

    def stop(self):
        for k in self.on:
            try:
                write_sys(f"{DAMON}/{k}/state", "off")
            except OSError as e:
                say(f"race: damos: kdamond {k} off: {e}")
        self.on = []
        # the kdamond threads end asynchronously: nr_kdamonds is EBUSY until they have
        for _ in range(120):
            try:
                write_sys(f"{DAMON}/nr_kdamonds", 0)
                return
            except OSError:
                time.sleep(0.5)
        say("race: damos: could not remove the kdamonds (nr_kdamonds busy for 60 s)")


class MigrateReasons:
    """Pages the kernel migrated, by reason: the mm_migrate_pages tracepoint (one event per
    migrate_pages() call, with its reason and nr_succeeded) into the trace buffer, emptied
    by reset() and summed by read(). ok is False when the kernel offers no tracefs (the
    summary then says n/a); lost events (a full buffer) are reported."""

    def __init__(self):
        self.ok = False
        try:
            if not os.path.isdir(f"{TRACING}/events"):
                subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACING], check=True,
                               capture_output=True)
            write_sys(f"{TRACING}/buffer_size_kb", 4096)
            write_sys(f"{MIGRATE_EVENT}/enable", 1)
            self.ok = True
        except (OSError, subprocess.CalledProcessError) as e:
            say(f"race: no migration reasons (tracefs, mm_migrate_pages): {e}")

    def reset(self):
        if self.ok:
            write_sys(f"{TRACING}/trace", "")

    def read(self):
        """{reason: pages}, and "lost_events" when the buffer overran."""
        out = {}
        if not self.ok:
            return out
        with open(f"{TRACING}/trace") as f:
            for line in f:
                if "mm_migrate_pages:" not in line:
                    continue
                fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                reason = fields.get("reason", "?")
                out[reason] = out.get(reason, 0) + int(fields.get("nr_succeeded", 0))
        lost = 0
        for cpu in os.listdir(f"{TRACING}/per_cpu"):
            with open(f"{TRACING}/per_cpu/{cpu}/stats") as f:
                for line in f:
                    if line.startswith("overrun:"):
                        lost += int(line.split()[1])
        if lost:
            out["lost_events"] = lost
        return out

    def stop(self):
        if self.ok:
            try:
                write_sys(f"{MIGRATE_EVENT}/enable", 0)
                write_sys(f"{TRACING}/trace", "")
                write_sys(f"{TRACING}/buffer_size_kb", 1408)
            except OSError as e:
                say(f"race: switching the tracepoint off: {e}")


def cpu_split(pid):
    """(utime, stime) of pid (all its threads), seconds; (0, 0) when it is gone. A QEMU's
    system time holds the kernel's work in its threads' context: the NUMA hint faults and
    the promotions they do (kernel mode), the dirty-log and move_pages work hmmvd asks of it;
    its user time is the guest's own progress and QEMU's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tck, int(fields[12]) / tck
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def cpu_s(pid):
    """utime + stime of pid (all its threads), seconds; 0 when it is gone."""
    return sum(cpu_split(pid))


def threads_cpu(pid):
    """{thread name: CPU seconds} of pid's threads, the same names summed."""
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tck
    except (OSError, ValueError, IndexError):
        pass
    return out


def kthreads(prefixes):
    """pids of the kernel threads whose name starts with one of prefixes."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip().startswith(prefixes):
                        out.append(int(d))
            except OSError:
                pass
    return out


class StartupSampler:
    """hmmvd's start-up, seen from outside every 0.5 s until stop(): its user and system CPU
    seconds, state, the wait channel and system call of its busiest thread (DIR/race-MODE-
    startup.tsv): where the start-up's time goes (36 s and 125 s were seen)."""

    def __init__(self, pid, path, t0):
        self.pid, self.path, self.t0 = pid, path, t0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        tck = os.sysconf("SC_CLK_TCK")
        with open(self.path, "w") as out:
            out.write("t\tutime\tstime\tthreads\tbusiest_tid\tstate\twchan\tsyscall\n")
            while not self.done.wait(0.5):
                rows = []
                try:
                    for tid in os.listdir(f"/proc/{self.pid}/task"):
                        base = f"/proc/{self.pid}/task/{tid}"
                        with open(f"{base}/stat") as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                        rows.append((int(fields[11]) + int(fields[12]), tid, fields[0],
                                     int(fields[11]), int(fields[12]), base))
                except (OSError, ValueError, IndexError):
                    if not os.path.exists(f"/proc/{self.pid}"):
                        return
                    continue
                if not rows:
                    continue
                top = max(rows)
                try:
                    with open(f"{top[5]}/wchan") as f:
                        wchan = f.read().strip() or "-"
                    with open(f"{top[5]}/syscall") as f:
                        syscall = f.read().split()[0]
                except OSError:
                    wchan = syscall = "?"
                out.write(f"{time.monotonic() - self.t0:.1f}\t"
                          f"{sum(r[3] for r in rows) / tck:.2f}\t"
                          f"{sum(r[4] for r in rows) / tck:.2f}\t{len(rows)}\t{top[1]}\t"
                          f"{top[2]}\t{wchan}\t{syscall}\n")
                out.flush()

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)


class Perf:
    """perf record of one process (cpu-clock: TCG has no PMU) until stop(); report() writes
    perf report's views, made in the testbed (its kernel's symbols), to DIR/perf-MODE.txt."""

    def __init__(self, opts, mode, pid):
        self.data = os.path.join(opts.out_dir, f"perf-{mode}.data")
        self.txt = os.path.join(opts.out_dir, f"perf-{mode}.txt")
        self.proc = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "199", "-g",
                                      "-p", str(pid), "-o", self.data],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def report(self):
        with open(self.txt, "w") as out:
            for sort in ("comm,dso", "comm,dso,sym"):
                out.write(f"### perf report --no-children --sort {sort}\n")
                out.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                                "-g", "none", "--percent-limit", "0.5", "--sort", sort],
                               stdout=out, stderr=subprocess.STDOUT)
            out.write("### perf report --children (callers, caller graph to 2%)\n")
            out.flush()
            subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--children",
                            "-g", "caller,2,callee", "--percent-limit", "2", "--sort", "comm,sym"],
                           stdout=out, stderr=subprocess.STDOUT)


def exec_cost(hmmvd):
    """Wall and CPU seconds of `hmmvd --version` (exec, dynamic linking, exit), 3 times, in
    the testbed before the VMs start: the part of hmmvd's start-up that is not hmmvd's."""
    out = []
    for _ in range(3):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.monotonic()
        subprocess.run([hmmvd, "--version"], capture_output=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.append(f"{time.monotonic() - t:.2f}s wall/"
                   f"{r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime:.2f}s cpu")
    return ", ".join(out)


def kdamonds_running():
    """kdamonds whose state is on: a mode starts with none of anybody's (a kdamond an hmmvd
    left running would cost the next mode's guests)."""
    try:
        nr = int(read_sys(f"{DAMON}/nr_kdamonds"))
        return sum(read_sys(f"{DAMON}/{k}/state") == "on" for k in range(nr))
    except OSError:
        return 0


def check_alive(vms):
    for vm in vms:
        if vm.proc.poll() is not None:
            raise Failed(f"{vm.name}: QEMU exited {vm.proc.returncode} mid-run: "
                         f"{vm.lines()[-3:]}")


def settle():
    write_sys("/proc/sys/kernel/numa_balancing", 0)
    write_sys("/sys/kernel/mm/numa/demotion_enabled", "false")


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
            fill=f"{fill.pages}x2MiB+{fill.held_mib}MiB_held({fill.compactions}_compactions)",
            # bad words the guests found during this mode (and the ones before it)
            corrupt_words_in_mode=",".join(
                f"{vm.name}:{vm.corrupt_words() - bad0[vm.name]}(before:{bad0[vm.name]})"
                for vm in vms))
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


def cost_figures(series, ticks, steady_from):
    """What the mode cost the guests, as rates over the steady window (from the first sample
    at or after steady_from seconds to the mode's last sample; the mechanism's start-up and
    first moves are before it) and over the whole mode: the guests' writes and verified
    pages a second (both guests summed), their QEMUs' CPU s a second, the mechanism's and
    kswapd + kcompactd's; the mean of the hot sets on DRAM (the probe's ticks) in the
    window."""
    if len(series) < 2:
        return {}
    steady = [s for s in series if s[0] >= steady_from] or series[-1:]
    a = steady[0] if len(steady) > 1 else series[0]
    b = series[-1]
    out = {}
    zero = (0.0, [0] * len(b[1]), [0] * len(b[2]), [0.0] * len(b[3]), 0.0, 0.0, 0.0, 0.0,
            0)[:len(b)]
    for name, (x, y) in (("steady", (a, b)), ("whole", (zero, b))):
        dt = y[0] - x[0]
        if dt <= 0:
            continue
        out[f"{name}_window_s"] = f"{x[0]:.0f}-{y[0]:.0f}"
        out[f"{name}_writes_per_s"] = f"{(sum(y[1]) - sum(x[1])) / dt:.0f}"
        out[f"{name}_verified_per_s"] = f"{(sum(y[2]) - sum(x[2])) / dt:.1f}"
        out[f"{name}_qemu_cpu_per_s"] = f"{(sum(y[3]) - sum(x[3])) / dt:.3f}"
        # apart: user time (the guests' code, QEMU's own) and system time (the kernel's work
        # in QEMU's threads: hint faults and the promotions done in them, move_pages and
        # dirty-log work): a share of both hides the kernel's cost inside "QEMU got CPU"
        out[f"{name}_qemu_user_per_s"] = f"{(y[6] - x[6]) / dt:.3f}"
        out[f"{name}_qemu_sys_per_s"] = f"{(y[7] - x[7]) / dt:.3f}"
        # the guests' progress per CPU second their QEMUs got: what a mechanism costs them
        # inside their own CPU time (dirty logging, hint faults), apart from the CPU it takes
        # from them; the testbed's own speed (the outer host's load) changes writes a second
        # far more than it changes these two
        cpu = sum(y[3]) - sum(x[3])
        out[f"{name}_writes_per_qemu_cpu_s"] = (f"{(sum(y[1]) - sum(x[1])) / cpu:.0f}"
                                                if cpu > 0 else "n/a")
        out[f"{name}_agent_cpu_per_s"] = f"{(y[4] - x[4]) / dt:.3f}"
        out[f"{name}_kswapd_cpu_per_s"] = f"{(y[5] - x[5]) / dt:.3f}"
        if len(y) > 8:
            # the reference VM's writes (--reference: on its own CPU, its RAM on DRAM, no
            # mechanism touches it) over the same window: the testbed's own speed; the
            # raced guests' writes per reference write cancel its swings
            ref = y[8] - x[8]
            out[f"{name}_ref_writes_per_s"] = f"{ref / dt:.0f}"
            out[f"{name}_writes_per_ref"] = (f"{(sum(y[1]) - sum(x[1])) / ref:.4f}"
                                             if ref > 0 else "n/a")
    fr = [sum(f) / len(f) for _, t, f in ticks if t >= a[0]]
    out["steady_hot_on_dram_mean"] = f"{sum(fr) / len(fr):.3f}" if fr else "n/a"
    return out


COST_KEYS = ("writes_per_s", "verified_per_s", "qemu_cpu_per_s", "qemu_user_per_s",
             "qemu_sys_per_s", "writes_per_qemu_cpu_s", "writes_per_ref", "ref_writes_per_s")
# /proc/vmstat counters of the kernel's NUMA balancing, per mode (race.tsv's last columns and
# the summary's numa_counters)
NUMA_COUNTERS = ("numa_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
                 "pgpromote_candidate", "pgpromote_success")


def cost_table(results):
    """Each mode against the neighbouring `none` modes (the nearest before and after it in
    the run; their mean when both): the guests' progress and their QEMUs' CPU as ratios, so
    a load that drifts over the run cancels as far as it is linear between neighbours."""
    nones = [i for i, r in enumerate(results)
             if r.get("mode", "").split(".")[0] == "none" and "failed" not in r]
    lines = []
    for i, r in enumerate(results):
        if "failed" in r or r.get("mode", "").split(".")[0] == "none":
            continue
        near = [j for j in (max([j for j in nones if j < i], default=None),
                            min([j for j in nones if j > i], default=None)) if j is not None]
        if not near:
            continue
        line = dict(mode=r["mode"], against=",".join(results[j]["mode"] for j in near))
        for w in ("steady", "whole"):
            for k in COST_KEYS + ("agent_cpu_per_s", "kswapd_cpu_per_s"):
                key = f"{w}_{k}"
                if key not in r or any(key not in results[j] for j in near):
                    continue
                try:
                    ref = sum(float(results[j][key]) for j in near) / len(near)
                    val = float(r[key])
                except ValueError:
                    continue
                line[key] = r[key]
                if k in COST_KEYS:
                    line[f"{key}_ratio"] = f"{val / ref:.3f}" if ref > 0 else "n/a"
                else:
                    line[f"{key}_none"] = f"{ref:.3f}"
        line["steady_hot_on_dram_mean"] = r.get("steady_hot_on_dram_mean", "n/a")
        lines.append(line)
    return lines


PLOT = r"""
set terminal pngcairo size 1000,600 font ",10"
set datafile separator "\t"
set key outside right
set grid
set xlabel "seconds since the mode started"
modes = "{modes}"
set output "{dir}/race-hot.png"
set title "Hot set on DRAM (node 0), {vms} VMs x {hot} MiB hot, started on the slow node{shifting}"
set ylabel "fraction of the hot set on node 0"
set yrange [0:1.05]
plot for [i=1:words(modes)] for [v=0:{vms}-1] "{hot_tsv}" \
     using (strcol(1) eq word(modes, i) ? $2 : NaN):(column(3 + v)) \
     with lines lw 2 lc i dt v + 1 title sprintf("%s vm%d", word(modes, i), v)
set output "{dir}/race-writes.png"
set title "Guest progress: words written (each checked) since the mode started"
set ylabel "writes"
set autoscale y
# a negative count is a torn read of the guest's progress line (race.tsv of 2026-12-02,
# before writes() read only complete lines): not drawn
plot for [i=1:words(modes)] for [v=0:{vms}-1] "{tsv}" \
     using (strcol(1) eq word(modes, i) ? $2 : NaN):(column(4 + 2*v) < 0 ? NaN : column(4 + 2*v)) \
     with lines lw 2 lc i dt v + 1 title sprintf("%s vm%d", word(modes, i), v)
set output "{dir}/race-moves.png"
set title "Pages migrated in the testbed (pgmigrate_success) since the mode started"
set ylabel "pages"
plot for [i=1:words(modes)] "{tsv}" using (strcol(1) eq word(modes, i) ? $2 : NaN):(column({mig})) \
     with lines lw 2 lc i title word(modes, i)
"""


PLOT_DRAM = r"""
set output "{dir}/race-dram.png"
set title "The VMs' RAM on DRAM (node 0), {vms} VMs summed; hmmvd's pool ({pool} MiB)"
set ylabel "MiB"
set autoscale y
plot for [i=1:words(modes)] "{hot_tsv}" \
     using (strcol(1) eq word(modes, i) ? $2 : NaN):\
           ((sum [v=0:{vms}-1] column(3 + {vms} + v)) * 4096.0 / 1048576) \
     with lines lw 2 lc i title word(modes, i), {pool} with lines lc rgb "black" dt 2 title "pool"
"""


def plot(opts, tsv, modes):
    if not shutil.which("gnuplot"):
        say("race: no gnuplot: no plots (scripts/setup installs gnuplot-nox)")
        return
    # the names the modes ran under (a mode named again runs as MODE.2, ...)
    modes = [m if m not in modes[:i] else f"{m}.{modes[:i].count(m) + 1}"
             for i, m in enumerate(modes)]
    script = PLOT.format(modes=" ".join(modes), dir=opts.out_dir, tsv=tsv,
                         hot_tsv=os.path.join(opts.out_dir, "race-hot.tsv"), vms=opts.vms,
                         hot=opts.hot_mib, mig=3 + 2 * opts.vms,
                         shifting=(f", shifting every {opts.shift_every} writes"
                                   if opts.shift_every else ""))
    if opts.shift_every:
        script += PLOT_DRAM.format(dir=opts.out_dir, vms=opts.vms, pool=opts.pool_mib,
                                   hot_tsv=os.path.join(opts.out_dir, "race-hot.tsv"))
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        raise Failed(f"gnuplot: {r.stderr.strip()}")
    say(f"race: plots: {opts.out_dir}/race-hot.png, race-writes.png, race-moves.png" +
        (", race-dram.png" if opts.shift_every else ""))


def start_vms(opts, work, qemu, vms):
    """--vms fresh VMs (their QEMUs new processes) into vms (so the caller stops the ones
    started when this fails), filled and laid out."""
    os.makedirs(work, exist_ok=True)
    for i in range(opts.vms):
        vms.append(RaceVm(f"vm{i}", work, qemu, opts.guest, opts))
    for vm in vms:
        wait_for(f"{vm.name}: the guest filled its memory", opts.fill_deadline, vm.began)
        vm.layout()


def finish_vms(vms, opts, tag):
    """The guests' last act: every page checked ('q'); fails on any bad one. Their serial
    lines are copied to DIR/serial-NAME{tag}.log."""
    for vm in vms:
        vm.quit()
    for vm in vms:
        try:
            vm.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise Failed(f"{vm.name}: no end within 600 s of 'q'")
        vm.reader.wait(timeout=60)
        shutil.copy(vm.log, os.path.join(opts.out_dir, f"serial-{vm.name}{tag}.log"))
        end = vm.figures(vm.last("HMMV-VERIFY-END"))
        if not end or end.get("corrupt_pages", 1) or vm.proc.returncode != 1:
            for line in vm.bad_words():
                say(f"race: {vm.name}: {line}")
            raise Failed(f"{vm.name}: data check: {vm.last('HMMV-VERIFY-END')} "
                         f"(QEMU exit {vm.proc.returncode}; 1 = ok)")
        say(f"race: {vm.name}{tag}: verified_pages={end['verified_pages']} corrupt=0")


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
