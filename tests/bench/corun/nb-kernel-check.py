#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmv-corun's `numa-balancing` policy against the real 6.12 kernel (issue 12).

    nb-kernel-check.py HMMV_CORUN KERNEL_DIR [--out DIR] [--check] [--plot]

KERNEL_DIR is a run of tests/testbed/nb-kernel-curve.sh (tiering-race.py's kernel mode in the
testbed: numa_balancing = 2 and demotion, two VMs of the verify guest, each VM's 2,048-page
hot set moved to the slow node and its cold data to DRAM before the mode starts, DRAM then
filled by hugetlb pages down to a little free memory): its race.tsv (each VM's hot set on
DRAM, the guests' writes, promotions and demotions, every ~1 s), nb-vmstat.tsv and
nb-kernel-knobs.txt (node 0's watermarks and free pages), and nb-kernel.json (what this
script needs of them, written by hand from those files: see the README beside them).

This script replays the same workload through the policy: each VM's trace is the verify
guest's own access stream (tests/guest/verify.c: the same xorshift32 generator, seed, hot
ratio, rewrite and sweep rules), interval by interval at the rate of writes the testbed
measured for that VM (race.tsv's write counts, interpolated), with every access counted as a
miss (no cache: what the policy acts on is which pages are touched). The starting placement
is the testbed's (setup.json "start_slow": the hot set first touched on the slow tier, the
cold data on DRAM) and DRAM is the cold data plus the free pages node 0 had when the mode
started. The replay's per-interval figures (--intervals-csv: start_slow_dram, promoted,
demoted) give the policy's curve; the table compares it with the kernel's: the hot set on
DRAM at the end and its mean over the samples, the time each VM's hot set first reached 99%,
the promotions and demotions.

--check fails (exit 1) when the policy drifts from the kernel's curve beyond the tolerances
in nb-kernel.json ("tolerance"): each VM's final and mean hot-set fraction within
frac_abs; promotions and demotions within count_rel of the kernel's (relative) or
count_abs (absolute), whichever is wider; a VM that reached 99% in the kernel reaches it in
the replay within t99_abs_s seconds and one that never did never does. Counts and fractions,
never wall-clock time.
"""
import argparse
import bisect
import csv
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

PAGE = 4096
LINES = PAGE // 64          # a whole-page read or fill: one miss a cache line


def xorshift32(x):
    x ^= (x << 13) & 0xffffffff
    x ^= x >> 17
    x ^= (x << 5) & 0xffffffff
    return x


class VerifyGuest:
    """tests/guest/verify.c's access stream (shift_every 0: a static hot set)."""

    def __init__(self, name, hot_pages, cold_pages, hot_ratio=98, rewrite_every=64,
                 verify_every=16):
        self.hot, self.cold = hot_pages, cold_pages
        self.total = hot_pages + cold_pages
        self.hot_ratio = hot_ratio
        self.rewrite_every, self.verify_every = rewrite_every, verify_every
        self.to_rewrite, self.to_verify = rewrite_every, verify_every
        self.rng = 1 + sum(map(ord, name))   # e2elib/vms.py's seed
        self.sweep = 0

    def run(self, writes, base):
        """writes more writes; returns {base + window page: [reads, writes]} (misses)."""
        out = {}
        for _ in range(writes):
            self.rng = r = xorshift32(self.rng)
            self.rng = xorshift32(self.rng)
            if self.cold == 0 or r % 100 < self.hot_ratio:
                idx = self.rng % self.hot
            else:
                idx = self.hot + self.rng % self.cold
            e = out.setdefault(idx, [0, 0])
            self.to_rewrite -= 1
            if self.to_rewrite == 0:
                self.to_rewrite = self.rewrite_every
                e[0] += LINES
                e[1] += LINES
            else:
                e[0] += 1
                e[1] += 1
            self.to_verify -= 1
            if self.to_verify == 0:
                self.to_verify = self.verify_every
                out.setdefault(self.sweep, [0, 0])[0] += LINES
                self.sweep = (self.sweep + 1) % self.total
        return {base + p: e for p, e in out.items()}


