# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmvd: its control socket, the process, its counters."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

from e2elib.common import Failed, wait_for


class Control:
    def __init__(self, path):
        self.path = path

    def request(self, command, **members):
        req = dict(command=command, **members)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(self.path)
            s.sendall((json.dumps(req) + "\n").encode())
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise Failed(f"hmmvd closed the control socket on {command}")
                buf += chunk
        reply = json.loads(buf)
        if "error" in reply:
            raise Failed(f"hmmvd refused {command}: {reply['error']}")
        return reply["return"]


class Hmmvd:
    """One hmmvd process over some of the VMs."""

    def __init__(self, opts, work, vms, generation, t0=None, pool_mib=None):
        """t0 (time.monotonic()): each log line is prefixed with the seconds since t0, when
        it was read (the log is copied by a thread). pool_mib: the DRAM pool, when not
        opts.pool_mib."""
        self.sock = os.path.join(work, "hmmvd.sock")
        conf = os.path.join(work, "hmmvd.conf")
        with open(conf, "w") as f:
            f.write(f"[memory]\nmover = numa\ndram-pool-mib = "
                    f"{opts.pool_mib if pool_mib is None else pool_mib}\n")
            if opts.reserve_mib is not None:
                f.write(f"node-reserve-mib = {opts.reserve_mib}\n")
            policy = []
            if opts.migrate_mbps:
                policy.append(f"migrate-mbps = {opts.migrate_mbps}\n")
            if getattr(opts, "move_share_percent", None) is not None:
                policy.append(f"move-share-percent = {opts.move_share_percent}\n")
            if policy:
                f.write("[policy]\n" + "".join(policy))
            if getattr(opts, "reads_source", None):
                f.write(f"[reads]\nsource = {opts.reads_source}\n")
        args = [opts.hmmvd, "--foreground", "--config", conf, "--no-libvirt",
                "--interval-ms", str(opts.interval_ms), "--control-socket", self.sock]
        for vm in vms:
            args += ["--qmp", f"{vm.name}={vm.qmp}"]
        self.start(args, os.path.join(work, f"hmmvd.{generation}.log"), t0)

    @classmethod
    def started(cls, sock, args, log, t0=None):
        """An hmmvd of the caller's own command line (args), serving sock."""
        self = cls.__new__(cls)
        self.sock = sock
        self.start(args, log, t0)
        return self

    def start(self, args, log, t0):
        self.log = log
        self.copier = None
        if t0 is None:
            self.proc = subprocess.Popen(args, stdout=open(self.log, "w"),
                                         stderr=subprocess.STDOUT)
        else:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.copier = threading.Thread(target=stamp_lines,
                                           args=(self.proc.stdout, self.log, t0), daemon=True)
            self.copier.start()
        self.ctl = Control(self.sock)
        self.seen = {}       # per VM: (promoted, demoted, errors) counted in all
        self.last = {}       # per VM: hmmvd's counters when last read
        self.base = {}       # per VM: what earlier incarnations of it counted
        self.cap_seen = {}   # per VM: the largest moved-cap-pages of a sampled interval
        self.huge = {}       # per VM: (thp-pages, hugetlb-pages) last seen

    def table(self):
        try:
            t = {v["name"]: v for v in self.ctl.request("vms")}
        except (OSError, ValueError, Failed):
            return None
        # a VM that leaves hmmvd's table takes its counters with it, and one whose QEMU died
        # stays listed with them at 0; one hmmvd dropped (a missed QMP deadline under load)
        # and added again starts them from 0. They only grow while the VM is managed, so a
        # counter that went down started again: what it had counted is kept in self.base.
        for name, v in t.items():
            now = (v["promotions-total"], v["demotions-total"],
                   sum(v["move-failures"].values()))
            last = self.last.get(name, now)
            base = self.base.get(name, (0, 0, 0))
            if any(n < l for n, l in zip(now, last)):
                base = tuple(b + l for b, l in zip(base, last))
                self.base[name] = base
            self.last[name] = now
            self.seen[name] = tuple(b + n for b, n in zip(base, now))
            self.cap_seen[name] = max(self.cap_seen.get(name, 0), v.get("moved-cap-pages", 0))
            self.huge[name] = (v.get("thp-pages", 0), v.get("hugetlb-pages", 0))
        return t

    def intervals(self):
        """hmmvd's intervals so far (status), or the last count read when it does not answer
        (a wait counting them then runs into its liveness cap)."""
        try:
            self.last_intervals = self.ctl.request("status")["intervals"]
        except (OSError, ValueError, Failed):
            pass
        return getattr(self, "last_intervals", 0)

    def moves(self):
        """(promoted, demoted, mover errors) of every VM this hmmvd ever listed."""
        return tuple(sum(m[i] for m in self.seen.values()) for i in range(3))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.copier is not None:
            self.copier.join(timeout=60)


def stamp_lines(stream, path, t0):
    """Copies stream's lines to path, each prefixed with the seconds since t0."""
    with open(path, "w") as out:
        for raw in iter(stream.readline, b""):
            out.write(f"[{time.monotonic() - t0:7.2f}] {raw.decode(errors='replace')}")
            out.flush()
    stream.close()


def quiet_sample(hmmvd, vms, migs, resume=True):
    """hmmvd's (promoted, demoted, errors) and the kernel's migrations (migs) at one moment
    when nothing moves: every VM paused in hmmvd and two more intervals run (the one in
    flight when the pause came may still move), then resumed (unless resume is False)."""
    for vm in vms:
        hmmvd.ctl.request("pause", vm=vm.name)
    try:
        first = hmmvd.ctl.request("status")["intervals"]
        wait_for("two intervals with the VMs paused", 120,
                 lambda: hmmvd.ctl.request("status")["intervals"] >= first + 2)
        hmmvd.table()
        return hmmvd.moves(), migs.snapshot()
    finally:
        for vm in vms:
            if resume:
                hmmvd.ctl.request("resume", vm=vm.name)


def managed(hmmvd, vms):
    t = hmmvd.table()
    return bool(t) and all(t.get(vm.name, {}).get("status") == "managed" for vm in vms)


def check_alive(vms, hmmvd):
    for vm in vms:
        if vm.proc.poll() is not None:
            raise Failed(f"{vm.name}: QEMU exited {vm.proc.returncode} mid-run: {vm.lines()[-3:]}")
    if not hmmvd.alive():
        raise Failed(f"hmmvd exited {hmmvd.proc.returncode} mid-run")
