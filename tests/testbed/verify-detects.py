#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The testbed's data check can fail: the test guest's mode=verify, running under QEMU, has one
word of a cold page overwritten from outside (through /proc/PID/mem of QEMU, where a broken
page move would do it) and must report exactly that word and exit 3 (QEMU status 7).

usage: verify-detects.py GUEST_ELF     (QEMU: $HMMV_QEMU, else Debian's qemu-system-x86_64)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from e2elib.badwords import value   # tests/guest/verify.c value()

MIB = 1 << 20


def main():
    guest = sys.argv[1]
    qemu = os.environ.get("HMMV_QEMU") or shutil.which("qemu-system-x86_64")
    if not qemu or not os.path.exists(guest):
        print(f"SKIP: no QEMU ({qemu}) or no guest ({guest})")
        return 77
    if os.geteuid() != 0:
        print("SKIP: needs root (/proc/PID/mem of QEMU)")
        return 77
    work = tempfile.mkdtemp(prefix="hmmv-verify.")
    log = os.path.join(work, "serial.log")
    mem_mib, base_pfn, hot_mib, cold_mib = 48, 0x400, 4, 36
    proc = subprocess.Popen(
        [qemu, "-accel", "tcg", "-M", "pc", "-m", str(mem_mib), "-display", "none",
         "-nic", "none", "-monitor", "none", "-serial", f"file:{log}",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", guest,
         "-append", f"mode=verify base=4M hot_mib={hot_mib} cold_mib={cold_mib} "
                    "hot_ratio=100 writes=1000000 report_every=500000"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(log) or \
                "HMMV-VERIFY-BEGIN" not in open(log, errors="replace").read():
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"FAIL: the guest did not start: {open(log).read()[-300:]}")
                return 1
            time.sleep(0.2)
        # guest RAM: QEMU's anonymous mapping of exactly -m bytes; below 4 GiB gpa = offset
        ram = None
        for line in open(f"/proc/{proc.pid}/maps"):
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if hi - lo == mem_mib * MIB and f[1].startswith("rw") and len(f) == 5:
                ram = lo
        if ram is None:
            print("FAIL: no guest RAM mapping of QEMU found")
            return 1
        # a cold page (hot_ratio=100: never written after the fill, still at epoch 0)
        pfn, word = base_pfn + hot_mib * 256 + 1234, 5
        with open(f"/proc/{proc.pid}/mem", "r+b", buffering=0) as mem:
            addr = ram + pfn * 4096 + word * 4
            mem.seek(addr)
            got = int.from_bytes(mem.read(4), "little")
            if got != value(pfn, word, 0):
                print(f"FAIL: pfn {pfn:#x} word {word} holds {got:#x}, not {value(pfn, word, 0):#x}:"
                      " the model of the guest's pattern is wrong")
                return 1
            mem.seek(addr)
            mem.write((got ^ 0x00010000).to_bytes(4, "little"))
        rc = proc.wait(timeout=300)
        out = open(log, errors="replace").read()
        bad = re.findall(r"HMMV-VERIFY-CORRUPT pfn=(0x[0-9a-f]+) word=(\d+) got=(0x[0-9a-f]+)", out)
        end = re.search(r"HMMV-VERIFY-END .*corrupt_pages=(\d+) corrupt_words=(\d+)", out)
        print(f"verify-detects: flipped one bit of pfn {pfn:#x} word {word}; QEMU exit {rc}; "
              f"reported {bad[:3]}; {end.group(0) if end else 'no END line'}")
        ok = (rc == 7 and bad and int(bad[0][0], 16) == pfn and int(bad[0][1]) == word
              and int(bad[0][2], 16) == got ^ 0x00010000 and end and int(end.group(1)) >= 1)
        if not ok:
            print("FAIL: the guest did not report exactly the overwritten word")
            return 1
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
