#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A vhost-user-net back-end for the integration suite (issue 9, E4c), written from QEMU's
docs/interop/vhost-user.rst: it listens on a Unix socket (QEMU's chardev connects as the
client), serves each front-end connection (a NIC, as a software switch serves its ports) in a
thread of its own, and answers what QEMU sends while it sets a vhost-user netdev up and before a guest driver
starts the device: GET_FEATURES, SET_OWNER, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
SET_VRING_CALL/KICK/ERR (with their fds), SET_FEATURES, SET_VRING_NUM/BASE/ADDR/ENABLE,
GET_VRING_BASE, SET_MEM_TABLE, SET_LOG_BASE, RESET_OWNER, SEND_RARP, ... It moves no
packets: a test guest without a virtio driver never starts the device.

It offers the virtio-net features a software switch offers (checksum and TSO offloads,
mergeable rx buffers, guest announce, multiqueue, indirect descriptors, event index,
VERSION_1) and the protocol features MQ, RARP and REPLY_ACK, but VHOST_F_LOG_ALL only with
--log-all and VHOST_USER_PROTOCOL_F_LOG_SHMFD only with --log-shmfd: without LOG_ALL it
cannot log its writes to guest memory, and QEMU must block migration (and so hmmv) for it.

Every event goes to LOG as one JSON object a line, flushed at once: {"event": "listening"},
{"event": "connected", "conn": N}, {"event": "request", "conn": N, "request": "GET_FEATURES",
"id": 1, "flags": F, "size": S, "fds": K, ...decoded payload...}, {"event": "closed",
"conn": N, "reason": ...}. A request the back-end cannot serve is logged with "error" and,
as the spec lets a back-end do, ends the connection. Sizes from the peer are bounded
(a payload over 4096 bytes, more than 8 fds, or truncated ancillary data ends the
connection); a read that stalls mid-message for 30 s ends it too.

    vhost-user-backend.py --socket PATH --log FILE [--log-all] [--log-shmfd]
