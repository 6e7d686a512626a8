/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: the page placement shared by the policies that manage pages themselves. */
#include "policy.h"

#include <hmmv/error.h>
#include <stdlib.h>
#include <string.h>

CorunPlacement *
corun_placement_new(const CorunSetup *setup, guint64 dram_capacity)
{
  CorunPlacement *pl = g_new0(CorunPlacement, 1);

  pl->nr_vms = setup->nr_vms;
  pl->nr_pages = g_new0(guint64, setup->nr_vms);
  pl->place = g_new0(guint8 *, setup->nr_vms);
  pl->vm_dram = g_new0(guint64, setup->nr_vms);
  pl->dram_capacity = dram_capacity;
  pl->slow_first = g_new0(guint64, setup->nr_vms);
  pl->slow_end = g_new0(guint64, setup->nr_vms);
  for (guint v = 0; v < setup->nr_vms; v++) {
    pl->nr_pages[v] = setup->vms[v].nr_pages;
    pl->slow_first[v] = setup->vms[v].start_slow_first;
    pl->slow_end[v] = setup->vms[v].start_slow_first + setup->vms[v].start_slow_pages;
    pl->place[v] = g_new0(guint8, setup->vms[v].nr_pages);
  }
  return pl;
}

void
corun_placement_free(CorunPlacement *pl)
{
  if (pl == NULL)
    return;
  for (guint v = 0; v < pl->nr_vms; v++)
    g_free(pl->place[v]);
  g_free(pl->place);
  g_free(pl->nr_pages);
  g_free(pl->vm_dram);
  g_free(pl->slow_first);
  g_free(pl->slow_end);
  g_free(pl);
}

guint64
corun_placement_dram_free(const CorunPlacement *pl)
{
  return pl->dram_capacity == G_MAXUINT64 ? G_MAXUINT64 : pl->dram_capacity - pl->dram_used;
}

guint8
corun_placement_first_touch(CorunPlacement *pl, guint vm, guint64 page)
{
  guint8 *p = &pl->place[vm][page];

  if (*p != CORUN_UNTOUCHED)
    return *p;
  if ((page < pl->slow_first[vm] || page >= pl->slow_end[vm]) &&
      pl->dram_used < pl->dram_capacity) {
    *p = CORUN_DRAM;
    pl->dram_used++;
    pl->vm_dram[vm]++;
  } else {
    *p = CORUN_SLOW;
  }
  return *p;
}

void
corun_placement_serve(CorunPlacement *pl, guint vm, const CorunAccesses *acc, CorunDemand *d)
{
  for (gsize i = 0; i < acc->nr_entries; i++) {
    const HmmvTraceEntry *e = &acc->entries[i];

    if (corun_placement_first_touch(pl, vm, e->page) == CORUN_DRAM) {
      d->dram_reads += e->reads;
      d->dram_writes += e->writes;
    } else {
      d->slow_reads += e->reads;
      d->slow_writes += e->writes;
    }
  }
}

gboolean
corun_placement_move(CorunPlacement *pl, guint vm, guint64 page, guint8 to, CorunDemand *d)
{
  guint8 *p = &pl->place[vm][page];

  if (*p == CORUN_UNTOUCHED || *p == to)
    return FALSE;
  if (to == CORUN_DRAM) {
    if (pl->dram_used >= pl->dram_capacity)
      return FALSE;
    pl->dram_used++;
    pl->vm_dram[vm]++;
    d->promoted++;
  } else {
    pl->dram_used--;
    pl->vm_dram[vm]--;
    d->demoted++;
  }
  *p = to;
  return TRUE;
}

void
corun_placement_vm_dram(const CorunPlacement *pl, guint64 *vm_dram)
{
  memcpy(vm_dram, pl->vm_dram, pl->nr_vms * sizeof(guint64));
}

guint64
corun_placement_start_slow_dram(const CorunPlacement *pl, guint vm)
{
  guint64 n = 0;

  for (guint64 p = pl->slow_first[vm]; p < pl->slow_end[vm]; p++)
    n += pl->place[vm][p] == CORUN_DRAM;
  return n;
}

void
corun_sort(GArray *array, int (*compare)(const void *, const void *))
{
  if (array->len > 1)
    qsort(array->data, array->len, g_array_get_element_size(array), compare);
}

guint64
corun_cap_pages(guint mbps, guint interval_ms)
{
  guint64 bytes;

  if (mbps == 0)
    return G_MAXUINT64;
  bytes = (guint64)mbps * 1000000u * interval_ms / 1000u;
  return MAX(bytes / 4096, 1);
}

CorunPolicy *
corun_policy_new(const struct corun_policy_ops *ops, const CorunSetup *setup, GError **error)
{
  g_autoptr(CorunPolicy) policy = NULL;

  if (ops == NULL || ops->name == NULL || ops->interval == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "a policy needs a name and an interval hook");
    return NULL;
  }
  policy = g_new0(CorunPolicy, 1);
  policy->ops = ops;
  policy->setup = setup;
  if (ops->init != NULL && !ops->init(policy, error)) {
    g_prefix_error(error, "policy %s: ", ops->name);
    return NULL; /* the free destroys what init allocated (priv) */
  }
  return g_steal_pointer(&policy);
}

void
corun_policy_free(CorunPolicy *policy)
{
  if (policy == NULL)
    return;
  if (policy->priv != NULL && policy->ops->destroy != NULL)
    policy->ops->destroy(policy);
  g_free(policy);
}

const struct corun_policy_ops *
corun_policy_lookup(const char *name)
{
  for (guint i = 0; corun_policies[i] != NULL; i++)
    if (g_strcmp0(corun_policies[i]->name, name) == 0)
      return corun_policies[i];
  return NULL;
}
