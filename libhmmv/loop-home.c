/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pages brought home (issue 7, item 4). A VM's promotions go to the DRAM node nearest its
 * vCPUs and its demotions to the slow node nearest that one (nodes.c); when that node is full
 * they go to the next in rank, and every access to them then pays the remote latency (on a
 * two-socket Optane host ~140 ns against 80 ns for DRAM, ~360 against 300 for Optane). Left
 * alone they would stay there for as long as they keep their tier. So after the interval's
 * demotions and promotions, pages of a VM on a node of their tier other than its first choice
 * (its "home": pages that fell back, or that the kernel put there before hmmv came, or before
 * the VM's vCPUs moved) are moved to the home node when it has room, hottest first (they pay
 * the remote latency most often), with what the interval's cap left unused: per VM, and the
 * host-wide cap shared max-min fairly over the VMs (loop-cap.c), and within what the
 * interval's batch left at the mover's speed (loop-batch.c). Nothing of the interval's own
 * promotions and demotions waits for them.
 *
 * Against ping-pong, two rules. A threshold in room (hysteresis in space): pages fall back
 * only when the home node has no room at all, but come home only into the room above a
 * margin of 1/16 of the home node's capacity (HMMV_CORE_HOME_MARGIN_DIVISOR). A node that
 * hovers at full (another process's page cache growing and shrinking by a few MiB) thus
 * brings nothing home that the VM's next promotions would have to step around, and the
 * margin keeps room for the next hot pages and first touches, as the balancer's headroom
 * does for the pool (at most 1/16 of it). And the cooldown every move starts (hysteresis in
 * time): a page just moved, by the plan or home, is not a candidate for cooldown_intervals.
 * A page never leaves its home node for another node of its tier, so once home it stays.
 */
#include "core-private.h"
#include "loop-move-private.h"
#include "vm-private.h"

#include <hmmv/units.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
  guint64 page;
  guint key;
} HomeEntry;

static int
entry_hotter(const void *a, const void *b)
{
  const HomeEntry *x = a, *y = b;

  if (x->key != y->key)
    return x->key > y->key ? -1 : 1;
  return x->page < y->page ? -1 : x->page > y->page;
}

/* Pages on a node of the tier other than the VM's home node of that tier. */
static guint64
away_pages(const CoreVm *cvm, gboolean dram)
{
  const HmmvNodeRequest *to = dram ? &cvm->promote_to : &cvm->demote_to;
  guint64 on_tier = dram ? cvm->vm->dram_pages : cvm->vm->slow_pages;

  if (to->nr_rank == 0)
    return 0;
  return on_tier - MIN(on_tier, cvm->vm->node_pages[to->rank[0]]);
}

/* A page (a unit's first page) on a node of the tier other than home, cooling down or backed
 * off or not: its size, else 0. */
static guint64
away_unit(HmmvVm *vm, guint64 page, gboolean dram, int home)
{
  guint8 place = vm->place[page];
  guint node = HMMV_PLACE_NODE(place);
  const HmmvUnit *unit;

  if (node == HMMV_PLACE_NODE_UNKNOWN || (int)node == home || HMMV_PLACE_IS_SLOW(place) == dram)
    return 0;
  unit = hmmv_vm_unit_of(vm, page);
  if (unit == NULL)
    return 1;
  return unit->first_page == page ? unit->nr_pages : 0;
}

/* The same, free to move this interval (not cooling down, not backed off); else 0. */
static guint64
away_size(HmmvCore *core, HmmvVm *vm, guint64 page, gboolean dram, int home)
{
  if (HMMV_PLACE_COOLDOWN(vm->place[page]) != 0 ||
      hmmv_vm_page_backed_off(vm, page, core->interval_index))
    return 0;
  return away_unit(vm, page, dram, home);
}

/* The full scan: the VM's pages (a huge unit: its first page) away from home on the tier,
 * the hottest HMMV_CORE_AWAY_LIST_MAX of them when there are more: a key histogram, then the
 * pages at or above the cut. */
