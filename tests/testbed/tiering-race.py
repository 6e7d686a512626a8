#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmvd against Linux's own tiering, live, inside the testbed (kernel 6.12, 2node layout).

--vms nested VMs of the patched QEMU ($HMMV_QEMU) run the verify guest (a static hot set of
--hot-mib, --cold-mib of cold data, 98% of the writes to the hot set, every write checking a
word first). They are started once and race every mode in turn. Before each mode the same
start is laid out: every VM's hot set is moved to the slow node 1 and its cold data to node 0
(move_pages(2), MPOL_MF_MOVE_ALL), then node 0's remaining free memory is taken down to
--dram-free-mib by a reservation of 2 MiB hugetlb pages on node 0 (no tiering system can move
them: not on an LRU list, not in a VM), so the VMs' cold data fills the DRAM that is left.
Then, for --seconds:
  hmmvd    hmmvd standalone, numa mover, dram-pool-mib = --pool-mib, node-reserve-mib =
           --reserve-mib; NUMA balancing and kernel demotion off
  kernel   numa_balancing = 2 (memory tiering: hint-fault promotion) and demotion_enabled =
           true (kswapd demotes to node 1); the kernel's other knobs at their defaults
  damos    two kdamonds this script creates (paddr; DAMON sysfs) and removes afterwards: one
           over node 1's physical range with migrate_hot to node 0, one over node 0's with
           migrate_cold to node 1 (the pairing of the kernel's samples/damon/mtier.c, with
           fixed thresholds: 6.12 has no node-memory quota goals); thresholds below
  none     nothing moves pages
Read back every second: each VM's hot pages on node 0 (move_pages(2) status queries from this
process), /proc/vmstat's pgmigrate_success, pgpromote_success and pgdemote_*, hmmvd's
promotions and demotions, the kdamonds' DAMOS sz_applied, and each guest's writes (its
progress lines). One TSV line a second (DIR/race.tsv) and a summary line per mode on stdout
("race: mode=... ..."). With gnuplot, DIR/race-hot.png (hot set on DRAM over time),
DIR/race-writes.png (guest progress) and DIR/race-moves.png (pages migrated). The guests check
every page at the end; any bad word fails the run.

usage: tiering-race.py --hmmvd PATH --guest guest.elf [--out-dir DIR] [--modes hmmvd,kernel,
       damos,none] [--seconds 90]   (DIR defaults to $TESTBED_OUT; use testbed --keep-out)
