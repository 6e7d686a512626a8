# SPDX-License-Identifier: GPL-2.0-or-later
"""Faults: a nested QEMU killed while hmmvd is inside move_pages(2) on it, then hmmvd killed
and started again over the survivors."""
import os
import signal
import time

from e2elib.checks import placement_check, run_phase
from e2elib.common import Failed, say, wait_for
from e2elib.daemon import Hmmvd, check_alive, managed, quiet_sample
from e2elib.kernel import delta, in_move_pages
from e2elib.midcall import TraceError, kill_in_call


def wait_counted(opts, hmmvd, vms, done, bound):
    """Waits until done(hmmvd's VM table) holds; None then, else why it gave up: after
    bound = (hmmvd intervals, hot-set shifts of vms) both passed (counted events, not the
    clock), or opts.deadline seconds as a liveness cap."""
    start = time.monotonic()
    first = hmmvd.intervals()
    shifts0 = sum(vm.shifts() for vm in vms)
    while True:
        time.sleep(max(0.5, opts.interval_ms / 1000))
        check_alive(vms, hmmvd)
        if done(hmmvd.table() or {}):
            return None
        now = hmmvd.intervals() - first
        shifts = sum(vm.shifts() for vm in vms) - shifts0
        if now >= bound[0] and shifts >= bound[1]:
            return f"gave up after {now} intervals and {shifts} hot-set shifts"
        if time.monotonic() - start > opts.deadline:
            return f"gave up at the liveness cap of {opts.deadline} s"


