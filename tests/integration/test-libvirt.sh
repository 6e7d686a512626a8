#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd against a real libvirtd with real TCG domains (suite 'integration').
#
#   test-libvirt.sh HMMVD HMMVCTL GUEST_ELF SOURCE_ROOT
#
# Runs as root. The whole test lives in a private mount and PID namespace (unshare -m -p):
# tmpfs over /run, and private copies of /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt
# and /var/log/libvirt, so the host's libvirt state is untouched; the namespace's init (this
# script) reaps the QEMUs libvirtd daemonizes at once, which makes `virsh destroy` fast (the
# host's PID 1 reaps only every ~2 s), and when it exits the kernel kills anything left.
# Every process started (virtlogd, libvirtd, QEMUs, hmmvd) is still stopped by its pid, also
# when a check fails.
#
# The patched QEMU: $HMMV_QEMU, else `bash qemu-patches/build.sh` (seconds when cached). The
# domains run a copy of it readable by libvirt-qemu; with HMMV_LIBVIRT_EMULATOR_IN_PLACE=1 their
# <emulator> is $HMMV_QEMU itself (an installed binary: /usr/bin/qemu-system-x86_64-hmmv).
# Another libvirt: $HMMV_LIBVIRT_ROOT, a tree unpacked with dpkg -x (see libvirt-lib.sh).
# The scaffolding (namespace, daemons, domains, hmmvd, cleanup): libvirt-test-lib.sh.
# Exit 0 pass, 1 fail, 77 skip (with the reason).
set -euo pipefail
# shellcheck source=tests/integration/libvirt-test-lib.sh
. "$(dirname "$0")/libvirt-test-lib.sh"

LVT_TOOLS=(setpriv)
lvt_args "$@"
INTERVAL_MS=500
DOMAINS=(hmmv-it-a hmmv-it-b hmmv-it-c)
PINNED=hmmv-it-pinned
LVT_POLL_HZ=10
lvt_init it
# figures for the run (not checked), also when a check failed: how often a QEMU missed a QMP
# deadline
lvt_at_cleanup() {
  [[ -f $WORK/hmmvd.log ]] || return 0
  log "hmmvd log: $(log_count 'missed a QMP deadline') freezes for a missed QMP deadline, $(grep -ci 'deadline\|did not answer\|not answered' "$WORK/hmmvd.log") lines naming a deadline"
}
lvt_start_libvirt "$QEMU" "$GUEST"
domain_xml() {   # domain_xml NAME [ELEMENTS]
  lvt_domain_xml "$1" 128 'mode=workload hot_mib=8 cold_mib=40 report_every=0' "${2:-}"
}

# C has two memory backends (two NUMA cells, the second without CPUs): ram-node0 holds the
# workload's 48 MiB, ram-node1 is what an operator excludes below.
TWO_CELLS="<cpu><numa><cell id='0' cpus='0' memory='64' unit='MiB'/><cell id='1' memory='64' unit='MiB'/></numa></cpu>"
for dom in "${DOMAINS[@]}"; do
  numa=''
  [[ $dom == "${DOMAINS[2]}" ]] && numa=$TWO_CELLS
  domain_xml "$dom" "$numa" >"$WORK/$dom.xml"
  lvt_domain_start "$dom"
  log "started $dom"
done
# mode restrictive: libvirt confines the memory with cpuset.mems only; strict would need a QEMU
# built with NUMA support to mbind.
domain_xml "$PINNED" "<numatune><memory mode='restrictive' nodeset='0'/></numatune>" >"$WORK/$PINNED.xml"
lvt_domain_define "$PINNED"
PINNED_UP=1
virsh -q -c "$URI" start "$PINNED" >/dev/null 2>"$WORK/pinned.err" ||
  { PINNED_UP=0; log "numatune domain does not start here ($(head -c 200 "$WORK/pinned.err")): check skipped"; }
log "domains started: $(virsh -q -c "$URI" list --name | tr '\n' ' ')"

