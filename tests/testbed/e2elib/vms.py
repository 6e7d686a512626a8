# SPDX-License-Identifier: GPL-2.0-or-later
"""The nested VMs: the patched QEMU running the verify guest (tests/guest)."""
import os
import re
import subprocess

from e2elib.badwords import decode
from e2elib.common import Failed


class Vm:
    def __init__(self, name, work, qemu, guest, mem_mib, hot_mib, cold_mib, shift_every, extra,
                 cpus=None, report_every=None):
        self.name = name
        self.mem_mib = mem_mib
        self.qmp = os.path.join(work, f"{name}.qmp")
        self.serial = os.path.join(work, f"{name}.serial")
        self.log = os.path.join(work, f"{name}.log")
        for end in ("in", "out"):
            os.mkfifo(f"{self.serial}.{end}")
        cmdline = (f"mode=verify base=4M hot_mib={hot_mib} cold_mib={cold_mib} hot_ratio=98 "
                   f"shift_every={shift_every} report_every={report_every or shift_every // 4} "
                   f"seed={1 + sum(map(ord, name))}")
        args = [qemu, "-accel", "tcg", "-M", "pc", "-m", str(mem_mib), "-display", "none",
                "-nic", "none", "-monitor", "none", "-no-reboot",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-chardev", f"pipe,id=ser,path={self.serial}", "-serial", "chardev:ser",
                "-qmp", f"unix:{self.qmp},server=on,wait=off",
                "-kernel", guest, "-append", cmdline] + extra
        if cpus is not None:   # its socket: QEMU's first touch allocates on that node
            args = ["taskset", "-c", cpus] + args
        self.node_counts = {}
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log + ".qemu", "w"))
        # the guest's lines, copied to a file by cat (it ends when QEMU closes the FIFO)
        self.reader = subprocess.Popen(["cat", f"{self.serial}.out"],
                                       stdout=open(self.log, "w"))
        # held open so QEMU's read end never sees EOF before 'q'
        self.tx = os.open(f"{self.serial}.in", os.O_RDWR)

    def lines(self):
        """The guest's complete lines so far: a line still arriving on the serial port is
        left out (a HMMV-VERIFY-BEGIN read without its fields failed a race's start)."""
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return text[:text.rfind("\n") + 1].splitlines()

    def last(self, prefix):
        found = [l for l in self.lines() if l.startswith(prefix)]
        return found[-1] if found else None

    def shifts(self):
        """The guest's hot-set shifts so far (HMMV-VERIFY-SHIFT lines): the events hmmvd's
        moves follow, counted instead of seconds (the guests slow down with the load)."""
        return sum(1 for l in self.lines() if l.startswith("HMMV-VERIFY-SHIFT"))

    def figures(self, line):
        return {k: int(v, 0) for k, v in re.findall(r"(\w+)=(0x[0-9a-f]+|\d+)", line or "")}

    def began(self):
        if self.last("HMMV-VERIFY-BEGIN"):
            return True
        if self.proc.poll() is not None:
            raise Failed(f"{self.name}: QEMU exited {self.proc.returncode}: {self.lines()[-3:]}")
        return False

    def bad_words(self, limit=8):
        """The guest's first limit HMMV-VERIFY-CORRUPT lines, each with what the word holds
        (e2elib/badwords.py: its own data of another epoch, another page's, zeros, none)."""
        begin = self.figures(self.last("HMMV-VERIFY-BEGIN"))
        first = begin.get("base_pfn", 0)
        pages = begin.get("hot_pages", 0) + begin.get("cold_pages", 0)
        bad = [l for l in self.lines() if l.startswith("HMMV-VERIFY-CORRUPT")][:limit]
        return [f"{l}: {decode(l, first, pages)}" for l in bad]

    def quit(self):
        os.write(self.tx, b"q")

    def stop(self):
        for p in (self.proc, self.reader):
            if p.poll() is None:
                p.kill()
                p.wait()
