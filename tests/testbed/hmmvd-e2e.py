#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmvd end to end on real NUMA nodes (run inside the testbed: tests/testbed/testbed run).

hmmvd (standalone, --qmp, numa mover) manages small nested VMs of the patched QEMU whose
guests (tests/guest, mode=verify) fill their memory with known patterns and check them
continuously while their hot sets shift, under a DRAM pool smaller than their footprint, so
pages move both ways between node 0 (DRAM) and the CPU-less slow node.

Checked, each a failure when it does not hold:
  data       every guest ends with corrupt=0 (its last act is a check of every page)
  moves      hmmvd promoted and demoted at least --min-moves pages each way, and the kernel's
             own pgmigrate_success counter grew by at least as many
  placement  at checkpoints (the VM paused in hmmvd: nothing moves), hmmvd's view of every
             page ("placement" control command) against the kernel's, read by this process
             with move_pages(2) status queries; agreement >= 0.999 and every disagreement
             on a page whose last move hmmvd counted as failed (its view's move-failed-pages,
             page by page: e2elib/checks.py), and no more of them than mover errors
With --per-socket (2socket layout), then: each VM's pages on its own socket's DRAM and slow
node (read back); with --fill-node0 a process fills DRAM node 0 and vm0's promotions must fall
back to node 1, reported. With --migrate-mbps, at hmmvd's start (every page on DRAM, a pool a sixth of it: thousands of
forced demotions) the cap is watched where it binds (e2elib/cap.py): hmmvd's own per-interval
count never over the cap, the cap holding moves back in some intervals, and the kernel's
move_pages(2) migrations between samples within the cap in bytes (a 2 MiB page is 512 pages).
With --faults, after those: the last VM's QEMU killed (-9) while
hmmvd is inside a migrating move_pages(2) call on it (a move batch, not a status query; the
thread held at the call's entry by ptrace for the kill, e2elib/midcall.py, and seen in
/proc/PID/task/TID/syscall right after it; its data is checked up to its guest's last
complete report), hmmvd must keep moving the survivor's pages; hmmvd killed (-9)
and started again must take the survivor over, demote it down to a quota cut to half its DRAM
and, the quota lifted, promote into the room again; the survivor's data and placement are
checked as above, the restarted hmmvd's placement on its own. The suite runs all of it in one
boot.
Prints "testbed: moves=N verified_pages=N corrupt=N" and "testbed: placement_agree=0.NNNN".

usage: hmmvd-e2e.py --hmmvd PATH --guest guest.elf [--vms 2] [--faults] [--thp madvise]
                    [--hugetlb-vm] ...   (--help lists them)