# ---- hmmvd -----------------------------------------------------------------------------------
# The sim mover models a 256 MiB DRAM tier, less than the 3 x 128 MiB the domains use.
lvt_hmmvd_conf "$INTERVAL_MS" 256 1024
lvt_start_hmmvd "$HMMVD"

# wait_intervals N: until hmmvd has run N more intervals (so each VM went through them)
wait_intervals() {
  local target=$(($(status_field intervals) + $1))
  ran() { [[ $(status_field intervals) -ge $target ]]; }
  wait_for 60 "hmmvd runs $1 more intervals" ran
}

wait_for 60 "every domain discovered and managed" all_managed "${DOMAINS[@]}" &&
  ok "discovered and managed: ${DOMAINS[*]}"
if [[ $PINNED_UP -eq 1 ]]; then
  status=$(vm_field "$PINNED" 'v["status"]')
  check "numatune domain reported as unmanaged: $status" test "${status#*numatune}" != "$status"
fi

# ---- how hmmvd handed its region to QEMU through libvirt ---------------------------------------
# In an fd set (add-fd through virDomainQemuMonitorCommandWithFiles, removed once hmmv-start has
# QEMU's duplicate) where hmmv-start takes one: 10.0's add-fd patch (0012, or 0013 since the export
# core and its QMP commands are two patches), as build.sh's BUILD-INFO beside the binary says (a
# QEMU built otherwise must take one); else with getfd.
first=${DOMAINS[0]}
qemu_info=$(dirname "$(dirname "$QEMU")")/BUILD-INFO
hmmv_info=$(virsh -q -c "$URI" qemu-monitor-command "$first" '{"execute":"query-hmmv"}' 2>&1 || true)
if [[ ! -e $qemu_info ]] || grep -Eq '00(12|13)-hmmv-take-the-region-from-an-fd-set-add-fd.patch' "$qemu_info"; then
  fdset=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["return"].get("fdset-id", "none"))' \
    "$hmmv_info" 2>/dev/null || echo none)
  check "region of $first passed in fd set $fdset (query-hmmv: ${hmmv_info:0:200})" test "$fdset" != none
  fdsets=$(virsh -q -c "$URI" qemu-monitor-command "$first" '{"execute":"query-fdsets"}' 2>&1 || true)
  left=$(python3 -c 'import json,sys
sets = [s for s in json.loads(sys.argv[1])["return"] if s["fdset-id"] == int(sys.argv[2])]
print(len(sets[0]["fds"]) if sets else "no such set")' "$fdsets" "$fdset" 2>/dev/null || echo "?")
  check "fd set $fdset of $first holds no fd of hmmvd's once started (query-fdsets: ${fdsets:0:200})" \
    test "$left" = 0
else
  check "region of $first passed with getfd (query-hmmv: ${hmmv_info:0:200})" \
    grep -q '"fdname": *"hmmv-region"' <<<"$hmmv_info"
fi

# ---- a quota set with virsh metadata --------------------------------------------------------
A=${DOMAINS[0]} B=${DOMAINS[1]} C=${DOMAINS[2]}
others_fine() { alive && all_managed "$A" "$B"; }
# others_run_on WHAT: A and B managed and run by an interval that had not finished when this was
# called. Waited for (60 s), never sampled once: a loaded machine can slow a TCG QEMU of A or B
# past the 5 s QMP deadline, and it is then frozen and thawed, which is hmmvd doing its job.
others_run_on() {
  local from
  from=$(status_field intervals)
  wait_for 60 "$1: $A and $B managed and run by interval $from or later" \
    ran_since "$from" "$A" "$B" && ok "$1: $A and $B managed and run by interval $from or later"
}
budget_before=$(vm_field "$A" 'v["budget-pages"]')
# A loaded machine can take seconds for any of this, so nothing here is timed: hmmvd numbers
# its intervals, and the quota must be effective at the first interval that starts after
# hmmvd accepted it (the metadata event). The time it took is reported, not checked.
intervals_before=$(status_field intervals)
t_set=$(date +%s%N)
set_meta "$A" '<memory dram-min-mib="40" dram-max-mib="40" weight="100"/>'
quota_effective() {
  [[ $(vm_field "$A" 'v["quota"]["dram-max-mib"]') == 40 &&
     $(vm_field "$A" '"quota-effective-interval" in v') == True ]]
}
if wait_for 60 "quota of $A shown by hmmvctl and effective" quota_effective; then
  log "quota of $A shown and effective $((($(date +%s%N) - t_set) / 1000000)) ms after virsh metadata (a figure, not a limit)"
  accepted=$(vm_field "$A" 'v["quota-accepted-interval"]')
  effective=$(vm_field "$A" 'v["quota-effective-interval"]')
  check "quota accepted after it was set (next interval $accepted, $intervals_before had run before)" \
    test "$accepted" -ge "$intervals_before"
  check "quota effective at the first interval after the event (accepted before $accepted, effective in $effective)" \
    test "$effective" -eq "$accepted"
fi
budget_ok() { [[ $(vm_field "$A" 'v["budget-pages"]') == 10240 ]]; }
wait_for 60 "budget of $A becomes 40 MiB (was $budget_before pages)" budget_ok &&
  ok "budget of $A: $budget_before -> 10240 pages"

# ---- malformed metadata: rejected, last good quota kept -------------------------------------
set_meta "$A" '<memory dram-min-mib="64" dram-max-mib="32"/>'
set_meta "$B" '<memory dram-min-mib="lots"/>'
kept_a() {
  [[ $(vm_field "$A" 'v["quota"]["dram-max-mib"]') == 40 &&
     $(vm_field "$A" 'v["quota-error"] is not None') == True ]] && log_has "vm $A: quota rejected"
}
rejected_b() {
  [[ $(vm_field "$B" 'v["quota-error"] is not None') == True ]] &&
    log_has "vm $B: hmmv metadata rejected"
}
wait_for 60 "min > max rejected, last good quota kept" kept_a &&
  ok "min > max rejected, last good quota kept: $(vm_field "$A" 'v["quota-error"]')"
wait_for 60 "unparsable metadata rejected" rejected_b &&
  ok "unparsable metadata rejected: $(vm_field "$B" 'v["quota-error"]')"
set_meta "$A" '<memory dram-min-mib="40" dram-max-mib="40" weight="100"/>'

# ---- an operator's excluded backend, set with virsh metadata on a running domain (issue 9) ---
# C's ram-node1 excluded: hmmvd restarts C's tracking without it (hmmv-stop, hmmv-start with
# exclude), so QEMU leaves it out of the export and hmmvd out of C's pages.
# ramblocks DOM: QEMU's query-hmmv-ramblocks through libvirt, as "memdev tracked" lines
ramblocks() {
  virsh -q -c "$URI" qemu-monitor-command "$1" '{"execute":"query-hmmv-ramblocks"}' 2>&1 |
    python3 -c 'import json,sys
for b in json.load(sys.stdin)["return"]:
    if "memdev" in b: print(b["memdev"], str(b.get("tracked")).lower())' 2>/dev/null | sort | tr '\n' ' '
}
c_excludes() {   # c_excludes LIST PAGES: C managed with that exclusion and those pages left out
  [[ $(vm_field "$C" 'v["status"]') == managed && $(vm_field "$C" 'v["exclude"]') == "$1" &&
     $(vm_field "$C" 'v["excluded-pages"]') == "$2" ]]
}
set_meta "$C" '<memory><exclude backend="ram-node1"/></memory>'
if wait_for 60 "$C managed with ram-node1 excluded (64 MiB, 16384 pages)" c_excludes "['ram-node1']" 16384; then
  ok "$C: exclude ['ram-node1'], excluded-pages 16384 (64 MiB), managed"
  blocks=$(ramblocks "$C")
  check "$C: QEMU's query-hmmv-ramblocks: ram-node0 tracked, ram-node1 not ($blocks)" \
    test "$blocks" = "ram-node0 true ram-node1 false "
fi
check "$C: the restart is logged" log_has "vm $C: excluded backends changed: \[\] -> \[ram-node1\]"
others_run_on "exclusion set on $C"
# a name that is no backend of C: C unmanaged with a status naming it, its QEMU running, the
# others managed
set_meta "$C" '<memory><exclude backend="nosuch"/></memory>'
c_rejected() { [[ $(vm_field "$C" 'v["status"]') == "hmmv metadata rejected: "*nosuch* ]]; }
wait_for 60 "$C unmanaged, its status naming nosuch" c_rejected &&
  ok "$C with exclude nosuch: $(vm_field "$C" 'v["status"]')"
check "$C's QEMU still runs" kill -0 "$(<"/run/libvirt/qemu/$C.pid")"
others_run_on "bad exclusion on $C"
# fixed: managed again, ram-node1 left out
set_meta "$C" '<memory><exclude backend="ram-node1"/></memory>'
wait_for 60 "$C managed again once its exclusion is fixed" c_excludes "['ram-node1']" 16384 &&
  ok "$C managed again with ram-node1 excluded once the metadata was fixed"
# hmmvctl set-quota keeps the <exclude> children (and C's exclusion does not change)
if ctl set-quota "$C" --min 10 --max 50 --weight 100 >/dev/null 2>"$WORK/setq.err"; then
  c_quota() { [[ $(vm_field "$C" 'v["quota"]["dram-max-mib"]') == 50 ]]; }
  wait_for 60 "$C's quota from hmmvctl set-quota applied" c_quota
  meta=$(virsh -q -c "$URI" metadata "$C" --uri "$NS" --live 2>/dev/null | tr -d '\n' || true)
  check "hmmvctl set-quota kept the exclusion: $meta" \
    grep -q 'dram-max-mib="50".*<hmmv:exclude backend="ram-node1"/>\|dram-max-mib="50".*<exclude backend="ram-node1"/>' <<<"$meta"
  check "$C still excludes ram-node1 after set-quota" c_excludes "['ram-node1']" 16384
else
  fail "hmmvctl set-quota $C: $(cat "$WORK/setq.err")"
fi
# A malformed element from now on (a bad exclusion too): through the stretch below C must keep
# its last good quota (max 50) and exclusion. (C is frozen there, not dropped and discovered
# again: the rediscovery with malformed metadata is tests/test-libvirt.c's.)
set_meta "$C" '<memory dram-max-mib="lots"><exclude backend="a b"/></memory>'
c_kept() {
  [[ $(vm_field "$C" 'v["quota-error"] is not None') == True ]] && log_has "vm $C: hmmv metadata rejected"
}
wait_for 60 "$C's malformed metadata rejected, the last good kept" c_kept &&
  ok "$C's malformed metadata rejected while running: $(vm_field "$C" 'v["quota-error"]')"

# ---- a domain whose QEMU stops answering QMP (issue 10, item 3; issue 8) ---------------------
# SIGSTOP freezes C's QEMU; libvirt waits for its monitor without any limit. hmmvd's QMP to C
# runs on C's own worker thread with a deadline (5 s): C must be frozen with a log line, not
# dropped: kept in the core with the DRAM it holds counted (its vms entry frozen and in-core,
# its dram-pages unchanged; status vms-frozen, frozen-dram-pages and held-outside-pages at least
# its own: a loaded host may freeze A or B meanwhile too), for as many intervals as it stays stopped; the control socket must keep
# answering and the interval count keep growing with A and B managed; after SIGCONT, C must be
# thawed and managed again, and run by a newer interval. Counted, never timed: the times are
# printed as figures.
C_PID=$(<"/run/libvirt/qemu/$C.pid")
intervals_before=$(status_field intervals)
t_stop=$(date +%s%N)
lvt_sigstop "$C_PID"
asked=0 answered=0 worst_ms=0 frozen_ms=''
c_frozen() { [[ $(vm_field "$C" 'v["status"]') == "not answering (frozen, "* ]]; }
for ((i = 0; i < 300; i++)); do
  t0=$(date +%s%N)
  asked=$((asked + 1))
  ctl status >/dev/null 2>&1 && answered=$((answered + 1))
  ms=$((($(date +%s%N) - t0) / 1000000))
  ((ms > worst_ms)) && worst_ms=$ms
  if [[ -z $frozen_ms ]] && c_frozen; then frozen_ms=$((($(date +%s%N) - t_stop) / 1000000)); fi
  [[ -n $frozen_ms ]] && ((asked >= 20)) && break
  sleep 0.2
done
check "QEMU of $C stopped: $C frozen (after $frozen_ms ms, a figure)" test -n "$frozen_ms"
check "QEMU of $C stopped: frozen with a log line" log_has "vm $C: frozen, QEMU missed a QMP deadline"
check "QEMU of $C stopped: hmmvctl status answered $answered of $asked times (slowest $worst_ms ms, a figure)" \
  test "$answered" -eq "$asked"
C_FROZEN_DRAM=$(vm_field "$C" 'v["dram-pages"]')
# c_counted: one look at vms and status: C frozen, in the core, its DRAM as when it froze and
# counted as held outside the balance
c_counted() {
  local vms status
  vms=$(ctl --json vms 2>/dev/null) && status=$(ctl --json status 2>/dev/null) || return 1
  python3 - "$C" "$C_FROZEN_DRAM" "$vms" "$status" <<'PY'
import json, sys
name, dram, vms, status = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
v = next(v for v in vms if v["name"] == name)
ok = (v["frozen"] and v["in-core"] and v["dram-pages"] == dram and dram > 0 and
      status["vms-frozen"] >= 1 and status["frozen-dram-pages"] >= dram and
      status["held-outside-pages"] >= dram)
print(f"# {name}: frozen {v['frozen']} in-core {v['in-core']} dram-pages {v['dram-pages']} "
      f"(at the freeze {dram}); status vms-frozen {status['vms-frozen']} frozen-dram-pages "
      f"{status['frozen-dram-pages']} held-outside-pages {status['held-outside-pages']}")
sys.exit(0 if ok else 1)
PY
}
check "QEMU of $C stopped: $C kept in the core, its $C_FROZEN_DRAM DRAM pages counted" c_counted
wait_intervals 10 &&
  ok "QEMU of $C stopped: hmmvd ran $(($(status_field intervals) - intervals_before)) intervals meanwhile (at least 10)"
check "QEMU of $C stopped, 10 intervals on: $C still frozen, its DRAM still counted" c_counted
# A and B kept being run over the stretch: three times in a row, each by a newer interval.
for round in 1 2 3; do others_run_on "QEMU of $C stopped ($round/3)" || break; done
check "QEMU of $C stopped, at the end of the stretch: its DRAM still counted" c_counted
lvt_sigcont_all
t_cont=$(date +%s%N)
wait_for 60 "$C managed again once its QEMU answers" is_managed "$C" &&
  ok "$C managed again $((($(date +%s%N) - t_cont) / 1000000)) ms after SIGCONT (a figure)"
check "$C thawed with a log line" log_has "vm $C: QEMU answers again: thawed"
check "$C thawed: not frozen, frozen $(vm_field "$C" 'v["freezes-total"]') time(s)" \
  test "$(vm_field "$C" 'v["frozen"] is False and v["freezes-total"] >= 1')" == True
from=$(status_field intervals)
wait_for 60 "$C run again by interval $from or later" ran_since "$from" "$C" &&
  ok "$C run again by interval $from or later"
c_last_good() {
  c_excludes "['ram-node1']" 16384 && [[ $(vm_field "$C" 'v["quota"]["dram-max-mib"]') == 50 &&
    $(vm_field "$C" 'v["quota-error"] is not None') == True ]]
}
check "$C through the stretch with malformed metadata: last good quota (max 50 MiB) and exclusion ['ram-node1'] kept" c_last_good

# ---- a domain destroyed while managed -------------------------------------------------------
virsh -q -c "$URI" destroy "$C" >/dev/null
gone() { [[ $(vm_field "$C" 'v["name"]') == '<absent>' ]]; }
wait_for 60 "$C removed after destroy" gone && ok "$C removed after virsh destroy"
for round in 1 2; do others_run_on "after destroying $C ($round/2)" || break; done

# ---- libvirtd killed and restarted ----------------------------------------------------------
libvirt_stop_pid "$LIBVIRTD_PID" libvirtd
LIBVIRTD_PID=''
wait_for 60 "hmmvd notices libvirtd is gone" log_has "lost the connection"
# With libvirtd down, A's and B's hmmv-sync cannot reach their QEMUs (the harvest fails, "libvirt
# is not connected", and counts in errors): they must stay managed while hmmvd goes on.
wait_intervals 2
wait_for 60 "libvirtd down: hmmvd running, $A and $B still managed" others_fine &&
  ok "libvirtd down: hmmvd running, $A and $B still managed"
start_libvirtd || { fail "libvirtd does not restart"; exit 1; }
reconnected() { [[ $(grep -c "libvirt: connected to" "$WORK/hmmvd.log") -ge 2 ]]; }
wait_for 60 "hmmvd reconnects to libvirtd" reconnected && ok "reconnected to the restarted libvirtd"
others_run_on "after reconnect"
set_meta "$B" '<memory dram-min-mib="20" dram-max-mib="30" weight="200"/>'
b_quota() { [[ $(vm_field "$B" 'v["quota"]["dram-max-mib"]') == 30 ]]; }
wait_for 60 "metadata events after reconnect" b_quota && ok "metadata events work after reconnect"

# ---- hmmvctl set-quota writes the libvirt metadata ------------------------------------------
if ctl set-quota "$B" --min 10 --max 50 --weight 100 >/dev/null 2>"$WORK/setq.err"; then
  # written on hmmvd's libvirt thread after the reply: waited for
  b_meta_written() {
    meta=$(virsh -q -c "$URI" metadata "$B" --uri "$NS" --live 2>/dev/null || true)
    [[ ${meta#*dram-max-mib=\"50\"} != "$meta" ]]
  }
  wait_for 60 "hmmvctl set-quota wrote libvirt metadata" b_meta_written &&
    ok "hmmvctl set-quota wrote libvirt metadata: $meta"
else
  fail "hmmvctl set-quota: $(cat "$WORK/setq.err")"
fi

# ---- the control socket refuses a non-root peer ---------------------------------------------
as_nobody() {
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$HMMVCTL" --socket "$WORK/hmmvd.sock" \
    status >"$WORK/nobody.out" 2>&1
}
if as_nobody; then
  fail "hmmvctl as nobody was served: $(head -c 200 "$WORK/nobody.out")"
else
  ok "control socket refused nobody: $(head -c 160 "$WORK/nobody.out" | tr '\n' ' ')"
fi
# The same with the socket made world-writable by mistake: the peer-credential check still
# refuses (the file mode alone did above).
chmod 0666 "$WORK/hmmvd.sock"
if as_nobody; then
  fail "socket mode 0666: hmmvctl as nobody was served: $(head -c 200 "$WORK/nobody.out")"
elif ! grep -qi "permission denied" "$WORK/nobody.out"; then
  fail "socket mode 0666: refused without hmmvd's reason: $(head -c 200 "$WORK/nobody.out")"
else
  ok "socket mode 0666: peer check refused nobody: $(head -c 160 "$WORK/nobody.out" | tr '\n' ' ')"
fi
chmod 0600 "$WORK/hmmvd.sock"
alive || fail "hmmvd died"

# ---- SIGTERM: clean stop --------------------------------------------------------------------
kill -TERM "$HMMVD_PID"
rc=0
for ((i = 0; i < 100; i++)); do kill -0 "$HMMVD_PID" 2>/dev/null || break; sleep 0.1; done
wait "$HMMVD_PID" || rc=$?
HMMVD_PID=''
check "SIGTERM: hmmvd exit status $rc (want 0)" test "$rc" -eq 0
check "SIGTERM: control socket removed" test ! -e "$WORK/hmmvd.sock"
