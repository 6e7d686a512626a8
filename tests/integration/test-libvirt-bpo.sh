#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test-libvirt.sh on bookworm-backports' libvirt (11.3), what hosts installed today run beside
# QEMU 10.0, unpacked by libvirt-root.sh and bind-mounted over the host's 9.0 inside the test's
# private namespace only (suite 'integration').
#
#   test-libvirt-bpo.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (starts its own libvirtd)"; exit 77; }
rc=0
root=$("$here/libvirt-root.sh" | tail -n 1) || rc=$?
if ((rc == 77)); then echo "SKIP: bookworm-backports' libvirt is not available here (see above)"; exit 77; fi
((rc == 0)) || { echo "FAIL: libvirt-root.sh exited $rc"; exit 1; }
echo "# libvirt from $root"
HMMV_LIBVIRT_ROOT=$root exec "$here/test-libvirt.sh" "$@"
