# SPDX-License-Identifier: GPL-2.0-or-later
"""hmmvd-e2e.py's parts, one concern a module (also used by hmmvd-libvirt.py and
tiering-race.py through hmmvd-e2e.py)."""
