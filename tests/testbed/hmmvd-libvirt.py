#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmvd through a libvirtd running inside the testbed, and libvirtd killed as a fault.

Run inside the testbed (tests/testbed/testbed run): the host's libvirt binaries over the 9p
root, with the testbed's own /etc/libvirt and /run (its tmpfs overlay: nothing reaches the
host). libvirtd starts nested VMs of the patched QEMU ($HMMV_QEMU) whose guests
(tests/guest, mode=verify) fill their memory with known patterns and check them while their
hot sets shift; hmmvd (libvirt mode, numa mover, a DRAM pool smaller than the VMs) finds them
through libvirt and moves their pages between node 0 and the slow node. Then libvirtd is
killed (-9) and started again. A quota set with `virsh metadata` before the fault and another
after it must be what hmmvd applies, and the kernel's own count of the VM's pages on DRAM must
stay within it.

libvirtd's capabilities probe of each emulator (a QEMU started with ~100 QMP queries) takes
minutes under nested TCG, so it is done beforehand on the host: run with --testbed TOOL on the
host, this script probes the emulators with a private libvirtd (libvirt-caps.sh, seconds), then
runs itself inside `TOOL run` with --caps DIR, which seeds the inner libvirtd's cache. Whether
the inner libvirtd kept the seeded entries or probed again is printed (a figure).

Checked, each a failure when it does not hold:
  libvirt    hmmvd manages every domain, found through libvirt (not --qmp)
  moves      hmmvd promoted and demoted --min-moves pages each way before the fault (10,000,
             as hmmvd-e2e.py: the same VMs, hot sets that shift, a pool a sixth of their
             footprint; the phase gives up after --bound-intervals hmmvd intervals and
             --bound-shifts hot-set shifts, both), and the kernel's pgmigrate_success grew by
             at least what hmmvd claims
  placement  hmmvd's view against move_pages status queries at --checks checkpoints (the
             shared e2elib/checks.py check of hmmvd-e2e.py): agreement >= 0.999, every
             disagreeing page one whose last move hmmvd counted as failed (page by page),
             and no more of them than mover errors
  quota      `virsh metadata --live --config` on vm 0 (dram-max --quota-mib), set while both
             VMs still hold all of their pages on DRAM: hmmvd shows it and budgets exactly
             that; vm 0's DRAM (hmmvd's view, sampled many times an interval) comes down to it
             with at most --quota-intervals idle hmmvd intervals on the way (over it, none
             of vm 0's pages demoted nor held back by the cap or batch limit: how many pages
             an interval moves is the mover's pace, slow under load) and never goes above
             it again; the kernel's count of vm 0's pages on node 0 at the
             checkpoints after it is within it; after libvirtd's restart a second quota
             (--quota2-mib), set the same way, is applied and held the same way
  fault      libvirtd killed once hmmvd lists every domain managed (under load a QEMU that
             missed a QMP deadline is dropped and tried again, only through libvirt); with
             libvirtd dead, hmmvd keeps running intervals and serving its control socket with
             every domain still listed managed; after the restart it reconnects and runs
             --after-intervals more intervals, then moves pages again (within 60 intervals
             and 4 hot-set shifts)
  data       every guest ends with corrupt=0
Prints "testbed: libvirt moves=N verified_pages=N corrupt=N",
"testbed: libvirt placement_agree=0.NNNN" and "testbed: libvirt quota drained_intervals=N
after_restart=N bound=N samples=N", and, as figures, the intervals and moves while libvirtd
was down and after its restart, and each VM's late harvests (intervals whose hmmv-sync QEMU
had not answered in time: balanced and moved on what hmmvd knew, libhmmv/loop.c).

usage: hmmvd-libvirt.py --testbed tests/testbed/testbed --hmmvd PATH --guest guest.elf [...]
       (on the host; inside the testbed it is run with --caps DIR instead of --testbed)
