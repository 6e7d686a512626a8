# SPDX-License-Identifier: GPL-2.0-or-later
# shellcheck shell=bash
#
# The scaffolding of the tests that run hmmvd against a private libvirtd with TCG domains of the
# patched QEMU (test-libvirt.sh, test-libvirt-hung.sh, test-libvirt-qemu-hung.sh,
# tests/bench/libvirt-fleet.sh): sourced, not run; the libvirt counterpart of hmmvd-lib.sh. The
# daemons themselves are libvirt-lib.sh's, sourced here. A script sources this first thing,
# before it looks at its arguments.
#
# Outside the namespace (the script as meson runs it):
#   lvt_args "$@"    the arguments HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT of test-libvirt*.sh:
#       outside, checks them (usage: exit 2), lvt_preflight (also LVT_TOOLS) and
#       lvt_enter_namespace; inside, sets HMMVD, HMMVCTL, GUEST and QEMU
#   lvt_preflight HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT [TOOL...]
#       skips (77, with the reason) unless this is root and libvirtd, virtlogd, virsh, unshare,
#       python3, timeout and each TOOL, hmmvd and hmmvctl, the guest and a patched QEMU are
#       there: $HMMV_QEMU, else SOURCE_ROOT/qemu-patches/build.sh's (seconds when cached);
#       exports it as LVT_QEMU for the inner run
#   lvt_enter_namespace ARG...
#       exec: the script again, as "$0 --inner ARG...", the init of its own mount and PID
#       namespace (--kill-child: if the test is killed, say by meson's timeout, the init gets
#       SIGTERM, runs its cleanup, and the kernel kills whatever is left in the namespace)
# Inside (the --inner run):
#   lvt_init NAME          WORK (/tmp/hmmv-NAME.XXXXXX, 0755), T0, FAILED=0, HMMVD_PID, URI,
#                          NS and the traps that run lvt_cleanup on exit, SIGTERM and SIGINT
#   lvt_start_libvirt QEMU GUEST   libvirt's private state, QEMU (LVT_EMULATOR, see below) and
#                          the guest in $WORK/bin readable by libvirt-qemu, virtlogd and libvirtd
#   lvt_domain_xml NAME MIB CMDLINE [ELEMENTS]   a TCG domain of the guest (stdout)
#   lvt_domain_define NAME / lvt_domain_start NAME   $WORK/NAME.xml defined (and started)
#   lvt_domains_start MIB CMDLINE NAME...   lvt_domain_xml and lvt_domain_start of each
#   lvt_hmmvd_conf INTERVAL_MS DRAM_MIB SLOW_MIB [LINE...]   $WORK/hmmvd.conf (sim mover)
#   lvt_start_hmmvd BINARY    hmmvd serving $WORK/hmmvd.sock; HMMVD_PID
#   lvt_sigstop PID... / lvt_sigcont_all   SIGSTOP kept track of: cleanup continues them first
# and the checks' vocabulary: log, ok, fail, check, wait_for, ctl, vm_field, status_field,
# intervals, alive, is_managed, all_managed, ran_since, log_count, log_has, set_meta.
#
# At exit (lvt_cleanup): the stopped pids continued, hmmvd, the domains defined or started here
# (LVT_DOMAINS), the QEMUs libvirtd could not stop, libvirtd and virtlogd stopped by their pid;
# the logs' tails shown on failure, copied to $HMMV_IT_KEEP_LOGS when set; WORK removed. A
# script may define lvt_at_cleanup (figures to print whatever the outcome): it runs first.
#
# Environment: HMMV_QEMU (the patched QEMU), HMMV_LIBVIRT_EMULATOR_IN_PLACE=1 (the domains'
# <emulator> is $HMMV_QEMU itself, an installed binary, not a copy in $WORK/bin),
# HMMV_LIBVIRT_ROOT (another libvirt, see libvirt-lib.sh), HMMV_IT_KEEP_LOGS=DIR.
# Knobs a script may set: LVT_TOOLS (more tools lvt_args needs), LVT_POLL_HZ (wait_for's polls
# a second, 5), LVT_DEBUG_EXIT (1: the domains have the isa-debug-exit device the guest exits
# through; 0: none).

