# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmv's trace format (include/hmmv/trace.h) for the co-run scripts: versions 1, 2 and 3,
pages of 4 KiB, every count bounded by the file (a trace is read whole, and an interval that
claims more entries than the trace has pages, or than the file holds, ends the script)."""
import struct

STORED_BIT = 1 << 63    # version 3: the page was stored to in the interval (hit or miss)


def read(path):
    """The trace's version and page count, checked at once, and a generator of its intervals,
    each a list of (page, reads, writes, stored); stored is version 3's bit, else writes > 0."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 32:
        raise SystemExit(f"{path}: too short for an hmmv trace")
    magic, version, shift, nr_pages, _interval_ms, _flags = struct.unpack_from("<8sIIQII", data)
    if magic != b"HMMVTRC1" or version not in (1, 2, 3) or shift != 12:
        raise SystemExit(f"{path}: not an hmmv trace")
    return version, nr_pages, _intervals(path, data, version, nr_pages)


def _intervals(path, data, version, nr_pages):
    header = 32 if version in (2, 3) else 24
    off = 32
    while off < len(data):
        if off + header > len(data):
            raise SystemExit(f"{path}: truncated interval header at {off}")
        n = struct.unpack_from("<I", data, off + 4)[0]
        off += header
        if n > nr_pages or off + 16 * n > len(data):
            raise SystemExit(f"{path}: interval of {n} entries at {off} overruns the trace")
        entries = []
        for page, reads, writes in struct.iter_unpack("<QII", data[off:off + 16 * n]):
            stored = bool(page & STORED_BIT) if version == 3 else writes > 0
            entries.append((page & ~STORED_BIT, reads, writes, stored))
        off += 16 * n
        yield entries
