/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: the table of policies, in the order of hmmv-corun's output. */
#include "policy.h"


const struct corun_policy_ops *const corun_policies[] = {
  &corun_policy_all_dram,
  &corun_policy_first_touch,
  &corun_policy_interleave,
  &corun_policy_memory_mode,
  &corun_policy_numa_balancing,
  &corun_policy_damos,
  &corun_policy_memtierd,
  &corun_policy_memtis,
  &corun_policy_oracle,
  &corun_policy_hmmv_writes,
  &corun_policy_hmmv_reads_writes,
  &corun_policy_hmmv_ideal,
  NULL,
};