def write_trace(path, nr_pages, interval_ms, intervals):
    """hmmv's trace format, version 1 with read counts (include/hmmv/trace.h)."""
    with open(path, "wb") as f:
        f.write(b"HMMVTRC1" + struct.pack("<IIQII", 1, 12, nr_pages, interval_ms, 1))
        for k, (compute_ns, acc) in enumerate(intervals):
            f.write(struct.pack("<IIQQ", 0x56544e49, len(acc), compute_ns, k))
            for page in sorted(acc):
                r, w = acc[page]
                f.write(struct.pack("<QII", page, r, w))


def kernel_curve(kdir, vms):
    """race.tsv's kernel rows: [(t, {vm: (frac, writes)}, promoted, demoted)]."""
    rows = []
    with open(os.path.join(kdir, "race.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["mode"] != "kernel":
                continue
            rows.append((float(row["t"]),
                         {v: (float(row[f"{v}_hot_dram"]), int(row[f"{v}_writes"])) for v in vms},
                         int(row["promoted"]), int(row["demoted"])))
    if not rows:
        raise SystemExit(f"nb-kernel-check: no kernel rows in {kdir}/race.tsv")
    return rows


def writes_at(curve, vm, t):
    """The VM's writes at time t. The guest reports its count every --report-every (20,000)
    writes, so a sample shows the last report: a new count is taken as reached halfway
    between the sample that first shows it and the one before; linear in between (0 at
    t = 0)."""
    ts, ws, prev_t = [0.0], [0], 0.0
    for r in curve:
        if r[1][vm][1] > ws[-1]:
            ts.append((prev_t + r[0]) / 2)
            ws.append(r[1][vm][1])
        prev_t = r[0]
    if t >= ts[-1]:
        return ws[-1]
    i = bisect.bisect_right(ts, t)
    t0, t1, w0, w1 = ts[i - 1], ts[i], ws[i - 1], ws[i]
    return w0 + (w1 - w0) * (t - t0) / (t1 - t0) if t1 > t0 else w1


def summarise(times, fracs, promoted, demoted):
    t99 = next((t for t, f in zip(times, fracs) if f >= 0.99), None)
    return dict(final=fracs[-1], mean=sum(fracs) / len(fracs), t99=t99,
                promoted=promoted, demoted=demoted)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corun")
    ap.add_argument("kernel_dir")
    ap.add_argument("--out", help="keep the traces, CSVs and plot here")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--plot", action="store_true")
    opts = ap.parse_args()
    with open(os.path.join(opts.kernel_dir, "nb-kernel.json")) as f:
        k = json.load(f)
    vms = k["vms"]
    hot, cold = k["hot_pages"], k["cold_pages"]
    interval_ms = k["interval_ms"]
    seconds = k["seconds"]
    curve = kernel_curve(opts.kernel_dir, vms)
    out = opts.out or tempfile.mkdtemp(prefix="nb-kernel-check.")
    os.makedirs(out, exist_ok=True)
    try:
        n = int(seconds * 1000 // interval_ms)
        for vm in vms:
            g = VerifyGuest(vm, hot, cold)
            intervals, done = [], 0
            for i in range(n):
                upto = int(writes_at(curve, vm, (i + 1) * interval_ms / 1000))
                acc = g.run(max(upto - done, 0), k["window_first_page"])
                if i == 0:
                    # the guest filled its whole window before the mode began: every page is
                    # present (first touched) when the kernel's first pass comes
                    for page in range(hot + cold):
                        acc.setdefault(k["window_first_page"] + page, [0, 0])[1] += LINES
                intervals.append((interval_ms * 1000000 // 2, acc))
                done = max(done, upto)
            write_trace(os.path.join(out, f"{vm}.trace"), k["vm_pages"], interval_ms, intervals)
        total = len(vms) * k["vm_pages"]
        free = k["dram_free_pages"]
        # The policy acts on free memory against the watermarks (and on pgdat_free_space_enough,
        # which needs 1 GiB free: never here). The replay's DRAM cannot exceed the VMs' pages,
        # so it has `shift` fewer free pages than the kernel had (8,192 against 18,432). The
        # policy gets the watermarks the kernel ran with (nb-kernel.json: node 0's with THP
        # off, high 1,156, promo 1,400) as they are; that is the kernel's run as long as they
        # bind in neither: free memory stays above promo with every hot page promoted, in the
        # kernel's run and in the replay's. Else the replay refuses.
        shift = max(len(vms) * cold + free - total, 0)
        high, promo = k["high_wmark_pages"], k["promo_wmark_pages"]
        for name, f in (("the kernel's", free), ("the replay's", free - shift)):
            if f - len(vms) * hot <= promo:
                raise SystemExit(f"nb-kernel-check: {name} {f} free pages less {len(vms) * hot} "
                                 f"hot pages reach the promo watermark {promo}: the watermarks "
                                 f"could bind, cannot be replayed")
        nbstate = dict(high_wmark_pages=high, promo_wmark_pages=promo,
                       scan_period_ms=k["scan_period_ms"], hint_fault_us=k["hint_fault_us"])
        setup = dict(setup="nbcheck", interval_ms=interval_ms, numa_balancing=nbstate,
                     vms=[dict(name=vm, trace=f"{vm}.trace", workload="verify",
                               start_slow=[k["window_first_page"], hot]) for vm in vms])
        with open(os.path.join(out, "setup.json"), "w") as f:
            json.dump(setup, f, indent=1)
        dram = len(vms) * cold + free - shift
        frac = dram / total
        res, ivl = os.path.join(out, "replay.csv"), os.path.join(out, "intervals.csv")
        r = subprocess.run([opts.corun, "replay", "--traces", out, "--profile", "optane",
                            "--dram", f"{frac:.9f}", "--policies", "all-dram,numa-balancing",
                            "--csv", res, "--intervals-csv", ivl, "-q"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"nb-kernel-check: replay failed: {r.stderr.strip()[-500:]}")
        with open(ivl) as f:
            rows = [row for row in csv.DictReader(f) if row["policy"] == "numa-balancing"]
        pol = {}
        prom = dem = 0
        times = sorted({int(row["interval"]) for row in rows})
        by = {(int(row["interval"]), row["vm"]): row for row in rows}
        per_vm = {vm: [] for vm in vms}
        tsv = [["t"] + [f"{vm}_hot_dram" for vm in vms] + ["promoted", "demoted"]]
        for i in times:
            for vm in vms:
                row = by[(i, vm)]
                per_vm[vm].append(int(row["start_slow_dram"]) / hot)
                prom += int(row["promoted"])
                dem += int(row["demoted"])
            tsv.append([f"{(i + 1) * interval_ms / 1000:.1f}"] +
                       [f"{per_vm[vm][-1]:.4f}" for vm in vms] + [str(prom), str(dem)])
        with open(os.path.join(out, "policy.tsv"), "w") as f:
            f.write("\n".join("\t".join(r) for r in tsv) + "\n")
        ktimes = [r[0] for r in curve]
        # the policy sampled where the kernel was (the interval that ended last before t)
        ptimes = [(i + 1) * interval_ms / 1000 for i in times]
        for vm in vms:
            kf = [r[1][vm][0] for r in curve]
            pf = [per_vm[vm][max(bisect.bisect_right(ptimes, t) - 1, 0)] for t in ktimes]
            pol[vm] = (summarise(ktimes, kf, None, None), summarise(ktimes, pf, None, None))
        kprom, kdem = curve[-1][2], curve[-1][3]
        tol = k["tolerance"]
        fails = []

        def t99s(x):
            return "never" if x is None else f"{x:.0f} s"

        print(f"nb-kernel-check: {len(vms)} VMs x {hot} hot + {cold} cold pages, DRAM "
              f"{dram} pages ({len(vms)} x cold + {free} free - {shift}), watermarks high "
              f"{nbstate['high_wmark_pages']} promo {nbstate['promo_wmark_pages']} (the kernel's; "
              f"binding in neither run), "
              f"scan period {k['scan_period_ms']} ms at the start, hint fault "
              f"{k['hint_fault_us']} us, "
              f"{n} intervals of {interval_ms} ms")
        print("| | kernel (testbed 6.12) | numa-balancing policy (replay) |")
        print("|---|---|---|")
        for vm in vms:
            ks, ps = pol[vm]
            print(f"| {vm} hot set on DRAM, end | {ks['final']:.3f} | {ps['final']:.3f} |")
            print(f"| {vm} mean of the samples | {ks['mean']:.3f} | {ps['mean']:.3f} |")
            print(f"| {vm} 99% reached | {t99s(ks['t99'])} | {t99s(ps['t99'])} |")
            for what in ("final", "mean"):
                if abs(ks[what] - ps[what]) > tol["frac_abs"]:
                    fails.append(f"{vm} {what}: policy {ps[what]:.3f}, kernel {ks[what]:.3f} "
                                 f"(tolerance {tol['frac_abs']})")
            if (ks["t99"] is None) != (ps["t99"] is None) or (
                    ks["t99"] is not None and abs(ks["t99"] - ps["t99"]) > tol["t99_abs_s"]):
                fails.append(f"{vm} 99%: policy {t99s(ps['t99'])}, kernel {t99s(ks['t99'])} "
                             f"(tolerance {tol['t99_abs_s']} s)")
        print(f"| promoted | {kprom} | {prom} |")
        print(f"| demoted | {kdem} | {dem} |")
        for what, kv, pv in (("promoted", kprom, prom), ("demoted", kdem, dem)):
            if abs(kv - pv) > max(tol["count_rel"] * kv, tol["count_abs"]):
                fails.append(f"{what}: policy {pv}, kernel {kv} (tolerance "
                             f"{tol['count_rel']:.0%} or {tol['count_abs']})")
        if opts.plot:
            plot(out, opts.kernel_dir, vms)
        for f in fails:
            print(f"nb-kernel-check: DRIFT: {f}")
        if opts.check and fails:
            return 1
        if opts.check:
            print("nb-kernel-check: ok: the policy's curve is within the tolerances")
        return 0
    finally:
        if not opts.out:
            shutil.rmtree(out, ignore_errors=True)


def plot(out, kdir, vms):
    if not shutil.which("gnuplot"):
        print("nb-kernel-check: no gnuplot: no plot")
        return
    race = os.path.join(kdir, "race.tsv")
    lines = []
    for i, vm in enumerate(vms):
        col = 3 + 2 * i
        lines.append(f'"{race}" using (strcol(1) eq "kernel" ? $2 : NaN):{col} with lines lw 2 '
                     f'lc {i + 1} title "kernel {vm}"')
        lines.append(f'"{out}/policy.tsv" using 1:{2 + i} with lines lw 2 dt 2 lc {i + 1} '
                     f'title "policy {vm}"')
    script = f"""
set terminal pngcairo size 1000,600 font ",10"
set datafile separator "\\t"
set key autotitle columnhead outside right
set grid
set output "{out}/nb-kernel-check.png"
set title "Hot set on DRAM: the 6.12 kernel (testbed) and the numa-balancing policy (replay)"
set xlabel "seconds since the mode started (the first 30 s; both flat after)"
set xrange [0:30]
set ylabel "fraction of the hot set on DRAM"
set yrange [0:1.05]
plot {", ".join(lines)}
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"nb-kernel-check: gnuplot: {r.stderr.strip()}")
    print(f"nb-kernel-check: plot {out}/nb-kernel-check.png")


if __name__ == "__main__":
    sys.exit(main())