static void
scan_away(HmmvCore *core, HmmvVm *vm, gboolean dram, int home, HmmvAwayList *list)
{
  guint64 count[256] = { 0 }, sum = 0;
  int cut = -1;

  if (list->pages == NULL)
    list->pages = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_array_set_size(list->pages, 0);
  for (guint64 page = 0; page < vm->nr_pages; page++)
    count[vm->temp[page]] += away_unit(vm, page, dram, home) != 0;
  for (int key = 255; key >= 0; key--) {
    if (sum + count[key] > HMMV_CORE_AWAY_LIST_MAX) {
      cut = key;
      break;
    }
    sum += count[key];
  }
  for (guint64 page = 0; page < vm->nr_pages; page++) {
    guint key = vm->temp[page];

    if ((int)key < cut || away_unit(vm, page, dram, home) == 0 ||
        ((int)key == cut && sum + 1 > HMMV_CORE_AWAY_LIST_MAX))
      continue;
    if ((int)key == cut)
      sum++;
    g_array_append_val(list->pages, page);
  }
  list->home = home;
  list->capped = cut >= 0;
  list->built = core->interval_index;
  core->home_visits += 2 * vm->nr_pages;
}

/* Drops the listed pages that are no longer away (home, moved, a unit that formed); returns
 * the 4 KiB pages still listed. */
static guint64
filter_away(HmmvCore *core, HmmvVm *vm, gboolean dram, HmmvAwayList *list)
{
  guint64 sum = 0;
  guint kept = 0;

  for (guint i = 0; i < list->pages->len; i++) {
    guint64 page = g_array_index(list->pages, guint64, i);
    guint64 size = away_unit(vm, page, dram, list->home);

    if (size == 0)
      continue;
    g_array_index(list->pages, guint64, kept++) = page;
    sum += size;
  }
  core->home_visits += list->pages->len;
  g_array_set_size(list->pages, kept);
  return sum;
}

/* Of the listed pages, those free to move now, hottest first, at most limit 4 KiB pages
 * (whole units). Returns the pages picked. */
static guint64
pick_away(HmmvCore *core, HmmvVm *vm, gboolean dram, const HmmvAwayList *list, guint64 limit,
          GArray *out)
{
  guint64 count[256] = { 0 }, sum = 0, listed = 0;
  int cut = -1;

  g_array_set_size(out, 0);
  for (guint i = 0; i < list->pages->len; i++) {
    guint64 page = g_array_index(list->pages, guint64, i);

    count[vm->temp[page]] += away_size(core, vm, page, dram, list->home);
  }
  for (int key = 255; key >= 0; key--) {
    if (sum + count[key] > limit) {
      cut = key;
      break;
    }
    sum += count[key];
  }
  for (guint i = 0; i < list->pages->len; i++) {
    guint64 page = g_array_index(list->pages, guint64, i);
    guint key = vm->temp[page];
    guint64 size;

    if ((int)key < cut)
      continue;
    size = away_size(core, vm, page, dram, list->home);
    if (size == 0 || ((int)key == cut && sum + size > limit))
      continue;
    if ((int)key == cut)
      sum += size;
    g_array_append_val(out, ((HomeEntry){ .page = page, .key = key }));
    listed += size;
  }
  core->home_visits += 2 * list->pages->len;
  qsort(out->data, out->len, sizeof(HomeEntry), entry_hotter);
  return listed;
}

/* The VM's pages away from home on the tier that may move now, hottest first, at most limit
 * 4 KiB pages (whole units). Incremental: a full scan of the VM's pages builds its list of
 * away pages once; later intervals look only at the list (pages that came home or moved
 * drop out) and scan again only when the VM has away pages the list lacks (pages that fell
 * back since, the kernel's own moves, a unit that formed or split) or its home changed; a
 * list capped at HMMV_CORE_AWAY_LIST_MAX pages is scanned again every HMMV_CORE_AWAY_RESCAN
 * intervals, or at once when none of it can move. Before, both passes went over every page
 * of the VM every interval while it had pages away, even when none of them could move
 * (pinned, backed off, cooling down). Returns the pages listed. */
