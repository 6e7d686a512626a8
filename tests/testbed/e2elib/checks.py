# SPDX-License-Identifier: GPL-2.0-or-later
"""The checks: placement against the kernel, the kernel's migrations against hmmvd's count,
and the run phase that drives moves and checkpoints."""
import time

from e2elib.common import PAGE, say
from e2elib.daemon import check_alive
from e2elib.kernel import kernel_nodes


def placement_check(ctl, vm, totals):
    """Pauses vm in hmmvd, compares its view with the kernel's, resumes. Adds to totals:
    agree, disagree, kinds, and unexplained: the disagreeing pages that are not among the
    pages hmmvd names as having failed their last move (its view's move-failed-pages, counted
    in its move-failures), page by page: a disagreement is explained only by a counted mover
    error on that very page."""
    ctl.request("pause", vm=vm.name)
    try:
        view = ctl.request("placement", vm=vm.name)
        pid = view["pid"]
        if not vm.node_counts:   # first checkpoint: say how its RAM is laid out
            say(f"e2e: {vm.name} regions: " + ", ".join(
                f"{r['name']} gpa {r['gpa']:#x} hva {r['hva']:#x} {r['pages']} pages "
                f"backing {r['backing-page-size'] >> 10} KiB" for r in view["regions"]))
        addrs, believed, index = [], [], []
        for region in view["regions"]:
            first, n = region["first-page"], region["pages"]
            if region["hva"] == 0:
                continue
            addrs.extend(region["hva"] + i * PAGE for i in range(n))
            believed.extend(view["nodes"][first:first + n])
            index.extend(range(first, first + n))
        failed = set(view.get("move-failed-pages", []))
        actual = kernel_nodes(pid, addrs)
    finally:
        ctl.request("resume", vm=vm.name)
    agree = disagree = unexplained = 0
    kinds = {}
    for b, a, page in zip(believed, actual, index):
        if a >= 0:
            ok = b != "-" and int(b, 32) == a
        else:
            ok = b == "-"   # never placed (the guest never touched it) is what hmmvd says
        if ok:
            agree += 1
        else:
            disagree += 1
            key = f"hmmvd={b} kernel={a}"
            kinds[key] = kinds.get(key, 0) + 1
            if page not in failed:
                unexplained += 1
                if len(totals.setdefault("unexplained_pages", [])) < 8:
                    totals["unexplained_pages"].append(f"{vm.name} page {page}: {key}")
    totals["agree"] += agree
    totals["disagree"] += disagree
    totals["unexplained"] = totals.get("unexplained", 0) + unexplained
    totals["failed_pages"] = totals.get("failed_pages", 0) + len(failed)
    for k, v in kinds.items():
        totals["kinds"][k] = totals["kinds"].get(k, 0) + v
    vm.node_counts = {}
    for a in actual:
        if a >= 0:
            vm.node_counts[a] = vm.node_counts.get(a, 0) + 1
    present = sum(1 for a in actual if a >= 0)
    say(f"e2e: placement {vm.name} after interval {view['intervals']}: {len(actual)} pages, "
        f"{present} present, agree {agree}, disagree {disagree} (not on a page whose last "
        f"move failed: {unexplained}; such pages {len(failed)}) "
        f"{dict(sorted(kinds.items())[:4]) if kinds else ''}; kernel nodes "
        f"{dict(sorted(vm.node_counts.items()))}")


