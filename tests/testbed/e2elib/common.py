# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared by the testbed's hmmvd scripts: output, skipping, failing, waiting."""
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