static guint64
collect_away(HmmvCore *core, CoreVm *cvm, gboolean dram, int home, guint64 limit, GArray *out)
{
  HmmvAwayList *list = &cvm->away[dram ? 0 : 1];
  guint64 away = away_pages(cvm, dram), listed = 0, picked;
  gboolean scanned = FALSE;

  if (list->pages == NULL || list->home != home) {
    scan_away(core, cvm->vm, dram, home, list);
    scanned = TRUE;
  } else {
    listed = filter_away(core, cvm->vm, dram, list);
    if (listed != away && (!list->capped ||
                           core->interval_index >= list->built + HMMV_CORE_AWAY_RESCAN)) {
      scan_away(core, cvm->vm, dram, home, list);
      scanned = TRUE;
    }
  }
  picked = pick_away(core, cvm->vm, dram, list, limit, out);
  if (out->len == 0 && !scanned && list->capped && listed != away) {
    scan_away(core, cvm->vm, dram, home, list);
    picked = pick_away(core, cvm->vm, dram, list, limit, out);
  }
  return picked;
}

/* What each VM may still move this interval: its bucket less what its plan moved, within a
 * max-min fair share of what the host's bucket has left. */
static void
moves_left(HmmvCore *core, const gboolean *ok, const HmmvIntervalReport *report, guint64 *left)
{
  guint n = core->vms->len;
  guint64 vm_rate = hmmv_params_cap_pages(&core->params);
  guint64 host_rate = hmmv_params_host_cap_pages(&core->params);
  guint64 spent = 0, host_left;
  g_autofree guint64 *want = g_new0(guint64, MAX(n, 1));

  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    guint64 moved = g_array_index(report->vms, HmmvVmReport, i).moved_max_pages;

    spent += moved;
    if (!ok[i])
      want[i] = 0;
    else if (vm_rate == G_MAXUINT64)
      want[i] = hmmv_vm_get_nr_pages(cvm->vm);   /* no cap: no more than the VM */
    else
      want[i] = cvm->cap_tokens > moved ? cvm->cap_tokens - moved : 0;
  }
  if (host_rate == G_MAXUINT64) {
    memcpy(left, want, n * sizeof(*left));
    return;
  }
  host_left = core->host_cap_tokens > spent ? core->host_cap_tokens - spent : 0;
  hmmv_core_water_fill(want, left, n, host_left);
}

/* And within what the interval's batch (loop-batch.c) left after the plans' moves, shared
 * max-min fairly too. */
static void
batch_left(HmmvCore *core, guint64 *left)
{
  guint n = core->vms->len;
  g_autofree guint64 *want = NULL;

  if (core->batch_limit_pages == G_MAXUINT64)
    return;
  want = g_memdup2(left, MAX(n, 1) * sizeof(*left));
  hmmv_core_water_fill(want, left, n, core->batch_limit_pages - MIN(core->batch_limit_pages,
                                                                    core->moved_pages));
}

/* One VM's list for the tier, cut to granted pages, moved home; counted in rep. */
static gboolean
move_home(HmmvCore *core, CoreVm *cvm, gboolean dram, int home, GArray *entries,
          guint64 granted, HmmvVmReport *rep, guint64 *left, GError **error)
{
  HmmvVm *vm = cvm->vm;
  g_autoptr(GArray) pages = g_array_new(FALSE, FALSE, sizeof(guint64));
  gboolean ok;
  guint64 size_sum = 0, moved = 0, done = 0, failed_before = hmmv_core_move_failures(
                                                     hmmv_vm_get_move_stats(vm));

  for (guint e = 0; e < entries->len; e++) {
    guint64 page = g_array_index(entries, HomeEntry, e).page;
    guint64 size = hmmv_vm_unit_pages(vm, page);

    if (size_sum + size > granted)
      break;
    size_sum += size;
    g_array_append_val(pages, page);
  }
  if (pages->len == 0)
    return TRUE;
  if (!hmmv_core_fresh_units(core, vm, pages, error))
    return FALSE;
  if (pages->len == 0)
    return TRUE;
  /* in the mover's calls, until the interval's moves have used their time (loop-batch.c):
   * the entries not handed over stay away for a later interval */
  ok = hmmv_core_move_timed(core, vm, (const guint64 *)pages->data, pages->len, home, &moved,
                            &done, error);
  if (!ok)
    return FALSE;
  g_array_set_size(pages, (guint)done);
  hmmv_core_start_cooldown(core, vm, pages, home);
  size_sum = 0;
  for (guint e = 0; e < pages->len; e++)
    size_sum += hmmv_vm_unit_pages(vm, g_array_index(pages, guint64, e));
  rep->moved_max_pages += size_sum;
  *left -= MIN(*left, size_sum);
  if (dram)
    rep->homed_dram += moved;
  else
    rep->homed_slow += moved;
  rep->move_failed += hmmv_core_move_failures(hmmv_vm_get_move_stats(vm)) - failed_before;
  return TRUE;
}