def kill_mid_batch(hmmvd, vm, deadline_s):
    """Kills vm's QEMU (-9) while one of hmmvd's threads is inside a migrating move_pages(2)
    call on it (a move batch, nodes given; a status query does not count): the fault the
    mover must survive. With ptrace (e2elib/midcall.py) the thread is held at the call's
    entry for the kill, so it lands inside the call every time; the thread is read again
    right after the kill (/proc/TID/syscall: still in that call). Without ptrace (not
    permitted), the old race: the call is seen by polling and the kill follows, which a
    one-page batch (2 MiB) may outrun. Returns (tid, pages, still in the call after the
    kill, how: "traced, returned R" or "polled"); Failed when hmmvd made no migrating call
    on vm's pages within deadline_s (a liveness cap)."""
    try:
        tid, pages, inside, rval = kill_in_call(hmmvd, vm, deadline_s)
        return tid, pages, inside, f"traced, the call returned {rval}"
    except TraceError as e:
        say(f"e2e: faults: {e}; polling /proc instead")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        caught = in_move_pages(hmmvd.proc.pid, vm.proc.pid)
        if caught:
            vm.proc.kill()
            after = in_move_pages(hmmvd.proc.pid, vm.proc.pid, tid_only=caught[0])
            vm.proc.wait()
            return caught[0], caught[1], after == caught, "polled"
        time.sleep(0.001)
    raise Failed(f"faults: hmmvd made no migrating move_pages call on {vm.name} within "
                 f"{deadline_s} s")


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
    hmmvd.table()
    victim_before = hmmvd.seen.get(victim.name, (0, 0, 0))
    tid, pages, inside, how = kill_mid_batch(hmmvd, victim, 300)
    say(f"e2e: faults: killed {victim.name}'s QEMU (-9) while hmmvd's thread {tid} "
        f"was in a migrating move_pages(2) call of {pages} page(s) on it ({how}); right "
        f"after the kill the thread was {'still in that call' if inside else 'out of it'}")
    print(f"testbed: killed_mid_batch pages={pages} inside_after_kill={int(inside)} "
          f"traced={int(how != 'polled')}", flush=True)
    if not inside:
        failures.append(f"faults: {victim.name}'s QEMU was killed as hmmvd's move batch "
                        f"ended: no proof the kill landed inside the batch")
    wait_for("hmmvd reports the killed VM as not managed", 60,
             lambda: (hmmvd.table() or {}).get(victim.name, {}).get("status",
                                                                     "x") != "managed")
    if not hmmvd.alive():
        raise Failed("hmmvd died with the nested QEMU")
    row = (hmmvd.table() or {}).get(victim.name, {})
    say(f"e2e: faults: hmmvd on {victim.name} after the kill: status {row.get('status')}, "
        f"last error {row.get('last-error')!r}; its (promoted, demoted, mover errors) "
        f"{victim_before} before the kill, {hmmvd.seen.get(victim.name)} after")
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
    # The restarted hmmvd must do real work both ways, counted, not just answer: it gets a
    # pool of the DRAM the survivors hold and takes over the placement it finds; then each
    # survivor's quota (set-quota dram-max-mib, as hmmvctl sets it) is cut to half of what
    # it holds, so hmmvd must demote down to it, then lifted, so hmmvd must promote the hot
    # pages that went to the slow node into the room again (a pool only cut, as before
    # 2026-12-03, left it no promotion it had to make: CI of 56d351f, 0 up, 2,048 down).
    # Placement read back after each step.
    pool_mib = max(1, sum(held.values()) // 256)
    hmmvd = Hmmvd(opts, work, survivors, 2, pool_mib=pool_mib)
    daemons.append(hmmvd)
    wait_for("the restarted hmmvd manages the surviving VMs", 120,
             lambda: managed(hmmvd, survivors))
    agree0, disagree0 = totals["agree"], totals["disagree"]
    cut = {vm.name: max(1, held.get(vm.name, 0) // 2 // 256) for vm in survivors}
    for vm in survivors:
        hmmvd.ctl.request("set-quota", vm=vm.name, quota={"dram-max-mib": cut[vm.name]})

    def demoted_to_cut(table):
        return all(table.get(vm.name, {}).get("budget-pages") == cut[vm.name] * 256
                   and table[vm.name].get("dram-pages", 1 << 62) <= cut[vm.name] * 256
                   for vm in survivors)
    why = wait_counted(opts, hmmvd, survivors, demoted_to_cut, (60, 4))
    table = hmmvd.table() or {}
    p_cut = hmmvd.moves()
    for vm in survivors:
        v = table.get(vm.name, {})
        need = held.get(vm.name, 0) - v.get("budget-pages", 0)
        say(f"e2e: faults: restarted hmmvd (pool {pool_mib} MiB), {vm.name}: held "
            f"{held.get(vm.name, 0)} DRAM pages at the kill, quota cut to {cut[vm.name]} MiB: "
            f"budget {v.get('budget-pages')}, demoted {v.get('demotions-total')}, dram now "
            f"{v.get('dram-pages')}{'; ' + why if why else ''}")
        if v.get("dram-pages", 1 << 62) > v.get("budget-pages", -1):
            failures.append(f"faults: the restarted hmmvd left {vm.name} over its cut quota "
                            f"({v.get('dram-pages')} DRAM pages, budget "
                            f"{v.get('budget-pages')})")
        if need > 0 and v.get("demotions-total", 0) < need:
            failures.append(f"faults: the restarted hmmvd demoted fewer of {vm.name}'s "
                            f"pages than the DRAM it found over the budget ({need})")
    for vm in survivors:
        placement_check(hmmvd.ctl, vm, totals)
    for vm in survivors:
        hmmvd.ctl.request("set-quota", vm=vm.name, quota={"dram-max-mib": 0})
    want_up = getattr(opts, "restart_min_promotions", 512)
    why = wait_counted(opts, hmmvd, survivors,
                       lambda table: hmmvd.moves()[0] - p_cut[0] >= want_up, (60, 4))
    p3 = hmmvd.moves()
    table = hmmvd.table() or {}
    say(f"e2e: faults: quota lifted: the restarted hmmvd promoted {p3[0] - p_cut[0]} "
        f"(want {want_up}); in all it moved {p3[0]} up, {p3[1]} down; " +
        ", ".join(f"{n}: dram {v['dram-pages']} budget {v['budget-pages']}"
                  for n, v in sorted(table.items())) + (f"; {why}" if why else ""))
    print(f"testbed: restarted up={p3[0]} down={p3[1]} up_after_lift={p3[0] - p_cut[0]}",
          flush=True)
    if p3[0] - p_cut[0] < want_up:
        failures.append(f"faults: the restarted hmmvd promoted {p3[0] - p_cut[0]} pages "
                        f"into the room its lifted quota gave (want {want_up})")
    for vm in survivors:
        placement_check(hmmvd.ctl, vm, totals)
    agree = totals["agree"] - agree0
    disagree = totals["disagree"] - disagree0
    ratio = agree / max(agree + disagree, 1)
    say(f"e2e: faults: the restarted hmmvd's placement: {agree + disagree} page checks, "
        f"{disagree} disagree ({ratio:.4f}), mover errors {p3[2]}")
    if agree + disagree == 0 or ratio < 0.999 or disagree > p3[2]:
        failures.append(f"faults: the restarted hmmvd's placement agrees for {ratio:.4f} of "
                        f"{agree + disagree} page checks, {disagree} disagree, {p3[2]} mover "
                        f"errors")
    # the restarted hmmvd's stretch, exact again: the survivors stay paused in
    # hmmvd to the end, so nothing moves after this sample
    p3, mig = quiet_sample(hmmvd, survivors, migs, resume=False)
    stretches.append(("after the restart", delta(mig, mark), p3[0] + p3[1], True))
    prom, dem, errors = prom + p3[0], dem + p3[1], errors + p3[2]
    return hmmvd, survivors, stretches, (prom, dem, errors)
