#!/usr/bin/env python3
"""End-to-end check of the hmmv write export of a patched QEMU.

Boots tests/guest/guest.elf under the patched QEMU, starts the export into
a sealable memfd passed with getfd, paces the guest phase by phase over its serial port, and checks
that the pages the export reports inside the guest's test window are
exactly the pages the guest says it wrote.  Also checks the region header,
query-hmmv, query-hmmv-ramblocks, HMP "info hmmv", the layout-change path
(object-add/object-del of a memory backend) and hmmv-stop.

    qemu-patches/check-export.py --qemu "$(qemu-patches/build.sh)" \\
        --guest build/tests/guest/guest.elf [--accel kvm --dirty-ring 4096]

Exit status: 0 all checks passed, 1 a check failed, 77 the host lacks
something (e.g. /dev/kvm).  Needs only the Python standard library.
"""

import argparse
import fcntl
import json
import mmap
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

# include/hmmv/shm-abi.h
HMMV_SHM_MAGIC = 0x4D48532D564D4D48
HEADER_FMT = "<QIIQIIQIIIIQQQQQQQQQQ"
HEADER_FIELDS = (
    "magic abi_version header_size region_size page_shift desc_size "
    "desc_offset nr_blocks max_blocks qemu_pid interval_ms flags "
    "layout_generation seq generation start_ns last_publish_ns "
    "publications pages_published last_dirty_pages last_duration_ns"
).split()
GEN_INDEX = HEADER_FIELDS.index("generation")
BLOCK_FMT = "<192sQQQQQQQII"
BLOCK_FIELDS = (
    "id host_addr used_length max_length page_size bitmap_offset "
    "bitmap_words pages_published flags reserved"
).split()
F_ACTIVE = 1 << 0
F_LAYOUT_STALE = 1 << 1
F_SOURCE = {"tcg": 1 << 8, "kvm-dirty-ring": 1 << 9, "kvm-dirty-log": 1 << 10}
BLOCK_F_GONE = 1 << 0

assert struct.calcsize(HEADER_FMT) == 136
assert struct.calcsize(BLOCK_FMT) == 256


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)
    print(f"ok: {what}")