void
hmmv_core_bring_home(HmmvCore *core, gboolean *ok, HmmvIntervalReport *report)
{
  guint n = core->vms->len;
  g_autofree guint64 *left = g_new0(guint64, MAX(n, 1));
  g_autofree HmmvNodeRequest *reqs = g_new0(HmmvNodeRequest, MAX(n, 1));
  g_autoptr(GPtrArray) lists = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);
  gint64 room[HMMV_NR_NODE_SLOTS] = { 0 };
  HmmvNodeState scratch[HMMV_NR_NODE_SLOTS];

  for (guint i = 0; i < n; i++)
    g_ptr_array_add(lists, g_array_new(FALSE, FALSE, sizeof(HomeEntry)));
  if (core->cancellable != NULL && g_cancellable_is_cancelled(core->cancellable))
    goto report;
  moves_left(core, ok, report, left);
  batch_left(core, left);
  /* Room above the margin, after this interval's moves. */
  for (guint k = 0; k < hmmv_topology_get_nr_nodes(core->topo); k++) {
    int id = hmmv_topology_get_node(core->topo, k)->id;
    const HmmvNodeState *state = &core->nodes[id];

    room[id] = (gint64)state->capacity_pages -
               (gint64)(state->capacity_pages / HMMV_CORE_HOME_MARGIN_DIVISOR);
    for (guint i = 0; i < n; i++)
      room[id] -= (gint64)((CoreVm *)g_ptr_array_index(core->vms, i))->vm->node_pages[id];
  }
  /* DRAM first: a hot page away costs more per access than a cold one */
  for (guint tier = 0; tier < 2; tier++) {
    gboolean dram = tier == 0;

    for (guint i = 0; i < n; i++) {
      CoreVm *cvm = g_ptr_array_index(core->vms, i);
      const HmmvNodeRequest *to = dram ? &cvm->promote_to : &cvm->demote_to;
      int home = to->nr_rank > 0 ? to->rank[0] : -1;

      reqs[i] = (HmmvNodeRequest){ .nr_rank = home >= 0 ? 1 : 0, .rank = { home } };
      g_array_set_size(g_ptr_array_index(lists, i), 0);
      if (!ok[i] || home < 0 || room[home] <= 0 || left[i] == 0 ||
          away_pages(cvm, dram) == 0)
        continue;
      reqs[i].want = collect_away(core, cvm, dram, home, MIN(left[i], (guint64)room[home]),
                                  g_ptr_array_index(lists, i));
    }
    memset(scratch, 0, sizeof(scratch));
    hmmv_nodes_assign(reqs, n, room, scratch);
    for (guint i = 0; i < n; i++) {
      CoreVm *cvm = g_ptr_array_index(core->vms, i);
      HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

      if (reqs[i].want == 0)
        continue;
      ok[i] = move_home(core, cvm, dram, reqs[i].rank[0], g_ptr_array_index(lists, i),
                        reqs[i].granted[0], rep, &left[i], &rep->error);
    }
  }
report:
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    rep->away_dram = away_pages(cvm, TRUE);
    rep->away_slow = away_pages(cvm, FALSE);
  }
}
