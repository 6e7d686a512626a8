/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The interval's moves (loop.c calls them after the plans, the caps and the batch fit): every
 * VM's lists spread over the nodes of their tier, nearest first, within each node's room;
 * promotions within the pool's free DRAM; each list moved in the mover's timed batches
 * (loop-batch.c), the pages that arrived cooled down and counted. Split out of loop.c.
 */
#include "loop-move-private.h"
#include "nodes-private.h"
#include "plan-private.h"
#include "vm-private.h"

#include <hmmv/units.h>

/* Pages that really reached dest_node start their cooldown, so they cannot bounce back in
 * the next intervals (hysteresis in time; the planner's key margin is hysteresis in heat). */
void
hmmv_core_start_cooldown(HmmvCore *core, HmmvVm *vm, const GArray *pages, int dest_node)
{
  for (guint i = 0; i < pages->len; i++) {
    guint64 page = g_array_index(pages, guint64, i);
    const HmmvUnit *unit = hmmv_vm_unit_of(vm, page);
    guint64 first = unit != NULL ? unit->first_page : page;
    guint64 end = unit != NULL ? first + unit->nr_pages : page + 1;

    /* a huge unit cools down as a whole (the planner reads its first page) */
    for (guint64 p = first; p < end; p++)
      if (hmmv_vm_get_page_node(vm, p) == dest_node)
        hmmv_place_set_cooldown(vm, p, core->params.cooldown_intervals);
  }
}

/* First placements and re-moves (core.h) among pages that really reached dest_node. */
static void
core_count_moved(HmmvVm *vm, const GArray *pages, int dest_node, HmmvVmReport *rep)
{
  for (guint i = 0; i < pages->len; i++) {
    guint64 page = g_array_index(pages, guint64, i);
    const HmmvUnit *unit = hmmv_vm_unit_of(vm, page);
    guint64 first = unit != NULL ? unit->first_page : page;
    guint64 end = unit != NULL ? first + unit->nr_pages : page + 1;

    for (guint64 p = first; p < end; p++) {
      if (hmmv_vm_get_page_node(vm, p) != dest_node)
        continue;
      if (hmmv_vm_note_move_again(vm, p))
        rep->moved_again++;
      else
        rep->moved_first++;
    }
  }
}

guint64
hmmv_core_move_failures(const HmmvMoveStats *stats)
{
  return stats->not_present + stats->busy + stats->no_memory + stats->fault + stats->access +
         stats->other;
}

/* Promotions [from, end of list) wait for room (deferred_room): a backed-off page among them
 * keeps its turn for the next interval with room (vm.h, hmmv_vm_note_move_no_room), or its
 * phase could keep falling on the intervals a full node is tried again (test-loop-backoff.c). */
static void
note_wait_for_room(HmmvVm *vm, const GArray *list, guint from)
{
  if (hmmv_vm_get_nr_backed_off(vm) == 0)
    return;
  for (guint e = from; e < list->len; e++)
    hmmv_vm_note_move_no_room(vm, g_array_index(list, guint64, e));
}

/* Carry out one list of a VM's plan, its demotions or its promotions, spread over nodes as
 * core_assign granted them, nearest first. Pages that went past the first node because it was
 * full are counted (rep, the node's fallback_in) and named in *note. */
