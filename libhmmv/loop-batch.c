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
 * monotonic clock for a real mover, the charged cost for a modelled one) and counted in the
 * 4 KiB pages it was given. After the moves, the interval's ns per page updates the learnt
 * speed: a slower interval is taken at once (an overrun must not repeat), a faster one halves
 * the distance (one quick small batch, whose per-call overhead is spread over few pages, then
 * counts for less than a run of them). Before any move the tier model's move_cost_ns stands in
 * (3.9 us a page at the default). One speed for the host, not per VM or node pair: the calls
 * are the same move_pages(2) with the same per-page work, and a VM that moves rarely would
 * otherwise be planned by an old figure.
 *
 * The cut: what the VMs' plans want beyond the limit is shared max-min fairly (as the host
 * cap is, loop-cap.c), and within a VM what it keeps goes in this order: promotions hottest
 * first, each with the demotions (coldest first) that make its room, then the demotions
 * nothing waits for (a budget that shrank) while the share lasts. So a hot page is promoted
 * within an interval or two even when thousands of demotions are pending; those go in later
 * intervals, and the VM does not grow meanwhile (each promotion still has its room made
 * first). A VM keeps at least its first entry: a huge unit moves whole, so its share may be
 * exceeded by one unit (the caps' token buckets still bound how often).
 *
 * A deadline backs the plan up: a mover that turns slower than learnt (the first interval
 * after the host got loaded) would still run the whole planned batch. So the moves go to the
 * mover one batch of entries (mover->batch_pages) at a time and stop, between calls, once the
 * interval's moves have taken twice the share (the whole interval at most) on the mover's
 * clock; what is left waits for the next plan (deferred_batch).
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

/* Keeps at most grant pages of the VM's plan, in the order of the top; returns the pages
 * kept. */
static guint64
fit_vm(HmmvVm *vm, HmmvPlan *plan, guint64 grant)
{
  guint64 budget = hmmv_vm_get_budget_pages(vm), dram = hmmv_vm_get_dram_pages(vm);
  guint64 free_room = budget > dram ? budget - dram : 0, p = 0, d = 0;
  guint np = 0, nd = 0;

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
  while (nd < plan->demote->len) {
    guint64 size = hmmv_vm_unit_pages(vm, g_array_index(plan->demote, guint64, nd));

    if (p + d + size > grant && p + d > 0)
      break;
    d += size;
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
  guint64 limit = batch_limit(core), total = 0;
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
    kept = fit_vm(cvm->vm, &cvm->plan, grant[i]);
    rep->deferred_batch = want[i] - MIN(kept, want[i]);
    rep->deferred_cap += rep->deferred_batch;
  }
}

void
hmmv_core_time_move(HmmvCore *core, guint64 ns, guint64 pages)
{
  core->moved_ns += ns;
  core->moved_pages += pages;
}

void
hmmv_core_learn_speed(HmmvCore *core)
{
  guint64 sample;

  if (core->moved_pages == 0)
    return;
  sample = MAX(core->moved_ns * 16u / core->moved_pages, 1);
  if (core->mover_ns_per_page_x16 == 0 || sample >= core->mover_ns_per_page_x16)
    core->mover_ns_per_page_x16 = sample;
  else
    core->mover_ns_per_page_x16 -= (core->mover_ns_per_page_x16 - sample) / 2;
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
hmmv_core_move_timed(HmmvCore *core, HmmvVm *vm, const guint64 *entries, guint64 count,
                     int dest_node, guint64 *moved, guint64 *done, GError **error)
{
  guint64 step = MAX(core->mover->batch_pages, 1);

  *moved = 0;
  *done = 0;
  while (*done < count && !deadline_passed(core)) {
    guint64 n = MIN(step, count - *done), pages = 0, moved_here = 0, started_ns;
    gboolean ok;

    for (guint64 i = 0; i < n; i++)
      pages += hmmv_vm_unit_pages(vm, entries[*done + i]);
    started_ns = hmmv_mover_clock_ns(core->mover);
    ok = hmmv_mover_move(core->mover, vm, entries + *done, n, dest_node, &moved_here, error);
    hmmv_core_time_move(core, hmmv_mover_clock_ns(core->mover) - started_ns, pages);
    *moved += moved_here;
    *done += n;
    if (!ok)
      return FALSE;
  }
  return TRUE;
}
