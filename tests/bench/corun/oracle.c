/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: the oracle. Before each interval it knows that interval's accesses and puts
 * the pages with the most LLC misses of all VMs on DRAM (as many as DRAM holds), so no online
 * policy can serve a larger share of the misses from DRAM in any interval: an upper bound on
 * the DRAM-served share. Its moves are charged like anyone's (it ignores their cost when it
 * chooses, so its runtime is not a bound), with no bandwidth cap. Pages it wants that were
 * never touched it places there directly (a first touch, not a move). To make room it demotes
 * DRAM pages not wanted, untouched-this-interval ones first.
 */
#include "policy.h"


typedef struct {
  guint vm;
  guint64 page;
  guint64 count;
} Candidate;

typedef struct {
  CorunPlacement *pl;
  guint8 **want;            /* 1: in this interval's top set; 2: accessed but not in it */
} Oracle;

static gboolean
oracle_init(CorunPolicy *policy, GError **error)
{
  Oracle *o = g_new0(Oracle, 1);

  o->pl = corun_placement_new(policy->setup, policy->setup->dram_pages);
  o->want = g_new0(guint8 *, policy->setup->nr_vms);
  for (guint v = 0; v < policy->setup->nr_vms; v++)
    o->want[v] = g_new0(guint8, policy->setup->vms[v].nr_pages);
  policy->priv = o;
  return TRUE;
}

static int
by_count_desc(const void *a, const void *b)
{
  const Candidate *x = a, *y = b;

  if (x->count != y->count)
    return x->count > y->count ? -1 : 1;
  if (x->vm != y->vm)
    return x->vm < y->vm ? -1 : 1;
  return x->page < y->page ? -1 : x->page > y->page;
}

/* Demote DRAM pages whose want is `level` until `need` pages are free. */
static void
make_room(Oracle *o, guint nr_vms, guint8 level, guint64 need, CorunDemand *demand)
{
  CorunPlacement *pl = o->pl;

  for (guint v = 0; v < nr_vms && corun_placement_dram_free(pl) < need; v++)
    for (guint64 p = 0; p < pl->nr_pages[v] && corun_placement_dram_free(pl) < need; p++)
      if (pl->place[v][p] == CORUN_DRAM && o->want[v][p] == level)
        corun_placement_move(pl, v, p, CORUN_SLOW, &demand[v]);
}

static gboolean
oracle_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
                CorunDemand *demand, GError **error)
{
  Oracle *o = policy->priv;
  CorunPlacement *pl = o->pl;
  guint nr_vms = policy->setup->nr_vms;
  g_autoptr(GArray) cand = g_array_new(FALSE, FALSE, sizeof(Candidate));
  guint64 top, need = 0;

  for (guint v = 0; v < nr_vms; v++)
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];
      Candidate c = { v, e->page, (guint64)e->reads + e->writes };

      if (c.count == 0)
        continue;   /* stored to, every access a cache hit: no miss to serve */
      g_array_append_val(cand, c);
      o->want[v][e->page] = 2;
    }
  corun_sort(cand, by_count_desc);
  top = MIN(cand->len, pl->dram_capacity);
  for (guint64 i = 0; i < top; i++) {
    const Candidate *c = &g_array_index(cand, Candidate, i);

    o->want[c->vm][c->page] = 1;
    if (pl->place[c->vm][c->page] != CORUN_DRAM)
      need++;
  }
  make_room(o, nr_vms, 0, need, demand);
  make_room(o, nr_vms, 2, need, demand);
  for (guint64 i = 0; i < top; i++) {
    const Candidate *c = &g_array_index(cand, Candidate, i);

    if (pl->place[c->vm][c->page] == CORUN_UNTOUCHED)
      corun_placement_first_touch(pl, c->vm, c->page);
    else
      corun_placement_move(pl, c->vm, c->page, CORUN_DRAM, &demand[c->vm]);
  }
  for (guint v = 0; v < nr_vms; v++) {
    corun_placement_serve(pl, v, &now[v], &demand[v]);
    for (gsize i = 0; i < now[v].nr_entries; i++)
      o->want[v][now[v].entries[i].page] = 0;
  }
  return TRUE;
}

static void
oracle_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  Oracle *o = policy->priv;

  corun_placement_vm_dram(o->pl, vm_dram);
}

static void
oracle_destroy(CorunPolicy *policy)
{
  Oracle *o = policy->priv;

  for (guint v = 0; v < policy->setup->nr_vms; v++)
    g_free(o->want[v]);
  g_free(o->want);
  corun_placement_free(o->pl);
  g_free(o);
}

const struct corun_policy_ops corun_policy_oracle = {
  .name = "oracle",
  .init = oracle_init,
  .interval = oracle_interval,
  .dram_pages = oracle_dram_pages,
  .destroy = oracle_destroy,
};
