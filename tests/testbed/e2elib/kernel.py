# SPDX-License-Identifier: GPL-2.0-or-later
"""The kernel's view: page nodes by move_pages(2) status queries, vmstat, the migrations
tracepoint split by reason, NUMA node files."""
import ctypes
import os
import re
import subprocess
import threading
import time

from e2elib.common import Failed, say

SYS_MOVE_PAGES = 279  # x86_64
ENOENT, EFAULT = 2, 14

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def kernel_nodes(pid, addrs):
    """Node of each address in pid (or -errno), by move_pages status queries (nodes=NULL)."""
    out = []
    batch = 4096
    for i in range(0, len(addrs), batch):
        chunk = addrs[i:i + batch]
        n = len(chunk)
        pages = (ctypes.c_void_p * n)(*chunk)
        status = (ctypes.c_int * n)()
        rc = libc.syscall(ctypes.c_long(SYS_MOVE_PAGES), ctypes.c_long(pid), ctypes.c_ulong(n),
                          pages, None, status, ctypes.c_int(0))
        if rc != 0:
            raise Failed(f"move_pages status query on pid {pid}: rc {rc}, "
                         f"errno {ctypes.get_errno()}")
        out.extend(status)
    return out


def in_move_pages(hmmvd_pid, target_pid, tid_only=None):
    """(tid, pages) of a thread of hmmvd_pid inside a MIGRATING move_pages(2) call on
    target_pid, or None (tid_only: look at that thread only). /proc/TID/syscall: the syscall
    number and its arguments in hex while the thread is in a system call (move_pages(pid,
    count, pages, nodes, status, flags)); nodes NULL is a status query (the mover learning
    where pages are), which moves nothing and is not a move batch."""
    try:
        tids = [str(tid_only)] if tid_only else os.listdir(f"/proc/{hmmvd_pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{hmmvd_pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        if (len(fields) >= 5 and fields[0] == str(SYS_MOVE_PAGES)
                and int(fields[1], 16) == target_pid and int(fields[4], 16) != 0):
            return int(tid), int(fields[2], 16)
    return None


def vmstat(key):
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            if k == key:
                return int(v)
    return 0


# The kernel's own migrations beside hmmvd's: pgmigrate_success counts every base page any
# migration moved (mm/migrate.c migrate_pages()), compaction and kcompactd included, so the
# check splits it by reason with the tracepoint migrate:mm_migrate_pages (one event per
# migrate_pages() call: nr_succeeded base pages, reason syscall_or_cpuset for move_pages(2),
# compaction, numa_misplaced, demotion, ...), in a trace instance of this testbed guest's
# own. The vmstat counters around migration are printed beside it.
VMSTAT_KEYS = ("pgmigrate_success", "pgmigrate_fail", "compact_isolated",
               "compact_migrate_scanned", "compact_free_scanned", "compact_stall",
               "compact_success", "compact_daemon_wake", "compact_daemon_migrate_scanned",
               "thp_migration_success", "thp_migration_fail", "thp_migration_split",
               "numa_pages_migrated", "numa_hint_faults", "pgdemote_kswapd", "pgdemote_direct",
               "pgpromote_success", "thp_fault_alloc", "thp_collapse_alloc", "thp_split_page")
TRACING = "/sys/kernel/tracing"
TRACE_EVENT = re.compile(r"mm_migrate_pages: nr_succeeded=(\d+) .*reason=(\S+)")


class Migrations:
    """The kernel's migrations as counters: snapshot() gives vmstat's VMSTAT_KEYS and, while
    the tracepoint works, 'reason:R' = base pages migrated for reason R since start."""

    def __init__(self):
        self.by_reason = {}
        self.events = 0
        self.error = None
        self.inst = os.path.join(TRACING, "instances", f"hmmv-e2e-{os.getpid()}")
        self.fd = None
        self.rest = b""
        self.lock = threading.Lock()
        self.stop = threading.Event()
        try:
            if not os.path.exists(os.path.join(TRACING, "instances")):
                subprocess.run(["mount", "-t", "tracefs", "tracefs", TRACING], check=True,
                               stderr=subprocess.DEVNULL)
            os.mkdir(self.inst)
            with open(os.path.join(self.inst, "buffer_size_kb"), "w") as f:
                f.write("8192")
            with open(os.path.join(self.inst, "events/migrate/mm_migrate_pages/enable"),
                      "w") as f:
                f.write("1")
            self.fd = os.open(os.path.join(self.inst, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        except (OSError, subprocess.CalledProcessError) as e:
            self.error = f"no migrate:mm_migrate_pages tracepoint: {e}"
            say(f"e2e: {self.error}; the moves check uses pgmigrate_success whole")
            return
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _drain(self):
        while self.fd is not None:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                return
            lines = (self.rest + chunk).split(b"\n")
            self.rest = lines.pop()
            for line in lines:
                m = TRACE_EVENT.search(line.decode(errors="replace"))
                if m:
                    self.events += 1
                    self.by_reason[m[2]] = self.by_reason.get(m[2], 0) + int(m[1])

    def _loop(self):
        while not self.stop.wait(0.2):
            with self.lock:
                self._drain()

    def lost(self):
        """Events the ring buffer dropped (the split is then incomplete)."""
        lost = 0
        for cpu in os.listdir(os.path.join(self.inst, "per_cpu")):
            with open(os.path.join(self.inst, "per_cpu", cpu, "stats")) as f:
                for line in f:
                    if line.startswith("overrun:") or line.startswith("dropped events:"):
                        lost += int(line.split(":")[1])
        return lost

    def snapshot(self):
        snap = {k: vmstat(k) for k in VMSTAT_KEYS}
        snap["traced"], snap["lost"] = self.fd is not None, False
        if self.fd is not None:
            time.sleep(0.3)   # the per-CPU buffers' last events reach the pipe
            with self.lock:
                self._drain()
                for reason, pages in self.by_reason.items():
                    snap[f"reason:{reason}"] = pages
                snap["lost"] = self.lost() > 0
        return snap

    def quick(self):
        """(move_pages(2)'s migrations so far or None when not traced, pgmigrate_success) at
        once, no wait for the per-CPU buffers: for samples taken many times an interval
        (e2elib/cap.py), where an event read late falls into the next sample."""
        total = vmstat("pgmigrate_success")
        if self.fd is None:
            return None, total
        with self.lock:
            self._drain()
            return self.by_reason.get("syscall_or_cpuset", 0), total

    def close(self):
        self.stop.set()
        if self.fd is None:
            return
        with self.lock:
            try:
                with open(os.path.join(self.inst, "events/migrate/mm_migrate_pages/enable"),
                          "w") as f:
                    f.write("0")
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None
        try:
            os.rmdir(self.inst)
        except OSError:
            pass


def delta(after, before):
    """after - before, counter by counter; traced and lost are flags of the whole stretch."""
    d = {k: v - before.get(k, 0) for k, v in after.items() if k not in ("traced", "lost")}
    d["traced"] = after["traced"] and before["traced"]
    d["lost"] = after["lost"]
    return d


def cpus_of(node):
    with open(f"/sys/devices/system/node/node{node}/cpulist") as f:
        return f.read().strip()



def node_free_mib(node):
    with open(f"/sys/devices/system/node/node{node}/meminfo") as f:
        for line in f:
            if "MemFree:" in line:
                return int(line.split()[3]) >> 10
    return -1
