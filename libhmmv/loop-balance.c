/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The interval's balance of the DRAM pool (loop.c calls it after the harvest): which VMs take
 * part, the pools per DRAM node they share (nodes.c, balance-nodes.c), and the note naming
 * every VM when the mins did not fit. Split out of loop.c.
 */
#include "core-private.h"
#include "nodes-private.h"
#include "vm-private.h"

#include <hmmv/balance.h>
#include <hmmv/plan.h>

static const char *
outside_reason(const CoreVm *cvm, gboolean ok)
{
  if (cvm->frozen)
    return "frozen, its QEMU not answering";
  if (!ok)
    return "failing";
  if (cvm->paused)
    return "paused";
  if (cvm->left_alone != NULL)
    return cvm->left_alone;
  return cvm->place_next < hmmv_vm_get_nr_pages(cvm->vm) ? "placement being read" : "unmanaged";
}

/* The note of an interval whose mins did not all fit: names every VM, the ones that hold DRAM
 * outside the balance and the ones whose min was scaled. */
static char *
core_scaled_note(HmmvCore *core, const gboolean *ok, const HmmvBalanceVm *bvms, guint n,
                 guint64 pool, guint64 held_dram)
{
  GString *note = g_string_new(NULL);
  guint64 mins = 0;
  const char *sep = "";

  for (guint j = 0; j < n; j++)
    mins += MIN(bvms[j].min_pages, bvms[j].nr_pages);
  g_string_append_printf(note, "DRAM pool of %" G_GUINT64_FORMAT " pages: the mins total %"
                         G_GUINT64_FORMAT " pages, %" G_GUINT64_FORMAT " are left for them",
                         core->pool_pages, mins, pool);
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (cvm->outside) {
      g_string_append_printf(note, "%s vm %s (%s) holds %" G_GUINT64_FORMAT,
                             *sep ? ", " : " (", hmmv_vm_get_name(cvm->vm),
                             outside_reason(cvm, ok[i]), hmmv_vm_get_dram_pages(cvm->vm));
      sep = ")";
    }
  }
  if (held_dram > 0) {
    g_string_append_printf(note, "%s %" G_GUINT64_FORMAT " held for VMs being connected again",
                           *sep ? "," : " (", held_dram);
    sep = ")";
  }
  g_string_append_printf(note, "%s; mins scaled down in proportion:", sep);
  for (guint j = 0; j < n; j++)
    g_string_append_printf(note, "%s vm %s %" G_GUINT64_FORMAT " -> %" G_GUINT64_FORMAT,
                           j > 0 ? "," : "", bvms[j].name,
                           MIN(bvms[j].min_pages, bvms[j].nr_pages), bvms[j].min_granted);
  return g_string_free(note, FALSE);
}

/* VMs that do not take part in pooling (unmanaged, paused, or failing this interval) keep
 * the DRAM they hold; the pool shrinks by that much. Mins that do not fit in what is left are
 * scaled down (*note says how, naming each VM). */
gboolean
hmmv_core_balance(HmmvCore *core, const gboolean *ok, char **note, GError **error)
{
  g_autofree HmmvBalanceVm *bvms = g_new0(HmmvBalanceVm, core->vms->len);
  g_autofree guint *map = g_new0(guint, core->vms->len);
  g_autofree guint *ranks = NULL;
  guint64 pool = core->pool_pages, outside[HMMV_NR_NODE_SLOTS] = { 0 };
  guint64 pools[HMMV_NR_NODE_SLOTS];
  int ids[HMMV_NR_NODE_SLOTS];
  gboolean scaled = FALSE;
  guint n = 0, nr_pools;
  guint64 held_dram;

  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    const HmmvQuota *quota = hmmv_vm_get_quota(cvm->vm);

    /* a VM whose placement is still being read keeps what it holds, like a paused one:
     * its DRAM is not known yet */
    cvm->outside = !ok[i] || cvm->paused || cvm->frozen || !quota->managed ||
                   cvm->left_alone != NULL ||
                   cvm->place_next < hmmv_vm_get_nr_pages(cvm->vm);
    if (cvm->outside) {
      guint64 held = hmmv_vm_get_dram_pages(cvm->vm);

      hmmv_vm_set_budget_pages(cvm->vm, held);
      pool = pool > held ? pool - held : 0;
      for (int node = 0; node < HMMV_NR_NODE_SLOTS; node++)
        outside[node] += cvm->vm->node_pages[node];
      continue;
    }
    bvms[n] = (HmmvBalanceVm){
      .name = hmmv_vm_get_name(cvm->vm),
      .hist = &cvm->hist,
      .min_pages = quota->min_pages,
      .max_pages = quota->max_pages,
      .nr_pages = hmmv_vm_get_nr_pages(cvm->vm),
      .weight = quota->weight,
      .prev_budget = hmmv_vm_get_budget_pages(cvm->vm),
      /* the room its own demotions freed on a node found full is its own (loop-batch.c) */
      .held_pages = hmmv_vm_get_dram_pages(cvm->vm) + hmmv_core_swap_room(core, cvm),
      .waiting_pages = cvm->plan.promote_no_room,
      .demand_min_key = hmmv_plan_payback_min_key(&core->params),
    };
    map[n++] = i;
  }
  /* VMs removed while their QEMU lives (loop-hold.c): their pages are still where they were */
  held_dram = hmmv_core_holds_count(core, outside);
  pool = pool > held_dram ? pool - held_dram : 0;
  if (n == 0)
    return TRUE;
  /* each VM's budget from the pool of the DRAM node nearest its vCPUs first (nodes.c) */
  nr_pools = hmmv_nodes_dram_pools(core->topo, core->nodes, core->pool_pages, outside, ids,
                                   pools);
  ranks = g_new(guint, (gsize)n * MAX(nr_pools, 1));
  for (guint j = 0; j < n; j++)
    hmmv_nodes_pool_ranks(&((CoreVm *)g_ptr_array_index(core->vms, map[j]))->promote_to, ids,
                          nr_pools, &ranks[(gsize)j * nr_pools]);
  if (!hmmv_balance_nodes(bvms, n, pools, nr_pools, ranks, core->headroom_pages, error))
    return FALSE;
  for (guint j = 0; j < n; j++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, map[j]);

    hmmv_vm_set_budget_pages(cvm->vm, bvms[j].budget);
    cvm->min_granted = bvms[j].min_granted;
    scaled |= bvms[j].min_granted < MIN(bvms[j].min_pages, bvms[j].nr_pages);
  }
  if (scaled)
    *note = core_scaled_note(core, ok, bvms, n, pool, held_dram);
  return TRUE;
}
