# SPDX-License-Identifier: GPL-2.0-or-later
"""A process killed while one of hmmvd's threads is inside a migrating move_pages(2) call on
it, by construction instead of by timing.

Polling /proc/TID/syscall and killing when a call is seen races the call's end: with the
suite's migration cap a batch on a VM backed by 2 MiB pages is one page, over in about the
time Python takes from the read to the kill (issue 8: the check failed twice in five runs,
"killed_mid_batch pages=1 inside_after_kill=0"). Here hmmvd's threads are traced (ptrace,
syscall stops, new threads followed) for the few intervals it takes: at the entry stop of a
move_pages(2) call on the victim that gives target nodes (a move batch; a status query has
nodes NULL), the thread is held inside the call, the victim is killed (-9),
/proc/TID/syscall read again (still that call: the proof, from the kernel's view, as the
polling version printed it), and the thread let go through the call at once: it runs while
the killed QEMU exits (its mm found and pinned, or already released: the call fails). Its
return value is read at the call's exit stop, then every thread is detached.

The kill lands after the call began and before it returned, every time, and hmmvd must
survive whatever the call returns."""
import ctypes
import errno
import os
import signal
import struct
import time

from e2elib.common import Failed, say
from e2elib.kernel import SYS_MOVE_PAGES, in_move_pages

PTRACE_SYSCALL = 24
PTRACE_DETACH = 17
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GET_SYSCALL_INFO = 0x420e
PTRACE_O_TRACESYSGOOD = 1
PTRACE_O_TRACECLONE = 8
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_STOP = 128
SYSCALL_INFO_ENTRY, SYSCALL_INFO_EXIT = 1, 2
WALL = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


class TraceError(Exception):
    pass


def _ptrace(req, tid, addr=0, data=0):
    rc = _libc.ptrace(req, tid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    if rc == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"ptrace({req:#x}, {tid}): {os.strerror(e)}")
    return rc


def _syscall_info(tid):
    """(op, nr or rval, args): struct ptrace_syscall_info of a thread in a syscall stop."""
    buf = ctypes.create_string_buffer(88)
    _ptrace(PTRACE_GET_SYSCALL_INFO, tid, 88, ctypes.addressof(buf))
    op = buf.raw[0]
    if op == SYSCALL_INFO_ENTRY:
        nr, *args = struct.unpack_from("<Q6Q", buf.raw, 24)
        return op, nr, args
    if op == SYSCALL_INFO_EXIT:
        rval, = struct.unpack_from("<q", buf.raw, 24)
        return op, rval, None
    return op, None, None


