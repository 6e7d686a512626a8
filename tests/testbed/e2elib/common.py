# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared by the testbed's hmmvd scripts: output, skipping, failing, waiting.

Waits are bounded by counted events (hmmvd's intervals, the guests' hot-set shifts) where
something counts the progress they wait for; a wall-clock bound stays only as a liveness cap
(the machine's load decides how long a count takes: never a figure, never a check)."""
import sys
import time

PAGE = 4096


def say(*args):
    print(*args, flush=True)


def skip(why):
    say(f"SKIP: {why}")
    sys.exit(77)


class Failed(Exception):
    pass


def wait_for(what, deadline_s, cond, poll=0.5):
    deadline = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {deadline_s} s")
        time.sleep(poll)


def wait_counted(what, counter, limit, cond, liveness_s, poll=0.5, unit="intervals"):
    """Waits until cond() is true, at most `limit` more of counter() (hmmvd's intervals, the
    guests' shifts: events the wait's outcome depends on) and, as a liveness cap only,
    liveness_s seconds. Returns cond()'s value; Failed naming the bound that ended it and how
    far the count went."""
    start_count = counter()
    start = time.monotonic()
    while True:
        value = cond()
        if value:
            return value
        done = counter() - start_count
        if done >= limit:
            raise Failed(f"{what}: not within {limit} {unit} ({done} counted, "
                         f"{time.monotonic() - start:.0f} s)")
        if time.monotonic() - start > liveness_s:
            raise Failed(f"{what}: liveness cap of {liveness_s} s reached after {done} of "
                         f"{limit} {unit}")
        time.sleep(poll)
