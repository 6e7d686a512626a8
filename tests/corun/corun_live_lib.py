#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What tests/corun/corun-live records and with what: a setup of tests/corun/setups.json as
VMs (load_setup, workload_args), the parts it runs (the build's hmmvd, guest and the recorder
plugin the QEMU loads), the cache key of a recording (setup_hash), reading traces and serial
lines back, the host's slow NUMA nodes, and a minimal QMP client to start a VM. Imported by
corun-live (its own directory is first on sys.path)."""
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys

# Bump when what a recording holds changes (workload arguments, window, plugin arguments):
# it is part of the cache key.
RECORDING_VERSION = 2   # 2: traces of version 3 (the stored bit)
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SETUPS = os.path.join(SRC, "tests", "corun", "setups.json")
REDIS_IMAGE = os.path.join(SRC, "tests", "corun", "redis-guest", "build-image")
REDIS_KEY_BYTES = 256   # the redis guest's key space: a key a 256 bytes of its footprint
REDIS_RAM_MIB = 192     # the kernel, the initramfs (~20 MiB unpacked) and redis
EXIT_SKIP = 77
BASE_MIB = 6          # the workload window starts here (guest image + 1 MiB Zipf table below)
SLACK_MIB = 2         # RAM above the window (the guest's top 1 MiB is not usable: mem_mib)
NODES = "/sys/devices/system/node"


def skip(why):
    print(f"corun-live: SKIP: {why}")
    sys.exit(EXIT_SKIP)


def die(why):
    raise SystemExit(f"corun-live: FAIL: {why}")


def build_dir():
    return os.environ.get("HMMV_BUILD_DIR") or os.path.join(SRC, "build")


# The recorder built per plugin API: QEMU loads a plugin only inside its own API range
# (7.2: 0-1, 10.0: 2-4), so tests/corun/recorder builds the same source twice.
RECORDERS = ("hmmv-recorder.so", "hmmv-recorder-api4.so")
_recorder = {}


def recorder_for(qemu):
    """The first of RECORDERS that qemu loads (a probe with no arguments loads the module and
    checks its API version before its install refuses: no out=). The first one when qemu is
    missing or has no plugins (main() skips then); fails when qemu refuses every one."""
    d = os.path.join(build_dir(), "tests", "corun", "recorder")
    paths = [os.path.join(d, name) for name in RECORDERS]
    if not qemu or not os.access(qemu, os.X_OK):
        return paths[0]
    if qemu not in _recorder:
        refused = []
        for path in paths:
            if not os.path.exists(path):
                continue
            probe = subprocess.run([qemu, "-M", "none", "-display", "none", "-plugin", path],
                                   capture_output=True, text=True, timeout=60)
            if "requires API version" not in probe.stderr:
                _recorder[qemu] = path
                break
            refused.append(probe.stderr.strip()[:200])
        else:
            if refused:
                die(f"{qemu} loads none of the recorders: " + "; ".join(refused))
            return paths[0]
    return _recorder[qemu]


def parts():
    b = build_dir()
    return {
        "hmmvd": os.path.join(b, "daemon", "hmmvd"),
        "hmmvctl": os.path.join(b, "daemon", "hmmvctl"),
        "guest": os.path.join(b, "tests", "guest", "guest.elf"),
        "plugin": recorder_for(find_qemu()),
    }


def find_qemu():
    qemu = os.environ.get("HMMV_QEMU")
    if not qemu and os.path.exists("/tmp/qemu-ready"):
        with open("/tmp/qemu-ready") as f:
            qemu = f.read().strip()
    return qemu or None


def is_linux(workload):
    return workload == "redis"


def redis_images():
    """The redis guest's image directory (vmlinuz, initrd.gz), built and cached by content."""
    proc = subprocess.run([REDIS_IMAGE], capture_output=True, text=True, timeout=1800)
    if proc.returncode == EXIT_SKIP:
        skip(f"redis guest: {proc.stderr.strip()}")
    if proc.returncode != 0:
        die(f"redis guest images: {REDIS_IMAGE} exited {proc.returncode}: "
            f"{proc.stderr.strip()[-300:]}")
    return proc.stdout.strip()


def workload_args(workload, mib):
    if workload == "redis":
        # redis-benchmark's SET and GET phases on random keys of a space of mib MiB, 4 clients,
        # 16 requests in flight each (-P 16)
        return ("console=ttyS0 quiet panic=-1 no_timer_check "
                f"hmmv.keys={mib * (1 << 20) // REDIS_KEY_BYTES} hmmv.data=64 hmmv.clients=4 "
                "hmmv.requests=20000 hmmv.pipeline=16")
    table = {
        "gups-zipf": "mode=gups dist=zipf",
        "gups-uniform": "mode=gups dist=uniform",
        "kv-95": "mode=kv get_ratio=95",
        "kv-50": "mode=kv get_ratio=50",
        # a hot quarter that moves by its own size every 1M operations (~1-2 s of the
        # recording here: several shifts per run)
        "hotshift": f"mode=hotshift hot_mib={max(1, mib // 4)} shift_every=1000000",
        "stream": "mode=stream",
        "chase": f"mode=chase log_mib={max(1, mib // 16)}",
        "btree": "mode=btree",
    }
    if workload not in table:
        die(f"unknown workload {workload} (known: {', '.join(table)})")
    return f"{table[workload]} mib={mib} base={BASE_MIB << 20:#x}"


