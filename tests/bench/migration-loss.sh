#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Does the patched QEMU lose guest writes in a live TCG migration that the unpatched one does
# not (issue 9, "Exactness and coexistence")? QEMU's own migration-test, the one beside the
# patched build (build.sh --with-qtests), runs chosen precopy cases N times against each
# QEMU binary given. Its guest increments one byte of every page of 100 MiB in a loop while
# the migration runs; after it, check_guests_ram() reads every page at the destination and
# counts the pages that break the sweep: a page whose last write before the switch-over did
# not reach the destination is one of them. Each run's count is that number (0 when the case
# passed; migration-test prints the first 10 and "and in another N pages").
#
#   migration-loss.sh [-n N] [-c CASE]... LABEL=QEMU [LABEL=QEMU]...
#
# CASE: a migration-test path without the /x86_64/migration prefix (default
# precopy/unix/plain); a case that migration-test lacks is skipped, and so is a case named
# *hmmv* for a QEMU without hmmv-start (an unpatched one). The migration-test binary: $MIGRATION_TEST, else the tests/ directory
# beside the first QEMU. /dev/kvm is masked (root: a private mount namespace) so every run
# is TCG, as in the integration test qemu-qtests. Prints one line per run and a summary
# table: label, case, runs, failed runs, pages lost in all. Exit 0 once all ran.
set -uo pipefail

runs=5
cases=()
while getopts "n:c:" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    c) cases+=("$OPTARG") ;;
    *) echo "usage: $0 [-n N] [-c CASE]... LABEL=QEMU..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 && $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [-n N] [-c CASE]... LABEL=QEMU..." >&2; exit 2; }
[[ ${#cases[@]} -gt 0 ]] || cases=(precopy/unix/plain)
first_qemu=${1#*=}
mtest=${MIGRATION_TEST:-$(dirname "$(dirname "$first_qemu")")/tests/migration-test}
[[ -x $mtest ]] || { echo "no migration-test at $mtest (build.sh --with-qtests)" >&2; exit 1; }

run_case() { # qemu case -> stderr+stdout of one migration-test run on stdout; its status
  local qemu=$1 path=/x86_64/migration/$2
  if [[ $(id -u) -eq 0 ]] && command -v unshare >/dev/null; then
    # shellcheck disable=SC2016
    QTEST_QEMU_BINARY=$qemu unshare -m sh -c \
      'mount --bind /dev/null /dev/kvm 2>/dev/null || true; exec "$0" -p "$1"' "$mtest" "$path" 2>&1
  else
    QTEST_QEMU_BINARY=$qemu "$mtest" -p "$path" 2>&1
  fi
}

declare -A total_runs failed lost
# (The list is read whole first: grep -q on a pipe can end the writer with SIGPIPE, and with
# pipefail the case would look missing.)
listing=$(QTEST_QEMU_BINARY=$first_qemu "$mtest" -l 2>/dev/null)
echo "# migration-test: $mtest; $(uptime)"
for ((i = 1; i <= runs; i++)); do
  for spec in "$@"; do
    label=${spec%%=*}
    qemu=${spec#*=}
    for c in "${cases[@]}"; do
      if ! grep -qx "/x86_64/migration/$c" <<<"$listing"; then
        continue
      fi
      if [[ $c == *hmmv* ]] && ! grep -q hmmv-start "$qemu"; then
        continue
      fi
      start=$(date +%s.%N)
      out=$(run_case "$qemu" "$c")
      status=$?
      secs=$(echo "$(date +%s.%N) - $start" | bc)
      shown=$(grep -c "Memory content inconsistency" <<<"$out")
      more=$(sed -n 's/.*and in another \([0-9]*\) pages.*/\1/p' <<<"$out" | head -n 1)
      pages=$((shown + ${more:-0}))
      ok=$(grep -c "^ok .*/x86_64/migration/$c\$" <<<"$out")
      key="$label $c"
      total_runs[$key]=$((${total_runs[$key]:-0} + 1))
      if [[ $status -ne 0 || $ok -ne 1 ]]; then
        failed[$key]=$((${failed[$key]:-0} + 1))
        verdict=FAIL
      else
        verdict=ok
      fi
      lost[$key]=$((${lost[$key]:-0} + pages))
      printf 'run %d %s %s: %s, %d pages lost, %.1f s\n' "$i" "$label" "$c" "$verdict" "$pages" "$secs"
      if [[ $verdict = FAIL ]]; then
        grep -E "inconsistency|another|ERROR|assert" <<<"$out" | head -n 12 | sed 's/^/#   /'
      fi
    done
  done
done
echo "# $(uptime)"
printf '%-12s %-28s %5s %7s %11s\n' build case runs failed pages-lost
for key in "${!total_runs[@]}"; do
  printf '%-12s %-28s %5d %7d %11d\n' "${key%% *}" "${key#* }" "${total_runs[$key]}" \
    "${failed[$key]:-0}" "${lost[$key]:-0}"
done | sort