static gboolean
core_move(HmmvCore *core, CoreVm *cvm, gboolean promote, HmmvVmReport *rep, GString *note,
          GError **error)
{
  HmmvVm *vm = cvm->vm;
  const HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  guint64 failed_before = hmmv_core_move_failures(stats);
  GArray *pages = promote ? cvm->plan.promote : cvm->plan.demote;
  const HmmvNodeRequest *to = promote ? &cvm->promote_to : &cvm->demote_to;
  guint64 moved = 0, fallback = 0, offset = 0;
  gboolean ok = TRUE;

  if (core->cancellable != NULL && g_cancellable_is_cancelled(core->cancellable)) {
    rep->deferred_cap += pages->len;   /* the caller is stopping: they wait */
  } else if (pages->len > 0) {
    ok = hmmv_core_fresh_units(core, vm, pages, error);
    for (guint i = 0; ok && i < pages->len; i++)
      rep->moved_max_pages += hmmv_vm_unit_pages(vm, g_array_index(pages, guint64, i));
  }
  /* Each node takes the entries (whole units) that fit in the pages granted to it. */
  for (guint r = 0; ok && r < to->nr_rank && offset < pages->len; r++) {
    guint64 count = 0, unit_pages = 0, moved_here = 0, done = 0;
    g_autoptr(GArray) slice = NULL;

    while (offset + count < pages->len) {
      guint64 size = hmmv_vm_unit_pages(vm, g_array_index(pages, guint64, offset + count));

      if (unit_pages + size > to->granted[r])
        break;
      unit_pages += size;
      count++;
    }
    if (count == 0)
      continue;
    ok = hmmv_core_move_timed(core, vm, &g_array_index(pages, guint64, offset), count,
                              to->rank[r], &moved_here, &done, error);
    slice = g_array_sized_new(FALSE, FALSE, sizeof(guint64), (guint)done);
    g_array_append_vals(slice, &g_array_index(pages, guint64, offset), (guint)done);
    if (ok) {
      hmmv_core_start_cooldown(core, vm, slice, to->rank[r]);
      core_count_moved(vm, slice, to->rank[r], rep);
    }
    /* the interval's moves ran out of time, or the node was found full (loop-batch.c): the
     * rest wait, uncharged */
    for (guint64 i = done; ok && i < count; i++) {
      guint64 size = hmmv_vm_unit_pages(vm, g_array_index(pages, guint64, offset + i));

      rep->moved_max_pages -= MIN(rep->moved_max_pages, size);
      if (hmmv_core_node_full(core, to->rank[r])) {
        if (promote) {
          rep->deferred_room += size;
          hmmv_vm_note_move_no_room(vm, g_array_index(pages, guint64, offset + i));
        } else
          rep->deferred_cap += size;
      } else {
        rep->deferred_batch += size;
        rep->deferred_cap += size;
      }
    }
    offset += count;
    moved += moved_here;
    if (r > 0 && moved_here > 0) {
      fallback += moved_here;
      core->nodes[to->rank[r]].fallback_in_pages += moved_here;
      g_string_append_printf(note, "%svm %s: %s node %d full, %s to node %d",
                             note->len > 0 ? "; " : "", hmmv_vm_get_name(vm),
                             promote ? "DRAM" : "slow", to->rank[0],
                             promote ? "promoted" : "demoted", to->rank[r]);
    }
  }
  if (promote) {
    rep->promoted += moved;
    rep->promoted_fallback += fallback;
  } else {
    rep->demoted += moved;
    rep->demoted_fallback += fallback;
  }
  rep->move_failed += hmmv_core_move_failures(stats) - failed_before;
  return ok;
}

/* Spreads every VM's demotions (promote FALSE) or promotions over the nodes of their tier,
 * nearest first, within each node's room now (its capacity less what the VMs hold there after
 * the moves so far). Promotions that fit nowhere wait (deferred_room); so do demotions, when
 * every slow node is full. */
static void
core_assign(HmmvCore *core, const gboolean *ok, gboolean promote, HmmvIntervalReport *report)
{
  g_autofree HmmvNodeRequest *reqs = g_new0(HmmvNodeRequest, MAX(core->vms->len, 1));
  gint64 room[HMMV_NR_NODE_SLOTS] = { 0 };

  for (guint n = 0; n < hmmv_topology_get_nr_nodes(core->topo); n++) {
    int id = hmmv_topology_get_node(core->topo, n)->id;

    room[id] = (gint64)core->nodes[id].capacity_pages;
    for (guint i = 0; i < core->vms->len; i++)
      room[id] -= (gint64)((CoreVm *)g_ptr_array_index(core->vms, i))->vm->node_pages[id];
    /* the kernel found it full lately, whatever its free memory said: only the room the
     * VMs' own moves freed there since (loop-batch.c) */
    if (hmmv_core_node_full(core, id))
      room[id] = MIN(room[id], (gint64)hmmv_core_node_swap_room(core, id));
  }
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    GArray *list = promote ? cvm->plan.promote : cvm->plan.demote;

    reqs[i] = promote ? cvm->promote_to : cvm->demote_to;
    reqs[i].want = 0;
    for (guint e = 0; ok[i] && e < list->len; e++)
      reqs[i].want += hmmv_vm_unit_pages(cvm->vm, g_array_index(list, guint64, e));
  }
  hmmv_nodes_assign(reqs, core->vms->len, room, core->nodes);
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    GArray *list = promote ? cvm->plan.promote : cvm->plan.demote;
    guint64 granted = 0;

    for (guint r = 0; r < reqs[i].nr_rank; r++)
      granted += reqs[i].granted[r];
    if (ok[i] && granted < reqs[i].want) {
      guint keep = 0;
      guint64 kept_pages = 0;

      while (keep < list->len) {
        guint64 size = hmmv_vm_unit_pages(cvm->vm, g_array_index(list, guint64, keep));

        if (kept_pages + size > granted)
          break;
        kept_pages += size;
        keep++;
      }
      if (promote) {
        g_array_index(report->vms, HmmvVmReport, i).deferred_room += reqs[i].want - kept_pages;
        cvm->plan.promote_pages = kept_pages;
        note_wait_for_room(cvm->vm, list, keep);
      }
      g_array_set_size(list, keep);
    }
    if (promote)
      cvm->promote_to = reqs[i];
    else
      cvm->demote_to = reqs[i];
  }
}

