/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The balancer's steps (balance.c), shared with the per-node balance (balance-nodes.c). */
#pragma once

#include <hmmv/balance.h>

/* weight (32 bits) * pages (64 bits) needs 96 bits: compare exactly, never saturate. */
__extension__ typedef unsigned __int128 BalanceWide;

typedef struct {
  guint64 min;              /* min_pages, capped to nr_pages */
  guint64 max;              /* effective max: max_pages or nr_pages, never above nr_pages */
  guint64 budget;
} VmSpan;

/* Checks the quotas and fills spans with each VM's min (scaled down in proportion when the
 * mins do not fit in the pool; min_granted set) and effective max; *left = the pool after
 * the mins. */
gboolean hmmv_balance_take_mins(HmmvBalanceVm *vms, guint nr_vms, guint64 pool_pages,
                                VmSpan *spans, guint64 *left, GError **error);
/* Warm demand: the VM's pages of benefit > 0 and key >= min_key in [span->min, span->max). */
guint64 hmmv_balance_warm_demand(const HmmvBalanceVm *vm, const VmSpan *span, guint min_key);
/* The caps of the rounds of lending (balance.h): round 0, the demand the payback gate would
 * promote (key >= demand_min_key); round 1, what the VM holds plus its hot pages waiting for
 * room (held_pages + waiting_pages, when it has some); round 2, every warm page (benefit > 0)
 * up to the DRAM the VM holds (held_pages); round 3, every warm page. */
#define HMMV_BALANCE_ROUNDS 4
void hmmv_balance_demand_caps(const HmmvBalanceVm *vms, guint nr_vms, const VmSpan *spans,
                              guint round, guint64 *caps);
/* Water-fills left into the VMs by weight, none above caps[i] (a VM whose cap is its budget
 * takes no part); returns what is left. */
guint64 hmmv_balance_spread(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans,
                            const guint64 *caps, guint64 left);
