/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: two heat-ranking baselines.
 *
 * memtierd (intel/memtierd, pkg/memtier/policy_heat.go and counters_heatmap.go), the "heat"
 * policy with an idle-page tracker: each interval a page's heat becomes
 *   heat = accessed (0/1, heat per page of its range) + heat x HeatRetention^seconds,
 * capped at HeatMax = 1.0, with the defaults HeatRetention 0.9513 (5% left after 60 s) and 10
 * heat classes (class = 10 x heat). HeatNumas here: classes 8-9 on DRAM, 0-5 on the slow
 * tier, 6-7 "don't care" (stay). startMovesFillFastFree (NumaSize of the DRAM node: the
 * host's DRAM): process by process (VM by VM in Go's random map order: a round robin here),
 * pages hottest first; a page on its class's node or of a "don't care" class stays; a page
 * of a DRAM class on the slow tier goes up while the DRAM node's NumaSize has room for it
 * (memtierd's candFree test: two free pages for a one-page range), else it stays where it
 * is; a page of a slow class on DRAM goes down. It never demotes a page to make room for a
 * hotter one: with these heats a page becomes slow-class 10 s after its last access, so on
 * traces of 0.4-5 s memtierd fills free DRAM with hot pages and then holds what it has. One
 * mover for all at 100 MB/s (memtierd's mover default; the design's 100-200 MB/s), the plan's
 * tasks in order. Simplified, each of them in memtierd's favour: page-granular heat ranges
 * (memtierd's idle-page tracker counts accessed pages per region of PagesInRegion pages,
 * 512 by default, 256 in its sample config); the tracker scans and the policy plans every
 * trace interval (memtierd's defaults: a scan every 5 s, a plan every IntervalMs, 10 s in
 * its sample configs); a plan's moves beyond the interval's bandwidth are dropped and
 * planned again (memtierd starts a new plan only when the mover is idle). Before
 * 2026-12-03 this policy demoted DRAM-class pages that the walk's room did not reach, as
 * memtierd does not: with the walk's first VM changing every interval the demotions took the
 * mover's whole bandwidth and emptied the pool (19,089 of 20,480 pages idle, hmmv4-long at
 * 50%).
 *
 * memtis (SOSP'23), per VM: PEBS samples one LLC miss in 200 per page into an access count;
 * a histogram of log2(count) bins; the hot threshold is found walking down from the hottest
 * bin while the pages fit the VM's DRAM (here: its share of the host's DRAM in proportion to
 * its size: memtis sizes to one process's memory and knows no co-runners); counts are halved
 * every 2,000,000 samples (cooling); kmigrated promotes hot pages and demotes the coldest
 * when DRAM needs room, at 100 MB/s (the design's Memtis figure). Simplified: the sampling is
 * the expected value (misses / 200), not random; no huge-page split logic.
 */
#include "policy.h"

#include <math.h>

#define MEMTIERD_RETENTION 0.9513
#define MEMTIERD_CLASSES 10
#define MEMTIERD_DRAM_CLASS 8     /* classes >= this go to DRAM */
#define MEMTIERD_SLOW_CLASS 5     /* classes <= this go to the slow tier */
#define MEMTIERD_MBPS 100u
#define MEMTIS_SAMPLE_PERIOD 200.0
#define MEMTIS_COOLING_SAMPLES 2000000.0
#define MEMTIS_BINS 32
#define MEMTIS_MBPS 100u

typedef struct {
  guint vm;
  guint64 page;
  double score;
} Ranked;

static int
by_score_desc(const void *a, const void *b)
{
  const Ranked *x = a, *y = b;

  if (x->score != y->score)
    return x->score > y->score ? -1 : 1;
  if (x->vm != y->vm)
    return x->vm < y->vm ? -1 : 1;
  return x->page < y->page ? -1 : x->page > y->page;
}

typedef struct {
  CorunPlacement *pl;
  double **score;           /* memtierd: heat; memtis: sampled access count */
  double samples_since_cooling;
} HeatPolicy;

static gboolean
heat_init(CorunPolicy *policy, GError **error)
{
  const CorunSetup *setup = policy->setup;
  HeatPolicy *hp = g_new0(HeatPolicy, 1);

  hp->pl = corun_placement_new(setup, setup->dram_pages);
  hp->score = g_new0(double *, setup->nr_vms);
  for (guint v = 0; v < setup->nr_vms; v++)
    hp->score[v] = g_new0(double, setup->vms[v].nr_pages);
  policy->priv = hp;
  return TRUE;
}

static void
heat_destroy(CorunPolicy *policy)
{
  HeatPolicy *hp = policy->priv;

  for (guint v = 0; v < policy->setup->nr_vms; v++)
    g_free(hp->score[v]);
  g_free(hp->score);
  corun_placement_free(hp->pl);
  g_free(hp);
}

static void
heat_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  HeatPolicy *hp = policy->priv;

  corun_placement_vm_dram(hp->pl, vm_dram);
}

static gboolean
memtierd_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
                  CorunDemand *demand, GError **error)
{
  HeatPolicy *hp = policy->priv;
  CorunPlacement *pl = hp->pl;
  const CorunSetup *setup = policy->setup;
  double decay = pow(MEMTIERD_RETENTION, setup->interval_ms / 1000.0);
  guint64 budget = corun_cap_pages(MEMTIERD_MBPS, setup->interval_ms);
  guint64 dram_used = pl->dram_used; /* memtierd's numaUsed of the DRAM node, as planned */
  g_autoptr(GArray) tasks = g_array_new(FALSE, FALSE, sizeof(Ranked));

  for (guint v = 0; v < setup->nr_vms; v++) {
    corun_placement_serve(pl, v, &now[v], &demand[v]);
    for (guint64 p = 0; p < pl->nr_pages[v]; p++)
      hp->score[v][p] *= decay;
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      double *h = &hp->score[v][now[v].entries[i].page];

      *h = MIN(*h + 1.0, 1.0);
    }
  }
  /* startMovesFillFastFree: VM by VM (Go's map order is random; here a round robin over the
   * intervals), hottest first. A page already on its class's node stays; a "don't care" class
   * stays; a DRAM-class page on the slow tier goes up only when the DRAM node's NumaSize
   * leaves room for it, counted as memtierd counts it (candFree = size - used - length, and
   * the move needs candFree >= length: two pages free for a page-sized range); a slow-class
   * page on DRAM goes down, and its room counts for the rest of the walk. Nothing is demoted
   * to make room for a hotter page. */
  for (guint i = 0; i < setup->nr_vms; i++) {
    guint v = (guint)((index + i) % setup->nr_vms);
    g_autoptr(GArray) ranked = g_array_new(FALSE, FALSE, sizeof(Ranked));

    for (guint64 p = 0; p < pl->nr_pages[v]; p++)
      if (pl->place[v][p] != CORUN_UNTOUCHED) {
        Ranked r = { v, p, hp->score[v][p] };
        g_array_append_val(ranked, r);
      }
    corun_sort(ranked, by_score_desc);
    for (guint k = 0; k < ranked->len; k++) {
      const Ranked *r = &g_array_index(ranked, Ranked, k);
      int cls = MIN((int)(MEMTIERD_CLASSES * r->score), MEMTIERD_CLASSES - 1);
      guint8 at = pl->place[v][r->page];

      if (cls >= MEMTIERD_DRAM_CLASS && at == CORUN_SLOW && dram_used + 2 <= setup->dram_pages) {
        dram_used++;
        g_array_append_val(tasks, *r);
      } else if (cls <= MEMTIERD_SLOW_CLASS && at == CORUN_DRAM) {
        dram_used--;
        g_array_append_val(tasks, *r);
      }
    }
  }
  /* One mover at 100 MB/s, the plan's tasks in the order planned. */
  for (guint k = 0; k < tasks->len && budget > 0; k++) {
    const Ranked *r = &g_array_index(tasks, Ranked, k);
    guint8 to = pl->place[r->vm][r->page] == CORUN_SLOW ? CORUN_DRAM : CORUN_SLOW;

    if (corun_placement_move(pl, r->vm, r->page, to, &demand[r->vm]))
      budget--;
  }
  return TRUE;
}

