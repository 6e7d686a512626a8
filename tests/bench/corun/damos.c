/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: DAMON/DAMOS tiering, one DAMON context per VM (vaddr of its QEMU), each with
 * the two schemes of mm/damon's memory tiering setup (samples/damon/mtier.c):
 *   migrate_hot  regions on the slow tier with nr_accesses >= 1 go to DRAM, hottest first,
 *                quota goal: DRAM used 99.7% (node_mem_used_bp 9970);
 *   migrate_cold regions on DRAM with nr_accesses == 0 go to the slow tier, coldest first,
 *                quota goal: DRAM free 0.5% (node_mem_free_bp 50).
 * Each scheme's effective size quota is auto-tuned as mm/damon/core.c does
 * (damos_set_effective_quota): every quota reset, esz_bp = damon_feed_loop_next_input(
 * max(esz_bp, 10000), score) with score = current x 10000 / target, and the scheme applies
 * to at most esz_bp / 10000 bytes until the next reset. The feedback starts at one byte and
 * at most doubles per reset: DAMOS moves nothing for its first ~12 resets (4 KiB).
 *
 * Simplified: fixed regions of nr_pages / 1000 pages (max_nr_regions 1000; DAMON splits and
 * merges adaptively between 10 and 1000); nr_accesses = 20 samples (5 ms sampling in a 100 ms
 * aggregation) x the share of the region's pages the trace saw missed in the interval; one
 * aggregation and one quota reset per trace interval; no age in the priority; the
 * node_mem_used_bp / node_mem_free_bp goal metrics came with Linux 6.16 (6.12 has the same
 * feedback loop with user_input and some_mem_psi_us goals).
 */
#include "policy.h"


#define DAMON_MAX_REGIONS 1000u
#define DAMON_AGGR_SAMPLES 20u
#define HOT_TARGET_BP 9970u
#define COLD_TARGET_BP 50u
#define FEED_GOAL 10000u
#define FEED_MIN_INPUT 10000u

typedef struct {
  guint64 region_pages;
  guint64 nr_regions;
  guint8 *nr_accesses;      /* per region, this aggregation */
  guint64 hot_esz_bp, cold_esz_bp;
} DamonCtx;

typedef struct {
  CorunPlacement *pl;
  DamonCtx *ctx;            /* per VM */
} Damos;

/* mm/damon/core.c damon_feed_loop_next_input (6.12) */
static guint64
feed_loop_next_input(guint64 last_input, guint64 score)
{
  guint64 diff, compensation;

  if (score == FEED_GOAL)
    return last_input;
  diff = score < FEED_GOAL ? FEED_GOAL - score : MIN(score - FEED_GOAL, FEED_GOAL);
  compensation = last_input < G_MAXUINT64 / diff ? last_input * diff / FEED_GOAL
                                                 : last_input / FEED_GOAL * diff;
  if (score > FEED_GOAL)
    return last_input > compensation + FEED_MIN_INPUT ? last_input - compensation
                                                      : FEED_MIN_INPUT;
  return last_input < G_MAXUINT64 - compensation ? last_input + compensation : G_MAXUINT64;
}

static gboolean
damos_init(CorunPolicy *policy, GError **error)
{
  const CorunSetup *setup = policy->setup;
  Damos *d = g_new0(Damos, 1);

  d->pl = corun_placement_new(setup, setup->dram_pages);
  d->ctx = g_new0(DamonCtx, setup->nr_vms);
  for (guint v = 0; v < setup->nr_vms; v++) {
    DamonCtx *c = &d->ctx[v];

    c->region_pages = MAX((setup->vms[v].nr_pages + DAMON_MAX_REGIONS - 1) / DAMON_MAX_REGIONS,
                          1);
    c->nr_regions = (setup->vms[v].nr_pages + c->region_pages - 1) / c->region_pages;
    c->nr_accesses = g_new0(guint8, c->nr_regions);
  }
  policy->priv = d;
  return TRUE;
}

typedef struct {
  guint64 region;
  guint nr_accesses;
} RegionRank;

static int
hot_first(const void *a, const void *b)
{
  const RegionRank *x = a, *y = b;

  if (x->nr_accesses != y->nr_accesses)
    return x->nr_accesses > y->nr_accesses ? -1 : 1;
  return x->region < y->region ? -1 : x->region > y->region;
}

