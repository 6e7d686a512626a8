/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The interval's moves sized by the mover's speed (issue 7; params.move_share_percent).
 *
 * Why: the caps count bytes, not time, and a mover can be far slower than the caps assume. On
 * the testbed (TCG) one batch of ~14,000 demotions ran 16-21 s with 1 s intervals: no interval
 * ran meanwhile and hot pages waited behind the batch. So the core learns how long the mover
 * takes per 4 KiB page and plans each interval's moves, all VMs together (one thread moves
 * for all of them), to fit in move_share_percent of the interval.
 *
 * The speed: every move call is timed on the mover's clock (hmmv_mover_clock_ns: the
 * monotonic clock for a real mover, the charged cost for a modelled one). The speed is learnt
 * only from the calls that moved pages, in ns per 4 KiB page moved (a huge unit counts all
 * its pages): a call into a full node (ENOMEM after the kernel's reclaim, seconds under load)
 * or of pages that do not move says nothing of how fast pages move, and spread over the
 * pages it was given it taught a speed far below the mover's, which shrank the next batch,
 * whose next failing call taught a slower one still: on the two-socket testbed with node 0
 * full, one entry an interval (notes/old/home.md; test_slow_failures_do_not_stall). After
 * the moves, the interval's ns per page moved becomes the learnt speed, but one interval
 * moves it at most HMMV_CORE_SPEED_STEP (4x) either way: an outlier (a loaded host for one
 * interval) cannot collapse the batch, and a mover that really turned 200x slower is learnt
 * in four intervals, the deadline below bounding each of them. Before any move the tier
 * model's move_cost_ns stands in (3.9 us a page at the default). One speed for the host, not
 * per VM or node pair: the calls are the same move_pages(2) with the same per-page work, and
 * a VM that moves rarely would otherwise be planned by an old figure.
 *
 * The cut: what the VMs' plans want beyond the limit is shared max-min fairly (as the host
 * cap is, loop-cap.c), and within a VM what it keeps goes in this order: promotions hottest
 * first, each with the demotions (coldest first) that make its room, then the demotions
 * nothing waits for (a budget that shrank) while the share lasts. So a hot page is promoted
 * within an interval or two even when thousands of demotions are pending; those go in later
 * intervals, and the VM does not grow meanwhile (each promotion still has its room made
 * first). A VM keeps at least its first entry: a huge unit moves whole, so its share may be
 * exceeded by one unit (the caps' token buckets still bound how often). The moves run in
 * that order too (hmmv_core_split_demotions, loop.c): every VM's room-making demotions, its
 * promotions, then the demotions nothing waits for, unless the promotions need the pool's
 * room those free (another VM's budget shrank); so when the deadline cuts an interval, it
 * cuts demotions, not the hottest pages' promotions.
 *
 * A deadline backs the plan up: a mover that turns slower than learnt (the first interval
 * after the host got loaded) would still run the whole planned batch. So the moves go to the
 * mover in calls of at most mover->batch_pages 4 KiB pages (2 MiB; a larger unit alone: a
 * 1 GiB page is one call) and stop, between calls, once the interval's moves (the plans' and
 * the pages brought home, loop-home.c) have taken twice the share (the whole interval at
 * most) on the mover's clock; what is left waits for the next plan (deferred_batch).
 *
 * A node the kernel found full (a call failed with ENOMEM) gets no more calls for the rest
 * of the interval and, while it stays full, for 1, 2, 4 ... up to 16 intervals: each try can
 * take seconds, and the plans give it no room meanwhile, so promotions go to the next DRAM
 * node or wait; except the room the VMs' own moves freed there since (swap room): pages
 * demoted off the node while it is found full leave room the kernel does have, so each VM
 * may move that many pages back in (its promotions, the swaps' other half) without a new
 * demotion, in this interval or, when a promotion failed (EBUSY, a pin) or was cut, in the
 * next ones. The VM's plan counts that room as its own (loop-plan.c), so it demotes only for
 * the promotions beyond it. Before, a VM whose node was found full demoted for its swaps and
 * then made no call into the node until the pause ended: 1,000 pages of one VM demoted in
 * three intervals for 400 promotions that waited (test_swaps_when_dram_full). An ENOMEM on a
 * call into its swap room says another process took that room: the VM's swap room there
 * drops to 0 (the other VMs' calls find out for theirs), and when the call moved nothing and
 * no such call did in this pause, the node takes no swap for the rest of the pause (a
 * process that takes back every page freed there: test_slow_failures_do_not_stall), so the
 * plans stop demoting for swaps. The ENOMEM that marks the node full again after a pause
 * drops every VM's swap room and that refusal. Calls into the swap room neither lengthen the
 * pause nor end its doubling: they say nothing of the room the free count shows.
 */
#include "core-private.h"

/* The 4 KiB pages of entries [0, n) of a list. */
static guint64
prefix_pages(HmmvVm *vm, const GArray *list, guint n)
{
  guint64 pages = 0;

  for (guint i = 0; i < n; i++)
    pages += hmmv_vm_unit_pages(vm, g_array_index(list, guint64, i));
  return pages;
}

/* ns per 4 KiB page this interval is planned with, x16. */
static guint64
speed_x16(const HmmvCore *core)
{
  if (core->mover_ns_per_page_x16 > 0)
    return core->mover_ns_per_page_x16;
  return 16u * (core->params.move_cost_ns > 0 ? core->params.move_cost_ns : 3900u);
}

/* Pages that fit in the share of the interval at the learnt speed; G_MAXUINT64: no limit. */
static guint64
batch_limit(const HmmvCore *core)
{
  /* share% x interval_ms x 10^6 ns / (ns a page): at most 100 x 3.6e6 x 1.6e5, no overflow */
  guint64 share_ns_x16 = (guint64)core->params.move_share_percent * core->params.interval_ms *
                         10000u * 16u;

  if (core->params.move_share_percent == 0)
    return G_MAXUINT64;
  return MAX(share_ns_x16 / speed_x16(core), 1);
}

/* The VM's promotions that need no demotion of its own first: its budget's room, as far as
 * the pool has it free (pool_free: the pool less every VM's DRAM) and none while every DRAM
 * node it promotes to is found full (note_node_full: core_assign then gives them no room).
 * The budget's room alone is not enough (issue 8, claim 2): on the testbed node 0's free
 * count showed room the kernel would not give (ENOMEM), the node was marked full, and with
 * the learnt speed at ~2 ms a page each VM's share of the batch (43 pages) was below its
 * budget's room (164): the fit kept 43 promotions and none of the swaps' demotions, the
 * promotions waited for room on the full node, and nothing moved for the rest of the run. */
static guint64
promote_room(const HmmvCore *core, const CoreVm *cvm, guint64 pool_free)
{
  guint64 budget = hmmv_vm_get_budget_pages(cvm->vm), dram = hmmv_vm_get_dram_pages(cvm->vm);
  guint64 room = MIN(budget > dram ? budget - dram : 0, pool_free);

  if (hmmv_core_dram_full_for(core, cvm))
    return MIN(room, hmmv_core_swap_room(core, cvm));
  return room;
}

/* The pool's DRAM not held by any VM now. */
static guint64
pool_free_pages(const HmmvCore *core)
{
  guint64 used = 0;

  for (guint i = 0; i < core->vms->len; i++)
    used += hmmv_vm_get_dram_pages(((CoreVm *)g_ptr_array_index(core->vms, i))->vm);
  return core->pool_pages > used ? core->pool_pages - used : 0;
}

/* Keeps at most grant pages of the VM's plan, in the order of the top, promotions beyond
 * free_room each with the demotions that make its room, then of the demotions no promotion
 * needs (the plan's beyond those pairs) what the grant has left; returns the pages kept. The
 * demotions of the promotions cut wait with them: before, a grant an odd page above the
 * swaps it kept demoted one more page whose promotion waited (churn, issue 8). */
static guint64
fit_vm(HmmvVm *vm, HmmvPlan *plan, guint64 grant, guint64 free_room)
{
  guint64 all_p = prefix_pages(vm, plan->promote, plan->promote->len);
  guint64 all_d = prefix_pages(vm, plan->demote, plan->demote->len);
  guint64 paired = all_p > free_room ? all_p - free_room : 0, p = 0, d = 0, unpaired;
  guint np = 0, nd = 0;

  unpaired = all_d > paired ? all_d - paired : 0;

  while (np < plan->promote->len) {
    guint64 size = hmmv_vm_unit_pages(vm, g_array_index(plan->promote, guint64, np));
    guint64 need = p + size > free_room ? p + size - free_room : 0, d2 = d;
    guint nd2 = nd;

    while (d2 < need && nd2 < plan->demote->len)
      d2 += hmmv_vm_unit_pages(vm, g_array_index(plan->demote, guint64, nd2++));
    if (d2 < need || (p + size + d2 > grant && p + d > 0))
      break;
    p += size;
    np++;
    d = d2;
    nd = nd2;
  }
  for (guint64 extra = 0; nd < plan->demote->len && extra < unpaired;) {
    guint64 size = hmmv_vm_unit_pages(vm, g_array_index(plan->demote, guint64, nd));

    if (p + d + size > grant && p + d > 0)
      break;
    d += size;
    extra += size;
    nd++;
  }
  g_array_set_size(plan->promote, np);
  g_array_set_size(plan->demote, nd);
  plan->promote_pages = p;
  plan->demote_pages = d;
  return p + d;
}

void
hmmv_core_fit_batch(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report)
{
  guint n = core->vms->len;
  guint64 limit = batch_limit(core), total = 0, pool_free = pool_free_pages(core);
  g_autofree guint64 *want = g_new0(guint64, MAX(n, 1));
  g_autofree guint64 *grant = NULL;

  report->mover_ns_per_page = speed_x16(core) / 16u;
  report->batch_pages = limit;
  core->batch_limit_pages = limit;
  if (limit == G_MAXUINT64)
    return;
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (!ok[i])
      continue;
    want[i] = prefix_pages(cvm->vm, cvm->plan.promote, cvm->plan.promote->len) +
              prefix_pages(cvm->vm, cvm->plan.demote, cvm->plan.demote->len);
    total += want[i];
  }
  if (total <= limit)
    return;
  grant = g_new0(guint64, n);
  hmmv_core_water_fill(want, grant, n, limit);
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);
    guint64 kept;

    if (grant[i] == want[i])
      continue;
    kept = fit_vm(cvm->vm, &cvm->plan, grant[i], promote_room(core, cvm, pool_free));
    rep->deferred_batch = want[i] - MIN(kept, want[i]);
    rep->deferred_cap += rep->deferred_batch;
  }
}