static guint
log2_bin(double count)
{
  return count < 1 ? 0 : MIN((guint)log2(count) + 1, MEMTIS_BINS - 1);
}

static gboolean
memtis_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
                CorunDemand *demand, GError **error)
{
  HeatPolicy *hp = policy->priv;
  CorunPlacement *pl = hp->pl;
  const CorunSetup *setup = policy->setup;
  guint64 total_pages = 0;

  for (guint v = 0; v < setup->nr_vms; v++)
    total_pages += pl->nr_pages[v];
  for (guint v = 0; v < setup->nr_vms; v++) {
    corun_placement_serve(pl, v, &now[v], &demand[v]);
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];
      double samples = ((double)e->reads + e->writes) / MEMTIS_SAMPLE_PERIOD;

      hp->score[v][e->page] += samples;
      hp->samples_since_cooling += samples;
    }
  }
  if (hp->samples_since_cooling >= MEMTIS_COOLING_SAMPLES) {
    for (guint v = 0; v < setup->nr_vms; v++)
      for (guint64 p = 0; p < pl->nr_pages[v]; p++)
        hp->score[v][p] /= 2;
    hp->samples_since_cooling = 0;
  }
  for (guint v = 0; v < setup->nr_vms; v++) {
    guint64 hist[MEMTIS_BINS] = { 0 };
    guint64 share = total_pages ? setup->dram_pages * pl->nr_pages[v] / total_pages : 0;
    guint64 budget = corun_cap_pages(MEMTIS_MBPS, setup->interval_ms), fit = 0;
    guint hot_bin = MEMTIS_BINS;
    g_autoptr(GArray) cold = g_array_new(FALSE, FALSE, sizeof(Ranked));

    for (guint64 p = 0; p < pl->nr_pages[v]; p++)
      if (pl->place[v][p] != CORUN_UNTOUCHED)
        hist[log2_bin(hp->score[v][p])]++;
    /* walk down from the hottest bin while the pages fit (bin 0: never sampled, never hot) */
    while (hot_bin > 1 && fit + hist[hot_bin - 1] <= share) {
      fit += hist[hot_bin - 1];
      hot_bin--;
    }
    /* demotion candidates: the VM's DRAM pages under the threshold, coldest first */
    for (guint64 p = 0; p < pl->nr_pages[v]; p++)
      if (pl->place[v][p] == CORUN_DRAM && log2_bin(hp->score[v][p]) < hot_bin) {
        Ranked r = { v, p, -hp->score[v][p] };
        g_array_append_val(cold, r);
      }
    corun_sort(cold, by_score_desc);
    for (guint64 p = 0, c = 0; p < pl->nr_pages[v] && budget > 0; p++) {
      if (pl->place[v][p] != CORUN_SLOW || log2_bin(hp->score[v][p]) < hot_bin)
        continue;
      /* room: the VM's own share first, then a cold page of its own goes */
      while ((pl->vm_dram[v] >= share || corun_placement_dram_free(pl) == 0) && c < cold->len &&
             budget > 1) {
        const Ranked *r = &g_array_index(cold, Ranked, c++);

        if (corun_placement_move(pl, v, r->page, CORUN_SLOW, &demand[v]))
          budget--;
      }
      if (pl->vm_dram[v] < share && corun_placement_move(pl, v, p, CORUN_DRAM, &demand[v]))
        budget--;
    }
  }
  return TRUE;
}

const struct corun_policy_ops corun_policy_memtierd = {
  .name = "memtierd",
  .init = heat_init,
  .interval = memtierd_interval,
  .dram_pages = heat_dram_pages,
  .destroy = heat_destroy,
};

const struct corun_policy_ops corun_policy_memtis = {
  .name = "memtis",
  .init = heat_init,
  .interval = memtis_interval,
  .dram_pages = heat_dram_pages,
  .destroy = heat_destroy,
};
