/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Each VM's plan for the interval (loop.c calls it after the balance): its hot cut and the
 * plan built over its pages, pages backed off after failed moves sitting it out, or its last
 * plan kept when nothing that plan was built from has changed (a settled VM). Split out of
 * loop.c.
 */
#include "loop-plan-private.h"
#include "plan-private.h"
#include "vm-private.h"

#include <hmmv/classify.h>
#include <hmmv/plan.h>

#include <string.h>

/* Pages backed off after failed moves (vm.h) sit out this plan: a cooldown of 1, which the
 * plan itself ages away. Without it the planner, lowest page index first within a key,
 * picked the same unmovable pages every interval: 1,000 of 4,000 hot pages failing with
 * -EBUSY took the whole cap, and nothing was promoted in 20 intervals. */
static void
core_apply_backoff(HmmvCore *core, HmmvVm *vm)
{
  if (hmmv_vm_get_nr_backed_off(vm) == 0)
    return;
  for (guint64 base = 0; base < vm->nr_pages; base += 8) {
    guint64 word;

    memcpy(&word, vm->backoff + base, sizeof(word));
    if (word == 0)
      continue;
    for (guint64 page = base; page < MIN(base + 8, vm->nr_pages); page++) {
      if (HMMV_PLACE_COOLDOWN(vm->place[page]) == 0 &&
          hmmv_vm_page_backed_off(vm, page, core->interval_index))
        hmmv_place_set_cooldown(vm, page, 1);
    }
  }
}

/* Whether a VM's last plan stands for this interval without being built again: the VM is
 * COARSE (loop-watch.c: settled for HMMV_WATCH_SETTLE_INTERVALS in a row), its last plan
 * listed no move, and nothing that plan was built from has changed: this harvest brought no
 * interval and no page seen accessed (a paused write source: 7 harvests in 8 while COARSE,
 * tracker.h), so no key moved (hmmv_temperature_update leaves them); the rescan found nothing
 * moved behind its back; its budget is the one planned for. The plan would come out the same
 * (a cooldown that would have aged meanwhile ages at the next plan: a settled VM wants no
 * move a cooldown holds), so building it, the interval's largest cost for a settled VM, buys
 * no placement (issue 8: hmmvd's CPU in the tiering race is the guests' CPU in the testbed). */
static gboolean
core_plan_unchanged(const CoreVm *cvm, const HmmvVmReport *rep)
{
  return cvm->settled_run >= HMMV_WATCH_SETTLE_INTERVALS && cvm->plan_empty &&
         cvm->acc->intervals == 0 && rep->written == 0 && rep->read == 0 &&
         rep->rescan_drift == 0 && rep->placement_unread == 0 &&
         hmmv_vm_get_budget_pages(cvm->vm) == cvm->plan_budget;
}

/* The budget the plan is built with: the VM's, but no more than its DRAM now and the room its
 * own moves freed there (its swap room, loop-batch.c) while every DRAM node it promotes to is
 * found full, so its promotions beyond that room are planned as swaps whose demotions make
 * their room. Room the free counts showed and the kernel would not give (ENOMEM) otherwise
 * took promotions that waited on the full node while nothing was demoted for them (issue 8,
 * claim 2: three VMs on a node 0 full of their cold pages). Without the swap room, a swap
 * whose promotion failed or was cut left its demotion's room unused, and the next plan
 * demoted again for the same promotion (issue 8: 1,264 demotions for 1,200 promotions). */
static guint64
core_plan_budget(const HmmvCore *core, const CoreVm *cvm)
{
  guint64 budget = hmmv_vm_get_budget_pages(cvm->vm);

  if (hmmv_core_dram_full_for(core, cvm))
    return MIN(budget, hmmv_vm_get_dram_pages(cvm->vm) + hmmv_core_swap_room(core, cvm));
  return budget;
}

/* While the VM's DRAM nodes refuse even the room its demotions free (another process takes
 * it back at once, loop-batch.c), a swap would only demote: the plan keeps no promotion (they
 * wait, deferred_room) and of its demotions, coldest first, only what its budget makes it
 * free. */
static void
core_plan_drop_swaps(CoreVm *cvm, HmmvVmReport *rep)
{
  HmmvVm *vm = cvm->vm;
  guint64 dram = hmmv_vm_get_dram_pages(vm), budget = hmmv_vm_get_budget_pages(vm);
  guint64 must = dram > budget ? dram - budget : 0, kept = 0;
  guint nd = 0;

  while (nd < cvm->plan.demote->len && kept < must)
    kept += hmmv_vm_unit_pages(vm, g_array_index(cvm->plan.demote, guint64, nd++));
  g_array_set_size(cvm->plan.demote, nd);
  cvm->plan.demote_pages = kept;
  rep->deferred_room += cvm->plan.promote_pages;
  /* a backed-off page among them keeps its turn (vm.h, hmmv_vm_note_move_no_room) */
  for (guint e = 0; hmmv_vm_get_nr_backed_off(vm) > 0 && e < cvm->plan.promote->len; e++)
    hmmv_vm_note_move_no_room(vm, g_array_index(cvm->plan.promote, guint64, e));
  g_array_set_size(cvm->plan.promote, 0);
  cvm->plan.promote_pages = 0;
}

void
hmmv_core_plan(HmmvCore *core, CoreVm *cvm, HmmvVmReport *rep)
{
  HmmvVm *vm = cvm->vm;
  HmmvHotCut cut;
  gboolean refused;

  if (core_plan_unchanged(cvm, rep)) {
    /* the last plan's lists were empty; its counts (what the watch reads) stand */
    g_array_set_size(cvm->plan.promote, 0);
    g_array_set_size(cvm->plan.demote, 0);
    cvm->plan.promote_pages = cvm->plan.demote_pages = 0;
    cvm->plan.hot_entered = cvm->plan.hot_left = 0;
    rep->hot_pages = cvm->plan_hot_pages;
    rep->plan_kept = TRUE;
    return;
  }
  hmmv_classify(&cvm->hist, hmmv_vm_get_budget_pages(vm), core->params.promote_min_key, &cut);
  rep->hot_pages = cut.hot_pages;
  core_apply_backoff(core, vm);
  hmmv_plan_build(vm, &cut, core_plan_budget(core, cvm), hmmv_core_vm_cap_pages(core, cvm),
                  &core->params, &cvm->plan);
  refused = hmmv_core_swaps_refused(core, cvm);
  if (refused)
    core_plan_drop_swaps(cvm, rep);
  /* a plan emptied by the refusal is not kept: the next pause may take swaps */
  cvm->plan_empty = !refused && cvm->plan.promote->len == 0 && cvm->plan.demote->len == 0;
  cvm->plan_budget = hmmv_vm_get_budget_pages(vm);
  cvm->plan_hot_pages = cut.hot_pages;
  rep->deferred_cap = cvm->plan.deferred_cap;
  rep->deferred_unit = cvm->plan.deferred_unit;
  rep->hot_entered = cvm->plan.hot_entered;
  rep->hot_left = cvm->plan.hot_left;
}
