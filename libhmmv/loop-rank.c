/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a VM's pages can be ranked at all (core.h, HMMV_RANK_FLAT_*): the core sees one
 * access bit per page and interval, so a page accessed a thousand times in an interval and
 * one accessed three times look the same. When nearly every page the VM touches is accessed
 * in nearly every interval, every such page sits at the top of the multi-level queue, the
 * bucket sort has no hot set smaller than the DRAM budget to find, and nothing moves, for
 * no reason an operator could see (issue 8: an idle TCG guest wrote ~900,000 times in a
 * 300 ms interval, 11,876 of its 12,288 written pages in 97% of intervals, and hmmvd moved
 * 0-2 pages in 120 s).
 *
 * An interval is flat when the pages written in it are at least HMMV_RANK_FLAT_PERCENT of
 * the VM's warm pages (temperature above 0 after the interval: the pages accessed in about
 * the last 9 intervals or more, those the ranking chooses among) and more than its DRAM
 * budget (otherwise all of them fit and nothing needs ranking; a budget of 0 has nothing to
 * choose). Warm pages, not all pages: guest RAM the guest never touches is cold and ranked
 * fine, but says nothing about the pages it does touch. A skewed workload keeps most of its
 * warm pages idle in any one interval: 90% of writes on 1,024 pages and 10% spread over
 * 15,360 at 10,000 writes an interval accesses ~22% of its warm pages (tests/test-rank.c:
 * 2,021 of 9,288).
 *
 * Only harvests of exactly one interval are looked at: a late harvest (0 intervals) says
 * nothing new, and a merged one (k >= 2) sets a bit for a page accessed in any of k
 * intervals, which would make a slow QEMU look flat. Nor are VMs outside the balance
 * (paused, unmanaged, left alone, frozen): hmmv ranks nothing for them, so there is nothing
 * to tell about their ranking; their window waits, and their last state stays shown.
 * The first sampled interval of a VM is flat whenever its budget allows (its warm pages are
 * exactly those it accessed); the next ones are not, unless the VM really is: one of
 * HMMV_RANK_FLAT_ENTER.
 *
 * The state has hysteresis so that a VM on the edge does not flip every interval: it enters
 * with HMMV_RANK_FLAT_ENTER flat intervals of the last HMMV_RANK_FLAT_WINDOW sampled ones and
 * leaves with HMMV_RANK_FLAT_LEAVE or fewer; rank_flat_changed marks the interval it did
 * (the daemon logs that, once each way).
 */
#include "core-private.h"
#include "vm-private.h"

#include <hmmv/access.h>

G_STATIC_ASSERT(HMMV_RANK_FLAT_WINDOW <= 16);   /* the history is a guint16 */
G_STATIC_ASSERT(HMMV_RANK_FLAT_LEAVE < HMMV_RANK_FLAT_ENTER);

void
hmmv_core_rank_sample(CoreVm *cvm, const HmmvAccess *acc, const HmmvHistogram *hist)
{
  guint64 accessed = 0;

  cvm->rank.sampled = FALSE;
  if (acc->intervals != 1)
    return;
  /* written pages only, also with a read tracker: a written page's temperature ranks above a
   * page only read, so a read set accessed in every interval (DAMON hands the same region-wide
   * snapshot to the intervals it spans) hides nothing written from the ranking (review 18) */
  accessed = hmmv_bitmap_count(acc->writes, acc->nr_words);
  cvm->rank.sampled = TRUE;
  cvm->rank.accessed = accessed;
  cvm->rank.warm = hmmv_vm_get_nr_pages(cvm->vm) - hist->count[0];
  cvm->rank.reads = acc->has_reads;
}

/* Flat intervals in the last `window` of the history. */
static guint
flat_in_window(const HmmvRankFlat *rank)
{
  guint window = MIN(rank->seen, (guint)HMMV_RANK_FLAT_WINDOW);

  return (guint)__builtin_popcount(rank->history & ((1u << window) - 1u));
}

