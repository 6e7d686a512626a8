#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The redis guest (issue 12) end to end, suite 'integration': Debian's kernel with the
initramfs of tests/corun/redis-guest/build-image boots under TCG with the trace recorder
(start=mark); the guest's redis-server under redis-benchmark reports HMMV-OPS lines. Checks,
by events only: REPORTS reports come, the total grows from the first report to the last, a q
on the serial port ends the guest (HMMV-WL-END, QEMU exits 0 through the guest's poweroff),
the recorder saw the start mark after the boot's instructions, and the trace is whole
(its intervals' instructions add up to the stats') with pages written in it.

  check-redis-guest.py PLUGIN...     (the recorder per plugin API, as check-recorder.py)

QEMU: $HMMV_PLUGIN_QEMU, $HMMV_QEMU (the patched build), else Debian's qemu-system-x86_64,
the first with plugin support. Exit 0 pass, 1 fail, 77 skip (no QEMU with plugins, no
redis-tools or busybox-static, no kernel from apt: the reason is printed).
"""
import importlib.util
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPORTS = 4
RAM_MIB = 192
LIVENESS_S = 900     # a guard against a hung guest (no next line), not a speed limit


def load_recorder_check():
    spec = importlib.util.spec_from_file_location(
        "check_recorder", os.path.join(HERE, "..", "recorder", "check-recorder.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fail(why):
    print(f"FAIL: {why}")
    sys.exit(1)


def main():
    rec = load_recorder_check()
    plugins = [os.path.abspath(p) for p in sys.argv[1:]]
    if not plugins:
        raise SystemExit("usage: check-redis-guest.py PLUGIN...")
    qemu = rec.plugin_qemu()
    plugin = rec.plugin_for(qemu, plugins)
    img = subprocess.run([os.path.join(HERE, "build-image")], capture_output=True, text=True)
    if img.returncode == 77:
        print(img.stderr.strip())
        sys.exit(77)
    if img.returncode != 0:
        fail(f"build-image exited {img.returncode}: {img.stderr.strip()[-400:]}")
    images = img.stdout.strip()
    print(f"# QEMU {qemu}, plugin {os.path.basename(plugin)}, images {images}")
    with tempfile.TemporaryDirectory(prefix="hmmv-redis-guest-") as work:
        trace, stats = os.path.join(work, "redis.trace"), os.path.join(work, "stats.json")
        cmd = [qemu, "-accel", "tcg", "-M", "pc", "-m", str(RAM_MIB), "-display", "none",
               "-nic", "none", "-monitor", "none", "-no-reboot", "-serial", "stdio",
               "-plugin", f"{plugin},out={trace},stats={stats},ram_mib={RAM_MIB},"
                          "interval_insns=20000000,start=mark",
               "-kernel", os.path.join(images, "vmlinuz"),
               "-initrd", os.path.join(images, "initrd.gz"),
               "-append", "console=ttyS0 quiet panic=-1 no_timer_check hmmv.keys=20000"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=open(os.path.join(work, "qemu.log"), "w"))
        serial, ops, end, buf = [], [], None, b""
        try:
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            sent_q = False
            while end is None:
                if not sel.select(LIVENESS_S):
                    fail(f"no serial output in {LIVENESS_S} s; last lines: {serial[-5:]}")
                data = os.read(proc.stdout.fileno(), 65536)
                if not data:
                    fail(f"QEMU closed the serial port (exit {proc.wait()}); "
                         f"last lines: {serial[-5:]}")
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode(errors="replace").strip()
                    serial.append(text)
                    if text.startswith("HMMV-ERROR"):
                        fail(f"the guest says {text}")
                    if text.startswith("HMMV-OPS"):
                        kv = dict(w.split("=", 1) for w in text.split()[1:])
                        ops.append((int(kv["second"]), int(kv["ops"]), int(kv["total"])))
                        print(f"# {text}", flush=True)
                    if text.startswith("HMMV-WL-END"):
                        end = text
                if len(ops) >= REPORTS and not sent_q:
                    proc.stdin.write(b"q")
                    proc.stdin.flush()
                    sent_q = True
            rc = proc.wait(timeout=LIVENESS_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        print(f"# {end}; QEMU exited {rc}")
        ok = True
        if rc != 0:
            print(f"FAIL: QEMU exited {rc} (the guest powers off: 0)")
            ok = False
        first, last = ops[0], ops[-1]
        if not (last[2] > first[2] and [o[0] for o in ops] == list(range(1, len(ops) + 1))):
            print(f"FAIL: no progress over the reports, or reports out of order: {ops}")
            ok = False
        else:
            print(f"ok: {len(ops)} reports, total {first[2]} -> {last[2]} commands")
        with open(stats) as f:
            st = json.load(f)
        nr_pages, intervals = rec.read_trace(trace)
        written = set()
        for _, pages in intervals:
            written.update(p for p, (_, w, _) in pages.items() if w)
        print(f"# recorder: {st['insns_before_start']} instructions before the mark (boot, "
              f"loading the keys), {st['instructions']} after in {len(intervals)} intervals, "
              f"{st['llc_misses']} LLC misses of {st['accesses']} accesses, "
              f"{len(written)} pages written")
        if not (st["ok"] and st["start"] == "mark" and st["started"]
                and st["insns_before_start"] > 0 and st["instructions"] > 0):
            print(f"FAIL: the recorder did not start at the mark: {st}")
            ok = False
        elif not (nr_pages == RAM_MIB * 256 and len(intervals) == st["intervals"]
                  and sum(i for i, _ in intervals) == st["instructions"] and written):
            print(f"FAIL: the trace is not whole: {len(intervals)} intervals, stats {st}")
            ok = False
        else:
            print("ok: the trace starts at the mark and is whole")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