# shellcheck source=tests/integration/libvirt-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/libvirt-lib.sh"

LVT_POLL_HZ=5 LVT_DEBUG_EXIT=1
LVT_DOMAINS=() LVT_SIGSTOPPED=() LVT_TOOLS=()

skip() { echo "SKIP: $*"; exit 77; }
log() { echo "# [$((SECONDS - T0))s] $*"; }
fail() { echo "FAIL: $*"; FAILED=1; }
ok() { echo "ok: $*"; }
# check DESCRIPTION COMMAND...: ok or fail
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# ---- outside the namespace ---------------------------------------------------------------------
lvt_preflight() {
  local hmmvd=$1 hmmvctl=$2 guest=$3 src=$4 tool qemu build_log
  shift 4
  [[ $(id -u) -eq 0 ]] || skip "needs root (starts its own libvirtd)"
  for tool in /usr/sbin/libvirtd /usr/sbin/virtlogd virsh unshare python3 timeout "$@"; do
    command -v "$tool" >/dev/null ||
      skip "$tool is not installed ($(lvt_package_of "$tool"))"
  done
  [[ -x $hmmvd && -x $hmmvctl ]] || skip "hmmvd or hmmvctl not built"
  [[ -r $guest ]] || skip "test guest $guest not built"
  qemu=${HMMV_QEMU:-}
  if [[ -z $qemu ]]; then
    echo "# building/finding the patched QEMU: bash $src/qemu-patches/build.sh"
    build_log=$(mktemp /tmp/hmmv-it-qemu-build.XXXXXX)
    qemu=$(bash "$src/qemu-patches/build.sh" 2>"$build_log" | tail -n 1) ||
      skip "qemu-patches/build.sh failed (see $build_log)"
    rm -f "$build_log"
  fi
  [[ -x $qemu ]] || skip "no patched QEMU (HMMV_QEMU unset and build.sh gave '$qemu')"
  export LVT_QEMU=$qemu
}

lvt_args() {
  if [[ ${1:-} != --inner ]]; then
    [[ $# -eq 4 ]] || { echo "usage: $0 HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT" >&2; exit 2; }
    lvt_preflight "$@" "${LVT_TOOLS[@]}"
    lvt_enter_namespace "$1" "$2" "$3"
  fi
  # shellcheck disable=SC2034  # for the sourcing script
  HMMVD=$2 HMMVCTL=$3 GUEST=$4 QEMU=$LVT_QEMU
}

lvt_package_of() {   # the Debian package a tool comes in
  case $1 in
    */libvirtd | */virtlogd) echo libvirt-daemon-system ;;
    virsh | virt-admin) echo libvirt-clients ;;
    unshare | setpriv) echo util-linux ;;
    timeout) echo coreutils ;;
    *) echo "$1" ;;
  esac
}

lvt_enter_namespace() {
  exec unshare --mount --propagation private --pid --fork --mount-proc \
    --kill-child=SIGTERM "$0" --inner "$@"
}

# ---- inside: set-up and clean-up -------------------------------------------------------------
lvt_init() {
  T0=$SECONDS
  WORK=$(mktemp -d "/tmp/hmmv-$1.XXXXXX")
  chmod 0755 "$WORK"
  FAILED=0
  HMMVD_PID=''
  URI=qemu:///system
  NS=https://hmmv.dev/ns/quota/1
  trap lvt_cleanup EXIT
  trap 'exit 143' TERM INT
}

