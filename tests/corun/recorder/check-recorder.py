#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The co-run trace recorder (hmmv-recorder.so, issue 12) in a real QEMU under TCG: the
test guest writes (mode=phases) or reads and writes (mode=reads) a known page set, and the
pages the trace shows missing the LLC inside the guest's window are exactly that set, reads
and writes apart; the intervals' instructions add up to the stats file's; with start=mark
only the pages written after the guest's start mark (mark=2: phase 2's) are in the trace.

  check-recorder.py PLUGIN... GUEST_ELF

QEMU: $HMMV_PLUGIN_QEMU, else $HMMV_QEMU, else qemu-system-x86_64 on PATH, the first that
supports -plugin (the patched 7.2 build has no plugins until it is built with
--enable-plugins; Debian's 7.2 has them). Exit 77 with the reason when none does.
PLUGIN...: the recorder built against each plugin API (hmmv-recorder.so, API 1, for 7.2;
hmmv-recorder-api4.so, API 4, for 10.0); the first whose API version that QEMU loads is used.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

BASE_PFN = 0x1000   # the guest's default window, 16 MiB
RAM_MIB = 64
TIMEOUT = 600       # a liveness guard, not a speed limit


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def plugin_qemu():
    candidates = [os.environ.get("HMMV_PLUGIN_QEMU"), os.environ.get("HMMV_QEMU"),
                  shutil.which("qemu-system-x86_64")]
    tried = []
    for qemu in candidates:
        if not qemu or not os.access(qemu, os.X_OK):
            continue
        probe = subprocess.run([qemu, "-M", "none", "-display", "none",
                                "-plugin", "/nonexistent/hmmv-probe.so"],
                               capture_output=True, text=True, timeout=60)
        if "plugin interface not enabled" in probe.stderr:
            tried.append(f"{qemu}: no plugin support")
            continue
        return qemu
    skip("no QEMU with TCG plugin support (" + "; ".join(tried or ["none found"]) + ")")


def plugin_for(qemu, plugins):
    """The first of plugins whose API version qemu accepts. A probe with no arguments loads
    the module and checks its qemu_plugin_version before calling its install (which then
    refuses: no out= or ram_mib=), so QEMU's "requires API version" is the only refusal that
    says the version is wrong."""
    refused = []
    for plugin in plugins:
        probe = subprocess.run([qemu, "-M", "none", "-display", "none", "-plugin", plugin],
                               capture_output=True, text=True, timeout=60)
        if "requires API version" in probe.stderr:
            refused.append(probe.stderr.strip())
            continue
        return plugin
    raise SystemExit(f"FAIL: {qemu} loads none of the recorders: " + "; ".join(refused))


def read_trace(path):
    """The v3 trace as a list of (instructions, {page: (reads, writes, stored)})."""
    with open(path, "rb") as f:
        data = f.read()
    magic, version, shift, nr_pages, interval_ms, flags = struct.unpack_from("<8sIIQII", data)
    assert magic == b"HMMVTRC1" and version == 3 and shift == 12, (magic, version, shift)
    assert flags == 7, flags
    off, intervals = 32, []
    while off < len(data):
        imagic, n, _compute, index, insns = struct.unpack_from("<IIQQQ", data, off)
        assert imagic == 0x56544E49 and index == len(intervals), (imagic, index)
        off += 32
        pages = {}
        for i in range(n):
            page, reads, writes = struct.unpack_from("<QII", data, off + 16 * i)
            stored, page = bool(page >> 63), page & ~(1 << 63)
            assert page < nr_pages
            pages[page] = (reads, writes, stored)
        off += 16 * n
        intervals.append((insns, pages))
    return nr_pages, intervals


def run(qemu, plugin, guest, append, work, name, extra=""):
    trace = os.path.join(work, name + ".trace")
    stats = os.path.join(work, name + ".json")
    cmd = [qemu, "-accel", "tcg", "-M", "pc", "-m", str(RAM_MIB), "-display", "none",
           "-nic", "none", "-serial", "stdio", "-monitor", "none",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-plugin", f"{plugin},out={trace},stats={stats},ram_mib={RAM_MIB},"
                      "interval_insns=2000000" + extra,
           "-kernel", guest, "-append", append]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode != 1:   # isa-debug-exit code 0
        print(proc.stdout, proc.stderr)
        raise SystemExit(f"FAIL: {append}: QEMU exited {proc.returncode}")
    with open(stats) as f:
        st = json.load(f)
    nr_pages, intervals = read_trace(trace)
    assert st["ok"] and st["intervals"] == len(intervals), st
    assert sum(i for i, _ in intervals) == st["instructions"], st
    assert nr_pages == RAM_MIB * 256
    return proc.stdout, intervals, st


def window_sets(intervals, lo, hi, stored=None):
    """Pages in [lo, hi) with read misses, with write misses; stored (a set) gets those
    with the stored bit."""
    reads, writes = set(), set()
    for _, pages in intervals:
        for page, (r, w, s) in pages.items():
            if lo <= page < hi:
                if r:
                    reads.add(page)
                if w:
                    writes.add(page)
                if s and stored is not None:
                    stored.add(page)
    return reads, writes


def check(what, got, want):
    missing, extra = sorted(want - got), sorted(got - want)
    print(f"{'ok' if not missing and not extra else 'FAIL'}: {what}: {len(want)} pages "
          f"expected, {len(got)} recorded, {len(missing)} missing, {len(extra)} extra")
    if missing or extra:
        print(f"  missing {[hex(p) for p in missing[:8]]} extra {[hex(p) for p in extra[:8]]}")
        return False
    return True


def main():
    plugins = [os.path.abspath(p) for p in sys.argv[1:-1]]
    guest = os.path.abspath(sys.argv[-1])
    qemu = plugin_qemu()
    plugin = plugin_for(qemu, plugins)
    print(f"# QEMU {qemu}, plugin {os.path.basename(plugin)}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="hmmv-recorder-") as work:
        span = 4096
        out, intervals, st = run(qemu, plugin, guest,
                                 f"phases=2 pages=500 pattern=random span={span} seed=5",
                                 work, "phases")
        written = set()
        for line in out.splitlines():
            if line.startswith("HMMV-PHASE-PAGES"):
                written.update(int(w, 16) for w in line.split()[2:])
        print(f"# phases: {st['instructions']} instructions, {len(intervals)} intervals, "
              f"{st['llc_misses']} misses of {st['accesses']} accesses, "
              f"{st['dropped']} dropped, {st['io_accesses']} I/O")
        stored = set()
        reads, writes = window_sets(intervals, BASE_PFN, BASE_PFN + span, stored)
        ok &= check("phases: pages written", writes, written)
        ok &= check("phases: pages stored to (the stored bit)", stored, written)
        ok &= check("phases: pages read", reads, set())

        out, intervals, st = run(qemu, plugin, guest,
                                 "mode=reads read_pages=512 read_chunk=64 read_stride=128 "
                                 "write_pages=128 write_ratio=10 accesses=300000 seed=9",
                                 work, "reads")
        begin = next(l for l in out.splitlines() if l.startswith("HMMV-READS-BEGIN"))
        kv = dict(w.split("=", 1) for w in begin.split()[1:])
        base, wfirst = int(kv["base_pfn"], 16), int(kv["write_first_pfn"], 16)
        want_reads = {base + k * 128 + i for k in range(512 // 64) for i in range(64)}
        want_writes = set(range(wfirst, wfirst + 128))
        print(f"# reads: {st['instructions']} instructions, {len(intervals)} intervals, "
              f"{st['llc_misses']} misses of {st['accesses']} accesses")
        stored = set()
        reads, writes = window_sets(intervals, BASE_PFN, wfirst + 128 + 1024, stored)
        ok &= check("reads: pages read", reads, want_reads)
        ok &= check("reads: pages written", writes, want_writes)
        ok &= check("reads: pages stored to (the stored bit)", stored, want_writes)

        # start=mark: nothing before the guest's start mark (before phase 2 here) is recorded
        out, intervals, st = run(qemu, plugin, guest,
                                 f"phases=3 pages=400 pattern=random span={span} seed=7 mark=2",
                                 work, "mark", ",start=mark")
        by_phase = {}
        for line in out.splitlines():
            if line.startswith("HMMV-PHASE-PAGES"):
                words = line.split()
                by_phase.setdefault(int(words[1]), set()).update(int(w, 16) for w in words[2:])
        print(f"# mark: {st['insns_before_start']} instructions before the mark, "
              f"{st['instructions']} after, {len(intervals)} intervals")
        if not (st["start"] == "mark" and st["started"] and st["insns_before_start"] > 0
                and "HMMV-MARK 2" in out):
            print(f"FAIL: mark: the start mark was not seen: {st}")
            ok = False
        reads, writes = window_sets(intervals, BASE_PFN, BASE_PFN + span)
        ok &= check("mark: pages written after the mark (phase 2 only)", writes, by_phase[2])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
