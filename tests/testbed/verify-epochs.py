#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The data check does not report its own epoch wrap as corruption: the test guest's
mode=verify, alone under QEMU (nothing moves its pages), rewrites each page of a 1 MiB window
about 300 times and must end with no bad word and exit 0 (QEMU status 1).

A page's epoch is one byte. Until 2026-12-03 the guest wrote a page's 256th epoch as value(p,
w, 256) and recorded 0, so the page read as wholly foreign data: the tiering race's guests
reported it after ~26-28 M writes (issue 8; BENCHMARKS.md, "The race of 2026-12-03 morning").
That guest fails here with all 256 pages (262,144 words) bad.

usage: verify-epochs.py GUEST_ELF     (QEMU: $HMMV_QEMU, else Debian's qemu-system-x86_64)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

PAGES = 256          # hot_mib=1, cold_mib=0: the window
REWRITES = 300 * PAGES  # rewrite_every=1: every write rewrites a page, so some page gets >= 300


def main():
    guest = sys.argv[1]
    qemu = os.environ.get("HMMV_QEMU") or shutil.which("qemu-system-x86_64")
    if not qemu or not os.path.exists(guest):
        print(f"SKIP: no QEMU ({qemu}) or no guest ({guest})")
        return 77
    work = tempfile.mkdtemp(prefix="hmmv-epochs.")
    log = os.path.join(work, "serial.log")
    # verify_every far above writes: no sweep, every check is a rewrite's (and the last sweep)
    proc = subprocess.Popen(
        [qemu, "-accel", "tcg", "-M", "pc", "-m", "16", "-display", "none",
         "-nic", "none", "-monitor", "none", "-serial", f"file:{log}",
         "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", guest,
         "-append", f"mode=verify base=4M hot_mib=1 cold_mib=0 rewrite_every=1 "
                    f"verify_every=1000000 writes={REWRITES} report_every=0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            rc = proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            print("FAIL: the guest did not finish in 240 s")
            return 1
        out = open(log, errors="replace").read()
        end = re.search(r"HMMV-VERIFY-END writes=(\d+) verified_pages=(\d+) corrupt_pages=(\d+) "
                        r"corrupt_words=(\d+)", out)
        bad = re.findall(r"HMMV-VERIFY-CORRUPT .*", out)
        print(f"verify-epochs: {REWRITES} rewrites of {PAGES} pages; QEMU exit {rc}; "
              f"{end.group(0) if end else 'no END line'}; first bad words: {bad[:3]}")
        if not end:
            print(f"FAIL: no HMMV-VERIFY-END line: {out[-300:]}")
            return 1
        writes, verified, pages, words = (int(x) for x in end.groups())
        # every write checked its page whole, then the last sweep checked every page once
        if writes != REWRITES or verified != REWRITES + PAGES:
            print(f"FAIL: {writes} writes and {verified} pages checked, not {REWRITES} and "
                  f"{REWRITES + PAGES}")
            return 1
        if pages or words or bad or rc != 1:
            print("FAIL: the guest reported its own rewrites as corruption")
            return 1
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