lvt_cleanup() {
  local status=$?
  trap - EXIT TERM INT
  if declare -F lvt_at_cleanup >/dev/null; then lvt_at_cleanup || true; fi
  lvt_sigcont_all
  libvirt_stop_pid "$HMMVD_PID" hmmvd
  libvirt_stop_daemons "${LVT_DOMAINS[@]}"
  if [[ $status -ne 0 || $FAILED -ne 0 ]]; then
    echo "---- hmmvd log (tail) ----"; tail -n 60 "$WORK/hmmvd.log" 2>/dev/null || true
    echo "---- libvirtd log (tail) ----"; tail -n 30 "$WORK/libvirtd.log" 2>/dev/null || true
  fi
  if [[ -n ${HMMV_IT_KEEP_LOGS:-} ]]; then
    mkdir -p "$HMMV_IT_KEEP_LOGS" && cp "$WORK"/*.log "$HMMV_IT_KEEP_LOGS"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
  log "done in $((SECONDS - T0)) s"
  [[ $status -ne 0 ]] && exit "$status"
  exit "$FAILED"
}

lvt_sigstop() {   # lvt_sigstop PID...: SIGSTOP, continued by lvt_sigcont_all or at cleanup
  local pid
  for pid in "$@"; do
    kill -STOP "$pid"
    LVT_SIGSTOPPED+=("$pid")
  done
}

lvt_sigcont_all() {
  local pid
  for pid in "${LVT_SIGSTOPPED[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
  LVT_SIGSTOPPED=()
}

# QEMU runs as libvirt-qemu: the domains' binary and guest must be readable by it.
lvt_start_libvirt() {   # lvt_start_libvirt QEMU GUEST
  libvirt_private_state || { FAILED=1; exit 1; }
  mkdir -m 0755 "$WORK/bin"
  install -m 0755 "$1" "$WORK/bin/qemu-system-x86_64"
  install -m 0644 "$2" "$WORK/bin/guest.elf"
  LVT_EMULATOR=$WORK/bin/qemu-system-x86_64
  [[ ${HMMV_LIBVIRT_EMULATOR_IN_PLACE:-0} == 1 ]] && LVT_EMULATOR=$1
  libvirt_start_daemons || { fail "libvirtd does not start"; exit 1; }
  log "libvirt $(/usr/sbin/libvirtd --version | awk '{print $NF}') (libvirtd pid $LIBVIRTD_PID," \
    "virtlogd pid $VIRTLOGD_PID), QEMU $("$1" --version | head -n 1);" \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# lvt_domain_xml NAME MIB CMDLINE [ELEMENTS]: a one-vCPU TCG domain of MIB MiB (memfd, shared)
# that boots the guest with CMDLINE, its serial console in $WORK/NAME.serial.log; ELEMENTS
# (<cpu>, <numatune>) go after <vcpu>. Without <acpi/>, libvirt 9.0 passes -no-acpi, which
# QEMU 10.0 no longer accepts.
lvt_domain_xml() {
  local debug_exit=''
  [[ $LVT_DEBUG_EXIT == 1 ]] && debug_exit="
  <qemu:commandline>
    <qemu:arg value='-device'/><qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=0x04'/>
  </qemu:commandline>"
  cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <memory unit='MiB'>$2</memory>
  <vcpu>1</vcpu>
  ${4:-}
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$WORK/bin/guest.elf</kernel>
    <cmdline>$3</cmdline>
  </os>
  <features><acpi/></features>
  <devices>
    <emulator>$LVT_EMULATOR</emulator>
    <serial type='file'><source path='$WORK/$1.serial.log'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>$debug_exit
</domain>
EOF
}

lvt_domain_define() {   # lvt_domain_define NAME: $WORK/NAME.xml defined (destroyed at cleanup)
  LVT_DOMAINS+=("$1")
  virsh -q -c "$URI" define "$WORK/$1.xml" >/dev/null || { fail "domain $1 cannot be defined"; exit 1; }
}

lvt_domain_start() {   # lvt_domain_start NAME: defined and started; the test ends if it fails
  lvt_domain_define "$1"
  virsh -q -c "$URI" start "$1" >/dev/null || { fail "domain $1 does not start"; exit 1; }
}

lvt_domains_start() {   # lvt_domains_start MIB CMDLINE NAME...
  local mib=$1 cmdline=$2 dom
  shift 2
  for dom in "$@"; do
    lvt_domain_xml "$dom" "$mib" "$cmdline" >"$WORK/$dom.xml"
    lvt_domain_start "$dom"
  done
  log "domains started: $*"
}

# lvt_hmmvd_conf INTERVAL_MS SIM_DRAM_MIB SIM_SLOW_MIB [LINE...]: hmmvd.conf for libvirt on
# $URI, the sim mover with those tiers; each LINE is added at the end, in [libvirt] unless a
# LINE opens another section.
lvt_hmmvd_conf() {
  cat >"$WORK/hmmvd.conf" <<EOF
[daemon]
interval-ms=$1
control-socket=$WORK/hmmvd.sock
log-level=info
[memory]
mover=sim
sim-dram-mib=$2
sim-slow-mib=$3
[libvirt]
uri=$URI
reconnect-ms=500
EOF
  shift 3
  (($# == 0)) || printf '%s\n' "$@" >>"$WORK/hmmvd.conf"
}

# lvt_start_hmmvd BINARY: hmmvd in the foreground (its log appended to $WORK/hmmvd.log); the
# test ends unless it serves its control socket within 60 s (a liveness bound).
lvt_start_hmmvd() {
  "$1" --foreground --config "$WORK/hmmvd.conf" --pid-file "$WORK/hmmvd.pid" \
    >>"$WORK/hmmvd.log" 2>&1 &
  HMMVD_PID=$!
  wait_for 60 "hmmvd serves its control socket" test -S "$WORK/hmmvd.sock" || exit 1
}

# ---- checks ------------------------------------------------------------------------------------
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND LVT_POLL_HZ times a second, at most
# SECONDS x LVT_POLL_HZ times (a liveness bound that grows when the machine is slow, never a
# figure); fails with the description when COMMAND never succeeded or hmmvd died meanwhile.
wait_for() {
  local limit=$1 what=$2 i nap t0=$SECONDS
  shift 2
  nap=$(awk -v hz="$LVT_POLL_HZ" 'BEGIN { print 1 / hz }')
  for ((i = 0; i < limit * LVT_POLL_HZ; i++)); do
    "$@" && return 0
    if [[ -n $HMMVD_PID ]] && ! kill -0 "$HMMVD_PID" 2>/dev/null; then
      fail "$what (hmmvd died)"
      return 1
    fi
    sleep "$nap"
  done
  fail "$what (waited $limit s: $i polls, which took $((SECONDS - t0)) s)"
  return 1
}

ctl() { "$HMMVCTL" --socket "$WORK/hmmvd.sock" "$@"; }
alive() { kill -0 "$HMMVD_PID" 2>/dev/null; }

# vm_field NAME EXPR: a Python expression on the VM's object v of `hmmvctl --json vms`;
# <absent> without that VM, <no answer> when hmmvd did not answer, <error: ...> when EXPR fails
vm_field() {
  local out
  out=$(timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" --json vms 2>/dev/null) ||
    { echo "<no answer>"; return 0; }
  python3 -c '
import json, sys
try:
    for v in json.loads(sys.stdin.read()):
        if v["name"] == sys.argv[1]:
            print(eval(sys.argv[2]))
            break
    else:
        print("<absent>")
except Exception as e:
    print(f"<error: {type(e).__name__} {e}>")' "$1" "$2" <<<"$out"
}

# status_field KEY: a member of `hmmvctl --json status`; nothing and status 1 (the reason on
# stderr) when hmmvd did not answer
status_field() {
  local out
  if out=$(timeout 30 "$HMMVCTL" --socket "$WORK/hmmvd.sock" --json status 2>&1); then
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$out" "$1" \
      2>/dev/null && return 0
  fi
  echo "# hmmvctl status ($1): no answer: ${out:0:300}" >&2
  return 1
}
intervals() { status_field intervals || echo -1; }   # -1 when hmmvd did not answer

is_managed() { [[ $(vm_field "$1" 'v["status"]') == managed ]]; }
all_managed() { local d; for d in "$@"; do is_managed "$d" || return 1; done; }
# ran_since N NAME...: hmmvd alive, each NAME managed and run without error by interval N or a
# later one (hmmvd's last-good-interval of the VM)
ran_since() {
  local from=$1 d n
  shift
  alive || return 1
  for d in "$@"; do
    n=$(vm_field "$d" 'v.get("last-good-interval", -1) if v["status"] == "managed" else -1')
    [[ $n =~ ^[0-9]+$ ]] && ((n >= from)) || return 1
  done
}
log_count() { grep -c -- "$1" "$WORK/hmmvd.log" || true; }
log_has() { grep -q -- "$1" "$WORK/hmmvd.log"; }
# set_meta DOMAIN XML: hmmv's metadata element of DOMAIN (live and persistent) with virsh
set_meta() { virsh -q -c "$URI" metadata "$1" --uri "$NS" --key hmmv --live --config --set "$2"; }