/* Apply one scheme to the VM's regions, up to esz bytes; returns pages moved. */
static void
apply(Damos *d, guint v, gboolean hot, guint64 esz_bytes, CorunDemand *demand)
{
  CorunPlacement *pl = d->pl;
  DamonCtx *c = &d->ctx[v];
  g_autoptr(GArray) ranks = g_array_new(FALSE, FALSE, sizeof(RegionRank));
  guint64 quota_pages = esz_bytes / 4096;

  for (guint64 r = 0; r < c->nr_regions; r++)
    if (hot ? c->nr_accesses[r] >= 1 : c->nr_accesses[r] == 0) {
      RegionRank rr = { r, c->nr_accesses[r] };
      g_array_append_val(ranks, rr);
    }
  if (hot)
    corun_sort(ranks, hot_first);
  for (guint i = 0; i < ranks->len && quota_pages > 0; i++) {
    guint64 first = g_array_index(ranks, RegionRank, i).region * c->region_pages;
    guint64 end = MIN(first + c->region_pages, pl->nr_pages[v]);

    for (guint64 p = first; p < end && quota_pages > 0; p++) {
      if (pl->place[v][p] != (hot ? CORUN_SLOW : CORUN_DRAM))
        continue;
      if (corun_placement_move(pl, v, p, hot ? CORUN_DRAM : CORUN_SLOW, &demand[v]))
        quota_pages--;
      else
        return; /* DRAM full: the scheme's migration fails for the rest */
    }
  }
}

static gboolean
damos_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
               CorunDemand *demand, GError **error)
{
  Damos *d = policy->priv;
  CorunPlacement *pl = d->pl;
  const CorunSetup *setup = policy->setup;
  guint64 dram = MAX(pl->dram_capacity, 1);

  for (guint v = 0; v < setup->nr_vms; v++) {
    DamonCtx *c = &d->ctx[v];
    g_autofree guint64 *seen = g_new0(guint64, c->nr_regions);

    corun_placement_serve(pl, v, &now[v], &demand[v]);
    for (gsize i = 0; i < now[v].nr_entries; i++)
      seen[now[v].entries[i].page / c->region_pages]++;
    for (guint64 r = 0; r < c->nr_regions; r++) {
      guint64 len = MIN(c->region_pages, pl->nr_pages[v] - r * c->region_pages);

      c->nr_accesses[r] = (guint8)((DAMON_AGGR_SAMPLES * seen[r] + len / 2) / len);
    }
  }
  for (guint v = 0; v < setup->nr_vms; v++) {
    DamonCtx *c = &d->ctx[v];
    /* the goals are the node's: each VM's kdamond reads the same DRAM figures */
    guint64 used_bp = pl->dram_used * 10000 / dram;
    guint64 free_bp = corun_placement_dram_free(pl) * 10000 / dram;

    c->cold_esz_bp = feed_loop_next_input(MAX(c->cold_esz_bp, FEED_MIN_INPUT),
                                          free_bp * 10000 / COLD_TARGET_BP);
    apply(d, v, FALSE, c->cold_esz_bp / 10000, demand);
    c->hot_esz_bp = feed_loop_next_input(MAX(c->hot_esz_bp, FEED_MIN_INPUT),
                                         used_bp * 10000 / HOT_TARGET_BP);
    apply(d, v, TRUE, c->hot_esz_bp / 10000, demand);
  }
  return TRUE;
}

static void
damos_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  Damos *d = policy->priv;

  corun_placement_vm_dram(d->pl, vm_dram);
}

static void
damos_destroy(CorunPolicy *policy)
{
  Damos *d = policy->priv;

  for (guint v = 0; v < policy->setup->nr_vms; v++)
    g_free(d->ctx[v].nr_accesses);
  g_free(d->ctx);
  corun_placement_free(d->pl);
  g_free(d);
}

const struct corun_policy_ops corun_policy_damos = {
  .name = "damos",
  .init = damos_init,
  .interval = damos_interval,
  .dram_pages = damos_dram_pages,
  .destroy = damos_destroy,
};
