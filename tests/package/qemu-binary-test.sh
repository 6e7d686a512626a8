#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The qemu-system-x86-hmmv binary package (issues 13 and 9): Debian 13's QEMU 10.0 with
# qemu-patches/10.0/series, once built. Its full build is long (QEMU's compilation, 11 minutes
# on 2 idle cores and far more under load) and runs by hand (scripts/package --qemu, cached by
# the series' hash under /var/cache/hmmv/qemu-deb); without a cached build this test skips,
# saying so. With one:
#   - what the .deb holds: only hmmv-named files, none of Debian's qemu-system-x86 (compared
#     with the host's, when installed), and the AppArmor abstraction of the tree;
#   - installed with dpkg in a clean bookworm root (cached debootstrap plus the 'runtime'
#     layer, which has its dependencies: tests/package/roots.sh), --version, and the test
#     guest booted under TCG there, answering over QMP: query-hmmv, query-hmmv-ramblocks, a
#     memfd passed in an fd set (add-fd, as hmmvd passes it to 10.0), hmmv-start with its
#     fdset-id (QEMU seals the region), hmmv-sync (the guest's writes published), hmmv-stop;
#     removed and purged, nothing of it left;
#   - libvirt's <emulator>: the libvirt integration test (tests/integration/test-libvirt.sh:
#     its own libvirtd, real TCG domains, hmmvd managing them) with the packaged binary as
#     every domain's emulator.
# TAP output. usage: qemu-binary-test.sh SOURCE_ROOT HMMVD HMMVCTL GUEST_ELF
set -uo pipefail
root=$(cd "$1" && pwd)
hmmvd=$2 hmmvctl=$3 guest=$4
if [ "$(id -u)" -ne 0 ]; then
  echo "1..0 # SKIP needs root (chroot, overlay mount, libvirtd)"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
fi
work=$(mktemp -d /tmp/hmmv-qemu-binary-test.XXXXXX)
source "$root/tests/package/roots.sh"
qemu_pid=''
cleanup() {
  [ -n "$qemu_pid" ] && kill -9 "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  roots_cleanup
  rm -rf "$work"
}
trap cleanup EXIT
bash "$root/debian/qemu/generate" --binary --cached-only --output "$work/debs" >"$work/gen.log" 2>&1
rc=$?
if [ "$rc" = 3 ]; then
  echo "1..0 # SKIP qemu-system-x86-hmmv is not built for this series (scripts/package --qemu builds it, by hand: long)"
  exit 0  # TAP: meson reads the skip from the plan; a non-zero status would be an error
elif [ "$rc" != 0 ]; then
  sed 's/^/# /' "$work/gen.log"
  echo "Bail out! debian/qemu/generate --binary --cached-only failed"
  exit 1
fi
n=0 failed=0
check() { local what=$1; shift; n=$((n + 1))
  if "$@"; then echo "ok $n - $what"; else echo "not ok $n - $what"; failed=1; fi; }
deb=$(ls "$work"/debs/qemu-system-x86-hmmv_*_amd64.deb)
version=$(dpkg-deb -f "$deb" Version)
echo "# $(basename "$deb"): $(($(stat -c %s "$deb") / 1024)) KiB"

# ---- contents ----
files=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\.||' | grep -v '/$')
check "every file of the package is named for hmmv" \
  bash -c "! grep -v -e hmmv <<<'$files'"
check "/usr/bin/qemu-system-x86_64-hmmv is in it" grep -qx /usr/bin/qemu-system-x86_64-hmmv <<<"$files"
if dpkg-query -W qemu-system-x86 >/dev/null 2>&1; then
  check "no file in common with Debian's qemu-system-x86 ($(dpkg-query -W -f='${Version}' qemu-system-x86))" \
    test -z "$(comm -12 <(sort <<<"$files") <(dpkg -L qemu-system-x86 | sort))"
