#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What the write export costs a TCG guest inside its own QEMU, apart from hmmvd (issue 8).

One VM of the patched QEMU ($HMMV_QEMU, TCG, natively: no testbed) runs the tiering race's
guest (tests/guest mode=verify, 64 MiB, an 8 MiB static hot set, 48 MiB cold, 98% of the
writes to the hot set, every write checking a word first) and, in one run, phases of
--seconds each alternate:

  off     nothing attached to QEMU's QMP socket: no export
  track   `hmmvctl track --interval-ms 500` (QEMU publishes every 500 ms, hmmvd's default
          interval, and the tracker harvests each publication): the export's dirty logging
          at hmmvd's cadence, never paused, and no daemon
  hmmvd   hmmvd standalone (--qmp), [reads] source = none, mover sim (no page moves): the
          same export with hmmvd's own cadence, i.e. paused 7 intervals in 8 while the VM
          is settled (the coarse watch; README, "reads")

Each phase's figures are over its window from --settle seconds to its end: the guest's
writes a second (its progress lines), QEMU's user and system CPU seconds a second
(/proc/PID/stat, all threads), the guest's writes per QEMU CPU second (what a mechanism
costs the guest inside its own CPU time: on a shared host the CPU QEMU gets swings with the
load, its work per CPU second far less) and the agent's CPU s a second (hmmvctl or hmmvd).
Each tracked phase is also given as ratios to the mean of the `off` phases beside it.
One line a phase ("export: phase=..."), the ratios ("ratio: ..."), DIR/export-cost.tsv.

usage: export-cost.py --build BUILD [--rounds 3] [--seconds 60] [--settle 10] [--out-dir DIR]
needs HMMV_QEMU (the patched QEMU 10.0); exit 77 without it.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testbed"))
from e2elib.common import Failed, say, skip, wait_for  # noqa: E402
from e2elib.daemon import Hmmvd  # noqa: E402
from e2elib.vms import Vm  # noqa: E402

PHASES = ("off", "track", "hmmvd")


def cpu_split(pid):
    """(utime, stime) of pid, all its threads, seconds; (0, 0) when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tck, int(fields[12]) / tck
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def writes(vm):
    """The guest's writes at its last complete progress line."""
    found = [l for l in vm.lines() if l.startswith("HMMV-VERIFY-PROGRESS")]
    return vm.figures(found[-1]).get("writes", 0) if found else 0


def rates(a, b):
    """Rates between two samples (t, writes, qemu user, qemu sys, agent cpu)."""
    dt = b[0] - a[0]
    cpu = (b[2] - a[2]) + (b[3] - a[3])
    return dict(window_s=f"{dt:.0f}",
                writes_per_s=f"{(b[1] - a[1]) / dt:.0f}",
                qemu_user_per_s=f"{(b[2] - a[2]) / dt:.3f}",
                qemu_sys_per_s=f"{(b[3] - a[3]) / dt:.3f}",
                qemu_cpu_per_s=f"{cpu / dt:.3f}",
                writes_per_qemu_cpu_s=f"{(b[1] - a[1]) / cpu:.0f}" if cpu > 0 else "n/a",
                agent_cpu_per_s=f"{(b[4] - a[4]) / dt:.3f}")


RATIO_KEYS = ("writes_per_s", "qemu_user_per_s", "qemu_sys_per_s", "qemu_cpu_per_s",
              "writes_per_qemu_cpu_s")


def ratios(results):
    """Each tracked phase against the mean of the nearest `off` phase before and after it."""
    offs = [i for i, r in enumerate(results) if r["phase"].split(".")[0] == "off"]
    out = []
    for i, r in enumerate(results):
        if r["phase"].split(".")[0] == "off":
            continue
        near = [j for j in (max([j for j in offs if j < i], default=None),
                            min([j for j in offs if j > i], default=None)) if j is not None]
        if not near:
            continue
        line = dict(phase=r["phase"], against=",".join(results[j]["phase"] for j in near))
        for k in RATIO_KEYS:
            try:
                ref = sum(float(results[j][k]) for j in near) / len(near)
                line[k] = f"{float(r[k]) / ref:.3f}" if ref > 0 else "n/a"
            except (KeyError, ValueError):
                line[k] = "n/a"
        out.append(line)
    return out


