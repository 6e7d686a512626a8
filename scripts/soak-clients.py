#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Hostile clients for scripts/soak: forever, in turns, against hmmvd's control socket and
metrics port (issue 10): tricklers that send a byte every few seconds and never finish a
request, lines nested 100,000 deep, lines with trailing values, over-long lines, unknown
commands, bursts of more clients than hmmvd admits, and the same for the metrics port
(trickled and over-long HTTP requests, garbage, bursts). Counts what it did in COUNT_FILE
(rewritten every round) so the soak can say so. Stops on SIGTERM.

    soak-clients.py CONTROL_SOCKET METRICS_PORT COUNT_FILE
"""
import json
import random
import signal
import socket
import sys
import threading
import time

STOP = threading.Event()
COUNTS = {}
LOCK = threading.Lock()


def count(what):
    with LOCK:
        COUNTS[what] = COUNTS.get(what, 0) + 1


def control(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def metrics(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    s.settimeout(5)
    return s


def drain(s):
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def one_shot(connect, payload, what):
    try:
        s = connect()
        s.sendall(payload)
        try:
            s.recv(65536)
        except OSError:
            pass
        s.close()
        count(what)
    except OSError:
        count(what + '-refused')


def trickle(connect, byte, seconds, what):
    """Holds a connection, one byte every 3 s, until hmmvd drops it or time is up."""
    try:
        s = connect()
    except OSError:
        count(what + '-refused')
        return
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and not STOP.is_set():
            s.sendall(byte)
            STOP.wait(3)
        count(what + '-held')
    except OSError:
        count(what + '-dropped')
    finally:
        s.close()


def burst(connect, n, what):
    socks = []
    for _ in range(n):
        try:
            socks.append(connect())
        except OSError:
            count(what + '-refused')
    STOP.wait(2)
    for s in socks:
        s.close()
    count(what)


def main():
    path, port, count_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    ctl = lambda: control(path)
    met = lambda: metrics(port)
    deep = b'{"command": ' + b'[' * 100000 + b'\n'
    trailing = b'{"command":"status"} [' + b'0,' * 20000 + b'0]\n'
    long_line = b'{"command":"' + b'x' * (70 * 1024) + b'"}\n'
    actions = [
        lambda: one_shot(ctl, deep, 'control-deep'),
        lambda: one_shot(ctl, trailing, 'control-trailing'),
        lambda: one_shot(ctl, long_line, 'control-long'),
        lambda: one_shot(ctl, b'{"command":"no-such"}\n', 'control-unknown'),
        lambda: one_shot(ctl, b'\x00\xff garbage\n', 'control-garbage'),
        lambda: one_shot(ctl, json.dumps({'command': 'set-quota', 'vm': 'a',
                                          'quota': {'dram-min-mib': -5}}).encode() + b'\n',
                         'control-bad-quota'),
        lambda: burst(ctl, 24, 'control-burst'),
        lambda: one_shot(met, b'GET /metrics HTTP/1.0\r\nX: ' + b'y' * 9000 + b'\r\n\r\n',
                         'metrics-long'),
        lambda: one_shot(met, b'\x16\x03\x01 not http\r\n\r\n', 'metrics-garbage'),
        lambda: burst(met, 12, 'metrics-burst'),
    ]
    threads = []
    rounds = 0
    while not STOP.is_set():
        # a few tricklers on both sockets, running beside the one-shot attacks
        threads = [t for t in threads if t.is_alive()]
        while len(threads) < 6:
            t = threading.Thread(
                target=trickle,
                args=random.choice([(ctl, b' ', 40, 'control-trickle'),
                                    (met, b'G', 40, 'metrics-trickle')]),
                daemon=True)
            t.start()
            threads.append(t)
        random.choice(actions)()
        rounds += 1
        if rounds % 10 == 0:
            with LOCK:
                text = ''.join(f'{k} {v}\n' for k, v in sorted(COUNTS.items()))
            with open(count_file, 'w') as f:
                f.write(text)
        STOP.wait(0.5)
    for t in threads:
        t.join(timeout=5)
    with open(count_file, 'w') as f:
        f.write(''.join(f'{k} {v}\n' for k, v in sorted(COUNTS.items())))


if __name__ == '__main__':
    main()
