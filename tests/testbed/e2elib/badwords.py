# SPDX-License-Identifier: GPL-2.0-or-later
"""What a bad word of the verify guest (tests/guest/verify.c) holds: its HMMV-VERIFY-CORRUPT
line decoded against the guest's pattern, so a failed data check says at once whether the page
holds its own data of another epoch (a lost or stale write, or the checker's own epoch count:
issue 8's "foreign data" was its epoch 256), another page's data (a page mapped or copied to
the wrong place), zeros, or nothing of the guest's."""
import re

M32 = 0xffffffff
OWN_EPOCHS = 1024     # the own page's word at epochs 0..1023 (a byte wraps at 256)
OTHER_EPOCHS = 8      # other pages' same word at epochs 0..7 (14,336 pages x 8 in the race)
LINE = re.compile(r"HMMV-VERIFY-CORRUPT pfn=(0x[0-9a-f]+) word=(\d+) got=(0x[0-9a-f]+) "
                  r"want=(0x[0-9a-f]+) epoch=(\d+)")


def value(pfn, word, epoch):
    """tests/guest/verify.c value()."""
    x = ((pfn * 0x9e3779b1) ^ (word * 0x85ebca6b) ^ ((epoch + 1) * 0xc2b2ae35)) & M32
    x ^= x >> 15
    x = (x * 0x2c1b3c6d) & M32
    x ^= x >> 12
    return x


def decode(line, first_pfn, pages):
    """One HMMV-VERIFY-CORRUPT line of a guest whose window is pages pages from first_pfn:
    a short phrase saying what the bad word holds, or None for a line that is not one."""
    m = LINE.search(line)
    if not m:
        return None
    pfn, word, got, epoch = int(m[1], 16), int(m[2]), int(m[3], 16), int(m[5])
    if got == 0:
        return "zero"
    own = [e for e in range(OWN_EPOCHS) if value(pfn, word, e) == got]
    if own:
        e = own[0]
        if e % 256 == epoch:
            return f"its own word at epoch {e}, recorded as {epoch} (the checker's epoch byte)"
        behind = (epoch - e) % 256
        if behind <= 128:
            return f"its own word at epoch {e}, not {epoch}: {behind} behind, a stale copy"
        return (f"its own word at epoch {e}, not {epoch}: {256 - behind} ahead, the guest's "
                "epoch byte (in its .bss) is the stale one")
    for w in range(1024):
        if value(pfn, w, epoch) == got:
            return f"its own word {w} at epoch {epoch} (words shifted within the page)"
    for other in range(first_pfn, first_pfn + pages):
        if other == pfn:
            continue
        for e in range(OTHER_EPOCHS):
            if value(other, word, e) == got:
                return f"pfn {other:#x}'s word at epoch {e} (another page's data)"
    return (f"nothing of the guest's (own word at epochs 0-{OWN_EPOCHS - 1}, own page at epoch "
            f"{epoch}, every page of the window at epochs 0-{OTHER_EPOCHS - 1})")
