# SPDX-License-Identifier: GPL-2.0-or-later
"""tiering-race.py's parts, one concern a module (loaded through tiering-race.py, which puts
tests/testbed on sys.path by loading hmmvd-e2e.py first)."""