/* One sampled interval into the window. */
static void
rank_note(HmmvRankFlat *rank, guint64 budget)
{
  gboolean flat = rank->warm > 0 && budget > 0 && rank->accessed > budget &&
                  rank->accessed * 100u >= rank->warm * HMMV_RANK_FLAT_PERCENT;
  guint flats;

  rank->history = (guint16)((rank->history << 1) | (flat ? 1u : 0u));
  rank->head = (rank->head + 1) % HMMV_RANK_FLAT_WINDOW;
  rank->percent[rank->head] =
    rank->warm > 0 ? (guint8)(MIN(rank->accessed, rank->warm) * 100u / rank->warm) : 0;
  rank->ring_accessed[rank->head] = rank->accessed;
  rank->ring_warm[rank->head] = rank->warm;
  rank->ring_budget[rank->head] = budget;
  rank->seen = MIN(rank->seen + 1, (guint)HMMV_RANK_FLAT_WINDOW);
  flats = flat_in_window(rank);
  if (!rank->flat && flats >= HMMV_RANK_FLAT_ENTER)
    rank->flat = TRUE;
  else if (rank->flat && flats <= HMMV_RANK_FLAT_LEAVE)
    rank->flat = FALSE;
}

static void
widen(guint64 *least, guint64 *most, guint64 value, gboolean first)
{
  *least = first ? value : MIN(*least, value);
  *most = first ? value : MAX(*most, value);
}

/* The figures of the window's flat intervals into rep: the least share of warm pages
 * accessed, and the range of pages accessed, warm pages and budgets; 0s when none. What the
 * note says then holds for the intervals the verdict counted, not only for the current one
 * (the budget of the interval that makes a VM flat may well be above what it wrote then: the
 * verdict is 8 of 10). */
static void
flat_figures(const HmmvRankFlat *rank, HmmvVmReport *rep)
{
  guint least = 0, flats = 0;

  rep->rank_flat_accessed_min = rep->rank_flat_accessed_max = 0;
  rep->rank_flat_warm_min = rep->rank_flat_warm_max = 0;
  rep->rank_flat_budget_min = rep->rank_flat_budget_max = 0;
  for (guint age = 0; age < rank->seen; age++) {
    guint slot = (rank->head + HMMV_RANK_FLAT_WINDOW - age) % HMMV_RANK_FLAT_WINDOW;

    if (((rank->history >> age) & 1u) == 0)
      continue;
    least = flats == 0 ? rank->percent[slot] : MIN(least, (guint)rank->percent[slot]);
    widen(&rep->rank_flat_accessed_min, &rep->rank_flat_accessed_max,
          rank->ring_accessed[slot], flats == 0);
    widen(&rep->rank_flat_warm_min, &rep->rank_flat_warm_max, rank->ring_warm[slot],
          flats == 0);
    widen(&rep->rank_flat_budget_min, &rep->rank_flat_budget_max, rank->ring_budget[slot],
          flats == 0);
    flats++;
  }
  rep->rank_flat_percent = least;
}

void
hmmv_core_rank_flat(HmmvCore *core, HmmvIntervalReport *report)
{
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);
    HmmvRankFlat *rank = &cvm->rank;
    gboolean was = rank->flat;

    /* late or merged harvest, failing, or outside the balance (frozen, paused, unmanaged,
     * left alone, placement still being read: nothing is ranked for it): the window waits */
    if (rank->sampled && !cvm->outside && rep->error == NULL)
      rank_note(rank, rep->budget_pages);
    rank->sampled = FALSE;
    rep->rank_flat = rank->flat;
    rep->rank_flat_changed = rank->flat != was;
    rep->rank_window = rank->seen;
    rep->rank_flat_intervals = flat_in_window(rank);
    flat_figures(rank, rep);
    rep->rank_warm_pages = rank->warm;
    rep->rank_reads = rank->reads;
  }
}
