#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The PNG plots of one hmmv-corun replay, drawn with gnuplot (pngcairo).

    corun-plots.py RESULTS_CSV INTERVALS_CSV OUT_DIR

RESULTS_CSV is `hmmv-corun replay --csv`, INTERVALS_CSV `--intervals-csv`. Writes, and prints
the paths of:
  runtime.png    runtime normalised to all-DRAM, per policy and VM
  dram-share.png share of LLC misses DRAM served, per interval, per policy (all VMs)
  migrations.png pages migrated per interval, per policy (all VMs)
  lending.png    DRAM pages each VM held per interval, under each hmmv policy (the balancer's
                 lending between VMs)
  fairness.png   each VM's slowdown against its own all-DRAM run: worst and best VM per policy
"""
import collections
import csv
import os
import shutil
import subprocess
import sys


def gnuplot(script, out_dir):
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, cwd=out_dir,
                       timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"corun-plots: gnuplot failed: {r.stderr.strip()}")


def quote(s):
    return '"' + s.replace('"', "'") + '"'


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    results_csv, intervals_csv, out = sys.argv[1:]
    if shutil.which("gnuplot") is None:
        raise SystemExit("corun-plots: needs gnuplot (scripts/setup installs gnuplot-nox)")
    os.makedirs(out, exist_ok=True)
    with open(results_csv) as f:
        rows = list(csv.DictReader(f))
    with open(intervals_csv) as f:
        samples = list(csv.DictReader(f))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    vms = list(dict.fromkeys(r["vm"] for r in rows if r["vm"] != "all"))
    head = rows[0]
    title = f"{head['setup']}, {head['profile']}, DRAM {float(head['dram_fraction']) * 100:.0f}%"
    term = "set terminal pngcairo size 1200,600 font ',10'\nset key outside right\n"
    written = []

    # runtime.png: clustered bars, one cluster per policy, one bar per VM plus all
    with open(os.path.join(out, "runtime.dat"), "w") as f:
        f.write("policy " + " ".join(vms + ["all"]) + "\n")
        for p in policies:
            vals = [next(r["slowdown"] for r in rows if r["policy"] == p and r["vm"] == v)
                    for v in vms + ["all"]]
            f.write(quote(p) + " " + " ".join(vals) + "\n")
    cols = " , ".join(f"'' using {i + 2} title columnheader" for i in range(1, len(vms) + 1))
    gnuplot(term + f"""set output 'runtime.png'
set title {quote('runtime / all-DRAM per VM (lower is better): ' + title)}
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set yrange [0:*]
set grid ytics
plot 'runtime.dat' using 2:xtic(1) title columnheader{', ' + cols if cols else ''}
""", out)
    written.append("runtime.png")

    # per interval, per policy: DRAM share and migrations (all VMs), DRAM pages per VM
    acc = collections.defaultdict(lambda: [0, 0, 0])
    held = collections.defaultdict(dict)
    for s in samples:
        key = (s["policy"], int(s["interval"]))
        acc[key][0] += int(s["accesses"])
        acc[key][1] += int(s["dram_accesses"])
        acc[key][2] += int(s["pages_moved"])
        held[key][s["vm"]] = int(s["dram_pages"])
    for name, col, label in [("dram-share", 1, "share of LLC misses served by DRAM"),
                             ("migrations", 2, "pages migrated per interval")]:
        plots = []
        for i, p in enumerate(policies):
            dat = f"{name}-{i}.dat"
            with open(os.path.join(out, dat), "w") as f:
                for (pol, k), (a, d, m) in sorted(acc.items()):
                    if pol == p:
                        f.write(f"{k} {d / a if col == 1 and a else (m if col == 2 else 1)}\n")
            plots.append(f"'{dat}' using 1:2 with lines lw 2 title {quote(p)}")
        gnuplot(term + f"""set output '{name}.png'
set title {quote(label + ': ' + title)}
set xlabel 'interval'
set grid
plot {', '.join(plots)}
""", out)
        written.append(f"{name}.png")

    hmmv = [p for p in policies if p.startswith("hmmv-")]
    if hmmv:
        script = term.replace("size 1200,600", f"size 1200,{400 * len(hmmv)}") + \
            f"set output 'lending.png'\nset multiplot layout {len(hmmv)},1\nset grid\n" \
            "set xlabel 'interval'\nset ylabel 'DRAM pages'\n"
        for i, p in enumerate(hmmv):
            dat = f"lending-{i}.dat"
            with open(os.path.join(out, dat), "w") as f:
                for (pol, k), per_vm in sorted(held.items()):
                    if pol == p:
                        f.write(f"{k} " + " ".join(str(per_vm.get(v, 0)) for v in vms) + "\n")
            lines = ", ".join(f"'{dat}' using 1:{j + 2} with lines lw 2 title {quote(v)}"
                              for j, v in enumerate(vms))
            script += f"set title {quote('DRAM held per VM under ' + p + ': ' + title)}\nplot {lines}\n"
        gnuplot(script + "unset multiplot\n", out)
        written.append("lending.png")

    with open(os.path.join(out, "fairness.dat"), "w") as f:
        f.write("policy worst best\n")
        for p in policies:
            sl = [float(r["slowdown"]) for r in rows if r["policy"] == p and r["vm"] != "all"]
            f.write(f"{quote(p)} {max(sl)} {min(sl)}\n")
    gnuplot(term + f"""set output 'fairness.png'
set title {quote("each VM's slowdown against its own all-DRAM run: " + title)}
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -30
set yrange [0:*]
set grid ytics
plot 'fairness.dat' using 2:xtic(1) title 'worst VM', '' using 3 title 'best VM'
""", out)
    written.append("fairness.png")
    for w in written:
        print(os.path.join(out, w))
    return 0


if __name__ == "__main__":
    sys.exit(main())
