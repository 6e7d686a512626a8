#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A fake patched QEMU for hmmvd's hostile-region test (issue 10): speaks enough QMP for
hmmvd to track it (query-hmmv-ramblocks over 16 MiB of RAM it really maps, getfd with the
region's memfd, hmmv-start sizing and filling the region as the ABI says, hmmv-sync
publishing a few written pages, hmmv-stop), then, at the ATTACK_AT-th hmmv-sync, turns on
its region:

  truncate  ftruncate(region, 0), then ftruncate(region, 2 x size): hmmvd sealed it, so
            both must fail with EPERM; publishing goes on
  punch     fallocate(PUNCH_HOLE) over the whole region: the seals allow it, the header
            reads back as zeros
  rewind    its generation counter goes backwards
  midpublish  a publication caught half way, as a loaded QEMU is while its timer publishes
            during a harvest: seq odd, pages 8-15 set, the generation not moved yet; it
            completes at the next hmmv-sync (generation + 1, seq even), then publishes as usual
  garbage   answers that hmmv-sync with an event that is not JSON (the QMP stream is out of
            step for hmmvd), then serves on
  hangup    closes the connection instead of answering it, and waits for the next one
  stallgarbage  answers nothing for 3.5 s (past hmmvd's 2 s deadline: the VM is frozen),
            then sends the same broken event instead of the reply, and serves on
  none      never
  refuse    answers every hmmv-start with an error (a QEMU that fails each start-up;
            ATTACK_AT unused): "start refused on connection N (refuse) at T"
  slam      closes each connection before its greeting (nobody serves: hmmvd tries again at
            each check, so its connections count hmmvd's checks; ATTACK_AT unused)
  capsfail  greets, then answers qmp_capabilities with an error (a start-up that fails after
            the greeting; ATTACK_AT unused): "capabilities refused on connection N at T"

With ATTACK_AT = "usr1", the attack comes at the first hmmv-sync after a SIGUSR1 (the test
times it in hmmvd's checks), each signal once.

With EVERY = "every", the hmmv-sync count starts over on each connection: the attack comes
again on every connection (a QEMU that breaks each stream hmmvd opens).

As QEMU 10.0 does, one export at a time: hmmv-start while one is active is refused (hmmvd's
start-up stops whatever is active first: it takes the export over). And commands hmmvd sent
before it closed the connection are dropped once the close is seen, not run: QEMU reads one
command at a time and drops what it has not run when the monitor connection closes
(monitor/qmp.c, monitor_qmp_cleanup_queue_and_resume; chardev/char-socket.c, the HUP
watch). Measured on the patched QEMU: of 3 commands written at once just before a close it ran
the first at most, the others never, and sometimes none at all.

What it did is appended to LOG_FILE, one line per event ("listening at T" once its socket
listens, "attack truncate: EPERM EPERM",
"connection 2 at T" (T: CLOCK_MONOTONIC in seconds, only to order the events of several
fakes' logs), "started on connection 2 at T", "stopped on connection 2 (export of connection 1)",
"closed on connection 1: 1 command(s) not run: hmmv-stop").

    fake-hmmv-qemu.py SOCKET LOG_FILE ATTACK [ATTACK_AT [EVERY]]
"""
import ctypes
import json
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time

PAGE = 4096
RAM = 16 << 20
BITMAPS = 4096 + 128 * 256          # HMMV_SHM_BITMAPS_OFFSET
WORDS = RAM // PAGE // 64
REGION = BITMAPS + PAGE              # the 64 bitmap words, page-aligned
MAGIC = 0x4d48532d564d4d48

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2

ram = mmap.mmap(-1, RAM)                                   # rw, really mapped
ram_addr = ctypes.addressof(ctypes.c_char.from_buffer(ram))


def note(path, text):
    with open(path, 'a') as f:
        f.write(text + '\n')


class Fake:
    def __init__(self, log, attack, attack_at, every):
        self.log, self.attack, self.attack_at, self.every = log, attack, attack_at, every
        self.fds = []
        self.region = None
        self.fd = -1
        self.syncs = 0
        self.generation = 0
        self.connection = 0       # connections so far; the current one's number
        self.poked = False        # ATTACK_AT usr1: a SIGUSR1 came, not yet acted on
        self.export_of = 0        # the connection whose hmmv-start made the active export

    def u64(self, off, value):
        struct.pack_into('<Q', self.region, off, value)

    def start(self):
        self.fd = self.fds.pop()
        os.ftruncate(self.fd, REGION)
        self.region = mmap.mmap(self.fd, REGION)
        r = self.region
        struct.pack_into('<QIIQIIQIIIIQQQQQ', r, 0, MAGIC, 1, 4096, REGION, 12, 256, 4096,
                         1, 128, os.getpid(), 0, 1 | (1 << 8), 0, 0, 0,
                         time.monotonic_ns())
        block = b'pc.ram'.ljust(192, b'\0')
        struct.pack_into('<192sQQQQQQQII', r, 4096, block, ram_addr, RAM, RAM, PAGE, BITMAPS,
                         WORDS, 0, 0, 0)
        self.generation = 0
        self.export_of = self.connection
        note(self.log, 'started on connection %d at %.6f' % (self.connection, time.monotonic()))

    def publish(self):
        r = self.region
        seq = struct.unpack_from('<Q', r, 72)[0]
        self.u64(72, seq + 1)
        word = struct.unpack_from('<Q', r, BITMAPS)[0]
        self.u64(BITMAPS, word | 0xff)                     # pages 0..7 written
        self.generation += 1
        self.u64(80, self.generation)
        self.u64(104, self.generation)
        self.u64(96, time.monotonic_ns())
        self.u64(72, seq + 2)

    def do_attack(self):
        if self.attack == 'truncate':
            results = []
            for size in (0, 2 * REGION):
                try:
                    os.ftruncate(self.fd, size)
                    results.append('done')
                except OSError as e:
                    results.append('EPERM' if e.errno == 1 else os.strerror(e.errno))
            note(self.log, 'attack truncate: ' + ' '.join(results))
        elif self.attack == 'punch':
            rc = libc.fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, REGION)
            magic = struct.unpack_from('<Q', self.region, 0)[0]
            note(self.log, 'attack punch: rc %d errno %d, magic now 0x%x'
                 % (rc, ctypes.get_errno(), magic))
        elif self.attack == 'rewind':
            self.generation = max(0, self.generation - 3)
            note(self.log, 'attack rewind: generation %d' % self.generation)
        elif self.attack in ('garbage', 'hangup', 'stallgarbage'):
            note(self.log, 'attack ' + self.attack)
            if self.attack == 'stallgarbage':
                time.sleep(3.5)
        elif self.attack == 'midpublish':
            r = self.region
            seq = struct.unpack_from('<Q', r, 72)[0]
            self.u64(72, seq + 1)
            word = struct.unpack_from('<Q', r, BITMAPS)[0]
            self.u64(BITMAPS, word | 0xff00)               # pages 8..15, not counted yet
            note(self.log, 'attack midpublish: pages 8-15 set at generation %d, seq odd'
                 % self.generation)

    def end_midpublish(self):
        seq = struct.unpack_from('<Q', self.region, 72)[0]
        self.generation += 1
        self.u64(80, self.generation)
        self.u64(104, self.generation)
        self.u64(72, seq + 1)
        note(self.log, 'midpublish ended: generation %d' % self.generation)

    def command(self, msg):
        name = msg.get('execute')
        if name == 'qmp_capabilities':
            if self.attack == 'capsfail':
                note(self.log, 'capabilities refused on connection %d at %.6f'
                     % (self.connection, time.monotonic()))
                return None
            return {}
        if name == 'query-hmmv-ramblocks':
            return [{'name': 'pc.ram', 'host-address': ram_addr, 'used-length': RAM,
                     'page-size': PAGE, 'ranges': [{'gpa': 0, 'size': RAM, 'offset': 0}]}]
        if name == 'getfd':
            if not self.fds:
                return None
            return {}
        if name == 'hmmv-start':
            if self.attack == 'refuse':
                note(self.log, 'start refused on connection %d (refuse) at %.6f'
                     % (self.connection, time.monotonic()))
                return None
            if self.region is not None:               # as QEMU: one export at a time
                note(self.log, 'start refused on connection %d: the export of connection %d '
                     'is active' % (self.connection, self.export_of))
                return None
            self.start()
            return {}
        if name == 'hmmv-sync':
            if self.region is None:
                return None
            self.syncs += 1
            if self.syncs == self.attack_at or self.poked:
                self.poked = False
                self.do_attack()
                if self.attack == 'midpublish':
                    return {}
                if self.attack in ('garbage', 'hangup', 'stallgarbage'):
                    return self.attack
            if self.attack == 'midpublish' and self.syncs == self.attack_at + 1:
                self.end_midpublish()
            if self.attack != 'punch' or self.syncs < self.attack_at:
                self.publish()
            return {}
        if name == 'hmmv-stop':
            if self.region is None:
                return None
            self.region.close()
            os.close(self.fd)
            self.region, self.fd = None, -1
            note(self.log, 'stopped on connection %d (export of connection %d)'
                 % (self.connection, self.export_of))
            return {}
        return None

    def closed(self, conn, lines):
        """hmmvd closed the connection: the commands not run yet are dropped, as QEMU does."""
        poller = select.poll()
        poller.register(conn, select.POLLRDHUP)
        if not poller.poll(0):
            return False
        names = []
        for line in lines:
            try:
                names.append(json.loads(line).get('execute', '?'))
            except ValueError:
                names.append('?')
        note(self.log, 'closed on connection %d: %d command(s) not run%s'
             % (self.connection, len(names), (': ' + ' '.join(names)) if names else ''))
        return True

    def serve(self, conn):
        if self.every:
            self.syncs = 0
        if self.attack == 'slam':
            return
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        buf = b''
        while True:
            data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
            if not data:
                return
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    self.fds.extend(struct.unpack('%di' % (len(payload) // 4), payload))
            buf += data
            while b'\n' in buf:
                if self.closed(conn, [x for x in buf.split(b'\n')[:-1] if x.strip()]):
                    return
                line, buf = buf.split(b'\n', 1)
                if not line.strip():
                    continue
                msg = json.loads(line)
                ret = self.command(msg)
                if ret == 'hangup':
                    return
                if ret in ('garbage', 'stallgarbage'):
                    conn.sendall(b'{"event": oops}\r\n')
                    continue
                if ret is None:
                    reply = {'error': {'class': 'GenericError', 'desc': 'not now'}}
                else:
                    reply = {'return': ret}
                if 'id' in msg:                            # as QEMU does
                    reply['id'] = msg['id']
                conn.sendall(json.dumps(reply).encode() + b'\r\n')


def main():
    path, log, attack = sys.argv[1], sys.argv[2], sys.argv[3]
    usr1 = len(sys.argv) > 4 and sys.argv[4] == 'usr1'
    attack_at = -1 if usr1 else int(sys.argv[4]) if len(sys.argv) > 4 else 8
    every = len(sys.argv) > 5 and sys.argv[5] == 'every'
    fake = Fake(log, attack, attack_at, every)
    if usr1:              # before the socket appears: the test may signal once it is there
        signal.signal(signal.SIGUSR1, lambda *_: setattr(fake, 'poked', True))
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    note(log, 'listening at %.6f' % time.monotonic())
    while True:
        conn, _ = server.accept()
        fake.connection += 1
        note(log, 'connection %d at %.6f' % (fake.connection, time.monotonic()))
        try:
            fake.serve(conn)
        except OSError:
            pass
        conn.close()


if __name__ == '__main__':
    main()
