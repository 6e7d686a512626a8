#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How long QEMU holds its monitor (and the BQL) for hmmv-start, by guest RAM size (issue 9).

    qemu-start-hold.py [--sync-after-ms MS] QEMU GUEST_ELF RAM_GIB CYCLES [PERF_DATA]

Boots the test guest (tests/guest, idle: phases=1 pages=1 wait=1) under TCG with RAM_GIB of
guest RAM (above 4 GiB a memory-backend-ram with reserve=off, so 1 TiB starts on a small host,
and phys-bits=42), then CYCLES times: a fresh memfd (MFD_ALLOW_SEALING) passed with getfd,
hmmv-start (interval-ms 0), three hmmv-sync, hmmv-stop. Prints each QMP round trip (wall
clock: QEMU's own time under the BQL plus the socket) and each hmmv-sync's duration-us and
dirty-pages, then the median start and the median first hmmv-sync. With --sync-after-ms, the
first hmmv-sync comes MS after hmmv-start returned (hmmvd's first harvest comes an interval,
1000 ms by default, after its start), otherwise at once. With PERF_DATA, `perf record -g` of QEMU covers the
cycles. A figure, not a test: nothing is asserted. Stops QEMU (by its pid) on every exit.
"""
import array
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def main():
    argv = sys.argv[1:]
    sync_after_ms = 0
    if argv[:1] == ['--sync-after-ms'] and len(argv) > 1:
        sync_after_ms = int(argv[1])
        argv = argv[2:]
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    qemu, guest, gib, cycles = argv[0], argv[1], int(argv[2]), int(argv[3])
    perf = argv[4] if len(argv) == 5 else None
    tmp = tempfile.mkdtemp(prefix='hmmv-start-hold.')
    qsock, serial = tmp + '/qmp', tmp + '/serial'
    mib = gib * 1024
    args = [qemu, '-accel', 'tcg', '-M', 'pc', '-m', str(mib), '-display', 'none',
            '-nic', 'none', '-serial', 'file:' + serial, '-monitor', 'none',
            '-qmp', 'unix:%s,server=on,wait=off' % qsock,
            '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-kernel', guest,
            '-append', 'phases=1 pages=1 wait=1']
    if mib > 4096:
        args += ['-object', 'memory-backend-ram,id=bench-ram,size=%dM,reserve=off' % mib,
                 '-machine', 'memory-backend=bench-ram', '-cpu', 'qemu64,phys-bits=42']
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    try:
        run(proc, qsock, serial, gib, cycles, perf, sync_after_ms)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run(proc, qsock, serial, gib, cycles, perf, sync_after_ms):
    for _ in range(300):
        if os.path.exists(qsock):
            break
        time.sleep(0.1)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(qsock)
    reader = sock.makefile('r')

    def cmd(name, arguments=None, fds=None):
        msg = {'execute': name}
        if arguments is not None:
            msg['arguments'] = arguments
        data = json.dumps(msg).encode()
        if fds:
            sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds))])
        else:
            sock.sendall(data)
        while True:
            reply = json.loads(reader.readline())
            if 'event' in reply:
                continue
            if 'error' in reply:
                sys.exit('%s: %s' % (name, reply['error']))
            return reply['return']

    json.loads(reader.readline())
    cmd('qmp_capabilities')
    for _ in range(600):
        if os.path.exists(serial) and b'HMMV-GUEST-READY' in open(serial, 'rb').read():
            break
        time.sleep(0.1)
    else:
        sys.exit('the guest did not come up')
    recorder = None
    if perf:
        recorder = subprocess.Popen(['perf', 'record', '-g', '-p', str(proc.pid), '-o', perf],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    starts, first_syncs = [], []
    for i in range(cycles):
        fd = os.memfd_create('hmmv-start-hold', os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
        try:
            cmd('getfd', {'fdname': 'region'}, [fd])
            t0 = time.monotonic()
            cmd('hmmv-start', {'fdname': 'region', 'interval-ms': 0})
            starts.append(1000 * (time.monotonic() - t0))
            time.sleep(sync_after_ms / 1000)
            syncs = [cmd('hmmv-sync') for _ in range(3)]
            first_syncs.append(syncs[0]['duration-us'] / 1000)
            t0 = time.monotonic()
            cmd('hmmv-stop')
            stop_ms = 1000 * (time.monotonic() - t0)
        finally:
            os.close(fd)
        print('%d GiB cycle %d: hmmv-start %.1f ms, hmmv-sync %s us (dirty pages %s), '
              'hmmv-stop %.1f ms' % (gib, i, starts[-1], [s['duration-us'] for s in syncs],
                                     [s['dirty-pages'] for s in syncs], stop_ms), flush=True)
    if recorder:
        recorder.send_signal(2)
        recorder.wait()
    starts.sort()
    first_syncs.sort()
    print('%d GiB: hmmv-start median %.1f ms (min %.1f, max %.1f) over %d'
          % (gib, starts[len(starts) // 2], starts[0], starts[-1], len(starts)))
    print('%d GiB: first hmmv-sync %d ms after the start: median %.1f ms (min %.1f, max %.1f)'
          % (gib, sync_after_ms, first_syncs[len(first_syncs) // 2], first_syncs[0],
             first_syncs[-1]))


if __name__ == '__main__':
    main()