void
hmmv_core_split_demotions(HmmvCore *core, const gboolean *ok, GPtrArray *later)
{
  guint64 pool_free = pool_free_pages(core);

  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    GArray *demote = cvm->plan.demote, *rest = g_ptr_array_index(later, i);
    guint64 free_room, need, d = 0;
    guint nd = 0;

    g_array_set_size(rest, 0);
    if (!ok[i])
      continue;
    free_room = promote_room(core, cvm, pool_free);
    need = cvm->plan.promote_pages > free_room ? cvm->plan.promote_pages - free_room : 0;
    while (d < need && nd < demote->len)
      d += hmmv_vm_unit_pages(cvm->vm, g_array_index(demote, guint64, nd++));
    g_array_append_vals(rest, &g_array_index(demote, guint64, nd), demote->len - nd);
    g_array_set_size(demote, nd);
    cvm->plan.demote_pages = d;
  }
}

void
hmmv_core_time_move(HmmvCore *core, guint64 ns, guint64 pages, guint64 moved)
{
  core->moved_ns += ns;
  core->moved_pages += pages;
  if (moved == 0)
    return;
  core->learn_ns += ns;
  core->learn_pages += moved;
}

void
hmmv_core_learn_speed(HmmvCore *core)
{
  guint64 sample, now = speed_x16(core);

  if (core->learn_pages == 0)
    return;
  sample = MAX(core->learn_ns * 16u / core->learn_pages, 1);
  core->mover_ns_per_page_x16 = CLAMP(sample, MAX(now / HMMV_CORE_SPEED_STEP, 1),
                                      now * HMMV_CORE_SPEED_STEP);
}