needs HMMV_QEMU, libvirt, root; exit 77 when something is missing.
"""
import argparse
import ctypes
import hashlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "hmmvd-e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)
say, skip, Failed, wait_for = e2e.say, e2e.skip, e2e.Failed, e2e.wait_for
from e2elib.common import wait_counted  # noqa: E402 (e2elib is on the path hmmvd-e2e set)

URI = "qemu:///system"
NS = "https://hmmv.dev/ns/quota/1"   # daemon/quota.h, HMMVD_METADATA_URI
CAPS_DIR = "/var/cache/libvirt/qemu/capabilities"
PR_SET_CHILD_SUBREAPER = 36


def virsh(*args, check=True, timeout=600):
    """virsh, with a generous deadline: the first define of an emulator makes libvirtd probe
    its capabilities, which under nested TCG on a loaded machine took over 120 s."""
    try:
        out = subprocess.run(["virsh", "-q", "-c", URI] + list(args), capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"virsh {' '.join(args)}: no answer within {timeout} s")
    if check and out.returncode != 0:
        raise Failed(f"virsh {' '.join(args)}: {out.stderr.strip() or out.stdout.strip()}")
    return out


class Libvirtd:
    """virtlogd and libvirtd, children of this process (their QEMUs too: subreaper)."""

    def __init__(self, work):
        self.work = work
        self.virtlogd = subprocess.Popen(["/usr/sbin/virtlogd"],
                                         stdout=open(os.path.join(work, "virtlogd.log"), "w"),
                                         stderr=subprocess.STDOUT)
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.proc = subprocess.Popen(["/usr/sbin/libvirtd"],
                                     stdout=open(os.path.join(self.work, "libvirtd.log"), "a"),
                                     stderr=subprocess.STDOUT)

        def answers():
            if self.proc.poll() is not None:
                raise Failed(f"libvirtd exited {self.proc.returncode} at start "
                             f"(see libvirtd.log)")
            try:
                return virsh("list", "--all", check=False, timeout=60).returncode == 0
            except Failed:
                return False
        wait_for("libvirtd answers virsh", 300, answers, poll=0.3)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        for p in (self.proc, self.virtlogd):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class QemuProc:
    """The Popen face (poll, kill, wait, returncode) of a QEMU libvirtd started: it is not our
    child, but as subreaper this process inherits it when libvirtd daemonizes it, so its exit
    status can still be had."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:   # not ours after all: alive while /proc has it
                if not os.path.exists(f"/proc/{self.pid}"):
                    self.returncode = -1
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"qemu {self.pid}", timeout)
            time.sleep(0.2)
        return self.returncode


