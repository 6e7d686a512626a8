#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""scripts/demo's kernel view, on a host with real NUMA nodes (scripts/demo --testbed).

    demo-kernel.py --socket SOCK --view FILE [--every S] NAME...

Started before hmmvd, it runs until SIGTERM and keeps the kernel's own account of the demo's
VMs beside hmmvd's:

- the kernel's migrations since it started: /proc/vmstat pgmigrate_success, split by reason
  with the tracepoint migrate:mm_migrate_pages (syscall_or_cpuset: move_pages(2), which only
  hmmvd calls here) when tracefs allows;
- every S seconds (default 2), the node of every guest RAM page of each managed VM, asked of
  the kernel with move_pages(2) status queries on the VM's QEMU (the RAM's host addresses come
  from hmmvd's control command `placement`): pages per node, and the pages found on another
  node than at the sample before, by direction (DRAM = a node with CPUs, slow = a CPU-less
  node). A page moved twice between two samples is not seen: a lower bound of the real moves.
  FILE gets one line per VM after each sample (replaced atomically), for the live view.

On SIGTERM it pauses hmmvd's moves on every VM (`pause`: the running interval ends first),
compares hmmvd's placement map of each VM with the kernel's node of each page, reads hmmvd's
move counts and the kernel's migrations, resumes the VMs, prints the summary and the line

    demo: kernel: hmmvd_moves=N kernel_migrated=N move_pages=N seen_to_slow=N seen_to_dram=N
          placement_agree=0.NNNN pages=N       (one line)

and exits 0 (1 when a step failed: the reason is printed). move_pages=-1 when the tracepoint
was not available. scripts/demo prints its output after hmmvd's own summary.
"""
import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "testbed"))
from e2elib.common import PAGE, Failed  # noqa: E402
from e2elib.daemon import Control  # noqa: E402
from e2elib.kernel import Migrations, delta, kernel_nodes  # noqa: E402

NODES = "/sys/devices/system/node"


def cpu_nodes():
    """The set of NUMA nodes with CPUs (DRAM); the others are the slow tier."""
    out = set()
    for entry in os.listdir(NODES):
        if entry.startswith("node") and entry[4:].isdigit():
            with open(os.path.join(NODES, entry, "cpulist")) as f:
                if f.read().strip():
                    out.add(int(entry[4:]))
    return out


class VmView:
    """One VM as the kernel sees it: its QEMU's pid, its RAM's host pages, their last nodes."""

    def __init__(self, name):
        self.name = name
        self.pid = None
        self.addrs = []
        self.last = None
        self.to_slow = self.to_dram = 0
        self.counts = {}

    def locate(self, ctl):
        """Asks hmmvd for the pid and the RAM's host addresses; False while not managed."""
        try:
            view = ctl.request("placement", vm=self.name)
        except (Failed, OSError, ValueError):
            return False
        addrs = []
        for region in view["regions"]:
            if region["hva"]:
                addrs.extend(region["hva"] + i * PAGE for i in range(region["pages"]))
        self.pid, self.addrs = view["pid"], addrs
        return True

    def sample(self, dram):
        nodes = kernel_nodes(self.pid, self.addrs)
        if self.last is not None:
            for before, now in zip(self.last, nodes):
                if before != now and before >= 0 and now >= 0:
                    if before in dram and now not in dram:
                        self.to_slow += 1
                    elif now in dram and before not in dram:
                        self.to_dram += 1
        self.last = nodes
        counts = {}
        for n in nodes:
            if n >= 0:
                counts[n] = counts.get(n, 0) + 1
        self.counts = counts

    def line(self):
        per_node = "  ".join(f"node{n} {c / 256:6.1f} MiB" for n, c in sorted(self.counts.items()))
        return (f"  {self.name:<16} {per_node or 'no page present'}   seen moving: "
                f"{self.to_slow} to slow, {self.to_dram} to DRAM")


def write_view(path, vms, t0):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"the kernel's view (move_pages status queries on each QEMU; seen moving: pages "
                f"found on the other tier than one sample before, {time.monotonic() - t0:.0f} s "
                "in all):\n")
        for vm in vms:
            f.write((vm.line() if vm.pid else f"  {vm.name:<16} not managed yet") + "\n")
    os.replace(tmp, path)


def numa_maps_pages(pid):
    """{node: pages} of the process's anonymous memory (guest RAM most of it), numa_maps."""
    out = {}
    with open(f"/proc/{pid}/numa_maps") as f:
        for line in f:
            fields = line.split()
            if not any(x.startswith("anon=") for x in fields):
                continue
            kib = 4
            for x in fields:
                if x.startswith("kernelpagesize_kB="):
                    kib = int(x.split("=")[1])
            for x in fields:
                if x[0] == "N" and "=" in x and x[1:x.index("=")].isdigit():
                    node = int(x[1:x.index("=")])
                    out[node] = out.get(node, 0) + int(x.split("=")[1]) * kib // 4
    return out