def agent_start(phase, opts, work, vm):
    """The phase's agent (None for off): hmmvctl track, or hmmvd over the VM."""
    if phase == "track":
        log = open(os.path.join(work, "track.log"), "w")
        return subprocess.Popen([os.path.join(opts.build, "daemon", "hmmvctl"), "track",
                                 "--qmp", vm.qmp, "--interval-ms", "500"],
                                stdout=subprocess.DEVNULL, stderr=log)
    if phase == "hmmvd":
        conf = os.path.join(work, "hmmvd.conf")
        with open(conf, "w") as f:
            f.write("[memory]\nmover = sim\n[reads]\nsource = none\n")
        sock = os.path.join(work, "hmmvd.sock")
        h = Hmmvd.started(sock, [os.path.join(opts.build, "daemon", "hmmvd"), "--foreground",
                                 "--config", conf, "--no-libvirt", "--interval-ms", "500",
                                 "--control-socket", sock, "--qmp", f"{vm.name}={vm.qmp}"],
                          os.path.join(work, f"hmmvd.{time.monotonic():.0f}.log"))
        wait_for("hmmvd manages the VM", 60,
                 lambda: (h.table() or {}).get(vm.name, {}).get("status") == "managed")
        return h
    return None


def agent_stop(agent):
    """Stops the agent (by its pid: SIGTERM, so tracking ends with hmmv-stop)."""
    if agent is None:
        return ""
    if isinstance(agent, Hmmvd):
        t = agent.table() or {}
        note = ",".join(f"{k}:{v}" for k, v in next(iter(t.values()), {}).items()
                        if k in ("watch", "writes-paused", "plans-kept-total", "intervals"))
        agent.stop()
        return note
    agent.terminate()
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    return f"exit:{agent.returncode}"


def agent_cpu(agent):
    if agent is None:
        return 0.0
    return sum(cpu_split(agent.proc.pid if isinstance(agent, Hmmvd) else agent.pid))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="hmmv's build directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--settle", type=int, default=10)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--out-dir", default=None)
    opts = ap.parse_args()
    qemu = os.environ.get("HMMV_QEMU", "")
    if not qemu or not os.access(qemu, os.X_OK):
        skip("no patched QEMU (HMMV_QEMU)")
    guest = os.path.join(opts.build, "tests", "guest", "guest.elf")
    phases = opts.phases.split(",")
    if not set(phases) <= set(PHASES) or opts.settle >= opts.seconds:
        ap.error(f"--phases: of {','.join(PHASES)}; --settle below --seconds")
    work = tempfile.mkdtemp(prefix="hmmv-export-cost.")
    vm = None
    results = []
    try:
        vm = Vm("vm0", work, qemu, guest, 64, 8, 48, 0, [], report_every=20000)
        wait_for("the guest filled its memory", 300, vm.began)
        order = [p for _ in range(opts.rounds) for p in phases] + ["off"]
        for n, phase in enumerate(order):
            name = phase if phase not in order[:n] else f"{phase}.{order[:n].count(phase) + 1}"
            t0 = time.monotonic()
            agent = agent_start(phase, opts, work, vm)
            time.sleep(max(0.0, t0 + opts.settle - time.monotonic()))

            def sample():
                u, s = cpu_split(vm.proc.pid)
                return (time.monotonic(), writes(vm), u, s, agent_cpu(agent))
            a = sample()
            time.sleep(max(0.0, t0 + opts.seconds - time.monotonic()))
            b = sample()
            note = agent_stop(agent)
            if vm.proc.poll() is not None:
                raise Failed(f"QEMU exited {vm.proc.returncode}: {vm.lines()[-3:]}")
            r = dict(phase=name, **rates(a, b), load=os.getloadavg()[0])
            if note:
                r["agent"] = note
            results.append(r)
            say("export: " + " ".join(f"{k}={v}" for k, v in r.items()))
        vm.quit()
        vm.proc.wait(timeout=300)
        end = vm.figures(vm.last("HMMV-VERIFY-END"))
        if not end or end.get("corrupt_pages", 1):
            raise Failed(f"data check: {vm.last('HMMV-VERIFY-END')}")
        say(f"export: verified_pages={end['verified_pages']} corrupt=0")
    finally:
        if vm:
            vm.stop()
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        print("export: " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    for r in ratios(results):
        print("ratio: " + " ".join(f"{k}={v}" for k, v in r.items()), flush=True)
    if opts.out_dir:
        os.makedirs(opts.out_dir, exist_ok=True)
        keys = list(dict.fromkeys(k for r in results for k in r))
        with open(os.path.join(opts.out_dir, "export-cost.tsv"), "w") as f:
            f.write("\t".join(keys) + "\n")
            for r in results:
                f.write("\t".join(str(r.get(k, "")) for k in keys) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        say(f"FAIL: {e}")
        sys.exit(1)