class Tracer:
    """Every thread of pid traced with syscall stops (threads it creates too)."""

    def __init__(self, pid):
        self.pid = pid
        self.tids = set()
        self.held = set()   # stopped, their stop already read: not resumed yet
        self.stops = 0
        opts = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError as e:
            raise TraceError(f"hmmvd's threads: {e}")
        for tid in tids:
            try:
                _ptrace(PTRACE_SEIZE, tid, 0, opts)
            except OSError as e:
                if e.errno == errno.ESRCH:
                    continue   # the thread ended meanwhile
                self.detach()
                raise TraceError(f"cannot trace hmmvd's thread {tid}: {e}")
            self.tids.add(tid)
        for tid in list(self.tids):
            try:
                _ptrace(PTRACE_INTERRUPT, tid)
            except OSError:
                self.tids.discard(tid)

    def _resume(self, tid, sig=0):
        self.held.discard(tid)
        try:
            _ptrace(PTRACE_SYSCALL, tid, 0, sig)
        except OSError:
            self.tids.discard(tid)   # gone

    def next_stop(self, wanted):
        """Handles the threads' stops, resuming each, until wanted(tid, info) is true for a
        syscall stop (info: _syscall_info); returns that tid, left stopped. None when no
        thread stopped at all in this poll round."""
        any_stop = False
        for tid in list(self.tids):
            try:
                got, status = os.waitpid(tid, os.WNOHANG | WALL)
            except ChildProcessError:
                self.tids.discard(tid)
                continue
            if got == 0:
                continue
            any_stop = True
            self.stops += 1
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self.tids.discard(tid)
                continue
            sig, event = os.WSTOPSIG(status), status >> 16
            try:
                if sig == signal.SIGTRAP | 0x80:
                    info = _syscall_info(tid)
                    if wanted(tid, info):
                        self.held.add(tid)
                        return tid
                elif event == PTRACE_EVENT_CLONE:
                    msg = ctypes.c_ulong()
                    _ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(msg))
                    self.tids.add(msg.value)   # seized already (TRACECLONE); its stop comes
            except OSError:   # the thread ended under us (ESRCH)
                self.tids.discard(tid)
                continue
            if sig == signal.SIGTRAP | 0x80 or event == PTRACE_EVENT_CLONE:
                self._resume(tid)
            elif event == PTRACE_EVENT_STOP or sig == signal.SIGTRAP:
                self._resume(tid)          # the first (interrupt) stop, a new thread's
            else:
                self._resume(tid, sig)     # a signal for hmmvd: delivered as it came
        return None if not any_stop else False

    def wait_exit(self, tid, liveness_s):
        """Lets tid run its syscall to the exit stop; returns the call's return value (or
        None if the thread went away or did not come back within liveness_s)."""
        self._resume(tid)
        deadline = time.monotonic() + liveness_s
        while time.monotonic() < deadline and tid in self.tids:
            got = self.next_stop(lambda t, info: t == tid and info[0] == SYSCALL_INFO_EXIT)
            if got == tid:
                try:
                    return _syscall_info(tid)[1]   # held at the exit stop: detach lets it go
                except OSError:
                    return None
            if got is None:
                time.sleep(0.0005)
        return None

    def detach(self):
        """Stops every traced thread (PTRACE_INTERRUPT) and detaches it, delivering a
        signal it stopped for."""
        for tid in list(self.held):   # stopped already: no new stop would come
            try:
                _ptrace(PTRACE_DETACH, tid, 0, 0)
            except OSError:
                pass
            self.tids.discard(tid)
        self.held.clear()
        for tid in list(self.tids):
            try:
                _ptrace(PTRACE_INTERRUPT, tid)
            except OSError:
                self.tids.discard(tid)
        deadline = time.monotonic() + 60
        while self.tids and time.monotonic() < deadline:
            progressed = False
            for tid in list(self.tids):
                try:
                    got, status = os.waitpid(tid, os.WNOHANG | WALL)
                except ChildProcessError:
                    self.tids.discard(tid)
                    continue
                if got == 0:
                    continue
                progressed = True
                if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                    self.tids.discard(tid)
                    continue
                sig, event = os.WSTOPSIG(status), status >> 16
                if event == PTRACE_EVENT_CLONE:
                    msg = ctypes.c_ulong()
                    _ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(msg))
                    self.tids.add(msg.value)
                    try:
                        _ptrace(PTRACE_INTERRUPT, msg.value)
                    except OSError:
                        pass
                deliver = 0 if (sig == signal.SIGTRAP | 0x80 or sig == signal.SIGTRAP or
                                event) else sig
                try:
                    _ptrace(PTRACE_DETACH, tid, 0, deliver)
                except OSError:
                    pass
                self.tids.discard(tid)
            if not progressed:
                time.sleep(0.001)
        if self.tids:
            say(f"e2e: faults: threads {sorted(self.tids)} of hmmvd not detached in 60 s "
                "(detached when this process exits)")


def kill_in_call(hmmvd, vm, liveness_s):
    """Kills vm's QEMU (-9) while one of hmmvd's threads is held at the entry of a migrating
    move_pages(2) call on it (see the module's text). Returns (tid, pages, inside, rval):
    inside is /proc/TID/syscall showing that call right after the kill (the thread held
    there), rval what the call returned once let go (None: not seen). Raises TraceError when
    hmmvd cannot be traced (nothing killed then), Failed when hmmvd made no such call
    within liveness_s (a liveness cap: the victim's moves come every interval or few)."""
    target = vm.proc.pid
    caught = {}

    def migrating(tid, info):
        op, nr, args = info
        if op == SYSCALL_INFO_ENTRY and nr == SYS_MOVE_PAGES and args[0] == target \
                and args[3] != 0:
            caught["pages"] = args[1]
            return True
        return False

    tracer = Tracer(hmmvd.proc.pid)
    try:
        deadline = time.monotonic() + liveness_s
        tid = None
        while time.monotonic() < deadline:
            got = tracer.next_stop(migrating)
            if got:
                tid = got
                break
            if got is None:
                time.sleep(0.0005)
        if tid is None:
            raise Failed(f"faults: hmmvd made no migrating move_pages call on {vm.name} "
                         f"within {liveness_s} s (traced: {tracer.stops} stops)")
        vm.proc.kill()
        inside = in_move_pages(hmmvd.proc.pid, target, tid_only=tid) is not None
        # let go at once: the call runs while the killed QEMU exits (its mm found and
        # pinned, or already released: both are a QEMU dying under a move batch)
        rval = tracer.wait_exit(tid, 60)
    finally:
        tracer.detach()
    vm.proc.wait()
    return tid, caught["pages"], inside, rval