"""
import argparse
import array
import json
import mmap
import os
import socket
import struct
import sys
import threading

HDR = struct.Struct("=III")          # request, flags, size
VERSION = 0x1
F_REPLY = 1 << 2
F_NEED_REPLY = 1 << 3
MAX_PAYLOAD = 4096
MAX_FDS = 8                          # QEMU sends at most 8 (VHOST_MEMORY_BASELINE_NREGIONS)
STALL_S = 30.0
MAX_LOG = 1 << 30                    # a dirty log for 32 TiB of guest RAM

REQUESTS = {
    1: "GET_FEATURES", 2: "SET_FEATURES", 3: "SET_OWNER", 4: "RESET_OWNER",
    5: "SET_MEM_TABLE", 6: "SET_LOG_BASE", 7: "SET_LOG_FD", 8: "SET_VRING_NUM",
    9: "SET_VRING_ADDR", 10: "SET_VRING_BASE", 11: "GET_VRING_BASE", 12: "SET_VRING_KICK",
    13: "SET_VRING_CALL", 14: "SET_VRING_ERR", 15: "GET_PROTOCOL_FEATURES",
    16: "SET_PROTOCOL_FEATURES", 17: "GET_QUEUE_NUM", 18: "SET_VRING_ENABLE",
    19: "SEND_RARP", 20: "NET_SET_MTU", 21: "SET_BACKEND_REQ_FD", 22: "IOTLB_MSG",
    23: "SET_VRING_ENDIAN", 24: "GET_CONFIG", 25: "SET_CONFIG", 28: "POSTCOPY_ADVISE",
    31: "GET_INFLIGHT_FD", 32: "SET_INFLIGHT_FD", 34: "RESET_DEVICE", 36: "GET_MAX_MEM_SLOTS",
    37: "ADD_MEM_REG", 38: "REM_MEM_REG", 39: "SET_STATUS", 40: "GET_STATUS",
}

# virtio-net / virtio feature bits (virtio spec; linux/virtio_net.h, virtio_config.h)
NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_GUEST_TSO6 = 0, 1, 7, 8
NET_F_HOST_TSO4, NET_F_HOST_TSO6, NET_F_MRG_RXBUF = 11, 12, 15
NET_F_GUEST_ANNOUNCE, NET_F_MQ = 21, 22
VHOST_F_LOG_ALL = 26
F_ANY_LAYOUT, RING_F_INDIRECT_DESC, RING_F_EVENT_IDX = 27, 28, 29
VHOST_USER_F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32
# protocol feature bits (vhost-user.rst, "Protocol features")
PF_MQ, PF_LOG_SHMFD, PF_RARP, PF_REPLY_ACK = 0, 1, 2, 3

NR_VRINGS = 2                        # one queue pair: GET_QUEUE_NUM says 1
MAX_CONNECTIONS = 64                 # at once; more are closed at once, logged as "refused"


class ConnectionEnd(Exception):
    pass


class Backend:
    """What the back-end offers, and its log (shared by the connections)."""

    def __init__(self, log, log_all, log_shmfd):
        self.log = log
        self.lock = threading.Lock()
        bits = [NET_F_CSUM, NET_F_GUEST_CSUM, NET_F_GUEST_TSO4, NET_F_GUEST_TSO6,
                NET_F_HOST_TSO4, NET_F_HOST_TSO6, NET_F_MRG_RXBUF, NET_F_GUEST_ANNOUNCE,
                NET_F_MQ, F_ANY_LAYOUT, RING_F_INDIRECT_DESC, RING_F_EVENT_IDX,
                VHOST_USER_F_PROTOCOL_FEATURES, F_VERSION_1]
        if log_all:
            bits.append(VHOST_F_LOG_ALL)
        self.features = sum(1 << b for b in bits)
        pbits = [PF_MQ, PF_RARP, PF_REPLY_ACK] + ([PF_LOG_SHMFD] if log_shmfd else [])
        self.protocol_features = sum(1 << b for b in pbits)
        self.conn_id = 0

    def emit(self, **fields):
        with self.lock:
            self.log.write(json.dumps(fields, sort_keys=True) + "\n")
            self.log.flush()


class Connection:
    """One front-end connection: one vhost device's state."""

    def __init__(self, backend, sock, conn_id):
        self.backend = backend
        self.sock = sock
        self.conn_id = conn_id
        self.features = backend.features
        self.protocol_features = backend.protocol_features
        self.emit = backend.emit
        self.log_map = None
        self.owner = False
        self.acked_features = 0
        self.acked_protocol = 0
        self.vrings = [{"num": 0, "base": 0, "enabled": False} for _ in range(NR_VRINGS)]

    def read_exact(self, sock, n, first_fds):
        """n bytes; the fds of the message come with its first byte (recvmsg)."""
        data = b""
        fds = []
        while len(data) < n:
            sock.settimeout(None if not data and first_fds else STALL_S)
            if first_fds and not data:
                fdbuf = array.array("i")
                msg, anc, flags, _ = sock.recvmsg(n, socket.CMSG_SPACE(MAX_FDS * fdbuf.itemsize))
                for level, kind, cdata in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        usable = len(cdata) - len(cdata) % fdbuf.itemsize
                        fdbuf.frombytes(cdata[:usable])
                fds.extend(fdbuf)
                if flags & socket.MSG_CTRUNC:
                    for fd in fds:
                        os.close(fd)
                    raise ConnectionEnd("ancillary data truncated (over %d fds)" % MAX_FDS)
            else:
                msg = sock.recv(n - len(data))
            if not msg:
                for fd in fds:
                    os.close(fd)
                raise ConnectionEnd("eof" if not data else "eof mid-message")
            data += msg
        return data, fds

    def reply(self, sock, request, payload):
        sock.sendall(HDR.pack(request, VERSION | F_REPLY, len(payload)) + payload)

    def serve(self, slots):
        sock = self.sock
        self.emit(event="connected", conn=self.conn_id)
        reason = "eof"
        try:
            while True:
                self.one_request(sock)
        except ConnectionEnd as e:
            reason = str(e)
        except OSError as e:
            reason = "socket: %s" % e
        self.emit(event="closed", conn=self.conn_id, reason=reason)
        if self.log_map is not None:
            self.log_map.close()
        sock.close()
        slots.release()

    def one_request(self, sock):
        hdr, fds = self.read_exact(sock, HDR.size, True)
        request, flags, size = HDR.unpack(hdr)
        entry = {"event": "request", "conn": self.conn_id, "id": request,
                 "request": REQUESTS.get(request, "UNKNOWN"), "flags": flags, "size": size,
                 "fds": len(fds)}
        try:
            if flags & 0x3 != VERSION:
                raise ConnectionEnd("bad version in flags 0x%x" % flags)
            if size > MAX_PAYLOAD:
                raise ConnectionEnd("payload of %d bytes (bound %d)" % (size, MAX_PAYLOAD))
            payload = self.read_exact(sock, size, False)[0] if size else b""
            ok, answer = self.handle(request, payload, fds, entry)
        except ConnectionEnd as e:
            entry["error"] = str(e)
            self.emit(**entry)
            raise
        finally:
            for fd in fds:
                os.close(fd)
        if not ok:
            self.emit(**entry)
            raise ConnectionEnd(entry["error"])
        self.emit(**entry)
        if answer is not None:
            self.reply(sock, request, answer)
        elif flags & F_NEED_REPLY and self.acked_protocol & (1 << PF_REPLY_ACK):
            self.reply(sock, request, struct.pack("=Q", 0))

    # --- requests -----------------------------------------------------------------------

    @staticmethod
    def u64(payload, entry):
        if len(payload) != 8:
            entry["error"] = "payload of %d bytes, a u64 expected" % len(payload)
            return None
        return struct.unpack("=Q", payload)[0]

    def vring_state(self, payload, entry):
        if len(payload) != 8:
            entry["error"] = "payload of %d bytes, a vring state expected" % len(payload)
            return None
        index, num = struct.unpack("=II", payload)
        entry.update(index=index, num=num)
        if index >= NR_VRINGS:
            entry["error"] = "vring %d of %d" % (index, NR_VRINGS)
            return None
        return index, num

    def vring_fd(self, payload, fds, entry):
        """SET_VRING_KICK/CALL/ERR: vring index in bits 0-7, bit 8 says "no fd"."""
        value = self.u64(payload, entry)
        if value is None:
            return False
        index, nofd = value & 0xff, bool(value & 0x100)
        entry.update(index=index, nofd=nofd)
        if index >= NR_VRINGS or nofd != (len(fds) == 0) or len(fds) > 1:
            entry["error"] = "vring %d, %d fd(s), invalid-fd flag %s" % (index, len(fds), nofd)
            return False
        return True

    def handle(self, request, payload, fds, entry):
        """(ok, reply payload or None)."""
        name = REQUESTS.get(request)
        has_protocol = self.features & (1 << VHOST_USER_F_PROTOCOL_FEATURES)
        if name in ("GET_FEATURES", "GET_PROTOCOL_FEATURES", "GET_QUEUE_NUM"):
            if payload:
                entry["error"] = "%s carries %d bytes" % (name, len(payload))
                return False, None
            if name == "GET_FEATURES":
                entry["offered"] = self.features
                return True, struct.pack("=Q", self.features)
            if not has_protocol:
                entry["error"] = "protocol features not offered"
                return False, None
            if name == "GET_PROTOCOL_FEATURES":
                entry["offered"] = self.protocol_features
                return True, struct.pack("=Q", self.protocol_features)
            if not self.acked_protocol & (1 << PF_MQ):
                entry["error"] = "GET_QUEUE_NUM without the MQ protocol feature"
                return False, None
            return True, struct.pack("=Q", NR_VRINGS // 2)
        if name in ("SET_FEATURES", "SET_PROTOCOL_FEATURES"):
            value = self.u64(payload, entry)
            if value is None:
                return False, None
            entry["value"] = value
            offered = self.features if name == "SET_FEATURES" else self.protocol_features
            if value & ~offered:
                entry["error"] = "acks 0x%x, not offered" % (value & ~offered)
                return False, None
            if name == "SET_FEATURES":
                self.acked_features = value
                entry["log_all"] = bool(value & (1 << VHOST_F_LOG_ALL))
            else:
                self.acked_protocol = value
            return True, None
        if name in ("SET_OWNER", "RESET_OWNER"):
            self.owner = name == "SET_OWNER"
            return True, None
        if name in ("SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR"):
            return self.vring_fd(payload, fds, entry), None
        if name in ("SET_VRING_NUM", "SET_VRING_BASE", "SET_VRING_ENABLE", "GET_VRING_BASE"):
            state = self.vring_state(payload, entry)
            if state is None:
                return False, None
            index, num = state
            ring = self.vrings[index]
            if name == "GET_VRING_BASE":      # stops the ring, returns where it is
                ring["enabled"] = False
                return True, struct.pack("=II", index, ring["base"])
            key = {"SET_VRING_NUM": "num", "SET_VRING_BASE": "base",
                   "SET_VRING_ENABLE": "enabled"}[name]
            ring[key] = bool(num) if key == "enabled" else num
            return True, None
        if name == "SET_VRING_ADDR":
            if len(payload) != 40:
                entry["error"] = "vring address of %d bytes" % len(payload)
                return False, None
            index, vflags = struct.unpack_from("=II", payload)
            entry.update(index=index, log=bool(vflags & 1))
            return index < NR_VRINGS, None
        if name == "SET_MEM_TABLE":
            if len(payload) < 8:
                entry["error"] = "memory table of %d bytes" % len(payload)
                return False, None
            nregions = struct.unpack_from("=I", payload)[0]
            entry["regions"] = nregions
            if nregions > MAX_FDS or len(payload) != 8 + 32 * nregions or len(fds) != nregions:
                entry["error"] = "%d regions, %d bytes, %d fds" % (nregions, len(payload),
                                                                   len(fds))
                return False, None
            return True, None
        if name == "SET_LOG_BASE":
            # With LOG_SHMFD: the log's size and offset, its memfd attached; the back-end
            # answers (an empty reply) once it mapped the log.
            entry["log_fd"] = len(fds) == 1
            if not self.acked_protocol & (1 << PF_LOG_SHMFD) or len(fds) != 1 or \
                    len(payload) != 16:
                entry["error"] = "SET_LOG_BASE without LOG_SHMFD or its fd"
                return False, None
            size, offset = struct.unpack("=QQ", payload)
            entry.update(log_size=size, log_offset=offset)
            if size == 0 or size > MAX_LOG or offset > MAX_LOG:
                entry["error"] = "a log of %d bytes at %d (bound %d)" % (size, offset, MAX_LOG)
                return False, None
            if self.log_map is not None:
                self.log_map.close()
            self.log_map = mmap.mmap(fds[0], size + offset, mmap.MAP_SHARED)
            return True, b""
        if name == "SEND_RARP":
            if len(payload) != 8 or not self.acked_protocol & (1 << PF_RARP):
                entry["error"] = "SEND_RARP without RARP or a MAC"
                return False, None
            entry["mac"] = payload[:6].hex(":")
            return True, None
        entry["error"] = "not served by this back-end"
        return False, None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--log-all", action="store_true",
                        help="offer VHOST_F_LOG_ALL (a back-end that can log its writes)")
    parser.add_argument("--log-shmfd", action="store_true",
                        help="offer VHOST_USER_PROTOCOL_F_LOG_SHMFD")
    args = parser.parse_args()

    with open(args.log, "a", encoding="utf-8") as log:
        backend = Backend(log, args.log_all, args.log_shmfd)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(args.socket)
        except FileNotFoundError:
            pass
        listener.bind(args.socket)
        listener.listen(1)
        backend.emit(event="listening", features=backend.features,
                     protocol_features=backend.protocol_features)
        slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        while True:
            sock, _ = listener.accept()
            backend.conn_id += 1
            if not slots.acquire(blocking=False):
                backend.emit(event="refused", conn=backend.conn_id,
                             reason="%d connections at once" % MAX_CONNECTIONS)
                sock.close()
                continue
            conn = Connection(backend, sock, backend.conn_id)
            threading.Thread(target=conn.serve, args=(slots,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