/* Whether the interval's moves have used their time (see the top). */
static gboolean
deadline_passed(const HmmvCore *core)
{
  guint percent = MIN(2u * core->params.move_share_percent, 100u);

  if (core->params.move_share_percent == 0)
    return FALSE;
  return core->moved_ns >= (guint64)percent * core->params.interval_ms * 10000u;
}

gboolean
hmmv_core_node_full(const HmmvCore *core, int node)
{
  return node >= 0 && node < HMMV_NR_NODE_SLOTS &&
         core->interval_index <= core->full_until[node];
}

gboolean
hmmv_core_dram_full_for(const HmmvCore *core, const CoreVm *cvm)
{
  for (guint r = 0; r < cvm->promote_to.nr_rank; r++)
    if (!hmmv_core_node_full(core, cvm->promote_to.rank[r]))
      return FALSE;
  return cvm->promote_to.nr_rank > 0;
}

/* Whether the node is found full and takes swaps (see the top). */
static gboolean
node_swaps(const HmmvCore *core, int node)
{
  return hmmv_core_node_full(core, node) && !core->swap_refused[node];
}

gboolean
hmmv_core_swaps_refused(const HmmvCore *core, const CoreVm *cvm)
{
  if (!hmmv_core_dram_full_for(core, cvm))
    return FALSE;
  for (guint r = 0; r < cvm->promote_to.nr_rank; r++)
    if (node_swaps(core, cvm->promote_to.rank[r]))
      return FALSE;
  return TRUE;
}

