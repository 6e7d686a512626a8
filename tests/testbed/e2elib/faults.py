# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults: a nested QEMU killed while hmmvd is inside move_pages(2) on it, then hmmvd killed
and started again over the survivors."""
import os
import signal
import time

from e2elib.checks import placement_check, run_phase
from e2elib.common import Failed, say, wait_for
from e2elib.daemon import Hmmvd, managed, quiet_sample
from e2elib.kernel import delta, in_move_pages


def kill_mid_batch(hmmvd, vm, deadline_s):
    """Kills vm's QEMU (-9) while one of hmmvd's threads is inside a move_pages(2) call on
    it: the fault the mover must survive (the process's mm goes away under the migration;
    the call fails or returns early and the page statuses are undefined). Returns the
    (tid, pages) of the call it was caught in; Failed when hmmvd never moved vm's pages
    within deadline_s (a batch takes ~50-150 ms here: 512 pages at 100-300 us each)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        caught = in_move_pages(hmmvd.proc.pid, vm.proc.pid)
        if caught:
            vm.proc.kill()
            vm.proc.wait()
            return caught
        time.sleep(0.001)
    raise Failed(f"faults: hmmvd made no move_pages call on {vm.name} within {deadline_s} s")


def faults_phase(opts, work, hmmvd, vms, migs, snap0, totals, failures, daemons):
    """The last VM's QEMU killed (-9) mid-batch, then hmmvd killed (-9) and started again over
    the survivors (the new hmmvd is appended to daemons). Returns (hmmvd, survivors,
    stretches, (promoted, demoted, errors)): the hmmvd now running, the VMs left, the
    stretches for account() (what, kernel migrations, hmmvd's count, exact)."""
    stretches = []
    (p, d, _), mig = quiet_sample(hmmvd, vms, migs)
    stretches.append(("before the faults", delta(mig, snap0), p + d, True))
    mark = mig
    # a nested QEMU killed while hmmvd is moving its pages
    victim = vms[-1]
    survivors = vms[:-1]
    tid, pages = kill_mid_batch(hmmvd, victim, 300)
    say(f"e2e: faults: killed {victim.name}'s QEMU (-9) while hmmvd's thread {tid} "
        f"was in a move_pages(2) call of {pages} page(s) on it")
    wait_for("hmmvd reports the killed VM as not managed", 60,
             lambda: (hmmvd.table() or {}).get(victim.name, {}).get("status",
                                                                     "x") != "managed")
    if not hmmvd.alive():
        raise Failed("hmmvd died with the nested QEMU")
    hmmvd.table()
    before = hmmvd.moves()
    p2 = run_phase(opts, hmmvd, survivors, totals, before[0] + 200, opts.deadline, 1,
                   bound=(60, 4))
    say(f"e2e: faults: after the kill hmmvd moved {p2[0] - before[0]} up, "
        f"{p2[1] - before[1]} down for the survivors")
    if p2[0] + p2[1] <= before[0] + before[1]:
        failures.append("faults: hmmvd moved nothing after a nested QEMU died")
    # hmmvd killed and started again over the survivors
    held = {n: v["dram-pages"] for n, v in (hmmvd.table() or {}).items()
            if n in {vm.name for vm in survivors}}
    prom, dem, errors = hmmvd.moves()
    hmmvd.stop(signal.SIGKILL)
    say("e2e: faults: killed hmmvd (-9); starting it again")
    try:
        os.unlink(hmmvd.sock)
    except OSError:
        pass
    # The faults' stretch: the batch in flight when the QEMU died, the moves of the
    # victim since hmmvd was last asked, and whatever the killed hmmvd moved after
    # its last answer are real migrations no count can hold. Only the lower bound.
    # Nothing moves now (hmmvd dead), so the next stretch starts exact.
    mig = migs.snapshot()
    stretches.append(("the faults", delta(mig, mark), prom + dem - stretches[0][2],
                      False))
    mark = mig
    # The restarted hmmvd gets half the DRAM the survivors hold, as an operator restarting
    # it with a smaller pool would: it must take over the placement it finds and demote down
    # to the new budgets whatever the guests do. Left with the old pool, it may rightly move
    # nothing: once the survivor's budget holds 4 of its hot window's 10 positions, a
    # window that moves on every ~2 intervals (a quiet machine) is not worth following.
    pool_mib = max(1, sum(held.values()) // 2 // 256)
    hmmvd = Hmmvd(opts, work, survivors, 2, pool_mib=pool_mib)
    daemons.append(hmmvd)
    wait_for("the restarted hmmvd manages the surviving VMs", 120,
             lambda: managed(hmmvd, survivors))
    p3 = run_phase(opts, hmmvd, survivors, totals, 200, opts.deadline, 1, bound=(60, 4))
    say(f"e2e: faults: the restarted hmmvd (pool {pool_mib} MiB) moved {p3[0]} up, "
        f"{p3[1]} down")
    if p3[0] + p3[1] == 0:
        failures.append("faults: the restarted hmmvd moved nothing")
    table = hmmvd.table() or {}
    for vm in survivors:
        v = table.get(vm.name, {})
        need = held.get(vm.name, 0) - v.get("budget-pages", 0)
        say(f"e2e: faults: {vm.name}: held {held.get(vm.name, 0)} DRAM pages at the kill, "
            f"budget now {v.get('budget-pages')}, the restarted hmmvd demoted "
            f"{v.get('demotions-total')}, dram now {v.get('dram-pages')}")
        if v.get("dram-pages", 1 << 62) > v.get("budget-pages", -1):
            failures.append(f"faults: the restarted hmmvd left {vm.name} over its budget")
        if need > 0 and v.get("demotions-total", 0) < need:
            failures.append(f"faults: the restarted hmmvd demoted fewer of {vm.name}'s "
                            f"pages than the DRAM it found over the budget ({need})")
    for vm in survivors:
        placement_check(hmmvd.ctl, vm, totals)
    # the restarted hmmvd's stretch, exact again: the survivors stay paused in
    # hmmvd to the end, so nothing moves after this sample
    p3, mig = quiet_sample(hmmvd, survivors, migs, resume=False)
    stretches.append(("after the restart", delta(mig, mark), p3[0] + p3[1], True))
    prom, dem, errors = prom + p3[0], dem + p3[1], errors + p3[2]
    return hmmvd, survivors, stretches, (prom, dem, errors)