fi
dpkg-deb -x "$deb" "$work/x"
check "the AppArmor abstraction is the tree's debian/qemu/libvirt-qemu-hmmv" \
  cmp -s "$work/x/etc/apparmor.d/abstractions/libvirt-qemu-hmmv" "$root/debian/qemu/libvirt-qemu-hmmv"

# ---- installed in a clean root ----
# The cache's notes go to the TAP stream (fd 3), not into the path captured by $(...): a
# process substitution inherits the capture's stdout, and on a cold cache the note became part of
# the path (the package suite failed on every fresh machine).
exec 3>&1
layer=$(roots_runtime 2> >(sed 's/^/# /' >&3)) || { echo "Bail out! the runtime layer"; exit 1; }
r=$work/root
roots_mount "$r" "$work/upper" "$layer" || { echo "Bail out! overlay mount"; exit 1; }
cp "$deb" "$r/tmp/"
check "dpkg -i $(basename "$deb") (its dependencies are in the root)" \
  chroot "$r" dpkg -i "/tmp/$(basename "$deb")"
rm -f "$r/tmp/$(basename "$deb")"
v=$(chroot "$r" qemu-system-x86_64-hmmv --version 2>&1 | head -n 1)
echo "# $v"
# QEMU's own version (Debian's source carries the stable releases: 1:10.0.13+ds-0+deb13u1
# says 10.0.13). debian/rules does not pass Debian's --with-pkgversion, so the line does not
# name the package's version (Debian's qemu-system-x86 prints "(Debian 1:10.0...)").
upstream=${version#*:}
upstream=${upstream%%[+~-]*}
check "qemu-system-x86_64-hmmv --version: QEMU $upstream (package $version)" \
  grep -qE "^QEMU emulator version ${upstream//./\\.}(\.[0-9]+)?( |\$)" <<<"$v"
check "the package is QEMU 10.0, the supported version (README)" \
  grep -qE '^1:10\.0\.' <<<"$version"

# The guest under TCG in the root, its QMP socket reached from outside.
mkdir -p "$r/run/hmmv-test"
cp "$guest" "$r/run/hmmv-test/guest.elf"
chroot "$r" qemu-system-x86_64-hmmv -accel tcg -M pc -m 128 -display none -nic none \
  -serial none -monitor none -qmp unix:/run/hmmv-test/qmp,server=on,wait=off \
  -kernel /run/hmmv-test/guest.elf -append "mode=workload hot_mib=8 cold_mib=24 report_every=0" \
  >"$work/qemu.log" 2>&1 &
qemu_pid=$!
python3 - "$r/run/hmmv-test/qmp" >"$work/qmp.log" 2>&1 <<'PY'
import fcntl, json, os, socket, sys, time
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]):
    assert time.monotonic() < deadline, "no QMP socket after 60 s"
    time.sleep(0.2)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(60)
f = s.makefile("r")
def recv():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
def cmd(name, fds=(), **args):
    data = json.dumps({"execute": name, "arguments": args}).encode()
    if fds:
        socket.send_fds(s, [data], list(fds))
    else:
        s.sendall(data)
    r = recv()
    assert "return" in r, f"{name}: {r}"
    print(f"{name}: {json.dumps(r['return'])[:200]}")
    return r["return"]
