/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: the policies that never move a page.
 *   all-dram     every page on DRAM (the physical limit: each VM's own all-DRAM run is its
 *                 all-DRAM time in the same co-run, contention included);
 *   first-touch  unmanaged tiered memory: the kernel places a page on DRAM at its first touch
 *                 while DRAM has room, else on the slow tier; nothing moves;
 *   interleave   weighted interleave (MPOL_WEIGHTED_INTERLEAVE, Linux 6.9) with weights in the
 *                 ratio of DRAM to slow memory: of each VM's new pages, the DRAM fraction goes
 *                 to DRAM (while it has room); nothing moves. Simplified: the kernel
 *                 interleaves by page offset in the VMA, this by first-touch order.
 */
#include "policy.h"

typedef struct {
  CorunPlacement *pl;
  guint64 *new_pages;       /* interleave: pages each VM touched so far */
  double dram_fraction;
} StaticPolicy;

static gboolean
static_init(CorunPolicy *policy, guint64 capacity)
{
  const CorunSetup *setup = policy->setup;
  StaticPolicy *sp = g_new0(StaticPolicy, 1);
  guint64 total = 0;

  for (guint v = 0; v < setup->nr_vms; v++)
    total += setup->vms[v].nr_pages;
  sp->pl = corun_placement_new(setup, capacity);
  sp->new_pages = g_new0(guint64, setup->nr_vms);
  sp->dram_fraction = total ? MIN((double)setup->dram_pages / (double)total, 1.0) : 0;
  policy->priv = sp;
  return TRUE;
}

static gboolean
all_dram_init(CorunPolicy *policy, GError **error)
{
  return static_init(policy, G_MAXUINT64);
}

static gboolean
tiered_init(CorunPolicy *policy, GError **error)
{
  return static_init(policy, policy->setup->dram_pages);
}

static gboolean
serve_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
               CorunDemand *demand, GError **error)
{
  StaticPolicy *sp = policy->priv;

  for (guint v = 0; v < policy->setup->nr_vms; v++)
    corun_placement_serve(sp->pl, v, &now[v], &demand[v]);
  return TRUE;
}

static gboolean
interleave_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
                    CorunDemand *demand, GError **error)
{
  StaticPolicy *sp = policy->priv;
  CorunPlacement *pl = sp->pl;

  for (guint v = 0; v < policy->setup->nr_vms; v++) {
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      guint64 page = now[v].entries[i].page;
      guint64 n;

      if (pl->place[v][page] != CORUN_UNTOUCHED)
        continue;
      /* The n-th new page goes to DRAM when it crosses a multiple of 1/fraction. */
      n = sp->new_pages[v]++;
      if ((guint64)((double)(n + 1) * sp->dram_fraction) > (guint64)((double)n * sp->dram_fraction))
        corun_placement_first_touch(pl, v, page);
      else
        pl->place[v][page] = CORUN_SLOW;
    }
    corun_placement_serve(pl, v, &now[v], &demand[v]);
  }
  return TRUE;
}

static void
static_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  StaticPolicy *sp = policy->priv;

  corun_placement_vm_dram(sp->pl, vm_dram);
}

static void
static_destroy(CorunPolicy *policy)
{
  StaticPolicy *sp = policy->priv;

  corun_placement_free(sp->pl);
  g_free(sp->new_pages);
  g_free(sp);
}

const struct corun_policy_ops corun_policy_all_dram = {
  .name = "all-dram",
  .init = all_dram_init,
  .interval = serve_interval,
  .dram_pages = static_dram_pages,
  .destroy = static_destroy,
};

const struct corun_policy_ops corun_policy_first_touch = {
  .name = "first-touch",
  .init = tiered_init,
  .interval = serve_interval,
  .dram_pages = static_dram_pages,
  .destroy = static_destroy,
};

const struct corun_policy_ops corun_policy_interleave = {
  .name = "interleave",
  .init = tiered_init,
  .interval = interleave_interval,
  .dram_pages = static_dram_pages,
  .destroy = static_destroy,
};