guint64
hmmv_core_swap_room(const HmmvCore *core, const CoreVm *cvm)
{
  guint64 room = 0;

  if (!hmmv_core_dram_full_for(core, cvm))
    return 0;
  for (guint r = 0; r < cvm->promote_to.nr_rank; r++)
    if (node_swaps(core, cvm->promote_to.rank[r]))
      room += cvm->swap_room[cvm->promote_to.rank[r]];
  return room;
}

guint64
hmmv_core_node_swap_room(const HmmvCore *core, int node)
{
  guint64 room = 0;

  if (!node_swaps(core, node))
    return 0;
  for (guint i = 0; i < core->vms->len; i++)
    room += ((const CoreVm *)g_ptr_array_index(core->vms, i))->swap_room[node];
  return room;
}

/* The CoreVm of vm, NULL when the core does not have it. */
static CoreVm *
core_vm_of(HmmvCore *core, const HmmvVm *vm)
{
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (cvm->vm == vm)
      return cvm;
  }
  return NULL;
}

/* The kernel said node has no room (a call of cvm's failed with ENOMEM). A call while the
 * node was not found full (was_full FALSE): no more calls into it for the rest of this
 * interval and the next full_backoff[node] - 1 (1, 2, 4, ... 16 intervals in all while it
 * stays full: each try can cost seconds of reclaim), and no room for it in the plans
 * meanwhile but the swap room (see the top), every VM's emptied (what is left is of an older
 * pause). A call into cvm's swap room: that room is gone, and if no such call moved pages
 * in this pause, the node takes no swap for the rest of it. One call that moves pages there
 * without ENOMEM while it is not found full ends the doubling. */
