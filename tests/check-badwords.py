#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tests/testbed/e2elib/badwords.py names what a bad word of the verify guest holds: the
tiering race's first bad word (tests/testbed/race-2026-12-03-rescan/ab/serial-vm0.log, printed
by the guest before 751c3cc) is its own word at epoch 256 recorded as 0 (issue 8); a stale
epoch, another page's word, a word shifted within its page, zeros and a flipped bit are each
named as such.

usage: check-badwords.py SOURCE_ROOT"""
import os
import sys


def line(pfn, word, got, want_epoch, value):
    return (f"HMMV-VERIFY-CORRUPT pfn={pfn:#x} word={word} got={got:#x} "
            f"want={value(pfn, word, want_epoch):#x} epoch={want_epoch}")


def main():
    root = sys.argv[1]
    sys.path.insert(0, os.path.join(root, "tests", "testbed"))
    from e2elib.badwords import decode, value

    first, pages = 0x400, 14336   # the race's window: base 4 MiB, 8 + 48 MiB
    with open(os.path.join(root, "tests", "testbed", "race-2026-12-03-rescan", "ab",
                           "serial-vm0.log")) as f:
        race = next(l for l in f if l.startswith("HMMV-VERIFY-CORRUPT")).strip()
    pfn, w = 0x1234, 77
    cases = [
        (race, "its own word at epoch 256, recorded as 0"),
        (line(pfn, w, value(pfn, w, 3), 5, value), "its own word at epoch 3, not 5: 2 behind, a stale copy"),
        (line(pfn, w, value(pfn, w, 6), 5, value), "its own word at epoch 6, not 5: 1 ahead"),
        (line(pfn, w, value(pfn, w, 250), 2, value), "its own word at epoch 250, not 2: 8 behind"),
        (line(pfn, w, value(0x2000, w, 1), 5, value), "pfn 0x2000's word at epoch 1"),
        (line(pfn, w, value(pfn, 78, 5), 5, value), "its own word 78 at epoch 5"),
        (line(pfn, w, 0, 5, value), "zero"),
        (line(pfn, w, value(pfn, w, 5) ^ 0x10000, 5, value), "nothing of the guest's"),
    ]
    failed = 0
    for text, expect in cases:
        got = decode(text, first, pages)
        ok = got is not None and got.startswith(expect)
        print(f"{'ok' if ok else 'FAIL'}: {text.split(' ', 1)[1]}: {got}")
        failed += not ok
    if decode("HMMV-VERIFY-PROGRESS writes=1", first, pages) is not None:
        print("FAIL: a progress line decoded as a bad word")
        failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
