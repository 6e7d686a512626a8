#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/testbed/hot-probe counts a range's pages on a node, tick by tick (tiering-race.py reads
the hot sets on DRAM with it every second, issue 8). Here, on the host, over pages of this
process: 64 pages mapped, 24 of them touched; every node the host has is asked, and the counts
on the nodes must add up to the 24 present pages, on every one of --count ticks, numbered 0..N-1
(no tick missed at a 10 ms period for a query of 64 pages is not asserted: ticks are counted,
and a missed one shows as a gap, which the probe is allowed). A range past a process that is
gone fails with exit 1; a bad range with exit 2.

usage: check-hot-probe.py HOT_PROBE
"""
import ctypes
import mmap
import os
import signal
import subprocess
import sys
import time

PAGE = 4096
probe = sys.argv[1]
if not os.access(probe, os.X_OK):
    print(f"no {probe}", file=sys.stderr)
    sys.exit(77)
nodes = sorted(int(d[4:]) for d in os.listdir("/sys/devices/system/node")
               if d.startswith("node") and d[4:].isdigit())
if not nodes:
    print("no NUMA nodes in sysfs", file=sys.stderr)
    sys.exit(77)

buf = mmap.mmap(-1, 64 * PAGE)
addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
for i in range(24):
    buf[i * PAGE] = 1
rng = f"{os.getpid()}:{addr:#x}:64"

total = {}
for node in nodes:
    r = subprocess.run([probe, "--every-ms", "10", "--count", "5", "--node", str(node), rng,
                        rng], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"hot-probe --node {node}: exit {r.returncode}: {r.stderr.strip()}")
    lines = r.stdout.splitlines()
    if not 1 <= len(lines) <= 5:
        sys.exit(f"hot-probe: {len(lines)} lines for --count 5: {r.stdout!r}")
    ticks = []
    for line in lines:
        f = line.split()
        if len(f) != 6:
            sys.exit(f"hot-probe: want TICK T ON ON PRESENT PRESENT, got {line!r}")
        tick, on, present = int(f[0]), [int(x) for x in f[2:4]], [int(x) for x in f[4:6]]
        if present != [24, 24] or on[0] != on[1]:
            sys.exit(f"hot-probe: 24 pages present in each range, got {line!r}")
        ticks.append(tick)
        total.setdefault(tick, 0)
    if ticks != sorted(set(ticks)) or ticks[0] != 0 or ticks[-1] > 4:
        sys.exit(f"hot-probe: ticks {ticks}: want increasing from 0, below --count 5")
    # the pages do not move in this test: each tick's count on this node is the first's
    first_on = int(lines[0].split()[2])
    if any(int(line.split()[2]) != first_on for line in lines):
        sys.exit(f"hot-probe --node {node}: counts changed: {lines}")
    total["sum"] = total.get("sum", 0) + first_on
if total["sum"] != 24:
    sys.exit(f"hot-probe: the nodes hold {total['sum']} of the 24 present pages")

# A late probe skips ticks but never prints one numbered --count or above: stopped for 300 ms
# after its first line (30 periods of 10 ms), it must end without another line. Before, it
# printed the tick it woke at (a loaded CI machine saw ticks [0, 1, 2, 3, 7] for --count 5).
p = subprocess.Popen([probe, "--every-ms", "10", "--count", "5", rng], stdout=subprocess.PIPE,
                     text=True)
try:
    first = p.stdout.readline()
    os.kill(p.pid, signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGCONT)
    rest = p.stdout.read().splitlines()
    p.wait(timeout=60)
finally:
    if p.poll() is None:
        p.kill()
        p.wait()
late = [int(first.split()[0])] + [int(line.split()[0]) for line in rest]
if p.returncode != 0 or late[0] != 0 or any(t > 4 for t in late):
    sys.exit(f"hot-probe stopped 300 ms: exit {p.returncode}, ticks {late}: want 0 and none "
             "above 4")

child = subprocess.Popen(["sleep", "0"])
child.wait()
r = subprocess.run([probe, "--count", "1", f"{child.pid}:0x1000:1"], capture_output=True,
                   text=True, timeout=60)
if r.returncode != 1 or "move_pages" not in r.stderr:
    sys.exit(f"hot-probe on a gone pid: want exit 1 naming move_pages, got {r.returncode}: "
             f"{r.stderr.strip()}")
r = subprocess.run([probe, "1:0x1001:1"], capture_output=True, text=True, timeout=60)
if r.returncode != 2:
    sys.exit(f"hot-probe on an unaligned address: want exit 2, got {r.returncode}")
print(f"hot-probe: {len(nodes)} node(s), 24/64 pages present, counted on every tick")
