# SPDX-License-Identifier: GPL-2.0-or-later
"""The tiering race's cost figures (rates over the steady window and the whole mode, ratios
to the neighbouring `none` modes) and its gnuplot plots."""
import os
import shutil
import subprocess

from e2elib.common import Failed, say


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