class QMP:
    def __init__(self, path, timeout=60):
        self.sock = connect_unix(path)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile("rw")
        self.events = []
        json.loads(self.file.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise CheckFailed(f"QMP connection closed during {name}")
            reply = json.loads(line)
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def ok(self, name, **args):
        reply = self.cmd(name, **args)
        if "error" in reply:
            raise CheckFailed(f"{name} failed: {reply['error']}")
        return reply["return"]


class Serial:
    """Line reader over the guest's COM1 (a QEMU socket chardev)."""

    def __init__(self, path, log, timeout):
        self.sock = connect_unix(path)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.log = log

    def readline(self):
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                raise CheckFailed("timed out waiting for the guest") from None
            if not data:
                raise CheckFailed("guest serial closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode(errors="replace").rstrip("\r")
        self.log.write(text + "\n")
        self.log.flush()
        return text

    def expect(self, prefix):
        """Read lines up to one starting with prefix; return all of them."""
        lines = []
        while True:
            line = self.readline()
            lines.append(line)
            if line.startswith("HMMV-ERROR"):
                raise CheckFailed(f"guest error: {line}")
            if line.startswith(prefix):
                return lines

    def poke(self):
        self.sock.sendall(b"g")


def connect_unix(path):
    deadline = time.monotonic() + 10
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


F_SEAL_SHRINK = 0x0002
F_SEAL_GROW = 0x0004


def pass_fd(qmp, fd, fdname):
    """getfd: the fd travels with the command's bytes (SCM_RIGHTS)."""
    msg = json.dumps({"execute": "getfd",
                      "arguments": {"fdname": fdname}}) + "\n"
    socket.send_fds(qmp.sock, [msg.encode()], [fd])
    reply = json.loads(qmp.file.readline())
    while "event" in reply:
        reply = json.loads(qmp.file.readline())
    check("return" in reply, f"getfd {fdname}")


class Region:
    """The mapped shared-memory region (read/clear like the daemon)."""

    def __init__(self, fd):
        self.map = mmap.mmap(fd, 0)

    def header(self):
        values = struct.unpack_from(HEADER_FMT, self.map, 0)
        return dict(zip(HEADER_FIELDS, values))

    def block(self, slot):
        hdr = self.header()
        off = hdr["desc_offset"] + slot * hdr["desc_size"]
        values = struct.unpack_from(BLOCK_FMT, self.map, off)
        desc = dict(zip(BLOCK_FIELDS, values))
        desc["id"] = desc["id"].split(b"\0", 1)[0].decode()
        return desc

    def harvest(self, slot, clear=True):
        """Set bits of a block's bitmap as page numbers; clear them.

        Not atomic: only valid while QEMU does not publish, i.e. with
        interval-ms 0 between hmmv-sync calls, as this script runs it.
        """
        desc = self.block(slot)
        off, words = desc["bitmap_offset"], desc["bitmap_words"]
        check_bounds = off + words * 8 <= len(self.map)
        if not check_bounds:
            raise CheckFailed(f"block {slot} bitmap outside the region")
        pages = set()
        raw = self.map[off:off + words * 8]
        for w, (word,) in enumerate(struct.iter_unpack("<Q", raw)):
            if word:
                for bit in range(64):
                    if word >> bit & 1:
                        pages.add(w * 64 + bit)
        if clear and pages:
            self.map[off:off + words * 8] = bytes(words * 8)
        return pages


def parse_phase_pages(lines):
    pages = set()
    for line in lines:
        m = re.match(r"HMMV-PHASE-RANGE \d+ first_pfn=(0x[0-9a-f]+) "
                     r"count=(\d+) stride=(\d+)", line)
        if m:
            first, count, stride = int(m[1], 16), int(m[2]), int(m[3])
            pages.update(first + i * stride for i in range(count))
        elif line.startswith("HMMV-PHASE-PAGES"):
            pages.update(int(tok, 16) for tok in line.split()[2:])
    return pages


def run(args):
    if args.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable")
        return 77
    tmp = tempfile.mkdtemp(prefix="hmmv-check-")
    qmp_path = os.path.join(tmp, "qmp.sock")
    ser_path = os.path.join(tmp, "serial.sock")
    log = open(os.path.join(tmp, "serial.log"), "w")
    accel = args.accel
    if args.accel == "kvm" and args.dirty_ring:
        accel += f",dirty-ring-size={args.dirty_ring}"
    append = (f"phases={args.phases} pages={args.pages} "
              f"pattern={args.pattern} stride={args.stride} span={args.span} "
              f"seed={args.seed} base={args.base} wait=1")
    cmd = [args.qemu, "-S", "-accel", accel, "-M", "pc", "-m", "256",
           "-display", "none", "-nic", "none", "-monitor", "none",
           "-qmp", f"unix:{qmp_path},server=on,wait=off",
           "-chardev", f"socket,id=ser0,path={ser_path},server=on,wait=off",
           "-serial", "chardev:ser0",
           "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
           "-kernel", args.guest, "-append", append]
    print("running:", " ".join(cmd))
    qemu = subprocess.Popen(cmd)
    try:
        return check_export(args, qemu, qmp_path, ser_path, log)
    finally:
        if qemu.poll() is None:
            qemu.kill()
        qemu.wait()
        print(f"serial log: {log.name}")
        log.close()


def check_export(args, qemu, qmp_path, ser_path, log):
    qmp = QMP(qmp_path)
    serial = Serial(ser_path, log, args.timeout)
    if args.start_after_boot:
        # This host's (paravirtual) KVM stalls the boot firmware while any
        # global dirty logging runs, calc-dirty-rate included: start the
        # export once the guest waits for its first phase.
        qmp.ok("cont")
        serial.expect("HMMV-WAIT phase 0")

    before = qmp.ok("query-hmmv")
    check(before["active"] is False, "query-hmmv: inactive before start")
    err = qmp.cmd("hmmv-sync")
    check("error" in err, "hmmv-sync refused while inactive")
    err = qmp.cmd("hmmv-start", **{"interval-ms": 0})
    check("error" in err, "hmmv-start refused without fdname")
    # A memfd QEMU cannot seal, and a plain file, are refused.
    for what, fd in (("unsealable memfd", os.memfd_create("hmmv-check-ns")),
                     ("regular file", os.open(tempfile.gettempdir(),
                                              os.O_TMPFILE | os.O_RDWR))):
        pass_fd(qmp, fd, "bad")
        err = qmp.cmd("hmmv-start", fdname="bad", **{"interval-ms": 0})
        check("error" in err, f"hmmv-start refuses a {what}: "
              f"{err.get('error', {}).get('desc')}")
        os.close(fd)

    memfd = os.memfd_create("hmmv-check", os.MFD_ALLOW_SEALING)
    pass_fd(qmp, memfd, "region")
    qmp.ok("hmmv-start", fdname="region", **{"interval-ms": 0})
    st = os.fstat(memfd)
    seals = fcntl.fcntl(memfd, fcntl.F_GET_SEALS)
    check(seals & (F_SEAL_SHRINK | F_SEAL_GROW) == F_SEAL_SHRINK | F_SEAL_GROW,
          "QEMU sealed the region against shrinking and growing")
    try:
        os.ftruncate(memfd, 4096)
        check(False, "truncating the region fails")
    except PermissionError:
        check(True, "truncating the region fails (EPERM)")
    err = qmp.cmd("hmmv-start", fdname="region", **{"interval-ms": 0})
    check("error" in err, "second hmmv-start refused")

    region = Region(memfd)
    os.close(memfd)
    hdr = region.header()
    info = qmp.ok("query-hmmv")
    source = info["source"]
    check(hdr["magic"] == HMMV_SHM_MAGIC, "header magic")
    check(hdr["abi_version"] == 1 and hdr["header_size"] == 4096
          and hdr["desc_size"] == 256 and hdr["page_shift"] == 12,
          "header version and sizes")
    check(hdr["region_size"] == st.st_size == info["size"],
          "region size matches file and query-hmmv")
    check(hdr["qemu_pid"] == qemu.pid, "header qemu_pid")
    check(hdr["flags"] & F_ACTIVE and hdr["flags"] & F_SOURCE[source],
          f"header flags ACTIVE and source {source}")
    check(hdr["seq"] % 2 == 0 and hdr["generation"] == 0,
          "seq even, generation 0")
    check(hdr["nr_blocks"] == info["blocks"] <= hdr["max_blocks"],
          "nr_blocks")
    expected_source = "tcg" if args.accel == "tcg" else (
        "kvm-dirty-ring" if args.dirty_ring else "kvm-dirty-log")
    check(source == expected_source, f"source is {expected_source}")

    blocks = qmp.ok("query-hmmv-ramblocks")
    ram = [b for b in blocks if b["name"] == "pc.ram"]
    check(len(ram) == 1 and ram[0]["tracked"], "pc.ram is tracked")
    ram = ram[0]
    slot = ram["index"]
    desc = region.block(slot)
    check(desc["id"] == "pc.ram" and desc["host_addr"] == ram["host-address"]
          and desc["used_length"] == ram["used-length"],
          "descriptor matches query-hmmv-ramblocks")
    check(desc["bitmap_offset"] % 4096 == 0 and desc["bitmap_words"] ==
          (ram["max-length"] // 4096 + 63) // 64, "bitmap placement")
    for b in blocks:
        if b["tracked"]:
            d = region.block(b["index"])
            check(d["id"] == b["name"][:191], f"slot {b['index']} is {d['id']}")

    def pfn_to_bit(pfn):
        gpa = pfn << 12
        for r in ram["ranges"]:
            if r["gpa"] <= gpa < r["gpa"] + r["size"]:
                return (gpa - r["gpa"] + r["offset"]) >> 12
        raise CheckFailed(f"pfn {pfn:#x} is not in pc.ram")

    base_pfn = int(args.base, 0) >> 12
    if args.pattern == "seq":
        window = (args.phases * args.pages - 1) * args.stride + 1
    else:
        window = args.span
    window_bits = {pfn_to_bit(p) for p in range(base_pfn, base_pfn + window)}

    if not args.start_after_boot:
        qmp.ok("cont")
    generation = 0
    for k in range(args.phases):
        if k > 0 or not args.start_after_boot:
            serial.expect(f"HMMV-WAIT phase {k}")
        qmp.ok("hmmv-sync")
        generation += 1
        region.harvest(slot)  # drop whatever happened before the phase
        serial.poke()
        lines = serial.expect(f"HMMV-PHASE-END {k}")
        written = parse_phase_pages(lines)
        check(len(written) > 0, f"phase {k}: guest listed {len(written)} "
              "pages")
        res = qmp.ok("hmmv-sync")
        generation += 1
        hdr = region.header()
        check(res["generation"] == generation == hdr["generation"],
              f"phase {k}: generation {generation}")
        check(hdr["seq"] % 2 == 0 and hdr["last_dirty_pages"] ==
              res["dirty-pages"], f"phase {k}: seq even, counters match")
        got = region.harvest(slot)
        expected = {pfn_to_bit(p) for p in written}
        in_window = got & window_bits
        missing = expected - in_window
        extra = in_window - expected
        check(not missing, f"phase {k}: all {len(expected)} written pages "
              f"reported (missing {sorted(missing)[:8]})")
        check(not extra, f"phase {k}: no other page of the window reported "
              f"(extra {sorted(extra)[:8]})")
        print(f"    phase {k}: {len(got)} pc.ram pages reported, "
              f"{len(got - window_bits)} outside the window (guest stack, "
              f"serial buffers), sync took {res['duration-us']} us")
    serial.expect("HMMV-DONE")
    serial.expect("HMMV-WAIT exit")

    # A second sync with a paused guest reports (almost) nothing.
    qmp.ok("stop")
    qmp.ok("hmmv-sync")
    region.harvest(slot)
    res = qmp.ok("hmmv-sync")
    check(res["dirty-pages"] == 0, "paused guest: nothing new to publish")
    qmp.ok("cont")

    # Layout change: a new memory backend is a new RAMBlock.
    layout0 = region.header()["layout_generation"]
    qmp.ok("object-add", **{"qom-type": "memory-backend-ram", "id": "hmmvx",
                            "size": 4 << 20})
    hdr = region.header()
    info = qmp.ok("query-hmmv")
    check(hdr["layout_generation"] > layout0 and hdr["flags"] & F_LAYOUT_STALE
          and info["layout-stale"], "object-add: layout generation bumped, "
          "LAYOUT_STALE set")
    qmp.ok("object-del", id="hmmvx")
    ev = [e for e in qmp.events if e["event"] == "HMMV_LAYOUT_CHANGED"]
    if not ev:
        qmp.ok("query-status")  # let pending events arrive
        ev = [e for e in qmp.events if e["event"] == "HMMV_LAYOUT_CHANGED"]
    check(len(ev) >= 1, "HMMV_LAYOUT_CHANGED emitted")

    hmp = qmp.ok("human-monitor-command", **{"command-line": "info hmmv"})
    check("hmmv export: active" in hmp and "pc.ram" in hmp,
          "HMP info hmmv")
    print("    " + hmp.replace("\n", "\n    "))

    qmp.ok("hmmv-stop")
    hdr = region.header()
    check(not hdr["flags"] & F_ACTIVE, "hmmv-stop clears ACTIVE")
    check(qmp.ok("query-hmmv")["active"] is False, "query-hmmv: inactive")

    # Timer-paced publication, into an fd passed with getfd this time.
    memfd = os.memfd_create("hmmv-check", os.MFD_ALLOW_SEALING)
    try:
        pass_fd(qmp, memfd, "hmmvfd")
        qmp.ok("hmmv-start", fdname="hmmvfd", **{"interval-ms": 50})
        info = qmp.ok("query-hmmv")
        check(info.get("fdname") == "hmmvfd" and info["interval-ms"] == 50,
              "query-hmmv: fdname and interval")
        time.sleep(0.6)
        fdmap = mmap.mmap(memfd, 0)
        values = struct.unpack_from(HEADER_FMT, fdmap, 0)
        hdr = dict(zip(HEADER_FIELDS, values))
        check(hdr["magic"] == HMMV_SHM_MAGIC and hdr["interval_ms"] == 50
              and hdr["region_size"] == len(fdmap), "fd region header")
        check(hdr["generation"] >= 5, "timer publishes every 50 ms "
              f"({hdr['generation']} publications in 0.6 s)")
        qmp.ok("hmmv-stop")
        gen = struct.unpack_from(HEADER_FMT, fdmap, 0)[GEN_INDEX]
        time.sleep(0.2)
        check(struct.unpack_from(HEADER_FMT, fdmap, 0)[GEN_INDEX] == gen,
              "no publication after hmmv-stop")
        fdmap.close()
    finally:
        os.close(memfd)

    serial.poke()  # let the guest leave through isa-debug-exit
    rc = qemu.wait(timeout=args.timeout)
    check(rc == 1, f"guest exited through isa-debug-exit (status {rc})")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qemu", required=True, help="patched qemu-system-x86_64")
    ap.add_argument("--guest", required=True, help="tests/guest guest.elf")
    ap.add_argument("--accel", choices=["tcg", "kvm"], default="tcg")
    ap.add_argument("--dirty-ring", type=int, default=0,
                    help="KVM dirty ring size (0: dirty log)")
    ap.add_argument("--phases", type=int, default=3)
    ap.add_argument("--pages", type=int, default=256)
    ap.add_argument("--pattern", choices=["seq", "random"], default="seq")
    ap.add_argument("--stride", type=int, default=1)
    ap.add_argument("--span", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--base", default="0x1000000")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--start-after-boot", action="store_true",
                    help="hmmv-start once the guest is up (default with "
                    "--accel kvm), not before the firmware runs")
    args = ap.parse_args()
    if args.accel == "kvm":
        args.start_after_boot = True
    try:
        return run(args)
    except CheckFailed as e:
        print(f"FAIL: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
