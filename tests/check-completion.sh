#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# configs/hmmvctl.bash completes hmmvctl's commands, each command's own options and
# --managed's values, through bash-completion's own helper functions. TAP output.
# usage: check-completion.sh SOURCE_ROOT
root=$1
loader=/usr/share/bash-completion/bash_completion
if [ ! -r "$loader" ]; then
  echo "1..0 # SKIP $loader missing (package bash-completion)"
  exit 77
fi
# shellcheck disable=SC1090
source "$loader"
# shellcheck disable=SC1091
source "$root/configs/hmmvctl.bash" || { echo "Bail out! configs/hmmvctl.bash"; exit 1; }

failed=0 n=0
complete_words() { # expected (sorted, space separated), words... (the last is being completed)
  local expected=$1; shift
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="${COMP_WORDS[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  _hmmvctl hmmvctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  local got
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//')
  n=$((n + 1))
  if [ "$got" = "$expected" ]; then
    echo "ok $n - '$*' -> '$got'"
  else
    echo "not ok $n - '$*': expected '$expected', got '$got'"
    failed=1
  fi
}

complete_words "pause placement resume set-quota status track vms" hmmvctl ""
complete_words "pause placement" hmmvctl p
complete_words "set-quota status" hmmvctl s
complete_words "--managed --max --min" hmmvctl set-quota dom --m
complete_words "no yes" hmmvctl set-quota dom --managed ""
complete_words "--interval-ms" hmmvctl track --i
complete_words "--count --help --interval-ms --json --qmp --socket --trace" hmmvctl track --
complete_words "--help --json --socket" hmmvctl vms --
complete_words "" hmmvctl status ""
complete_words "" hmmvctl --socket /tmp/none pause dom ""
complete_words "--help --json --socket" hmmvctl placement dom --
complete_words "" hmmvctl --socket /tmp/none placement dom ""
echo "1..$n"
exit $failed