"""
import argparse
import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "hmmvd-e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
say, skip, Failed, wait_for = e2e.say, e2e.skip, e2e.Failed, e2e.wait_for
PAGE = 4096
MPOL_MF_MOVE_ALL = 4
DAMON = "/sys/kernel/mm/damon/admin/kdamonds"
HUGE0 = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
MODES = ("hmmvd", "kernel", "damos", "none")


class RaceVm(e2e.Vm):
    def __init__(self, name, work, qemu, guest, opts):
        # the e2e VM with a static hot set (shift_every 0) and frequent progress lines
        super().__init__(name, work, qemu, guest, opts.mem_mib, opts.hot_mib, opts.cold_mib,
                         0, [], report_every=opts.report_every)
        self.hot = self.cold = None

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

    def writes(self):
        """The guest's writes at its last complete progress line (the serial copy is read
        while cat writes it: a torn last line read as a small count, seen 2026-12-02)."""
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().split("\n")[:-1]   # the piece after the last \n is torn
        except FileNotFoundError:
            return 0
        found = [l for l in lines if l.startswith("HMMV-VERIFY-PROGRESS")]
        return self.figures(found[-1]).get("writes", 0) if found else 0


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


class Fill:
    """Node 0 down to free_mib free by a reservation of 2 MiB hugetlb pages there (released
    by stop()): memory no tiering system here can move or demote."""

    def __init__(self, free_mib):
        self.before = int(read_sys(HUGE0))
        want = self.before + max(node_free_mib(0) - free_mib, 0) // 2
        write_sys(HUGE0, want)
        self.pages = int(read_sys(HUGE0)) - self.before

    def stop(self):
        write_sys(HUGE0, self.before)


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


def check_alive(vms):
    for vm in vms:
        if vm.proc.poll() is not None:
            raise Failed(f"{vm.name}: QEMU exited {vm.proc.returncode} mid-run: "
                         f"{vm.lines()[-3:]}")


def settle():
    write_sys("/proc/sys/kernel/numa_balancing", 0)
    write_sys("/sys/kernel/mm/numa/demotion_enabled", "false")


def run_mode(mode, opts, vms, work, out):
    """One mode over the running VMs; returns its summary."""
    hmmvd = fill = damos = None
    try:
        settle()
        for vm in vms:
            check_alive(vms)
            on1 = move(vm.proc.pid, vm.hot, 1)
            on0 = move(vm.proc.pid, vm.cold, 0)
            say(f"race: {mode}: {vm.name}: hot {on1}/{len(vm.hot)} pages on node 1, "
                f"cold {on0}/{len(vm.cold)} on node 0")
        fill = Fill(opts.dram_free_mib)
        say(f"race: {mode}: {fill.pages} huge pages ({fill.pages * 2} MiB) reserved on node 0; "
            f"node 0 free {node_free_mib(0)} MiB, node 1 free {node_free_mib(1)} MiB")
        start = {vm.name: sum(1 for n in e2e.kernel_nodes(vm.proc.pid, vm.hot) if n == 0)
                 for vm in vms}
        v0 = vmstat_all()
        w0 = {vm.name: vm.writes() for vm in vms}
        t0 = time.monotonic()
        if mode == "hmmvd":
            hmmvd = e2e.Hmmvd(opts, work, vms, MODES.index(mode))
            wait_for("hmmvd manages every VM", 180, lambda: e2e.managed(hmmvd, vms))
        elif mode == "kernel":
            write_sys("/sys/kernel/mm/numa/demotion_enabled", "true")
            write_sys("/proc/sys/kernel/numa_balancing", 2)
        elif mode == "damos":
            try:
                damos = Damos(opts)
            except OSError as e:
                raise Failed(f"damos: setting up the kdamonds: {e}")
        elif mode != "none":
            raise Failed(f"unknown mode {mode}")
        first_full, fractions = {}, {}
        prom = dem = 0
        # t0 is before hmmvd's start-up: its time to manage the VMs counts against it
        sec = 0
        while sec <= opts.seconds:
            time.sleep(max(0.0, t0 + sec - time.monotonic()))
            sec = int(time.monotonic() - t0) + 1
            check_alive(vms)
            if hmmvd and not hmmvd.alive():
                raise Failed(f"hmmvd exited {hmmvd.proc.returncode} mid-run")
            v = vmstat_all()
            now = time.monotonic() - t0
            row = [mode, f"{now:.1f}"]
            for vm in vms:
                nodes = e2e.kernel_nodes(vm.proc.pid, vm.hot)
                frac = sum(1 for n in nodes if n == 0) / len(nodes)
                fractions.setdefault(vm.name, []).append(frac)
                if frac >= 0.99 and vm.name not in first_full:
                    first_full[vm.name] = now
                row += [f"{frac:.4f}", str(vm.writes() - w0[vm.name])]
            mig = v["pgmigrate_success"] - v0["pgmigrate_success"]
            if mode == "hmmvd":
                hmmvd.table()
                prom, dem, _ = hmmvd.moves()
            elif mode == "kernel":
                prom = v.get("pgpromote_success", 0) - v0.get("pgpromote_success", 0)
                dem = sum(v[k] - v0.get(k, 0) for k in v if k.startswith("pgdemote_"))
            elif mode == "damos":
                prom, dem = damos.applied()
            row += [str(mig), str(prom), str(dem)]
            out.write("\t".join(row) + "\n")
            out.flush()
        writes = {vm.name: vm.writes() - w0[vm.name] for vm in vms}
        migrated = vmstat_all()["pgmigrate_success"] - v0["pgmigrate_success"]
        gained = sum(fractions[vm.name][-1] * len(vm.hot) - start[vm.name] for vm in vms)
        summary = dict(
            mode=mode,
            hot_on_dram_final=",".join(f"{n}:{f[-1]:.3f}" for n, f in fractions.items()),
            hot_on_dram_mean=",".join(f"{n}:{sum(f) / len(f):.3f}"
                                      for n, f in fractions.items()),
            t99=",".join(f"{n}:{first_full[n]:.0f}s" if n in first_full else f"{n}:never"
                         for n in fractions),
            writes=",".join(f"{n}:{w}" for n, w in writes.items()),
            promoted=prom, demoted=dem, migrated=migrated,
            churn=f"{migrated / gained:.2f}" if gained > 0 else "n/a")
        say("race: " + " ".join(f"{k}={v}" for k, v in summary.items()))
        return summary
    finally:
        if hmmvd:
            hmmvd.stop()
        if damos:
            damos.stop()
        settle()
        if fill:
            fill.stop()


PLOT = r"""
set terminal pngcairo size 1000,600 font ",10"
set datafile separator "\t"
set key outside right
set grid
set xlabel "seconds since the mode started"
modes = "{modes}"
set output "{dir}/race-hot.png"
set title "Hot set on DRAM (node 0), {vms} VMs x {hot} MiB hot, started on the slow node"
set ylabel "fraction of the hot set on node 0"
set yrange [0:1.05]
plot for [i=1:words(modes)] for [v=0:{vms}-1] "{tsv}" \
     using (strcol(1) eq word(modes, i) ? $2 : NaN):(column(3 + 2*v)) \
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


