#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""racelib fill's held pages read back while node 0 is compacted (churn, 2026-12-04): how
often a status query reads a held page off node 0, what it reads, and whether the re-reads
(racelib.fill.read_nodes) find it on node 0. Runs inside the testbed as root (turns THP off
there, as tiering-race.py does), ROUNDS holds of 16 MiB while a thread compacts all the time.

usage: tests/testbed/testbed run --layout 2node --kernel 6.12 --mem 2048 -- \
         python3 tests/testbed/churn-2026-12-04/fill-probe.py tests/testbed ROUNDS
(fill-probe.log beside it: ROUNDS 40, 2026-12-04 05:26 UTC, load 3.9)"""
import os
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])    # tests/testbed of the tree
from racelib import fill as F          # noqa: E402
from e2elib.kernel import kernel_nodes  # noqa: E402

ROUNDS, MIB = int(sys.argv[2]), 16
first_off, statuses_seen, rereads = 0, {}, 0
stop = False


def compact():
    n = 0
    while not stop:
        with open("/proc/sys/vm/compact_memory", "w") as f:
            f.write("1\n")
        n += 1
    print(f"fill-probe: {n} compactions", flush=True)


calls = []


def read(pages):
    st = kernel_nodes(os.getpid(), pages)
    calls.append(st)
    return st


with open("/sys/kernel/mm/transparent_hugepage/enabled", "w") as f:
    f.write("never\n")       # as tiering-race.py (inside the testbed guest only)
t = threading.Thread(target=compact)
t.start()
failed = 0
try:
    for r in range(ROUNDS):
        calls.clear()
        orig = F.kernel_nodes
        F.kernel_nodes = lambda pid, p: read(p)
        try:
            h = F.Held(MIB << 20, 0)
            h.release()
        except F.Failed as e:
            failed += 1
            print(f"fill-probe: round {r}: {e}", flush=True)
        finally:
            F.kernel_nodes = orig
        off = [s for s in calls[0] if s != 0]
        if off:
            first_off += 1
            for s in off:
                statuses_seen[s] = statuses_seen.get(s, 0) + 1
            rereads += len(calls) - 1
            print(f"fill-probe: round {r}: first read {len(off)} off node 0 "
                  f"{sorted(set(off))}, reads {len(calls)}", flush=True)
finally:
    stop = True
    t.join()
print(f"fill-probe: rounds={ROUNDS} x {MIB} MiB held, first read off node 0 in {first_off}, "
      f"statuses {statuses_seen}, re-reads {rereads}, failed {failed}")
