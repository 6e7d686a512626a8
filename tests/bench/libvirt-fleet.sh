#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# hmmvd through libvirt with many domains (issue 8, "fleet"): a private libvirtd (the helpers
# of tests/integration/libvirt-test-lib.sh, in private mount and PID namespaces as
# tests/integration/test-libvirt.sh), N tiny TCG domains of the patched QEMU, one hmmvd
# managing them all. For each N given (ascending; the domains of a smaller N stay and more are
# created), once every domain is managed and hmmvd ran SETTLE intervals more, it prints one
# line of figures:
#
#   fleet: n=N managed=M create_s=S hmmvd_threads=T hmmvd_fds=F hmmvd_rss_kib=R
#          hmmvd_clients=C libvirtd_clients=L libvirtd_threads=LT libvirtd_rss_kib=LR
#          interval_ms_p50=.. interval_ms_max=.. intervals=I/W_s qmp_round_ms_mean=..
#          qmp_round_ms_max=.. qmp_exchange_ms_max=.. qmp_not_answered=.. qmp_threads=..
#          qmp_connections=..
#
# hmmvd_clients: libvirtd's clients whose peer is hmmvd's pid (virt-admin client-info);
# libvirtd_clients: all of them (virt-admin srv-clients-info). interval_ms: hmmvd's
# last-interval-ns sampled once per interval over the window (the core's work, moves
# included); intervals: how many hmmvd ran in the window of W s (interval-ms apart when it
# keeps up). qmp_*: the last "libvirt QMP:" line hmmvd logged in the window (30 hmmv-sync
# rounds: the time from sending every tracking domain its hmmv-sync to the last answer).
#
#   libvirt-fleet.sh [--check] [--stop K] HMMVD HMMVCTL GUEST_ELF N [N...]
#
# --stop K: after the last N, SIGSTOP K domains' QEMUs (more than libvirtd's max_workers, 20 by
# default, shows whether hanging QEMUs can take every libvirtd worker) and print the same line
# (prefix "fleet-stopped:") plus whether `virsh list` and the healthy domains were served;
# then SIGCONT them.
# --check (the integration test test-libvirt-fleet.sh): exit 1 unless every domain is managed
# and hmmvd's libvirt connections are what the design says: its own, plus at most the QMP
# pool's (qmp-connections, none set aside while every QEMU answers), whatever N.
#
# The guests: tests/guest mode=phases (256 pages written once, then halted: exit=0), 32 MiB of
# RAM, one vCPU, so many of them idle on a shared 2-core host; hmmvd tracks them (hmmv-sync
# every interval) like any other. Environment: HMMV_QEMU (else qemu-patches/build.sh),
# FLEET_INTERVAL_MS (1000), FLEET_SETTLE (35 intervals: at least one QMP summary line),
# FLEET_PARALLEL (4 virsh create at once), FLEET_SECOND_HMMVD (another hmmvd binary: after
# the runs above, the same domains under it, figures "fleet-second:" at the last N and the
# stop stage again), FLEET_QMP_CONNECTIONS (hmmvd.conf's
# qmp-connections; unset: hmmvd's default, 8). Exit 0 when run, 1 on failure, 77 skip.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")
root=$(dirname "$(dirname "$here")")
# shellcheck source=tests/integration/libvirt-test-lib.sh
. "$root/tests/integration/libvirt-test-lib.sh"

if [[ ${1:-} != --inner ]]; then
  args=("$@")
  while [[ ${1:-} == --* ]]; do case $1 in --check) shift ;; --stop) shift 2 ;; *) break ;; esac; done
  [[ $# -ge 4 ]] || { echo "usage: $0 [--check] [--stop K] HMMVD HMMVCTL GUEST_ELF N [N...]" >&2; exit 2; }
  lvt_preflight "$1" "$2" "$3" "$root" virt-admin
  lvt_enter_namespace "${args[@]}"
fi
shift
CHECK=0 STOP=0
while [[ ${1:-} == --* ]]; do
  case $1 in --check) CHECK=1; shift ;; --stop) STOP=$2; shift 2 ;; esac
done
HMMVD=$1 HMMVCTL=$2 GUEST=$3
shift 3
SIZES=("$@")
QEMU=$LVT_QEMU
INTERVAL_MS=${FLEET_INTERVAL_MS:-1000}
SETTLE=${FLEET_SETTLE:-35}
PARALLEL=${FLEET_PARALLEL:-4}
DOMAINS=()
LVT_POLL_HZ=2
LVT_DEBUG_EXIT=0
lvt_init fleet
lvt_start_libvirt "$QEMU" "$GUEST"

