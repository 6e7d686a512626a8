/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Budgets per DRAM node (issue 7, item 4; contract in balance.h).
 *
 * On a two-socket host hmmv lent DRAM host-wide: a VM of weight 300 on socket 0 took three
 * quarters of all DRAM from a VM of weight 100 on socket 1, a quarter of its pages sent to
 * socket 1's DRAM, where every access pays the remote latency (~140 ns against 80), while the
 * weight-100 VM was demoted on its own socket's DRAM. Now each node's pool is lent first to
 * the VMs whose vCPUs it is nearest, by the same steps as one pool (mins, warm demand by
 * weight, cold DRAM kept with its holder, the rest spread up to each max), and only what they
 * leave goes to the VMs farther from it, nearest first. Mins keep their promise: a min that
 * does not fit in its home node comes from the next nodes.
 *
 * Rounds: at round r each pool is spread over the VMs whose r-th nearest pool it is, so a
 * pool's own VMs always come before the VMs for which it is a fallback.
 */
#include "balance-private.h"

#include <hmmv/error.h>

/* Each VM's min on its home pool (a pool's mins that exceed it are scaled into it in
 * proportion), the rest from its next pools nearest first; what fits nowhere (a VM bound to
 * nodes that are full) lowers its min. free[] is decremented. */
static void
place_mins(HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, guint64 *free_pages,
           guint nr_pools, const guint *ranks)
{
  g_autofree BalanceWide *home_mins = g_new0(BalanceWide, nr_pools);
  g_autofree guint64 *unplaced = g_new0(guint64, nr_vms);
  g_autofree guint64 *pools = g_memdup2(free_pages, nr_pools * sizeof(guint64));

  for (guint i = 0; i < nr_vms; i++) {
    guint home = ranks[i * nr_pools];

    if (home < nr_pools)
      home_mins[home] += spans[i].min;
  }
  for (guint i = 0; i < nr_vms; i++) {
    guint home = ranks[i * nr_pools];
    guint64 part = 0;

    if (home < nr_pools)
      part = home_mins[home] <= pools[home]
               ? spans[i].min
               : (guint64)((BalanceWide)spans[i].min * pools[home] / home_mins[home]);
    part = home < nr_pools ? MIN(part, free_pages[home]) : 0;
    if (home < nr_pools)
      free_pages[home] -= part;
    unplaced[i] = spans[i].min - part;
  }
  /* the rest: what rounding left on the home pool first, then the next pools */
  for (guint i = 0; i < nr_vms; i++) {
    for (guint r = 0; r < nr_pools && unplaced[i] > 0; r++) {
      guint p = ranks[i * nr_pools + r];
      guint64 take;

      if (p >= nr_pools)
        break;
      take = MIN(unplaced[i], free_pages[p]);
      free_pages[p] -= take;
      unplaced[i] -= take;
    }
    spans[i].min -= unplaced[i];
    spans[i].budget = spans[i].min;
    vms[i].min_granted = spans[i].min;
  }
}

/* A full DRAM node falls back to the next one (issue 7, item 4): each VM's ranking with the
 * pools that have nothing to lend (their node full, or held by VMs outside the balance) moved
 * behind the others, order kept. Without it a VM whose nearest node is full was only a
 * fallback borrower everywhere: the testbed's vm0, node 0 held by another process, got a
 * budget of 0 while vm1 took all 4,096 pages of node 1, its own node, by its warm units.
 * Now it shares node 1's pool with node 1's VMs, by weight. A VM bound to the full node
 * alone (its ranking ends there) stays bound. */
static guint *
ranks_past_empty_pools(const guint *ranks, guint nr_vms, const guint64 *pools, guint nr_pools)
{
  guint *out = g_new(guint, (gsize)nr_vms * nr_pools);

  for (guint i = 0; i < nr_vms; i++) {
    const guint *in = &ranks[(gsize)i * nr_pools];
    guint *o = &out[(gsize)i * nr_pools];
    guint k = 0, n = 0;

    while (n < nr_pools && in[n] < nr_pools)
      n++;
    for (guint r = 0; r < n; r++)
      if (pools[in[r]] > 0)
        o[k++] = in[r];
    for (guint r = 0; r < n; r++)
      if (pools[in[r]] == 0)
        o[k++] = in[r];
    for (; k < nr_pools; k++)
      o[k] = G_MAXUINT;
  }
  return out;
}

