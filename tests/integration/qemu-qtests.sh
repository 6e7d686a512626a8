#!/usr/bin/env bash
# QEMU's own tests that the hmmv patches could disturb, run against the patched build:
# qtest qmp-cmd-test (every QMP query, the new ones included) and migration-test (7.2: 17
# cases, ~80 s; 10.0: its default set plus the series' /migration/precopy/unix/hmmv-export,
# a live migration with the export publishing every 10 ms). With the 10.0 series also its own
# libqtest test, hmmv-test (qtest writes under TCG must show up in the exported bitmap exactly). migration-test prefers KVM, and this host's paravirtual KVM fails it even unpatched
# (check_guests_ram), so /dev/kvm is masked in a private mount namespace and it runs on TCG.
# Needs HMMV_QEMU, with the qtests built beside it (qemu-patches/build.sh --with-qtests).
set -uo pipefail

qemu=${HMMV_QEMU:-}
tests=$(dirname "$(dirname "$qemu")")/tests
if [ -z "$qemu" ] || [ ! -x "$tests/qmp-cmd-test" ] || [ ! -x "$tests/migration-test" ]; then
  echo "SKIP: no patched QEMU with qtests (HMMV_QEMU=${qemu:-unset}; build.sh --with-qtests)"
  exit 77
fi
if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
  echo "SKIP: masking /dev/kvm for migration-test needs root and unshare"
  exit 77
fi
export QTEST_QEMU_BINARY=$qemu
if command -v qemu-img >/dev/null; then
  export QTEST_QEMU_IMG
  QTEST_QEMU_IMG=$(command -v qemu-img)
fi

status=0
start=$(date +%s)
"$tests/qmp-cmd-test" || status=1
echo "qmp-cmd-test: exit $status after $(( $(date +%s) - start )) s"
if [ -x "$tests/hmmv-test" ]; then
  start=$(date +%s)
  if "$tests/hmmv-test"; then
    echo "hmmv-test: passed after $(( $(date +%s) - start )) s"
  else
    echo "hmmv-test: FAILED after $(( $(date +%s) - start )) s"
    status=1
  fi
fi
start=$(date +%s)
# shellcheck disable=SC2016
if unshare -m sh -c 'mount --bind /dev/null /dev/kvm 2>/dev/null || true; exec "$0"' \
     "$tests/migration-test"; then
  echo "migration-test: passed after $(( $(date +%s) - start )) s"
else
  echo "migration-test: FAILED after $(( $(date +%s) - start )) s"
  status=1
fi
exit "$status"