def load_setup(name, args=None):
    with open(SETUPS) as f:
        setups = json.load(f)
    if name.startswith("_") or name not in setups:
        die(f"no setup {name} in {SETUPS} (known: "
            f"{', '.join(k for k in setups if not k.startswith('_'))})")
    setup = setups[name]
    vms = setup["vms"]
    if args is not None and args.vms:
        vms = vms[:args.vms]
    intervals = args.intervals if args is not None and args.intervals else setup["intervals"]
    out = []
    for i, vm in enumerate(vms):
        mib = args.mib if args is not None and args.mib else vm["mib"]
        ram_mib = BASE_MIB + mib + SLACK_MIB
        if is_linux(vm["workload"]):
            ram_mib = vm.get("ram_mib", REDIS_RAM_MIB)
        out.append({"name": f"vm{i}", "workload": vm["workload"], "mib": mib,
                    "ram_mib": ram_mib,
                    "append": workload_args(vm["workload"], mib),
                    "weight": vm.get("weight", 100),
                    # the quota hmmv's replay honours (setup.json's dram_min_mib/dram_max_mib)
                    **{k: vm[k] for k in ("dram_min_mib", "dram_max_mib") if k in vm}})
    return setup, out, intervals


def file_digest(h, path):
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def setup_hash(name):
    """What a recording depends on: the setup's entry, how this script records
    (RECORDING_VERSION), the guest, the plugin and the QEMU binary (by path: its cache dir is
    named by its own patch hash)."""
    with open(SETUPS) as f:
        entry = json.load(f).get(name)
    if entry is None:
        die(f"no setup {name} in {SETUPS}")
    h = hashlib.sha256(json.dumps(entry, sort_keys=True).encode())
    h.update(f"recording {RECORDING_VERSION}".encode())
    for key in ("guest", "plugin"):
        path = parts()[key]
        if not os.path.exists(path):
            skip(f"{path} is not built (ninja -C {build_dir()})")
        file_digest(h, path)
    h.update((find_qemu() or "no-qemu").encode())
    if any(is_linux(vm["workload"]) for vm in entry["vms"]):
        proc = subprocess.run([REDIS_IMAGE, "--key"], capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0:
            skip(f"redis guest: {proc.stderr.strip()}")
        h.update(f"redis images {proc.stdout.strip()}".encode())
    return h.hexdigest()[:16]


def trace_intervals(path):
    """The intervals of a trace file, walking its interval headers."""
    with open(path, "rb") as f:
        data = f.read()
    version = struct.unpack_from("<I", data, 8)[0]
    header = 32 if version in (2, 3) else 24
    off, n = 32, 0
    while off + header <= len(data):
        entries = struct.unpack_from("<I", data, off + 4)[0]
        off += header + 16 * entries
        n += 1
    return n if off == len(data) else -1


def serial_ops(path):
    ops = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("HMMV-OPS"):
                kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
                ops.append(int(kv.get("ops", 0)))
    return ops


def slow_nodes():
    """The CPU-less NUMA nodes of this host (a slow tier the numa mover can move pages to)."""
    out = []
    try:
        entries = os.listdir(NODES)
    except OSError:
        return out
    for entry in entries:
        if entry.startswith("node") and entry[4:].isdigit():
            try:
                with open(os.path.join(NODES, entry, "cpulist")) as f:
                    if not f.read().strip():
                        out.append(int(entry[4:]))
            except OSError:
                pass
    return sorted(out)


def kernel_line(path):
    """The figures of demo-kernel.py's `demo: kernel: K=V ...` line in path, or None."""
    try:
        with open(path, errors="replace") as f:
            lines = [l for l in f if l.startswith("demo: kernel: ")]
    except OSError:
        return None
    if not lines:
        return None
    out = {}
    for kv in lines[-1][len("demo: kernel: "):].split():
        k, _, v = kv.partition("=")
        out[k] = float(v) if "." in v else int(v)
    return out


def qemu_has_plugins(qemu):
    probe = subprocess.run([qemu, "-M", "none", "-display", "none", "-plugin",
                            "/nonexistent/hmmv-probe.so"], capture_output=True, text=True,
                           timeout=60)
    return "plugin interface not enabled" not in probe.stderr


class Qmp:
    """corun-live's own QMP monitor on a VM (hmmvd has the other): only to start it."""

    def __init__(self, path, deadline_s=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(deadline_s)
        self.sock.connect(path)
        self.buf = b""
        self.read_reply()                    # the greeting
        self.command("qmp_capabilities")

    def read_reply(self):
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                msg = json.loads(line)
                if "event" not in msg:
                    return msg
            data = self.sock.recv(65536)
            if not data:
                die("QMP closed")
            if len(self.buf) > (1 << 20):
                die("QMP reply over 1 MiB")
            self.buf += data

    def command(self, name):
        self.sock.sendall(json.dumps({"execute": name}).encode() + b"\n")
        reply = self.read_reply()
        if "error" in reply:
            die(f"QMP {name}: {reply['error']}")
        return reply

    def close(self):
        self.sock.close()