/* After every VM's demotions, before any promotes: the pool's free DRAM is what it is now,
 * pool - all VMs' DRAM pages. A VM's budget says it may grow, but the room may still be held
 * by another VM whose demotions the cap deferred (a budget that fell by more than the cap, a
 * page in cooldown): promotions beyond the free room would fail on a full node, or overfill a
 * pool smaller than the node. When the VMs want more than is free, each gets a share in
 * proportion to what it wants (rounding down, the pages left one each from the lowest index);
 * the hottest of its promotions go, the rest wait (deferred_room). */
void
hmmv_core_limit_promotions(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report)
{
  guint64 used = 0, wanted = 0, free_pages, given = 0;

  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    used += hmmv_vm_get_dram_pages(cvm->vm);
    wanted += ok[i] ? cvm->plan.promote_pages : 0;
  }
  free_pages = core->pool_pages > used ? core->pool_pages - used : 0;
  if (wanted <= free_pages)
    return;
  for (guint pass = 0; pass < 2; pass++) {
    for (guint i = 0; i < core->vms->len; i++) {
      CoreVm *cvm = g_ptr_array_index(core->vms, i);
      HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);
      guint64 want = ok[i] ? cvm->plan.promote_pages : 0, keep, kept = 0;
      guint n = 0;

      if (pass == 0) {
        keep = (guint64)((unsigned __int128)want * free_pages / wanted);
        given += keep;
        rep->deferred_room = want - keep;
        continue;
      }
      keep = want - rep->deferred_room;
      if (given < free_pages && keep < want) {
        keep++;
        given++;
      }
      /* whole entries, hottest first, while they fit in keep pages (a huge unit counts all
       * its pages) */
      while (n < cvm->plan.promote->len) {
        guint64 size = hmmv_vm_unit_pages(cvm->vm, g_array_index(cvm->plan.promote, guint64, n));

        if (kept + size > keep)
          break;
        kept += size;
        n++;
      }
      rep->deferred_room = want - kept;
      note_wait_for_room(cvm->vm, cvm->plan.promote, n);
      g_array_set_size(cvm->plan.promote, n);
      cvm->plan.promote_pages = kept;
    }
  }
}

void
hmmv_core_demote(HmmvCore *core, gboolean *ok, HmmvIntervalReport *report, GString *note)
{
  core_assign(core, ok, FALSE, report);
  for (guint i = 0; i < core->vms->len; i++) {
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    if (ok[i])
      ok[i] = core_move(core, g_ptr_array_index(core->vms, i), FALSE, rep, note, &rep->error);
  }
}

void
hmmv_core_promote(HmmvCore *core, gboolean *ok, HmmvIntervalReport *report, GString *note)
{
  core_assign(core, ok, TRUE, report);
  for (guint i = 0; i < core->vms->len; i++) {
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    if (ok[i])
      ok[i] = core_move(core, g_ptr_array_index(core->vms, i), TRUE, rep, note, &rep->error);
  }
}

void
hmmv_core_swap_demotions(HmmvCore *core, GPtrArray *later)
{
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    GArray *list = cvm->plan.demote;

    cvm->plan.demote = g_ptr_array_index(later, i);
    later->pdata[i] = list;
  }
}

/* Whether the VMs' promotions want more than the pool has free now: then the demotions
 * nothing of their own VM waits for must free it first (another VM's budget shrank). */
gboolean
hmmv_core_promotions_wait(HmmvCore *core, const gboolean *ok)
{
  guint64 used = 0, wanted = 0;

  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    used += hmmv_vm_get_dram_pages(cvm->vm);
    wanted += ok[i] ? cvm->plan.promote_pages : 0;
  }
  return wanted > (core->pool_pages > used ? core->pool_pages - used : 0);
}
