#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The unit's sandbox against a running hmmvd, under a real systemd (suite 'integration',
# issue 13): configs/hmmvd.service, with its SystemCallFilter= and every other hardening
# directive as shipped, runs hmmvd inside a booted systemd-nspawn container (systemd 252 as
# the container's PID 1: this host's PID 1 is not systemd). A drop-in changes only what the
# test needs: ExecStart gets --no-libvirt and the QMP socket of a real patched QEMU (TCG, the
# test guest, itself a service in the container), and SystemCallErrorNumber= is reset so that
# a call outside the filter kills hmmvd with SIGSYS instead of failing with EPERM (the
# shipped unit's choice, which would hide such a call). hmmvd goes through start-up, intervals
# with the sim mover that move pages, control requests (status, vms, set-quota) and a
# `systemctl stop`; the test then checks that systemd saw a clean exit, no restart and no
# signal. A control unit with the same filter and drop-in that calls umount2(2) must be killed
# with SIGSYS: the filter is in force and a kill would be seen.
#
# The container's root: the cached bookworm debootstrap of the package suite plus a cached
# layer (systemd and QEMU's runtime libraries from the registry; tests/package/roots.sh),
# with a throw-away upper layer. hmmvd, hmmvctl, the unit and the QEMU are this tree's.
#
#   test-unit-filter.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT     (HMMV_QEMU: the patched QEMU)
#
# Exit 0 pass, 1 fail, 77 skip (with the reason).
set -uo pipefail