def plot(opts, tsv, modes):
    if not shutil.which("gnuplot"):
        say("race: no gnuplot: no plots (scripts/setup installs gnuplot-nox)")
        return
    script = PLOT.format(modes=" ".join(modes), dir=opts.out_dir, tsv=tsv, vms=opts.vms,
                         hot=opts.hot_mib, mig=3 + 2 * opts.vms)
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        raise Failed(f"gnuplot: {r.stderr.strip()}")
    say(f"race: plots: {opts.out_dir}/race-hot.png, race-writes.png, race-moves.png")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmmvd", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--out-dir", default=os.environ.get("TESTBED_OUT"))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--vms", type=int, default=2)
    ap.add_argument("--mem-mib", type=int, default=64)
    ap.add_argument("--hot-mib", type=int, default=8)
    ap.add_argument("--cold-mib", type=int, default=48)
    ap.add_argument("--seconds", type=int, default=90)
    ap.add_argument("--report-every", type=int, default=20000,
                    help="guest writes between progress lines (the progress resolution)")
    ap.add_argument("--fill-deadline", type=int, default=900)
    ap.add_argument("--dram-free-mib", type=int, default=24,
                    help="node 0 free memory left by the hugetlb reservation")
    ap.add_argument("--pool-mib", type=int, default=40, help="hmmvd's DRAM pool")
    ap.add_argument("--reserve-mib", type=int, default=8, help="hmmvd's node-reserve-mib")
    ap.add_argument("--interval-ms", type=int, default=500)
    opts = ap.parse_args()
    opts.migrate_mbps = 0   # hmmvd's default cap (e2e.Hmmvd writes none)
    modes = opts.modes.split(",")
    if not set(modes) <= set(MODES):
        ap.error(f"--modes: one or more of {','.join(MODES)}")
    if not os.environ.get("TESTBED_LAYOUT"):
        skip("runs only inside tests/testbed/testbed (it changes NUMA balancing, demotion, "
             "hugetlb pages and DAMON)")
    if not opts.out_dir:
        skip("no --out-dir and no $TESTBED_OUT")
    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip("no patched QEMU (HMMV_QEMU)")
    if not os.path.exists("/sys/kernel/mm/numa/demotion_enabled"):
        skip("this kernel has no memory tiering (use --kernel 6.12)")
    write_sys("/sys/kernel/mm/transparent_hugepage/enabled", "never")
    os.makedirs(opts.out_dir, exist_ok=True)
    tsv = os.path.join(opts.out_dir, "race.tsv")
    work = tempfile.mkdtemp(prefix="hmmv-race.")
    vms, results = [], []
    try:
        settle()
        for i in range(opts.vms):
            vms.append(RaceVm(f"vm{i}", work, qemu, opts.guest, opts))
        for vm in vms:
            wait_for(f"{vm.name}: the guest filled its memory", opts.fill_deadline, vm.began)
            vm.layout()
        with open(tsv, "w") as out:
            out.write("mode\tt\t" + "\t".join(f"vm{i}_hot_dram\tvm{i}_writes"
                                              for i in range(opts.vms))
                      + "\tpgmigrate\tpromoted\tdemoted\n")
            for mode in modes:
                # one mode's failure (a DAMON refusal, hmmvd's start-up) leaves the others'
                # figures standing; the run still fails
                try:
                    results.append(run_mode(mode, opts, vms, work, out))
                except Failed as e:
                    say(f"race: {mode}: FAIL: {e}")
                    results.append(dict(mode=mode, failed=str(e)))
        # the guests' last act: every page checked
        for vm in vms:
            vm.quit()
        for vm in vms:
            try:
                vm.proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                raise Failed(f"{vm.name}: no end within 600 s of 'q'")
            vm.reader.wait(timeout=60)
            end = vm.figures(vm.last("HMMV-VERIFY-END"))
            if not end or end.get("corrupt_pages", 1) or vm.proc.returncode != 1:
                raise Failed(f"{vm.name}: data check: {vm.last('HMMV-VERIFY-END')} "
                             f"(QEMU exit {vm.proc.returncode}; 1 = ok)")
            say(f"race: {vm.name}: verified_pages={end['verified_pages']} corrupt=0")
        plot(opts, tsv, modes)
    finally:
        for vm in vms:
            vm.stop()
        settle()
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print("race: " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    return 1 if any("failed" in r for r in results) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        say(f"FAIL: {e}")
        sys.exit(1)