class DomainVm(e2e.Vm):
    """hmmvd-e2e.py's Vm, started by libvirtd: the same guest, serial on a pipe chardev."""

    def __init__(self, name, work, qemu, guest, opts):
        self.name = name
        self.serial = os.path.join(work, f"{name}.serial")
        self.log = os.path.join(work, f"{name}.log")
        for end in ("in", "out"):
            os.mkfifo(f"{self.serial}.{end}")
        cmdline = (f"mode=verify base=4M hot_mib={opts.hot_mib} cold_mib={opts.cold_mib} "
                   f"hot_ratio=98 shift_every={opts.shift_every} "
                   f"report_every={opts.shift_every // 4} seed={1 + sum(map(ord, name))}")
        xml = f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{opts.mem_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{guest}</kernel>
    <cmdline>{cmdline}</cmdline>
  </os>
  <!-- without it libvirt 9.0 passes -no-acpi, which QEMU 10.0 refuses -->
  <features><acpi/></features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>{qemu}</emulator>
    <serial type='pipe'><source path='{self.serial}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-device'/><qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=0x04'/>
  </qemu:commandline>
</domain>
"""
        path = os.path.join(work, f"{name}.xml")
        with open(path, "w") as f:
            f.write(xml)
        self.node_counts = {}
        # the reader first: QEMU opens the FIFOs at start and blocks on the write end's open
        self.reader = subprocess.Popen(["cat", f"{self.serial}.out"],
                                       stdout=open(self.log, "w"))
        self.tx = os.open(f"{self.serial}.in", os.O_RDWR)
        self.proc = None
        try:
            virsh("define", path)
        except BaseException:
            # not in the caller's list yet: nobody else stops the reader
            self.reader.kill()
            self.reader.wait()
            os.close(self.tx)
            raise

    def start(self):
        """virsh start; the QEMU's pid from libvirt's pid file. Several at once (threads):
        libvirtd's start-up of a QEMU under nested TCG (77-93 s a domain at load 12-18) is
        mostly waiting on that QEMU, so the domains' start-ups overlap."""
        virsh("start", self.name)
        with open(f"/run/libvirt/qemu/{self.name}.pid") as f:
            self.proc = QemuProc(int(f.read().strip()))

    def stop(self):
        for p in (self.proc, self.reader):   # proc is None if it never started
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def errors_of(fn, what, errs):
    """fn() in a thread: what it raises goes to errs."""
    try:
        fn()
    except Exception as e:   # noqa: BLE001 (reported by the caller's thread)
        errs.append(f"{what}: {e}")


def seed_caps(caps):
    """Copies the capabilities cache probed on the host (libvirt-caps.sh) into the testbed's
    libvirt cache; returns {file: sha256} to tell later whether libvirtd rewrote (re-probed)
    an entry."""
    os.makedirs(CAPS_DIR, exist_ok=True)
    seeded = {}
    for name in sorted(os.listdir(caps)):
        if name.endswith(".xml"):
            shutil.copy(os.path.join(caps, name), os.path.join(CAPS_DIR, name))
            seeded[name] = digest(os.path.join(CAPS_DIR, name))
    if not seeded:
        raise Failed(f"no capabilities cache in {caps}")
    return seeded


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def reprobed(seeded):
    """The seeded entries libvirtd replaced (it writes a new file after each probe), and
    the entries it probed that were not seeded."""
    now = {n: digest(os.path.join(CAPS_DIR, n)) for n in os.listdir(CAPS_DIR)
           if n.endswith(".xml")}
    return sorted(n[:12] for n in now if seeded.get(n) != now[n])


def set_quota(name, max_mib):
    virsh("metadata", name, "--uri", NS, "--key", "hmmv", "--live", "--config", "--set",
          f'<memory dram-min-mib="0" dram-max-mib="{max_mib}" weight="100"/>')


def quota_applied(hmmvd, vm, max_mib):
    """hmmvd's view of vm once it shows max_mib as its quota and budgets exactly that."""
    v = (hmmvd.table() or {}).get(vm.name, {})
    quota = v.get("quota") or {}
    if quota.get("dram-max-mib") == max_mib and v.get("budget-pages") == max_mib * 256:
        return v
    return None


class QuotaWatch:
    """vm's DRAM in hmmvd's view, sampled many times an interval (vms: last-good-interval,
    dram-pages, the quota and the interval it took effect in), on a thread: each sample is
    judged against the quota in effect for the interval it shows. hmmvd's view is the
    kernel's: the placement checkpoints compare every page of it with move_pages(2) status
    queries."""

    def __init__(self, ctl, name, period=0.25):
        self.ctl, self.name, self.period = ctl, name, period
        # (interval, dram pages, quota pages or None: not yet in effect, pages hmmvd
        # demoted and pages its cap or batch limit held back in that interval)
        self.samples = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_ev.wait(self.period):
            try:
                v = {r["name"]: r for r in self.ctl.request("vms")}.get(self.name)
            except (OSError, ValueError, Failed):
                continue
            if not v or not v.get("in-core") or v.get("last-good-interval") is None:
                continue   # dropped, being added again, or no good interval yet
            interval = v["last-good-interval"]
            effective = v.get("quota-effective-interval")
            max_mib = (v.get("quota") or {}).get("dram-max-mib") or 0
            quota = max_mib * 256 if effective is not None and interval >= effective and \
                max_mib else None
            self.samples.append((interval, v["dram-pages"], quota, v.get("demoted-pages", 0),
                                 v.get("deferred-cap-pages", 0)))

    def stop(self):
        self.stop_ev.set()
        self.thread.join(timeout=30)

    def check(self, max_mib, since, bound, failures, when):
        """From interval since (its quota's effective interval) on: vm's DRAM down to
        max_mib, and at or under it in every later sample of that quota. How fast is hmmvd's
        mover's business (under load its batch limit, learnt from what a page costs, let
        ~100 pages an interval go: 55 intervals for 6,000 pages at load 20): the bound is on
        the idle intervals, those over the quota in which hmmvd demoted none of vm's pages
        and held none back for its cap or batch limit (counted in hmmvd's intervals, each
        judged by the samples that show it). Returns the intervals it took (None)."""
        quota = max_mib * 256
        mine = [(i, d, dem, held) for i, d, q, dem, held in self.samples
                if q == quota and i >= since]
        drained = next((i for i, d, _, _ in mine if d <= quota), None)
        over = [(i, d) for i, d, _, _ in mine if drained is not None and i >= drained and
                d > quota]
        took = None if drained is None else drained - since
        working, seen = set(), set()
        for i, d, dem, held in mine:
            if drained is None or i < drained:
                seen.add(i)
                if dem or held:
                    working.add(i)
        idle = sorted(seen - working)
        first = mine[0] if mine else None
        say(f"libvirt: quota {when}: {self.name} from {first[1] if first else '?'} DRAM "
            f"pages at interval {since}: at or under {quota} by interval {drained} "
            f"({took} intervals: {len(seen)} seen over it, {len(working)} demoting or held "
            f"back, {len(idle)} idle, bound {bound}), then {len(over)} of "
            f"{sum(1 for i, *_ in mine if drained is not None and i >= drained)} samples over "
            f"it{' ' + str(over[:4]) if over else ''}")
        if not mine:
            failures.append(f"quota {when}: no sample of {self.name} under its quota of "
                            f"{max_mib} MiB")
        elif drained is None or len(idle) > bound:
            failures.append(f"quota {when}: {self.name} not down to {quota} DRAM pages "
                            f"{'at all' if drained is None else 'in time'} ({len(idle)} idle "
                            f"intervals over it, bound {bound}: {idle[:8]}; "
                            f"last sample {mine[-1][1]} pages at interval {mine[-1][0]})")
        if over:
            failures.append(f"quota {when}: {self.name} back over {quota} DRAM pages after "
                            f"interval {drained}: {over[:4]}")
        return took


def host_side(opts):
    """On the host: probe the emulators into a private cache, then run this script inside
    the testbed with it. Returns the exit status."""
    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip(f"no patched QEMU (HMMV_QEMU={qemu or 'unset'})")
    # under /tmp: the testbed sees the host's root (read-only), this directory included
    caps = tempfile.mkdtemp(prefix="hmmv-lvcaps-out.")
    try:
        t0 = time.monotonic()
        rc = subprocess.run([os.path.join(here, "libvirt-caps.sh"), caps, qemu]).returncode
        if rc != 0:
            say(f"libvirt: probing the emulators on the host failed ({rc})")
            return rc
        say(f"libvirt: capabilities probed on the host in {time.monotonic() - t0:.0f} s")
        inner = [a for a in sys.argv[1:]]
        i = inner.index("--testbed")
        del inner[i:i + 2]
        cmd = [opts.testbed, "run", "--layout", "2node", "--mem", "2048",
               "--timeout", str(opts.testbed_timeout), "--",
               os.path.abspath(__file__), "--caps", caps] + inner
        return subprocess.run(cmd).returncode
    finally:
        shutil.rmtree(caps, ignore_errors=True)


def intervals(ctl):
    return ctl.request("status")["intervals"]


def all_managed(hmmvd, vms, what, bound=120):
    """Waits until hmmvd lists every domain managed, at most bound of hmmvd's intervals
    (seconds only as a liveness cap): under load a QEMU that misses a QMP deadline (5 s) is
    dropped and tried again (daemon/libvirt.c retry_dropped), and while it is out hmmvd
    refuses to pause it for a placement checkpoint. Says so when it had to wait."""
    first = intervals(hmmvd.ctl)
    if e2e.managed(hmmvd, vms):
        return
    table = hmmvd.table() or {}
    say(f"libvirt: {what}: waiting for every domain to be managed: " +
        ", ".join(f"{vm.name} {table.get(vm.name, {}).get('status')!r}" for vm in vms))
    wait_counted(f"{what}: every domain managed again", lambda: intervals(hmmvd.ctl), bound,
                 lambda: e2e.managed(hmmvd, vms), 900)
    say(f"libvirt: {what}: every domain managed after {intervals(hmmvd.ctl) - first} "
        f"intervals")


def drops(hmmvd):
    """hmmvd's log: (domains dropped for a missed QMP deadline, tries again, late
    harvests of every domain): how hard the load pressed (a figure)."""
    with open(hmmvd.log, errors="replace") as f:
        log = f.read()
    late = sum(v.get("harvests-late-total", 0) for v in (hmmvd.table() or {}).values())
    return log.count("dropped, QEMU missed a QMP deadline"), log.count(": trying again"), late


def quota_check(hmmvd, vms, max_mib, totals, failures, when):
    """A placement checkpoint of every VM; vm 0's pages on node 0, as the kernel reports
    them, must be within its quota (hmmvd's placement must agree, checked with the rest)."""
    all_managed(hmmvd, vms, f"quota {when}")
    table = hmmvd.table() or {}
    for vm in vms:
        e2e.placement_check(hmmvd.ctl, vm, totals)
    on_dram = vms[0].node_counts.get(0, 0)
    say(f"libvirt: quota {when}: {vms[0].name} has {on_dram} pages on node 0 (kernel), quota "
        f"{max_mib * 256} pages; " + ", ".join(
            f"{vm.name}: budget {table.get(vm.name, {}).get('budget-pages')}, node 0 "
            f"{vm.node_counts.get(0, 0)}, late harvests "
            f"{table.get(vm.name, {}).get('harvests-late-total')}, errors "
            f"{table.get(vm.name, {}).get('errors')}" for vm in vms))
    if on_dram > max_mib * 256:
        failures.append(f"quota {when}: {vms[0].name} has {on_dram} pages on DRAM, its quota "
                        f"is {max_mib} MiB ({max_mib * 256} pages)")
    if on_dram == 0:
        failures.append(f"quota {when}: {vms[0].name} has no page on DRAM: its quota shows "
                        f"nothing")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hmmvd", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--vms", type=int, default=2)
    ap.add_argument("--mem-mib", type=int, default=48)
    ap.add_argument("--hot-mib", type=int, default=4)
    ap.add_argument("--cold-mib", type=int, default=36)
    ap.add_argument("--shift-every", type=int, default=200000)
    ap.add_argument("--pool-mib", type=int, default=16)
    ap.add_argument("--interval-ms", type=int, default=500)
    ap.add_argument("--min-moves", type=int, default=10000,
                    help="promotions and demotions each must reach this before the fault")
    # as hmmvd-e2e.py's: the moves phase gives up once both counts passed their bound
    ap.add_argument("--bound-intervals", type=int, default=600,
                    help="the moves phase gives up after this many hmmvd intervals ...")
    ap.add_argument("--bound-shifts", type=int, default=40,
                    help="... and this many hot-set shifts of the guests in all")
    ap.add_argument("--deadline", type=int, default=900,
                    help="seconds for the moves phase: a liveness cap, never a figure")
    ap.add_argument("--checks", type=int, default=3, help="placement checkpoints")
    ap.add_argument("--check-every", type=int, default=20,
                    help="hmmvd intervals between placement checkpoints")
    ap.add_argument("--quota-intervals", type=int, default=30,
                    help="idle hmmvd intervals allowed while vm 0's DRAM is over its quota: "
                         "it demoted none of vm 0's pages and held none back for its cap or "
                         "batch limit (the pauses of the placement checkpoints are some)")
    ap.add_argument("--down-intervals", type=int, default=6,
                    help="hmmvd intervals to count while libvirtd is dead")
    ap.add_argument("--after-intervals", type=int, default=10,
                    help="hmmvd intervals to count after libvirtd's restart")
    ap.add_argument("--quota-mib", type=int, default=2,
                    help="vm 0's dram-max-mib, set with virsh metadata before the fault")
    ap.add_argument("--quota2-mib", type=int, default=3,
                    help="vm 0's dram-max-mib, set with virsh metadata after the restart")
    ap.add_argument("--testbed", help="on the host: the testbed tool to run this script in")
    ap.add_argument("--testbed-timeout", type=int, default=1500)
    ap.add_argument("--caps", help="inside: libvirt capabilities cache probed on the host")
    opts = ap.parse_args()

    if opts.testbed and not os.environ.get("TESTBED_LAYOUT"):
        return host_side(opts)
    if not os.environ.get("TESTBED_LAYOUT"):
        skip("runs only inside tests/testbed/testbed (it rewrites /etc/libvirt, which only "
             "the testbed's overlay makes private): give --testbed TOOL")
    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip(f"no patched QEMU (HMMV_QEMU={qemu or 'unset'})")
    for path in (opts.hmmvd, opts.guest, "/usr/sbin/libvirtd", "/usr/sbin/virtlogd",
                 shutil.which("virsh") or "/usr/bin/virsh"):
        if not os.path.exists(path):
            skip(f"{path} is missing (libvirt-daemon-system, libvirt-clients; a build)")
    if os.geteuid() != 0:
        skip("needs root")

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for path, value in (("/proc/sys/kernel/numa_balancing", "0"),
                        ("/sys/kernel/mm/numa/demotion_enabled", "false"),
                        ("/sys/kernel/mm/transparent_hugepage/enabled", "never")):
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            say(f"libvirt: cannot set {path}={value}: {e}")

    # QEMU as root, unconfined, files left as they are: the testbed is a throwaway root, and
    # the patched QEMU lives in a root-only cache the libvirt-qemu user cannot read.
    with open("/etc/libvirt/qemu.conf", "a") as f:
        f.write('\nuser = "root"\ngroup = "root"\ndynamic_ownership = 0\n'
                'security_driver = "none"\nremember_owner = 0\ncgroup_controllers = [ ]\n')
    for d in ("/etc/libvirt/qemu/networks/autostart",):
        if os.path.isdir(d):
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))
    os.makedirs("/run/libvirt", exist_ok=True)
    seeded = seed_caps(opts.caps) if opts.caps else {}

    work = tempfile.mkdtemp(prefix="hmmv-lv.")
    os.chmod(work, 0o755)
    lvd = Libvirtd(work)
    vms, daemons, failures = [], [], []
    watch = None
    t_start = time.monotonic()

    def stamp():
        return f"[{time.monotonic() - t_start:.0f} s]"
    try:
        lvd.start()
        say(f"libvirt: {stamp()} libvirtd answers virsh")
        for i in range(opts.vms):
            vms.append(DomainVm(f"hmmv-tb-{i}", work, qemu, os.path.abspath(opts.guest), opts))
            say(f"libvirt: {stamp()} {vms[-1].name} defined")
        starts = [threading.Thread(target=lambda vm=vm: errors_of(vm.start, vm.name, errs))
                  for vm in vms]
        errs = []
        for t in starts:
            t.start()
        for t in starts:
            t.join()
        if errs:
            raise Failed("; ".join(errs))
        say(f"libvirt: {stamp()} " + ", ".join(vm.name for vm in vms) + " started (at once)")
        say(f"libvirt: {stamp()} libvirtd pid {lvd.proc.pid} started "
            + ", ".join(f"{vm.name} (QEMU pid {vm.proc.pid})" for vm in vms))
        if seeded:
            again = reprobed(seeded)
            say(f"libvirt: capabilities: {len(seeded)} entries seeded from the host, "
                f"{len(again)} probed again in the testbed {again or ''}")
        for vm in vms:
            wait_for(f"{vm.name}: the guest filled its memory", 600, vm.began)
        say(f"libvirt: {stamp()} the guests filled their memory")
        migrated0 = e2e.vmstat("pgmigrate_success")

        sock = os.path.join(work, "hmmvd.sock")
        conf = os.path.join(work, "hmmvd.conf")
        with open(conf, "w") as f:
            f.write(f"[daemon]\ninterval-ms = {opts.interval_ms}\ncontrol-socket = {sock}\n"
                    f"[libvirt]\nuri = {URI}\nreconnect-ms = 500\n"
                    f"[memory]\nmover = numa\ndram-pool-mib = {opts.pool_mib}\n")
        hmmvd = e2e.Hmmvd.started(sock, [opts.hmmvd, "--foreground", "--config", conf],
                                  os.path.join(work, "hmmvd.1.log"), t_start)
        daemons.append(hmmvd)
        wait_for("hmmvd manages every domain through libvirt", 180,
                 lambda: e2e.managed(hmmvd, vms))
        with open(hmmvd.log, errors="replace") as f:
            log = f.read()
        for vm in vms:
            if f"vm {vm.name}: libvirt domain" not in log:
                failures.append(f"libvirt: hmmvd's log does not show {vm.name} found through "
                                f"libvirt")
        status = hmmvd.ctl.request("status")
        say(f"libvirt: {stamp()} hmmvd: mover {status['mover']}, pool {status['pool-pages']} pages")
        if status["mover"] != "numa":
            raise Failed(f"hmmvd runs the {status['mover']} mover, not numa")

        # ---- a quota with virsh metadata on vm 0 ----
        q0 = vms[0]
        set_quota(q0.name, opts.quota_mib)
        v = wait_for(f"hmmvd applies {q0.name}'s quota of {opts.quota_mib} MiB", 120,
                     lambda: quota_applied(hmmvd, q0, opts.quota_mib))
        say(f"libvirt: {stamp()} quota: {q0.name} dram-max-mib {opts.quota_mib} shown by hmmvd, "
            f"budget {v['budget-pages']} pages, accepted in interval "
            f"{v.get('quota-accepted-interval')}, effective in "
            f"{v.get('quota-effective-interval')}")

        watch = QuotaWatch(hmmvd.ctl, q0.name)
        effective1 = v.get("quota-effective-interval")
        totals = {"agree": 0, "disagree": 0, "kinds": {}}
        i_moves = intervals(hmmvd.ctl)
        phase = e2e.run_phase(opts, hmmvd, vms, totals, opts.min_moves, opts.deadline,
                              opts.checks, bound=(opts.bound_intervals, opts.bound_shifts))
        prom, dem, errors = phase
        say(f"libvirt: moves phase: promoted {prom}, demoted {dem} in intervals "
            f"{i_moves}..{intervals(hmmvd.ctl)}")
        if prom < opts.min_moves or dem < opts.min_moves or phase.why:
            failures.append(f"moves: promoted {prom}, demoted {dem} before the fault "
                            f"(want {opts.min_moves} each way"
                            f"{'; the phase ended: ' + phase.why if phase.why else ''})")
        quota_check(hmmvd, vms, opts.quota_mib, totals, failures, "before the fault")
        drained1 = watch.check(opts.quota_mib, effective1, opts.quota_intervals, failures,
                               "before the fault")

        # ---- libvirtd killed ----
        # with every domain managed: a domain dropped for a missed QMP deadline is tried
        # again only through libvirt, so one dropped just before the kill stays out until
        # the restart (load, not the fault)
        all_managed(hmmvd, vms, "before the fault")
        lvd.kill()
        i0, m0 = intervals(hmmvd.ctl), sum(hmmvd.moves()[:2])
        say(f"libvirt: fault: killed libvirtd (-9) after interval {i0}")
        wait_for("hmmvd notices libvirtd is gone", 120,
                 lambda: "lost the connection" in open(hmmvd.log, errors="replace").read())
        wait_for(f"hmmvd runs {opts.down_intervals} intervals with libvirtd dead", 120,
                 lambda: intervals(hmmvd.ctl) >= i0 + opts.down_intervals)
        e2e.check_alive(vms, hmmvd)
        table = hmmvd.table() or {}
        listed = {n: v["status"] for n, v in table.items()}
        i1, m1 = intervals(hmmvd.ctl), sum(hmmvd.moves()[:2])
        say(f"libvirt: fault: libvirtd dead for intervals {i0}..{i1}: hmmvd moved {m1 - m0} "
            f"pages, lists {listed}")
        if any(listed.get(vm.name) != "managed" for vm in vms):
            failures.append(f"fault: with libvirtd dead the domains are not all managed: "
                            f"{listed}")

        # ---- libvirtd started again ----
        lvd.start()
        say(f"libvirt: fault: libvirtd restarted (pid {lvd.proc.pid})")

        def reconnected():
            with open(hmmvd.log, errors="replace") as f:
                return f.read().count("libvirt: connected to") >= 2
        wait_for("hmmvd reconnects to the restarted libvirtd", 120, reconnected)
        running = virsh("list", "--name").stdout.split()
        if sorted(running) != sorted(vm.name for vm in vms):
            failures.append(f"fault: the restarted libvirtd lists {running}")
        i2, m2 = intervals(hmmvd.ctl), sum(hmmvd.moves()[:2])
        wait_for(f"hmmvd runs {opts.after_intervals} intervals after the restart", 180,
                 lambda: intervals(hmmvd.ctl) >= i2 + opts.after_intervals)
        # the metadata event of the restarted libvirtd reaches hmmvd
        set_quota(q0.name, opts.quota2_mib)
        v = wait_for(f"hmmvd applies {q0.name}'s quota of {opts.quota2_mib} MiB set after "
                     f"libvirtd's restart", 120,
                     lambda: quota_applied(hmmvd, q0, opts.quota2_mib))
        say(f"libvirt: quota after the restart: {q0.name} dram-max-mib {opts.quota2_mib}, "
            f"budget {v['budget-pages']} pages")
        effective2 = v.get("quota-effective-interval")
        all_managed(hmmvd, vms, "after the restart")
        p3 = e2e.run_phase(opts, hmmvd, vms, totals, hmmvd.moves()[0] + 100, opts.deadline, 1,
                           bound=(60, 4))
        i3, m3 = intervals(hmmvd.ctl), sum(p3[:2])
        say(f"libvirt: fault: after the restart, intervals {i2}..{i3}: hmmvd moved {m3 - m2} "
            f"pages")
        if m3 <= m2:
            failures.append("fault: hmmvd moved nothing after libvirtd's restart")
        quota_check(hmmvd, vms, opts.quota2_mib, totals, failures, "after the restart")
        watch.stop()
        drained2 = watch.check(opts.quota2_mib, effective2, opts.quota_intervals, failures,
                               "after the restart")
        print(f"testbed: libvirt quota drained_intervals={drained1} after_restart={drained2} "
              f"bound={opts.quota_intervals} samples={len(watch.samples)}", flush=True)
        hmmvd.table()
        prom, dem, errors = hmmvd.moves()

        for vm in vms:
            vm.quit()
        for vm in vms:
            try:
                rc = vm.proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                raise Failed(f"{vm.name}: no end within 300 s of 'q'")
            vm.reader.wait(timeout=60)
            vm.end = vm.figures(vm.last("HMMV-VERIFY-END"))
            if not vm.end:
                failures.append(f"{vm.name}: no HMMV-VERIFY-END (QEMU exited {rc})")
            elif rc not in (1, -1):   # isa-debug-exit (0 << 1) | 1; -1: status not ours
                failures.append(f"{vm.name}: guest exit status {rc} (1 = ok, 7 = corrupt)")
            for line in vm.bad_words():
                say(f"libvirt: {vm.name}: {line}")
        migrated = e2e.vmstat("pgmigrate_success") - migrated0
        verified = sum(vm.end.get("verified_pages", 0) for vm in vms)
        corrupt = sum(vm.end.get("corrupt_pages", 0) for vm in vms)
        pages = totals["agree"] + totals["disagree"]
        agree = totals["agree"] / pages if pages else 0.0
        say(f"libvirt: hmmvd promoted {prom}, demoted {dem}, mover errors {errors}; kernel "
            f"pgmigrate_success +{migrated}; placement: {pages} page checks, "
            f"{totals['disagree']} disagree {totals['kinds'] or ''}")
        print(f"testbed: libvirt moves={prom + dem} verified_pages={verified} corrupt={corrupt}",
              flush=True)
        dropped, retried, late = drops(hmmvd)
        print(f"testbed: libvirt qmp_drops={dropped} retries={retried} late_harvests={late} "
              f"run_s={time.monotonic() - t_start:.0f}", flush=True)
        print(f"testbed: libvirt placement_agree={agree:.4f}", flush=True)
        if corrupt:
            failures.append(f"data: {corrupt} corrupt pages")
        if verified == 0:
            failures.append("data: no page verified")
        if migrated < prom + dem:
            failures.append(f"the kernel migrated {migrated} pages, hmmvd claims {prom + dem}")
        if pages == 0 or agree < 0.999:
            failures.append(f"placement: agreement {agree:.4f} over {pages} pages (< 0.999)")
        if totals["disagree"] > errors:
            failures.append(f"placement: {totals['disagree']} disagreements, only {errors} "
                            f"mover errors counted to explain them")
        if totals.get("unexplained"):
            failures.append(f"placement: {totals['unexplained']} disagreeing pages whose last "
                            f"move hmmvd did not count as failed: "
                            f"{'; '.join(totals['unexplained_pages'])}")
    except Failed as e:
        failures.append(str(e))
    finally:
        # cleanup must not hide the failure that brought us here: its own failures are
        # reported after the run's
        cleanup = []
        if watch is not None:
            watch.stop()
        for d in daemons:
            d.stop()
        if lvd.proc is not None and lvd.proc.poll() is None:
            for vm in vms:
                try:
                    virsh("destroy", vm.name, check=False, timeout=60)
                except Failed as e:
                    cleanup.append(f"cleanup: {e}")
        for vm in vms:
            vm.stop()
        lvd.stop()
        failures.extend(cleanup)
    if failures:
        for f in failures:
            say(f"FAIL: {f}")
        for name in ["hmmvd.1.log", "libvirtd.log"] + [f"{vm.name}.log" for vm in vms]:
            path = os.path.join(work, name)
            if os.path.exists(path):
                say(f"--- {name} (last 15 lines)")
                with open(path, errors="replace") as f:
                    for line in f.read().splitlines()[-15:]:
                        say(f"  {line}")
        # again, last: CI keeps the tail of a long output (ci25 lost the FAIL lines)
        for f in failures:
            say(f"FAIL: {f}")
        shutil.rmtree(work, ignore_errors=True)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    say("libvirt: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