/* One step over every pool, round by round: each pool spread up to caps over the VMs whose
 * r-th nearest it is. free[] is what each pool has left. */
static void
spread_rounds(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, const guint64 *caps,
              guint64 *free_pages, guint nr_pools, const guint *ranks)
{
  g_autofree guint64 *round_caps = g_new0(guint64, nr_vms);

  for (guint r = 0; r < nr_pools; r++) {
    for (guint p = 0; p < nr_pools; p++) {
      gboolean any = FALSE;

      if (free_pages[p] == 0)
        continue;
      for (guint i = 0; i < nr_vms; i++) {
        gboolean here = ranks[i * nr_pools + r] == p;

        round_caps[i] = here ? MAX(caps[i], spans[i].budget) : spans[i].budget;
        any |= here && round_caps[i] > spans[i].budget;
      }
      if (any)
        free_pages[p] = hmmv_balance_spread(vms, nr_vms, spans, round_caps, free_pages[p]);
    }
  }
}

gboolean
hmmv_balance_nodes(HmmvBalanceVm *vms, guint nr_vms, const guint64 *pools, guint nr_pools,
                   const guint *ranks, guint64 headroom_pages, GError **error)
{
  g_autofree VmSpan *spans = NULL;
  g_autofree guint64 *free_pages = NULL;
  g_autofree guint64 *caps = NULL;
  g_autofree guint64 *kept = NULL;
  g_autofree guint *own_ranks = NULL;
  guint64 total = 0, left;

  g_return_val_if_fail(vms != NULL || nr_vms == 0, FALSE);
  g_return_val_if_fail(pools != NULL || nr_pools == 0, FALSE);
  if (nr_pools <= 1)
    return hmmv_balance(vms, nr_vms, nr_pools == 1 ? pools[0] : 0, headroom_pages, error);
  if (nr_vms == 0)
    return TRUE;
  for (guint p = 0; p < nr_pools; p++)
    total += pools[p];
  spans = g_new0(VmSpan, nr_vms);
  if (!hmmv_balance_take_mins(vms, nr_vms, total, spans, &left, error))
    return FALSE;
  free_pages = g_memdup2(pools, nr_pools * sizeof(guint64));
  own_ranks = ranks_past_empty_pools(ranks, nr_vms, pools, nr_pools);
  ranks = own_ranks;
  place_mins(vms, nr_vms, spans, free_pages, nr_pools, ranks);

  /* warm demand, by weight: what would pay back a move first, then room for the hot pages
   * waiting for it, then every warm page up to what its VM holds, then every warm page
   * (balance.c) */
  caps = g_new0(guint64, nr_vms);
  for (guint round = 0; round < HMMV_BALANCE_ROUNDS; round++) {
    hmmv_balance_demand_caps(vms, nr_vms, spans, round, caps);
    spread_rounds(vms, nr_vms, spans, caps, free_pages, nr_pools, ranks);
  }

  /* cold DRAM stays with its holder, but for each pool's share of the headroom; then the
   * rest is spread up to each max */
  kept = g_new0(guint64, nr_pools);
  for (guint p = 0; p < nr_pools; p++) {
    kept[p] = total > 0
                ? MIN(free_pages[p], (guint64)((BalanceWide)headroom_pages * pools[p] / total))
                : 0;
    free_pages[p] -= kept[p];
  }
  for (guint i = 0; i < nr_vms; i++)
    caps[i] = MAX(spans[i].budget, MIN(vms[i].held_pages, spans[i].max));
  spread_rounds(vms, nr_vms, spans, caps, free_pages, nr_pools, ranks);
  for (guint p = 0; p < nr_pools; p++)
    free_pages[p] += kept[p];
  for (guint i = 0; i < nr_vms; i++)
    caps[i] = spans[i].max;
  spread_rounds(vms, nr_vms, spans, caps, free_pages, nr_pools, ranks);
  for (guint i = 0; i < nr_vms; i++)
    vms[i].budget = spans[i].budget;
  return TRUE;
}