recv()  # greeting
cmd("qmp_capabilities")
info = cmd("query-hmmv")
assert info["active"] is False
blocks = cmd("query-hmmv-ramblocks")
assert any(b.get("used-length", 0) > 0 for b in blocks)
fd = os.memfd_create("hmmv-test", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
fdset = cmd("add-fd", fds=[fd])["fdset-id"]
cmd("hmmv-start", **{"fdset-id": fdset, "interval-ms": 0})
info = cmd("query-hmmv")
assert info["active"] is True and info.get("fdset-id") == fdset, info
# QEMU sized the region and sealed it against shrinking and growing (the memfd is shared).
seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
assert seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_GROW, f"seals {seals:#x}"
assert os.fstat(fd).st_size >= info["size"] > 0, (os.fstat(fd).st_size, info)
print(f"REGION {info['size']} bytes, seals {seals:#x}")
# The guest writes all the time, so a sync finds pages as soon as it runs: syncs are repeated
# until one does (a loaded host may boot the guest late), with 120 s for liveness only.
published, syncs, give_up = 0, 0, time.monotonic() + 120
while published == 0 and time.monotonic() < give_up:
    cmd("hmmv-sync")
    syncs += 1
    published = cmd("query-hmmv")["counters"]["pages-published"]
    if published == 0:
        time.sleep(0.2)
assert published > 0, f"no written page published after {syncs} syncs (120 s)"
print(f"PUBLISHED {published} after {syncs} sync(s)")
cmd("hmmv-stop")
assert cmd("query-hmmv")["active"] is False
cmd("quit")
PY
rc=$?
sed 's/^/# qmp: /' "$work/qmp.log" | grep -E 'REGION|PUBLISHED|Error|assert|hmmv-start' | head -n 10
check "the guest boots under TCG and answers query-hmmv, add-fd + hmmv-start (region sealed), hmmv-sync (pages published), hmmv-stop" \
  test "$rc" = 0
[ "$rc" = 0 ] || sed 's/^/# /' "$work/qmp.log" "$work/qemu.log" | tail -n 30
wait "$qemu_pid" 2>/dev/null
qemu_pid=''
check "dpkg --purge qemu-system-x86-hmmv" chroot "$r" dpkg --purge qemu-system-x86-hmmv
left=$(cd "$work/upper" && find . -mindepth 1 ! -type d | grep -v -E '^\./var/lib/dpkg/|^\./var/log/dpkg\.log$|^\./run/hmmv-test|^\./var/cache/debconf/')
check "nothing of it left after purge" test -z "$left"
[ -z "$left" ] || sed 's/^/# left: /' <<<"$left"
roots_cleanup

# ---- libvirt's <emulator> ----
# On the host, from the unpacked package: QEMU run from outside /usr/bin looks for its
# firmware relative to itself (it relocates the configured /usr/share/seabios and the rest
# to BINARY_DIR/../share/...), so a copy elsewhere finds no bios-256k.bin. The unpacked
# tree gets the firmware of the Debian packages the package depends on beside it, and the
# domains run the binary in place (libvirt-qemu must reach it: the work directory is 0755).
firmware=(usr/share/qemu usr/share/seabios usr/lib/ipxe/qemu)
missing=
for d in "${firmware[@]}"; do [ -d "/$d" ] || missing="$missing /$d"; done
if [ -n "$missing" ]; then
  echo "# libvirt: not run: the host lacks$missing (qemu-system-data, seabios, ipxe-qemu)"
elif [ -x "$hmmvd" ] && [ -x "$hmmvctl" ]; then
  for d in "${firmware[@]}"; do mkdir -p "$work/x/$(dirname "$d")"; ln -s "/$d" "$work/x/$d"; done
  chmod 0755 "$work"
  start=$(date +%s)
  HMMV_QEMU=$work/x/usr/bin/qemu-system-x86_64-hmmv HMMV_LIBVIRT_EMULATOR_IN_PLACE=1 \
    bash "$root/tests/integration/test-libvirt.sh" "$hmmvd" "$hmmvctl" "$guest" "$root" \
    >"$work/libvirt.log" 2>&1
  rc=$?
  if [ "$rc" = 77 ]; then
    echo "# libvirt: $(grep SKIP "$work/libvirt.log")"
  else
    grep -E '^ok:' "$work/libvirt.log" | sed 's/^/# libvirt: /'
    check "as libvirt's <emulator>: the libvirt integration test passes ($(($(date +%s) - start)) s)" \
      test "$rc" = 0
    [ "$rc" = 0 ] || sed 's/^/# /' "$work/libvirt.log" | tail -n 40
  fi
fi
echo "1..$n"
exit $failed
