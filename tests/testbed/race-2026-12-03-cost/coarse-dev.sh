#!/bin/bash
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
export HMMV_QEMU=/var/cache/hmmv/qemu-b0d57ab2ff23cd25/bin/qemu-system-x86_64
cd /work/wt-cost
echo "start $(date -u +%FT%TZ) $(uptime) $(git rev-parse --short HEAD)"
tests/testbed/testbed run --layout 2node --kernel 6.12 --timeout 1500 -- tests/testbed/reads-hmmvd.py --hmmvd build-dev/daemon/hmmvd --hmmvctl build-dev/daemon/hmmvctl --guest build-dev/tests/guest/guest.elf --phases coarse "$@"
rc=$?
echo "end rc=$rc $(date -u +%FT%TZ) $(uptime)"
