#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/demo's reports, one subcommand each (the demo's own arithmetic, kept out of the
shell script):

    demo-report.py summary MODELLED NAME...   < `hmmvctl --json vms`, fd 3 `--json status`
    demo-report.py churn VIEWS NAME HOT_MIB [NAME HOT_MIB ...]
    demo-report.py setup REC SECONDS INTERVAL_INSNS NAME:RAM_MIB:HALTED...
    demo-report.py quit SOCKET                 (QMP quit to a standalone QEMU)

summary prints the per-VM table and exits 1 when a VM is not managed; churn prints the churn
per 10 s from the views hmmvd's control socket gave during the run (one JSON line each);
setup writes REC/setup.json for `hmmv-corun replay` and prints the whole intervals to replay
(exits non-zero naming a missing or torn trace); quit exits 0 once QEMU closed its monitor.
"""
import json
import os
import socket
import struct
import sys
import time


def summary(argv):
    """The table after the run; exit status 1 when a VM is not managed."""
    modelled, names = argv[1] == "yes", argv[2:]
    vms = {v["name"]: v for v in json.load(sys.stdin)}
    with os.fdopen(3) as f:
        status = json.load(f)
    mib = lambda pages: pages / 256.0
    cols = ("VM", "status", "RAM", "written", "budget", "hot", "DRAM", "slow", "promoted",
            "demoted", "failed", "errors")
    fmt = "%-16s %-8s %5s %7s %7s %6s %6s %6s %9s %9s %7s %6s"
    print(fmt % cols)
    tot = dict(ram=0, written=0, budget=0, hot=0, dram=0, slow=0, prom=0, dem=0, failed=0,
               errors=0)
    problems = []
    for name in names:
        v = vms.get(name)
        if v is None:
            problems.append(f"{name}: not listed by hmmvd")
            continue
        failed = sum(v.get("move-failures", {}).values())
        row = dict(ram=v["nr-pages"], written=v["written-pages"], budget=v["budget-pages"],
                   hot=v["hot-pages"],
                   dram=v["dram-pages"], slow=v["slow-pages"], prom=v["promotions-total"],
                   dem=v["demotions-total"], failed=failed, errors=v["errors"])
        for key in tot:
            tot[key] += row[key]
        print(fmt % (name, v["status"][:8], "%.0f" % mib(row["ram"]), "%.1f" % mib(row["written"]),
                     "%.1f" % mib(row["budget"]),
                     "%.1f" % mib(row["hot"]), "%.1f" % mib(row["dram"]), "%.1f" % mib(row["slow"]),
                     row["prom"], row["dem"], failed, row["errors"]))
        if v["status"] != "managed":
            problems.append(f"{name}: {v['status']}")
        if v.get("last-error"):
            print(f"  {name}: last error: {v['last-error']}")
    print(fmt % ("total", "", "%.0f" % mib(tot["ram"]), "%.1f" % mib(tot["written"]),
                 "%.1f" % mib(tot["budget"]),
                 "%.1f" % mib(tot["hot"]), "%.1f" % mib(tot["dram"]), "%.1f" % mib(tot["slow"]),
                 tot["prom"], tot["dem"], tot["failed"], tot["errors"]))
    print("(MiB: RAM; written = pages written in the last interval, the heat the budgets follow;")
    print(" budget, hot set, pages on DRAM and slow after the last interval. Pages since the VM was")
    print(" listed: promoted, demoted, failed = moves the mover refused; errors = failed intervals)")
    print(f"hmmvd: {status.get('intervals', 0)} intervals of {status.get('interval-ms', 0)} ms, "
          f"the last took {status.get('last-interval-ns', 0) / 1e6:.1f} ms; DRAM pool "
          f"{mib(status.get('pool-pages', 0)):.0f} MiB, budgets sum to {mib(tot['budget']):.0f} MiB")
    if status.get("balance-error"):
        print(f"hmmvd: balance error: {status['balance-error']}")
    budgets = [vms[n]["budget-pages"] for n in names if n in vms]
    if tot["prom"] + tot["dem"] == 0:
        print("note: no page was promoted or demoted (the run may be too short)")
    if len(set(budgets)) <= 1:
        print("note: every VM got the same DRAM budget")
    if modelled:
        print(f"The slow tier was MODELLED ({status.get('mover')} mover, no slow NUMA node here): "
              "promotions and demotions are hmmvd's decisions, counted but not performed; no page "
              "really moved.")
    else:
        print(f"The slow tier was REAL ({status.get('mover')} mover): the promotions and demotions "
              "above are pages that really moved between NUMA nodes.")
    for p in problems:
        print(f"problem: {p}")
    sys.exit(1 if problems else 0)


def churn(argv):
    """Churn per interval, averaged over each 10 s of the run."""
    # Churn per 10 s of the run (README "Churn"): pages moved per interval for the first time
    # since hmmvd learnt their node (first placement) and again (re-moves), and pages that entered
    # the hot set, from the views' cumulative counts, as a share of each guest's hot set.
    path, names, hot = argv[1], argv[2::2], [int(h) * 256 for h in argv[3::2]]
    snaps = []
    with open(path) as f:
        for line in f:
            try:
                snaps.append(json.loads(line))
            except ValueError:
                pass
    if len(snaps) < 2:
        print("churn: fewer than two views recorded")
        sys.exit(0)
    end = snaps[-1]["t"]
    edges = list(range(0, end, 10)) + [end]
    print("churn per interval, averaged over each 10 s (first placement / re-moves / entered the "
          "hot set; % of the guest's hot set):")
    for name, hot_pages in zip(names, hot):
        series = [(s["t"], v) for s in snaps for v in s["vms"] if v.get("name") == name]
        cells = []
        for lo, hi in zip(edges, edges[1:]):
            # from the last view at or before the window's start to the last one in it
            before = [(t, v) for t, v in series if t <= lo] or series[:1]
            part = before[-1:] + [(t, v) for t, v in series if lo < t <= hi]
            if len(part) < 2:
                cells.append("-")
                continue
            (_, a), (_, b) = part[0], part[-1]
            n = b.get("last-good-interval", 0) - a.get("last-good-interval", 0)
            if n <= 0:
                cells.append("-")
                continue
            f = (b["first-moves-total"] - a["first-moves-total"]) / n
            r = (b["re-moves-total"] - a["re-moves-total"]) / n
            e = (b["hot-entered-total"] - a["hot-entered-total"]) / n
            cells.append(f"{part[0][0]}-{part[-1][0]}s {f:.0f}/{r:.0f} ({100 * r / hot_pages:.2f}%)"
                         f"/{e:.0f}")
        print(f"  {name} (hot set {hot_pages} pages): " + "; ".join(cells))


def trace_intervals(path):
    """Whole intervals of a version 2 or 3 trace (the recorder's: 3 since the stored bit),
    walking its interval headers; -1 if torn."""
    with open(path, "rb") as f:
        data = f.read()
    if (len(data) < 32 or data[:8] != b"HMMVTRC1" or
            struct.unpack_from("<I", data, 8)[0] not in (2, 3)):
        return -1
    off, n = 32, 0
    while off + 32 <= len(data):
        off += 32 + 16 * struct.unpack_from("<I", data, off + 4)[0]
        n += 1
    return n if off == len(data) else -1


def setup(argv):
    """REC/setup.json for the replay; prints the whole intervals."""
    rec, seconds, interval_insns = argv[1], int(argv[2]), int(argv[3])
    vms = [a.split(":") for a in argv[4:]]   # name:ram_mib:halted
    counts = {}
    for name, mib, halted in vms:
        path = os.path.join(rec, name + ".trace")
        if not os.path.exists(path):
            sys.exit(f"{name}: no trace ({path}): see {os.path.join(rec, name + '.plugin.log')}")
        counts[name] = trace_intervals(path)
        if counts[name] < 0:
            sys.exit(f"{name}: {path} is torn (QEMU did not exit cleanly?)")
    # each trace's last interval is the partial one written at QEMU's exit; a halted guest's
    # trace ends where it halted (all of it is its work) and the replay idles it from there
    running = [counts[n] for n, _, h in vms if h == "0"]
    whole = min(running) - 1 if running else max(counts.values())
    if whole < 2:
        sys.exit(f"only {whole + 1} intervals of {interval_insns} guest instructions recorded "
                 f"in the slowest VM ({counts}): run longer (--seconds)")
    doc = {"setup": "demo", "interval_ms": max(1, round(interval_insns * 0.5 / 1e6)),
             "vms": [{"name": n, "workload": n.replace("hmmv-demo-", "demo-"),
                      "trace": n + ".trace", "ram_mib": int(m), "weight": 100,
                      "halted": h == "1"} for n, m, h in vms],
             "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "record_seconds": seconds, "load": round(os.getloadavg()[0], 1),
             "interval_insns": interval_insns, "intervals_recorded": counts,
             "whole_intervals": whole}
    tmp = os.path.join(rec, "setup.json.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.rename(tmp, os.path.join(rec, "setup.json"))
    print(whole)


def qmp_quit(argv):
    """QMP quit to a QEMU's monitor socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(argv[1])
    f = s.makefile("rw")
    f.readline()                                       # the greeting
    for cmd in ("qmp_capabilities", "quit"):
        f.write(json.dumps({"execute": cmd}) + "\n")
        f.flush()
        while True:                                    # its reply (events may come first)
            line = f.readline()
            if not line:
                sys.exit(0 if cmd == "quit" else 1)    # QEMU closed the monitor: quitting
            msg = json.loads(line)
            if "return" in msg:
                break
            if "error" in msg:
                sys.exit(1)


def main():
    commands = {"summary": summary, "churn": churn, "setup": setup, "quit": qmp_quit}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit("usage: demo-report.py summary|churn|setup|quit ARGS... (see its docstring)")
    # argv[0] is the subcommand, so the reports' argument indices are those of a script
    return commands[sys.argv[1]](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
