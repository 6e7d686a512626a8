#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How much memory move_pages(2) really gets on a nearly full node 0 (issue 8, zonefree).

Inside the testbed only (it changes the guest's THP setting, drops its caches and reserves
huge pages on node 0):
  tests/testbed/testbed run --layout 2node --kernel 6.12 --mem 2048 --keep-out DIR -- \
      python3 tests/testbed/zonefree-2026-12-03/probe.py [TRIALS]

THP off first, as tiering-race.py does (the kernel recomputes min_free_kbytes). Then, each
trial: node 0 is taken down with 2 MiB hugetlb pages to about SLACK_MIB above what the rule
of libhmmv/topology-free.c keeps back, SOURCE_MIB of anonymous memory is written on node 1,
and moved to node 0 with move_pages(2), BATCH pages a call, until a call fails with ENOMEM
(or all moved). The pages that reached node 0 (a status query) are compared with the rule's
prediction from /proc/zoneinfo read just before the moves: per zone of node 0,
max(0, free - min - protection[Movable]); and with MemFree, what hmmvd counted before.
/proc/zoneinfo is saved whole at boot (after THP off) to $TESTBED_OUT/zoneinfo-KERNEL.txt,
and node 0's zones at each failure are printed."""
import ctypes
import os
import sys
import time

PAGE = 4096
SYS_MOVE_PAGES, SYS_MBIND = 279, 237
MPOL_BIND, MPOL_MF_MOVE = 2, 1 << 1
ENOMEM = 12
SLACK_MIB = 24
SOURCE_MIB = 64
BATCH = 64

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long)
libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def zones(text, node):
    """[(name, free, min, low, high, protection list)] of node's zones, in order."""
    out, cur = [], None
    for line in text.splitlines():
        w = line.replace(",", " ").replace("(", " ").replace(")", " ").split()
        if line.startswith("Node "):
            cur = None
            if int(w[1]) == node:
                cur = {"name": w[3]}
                out.append(cur)
        elif cur is None:
            continue
        elif w[:2] == ["pages", "free"]:
            cur["free"] = int(w[2])
        elif len(w) == 2 and w[0] in ("min", "low", "high") and w[0] not in cur:
            cur[w[0]] = int(w[1])
        elif w and w[0] == "protection:":
            cur["prot"] = [int(x) for x in w[1:]]
    return out


def predict(zs, mark="min"):
    movable = [z["name"] for z in zs].index("Movable")
    return sum(max(0, z["free"] - z[mark] - z["prot"][movable]) for z in zs)


def kept_back(zs):
    """Pages of node 0's free count the rule says move_pages cannot take."""
    return sum(z["free"] for z in zs) - predict(zs)


def memfree_pages(node):
    for line in read(f"/sys/devices/system/node/node{node}/meminfo").splitlines():
        if "MemFree:" in line:
            return int(line.split()[3]) // 4
    raise SystemExit("no MemFree")


def huge(node, n=None):
    path = f"/sys/devices/system/node/node{node}/hugepages/hugepages-2048kB/nr_hugepages"
    if n is not None:
        write(path, str(n))
    return int(read(path))


def source(mib):
    size = mib << 20
    addr = libc.mmap(None, size, 3, 0x22, -1, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise SystemExit("mmap failed")
    mask = ctypes.c_ulong(1 << 1)
    if libc.syscall(ctypes.c_long(SYS_MBIND), ctypes.c_void_p(addr), ctypes.c_ulong(size),
                    ctypes.c_int(MPOL_BIND), ctypes.byref(mask), ctypes.c_ulong(64),
                    ctypes.c_uint(0)) != 0:
        raise SystemExit(f"mbind: errno {ctypes.get_errno()}")
    ctypes.memset(addr, 1, size)
    return addr, size


def move(addrs, node):
    n = len(addrs)
    pages = (ctypes.c_void_p * n)(*addrs)
    nodes = (ctypes.c_int * n)(*([node] * n)) if node is not None else None
    status = (ctypes.c_int * n)()
    rc = libc.syscall(ctypes.c_long(SYS_MOVE_PAGES), ctypes.c_long(0), ctypes.c_ulong(n),
                      pages, nodes, status, ctypes.c_int(MPOL_MF_MOVE))
    return rc, ctypes.get_errno(), list(status)


def show(zs):
    movable = [z["name"] for z in zs].index("Movable")
    return "; ".join(f"{z['name']} free {z['free']} min {z['min']} low {z['low']} "
                     f"prot {z['prot'][movable]}" for z in zs)


def trial(k):
    zs = zones(read("/proc/zoneinfo"), 0)
    target = kept_back(zs) + (SLACK_MIB << 8)
    before = huge(0)
    for _ in range(3):
        free = memfree_pages(0)
        if free <= target + 512:
            break
        huge(0, huge(0) + (free - target) // 512)
        write("/proc/sys/vm/drop_caches", "3")
        write("/proc/sys/vm/compact_memory", "1")
        time.sleep(1)
    addr, size = source(SOURCE_MIB)
    addrs = [addr + i * PAGE for i in range(size // PAGE)]
    time.sleep(1)
    zs = zones(read("/proc/zoneinfo"), 0)
    p_min, p_low, memfree = predict(zs), predict(zs, "low"), memfree_pages(0)
    first_fail, calls = None, 0
    for i in range(0, len(addrs), BATCH):
        rc, err, _ = move(addrs[i:i + BATCH], 0)
        calls += 1
        if rc != 0:
            first_fail = (rc, err)
            break
    at_fail = zones(read("/proc/zoneinfo"), 0)
    _, _, where = move(addrs, None)
    moved = sum(1 for s in where if s == 0)
    print(f"trial {k}: before the moves: MemFree {memfree} pages, rule (min) {p_min}, "
          f"(low) {p_low}; {show(zs)}")
    print(f"trial {k}: moved {moved} pages to node 0 in {calls} calls, first failure "
          f"{first_fail} (rc, errno); moved - rule(min) = {moved - p_min}, "
          f"MemFree - moved = {memfree - moved}")
    print(f"trial {k}: at the failure: MemFree {memfree_pages(0)}, rule (min) "
          f"{predict(at_fail)}; {show(at_fail)}")
    libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))
    huge(0, before)
    time.sleep(1)


def main():
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    kernel = os.environ.get("TESTBED_KERNEL", os.uname().release)
    write("/sys/kernel/mm/transparent_hugepage/enabled", "never")
    time.sleep(2)
    text = read("/proc/zoneinfo")
    out = os.environ.get("TESTBED_OUT")
    if out:
        write(os.path.join(out, f"zoneinfo-{kernel}.txt"), text)
    print(f"kernel {os.uname().release}; min_free_kbytes {read('/proc/sys/vm/min_free_kbytes').strip()}; "
          f"lowmem_reserve_ratio {read('/proc/sys/vm/lowmem_reserve_ratio').split()}; "
          f"swap {read('/proc/swaps').count(chr(10)) - 1} device(s)")
    for k in range(trials):
        trial(k)


if __name__ == "__main__":
    main()
