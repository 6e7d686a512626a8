# SPDX-License-Identifier: GPL-2.0-or-later
"""The testbed kernel's knobs and counters for the tiering race: pages moved with
move_pages(2), /proc/vmstat, sysfs writes, NUMA balancing and demotion switched off between
modes (settle), the DAMOS mode's two kdamonds and the migrations split by the kernel's
reason (the mm_migrate_pages tracepoint)."""
import ctypes
import os
import subprocess
import time

from e2elib.common import PAGE, Failed, say
from e2elib.kernel import SYS_MOVE_PAGES, kernel_nodes, libc


MPOL_MF_MOVE_ALL = 4
DAMON = "/sys/kernel/mm/damon/admin/kdamonds"
TRACING = "/sys/kernel/tracing"
MIGRATE_EVENT = f"{TRACING}/events/migrate/mm_migrate_pages"
# /proc/vmstat counters of the kernel's NUMA balancing, per mode (race.tsv's last columns and
# the summary's numa_counters)
NUMA_COUNTERS = ("numa_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
                 "pgpromote_candidate", "pgpromote_success")


def move(pid, addrs, node):
    """Moves addrs of pid to node; returns how many are there afterwards."""
    done = 0
    for i in range(0, len(addrs), 4096):
        chunk = addrs[i:i + 4096]
        n = len(chunk)
        pages = (ctypes.c_void_p * n)(*chunk)
        nodes = (ctypes.c_int * n)(*([node] * n))
        status = (ctypes.c_int * n)()
        libc.syscall(ctypes.c_long(SYS_MOVE_PAGES), ctypes.c_long(pid),
                         ctypes.c_ulong(n), pages, nodes, status, ctypes.c_int(MPOL_MF_MOVE_ALL))
    for s in kernel_nodes(pid, addrs):
        done += s == node
    return done


def vmstat_all():
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            out[k] = int(v)
    return out