def summary(ctl, vms, migs, before, dram):
    """The end: hmmvd paused, its map against the kernel's, its counts against the kernel's."""
    paused = []
    try:
        for vm in vms:
            ctl.request("pause", vm=vm.name)
            paused.append(vm)
        views = {vm.name: ctl.request("placement", vm=vm.name) for vm in vms}
        listed = {v["name"]: v for v in ctl.request("vms")}
        d = delta(migs.snapshot(), before)
        rows, agree, total = [], 0, 0
        for vm in vms:
            view = views[vm.name]
            believed, addrs = [], []
            for region in view["regions"]:
                if region["hva"]:
                    first, n = region["first-page"], region["pages"]
                    addrs.extend(region["hva"] + i * PAGE for i in range(n))
                    believed.extend(view["nodes"][first:first + n])
            vm.pid = view["pid"]
            vm.addrs = addrs
            vm.sample(dram)
            ok = 0
            hm, kn = {}, {}
            for b, a in zip(believed, vm.last):
                if b != "-":
                    hm[int(b, 32)] = hm.get(int(b, 32), 0) + 1
                if a >= 0:
                    kn[a] = kn.get(a, 0) + 1
                ok += (b != "-" and int(b, 32) == a) if a >= 0 else (b == "-")
            agree += ok
            total += len(addrs)
            rows.append((vm, hm, kn, ok, len(addrs)))
    finally:
        for vm in paused:
            try:
                ctl.request("resume", vm=vm.name)
            except (Failed, OSError):
                pass
    nodes = sorted({n for _, hm, kn, _, _ in rows for n in list(hm) + list(kn)})
    print("The kernel's view (hmmvd paused; every guest RAM page's node by move_pages(2) status "
          "queries on its QEMU):")
    head = "%-16s " + " ".join("%18s" for _ in nodes) + " %7s %9s %9s"
    print(head % ("VM", *[f"node{n} hmmvd/kern" for n in nodes], "agree", "to slow", "to DRAM"))
    for vm, hm, kn, ok, n in rows:
        print(head % (vm.name, *[f"{hm.get(x, 0) / 256:.1f}/{kn.get(x, 0) / 256:.1f}"
                                 for x in nodes],
                      f"{ok / max(n, 1):.4f}", vm.to_slow, vm.to_dram))
    print(f"(MiB on each node as hmmvd's map says / as the kernel says; nodes "
          f"{','.join(map(str, sorted(dram)))} DRAM, the others slow. agree: pages where both "
          "say the same node, or both none. to slow / to DRAM: pages the kernel showed on the "
          "other tier than one sample before, a lower bound of the moves)")
    counted = sum(listed.get(vm.name, {}).get("promotions-total", 0)
                  + listed.get(vm.name, {}).get("demotions-total", 0) for vm in vms)
    traced = d.get("traced") and not d.get("lost")
    by_syscall = d.get("reason:syscall_or_cpuset", 0) if traced else -1
    reasons = {k[7:]: v for k, v in d.items() if k.startswith("reason:") and v}
    print(f"Moves: hmmvd counted {counted} (promoted + demoted, all VMs); the kernel migrated "
          f"{d.get('pgmigrate_success', 0)} pages since hmmvd started "
          f"({'by reason ' + str(reasons) if traced else 'not split by reason: no tracepoint'}"
          f"), {d.get('pgmigrate_fail', 0)} failed")
    seen_slow = sum(vm.to_slow for vm in vms)
    seen_dram = sum(vm.to_dram for vm in vms)
    print(f"demo: kernel: hmmvd_moves={counted} kernel_migrated={d.get('pgmigrate_success', 0)} "
          f"move_pages={by_syscall} seen_to_slow={seen_slow} seen_to_dram={seen_dram} "
          f"placement_agree={agree / max(total, 1):.4f} pages={total}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--view", required=True)
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--pid", action="append", default=[], metavar="NAME=PID",
                    help="a VM's QEMU: its memory per node is printed before hmmvd starts")
    ap.add_argument("names", nargs="+")
    opts = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    dram = cpu_nodes()
    migs = Migrations()
    before = migs.snapshot()
    print(f"demo-kernel: watching; DRAM nodes {sorted(dram)}"
          f"{'' if migs.fd is not None else '; ' + str(migs.error)}", file=sys.stderr,
          flush=True)
    for spec in opts.pid:
        name, _, pid = spec.partition("=")
        try:
            per_node = numa_maps_pages(int(pid))
        except (OSError, ValueError) as e:
            print(f"demo-kernel: {name}: {e}", file=sys.stderr, flush=True)
            continue
        print(f"Before hmmvd's first move: {name:<16} " + "  ".join(
            f"node{n} {c / 256:6.1f} MiB" for n, c in sorted(per_node.items()))
            + "  (its QEMU's anonymous memory by /proc/PID/numa_maps; guest RAM most of it)",
            flush=True)
    ctl = Control(opts.socket)
    vms = [VmView(n) for n in opts.names]
    t0 = time.monotonic()
    rc = 0
    try:
        while not stop.is_set():
            for vm in vms:
                if vm.pid is None and os.path.exists(opts.socket):
                    vm.locate(ctl)
                if vm.pid is not None:
                    vm.sample(dram)
            write_view(opts.view, vms, t0)
            stop.wait(opts.every)
        summary(ctl, vms, migs, before, dram)
    except (Failed, OSError, ValueError, KeyError) as e:
        print(f"demo-kernel: error: {e}", flush=True)
        rc = 1
    finally:
        migs.close()
    sys.exit(rc)


if __name__ == "__main__":
    main()
