#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd with many libvirt domains, cheaply (suite 'integration', issue 8 "fleet"): ten tiny TCG
# domains of the patched QEMU under a private libvirtd, hmmvd with a QMP pool of 4
# connections. Checks that every domain is managed and that hmmvd holds its own libvirt
# connection plus at most the pool's (libvirtd's virt-admin client-info, by hmmvd's pid), not
# one per domain. The big runs (64 domains and more, QEMUs stopped) are the benchmark
# tests/bench/libvirt-fleet.sh, which this runs with --check.
#
#   test-libvirt-fleet.sh HMMVD HMMVCTL GUEST_ELF
#
# Exit 0 pass, 1 fail, 77 skip (with the reason: not root, no libvirtd, no patched QEMU).
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
[[ $# -eq 3 ]] || { echo "usage: $0 HMMVD HMMVCTL GUEST_ELF" >&2; exit 2; }
FLEET_QMP_CONNECTIONS=4 FLEET_SETTLE=${FLEET_SETTLE:-12} \
  exec "$here/../bench/libvirt-fleet.sh" --check "$1" "$2" "$3" 10