needs HMMV_QEMU (the patched QEMU); exit 77 when something is missing.
The parts live in e2elib/: common (output, waiting), kernel (the kernel's view: move_pages
status queries, vmstat, the migrations tracepoint), vms (the nested VMs), daemon (hmmvd and
its control socket), checks (placement, migrations against hmmvd's count, the run phase),
faults (QEMU and hmmvd killed), sockets (per-socket placement, a full DRAM node), cap (the
migration cap where it binds).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# the parts (e2elib/, beside this file), also when hmmvd-libvirt.py or tiering-race.py load
# this file; no bytecode written into the source tree (the testbed's root is read-only)
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# re-exported: hmmvd-libvirt.py and tiering-race.py use them as e2e.NAME
from e2elib.cap import CapWatch  # noqa: E402
from e2elib.checks import account, placement_check, run_phase  # noqa: E402,F401
from e2elib.common import PAGE, Failed, say, skip, wait_for  # noqa: E402,F401
from e2elib.daemon import (Control, Hmmvd, check_alive, managed,  # noqa: E402,F401
                           quiet_sample)
from e2elib.faults import faults_phase, kill_mid_batch  # noqa: E402,F401
from e2elib.kernel import (SYS_MOVE_PAGES, Migrations, cpus_of, delta,  # noqa: E402,F401
                           kernel_nodes, libc, node_free_mib, vmstat)
from e2elib.sockets import fallback_phase, per_socket_check  # noqa: E402,F401
from e2elib.vms import Vm  # noqa: E402,F401


def victim_data(vm, failures):
    """The data of a VM the faults killed, up to its guest's last complete report (it checks
    its pages continuously: every report carries its verified and corrupt pages so far) and
    every HMMV-VERIFY-CORRUPT line it printed. Sets vm.end to those figures."""
    with open(vm.log, errors="replace") as f:
        text = f.read()
    lines = text.split("\n")[:-1]   # the last one is torn unless the log ends in a newline
    reports = [l for l in lines if l.startswith(("HMMV-VERIFY-PROGRESS", "HMMV-VERIFY-SHIFT"))]
    vm.end = vm.figures(reports[-1]) if reports else {}
    bad = [l for l in lines if l.startswith("HMMV-VERIFY-CORRUPT")]
    say(f"e2e: {vm.name} (killed by the faults): last report {vm.end or 'none'}, "
        f"{len(bad)} corrupt line(s)")
    for line in bad[:8]:
        say(f"e2e: {vm.name}: {line}")
    if not vm.end.get("verified_pages"):
        failures.append(f"data: {vm.name} verified no page before the faults killed it")
    if bad and not vm.end.get("corrupt_pages"):
        vm.end["corrupt_pages"] = 1   # reported before its last report was printed


def cap_pages(opts):
    """hmmvd's migration cap in 4 KiB pages a VM an interval (migrate-mbps is in MB/s)."""
    return opts.migrate_mbps * 1000000 * opts.interval_ms // 1000 // PAGE


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmmvd", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--vms", type=int, default=2)
    ap.add_argument("--mem-mib", type=int, default=48)
    ap.add_argument("--hot-mib", type=int, default=4)
    ap.add_argument("--cold-mib", type=int, default=36)
    ap.add_argument("--shift-every", type=int, default=200000,
                    help="guest writes between hot-set shifts")
    ap.add_argument("--pool-mib", type=int, default=16, help="hmmvd's DRAM pool")
    ap.add_argument("--interval-ms", type=int, default=500)
    ap.add_argument("--min-moves", type=int, default=10000,
                    help="promotions and demotions each must reach this")
    # The moves follow the guests' hot-set shifts and hmmvd's intervals: the phase gives up
    # once both counts passed their bound (a quiet CI run, 2026-12-02: the moves of both ways
    # but 2,300 promotions in 100 intervals; loaded, a shift came every ~15 s).
    ap.add_argument("--bound-intervals", type=int, default=600,
                    help="the moves phase gives up after this many hmmvd intervals ...")
    ap.add_argument("--bound-shifts", type=int, default=40,
                    help="... and this many hot-set shifts of the guests in all")
    ap.add_argument("--deadline", type=int, default=900,
                    help="seconds for a phase: a liveness cap, never a figure")
    ap.add_argument("--checks", type=int, default=3, help="placement checkpoints")
    ap.add_argument("--check-every", type=int, default=20,
                    help="hmmvd intervals between placement checkpoints")
    ap.add_argument("--fill-deadline", type=int, default=600,
                    help="seconds for the guests to fill their memory (a liveness bound: "
                         "nested TCG at load 30, one CPU per VM on 2socket, took over 300)")
    ap.add_argument("--faults", action="store_true",
                    help="then kill one nested QEMU and hmmvd (-9), restart hmmvd")
    ap.add_argument("--thp", default="never", help="transparent_hugepage/enabled in the guest")
    ap.add_argument("--per-socket", action="store_true",
                    help="2socket layout: VM i runs on node i's CPUs; its pages must stay on "
                         "node i (DRAM) and node i+2 (its socket's slow node)")
    ap.add_argument("--fill-node0", action="store_true",
                    help="with --per-socket: then fill DRAM node 0 with a process and check "
                         "that vm0 falls back to node 1 and that hmmvd reports it")
    ap.add_argument("--reserve-mib", type=int, default=None,
                    help="hmmvd's node-reserve-mib (default: hmmvd's)")
    ap.add_argument("--hog-margin-mib", type=int, default=4,
                    help="free memory the hog leaves on node 0")
    ap.add_argument("--min-fallback", type=int, default=200,
                    help="fallback promotions of vm0 to wait for")
    ap.add_argument("--fallback-bound", type=int, nargs=2, default=(120, 8),
                    metavar=("INTERVALS", "SHIFTS"),
                    help="the fallback wait gives up after this many hmmvd intervals and "
                         "hot-set shifts of vm0, both")
    ap.add_argument("--home-intervals", type=int, default=60,
                    help="with --fill-node0: after the filler exits, intervals for vm0's "
                         "pages on node 1 to come home to node 0")
    ap.add_argument("--hugetlb-vm", action="store_true",
                    help="the last VM's RAM on hugetlbfs (2 MiB pages)")
    ap.add_argument("--migrate-mbps", type=int, default=0,
                    help="hmmvd's migration cap per VM (MB/s); checked in bytes against the "
                         "kernel's pgmigrate_success (0: hmmvd's default, not checked)")
    ap.add_argument("--cap-intervals", type=int, default=40,
                    help="with --migrate-mbps: hmmvd's first intervals in which the cap is "
                         "watched where it binds (e2elib/cap.py)")
    ap.add_argument("--move-share-percent", type=int, default=None,
                    help="hmmvd's [policy] move-share-percent (default: hmmvd's, 50; 0 = off), "
                         "e.g. with meson test --test-args='--move-share-percent 0'")
    opts = ap.parse_args()

    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip(f"no patched QEMU (HMMV_QEMU={qemu or 'unset'}; "
             "export HMMV_QEMU=$(cat /tmp/qemu-ready))")
    for path in (opts.hmmvd, opts.guest):
        if not os.path.exists(path):
            skip(f"{path} is not built")
    nodes = sorted(int(d[4:]) for d in os.listdir("/sys/devices/system/node")
                   if re.fullmatch(r"node\d+", d))
    if len(nodes) < 2:
        skip(f"one NUMA node: run me inside tests/testbed/testbed (nodes {nodes})")
    if os.geteuid() != 0:
        skip("needs root (move_pages on other processes)")

    # Nothing but hmmvd moves pages: no NUMA balancing, no kernel demotion; THP as asked.
    for path, value in (("/proc/sys/kernel/numa_balancing", "0"),
                        ("/sys/kernel/mm/numa/demotion_enabled", "false"),
                        ("/sys/kernel/mm/transparent_hugepage/enabled", opts.thp)):
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            say(f"e2e: cannot set {path}={value}: {e}")

    work = tempfile.mkdtemp(prefix="hmmv-e2e.")
    vms, daemons = [], []
    failures = []
    migs = None
    watch = None
    try:
        for i in range(opts.vms):
            extra = []
            if opts.hugetlb_vm and i == opts.vms - 1:
                # room for the whole VM on either node (demotion needs free huge pages there)
                for n in nodes:
                    with open(f"/sys/devices/system/node/node{n}/hugepages/"
                              "hugepages-2048kB/nr_hugepages", "w") as f:
                        f.write(str(opts.mem_mib // 2 + 8))
                extra = ["-object", f"memory-backend-file,id=ram0,size={opts.mem_mib}M,"
                         "mem-path=/dev/hugepages,share=off,prealloc=on",
                         "-machine", "memory-backend=ram0"]
            vms.append(Vm(f"vm{i}", work, qemu, opts.guest, opts.mem_mib, opts.hot_mib,
                          opts.cold_mib, opts.shift_every, extra,
                          cpus=cpus_of(i) if opts.per_socket else None))
        for vm in vms:
            wait_for(f"{vm.name}: the guest filled its memory", opts.fill_deadline, vm.began)
        migrated0 = vmstat("pgmigrate_success")
        migs = Migrations()
        snap0 = migs.snapshot()
        hmmvd = Hmmvd(opts, work, vms, 1)
        daemons.append(hmmvd)
        if opts.migrate_mbps:
            # the cap where it binds: hmmvd's first intervals, demoting what the pool cannot
            # hold (e2elib/cap.py)
            huge = opts.thp != "never" or opts.hugetlb_vm
            watch = CapWatch(hmmvd, migs, [vm.name for vm in vms], cap_pages(opts),
                             512 if huge else 1, opts.cap_intervals)
        wait_for("hmmvd manages every VM", 120, lambda: managed(hmmvd, vms))
        status = hmmvd.ctl.request("status")
        intervals0 = status["intervals"]
        say(f"e2e: hmmvd: mover {status['mover']}, pool {status['pool-pages']} pages, nodes "
            + ", ".join(f"{n['id']}:{n['tier']}" for n in status["nodes"]))
        if status["mover"] != "numa":
            raise Failed(f"hmmvd runs the {status['mover']} mover, not numa")

        totals = {"agree": 0, "disagree": 0, "kinds": {}}
        phase = run_phase(opts, hmmvd, vms, totals, opts.min_moves, opts.deadline,
                          opts.checks, bound=(opts.bound_intervals, opts.bound_shifts))
        for vm in vms:
            placement_check(hmmvd.ctl, vm, totals)
        hmmvd.table()
        prom, dem, errors = hmmvd.moves()
        status = hmmvd.ctl.request("status")
        intervals = status["intervals"] - intervals0 + 1
        share = opts.move_share_percent
        say(f"e2e: move-share-percent {'default' if share is None else share}: mover "
            f"{status['mover-ns-per-page']} ns/page learnt, batch "
            f"{status['batch-pages'] or 'unlimited'} pages")
        migrated_phase = vmstat("pgmigrate_success") - migrated0
        say("e2e: huge pages (thp-pages, hugetlb-pages): " +
            ", ".join(f"{n}: {h}" for n, h in sorted(hmmvd.huge.items())))
        if watch is not None:
            watch.check(failures)
        if opts.migrate_mbps:
            # The cap is per VM and in bytes: whatever the units, the kernel cannot have
            # migrated more 4 KiB pages than intervals x cap x VMs (hmmvd is the only mover)
            cap = cap_pages(opts)
            limit = intervals * cap * len(vms)
            say(f"e2e: cap: {cap} pages a VM an interval, {intervals} intervals: kernel "
                f"migrated {migrated_phase} pages (limit {limit}, "
                f"{migrated_phase / max(limit, 1):.3f} of it); largest sampled interval "
                f"{dict(sorted(hmmvd.cap_seen.items()))}")
            if migrated_phase > limit:
                failures.append(f"cap: the kernel migrated {migrated_phase} pages in {intervals} "
                                f"intervals, over the cap's {limit}")
            for name, seen in hmmvd.cap_seen.items():
                if seen > cap:
                    failures.append(f"cap: {name} moved {seen} pages in one interval, cap {cap}")
        if opts.thp != "never" and not any(h[0] for h in hmmvd.huge.values()):
            failures.append("huge pages: hmmvd saw no THP in any VM")
        if opts.hugetlb_vm and not hmmvd.huge.get(vms[-1].name, (0, 0))[1]:
            failures.append(f"huge pages: hmmvd did not see {vms[-1].name} on hugetlbfs")
        if prom < opts.min_moves or dem < opts.min_moves or phase.why:
            failures.append(f"moves: promoted {prom}, demoted {dem} "
                            f"(want {opts.min_moves} each way"
                            f"{'; the phase ended: ' + phase.why if phase.why else ''})")
        # Two sockets before the faults: every VM's placement (its last checkpoint above) on
        # its own socket's nodes, then a full DRAM node 0 and vm0's fallback to node 1; the
        # faults then kill the last VM, so one boot carries both.
        if opts.per_socket:
            per_socket_check(hmmvd, vms, failures)
            if opts.fill_node0 and not failures:
                fallback_phase(opts, hmmvd, vms, totals, failures)
                hmmvd.table()
                prom, dem, errors = hmmvd.moves()
        survivors = vms
        stretches = []   # (what, kernel migrations, hmmvd's count, exact)
        if opts.faults and len(vms) >= 2:
            hmmvd, survivors, stretches, (prom, dem, errors) = faults_phase(
                opts, work, hmmvd, vms, migs, snap0, totals, failures, daemons)
        if not stretches:
            # The run's count, sampled with the kernel's counters at one quiet moment: the VMs
            # paused in hmmvd to the end. Sampled before the guests' final check instead, the
            # moves hmmvd made while they checked were in the kernel's count and not in
            # hmmvd's (1.02-1.03x "uncounted" in CI runs at load ~15, no huge pages).
            (prom, dem, errors), mig = quiet_sample(hmmvd, survivors, migs, resume=False)
            stretches = [("the run", delta(mig, snap0), prom + dem, True)]
        for vm in survivors:
            vm.quit()
        for vm in survivors:
            try:
                rc = vm.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                raise Failed(f"{vm.name}: no end within 300 s of 'q'")
            vm.reader.wait(timeout=60)
            vm.end = vm.figures(vm.last("HMMV-VERIFY-END"))
            vm.rc = rc
            if not vm.end:
                failures.append(f"{vm.name}: no HMMV-VERIFY-END (QEMU exited {rc})")
            elif rc != 1:   # isa-debug-exit: (0 << 1) | 1
                failures.append(f"{vm.name}: guest exit status {rc} (1 = ok, 7 = corrupt)")
            for line in vm.bad_words():
                say(f"e2e: {vm.name}: {line}")
        for vm in vms:
            if vm not in survivors:
                victim_data(vm, failures)
        migrated = vmstat("pgmigrate_success") - migrated0
        verified = sum(vm.end.get("verified_pages", 0) for vm in vms)
        corrupt = sum(vm.end.get("corrupt_pages", 0) for vm in vms)
        writes = sum(vm.end.get("writes", 0) for vm in survivors)
        pages = totals["agree"] + totals["disagree"]
        agree = totals["agree"] / pages if pages else 0.0
        say(f"e2e: hmmvd promoted {prom}, demoted {dem}, mover errors {errors}; "
            f"kernel pgmigrate_success +{migrated}; surviving guests wrote {writes} words; "
            f"placement: {pages} page checks, {totals['disagree']} disagree "
            f"{totals['kinds'] or ''}")
        print(f"testbed: moves={prom + dem} verified_pages={verified} corrupt={corrupt}",
              flush=True)
        print(f"testbed: placement_agree={agree:.4f}", flush=True)
        if corrupt:
            failures.append(f"data: {corrupt} corrupt pages")
        for what, mig, counted, exact in stretches:
            account(failures, what, mig, counted, exact)
        if pages == 0:
            failures.append("placement: nothing compared")
        elif agree < 0.999:
            failures.append(f"placement: agreement {agree:.4f} < 0.999")
        if totals["disagree"] > errors:
            failures.append(f"placement: {totals['disagree']} disagreements, only "
                            f"{errors} mover errors counted to explain them")
        if totals.get("unexplained"):
            failures.append(f"placement: {totals['unexplained']} disagreeing pages whose last "
                            f"move hmmvd did not count as failed: "
                            f"{'; '.join(totals['unexplained_pages'])}")
    except Failed as e:
        failures.append(str(e))
    finally:
        if watch is not None:
            watch.stop()
        if migs is not None:
            migs.close()
        for d in daemons:
            d.stop()
        for vm in vms:
            vm.stop()
    if failures:
        for f in failures:
            say(f"FAIL: {f}")
        logs = [os.path.basename(d.log) for d in daemons] + [f"{vm.name}.log" for vm in vms]
        for name in logs:
            path = os.path.join(work, name)
            if os.path.exists(path):
                say(f"--- {name} (last 15 lines)")
                with open(path, errors="replace") as f:
                    for line in f.read().splitlines()[-15:]:
                        say(f"  {line}")
        # again, last: CI keeps the tail of a long output (ci25 lost the FAIL lines)
        for f in failures:
            say(f"FAIL: {f}")
        shutil.rmtree(work, ignore_errors=True)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    say("e2e: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