skip() { echo "SKIP: $*"; exit 77; }
[[ $# -eq 4 ]] || { echo "usage: $0 HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT" >&2; exit 2; }
HMMVD=$1 HMMVCTL=$2 GUEST=$3 ROOT=$4 QEMU=${HMMV_QEMU:-}
[[ $(id -u) -eq 0 ]] || skip "needs root (overlay mounts, systemd-nspawn)"
[[ -x $QEMU ]] || skip "no patched QEMU (HMMV_QEMU=${QEMU:-unset})"
[[ -x $HMMVD && -x $HMMVCTL && -r $GUEST ]] || skip "hmmvd, hmmvctl or the guest is not built"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn is not installed (package systemd-container)"
command -v debootstrap >/dev/null || skip "debootstrap is not installed"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
  skip "the kernel has no overlay file system"

source "$ROOT/tests/package/roots.sh"
WORK=$(mktemp -d /tmp/hmmv-unit-filter.XXXXXX)
NSPAWN_PID=''
cleanup() {
  [[ -n $NSPAWN_PID ]] && kill -9 "$NSPAWN_PID" 2>/dev/null && wait "$NSPAWN_PID" 2>/dev/null
  roots_cleanup
  rm -rf "$WORK"
}
trap cleanup EXIT
FAILED=0
fail() { echo "FAIL: $*"; FAILED=1; }
ok() { echo "ok: $*"; }

layer=$(roots_runtime) ||
  skip "cannot build the container's root from the registry (see above)"
R=$WORK/root
roots_mount "$R" "$WORK/upper" "$layer" || { echo "FAIL: overlay mount"; exit 1; }

# ---- the container's contents ----
install -m 0755 "$HMMVD" "$R/usr/sbin/hmmvd"
install -m 0755 "$HMMVCTL" "$R/usr/bin/hmmvctl"
install -D -m 0755 "$QEMU" "$R/opt/hmmv/qemu-system-x86_64"
install -D -m 0644 "$GUEST" "$R/opt/hmmv/guest.elf"
install -D -m 0644 "$ROOT/configs/hmmvd.service" "$R/etc/systemd/system/hmmvd.service"
mkdir -p "$R/etc/hmmv" "$WORK/out"
# The sim mover: the guest's first touches land on the 64 MiB of simulated DRAM while hmmvd
# may lend it 4 MiB (its pool), so pages must be demoted as soon as it has written 1,025
# pages: its hot set alone is 4,096, a second of its writes at 10-30k a second under load.
# (With a pool of 32 MiB, 8,193 distinct pages had to be written first, half of them drawn
# from the 10% of writes that go to the cold 96 MiB: ~45,000 writes, which a guest slowed
# to hundreds of writes a second would not reach in the 90 s below.)
cat >"$R/etc/hmmv/hmmvd.conf" <<'CONF'
[memory]
mover = sim
dram-pool-mib = 4
sim-dram-mib = 64
sim-slow-mib = 512
CONF
cat >"$R/etc/systemd/system/hmmv-test-qemu.service" <<'UNIT'
[Unit]
Description=the patched QEMU hmmvd manages in this test
[Service]
RuntimeDirectory=hmmv-qemu
ExecStart=/opt/hmmv/qemu-system-x86_64 -accel tcg -M pc -m 192 -display none -nic none \
  -serial none -monitor none -qmp unix:/run/hmmv-qemu/a.qmp,server=on,wait=off \
  -kernel /opt/hmmv/guest.elf -append "mode=workload hot_mib=16 cold_mib=96 report_every=0"
UNIT
mkdir -p "$R/etc/systemd/system/hmmvd.service.d"
cat >"$R/etc/systemd/system/hmmvd.service.d/test.conf" <<'UNIT'
[Unit]
After=hmmv-test-qemu.service
[Service]
ExecStart=
ExecStart=/usr/sbin/hmmvd --config /etc/hmmv/hmmvd.conf --no-libvirt --interval-ms 300 \
  --qmp a=/run/hmmv-qemu/a.qmp
# Reset to the default action: a call outside SystemCallFilter= kills the process (SIGSYS).
SystemCallErrorNumber=
# A kill must show as a kill, not be papered over by a restart.
Restart=no
UNIT
# The control: the same unit and drop-in, run once, with a binary that calls mount(2) (@mount,
# outside @system-service).
sed 's|^ExecStart=.*|ExecStart=/bin/mount -t tmpfs hmmv-control /mnt|; s|^Type=.*|Type=oneshot|' "$R/etc/systemd/system/hmmvd.service" \
  >"$R/etc/systemd/system/hmmv-filter-control.service"
mkdir -p "$R/etc/systemd/system/hmmv-filter-control.service.d"
grep -v -E '^(ExecStart|  --qmp|After)' "$R/etc/systemd/system/hmmvd.service.d/test.conf" \
  >"$R/etc/systemd/system/hmmv-filter-control.service.d/test.conf"

# The driver: runs once the container is up, writes its findings to /out, powers off.
cat >"$R/usr/local/sbin/hmmv-filter-driver" <<'DRIVER'
#!/bin/bash
exec >/out/driver.log 2>&1
set -x
show() { systemctl show -p "$2" --value "$1"; }
ctl() { hmmvctl --json "$@"; }
wait_for() { # seconds command...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do ((SECONDS < deadline)) || return 1; sleep 0.5; done
}
num() { # key json: the first number after "key"
  grep -o "\"$1\" *: *[0-9]*" <<<"$2" | head -n 1 | grep -o '[0-9]*$'
}
{
  echo "systemd $(systemctl --version | head -n 1)"
  systemctl start hmmv-filter-control.service
  # A oneshot that failed stays loaded (an inactive unit is unloaded, its results with it).
  echo "control Result=$(show hmmv-filter-control Result) ExecMainCode=$(show hmmv-filter-control ExecMainCode) ExecMainStatus=$(show hmmv-filter-control ExecMainStatus)"
  journalctl -q -o cat -u hmmv-filter-control.service >/out/control.journal 2>&1
  systemctl start hmmv-test-qemu.service
  wait_for 60 test -S /run/hmmv-qemu/a.qmp
  systemctl start hmmvd.service
  pid=$(show hmmvd MainPID)
  echo "hmmvd MainPID=$pid SystemCallErrorNumber=$(show hmmvd SystemCallErrorNumber)"
  echo "hmmvd $(grep -E '^Seccomp(_filters)?:' /proc/$pid/status | tr '\n\t' '  ')"
  echo "hmmvd $(grep -E '^CapEff:' /proc/$pid/status | tr '\n\t' '  ')"
  managed() { ctl vms 2>/dev/null | grep -q '"status" *: *"managed"'; }
  moved() { local v; v=$(ctl vms 2>/dev/null)
    local p=$(num promotions-total "$v") d=$(num demotions-total "$v")
    [ "$(( ${p:-0} + ${d:-0} ))" -gt 0 ]; }
  wait_for 90 managed && echo "managed yes" || echo "managed no"
  wait_for 90 moved && echo "moved yes" || echo "moved no"
  v=$(ctl vms)
  echo "vms dram-pages=$(num dram-pages "$v") slow-pages=$(num slow-pages "$v") written-pages=$(num written-pages "$v") promotions-total=$(num promotions-total "$v") demotions-total=$(num demotions-total "$v")"
  hmmvctl set-quota a --max 32 && echo "set-quota ok" || echo "set-quota failed"
  wait_for 30 bash -c 'hmmvctl --json vms | grep -q "\"dram-max-mib\" *: *32"' &&
    echo "quota applied yes" || echo "quota applied no"
  s=$(ctl status)
  echo "status intervals=$(num intervals "$s")"
  echo "before-stop MainPID=$(show hmmvd MainPID) ActiveState=$(show hmmvd ActiveState) NRestarts=$(show hmmvd NRestarts)"
  systemctl stop hmmvd.service
  # hmmvd is unloaded once stopped cleanly: its exit is read from the journal below.
  echo "after-stop ActiveState=$(show hmmvd ActiveState)"
  journalctl -q -o cat -u hmmvd.service >/out/hmmvd.journal 2>&1
  systemctl stop hmmv-test-qemu.service
} >/out/result
systemctl start --no-block poweroff.target
DRIVER
chmod 0755 "$R/usr/local/sbin/hmmv-filter-driver"
cat >"$R/etc/systemd/system/hmmv-filter-driver.service" <<'UNIT'
[Unit]
Description=hmmv unit-filter test driver
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/hmmv-filter-driver
[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/hmmv-filter-driver.service \
  "$R/etc/systemd/system/multi-user.target.wants/hmmv-filter-driver.service"

# ---- boot ----
# --register=no --keep-unit: no machined or systemd on the host to register with. 600 s is
# liveness only (the driver's own waits add up to 270 s at most, plus the boot; meson's bound
# is 900 s): a container cut short by it leaves a partial result and fails checks that say
# nothing of the sandbox.
T0=$SECONDS
timeout -k 10 600 systemd-nspawn -q --register=no --keep-unit --private-network \
  --bind="$WORK/out:/out" --console=pipe -D "$R" --boot </dev/null >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
wait "$NSPAWN_PID"; rc=$?
NSPAWN_PID=''
echo "# container ran $((SECONDS - T0)) s, systemd-nspawn exit $rc"
if [[ ! -s $WORK/out/result ]]; then
  sed 's/^/# console: /' "$WORK/console.log" | tail -n 30
  sed 's/^/# driver: /' "$WORK/out/driver.log" 2>/dev/null | tail -n 30
  skip "the container did not boot to its test driver (systemd-nspawn exit $rc, console above)"
fi
sed 's/^/# /' "$WORK/out/result"
res=$(cat "$WORK/out/result")
field() { grep -o "$1=[^ ]*" <<<"$res" | head -n 1 | cut -d= -f2; }

[[ $res =~ control\ Result=(signal|core-dump)\ ExecMainCode=[23]\ ExecMainStatus=31 ]] &&
  grep -q 'status=31/SYS' "$WORK/out/control.journal" &&
  ok "control: a call outside the filter kills with SIGSYS (status 31)" ||
  fail "control: umount2 under the unit's filter was not killed by SIGSYS: the filter is not in force"
# systemd 252 shows the kill action as SECCOMP_ERROR_NUMBER_KILL, INT_MAX - 1.
[[ $(field SystemCallErrorNumber) == 2147483646 ]] && ok "the drop-in's action is kill" ||
  fail "SystemCallErrorNumber is '$(field SystemCallErrorNumber)', not kill (2147483646)"
grep -q '^hmmvd Seccomp: *2 ' "$WORK/out/result" && ok "hmmvd runs in seccomp filter mode" ||
  fail "hmmvd is not in seccomp filter mode"
grep -q '^managed yes' <<<"$res" && ok "hmmvd manages the QEMU" || fail "the QEMU was not managed"
grep -q '^moved yes' <<<"$res" && ok "the sim mover moved pages" || fail "no page moved"
grep -q '^set-quota ok' <<<"$res" && grep -q '^quota applied yes' <<<"$res" &&
  ok "control requests answered (status, vms, set-quota applied)" ||
  fail "control requests failed"
[[ $(field ActiveState) == active && $(field NRestarts) == 0 ]] &&
  ok "hmmvd active with no restart before stop (MainPID unchanged: $(field MainPID))" ||
  fail "hmmvd not active or restarted before stop"
# systemd logs "Deactivated successfully" only for a main process that exited 0 (a kill is
# "Main process exited, code=killed|dumped, status=31/SYS" and "Failed with result").
j=$WORK/out/hmmvd.journal
grep -q "^after-stop ActiveState=inactive$" <<<"$res" && grep -q '^hmmvd stopped$' "$j" &&
  grep -q 'hmmvd.service: Deactivated successfully' "$j" &&
  ! grep -q -E 'code=(killed|dumped)|Failed with result|status=31/SYS' "$j" &&
  ok "systemctl stop: hmmvd exited 0 by itself, never killed" ||
  fail "hmmvd did not exit cleanly (its journal is below)"
if ((FAILED)); then
  sed 's/^/# journal: /' "$WORK/out/hmmvd.journal" | tail -n 40
  sed 's/^/# driver: /' "$WORK/out/driver.log" | tail -n 60
  exit 1
fi
exit 0
