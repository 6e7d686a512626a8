#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A hostile QEMU for hmmvd's tests: listens on a QMP socket, greets, accepts
qmp_capabilities, then answers no command but sends an event every PERIOD seconds,
forever (issue 10, item 3: one such QEMU froze the whole daemon). Each connection is
counted in COUNT_FILE (one line per connection), so a test sees hmmvd retry.

    fake-qemu.py SOCKET COUNT_FILE [PERIOD]
"""
import os
import socket
import sys
import threading
import time


def serve(conn, period):
    try:
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        buf = b''
        while b'\n' not in buf:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
        conn.sendall(b'{"return": {}}\r\n')
        while True:
            conn.sendall(b'{"event": "RTC_CHANGE", "data": {"offset": 0}}\r\n')
            time.sleep(period)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    path, count_file = sys.argv[1], sys.argv[2]
    period = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    while True:
        conn, _ = server.accept()
        with open(count_file, 'a') as f:
            f.write('connection\n')
        threading.Thread(target=serve, args=(conn, period), daemon=True).start()


if __name__ == '__main__':
    main()
