#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Strict numatune on real nodes (issue 7; run inside the testbed, layout 2socket, kernel 6.12).

Two nested VMs of the patched QEMU, each started inside its own cpuset cgroup (what
libvirt's <numatune mode='strict'> and <vcpu cpuset> build), under hmmvd (standalone, numa
mover, read tracking by DAMON where the kernel has it):

  vm0  cpuset.cpus = node 1's CPUs, cpuset.mems = 1,3 (socket 1's DRAM and its slow node)
  vm1  cpuset.cpus = node 0's CPUs, cpuset.mems = 0   (DRAM only: no slow node allowed)

Checked, each a failure when it does not hold:
  allowed    hmmvd reports vm0's allowed-nodes [1, 3] and vm1's [0], vm1 left alone (with
             its reason), as read from the QEMU processes' Mems_allowed_list
  inside     vm0's pages move both ways (--min-moves each) and, read back by this process
             with move_pages(2) status queries at checkpoints (the VM paused in hmmvd), are
             only ever on nodes 1 and 3, and where hmmvd believes them (>= 0.999); hmmvd never
             even tried a disallowed node (no EACCES among vm0's move failures)
  fallback   with DRAM node 1 kept full by another process, hmmvd sees node 1 full for
             --full-intervals intervals and vm0's promotions do not fall back to node 0 (the
             next DRAM node, outside its cpuset): no fallback promotion counted, no page of
             vm0 on node 0 or 2
  alone      vm1: no page promoted or demoted, every page of it on node 0
  kdamonds   after hmmvd's SIGTERM, DAMON's kdamonds (nr_kdamonds, each one's state) are as
             they were before hmmvd started (with DAMON present: hmmvd set one up per VM)
Prints "testbed: numatune vm0_nodes=... vm1_nodes=... fallback_promoted=0 eacces=0
kdamonds_restored=1".

usage: hmmvd-numatune.py --hmmvd PATH --guest guest.elf   (--help lists the rest)
needs HMMV_QEMU (the patched QEMU) and cgroup v2 with the cpuset controller; exit 77 else.
"""
import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "hmmvd-e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
say, skip, Failed, wait_for = e2e.say, e2e.skip, e2e.Failed, e2e.wait_for
from e2elib.sockets import HOG  # noqa: E402  (hmmvd-e2e.py put e2elib on sys.path)

CGROUP = "/sys/fs/cgroup"
DAMON = "/sys/kernel/mm/damon/admin/kdamonds"
# vm name -> (node whose CPUs it runs on, the nodes its memory may use)
CPUSETS = {"vm0": (1, "1,3"), "vm1": (0, "0")}


def read(path):
    with open(path) as f:
        return f.read().strip()


def damon_state():
    """(nr_kdamonds, (state of each)) or None without DAMON's sysfs interface."""
    try:
        nr = int(read(f"{DAMON}/nr_kdamonds"))
        return nr, tuple(read(f"{DAMON}/{k}/state") for k in range(nr))
    except OSError:
        return None


def make_cpuset(name, cpus, mems):
    path = os.path.join(CGROUP, f"hmmv-numatune-{name}")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "cpuset.cpus"), "w") as f:
        f.write(cpus)
    with open(os.path.join(path, "cpuset.mems"), "w") as f:
        f.write(mems)
    return path


def wrapper(work, name, cgroup, qemu):
    """A QEMU command that enters cgroup first (exec keeps the pid: Vm.proc.pid is QEMU's)."""
    path = os.path.join(work, f"qemu-{name}.sh")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\necho $$ > {cgroup}/cgroup.procs || exit 1\nexec {qemu} \"$@\"\n")
    os.chmod(path, 0o755)
    return path


def mems_allowed(pid):
    return re.search(r"^Mems_allowed_list:\s*(\S+)", read(f"/proc/{pid}/status"), re.M).group(1)