static void
note_node_full(HmmvCore *core, CoreVm *cvm, int node, gboolean full, gboolean was_full,
               guint64 moved)
{
  if (node < 0 || node >= HMMV_NR_NODE_SLOTS)
    return;
  core->swap_taken[node] |= was_full && moved > 0;
  if (!full) {
    if (moved > 0 && !was_full)
      core->full_backoff[node] = 0;
    return;
  }
  if (was_full) {
    if (cvm != NULL)
      cvm->swap_room[node] = 0;
    core->swap_refused[node] |= !core->swap_taken[node];
    return;
  }
  core->full_backoff[node] = CLAMP(2u * core->full_backoff[node], 1u,
                                   HMMV_CORE_FULL_BACKOFF_MAX);
  /* interval_index is the next interval's: this one is interval_index - 1 */
  core->full_until[node] = core->interval_index - 1 + core->full_backoff[node];
  core->swap_refused[node] = FALSE;
  core->swap_taken[node] = FALSE;
  for (guint i = 0; i < core->vms->len; i++)
    ((CoreVm *)g_ptr_array_index(core->vms, i))->swap_room[node] = 0;
}

/* After a call of entries[0, n) to dest_node, whose entries were on from[] before: the pages
 * that left a node found full add to the VM's swap room there, the pages that went into
 * dest_node while it is found full take theirs from it. */
static void
count_swap_room(HmmvCore *core, CoreVm *cvm, const guint64 *entries, const int *from,
                guint64 n, int dest_node, guint64 moved)
{
  if (cvm == NULL)
    return;
  for (guint64 i = 0; i < n; i++) {
    if (from[i] == dest_node || from[i] < 0 || from[i] >= HMMV_NR_NODE_SLOTS ||
        !hmmv_core_node_full(core, from[i]) ||
        hmmv_vm_get_page_node(cvm->vm, entries[i]) != dest_node)
      continue;
    cvm->swap_room[from[i]] += hmmv_vm_unit_pages(cvm->vm, entries[i]);
  }
  if (dest_node >= 0 && dest_node < HMMV_NR_NODE_SLOTS && hmmv_core_node_full(core, dest_node))
    cvm->swap_room[dest_node] -= MIN(cvm->swap_room[dest_node], moved);
}

/* The 4 KiB pages the VM may still move into dest_node now: G_MAXUINT64 unless the node is
 * found full, then its swap room there. */
static guint64
open_room(const HmmvCore *core, const CoreVm *cvm, int dest_node)
{
  if (!hmmv_core_node_full(core, dest_node))
    return G_MAXUINT64;
  return cvm != NULL && node_swaps(core, dest_node) ? cvm->swap_room[dest_node] : 0;
}

gboolean
hmmv_core_move_timed(HmmvCore *core, HmmvVm *vm, const guint64 *entries, guint64 count,
                     int dest_node, guint64 *moved, guint64 *done, GError **error)
{
  const HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  guint64 step = MAX(core->mover->batch_pages, 1);
  CoreVm *cvm = core_vm_of(core, vm);
  g_autofree int *from = NULL;

  *moved = 0;
  *done = 0;
  while (*done < count && !deadline_passed(core)) {
    guint64 n = 0, pages = 0, moved_here = 0, started_ns, no_memory = stats->no_memory;
    guint64 open = open_room(core, cvm, dest_node);
    gboolean ok, was_full = hmmv_core_node_full(core, dest_node);

    /* whole entries up to one mover call of 4 KiB pages (a bigger unit goes alone), within
     * the swap room of a node found full */
    while (*done + n < count) {
      guint64 size = hmmv_vm_unit_pages(vm, entries[*done + n]);

      if ((n > 0 && pages + size > step) || pages + size > open)
        break;
      pages += size;
      n++;
    }
    if (n == 0)
      break;
    from = g_renew(int, from, n);
    for (guint64 i = 0; i < n; i++)
      from[i] = hmmv_vm_get_page_node(vm, entries[*done + i]);
    started_ns = hmmv_mover_clock_ns(core->mover);
    ok = hmmv_mover_move(core->mover, vm, entries + *done, n, dest_node, &moved_here, error);
    hmmv_core_time_move(core, hmmv_mover_clock_ns(core->mover) - started_ns, pages,
                        moved_here);
    *moved += moved_here;
    if (ok)
      count_swap_room(core, cvm, entries + *done, from, n, dest_node, moved_here);
    *done += n;
    if (!ok)
      return FALSE;
    note_node_full(core, cvm, dest_node, stats->no_memory > no_memory, was_full, moved_here);
  }
  return TRUE;
}
