/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: DRAM pooling across co-running VMs.
 *
 * Every VM first gets its min (all mins scaled down in proportion when they do not fit).
 * The rest of the pool is lent as a share by weight (issue 7, item 9): each VM's warm
 * demand is its pages of benefit > 0 (hmmv_temperature_benefit(key)) beyond its min, up to
 * its max, and the lent DRAM is water-filled over those demands by weight (weighted max-min
 * fairness: while two VMs both want more, weight 200 gets twice what weight 100 gets, however
 * hot each one's pages are; this in four rounds, the demand at keys from the VM's
 * demand_min_key first, then room above the DRAM it holds for its hot pages waiting on the
 * slow tier for room (waiting_pages), then all of it up to the DRAM the VM holds
 * (held_pages: warm pages the payback gate would not promote do not take DRAM another VM's
 * warm pages hold), then all of it; what a VM does not want below its share goes to the
 * others by weight). Rounding: floor shares, then one page each to the VMs with the smallest
 * (got + 1) / weight, ties to the lower index. Which of its pages a VM keeps on DRAM within
 * its budget is its hottest first (classify). DRAM no VM can use with benefit stays with the
 * VM that holds it (up to held_pages: taking it back would demote pages for nothing); what is
 * left after that is spread by weight (up to each max) so that it is not idle.
 * O(VMs * 256 * log) per interval; deterministic.
 */
#pragma once

#include <glib.h>
#include <hmmv/temperature.h>

G_BEGIN_DECLS

typedef struct {
  const char *name;         /* for messages; NULL: the VM's index */
  const HmmvHistogram *hist;
  guint64 min_pages;
  guint64 max_pages;        /* 0 = no limit beyond the VM's size */
  guint64 nr_pages;         /* the VM's size: no budget beyond it */
  guint weight;             /* > 0 */
  guint64 prev_budget;      /* last interval's budget (unused since shares: kept for callers) */
  guint64 held_pages;       /* DRAM the VM holds now: kept unless hotter pages want it */
  guint demand_min_key;     /* coldest key of its paying demand, lent first (0: every warm page
                               is): the core passes the payback gate's (plan.h), so pages that
                               would not be promoted, a move would not pay back, are lent DRAM
                               only after every VM's paying demand */
  guint64 waiting_pages;    /* its hot pages on the slow tier that room would let it promote
                               (the last plan's promote_no_room): lent room above what it
                               holds after every VM's paying demand, before warm pages below
                               the gate keep the DRAM their VMs hold */
  guint64 budget;           /* out */
  guint64 min_granted;      /* out: the min it got, below min_pages when the mins were scaled */
} HmmvBalanceVm;

/* headroom_pages: of the DRAM no warm page wants, this much is not kept for its holders but
 * spread by weight (it becomes free DRAM where the VMs cannot fill it), so that pages the
 * guests touch for the first time land on DRAM; the core sizes it from recent first touches
 * (0 while its payback gate is closed: loop.c, core_headroom).
 * Mins (each capped at the VM's size) that do not all fit in pool_pages are scaled down in
 * proportion (floor, then the leftover pages by largest fraction, then lowest index); a VM's
 * min_granted says what it got. Fails (and leaves budgets alone) only when a weight is 0 or a
 * VM's min exceeds its max; the message names the VM. */
gboolean hmmv_balance(HmmvBalanceVm *vms, guint nr_vms, guint64 pool_pages,
                      guint64 headroom_pages, GError **error);

/* Several DRAM nodes (issue 7, item 4): budgets per node. pools[p] is DRAM node p's pool;
 * ranks[i * nr_pools + r] the r-th nearest pool VM i may use (r = 0: its home node, the one
 * nearest its vCPUs), G_MAXUINT after its last. Each VM's min comes from its home pool (the
 * mins of one pool scaled into it in proportion when they do not fit) and what does not fit
 * from its next pools, nearest first; mins that do not fit in all the pools together are
 * scaled first, as hmmv_balance does. Then each pool is lent, by weight, to the warm demand of
 * the VMs whose home it is, and what they leave of it to the VMs whose next pool it is (rank
 * 1, then 2, ...); the same order for DRAM kept with its holders and spread up to each max.
 * So a VM's weight competes with the VMs of its own node, and DRAM of another node is lent
 * only when that node's own VMs do not want it. One pool: exactly hmmv_balance. */
gboolean hmmv_balance_nodes(HmmvBalanceVm *vms, guint nr_vms, const guint64 *pools,
                            guint nr_pools, const guint *ranks, guint64 headroom_pages,
                            GError **error);

G_END_DECLS