def account(failures, what, d, counted, exact):
    """The kernel's migrations (d: a delta of Migrations snapshots) against hmmvd's count
    over one stretch of the run. Every move hmmvd counts is a real migration (migrated >=
    counted); where hmmvd's count is exact (no fault in the stretch) nothing else may move
    either: a huge page moves 512 base pages at once, and hmmvd's accounting (and its
    migration cap, in bytes) must count them all (a little slack). The kernel's own
    migrations (compaction for the THPs and the hog's allocations, kcompactd) are not
    hmmvd's: with the tracepoint the check takes move_pages(2)'s (reason syscall_or_cpuset:
    nothing else here calls move_pages, migrate_pages or mbind); without it, all of
    pgmigrate_success."""
    total = d.get("pgmigrate_success", 0)
    reasons = {k[7:]: v for k, v in d.items() if k.startswith("reason:") and v}
    traced = d.get("traced", False) and not d.get("lost", False)
    migrated = d.get("reason:syscall_or_cpuset", 0) if traced else total
    say(f"e2e: {what}: hmmvd counted {counted} moves, the kernel migrated {total} pages "
        f"(by reason: {reasons or 'not traced'}{', events lost' if d.get('lost') else ''}); "
        f"vmstat: " + ", ".join(f"{k} +{v}" for k, v in d.items()
                                if not k.startswith("reason:") and k not in ("lost", "traced"))
        + ("" if exact else f" ({migrated - counted} that no hmmvd counted: the faults' "
                            f"windows, not checked against a count)"))
    print(f"testbed: migrations {what.replace(' ', '_')}: hmmvd={counted} kernel={total} "
          f"move_pages={d.get('reason:syscall_or_cpuset', -1) if traced else -1} "
          f"compaction={d.get('reason:compaction', 0) if traced else -1} "
          f"compact_isolated={d.get('compact_isolated', 0)} "
          f"thp_migration_success={d.get('thp_migration_success', 0)}", flush=True)
    if total < counted:
        failures.append(f"{what}: the kernel migrated {total} pages, hmmvd claims {counted}")
    if exact and migrated > counted * 1.01 + 64:
        failures.append(f"{what}: the kernel migrated {migrated} pages"
                        f"{' by move_pages(2)' if traced else ''}, "
                        f"{migrated / max(counted, 1):.2f}x the {counted} hmmvd counted: "
                        f"moves go uncounted (huge pages?)")


class Moves(tuple):
    """hmmvd's (promoted, demoted, errors) at the end of a run phase; why: None when the phase
    reached what it wanted, else the bound that ended it."""
    why = None


def run_phase(opts, hmmvd, vms, totals, want_moves, deadline_s, checks, bound=None):
    """Runs until hmmvd's moves reach want_moves each way and `checks` placement checkpoints
    passed. Checkpoints come every opts.check_every hmmvd intervals (default 20: 10 s at the
    suite's 500 ms), counted from hmmvd's status, not by the clock. The phase gives up when
    bound = (intervals, shifts) both passed since it began: hmmvd's intervals and the guests'
    hot-set shifts in all. Both, because the moves need both (new hot pages come with the
    shifts, hmmvd moves them in its intervals), and which one runs short depends on the load:
    loaded, the nested guests slow down (a shift every ~15 s at load 20) while hmmvd's
    intervals keep their pace; quiet, the guests shift every few seconds. deadline_s seconds
    stay as a liveness cap only.
    Returns hmmvd's (promoted, demoted, errors) at the end (Moves: .why says which bound ended
    the phase, None when it reached what it wanted)."""
    every = getattr(opts, "check_every", 20)
    poll = max(1.0, opts.interval_ms / 1000)
    start = time.monotonic()
    first = hmmvd.intervals()
    next_check = first + every
    shifts0 = sum(vm.shifts() for vm in vms)
    done = 0
    while True:
        time.sleep(poll)
        check_alive(vms, hmmvd)
        table = hmmvd.table() or {}
        prom, dem, errors = hmmvd.moves()
        now = hmmvd.intervals()
        shifts = sum(vm.shifts() for vm in vms) - shifts0
        # a checkpoint once every VM is managed (hmmvd drops a VM whose QEMU misses a QMP
        # deadline under load and adds it again: "starting" refuses placement queries)
        ready = all(table.get(vm.name, {}).get("status") == "managed" for vm in vms)
        if now >= next_check and done < checks and ready:
            for vm in vms:
                placement_check(hmmvd.ctl, vm, totals)
            done += 1
            next_check = hmmvd.intervals() + every
            say(f"e2e: interval {now} ({now - first} in, {shifts} shifts, "
                f"{time.monotonic() - start:.0f} s): promoted {prom}, demoted {dem}, errors "
                f"{errors}; " +
                ", ".join(f"{n}: dram {v['dram-pages']} slow {v['slow-pages']} "
                          f"budget {v['budget-pages']} hot {v['hot-pages']}"
                          for n, v in sorted(table.items())))
        if prom >= want_moves and dem >= want_moves and done >= checks:
            return Moves((prom, dem, errors))
        why = None
        if bound is not None and now - first >= bound[0] and shifts >= bound[1]:
            why = f"bound of {bound[0]} intervals and {bound[1]} hot-set shifts reached"
        elif time.monotonic() - start > deadline_s:
            why = f"liveness cap of {deadline_s} s"
        if why:
            moves = Moves((prom, dem, errors))
            moves.why = (f"{why} ({now - first} hmmvd intervals, {shifts} shifts, {done} of "
                         f"{checks} checkpoints): promoted {prom}, demoted {dem}, want "
                         f"{want_moves} each way")
            say(f"e2e: run phase ended: {moves.why}")
            return moves
