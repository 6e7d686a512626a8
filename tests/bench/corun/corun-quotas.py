#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What quotas and weights buy when the DRAM pool does not hold the sum of the hot sets
(issue 12, fairness): one recorded setup replayed with the same traces under several quota
variants of its setup.json (weight, dram_min_mib, dram_max_mib per VM, as virsh metadata gives
hmmvd), printed as a Markdown table of each VM's slowdown against its own all-DRAM run.

  corun-quotas.py HMMV_CORUN RECORDING --profile optane|cxl --dram F --favour VM --min-mib N
                  [--weight W] [--max-mib N] [--csv-dir DIR]

RECORDING is a directory with setup.json (corun-live's, e.g. /var/cache/hmmv/corun/hmmv4-HASH/).
Variants (each a setup.json in a temporary directory naming RECORDING's traces by absolute
path; nothing in RECORDING is written):
  none      every VM weight 100, no min, no max (as recorded)
  weight    VM --favour weight W (400), the others 100
  min       VM --favour dram_min_mib N (guaranteed DRAM)
  max       every other VM dram_max_mib M (--max-mib, default: an equal share of what the
            favoured VM's min leaves of the pool)
Policies: all-dram (each VM's reference), first-touch and memory-mode (which know nothing of
quotas: the same in every variant, printed once), hmmv-writes and hmmv-reads-writes.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

POLICIES = "all-dram,first-touch,memory-mode,hmmv-writes,hmmv-reads-writes"
HMMV = ("hmmv-writes", "hmmv-reads-writes")


def replay(corun, d, profile, dram, csv_path):
    subprocess.run([corun, "replay", "--traces", d, "--profile", profile, "--dram", str(dram),
                    "--policies", POLICIES, "--csv", csv_path, "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    return list(csv.DictReader(open(csv_path)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corun")
    ap.add_argument("recording")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--dram", type=float, required=True)
    ap.add_argument("--favour", required=True, help="the VM the quotas favour (vm name)")
    ap.add_argument("--min-mib", type=int, required=True)
    ap.add_argument("--weight", type=int, default=400)
    ap.add_argument("--max-mib", type=int, default=0)
    ap.add_argument("--csv-dir", help="keep each variant's CSV here")
    args = ap.parse_args()
    base = json.load(open(os.path.join(args.recording, "setup.json")))
    names = [v["name"] for v in base["vms"]]
    if args.favour not in names:
        sys.exit(f"corun-quotas: no VM {args.favour} in {args.recording} ({', '.join(names)})")
    total_mib = sum(v["ram_mib"] for v in base["vms"])
    pool_mib = args.dram * total_mib
    if args.min_mib <= 0 or args.min_mib >= pool_mib:
        sys.exit(f"corun-quotas: --min-mib must be in 1..{pool_mib:.0f} (the pool)")
    max_mib = args.max_mib or max(1, int((pool_mib - args.min_mib) / (len(names) - 1)))
    variants = {
        "none": {},
        "weight": {args.favour: {"weight": args.weight}},
        "min": {args.favour: {"dram_min_mib": args.min_mib}},
        "max": {n: {"dram_max_mib": max_mib} for n in names if n != args.favour},
    }
    describe = {
        "none": "no quota, weights 100",
        "weight": f"{args.favour} weight {args.weight}",
        "min": f"{args.favour} dram_min_mib {args.min_mib}",
        "max": f"the others dram_max_mib {max_mib}",
    }
    work = tempfile.mkdtemp(prefix="hmmv-corun-quotas-")
    results = {}
    try:
        for name, quota in variants.items():
            d = os.path.join(work, name)
            os.makedirs(d)
            setup = dict(base)
            setup["vms"] = []
            for v in base["vms"]:
                v = {k: v[k] for k in v if k not in ("weight", "dram_min_mib", "dram_max_mib")}
                v["trace"] = os.path.join(os.path.abspath(args.recording), v["trace"])
                v.update(quota.get(v["name"], {}))
                setup["vms"].append(v)
            with open(os.path.join(d, "setup.json"), "w") as f:
                json.dump(setup, f, indent=1)
            csv_path = os.path.join(args.csv_dir or d, f"quotas-{name}.csv")
            if args.csv_dir:
                os.makedirs(args.csv_dir, exist_ok=True)
            results[name] = replay(args.corun, d, args.profile, args.dram, csv_path)
            print(f"corun-quotas: {name} ({describe[name]}) done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    workloads = {v["name"]: v.get("workload", "") for v in base["vms"]}

    def slowdowns(rows, policy):
        return {r["vm"]: float(r["slowdown"]) for r in rows if r["policy"] == policy}

    print(f"{base['setup']} {args.profile}, DRAM {args.dram * 100:.0f}% of the VMs' RAM "
          f"({pool_mib:.0f} of {total_mib} MiB); each VM's runtime against its own all-DRAM "
          f"run; favoured VM {args.favour} ({workloads[args.favour]})\n")
    print("| policy, quota | " + " | ".join(f"{n} {workloads[n]}" for n in names) +
          " | all | worst VM |")
    print("|---|" + "---:|" * (len(names) + 2))
    for policy in ("first-touch", "memory-mode"):
        s = [slowdowns(results[v], policy) for v in variants]
        if any(x != s[0] for x in s):
            sys.exit(f"corun-quotas: {policy} differs between quota variants: it must not")
        s = s[0]
        print(f"| {policy} (any quota) | " + " | ".join(f"{s[n]:.3f}" for n in names) +
              f" | {s['all']:.3f} | {max(s[n] for n in names):.3f} |")
    for policy in HMMV:
        for variant in variants:
            s = slowdowns(results[variant], policy)
            print(f"| {policy}, {describe[variant]} | " +
                  " | ".join(f"{s[n]:.3f}" for n in names) +
                  f" | {s['all']:.3f} | {max(s[n] for n in names):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
