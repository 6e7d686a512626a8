# SPDX-License-Identifier: GPL-2.0-or-later
"""Two sockets: a full DRAM node and the fallback to the other socket's DRAM."""
import subprocess
import sys
import threading

from e2elib.checks import placement_check
from e2elib.common import Failed, say, wait_counted, wait_for
from e2elib.daemon import check_alive
from e2elib.kernel import node_free_mib

HOG = r"""
import ctypes, mmap, sys, time
node, margin = int(sys.argv[1]), int(sys.argv[2]) << 20
libc = ctypes.CDLL(None, use_errno=True)
mask = ctypes.c_ulong(1 << node)
# MPOL_PREFERRED (1): node first, elsewhere when it is full (never the OOM killer, as BIND)
if libc.syscall(238, 1, ctypes.byref(mask), 64) != 0:
    sys.exit(f"set_mempolicy: errno {ctypes.get_errno()}")
def meminfo(key):
    with open(f"/sys/devices/system/node/node{node}/meminfo") as f:
        for line in f:
            if key + ":" in line:
                return int(line.split()[3]) << 10
def free():
    return meminfo("MemFree")
# Never more than the node holds: its pages that land on other nodes (the preferred policy)
# would otherwise be taken again and again (1.5 GB of a 2 GB testbed, OOM-killed, 2026-12-02
# on a quiet machine).
total = meminfo("MemTotal")
held = []
capped = False
print("hog: ready", flush=True)
while True:   # keep the node full: take what comes free (demotions, reclaim) but margin
    want = min(free() - margin, total - sum(len(x) for x in held))
    if want > (1 << 20):
        # MAP_POPULATE: the kernel faults the pages in, in one call; a page-by-page Python
        # loop under the testbed's TCG at load 30 did not fill node 0 in 120 s
        populate = getattr(mmap, "MAP_POPULATE", 0)
        m = mmap.mmap(-1, want, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
        if not populate:
            for off in range(0, want, 4096):
                m[off] = 1
        held.append(m)
        print(f"hog: holds {sum(len(x) for x in held) >> 20} MiB", flush=True)
    elif sum(len(x) for x in held) + (1 << 20) >= total and not capped:
        capped = True
        print(f"hog: holds node {node}'s size, free {free() >> 20} MiB", flush=True)
    time.sleep(0.5)
"""



