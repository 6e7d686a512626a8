# SPDX-License-Identifier: GPL-2.0-or-later
"""The tiering race's nested VMs: the e2e VM with frequent progress lines, where its hot set
and cold data lie in QEMU's memory (layout), its writes and bad words so far, its hot-set
shifts as they come (ShiftWatch); started, filled and laid out together, and checked page by
page at the end."""
import os
import shutil
import subprocess
import threading
import time

from e2elib.common import PAGE, Failed, say, wait_for
from e2elib.vms import Vm


class RaceVm(Vm):
    def __init__(self, name, work, qemu, guest, opts, cpus=None, extra=()):
        # the e2e VM with frequent progress lines and a static hot set, or one that shifts
        # every --shift-every writes
        super().__init__(name, work, qemu, guest, opts.mem_mib, opts.hot_mib, opts.cold_mib,
                         opts.shift_every, list(extra), cpus=cpus,
                         report_every=opts.report_every)
        self.hot = self.cold = None
        self.watch = ShiftWatch(self)

    def stop(self):
        self.watch.stop()
        super().stop()

    def layout(self):
        """Host addresses of the hot set and the cold data: QEMU's RAM mapping (pc machine,
        one block from GPA 0 under 3.5 GiB) from /proc/PID/maps, and the guest's pfns."""
        begin = self.figures(self.last("HMMV-VERIFY-BEGIN"))
        size = self.mem_mib << 20
        found = []
        with open(f"/proc/{self.proc.pid}/maps") as f:
            for line in f:
                parts = line.split()
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                if parts[1].startswith("rw") and len(parts) < 6 and hi - lo >= size:
                    found.append((hi - lo, lo))
        if not found:
            raise Failed(f"{self.name}: no {self.mem_mib} MiB mapping in QEMU")
        base = min(found)[1]
        first = begin["base_pfn"]
        self.hot = [base + (first + i) * PAGE for i in range(begin["hot_pages"])]
        self.cold = [base + (first + begin["hot_pages"] + i) * PAGE
                     for i in range(begin["cold_pages"])]
        # the shifting hot set's windows (the guest moves it by hot_pages, wrapping at the
        # window's end: --cold-mib a multiple of --hot-mib keeps the windows aligned) and
        # the RAM around them, as probe ranges (address, pages): the VM's RAM on DRAM
        self.first, self.hot_pages = first, begin["hot_pages"]
        total = begin["hot_pages"] + begin["cold_pages"]
        self.windows = [(base + (first + w) * PAGE, self.hot_pages)
                        for w in range(0, total, self.hot_pages)]
        ram_pages = size // PAGE
        self.around = [(a, n) for a, n in ((base, first),
                                           (base + (first + total) * PAGE,
                                            ram_pages - first - total)) if n > 0]

    def writes(self, field="writes"):
        """The guest's writes (or another count: verified_pages) at its last complete
        progress line (the serial copy is read while cat writes it: a torn last line read
        as a small count, seen 2026-12-02)."""
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().split("\n")[:-1]   # the piece after the last \n is torn
        except FileNotFoundError:
            return 0
        found = [l for l in lines if l.startswith("HMMV-VERIFY-PROGRESS")]
        return self.figures(found[-1]).get(field, 0) if found else 0

    def corrupt_words(self):
        """Bad words the guest has found so far: its last progress line's corrupt_words, or
        more when it reported HMMV-VERIFY-CORRUPT lines after it (so a mode's summary says
        whether the guest saw a bad word during that mode)."""
        try:
            with open(self.log, errors="replace") as f:
                lines = f.read().split("\n")[:-1]
        except FileNotFoundError:
            return 0
        found = [l for l in lines if l.startswith("HMMV-VERIFY-PROGRESS")]
        words = self.figures(found[-1]).get("corrupt_words", 0) if found else 0
        return max(words, sum(1 for l in lines if l.startswith("HMMV-VERIFY-CORRUPT")))


class ShiftWatch:
    """A guest's hot-set shifts as they come: its serial log's HMMV-VERIFY-SHIFT lines, read
    every 0.2 s by a thread, each stamped with time.monotonic() when read (the probe's clock):
    which window is hot when. Before its first shift the hot set is the window's first
    hot_pages (the guest starts there)."""

    def __init__(self, vm):
        self.vm, self.pos, self.rest = vm, 0, b""
        self.events = []    # (t, hot_first_pfn)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def poll(self):
        try:
            with open(self.vm.log, "rb") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            return
        now = time.monotonic()
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()    # a line still arriving
        for line in lines:
            if line.startswith(b"HMMV-VERIFY-SHIFT"):
                pfn = self.vm.figures(line.decode(errors="replace")).get("hot_first_pfn")
                if pfn is not None:
                    self.events.append((now, pfn))

    def run(self):
        while not self.done.wait(0.2):
            self.poll()

    def stop(self):
        self.done.set()
        self.thread.join(timeout=10)


def check_alive(vms):
    for vm in vms:
        if vm.proc.poll() is not None:
            raise Failed(f"{vm.name}: QEMU exited {vm.proc.returncode} mid-run: "
                         f"{vm.lines()[-3:]}")


def start_vms(opts, work, qemu, vms):
    """--vms fresh VMs (their QEMUs new processes) into vms (so the caller stops the ones
    started when this fails), filled and laid out."""
    os.makedirs(work, exist_ok=True)
    for i in range(opts.vms):
        vms.append(RaceVm(f"vm{i}", work, qemu, opts.guest, opts))
    for vm in vms:
        wait_for(f"{vm.name}: the guest filled its memory", opts.fill_deadline, vm.began)
        vm.layout()


def finish_vms(vms, opts, tag):
    """The guests' last act: every page checked ('q'); fails on any bad one. Their serial
    lines are copied to DIR/serial-NAME{tag}.log."""
    for vm in vms:
        vm.quit()
    for vm in vms:
        try:
            vm.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise Failed(f"{vm.name}: no end within 600 s of 'q'")
        vm.reader.wait(timeout=60)
        shutil.copy(vm.log, os.path.join(opts.out_dir, f"serial-{vm.name}{tag}.log"))
        end = vm.figures(vm.last("HMMV-VERIFY-END"))
        if not end or end.get("corrupt_pages", 1) or vm.proc.returncode != 1:
            for line in vm.bad_words():
                say(f"race: {vm.name}: {line}")
            raise Failed(f"{vm.name}: data check: {vm.last('HMMV-VERIFY-END')} "
                         f"(QEMU exit {vm.proc.returncode}; 1 = ok)")
        say(f"race: {vm.name}{tag}: verified_pages={end['verified_pages']} corrupt=0")
