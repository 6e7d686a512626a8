#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Issue 12's BENCHMARKS.md figures from hmmv-corun replay CSVs (--csv FILE), as Markdown:

  corun-figures.py speedup CSV...     per CSV: hmmv (writes, reads+writes) runtime against
                                      all-DRAM, numa-balancing, memory-mode and the others
  corun-figures.py fairness CSV...    per CSV and policy: the worst VM's slowdown against its
                                      own all-DRAM run
  corun-figures.py accuracy CSV...    per workload: DRAM-served share of hmmv's placement as a
                                      fraction of the oracle's, write-only and reads+writes
  corun-figures.py runtime CSV...     one row per policy, one column per CSV: the VMs' total
                                      runtime against all-DRAM (pages moved)
  corun-figures.py worst CSV...       one row per policy, one column per CSV: the worst VM's
                                      slowdown against its own all-DRAM run (which VM)
  corun-figures.py goals CSV...       per CSV (setup, profile, DRAM): the paper goals against
                                      their ceilings. The ceiling of a ratio X / hmmv is X /
                                      all-DRAM; the best any placement policy reached (the
                                      oracle aside) and, given a replay of the same case on a
                                      *-free-moves profile (its oracle's moves cost no time),
                                      that oracle's runtime, the best a placement came to
  corun-figures.py held POOL ICSV     from an --intervals-csv (or a --plots dir's intervals.csv)
                                      and the pool in pages: per policy, each VM's mean DRAM
                                      pages held from interval 20 on, and the pool's pages
                                      nobody holds (mean; max) over those intervals

Totals are the sums of the VMs' runtimes (row vm=all); a ratio X/hmmv > 1 means hmmv is
faster by that factor.
"""
import csv
import sys

HMMV = ("hmmv-writes", "hmmv-reads-writes")


def load(path):
    rows = list(csv.DictReader(open(path)))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return rows


def totals(rows):
    return {r["policy"]: float(r["runtime_ns"]) for r in rows if r["vm"] == "all"}


def label(rows):
    r = rows[0]
    return f"{r['setup']} {r['profile']} {float(r['dram_fraction']) * 100:.0f}%"


def speedup(paths):
    print("| setup, profile, DRAM | hmmv / all-DRAM (writes; reads+writes) | numa-balancing / "
          "hmmv | memory-mode / hmmv | best other policy / hmmv | first-touch / hmmv |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in paths:
        rows = load(path)
        t = totals(rows)
        w, rw = t["hmmv-writes"], t["hmmv-reads-writes"]
        others = {p: v for p, v in t.items()
                  if p not in HMMV + ("all-dram", "oracle", "hmmv-ideal")}
        best = min(others, key=others.get)
        print(f"| {label(rows)} | {w / t['all-dram']:.3f}; {rw / t['all-dram']:.3f} | "
              f"{t['numa-balancing'] / w:.3f}; {t['numa-balancing'] / rw:.3f} | "
              f"{t['memory-mode'] / w:.3f}; {t['memory-mode'] / rw:.3f} | "
              f"{best} {others[best] / w:.3f}; {others[best] / rw:.3f} | "
              f"{t['first-touch'] / w:.3f}; {t['first-touch'] / rw:.3f} |")


def fairness(paths):
    for path in paths:
        rows = load(path)
        policies = []
        for r in rows:
            if r["policy"] not in policies:
                policies.append(r["policy"])
        print(f"\n{label(rows)}: worst VM's slowdown against its own all-DRAM run "
              "(runtime / all-DRAM of the same VM)\n")
        print("| policy | worst VM | its workload's slowdown | best VM's slowdown | all |")
        print("|---|---|---:|---:|---:|")
        for p in policies:
            vms = [r for r in rows if r["policy"] == p and r["vm"] != "all"]
            worst = max(vms, key=lambda r: float(r["slowdown"]))
            best = min(float(r["slowdown"]) for r in vms)
            allrow = [r for r in rows if r["policy"] == p and r["vm"] == "all"][0]
            print(f"| {p} | {worst['vm']} | {float(worst['slowdown']):.3f} | {best:.3f} | "
                  f"{float(allrow['slowdown']):.3f} |")


def policy_columns(paths, cell):
    """A Markdown table: a row per policy (in the first CSV's order), a column per CSV."""
    tables = [load(p) for p in paths]
    policies = []
    for r in tables[0]:
        if r["policy"] not in policies:
            policies.append(r["policy"])
    print("| policy | " + " | ".join(label(t) for t in tables) + " |")
    print("|---|" + "---:|" * len(tables))
    for p in policies:
        print(f"| {p} | " + " | ".join(cell([r for r in t if r["policy"] == p]) for t in tables)
              + " |")


def runtime_cell(rows):
    if not rows:
        return "-"
    a = [r for r in rows if r["vm"] == "all"][0]
    return f"{float(a['slowdown']):.3f} ({int(a['pages_moved']):,})"


def worst_cell(rows):
    vms = [r for r in rows if r["vm"] != "all"]
    if not vms:
        return "-"
    w = max(vms, key=lambda r: float(r["slowdown"]))
    return f"{float(w['slowdown']):.3f} ({w['vm']})"


PLACEMENT_ASIDE = HMMV + ("all-dram", "oracle", "hmmv-ideal")


def ratio_verdict(reached, best, best_name, bound, ceiling, goal):
    """A goal X / hmmv >= goal: reached = hmmv's best ratio, best = the best policy's X / it,
    bound = X / the free-move oracle (None without its run), ceiling = X / all-DRAM."""
    if reached >= goal:
        return "met"
    if ceiling < goal:
        return f"unreachable (ceiling {ceiling:.3f})"
    if bound is not None and bound < goal:
        return f"unreachable (free-move oracle {bound:.3f})"
    if best >= goal:
        return f"missed ({best_name} {best:.3f})"
    return "no policy" + (f" (free-move oracle {bound:.3f})" if bound is not None else "")


def goals(paths):
    """The paper goals per case (setup, profile, DRAM), one row each: runtimes against
    all-DRAM (numa-balancing, memory-mode, the best placement policy with the oracle aside,
    the free-move oracle when its run is given, hmmv) and a verdict per goal: met; unreachable
    (the ceiling X / all-DRAM, or X / the free-move oracle, is below the goal); missed (a
    policy reaches it, hmmv does not); no policy (reachable in principle, reached by none)."""
    free, cases = {}, []
    for path in paths:
        rows = load(path)
        r = rows[0]
        if r["profile"].endswith("-free-moves"):
            key = (r["setup"], r["profile"][:-len("-free-moves")], r["dram_fraction"])
            free[key] = totals(rows)
        else:
            cases.append(rows)
    print("| setup, profile, DRAM | runtime / all-DRAM: numa-balancing; memory-mode; best "
          "policy; free-move oracle; hmmv (writes; reads+writes) | +51% over numa-balancing "
          "(NB / hmmv) | +31% over memory-mode (MM / hmmv) | within 5% of all-DRAM at 50% | "
          "2x over TPP (NB / hmmv) |")
    print("|---|---|---|---|---|---|")
    for rows in cases:
        r = rows[0]
        t = totals(rows)
        a = t["all-dram"]
        bound_t = free.get((r["setup"], r["profile"], r["dram_fraction"]))
        others = {p: v for p, v in t.items() if p not in PLACEMENT_ASIDE}
        best = min(others, key=others.get)
        w, rw = t["hmmv-writes"], t["hmmv-reads-writes"]
        hm = min(w, rw)
        # the free-move run's own all-DRAM is the same replay's: scale to this one's
        bound_ns = bound_t["oracle"] / bound_t["all-dram"] * a if bound_t is not None else None
        cells = []
        for x, goal in (("numa-balancing", 1.51), ("memory-mode", 1.31)):
            v = ratio_verdict(t[x] / hm, t[x] / others[best], best,
                              t[x] / bound_ns if bound_ns else None, t[x] / a, goal)
            cells.append(f"{t[x] / w:.3f}; {t[x] / rw:.3f}: {v}")
        if abs(float(r["dram_fraction"]) - 0.5) < 1e-6:
            bnd = bound_ns / a if bound_ns else None
            if hm / a <= 1.05:
                v = "met"
            elif bnd is not None and bnd > 1.05:
                v = f"unreachable (free-move oracle {bnd:.3f})"
            elif others[best] / a <= 1.05:
                v = f"missed ({best} {others[best] / a:.3f})"
            else:
                v = "no policy" + (f" (free-move oracle {bnd:.3f})" if bnd is not None else "")
            cells.append(f"{w / a:.3f}; {rw / a:.3f}: {v}")
        else:
            cells.append("-")
        nb = t["numa-balancing"]
        cells.append(ratio_verdict(nb / hm, nb / others[best], best,
                                   nb / bound_ns if bound_ns else None, nb / a, 2.0))
        runtimes = (f"{t['numa-balancing'] / a:.3f}; {t['memory-mode'] / a:.3f}; {best} "
                    f"{others[best] / a:.3f}; "
                    f"{'-' if bound_ns is None else f'{bound_ns / a:.3f}'}; "
                    f"{w / a:.3f}; {rw / a:.3f}")
        print(f"| {label(rows)} | {runtimes} | " + " | ".join(cells) + " |")


def held(pool, path, first=20):
    """Mean DRAM pages per VM and idle pool pages (pool - held) from interval first on."""
    per = {}
    for r in csv.DictReader(open(path)):
        i = int(r["interval"])
        if i < first:
            continue
        per.setdefault(r["policy"], {}).setdefault(i, {})[r["vm"]] = int(r["dram_pages"])
    if not per:
        raise SystemExit(f"{path}: no intervals from {first} on")
    vms = sorted({vm for p in per.values() for iv in p.values() for vm in iv},
                 key=lambda v: (len(v), v))
    print(f"| policy | " + " | ".join(vms) + " | pool pages nobody holds (mean; max) |")
    print("|---|" + "---:|" * (len(vms) + 1))
    for p, ivs in per.items():
        means = [sum(iv.get(vm, 0) for iv in ivs.values()) / len(ivs) for vm in vms]
        idle = [pool - sum(iv.values()) for iv in ivs.values()]
        print(f"| {p} | " + " | ".join(f"{m:,.0f}" for m in means) +
              f" | {sum(idle) / len(idle):,.0f}; {max(idle):,} |")


def accuracy(paths, workloads):
    print("| setup, profile, DRAM | VM | workload | oracle DRAM-served | hmmv-writes / oracle "
          "| hmmv-reads-writes / oracle | hmmv-ideal / oracle |")
    print("|---|---|---|---:|---:|---:|---:|")
    for path in paths:
        rows = load(path)
        share = {(r["policy"], r["vm"]): float(r["dram_served_share"]) for r in rows}
        for vm in sorted({r["vm"] for r in rows if r["vm"] != "all"},
                         key=lambda v: (len(v), v)):
            o = share[("oracle", vm)]
            print(f"| {label(rows)} | {vm} | {workloads.get((rows[0]['setup'], vm), '?')} | "
                  f"{o:.3f} | {share[('hmmv-writes', vm)] / o:.3f} | "
                  f"{share[('hmmv-reads-writes', vm)] / o:.3f} | "
                  f"{share[('hmmv-ideal', vm)] / o:.3f} |")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("speedup", "fairness", "accuracy", "runtime",
                                                "worst", "held", "goals"):
        raise SystemExit(__doc__)
    paths = sys.argv[2:]
    if sys.argv[1] == "speedup":
        speedup(paths)
    elif sys.argv[1] == "fairness":
        fairness(paths)
    elif sys.argv[1] == "runtime":
        policy_columns(paths, runtime_cell)
    elif sys.argv[1] == "worst":
        policy_columns(paths, worst_cell)
    elif sys.argv[1] == "goals":
        goals(paths)
    elif sys.argv[1] == "held":
        if len(sys.argv) != 4 or not sys.argv[2].isdigit():
            raise SystemExit(__doc__)
        held(int(sys.argv[2]), sys.argv[3])
    else:
        # workload names: from a setup.json given as SETUP=DIR/setup.json arguments
        import json
        workloads, csvs = {}, []
        for p in paths:
            if p.endswith("setup.json"):
                s = json.load(open(p))
                workloads.update({(s["setup"], v["name"]): v["workload"] for v in s["vms"]})
            else:
                csvs.append(p)
        accuracy(csvs, workloads)


if __name__ == "__main__":
    main()
