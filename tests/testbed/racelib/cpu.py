# SPDX-License-Identifier: GPL-2.0-or-later
"""CPU time for the tiering race's cost figures: a process's user and system seconds, its
threads', the kernel threads' (kswapd, kcompactd, kdamond), hmmvd's start-up seen from
outside, perf record of hmmvd, and what exec'ing hmmvd alone costs in the testbed."""
import os
import resource
import subprocess
import threading
import time


def cpu_split(pid):
    """(utime, stime) of pid (all its threads), seconds; (0, 0) when it is gone. A QEMU's
    system time holds the kernel's work in its threads' context: the NUMA hint faults and
    the promotions they do (kernel mode), the dirty-log and move_pages work hmmvd asks of it;
    its user time is the guest's own progress and QEMU's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tck, int(fields[12]) / tck
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def cpu_s(pid):
    """utime + stime of pid (all its threads), seconds; 0 when it is gone."""
    return sum(cpu_split(pid))


def threads_cpu(pid):
    """{thread name: CPU seconds} of pid's threads, the same names summed."""
    out = {}
    tck = os.sysconf("SC_CLK_TCK")
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tck
    except (OSError, ValueError, IndexError):
        pass
    return out


def kthreads(prefixes):
    """pids of the kernel threads whose name starts with one of prefixes."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip().startswith(prefixes):
                        out.append(int(d))
            except OSError:
                pass
    return out


class StartupSampler:
    """hmmvd's start-up, seen from outside every 0.5 s until stop(): its user and system CPU
    seconds, state, the wait channel and system call of its busiest thread (DIR/race-MODE-
    startup.tsv): where the start-up's time goes (36 s and 125 s were seen)."""

    def __init__(self, pid, path, t0):
        self.pid, self.path, self.t0 = pid, path, t0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        tck = os.sysconf("SC_CLK_TCK")
        with open(self.path, "w") as out:
            out.write("t\tutime\tstime\tthreads\tbusiest_tid\tstate\twchan\tsyscall\n")
            while not self.done.wait(0.5):
                rows = []
                try:
                    for tid in os.listdir(f"/proc/{self.pid}/task"):
                        base = f"/proc/{self.pid}/task/{tid}"
                        with open(f"{base}/stat") as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                        rows.append((int(fields[11]) + int(fields[12]), tid, fields[0],
                                     int(fields[11]), int(fields[12]), base))
                except (OSError, ValueError, IndexError):
                    if not os.path.exists(f"/proc/{self.pid}"):
                        return
                    continue
                if not rows:
                    continue
                top = max(rows)
                try:
                    with open(f"{top[5]}/wchan") as f:
                        wchan = f.read().strip() or "-"
                    with open(f"{top[5]}/syscall") as f:
                        syscall = f.read().split()[0]
                except OSError:
                    wchan = syscall = "?"
                out.write(f"{time.monotonic() - self.t0:.1f}\t"
                          f"{sum(r[3] for r in rows) / tck:.2f}\t"
                          f"{sum(r[4] for r in rows) / tck:.2f}\t{len(rows)}\t{top[1]}\t"
                          f"{top[2]}\t{wchan}\t{syscall}\n")
                out.flush()

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)


class Perf:
    """perf record of one process (cpu-clock: TCG has no PMU) until stop(); report() writes
    perf report's views, made in the testbed (its kernel's symbols), to DIR/perf-MODE.txt."""

    def __init__(self, opts, mode, pid):
        self.data = os.path.join(opts.out_dir, f"perf-{mode}.data")
        self.txt = os.path.join(opts.out_dir, f"perf-{mode}.txt")
        self.proc = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "199", "-g",
                                      "-p", str(pid), "-o", self.data],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def report(self):
        with open(self.txt, "w") as out:
            for sort in ("comm,dso", "comm,dso,sym"):
                out.write(f"### perf report --no-children --sort {sort}\n")
                out.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                                "-g", "none", "--percent-limit", "0.5", "--sort", sort],
                               stdout=out, stderr=subprocess.STDOUT)
            out.write("### perf report --children (callers, caller graph to 2%)\n")
            out.flush()
            subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--children",
                            "-g", "caller,2,callee", "--percent-limit", "2", "--sort", "comm,sym"],
                           stdout=out, stderr=subprocess.STDOUT)


def exec_cost(hmmvd):
    """Wall and CPU seconds of `hmmvd --version` (exec, dynamic linking, exit), 3 times, in
    the testbed before the VMs start: the part of hmmvd's start-up that is not hmmvd's."""
    out = []
    for _ in range(3):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.monotonic()
        subprocess.run([hmmvd, "--version"], capture_output=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.append(f"{time.monotonic() - t:.2f}s wall/"
                   f"{r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime:.2f}s cpu")
    return ", ".join(out)