class Hog:
    """The process that keeps DRAM node 0 full (HOG), its lines read by a thread."""

    def __init__(self, node, margin_mib):
        self.proc = subprocess.Popen([sys.executable, "-c", HOG, str(node), str(margin_mib)],
                                     stdout=subprocess.PIPE, text=True)
        self.said = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.said.append(line.strip())

    def check(self):
        """Failed when the hog died (the OOM killer: a CI run on 2026-12-02 waited 2,400 s
        for a hog that was gone)."""
        if self.proc.poll() is not None:
            raise Failed(f"the node-0 hog exited ({self.proc.returncode}; -9: the OOM killer?) "
                         f"after {self.said[-2:]}")

    def capped(self):
        """Its line saying it holds the node's size (it takes no more), or None."""
        return next((l for l in self.said if "size" in l), None)

    def release(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.reader.join(timeout=10)


def fallback_phase(opts, hmmvd, vms, totals, failures):
    """Fills DRAM node 0 with a process that keeps it full (its own memory policy, so its
    pages go elsewhere once node 0 is full: no OOM). hmmvd must see node 0 full (free below
    its reserve), promote vm0 to node 1 (the next nearest DRAM node), keep demoting it to node
    2, and report it: the node's 'full' flag, fallback counters, a log line; vm0's pages on
    node 1 read back with move_pages. Then the filler exits and vm0's pages on node 1 must
    come home to node 0 (home_phase)."""
    vm0 = vms[0]
    before = (hmmvd.table() or {}).get(vm0.name, {}).get("fallback-promoted-total", 0)
    hog = Hog(0, opts.hog_margin_mib)
    try:
        wait_for("the node-0 hog starts", 120, lambda: hog.check() or hog.said)
        if "ready" not in hog.said[0]:
            raise Failed(f"the hog did not start: {hog.said[0]!r}")

        def filled():
            if node_free_mib(0) < opts.reserve_mib // 2:
                return True
            hog.check()
            if hog.capped():
                raise Failed(f"node 0 not filled: {hog.capped()} (its pages went elsewhere)")
            return False

        # MAP_POPULATE fills it in one call; the bound is a liveness cap (the guests' fill
        # deadline), the hog's death or its cap end the wait at once
        wait_for(f"node 0 filled (free below {opts.reserve_mib // 2} MiB)", opts.fill_deadline,
                 filled)
        say(f"e2e: fallback: node 0 filled, {node_free_mib(0)} MiB free "
            f"(hmmvd's reserve {opts.reserve_mib} MiB; {hog.said[-1]})")

        def fell_back():
            check_alive(vms, hmmvd)
            hog.check()
            v = (hmmvd.table() or {}).get(vm0.name, {})
            return v.get("fallback-promoted-total", 0) - before >= opts.min_fallback and v

        # new hot pages to promote come with vm0's shifts; hmmvd moves them in its intervals
        n_int, n_shift = opts.fallback_bound
        first, shifts0 = hmmvd.intervals(), vm0.shifts()
        try:
            v = wait_counted(f"{vm0.name}: {opts.min_fallback} promotions fall back to node 1",
                         lambda: min((hmmvd.intervals() - first) * n_shift // n_int,
                                     vm0.shifts() - shifts0),
                             n_shift, fell_back, opts.deadline, poll=1,
                             unit=f"steps (a step: {n_int // n_shift} hmmvd intervals and a "
                                  f"hot-set shift of {vm0.name}, both)")
        except Failed:
            say_nodes(hmmvd, vms)   # what hmmvd saw instead
            raise
        status = hmmvd.ctl.request("status")
        nodes = {n["id"]: n for n in status["nodes"]}
        say("e2e: fallback: nodes " + ", ".join(
            f"{i}: free {n.get('free-pages')} cap {n.get('capacity-pages')} used "
            f"{n.get('used-pages')} fallback-in {n.get('fallback-in-pages')}"
            f"{' full' if n.get('full') else ''}" for i, n in sorted(nodes.items())))
        say(f"e2e: fallback: {vm0.name}: dram-node {v.get('dram-node')} slow-node "
            f"{v.get('slow-node')} cpu-node {v.get('cpu-node')} ({v.get('cpu-node-source')}), "
            f"fallback-promoted-total {v.get('fallback-promoted-total')}")
        placement_check(hmmvd.ctl, vm0, totals)
        on1 = vm0.node_counts.get(1, 0)
        if nodes[1].get("fallback-in-pages", 0) <= 0:
            failures.append("fallback: node 1 shows no fallback-in pages")
        if v.get("dram-node") != 0 or v.get("slow-node") != 2:
            failures.append(f"fallback: {vm0.name}'s first choices are nodes "
                            f"{v.get('dram-node')}/{v.get('slow-node')}, not 0/2")
        if on1 == 0:
            failures.append(f"fallback: the kernel shows none of {vm0.name}'s pages on node 1")
        if vm0.node_counts.get(3, 0) != 0:
            failures.append(f"fallback: {vm0.name} demoted to node 3 "
                            f"({vm0.node_counts.get(3)} pages), not its own slow node 2")
        with open(hmmvd.log, errors="replace") as f:
            logged = [l for l in f if "DRAM node 0 full, promoted to node 1" in l]
        if not logged:
            failures.append("fallback: no log line 'vm vm0: DRAM node 0 full, promoted to "
                            "node 1'")
        else:
            say(f"e2e: fallback: logged: {logged[0].strip()}")
        say(f"e2e: fallback: {vm0.name} has {on1} pages on node 1 (kernel), hmmvd counted "
            f"{v.get('fallback-promoted-total', 0) - before} fallback promotions")
        print(f"testbed: fallback_promoted={v.get('fallback-promoted-total', 0) - before} "
              f"vm0_on_node1={on1}", flush=True)
    finally:
        hog.release()
    if on1 and not failures:
        home_phase(opts, hmmvd, vms, totals, failures, on1)


def say_nodes(hmmvd, vms):
    """hmmvd's view of the nodes and the VMs' budgets and placement, for a failure's log."""
    status = hmmvd.ctl.request("status")
    say("e2e: nodes: " + ", ".join(
        f"{n['id']}: free {n.get('free-pages')} cap {n.get('capacity-pages')} used "
        f"{n.get('used-pages')} fallback-in {n.get('fallback-in-pages')}"
        f"{' full' if n.get('full') else ''}" for n in status["nodes"]))
    table = hmmvd.table() or {}
    for vm in vms:
        v = table.get(vm.name, {})
        say(f"e2e: {vm.name}: " + ", ".join(
            f"{k} {v.get(k)}" for k in ("status", "budget-pages", "hot-pages", "dram-pages",
                                        "slow-pages", "promotions-total", "demotions-total",
                                        "fallback-promoted-total", "dram-node", "slow-node",
                                        "away-dram-pages", "move-failures")))


def home_phase(opts, hmmvd, vms, totals, failures, on1):
    """The filler is gone: node 0 has room again, and vm0's pages on node 1 (its promotions
    that fell back, and first touches the kernel put there while node 0 was full) must come
    home to node 0 (issue 7 item 4): hmmvd's homed-dram-total grows, its away-dram-pages
    falls to 0 within opts.home_intervals intervals, and the kernel shows vm0's pages off
    node 1 (read back with move_pages, the VM paused in hmmvd)."""
    vm0 = vms[0]
    v = (hmmvd.table() or {}).get(vm0.name, {})
    homed0 = v.get("homed-dram-total", 0)
    say(f"e2e: home: the filler exited, node 0 {node_free_mib(0)} MiB free; {vm0.name}: "
        f"away-dram-pages {v.get('away-dram-pages')}, homed-dram-total {homed0}")

    def home():
        check_alive(vms, hmmvd)
        v = (hmmvd.table() or {}).get(vm0.name, {})
        return v.get("away-dram-pages", 1) == 0 and v

    try:
        v = wait_counted(f"{vm0.name}: its DRAM pages away from node 0 come home "
                         "(away-dram-pages 0)", hmmvd.intervals, opts.home_intervals, home,
                         opts.deadline, poll=1)
    except Failed as e:
        away = (hmmvd.table() or {}).get(vm0.name, {}).get("away-dram-pages")
        failures.append(f"home: {e}: {away} still away")
        v = (hmmvd.table() or {}).get(vm0.name, {})
    homed = v.get("homed-dram-total", 0) - homed0
    placement_check(hmmvd.ctl, vm0, totals)
    on1_after = vm0.node_counts.get(1, 0)
    say(f"e2e: home: {vm0.name}: hmmvd brought {homed} pages home (homed-dram-total), "
        f"away-dram-pages {v.get('away-dram-pages')}; the kernel shows {on1_after} of its "
        f"pages on node 1 (before: {on1}), nodes {dict(sorted(vm0.node_counts.items()))}")
    print(f"testbed: homed_dram={homed} vm0_on_node1_before={on1} vm0_on_node1_after="
          f"{on1_after}", flush=True)
    if homed <= 0:
        failures.append(f"home: hmmvd brought none of {vm0.name}'s pages home "
                        "(homed-dram-total did not grow)")
    if on1_after >= on1 or on1_after > v.get("away-dram-pages", 0):
        failures.append(f"home: the kernel shows {on1_after} of {vm0.name}'s pages on node 1 "
                        f"(before {on1}, hmmvd's away-dram-pages {v.get('away-dram-pages')})")


def per_socket_check(hmmvd, vms, failures):
    """2socket layout: VM i runs on node i's CPUs; the kernel's nodes of its pages (its last
    placement checkpoint) must be node i (its socket's DRAM) and node i+2 (its socket's slow
    node), both in use, and hmmvd must aim it at them."""
    table = hmmvd.table() or {}
    for i, vm in enumerate(vms):
        own = {i, i + 2}
        wrong = {n: c for n, c in vm.node_counts.items() if n not in own}
        v = table.get(vm.name, {})
        say(f"e2e: per socket: {vm.name} (node{i} CPUs): kernel nodes "
            f"{dict(sorted(vm.node_counts.items()))}, own nodes {sorted(own)}; hmmvd: "
            f"cpu-node {v.get('cpu-node')} ({v.get('cpu-node-source')}), dram-node "
            f"{v.get('dram-node')}, slow-node {v.get('slow-node')}")
        if wrong:
            failures.append(f"per socket: {vm.name} runs on node{i}'s CPUs but has "
                            f"pages on other sockets' nodes {wrong}")
        if not (vm.node_counts.get(i, 0) and vm.node_counts.get(i + 2, 0)):
            failures.append(f"per socket: {vm.name} has no pages on node {i} or on "
                            f"node {i + 2}: nothing shows where its moves go")
        if (v.get("dram-node"), v.get("slow-node")) != (i, i + 2):
            failures.append(f"per socket: hmmvd sends {vm.name} to nodes "
                            f"{v.get('dram-node')}/{v.get('slow-node')}, not {i}/{i + 2}")