def write_sys(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def read_sys(path):
    with open(path) as f:
        return f.read().strip()


def snapshot(path):
    """/proc/zoneinfo's node 0 (each zone's free pages and watermarks) and /proc/vmstat into
    path: what kswapd saw at a mode's start and end (2026-12-03: the kernel mode demoted
    5,627 pages in one run and none in the other, from the same 15-16 MiB free). Returns
    node 0's node_unreclaimable flag (node_unreclaimable())."""
    with open("/proc/zoneinfo") as f:
        zones = f.read()
    node0 = zones[:zones.find("Node 1,")] if "Node 1," in zones else zones
    with open("/proc/vmstat") as f:
        stat = f.read()
    with open(path, "w") as out:
        out.write("### /proc/zoneinfo, node 0\n" + node0 + "### /proc/vmstat\n" + stat)
    return node_unreclaimable(node0)


def node_unreclaimable(text):
    """The first node_unreclaimable flag of a snapshot()'s or /proc/zoneinfo's text (node 0's
    is first): 1 once kswapd failed 16 times in a row to reclaim from the node; then 6.12's
    wakeup_kswapd leaves it alone, and the kernel mode's promotions wake no demotion. None
    when the text has none."""
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "node_unreclaimable:" and words[1].isdigit():
            return int(words[1])
    return None


def node_range(node):
    """[start, end) of node's physical memory, from its memory blocks."""
    bs = int(read_sys("/sys/devices/system/memory/block_size_bytes"), 16)
    blocks = [int(d[6:]) for d in os.listdir(f"/sys/devices/system/node/node{node}")
              if d.startswith("memory") and d[6:].isdigit()]
    if not blocks:
        raise Failed(f"node {node} has no memory blocks in sysfs")
    return min(blocks) * bs, (max(blocks) + 1) * bs


class Damos:
    """Two kdamonds (paddr) this script creates: kdamond 0 over node 1 with migrate_hot to
    node 0, kdamond 1 over node 0 with migrate_cold to node 1. Sampling every 10 ms,
    aggregating every 200 ms (so nr_accesses runs 0..20): hot = accessed in >= 4 of 20 samples,
    cold = not accessed for >= 5 aggregations (1 s); 10..200 regions each; quota 64 MiB/s per
    scheme (what the kernel's own tiering samples leave unbounded, bounded so a mistaken
    threshold cannot thrash the testbed). Removed by stop(), leaving DAMON as found (no
    kdamonds: this refuses to start over anybody else's)."""

    SCHEMES = ((1, "migrate_hot", 0, (4, 20), (0, 2 ** 32 - 1)),
               (0, "migrate_cold", 1, (0, 0), (5, 2 ** 32 - 1)))

    def __init__(self, opts):
        if not os.path.isdir(DAMON):
            raise Failed("damos: no DAMON sysfs in this kernel")
        if int(read_sys(f"{DAMON}/nr_kdamonds")) != 0:
            raise Failed("damos: kdamonds exist already (somebody else's): not touching them")
        write_sys(f"{DAMON}/nr_kdamonds", len(self.SCHEMES))
        self.on = []
        try:
            for k, (node, action, target, acc, age) in enumerate(self.SCHEMES):
                kd = f"{DAMON}/{k}"
                write_sys(f"{kd}/contexts/nr_contexts", 1)
                ctx = f"{kd}/contexts/0"
                write_sys(f"{ctx}/operations", "paddr")
                attrs = f"{ctx}/monitoring_attrs"
                write_sys(f"{attrs}/intervals/sample_us", 10000)
                write_sys(f"{attrs}/intervals/aggr_us", 200000)
                write_sys(f"{attrs}/intervals/update_us", 1000000)
                write_sys(f"{attrs}/nr_regions/min", 10)
                write_sys(f"{attrs}/nr_regions/max", 200)
                write_sys(f"{ctx}/targets/nr_targets", 1)
                regions = f"{ctx}/targets/0/regions"
                write_sys(f"{regions}/nr_regions", 1)
                start, end = node_range(node)
                write_sys(f"{regions}/0/start", start)
                write_sys(f"{regions}/0/end", end)
                write_sys(f"{ctx}/schemes/nr_schemes", 1)
                s = f"{ctx}/schemes/0"
                write_sys(f"{s}/action", action)
                write_sys(f"{s}/target_nid", target)
                write_sys(f"{s}/access_pattern/sz/min", PAGE)
                write_sys(f"{s}/access_pattern/sz/max", end - start)
                write_sys(f"{s}/access_pattern/nr_accesses/min", acc[0])
                write_sys(f"{s}/access_pattern/nr_accesses/max", acc[1])
                write_sys(f"{s}/access_pattern/age/min", age[0])
                write_sys(f"{s}/access_pattern/age/max", age[1])
                write_sys(f"{s}/quotas/bytes", 64 << 20)
                write_sys(f"{s}/quotas/reset_interval_ms", 1000)
                write_sys(f"{s}/watermarks/metric", "none")
                say(f"race: damos: kdamond {k}: node {node} [{start:#x}, {end:#x}) {action} "
                    f"-> node {target}, nr_accesses {acc[0]}..{acc[1]}, age >= {age[0]}")
            for k in range(len(self.SCHEMES)):
                write_sys(f"{DAMON}/{k}/state", "on")
                self.on.append(k)
        except BaseException:
            self.stop()
            raise

    def applied(self):
        """Pages the schemes applied their action to: (migrate_hot, migrate_cold)."""
        out = []
        for k in range(len(self.SCHEMES)):
            write_sys(f"{DAMON}/{k}/state", "update_schemes_stats")
            out.append(int(read_sys(f"{DAMON}/{k}/contexts/0/schemes/0/stats/sz_applied"))
                       // PAGE)
        return tuple(out)

    def stop(self):
        for k in self.on:
            try:
                write_sys(f"{DAMON}/{k}/state", "off")
            except OSError as e:
                say(f"race: damos: kdamond {k} off: {e}")
        self.on = []
        # the kdamond threads end asynchronously: nr_kdamonds is EBUSY until they have
        for _ in range(120):
            try:
                write_sys(f"{DAMON}/nr_kdamonds", 0)
                return
            except OSError:
                time.sleep(0.5)
        say("race: damos: could not remove the kdamonds (nr_kdamonds busy for 60 s)")


class MigrateReasons:
    """Pages the kernel migrated, by reason: the mm_migrate_pages tracepoint (one event per
    migrate_pages() call, with its reason and nr_succeeded) into the trace buffer, emptied
    by reset() and summed by read(). ok is False when the kernel offers no tracefs (the
    summary then says n/a); lost events (a full buffer) are reported."""

    def __init__(self):
        self.ok = False
        try:
            if not os.path.isdir(f"{TRACING}/events"):
                subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACING], check=True,
                               capture_output=True)
            write_sys(f"{TRACING}/buffer_size_kb", 4096)
            write_sys(f"{MIGRATE_EVENT}/enable", 1)
            self.ok = True
        except (OSError, subprocess.CalledProcessError) as e:
            say(f"race: no migration reasons (tracefs, mm_migrate_pages): {e}")

    def reset(self):
        if self.ok:
            write_sys(f"{TRACING}/trace", "")

    def read(self):
        """{reason: pages}, and "lost_events" when the buffer overran."""
        out = {}
        if not self.ok:
            return out
        with open(f"{TRACING}/trace") as f:
            for line in f:
                if "mm_migrate_pages:" not in line:
                    continue
                fields = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
                reason = fields.get("reason", "?")
                out[reason] = out.get(reason, 0) + int(fields.get("nr_succeeded", 0))
        lost = 0
        for cpu in os.listdir(f"{TRACING}/per_cpu"):
            with open(f"{TRACING}/per_cpu/{cpu}/stats") as f:
                for line in f:
                    if line.startswith("overrun:"):
                        lost += int(line.split()[1])
        if lost:
            out["lost_events"] = lost
        return out

    def stop(self):
        if self.ok:
            try:
                write_sys(f"{MIGRATE_EVENT}/enable", 0)
                write_sys(f"{TRACING}/trace", "")
                write_sys(f"{TRACING}/buffer_size_kb", 1408)
            except OSError as e:
                say(f"race: switching the tracepoint off: {e}")


def kdamonds_running():
    """kdamonds whose state is on: a mode starts with none of anybody's (a kdamond an hmmvd
    left running would cost the next mode's guests)."""
    try:
        nr = int(read_sys(f"{DAMON}/nr_kdamonds"))
        return sum(read_sys(f"{DAMON}/{k}/state") == "on" for k in range(nr))
    except OSError:
        return 0


def settle():
    write_sys("/proc/sys/kernel/numa_balancing", 0)
    write_sys("/sys/kernel/mm/numa/demotion_enabled", "false")