def kernel_counts(ctl, vm, totals):
    """vm's pages by node, the kernel's view, checked against hmmvd's (e2e.placement_check:
    the VM paused in hmmvd meanwhile); returns {node: pages}."""
    e2e.placement_check(ctl, vm, totals)
    return dict(vm.node_counts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmmvd", required=True)
    ap.add_argument("--guest", required=True)
    # vm1, left alone, keeps its 24 MiB of DRAM out of the pool: vm0 gets about 16 MiB of
    # its 48, so its pages move both ways
    ap.add_argument("--pool-mib", type=int, default=40, help="hmmvd's DRAM pool")
    ap.add_argument("--reserve-mib", type=int, default=32, help="hmmvd's node-reserve-mib")
    ap.add_argument("--interval-ms", type=int, default=500)
    ap.add_argument("--min-moves", type=int, default=2000,
                    help="vm0's promotions and demotions each must reach this")
    ap.add_argument("--full-intervals", type=int, default=20,
                    help="intervals with node 1 full during which vm0 must not fall back")
    ap.add_argument("--deadline", type=int, default=900, help="seconds for the moves (cap)")
    ap.add_argument("--fill-deadline", type=int, default=600,
                    help="seconds for the guests to fill their memory (liveness bound)")
    ap.add_argument("--hog-margin-mib", type=int, default=4)
    opts = ap.parse_args()
    opts.migrate_mbps = 0
    opts.reads_source = None

    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip(f"no patched QEMU (HMMV_QEMU={qemu or 'unset'})")
    for path in (opts.hmmvd, opts.guest):
        if not os.path.exists(path):
            skip(f"{path} is not built")
    nodes = sorted(int(d[4:]) for d in os.listdir("/sys/devices/system/node")
                   if re.fullmatch(r"node\d+", d))
    if nodes != [0, 1, 2, 3]:
        skip(f"nodes {nodes}: run me inside tests/testbed/testbed run --layout 2socket")
    if os.geteuid() != 0:
        skip("needs root (cgroups, move_pages on other processes)")
    try:
        if "cpuset" not in read(f"{CGROUP}/cgroup.controllers").split():
            skip("cgroup v2 has no cpuset controller here")
        with open(f"{CGROUP}/cgroup.subtree_control", "w") as f:
            f.write("+cpuset")
    except OSError as e:
        skip(f"no usable cgroup v2 at {CGROUP}: {e}")

    for path, value in (("/proc/sys/kernel/numa_balancing", "0"),
                        ("/sys/kernel/mm/numa/demotion_enabled", "false"),
                        ("/sys/kernel/mm/transparent_hugepage/enabled", "never")):
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            say(f"numatune: cannot set {path}={value}: {e}")

    damon_before = damon_state()
    say(f"numatune: DAMON before hmmvd: {damon_before}")
    work = tempfile.mkdtemp(prefix="hmmv-numatune.")
    vms, cgroups, failures = [], [], []
    hmmvd = hog = None
    totals = {"agree": 0, "disagree": 0, "kinds": {}}
    try:
        for name, (cpu_node, mems) in CPUSETS.items():
            cg = make_cpuset(name, e2e.cpus_of(cpu_node), mems)
            cgroups.append(cg)
            mem, hot, cold = (48, 4, 36) if name == "vm0" else (24, 2, 12)
            vms.append(e2e.Vm(name, work, wrapper(work, name, cg, qemu), opts.guest, mem, hot,
                              cold, 200000, []))
        vm0, vm1 = vms
        for vm in vms:
            wait_for(f"{vm.name}: the guest filled its memory", opts.fill_deadline, vm.began)
            say(f"numatune: {vm.name}: QEMU pid {vm.proc.pid}, Mems_allowed_list "
                f"{mems_allowed(vm.proc.pid)}, cgroup {read(f'/proc/{vm.proc.pid}/cgroup')}")
        hmmvd = e2e.Hmmvd(opts, work, vms, 1)

        def seen_allowed():
            t = hmmvd.table() or {}
            a, b = t.get("vm0", {}), t.get("vm1", {})
            return (a.get("status") == "managed" and a.get("allowed-nodes") == [1, 3] and
                    b.get("allowed-nodes") == [0] and b.get("left-alone") and t)
        t = wait_for("hmmvd reports vm0 on nodes [1, 3] and vm1 on [0], left alone", 180,
                     seen_allowed)
        damon_during = damon_state()
        say(f"numatune: hmmvd: vm0 allowed-nodes {t['vm0']['allowed-nodes']}; vm1 "
            f"allowed-nodes {t['vm1']['allowed-nodes']} left-alone "
            f"{t['vm1']['left-alone']!r}; DAMON now {damon_during}")

        # moves both ways, inside the cpuset
        start = time.monotonic()
        checks = 0
        while True:
            time.sleep(2)
            e2e.check_alive(vms, hmmvd)
            t = hmmvd.table() or {}
            v = t.get("vm0", {})
            prom, dem = v.get("promotions-total", 0), v.get("demotions-total", 0)
            if time.monotonic() - start > 10 * (checks + 1) and checks < 3:
                counts = kernel_counts(hmmvd.ctl, vm0, totals)
                checks += 1
                say(f"numatune: {time.monotonic() - start:.0f} s: vm0 promoted {prom}, demoted "
                    f"{dem}, kernel nodes {dict(sorted(counts.items()))}")
                outside = {n: c for n, c in counts.items() if n not in (1, 3)}
                if outside:
                    failures.append(f"inside: vm0 has pages on {outside} (allowed: 1, 3)")
            if prom >= opts.min_moves and dem >= opts.min_moves and checks >= 3:
                break
            if time.monotonic() - start > opts.deadline:
                failures.append(f"inside: vm0 promoted {prom}, demoted {dem} in "
                                f"{opts.deadline} s (want {opts.min_moves} each way)")
                break
        counts = kernel_counts(hmmvd.ctl, vm0, totals)
        if not counts.get(1) or not counts.get(3):
            failures.append(f"inside: vm0's pages are not on both of its nodes: {counts}")

        # node 1 full: no fallback to node 0
        before = (hmmvd.table() or {}).get("vm0", {})
        hog = subprocess.Popen([sys.executable, "-c", HOG, "1", str(opts.hog_margin_mib)],
                               stdout=subprocess.PIPE, text=True)
        if "ready" not in hog.stdout.readline():
            raise Failed("the hog did not start")
        wait_for("node 1 filled", 180, lambda: e2e.node_free_mib(1) < opts.reserve_mib // 2)
        full_seen = [0]
        last = [None]

        def full_long_enough():
            e2e.check_alive(vms, hmmvd)
            status = hmmvd.ctl.request("status")
            node1 = {n["id"]: n for n in status["nodes"]}[1]
            if node1.get("full") or node1.get("free-pages", 1 << 40) < node1.get("reserve-pages", 0):
                if last[0] != status["intervals"]:
                    full_seen[0] += 1 if last[0] is None else status["intervals"] - last[0]
                last[0] = status["intervals"]
            return full_seen[0] >= opts.full_intervals
        wait_for(f"{opts.full_intervals} intervals with node 1 full", opts.deadline,
                 full_long_enough, poll=1)
        after = (hmmvd.table() or {}).get("vm0", {})
        counts = kernel_counts(hmmvd.ctl, vm0, totals)
        fell = after.get("fallback-promoted-total", 0) - before.get("fallback-promoted-total", 0)
        say(f"numatune: vm0: dram-node {after.get('dram-node')} slow-node "
            f"{after.get('slow-node')} cpu-node {after.get('cpu-node')} "
            f"({after.get('cpu-node-source')})")
        say(f"numatune: node 1 full ({e2e.node_free_mib(1)} MiB free) for {full_seen[0]} "
            f"intervals: vm0 promoted {after.get('promotions-total', 0) - before.get('promotions-total', 0)}, "
            f"demoted {after.get('demotions-total', 0) - before.get('demotions-total', 0)}, "
            f"fallback-promoted {fell}; kernel nodes {dict(sorted(counts.items()))}")
        # its first choices, after many intervals: its socket's DRAM and slow node
        if after.get("dram-node") != 1 or after.get("slow-node") != 3:
            failures.append(f"vm0's nodes are {after.get('dram-node')}/"
                            f"{after.get('slow-node')}, not 1/3")
        if fell != 0 or after.get("fallback-promoted-total", 0) != 0:
            failures.append(f"fallback: vm0 fell back {after.get('fallback-promoted-total')} "
                            "promotions outside its cpuset")
        if counts.get(0) or counts.get(2):
            failures.append(f"fallback: vm0 has pages on node 0 or 2: {counts}")
        hog.kill()
        hog.wait()
        hog = None

        # vm1: left alone
        t = hmmvd.table() or {}
        v1 = t.get("vm1", {})
        eacces = t.get("vm0", {}).get("move-failures", {}).get("access", 0)
        # hmmvd's view of a VM it leaves alone is reported, not held to 0.999
        totals1 = {"agree": 0, "disagree": 0, "kinds": {}}
        counts1 = kernel_counts(hmmvd.ctl, vm1, totals1)
        vm0_counts = dict(sorted(counts.items()))
        if v1.get("promotions-total", 0) or v1.get("demotions-total", 0):
            failures.append(f"alone: vm1 promoted {v1.get('promotions-total')}, demoted "
                            f"{v1.get('demotions-total')}")
        if set(counts1) - {0}:
            failures.append(f"alone: vm1's pages are on {counts1}, not node 0 only")
        if not v1.get("left-alone"):
            failures.append("alone: vm1 is not reported left alone")
        if eacces:
            failures.append(f"inside: {eacces} of vm0's moves failed with EACCES (hmmvd tried "
                            "a node outside its cpuset)")
        n = totals["agree"] + totals["disagree"]
        agree = totals["agree"] / n if n else 0.0
        say(f"numatune: placement agree {totals['agree']} of {n} ({agree:.4f}) "
            f"{totals['kinds'] if totals['kinds'] else ''}; vm1 (left alone): agree "
            f"{totals1['agree']}, disagree {totals1['disagree']}")
        if agree < 0.999:
            failures.append(f"placement: hmmvd and the kernel agree on {agree:.4f} of pages")

        # SIGTERM: kdamonds as found
        damon_live = damon_state()
        say(f"numatune: DAMON before hmmvd's SIGTERM: {damon_live}")
        hmmvd.stop(signal.SIGTERM)
        rc = hmmvd.proc.returncode
        damon_after = damon_state()
        say(f"numatune: hmmvd exited {rc}; DAMON after: {damon_after}")
        restored = damon_after == damon_before
        if rc != 0:
            failures.append(f"hmmvd exited {rc} on SIGTERM")
        if not restored:
            failures.append(f"kdamonds: before hmmvd {damon_before}, after its SIGTERM "
                            f"{damon_after}")
        if damon_before is not None and damon_live == damon_before:
            say("numatune: note: hmmvd had no kdamond of its own running (the kdamond check "
                "proves little)")
        print(f"testbed: numatune vm0_nodes={vm0_counts} vm1_nodes={dict(sorted(counts1.items()))} "
              f"fallback_promoted={after.get('fallback-promoted-total', 0)} eacces={eacces} "
              f"kdamonds_live={sum(1 for x in (damon_live or (0, ()))[1] if x == 'on')} "
              f"kdamonds_restored={int(restored)}", flush=True)
    except Failed as e:
        failures.append(str(e))
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
        if hmmvd is not None:
            hmmvd.stop(signal.SIGTERM)
            with open(hmmvd.log, errors="replace") as f:
                say("numatune: hmmvd's log:\n" + "".join(f.readlines()[-40:]))
        for vm in vms:
            vm.stop()
        for cg in cgroups:
            try:
                os.rmdir(cg)
            except OSError as e:
                say(f"numatune: {cg}: {e}")
    for f in failures:
        say(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