lvt_hmmvd_conf "$INTERVAL_MS" 256 4096 ${FLEET_QMP_CONNECTIONS:+"qmp-connections=$FLEET_QMP_CONNECTIONS"}
lvt_start_hmmvd "$HMMVD"

managed_count() { status_field vms-managed 2>/dev/null || echo 0; }
managed_at_least() { [[ $(managed_count) -ge $1 ]]; }
proc_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# hmmvd's clients at libvirtd: the ones whose peer pid is hmmvd's (same PID namespace)
hmmvd_clients() {
  local id n=0
  for id in $(timeout 30 virt-admin -q client-list libvirtd 2>/dev/null | awk '$1 ~ /^[0-9]+$/ { print $1 }'); do
    timeout 30 virt-admin -q client-info libvirtd "$id" 2>/dev/null |
      grep -Eq "unix_process_id *: *$HMMVD_PID\$" && n=$((n + 1))
  done
  echo "$n"
}

create_domains() {   # create_domains UP_TO: fleet-K for K < UP_TO not yet created
  local k pids=() name
  for ((k = ${#DOMAINS[@]}; k < $1; k++)); do
    name=$(printf 'fleet-%03d' "$k")
    lvt_domain_xml "$name" 32 'mode=phases phases=1 pages=256 exit=0' >"$WORK/$name.xml"
    DOMAINS+=("$name") LVT_DOMAINS+=("$name")
    virsh -q -c "$URI" create "$WORK/$name.xml" >/dev/null 2>"$WORK/$name.err" &
    pids+=($!)
    if ((${#pids[@]} >= PARALLEL)); then
      wait "${pids[0]}" || { fail "domain creation failed: $(cat "$WORK"/fleet-*.err | head -c 300)"; return 1; }
      pids=("${pids[@]:1}")
    fi
  done
  for k in "${pids[@]}"; do
    wait "$k" || { fail "domain creation failed: $(cat "$WORK"/fleet-*.err | head -c 300)"; return 1; }
  done
}

# figures PREFIX N CREATE_S: the sampling window and the figures line
figures() {
  local prefix=$1 n=$2 create_s=$3 i start_intervals end_intervals t_start samples=() qmp
  local lines_before
  lines_before=$(wc -l <"$WORK/hmmvd.log")
  start_intervals=$(status_field intervals)
  t_start=$SECONDS
  for ((i = 0; i < SETTLE; i++)); do
    samples+=("$(status_field last-interval-ns)")
    sleep "$(awk -v ms="$INTERVAL_MS" 'BEGIN { print ms / 1000 }')"
  done
  end_intervals=$(status_field intervals)
  local window=$((SECONDS - t_start))
  local managed threads fds rss lv_threads lv_rss lv_clients h_clients
  managed=$(managed_count)
  threads=$(proc_field "$HMMVD_PID" Threads)
  fds=$(find "/proc/$HMMVD_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
  rss=$(proc_field "$HMMVD_PID" VmRSS)
  lv_threads=$(proc_field "$LIBVIRTD_PID" Threads)
  lv_rss=$(proc_field "$LIBVIRTD_PID" VmRSS)
  lv_clients=$(timeout 30 virt-admin -q srv-clients-info libvirtd 2>/dev/null | awk -F: '{ gsub(/ /, "") } $1 == "nclients" { print $2 }')
  h_clients=$(hmmvd_clients)
  qmp=$(tail -n +"$((lines_before + 1))" "$WORK/hmmvd.log" | grep 'libvirt QMP:' | tail -n 1 || true)
  read -r p50 pmax < <(printf '%s\n' "${samples[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { printf "%.1f %.1f\n", v[int((NR + 1) / 2)] / 1e6, v[NR] / 1e6 }')
  QMP_FIGURES=$(python3 - "$qmp" <<'PY'
import re, sys
m = re.search(r"mean ([\d.]+) ms, slowest round ([\d.]+) ms, slowest exchange ([\d.]+) ms, "
              r"(\d+) not answered in their round; (\d+) QMP threads[^,]*(?:, [^,]*)*?, "
              r"(\d+) libvirt", sys.argv[1])
if not m:
    print("qmp_round_ms_mean=? qmp_round_ms_max=? qmp_exchange_ms_max=? qmp_not_answered=? "
          "qmp_threads=? qmp_connections=?")
else:
    print("qmp_round_ms_mean=%s qmp_round_ms_max=%s qmp_exchange_ms_max=%s qmp_not_answered=%s "
          "qmp_threads=%s qmp_connections=%s" % m.groups())
PY
)
  echo "$prefix n=$n managed=$managed create_s=$create_s hmmvd_threads=$threads hmmvd_fds=$fds hmmvd_rss_kib=${rss} hmmvd_clients=$h_clients libvirtd_clients=$lv_clients libvirtd_threads=$lv_threads libvirtd_rss_kib=$lv_rss interval_ms_p50=$p50 interval_ms_max=$pmax intervals=$((end_intervals - start_intervals))/${window}_s $QMP_FIGURES load=$(cut -d' ' -f1 /proc/loadavg)"
  LAST_MANAGED=$managed LAST_CLIENTS=$h_clients
}

for n in "${SIZES[@]}"; do
  t_create=$SECONDS
  create_domains "$n" || exit 1
  create_s=$((SECONDS - t_create))
  log "$n domains running ($create_s s to create; load $(cut -d' ' -f1 /proc/loadavg))"
  # generous: each start-up is five QMP exchanges through libvirtd, at any load
  wait_for $((120 + 5 * n)) "all $n domains managed (managed: $(managed_count))" managed_at_least "$n" ||
    exit 1
  log "all $n managed; sampling $SETTLE intervals"
  figures fleet: "$n" "$create_s"
  if ((CHECK)); then
    # the design: the daemon's own connection plus at most the QMP pool's, whatever n
    pool=${FLEET_QMP_CONNECTIONS:-8}
    if [[ $LAST_MANAGED -eq $n ]]; then echo "ok: all $n domains managed"; else fail "managed $LAST_MANAGED of $n"; fi
    if ((LAST_CLIENTS >= 2 && LAST_CLIENTS <= pool + 1)); then
      echo "ok: hmmvd holds $LAST_CLIENTS libvirt connections for $n domains (its own + at most $pool of the QMP pool)"
    else
      fail "hmmvd holds $LAST_CLIENTS libvirt connections for $n domains; the design says 2..$((pool + 1)) (its own + at most $pool of the QMP pool)"
    fi
  fi
done

stop_stage() {   # K QEMUs stopped, figures, continued
  for ((k = 0; k < STOP && k < ${#DOMAINS[@]}; k++)); do
    pid=$(<"/run/libvirt/qemu/${DOMAINS[k]}.pid")
    lvt_sigstop "$pid"
  done
  log "SIGSTOPped ${#LVT_SIGSTOPPED[@]} QEMUs"
  t_list=$(date +%s%N)
  if timeout 60 virsh -q -c "$URI" list --name >/dev/null 2>&1; then
    log "virsh list answered in $((($(date +%s%N) - t_list) / 1000000)) ms with ${#LVT_SIGSTOPPED[@]} QEMUs stopped"
  else
    log "virsh list did not answer within 60 s with ${#LVT_SIGSTOPPED[@]} QEMUs stopped"
  fi
  sleep 15
  t_list=$(date +%s%N)
  if timeout 60 virsh -q -c "$URI" list --name >/dev/null 2>&1; then
    log "virsh list answered in $((($(date +%s%N) - t_list) / 1000000)) ms, 15 s on"
  else
    log "virsh list did not answer within 60 s, 15 s on"
  fi
  t_cmd=$(date +%s%N)
  healthy=${DOMAINS[-1]}
  if timeout 60 virsh -q -c "$URI" qemu-monitor-command "$healthy" '{"execute":"query-status"}' >/dev/null 2>&1; then
    log "virsh qemu-monitor-command to healthy $healthy answered in $((($(date +%s%N) - t_cmd) / 1000000)) ms"
  else
    log "virsh qemu-monitor-command to healthy $healthy did not answer within 60 s"
  fi
  figures fleet-stopped: "${#DOMAINS[@]}" 0
  log "status: vms-frozen $(status_field vms-frozen) vms-managed $(status_field vms-managed)"
  lvt_sigcont_all
  wait_for $((120 + 2 * ${#DOMAINS[@]})) "all domains managed again after SIGCONT" managed_at_least "${#DOMAINS[@]}" &&
    log "all ${#DOMAINS[@]} managed again after SIGCONT"
}
if ((STOP > 0)); then stop_stage; fi

# FLEET_SECOND_HMMVD=BINARY: the same domains under another hmmvd (an older build), the figures
# at the last N and the stop stage again, without creating the domains twice
if [[ -n ${FLEET_SECOND_HMMVD:-} ]]; then
  libvirt_stop_pid "$HMMVD_PID" hmmvd
  log "second hmmvd: $FLEET_SECOND_HMMVD"
  lvt_start_hmmvd "$FLEET_SECOND_HMMVD"
  n=${#DOMAINS[@]}
  wait_for $((120 + 5 * n)) "all $n domains managed by the second hmmvd (managed: $(managed_count))" managed_at_least "$n" ||
    exit 1
  figures fleet-second: "$n" 0
  if ((STOP > 0)); then stop_stage; fi
fi
