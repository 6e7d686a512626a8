/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: Linux NUMA balancing in memory-tiering mode (numa_balancing=2), as in 6.12's
 * kernel/sched/fair.c, mm/mprotect.c, mm/migrate.c and mm/vmscan.c:
 *
 * - the scanner (task_numa_work) marks numa_balancing_scan_size_mb = 256 MB of each VM's
 *   memory PROT_NONE in one pass every scan period, going round; in tiering-only mode it skips
 *   pages on the top tier (change_pte_range) and pages still marked, and stamps each marked
 *   folio with the time (folio_xchg_access_time). The period starts at
 *   numa_balancing_scan_delay_ms = 1000 for a new task and adapts (update_task_scan_period,
 *   bounded by task_scan_min/task_scan_max: 1000 and 60000 ms divided by the VM's 256 MB scan
 *   windows, at least 1000 / 10 ms): in tiering mode the only faults the task records are
 *   those of promoted pages (task_numa_fault returns early for a slow-tier node), which are
 *   local and private, so after each pass that promoted the period grows by 3 of its 10
 *   slots (+30%), and a pass that promoted nothing leaves it as it is: it never shrinks;
 * - the first access to a marked page takes a hint fault; for a slow-tier page,
 *   should_numa_migrate_memory promotes when the DRAM node has plenty free
 *   (pgdat_free_space_enough: more than max(1 GiB, node / 16) above the watermark), else
 *   when the fault latency (fault time - mark time) is under the hot threshold
 *   (numa_balancing_hot_threshold_ms = 1000, adjusted every 60 s by
 *   numa_promotion_adjust_threshold: one of 16 steps of 2 x 1000 ms down when the last 60 s
 *   saw more than 1.1 x the rate limit's candidates, up to 2 x when fewer than 0.9 x) and the
 *   promotion rate limit (numa_balancing_promote_rate_limit_MBps = 65536, candidates a
 *   second) allows;
 * - the promotion needs DRAM free above the high watermark plus the page
 *   (migrate_balanced_pgdat); when it fails, kswapd is woken and demotes the coldest DRAM
 *   pages (the inactive LRU's tail) until free reaches the promotion watermark.
 *
 * Simplified: a fault happens in the middle of the interval of the page's first miss after it
 * was marked (traces have no time inside an interval), the page is promoted at the end of
 * that interval; scan passes start at interval boundaries (the kernel's scan period counts
 * the task's CPU time, here the trace's time); the period is updated at the next pass after
 * promotions (the kernel: at the first recorded fault of a new pass); the LRU is the order of
 * last access in the trace (LLC misses, not the accessed bit); watermarks are high = 0.5% and
 * promo = high + 0.1% of DRAM (min_free_kbytes and watermark_scale_factor = 10 give figures of
 * that size on a large host) unless setup.json's "numa_balancing" gives the node's; the DRAM
 * node is one zone (the kernel also promotes into a small ZONE_DMA whose watermarks are met
 * when DMA32's are not); a hint fault costs the VM HINT_FAULT_NS, and the faults of a
 * pass come one after the other (a page's fault no sooner than the pass plus the VM's faults
 * before it, in page order). Setup.json's "numa_balancing" also gives the scan period the
 * VMs start with (a testbed's QEMUs ran before the mode started) and the fault's cost (the
 * testbed's nested TCG: about a millisecond, which pushes a pass's later faults past the
 * 1 s threshold). Checked against the real 6.12 kernel in the testbed by
 * tests/bench/corun/nb-kernel-check.py (BENCHMARKS.md, "The numa-balancing policy against
 * the real 6.12 kernel").
 */
#include "policy.h"


#define SCAN_SIZE_PAGES (256u << (20 - 12))
#define SCAN_DELAY_MS 1000u
#define SCAN_PERIOD_MIN_MS 1000u
#define SCAN_PERIOD_MAX_MS 60000u
#define MAX_SCAN_WINDOW_MB 2560u  /* task_scan_min's floor: 1000 / (2560 / 256) ms */
#define NUMA_PERIOD_SLOTS 10u
#define NUMA_PERIOD_GROW_SLOTS 3u /* ps_ratio 10 - NUMA_PERIOD_THRESHOLD 7 */
#define HOT_THRESHOLD_MS 1000u
#define THRESHOLD_PERIOD_MS 60000u
#define ADJUST_STEPS 16u
#define PROMOTE_RATE_LIMIT_MBPS 65536u
/* Assumption: a minor fault's entry and exit plus the PTE update and, on promotion, the
 * isolation: ~1.5 us on a Xeon. */
#define HINT_FAULT_NS 1500u
/* pgdat_free_space_enough: 1 GiB or 1/16 of the node, whichever is more */
#define FREE_ENOUGH_PAGES (1u << (30 - 12))

typedef struct {
  CorunPlacement *pl;
  guint32 **mark_ms;        /* 0: not marked; else mark time + 1 (ms) */
  guint32 **last_access;    /* interval + 1 of the page's last miss (the LRU), 0 never */
  guint64 *scan_cursor;
  guint64 *next_scan_ms;    /* each VM's next pass */
  guint64 *period_ms;       /* its scan period now */
  guint64 *period_min_ms, *period_max_ms;
  guint64 *promoted;        /* promotions since its last pass */
  guint64 *pass_ms;         /* its last pass's marks' time */
  guint64 *pass_faults;     /* hint faults since then */
  guint64 fault_ns;         /* one hint fault's cost to the VM */
  guint64 high_wmark, promo_wmark;
  guint64 rate_limit_pages; /* candidates a second */
  guint64 threshold_ms;     /* 0: the default */
  guint64 th_start_ms, th_cand;
  guint64 rl_start_ms, rl_cand;
  guint64 candidates;       /* PGPROMOTE_CANDIDATE */
} NumaBalancing;

static gboolean
nb_init(CorunPolicy *policy, GError **error)
{
  const CorunSetup *setup = policy->setup;
  NumaBalancing *nb = g_new0(NumaBalancing, 1);

  nb->pl = corun_placement_new(setup, setup->dram_pages);
  nb->mark_ms = g_new0(guint32 *, setup->nr_vms);
  nb->last_access = g_new0(guint32 *, setup->nr_vms);
  nb->scan_cursor = g_new0(guint64, setup->nr_vms);
  nb->next_scan_ms = g_new0(guint64, setup->nr_vms);
  nb->period_ms = g_new0(guint64, setup->nr_vms);
  nb->period_min_ms = g_new0(guint64, setup->nr_vms);
  nb->period_max_ms = g_new0(guint64, setup->nr_vms);
  nb->promoted = g_new0(guint64, setup->nr_vms);
  nb->pass_ms = g_new0(guint64, setup->nr_vms);
  nb->pass_faults = g_new0(guint64, setup->nr_vms);
  nb->fault_ns = setup->nb.hint_fault_us ? (guint64)setup->nb.hint_fault_us * 1000
                                         : HINT_FAULT_NS;
  for (guint v = 0; v < setup->nr_vms; v++) {
    /* task_nr_scan_windows: the VM's memory in 256 MB windows, at least one */
    guint64 windows = MAX((setup->vms[v].nr_pages + SCAN_SIZE_PAGES - 1) / SCAN_SIZE_PAGES, 1);
    guint64 floor_ms = 1000u / (MAX_SCAN_WINDOW_MB / (SCAN_SIZE_PAGES >> (20 - 12)));

    nb->mark_ms[v] = g_new0(guint32, setup->vms[v].nr_pages);
    nb->last_access[v] = g_new0(guint32, setup->vms[v].nr_pages);
    nb->period_min_ms[v] = MAX(SCAN_PERIOD_MIN_MS / windows, floor_ms);
    nb->period_max_ms[v] = MAX(SCAN_PERIOD_MAX_MS / windows, nb->period_min_ms[v]);
    nb->period_ms[v] = setup->nb.scan_period_ms ? setup->nb.scan_period_ms
                                                : MAX(SCAN_DELAY_MS, nb->period_min_ms[v]);
    /* a new task's first pass comes scan_delay after it starts; a testbed's running QEMUs
     * pass at once when tiering is switched on (numa_next_scan long past): here in the
     * second interval, when the trace's first touches have made the pages present */
    nb->next_scan_ms[v] = setup->nb.scan_period_ms ? setup->interval_ms : SCAN_DELAY_MS;
  }
  nb->high_wmark = setup->nb.high_wmark_pages ? setup->nb.high_wmark_pages
                                              : MAX(setup->dram_pages / 200, 1);
  nb->promo_wmark = setup->nb.promo_wmark_pages
                      ? setup->nb.promo_wmark_pages
                      : nb->high_wmark + MAX(setup->dram_pages / 1000, 1);
  nb->rate_limit_pages = (guint64)PROMOTE_RATE_LIMIT_MBPS << (20 - 12);
  policy->priv = nb;
  return TRUE;
}

/* numa_promotion_adjust_threshold */
static void
adjust_threshold(NumaBalancing *nb, guint64 now_ms)
{
  guint64 ref_cand, diff_cand, unit_th, th;

  if (now_ms - nb->th_start_ms <= THRESHOLD_PERIOD_MS)
    return;
  nb->th_start_ms = now_ms;
  ref_cand = nb->rate_limit_pages * THRESHOLD_PERIOD_MS / 1000;
  diff_cand = nb->candidates - nb->th_cand;
  unit_th = HOT_THRESHOLD_MS * 2 / ADJUST_STEPS;
  th = nb->threshold_ms ? nb->threshold_ms : HOT_THRESHOLD_MS;
  if (diff_cand > ref_cand * 11 / 10)
    th = MAX(th - unit_th, unit_th);
  else if (diff_cand < ref_cand * 9 / 10)
    th = MIN(th + unit_th, HOT_THRESHOLD_MS * 2);
  nb->th_cand = nb->candidates;
  nb->threshold_ms = th;
}

/* numa_promotion_rate_limit: TRUE when over the limit */
static gboolean
rate_limited(NumaBalancing *nb, guint64 now_ms)
{
  nb->candidates++;
  if (now_ms - nb->rl_start_ms > 1000) {
    nb->rl_start_ms = now_ms;
    nb->rl_cand = nb->candidates;
  }
  return nb->candidates - nb->rl_cand >= nb->rate_limit_pages;
}

/* should_numa_migrate_memory for a slow-tier page */
static gboolean
should_promote(NumaBalancing *nb, guint64 now_ms, guint64 latency_ms)
{
  guint64 enough = MAX((guint64)FREE_ENOUGH_PAGES, nb->pl->dram_capacity / 16);

  if (corun_placement_dram_free(nb->pl) > nb->promo_wmark + enough) {
    nb->threshold_ms = 0;
    return TRUE;
  }
  adjust_threshold(nb, now_ms);
  if (latency_ms >= (nb->threshold_ms ? nb->threshold_ms : HOT_THRESHOLD_MS))
    return FALSE;
  return !rate_limited(nb, now_ms);
}

typedef struct {
  guint vm;
  guint64 page;
  guint32 last;
} LruEntry;

static int
by_last_access(const void *a, const void *b)
{
  const LruEntry *x = a, *y = b;

  if (x->last != y->last)
    return x->last < y->last ? -1 : 1;
  if (x->vm != y->vm)
    return x->vm < y->vm ? -1 : 1;
  return x->page < y->page ? -1 : x->page > y->page;
}

/* kswapd, woken by a failed promotion or a low watermark: demotes from the tail of the LRU
 * (the least recently missed DRAM pages; not pages missed this interval) until free reaches
 * the promotion watermark. The LRU is sorted once an interval, on first need. */
typedef struct {
  GArray *lru;
  guint next;
} Kswapd;

static void
kswapd_demote(NumaBalancing *nb, Kswapd *k, guint nr_vms, guint64 index, CorunDemand *demand)
{
  CorunPlacement *pl = nb->pl;

  if (corun_placement_dram_free(pl) >= nb->promo_wmark)
    return;
  if (k->lru == NULL) {
    k->lru = g_array_new(FALSE, FALSE, sizeof(LruEntry));
    for (guint v = 0; v < nr_vms; v++)
      for (guint64 p = 0; p < pl->nr_pages[v]; p++)
        if (pl->place[v][p] == CORUN_DRAM && nb->last_access[v][p] <= index) {
          LruEntry e = { v, p, nb->last_access[v][p] };
          g_array_append_val(k->lru, e);
        }
    corun_sort(k->lru, by_last_access);
  }
  while (k->next < k->lru->len && corun_placement_dram_free(pl) < nb->promo_wmark) {
    const LruEntry *e = &g_array_index(k->lru, LruEntry, k->next++);

    corun_placement_move(pl, e->vm, e->page, CORUN_SLOW, &demand[e->vm]);
  }
}

static gboolean
nb_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now, CorunDemand *demand,
            GError **error)
{
  NumaBalancing *nb = policy->priv;
  CorunPlacement *pl = nb->pl;
  const CorunSetup *setup = policy->setup;
  guint64 interval_ms = setup->interval_ms;
  guint64 start_ms = index * interval_ms, fault_ms = start_ms + interval_ms / 2;
  g_autoptr(GArray) promote = g_array_new(FALSE, FALSE, sizeof(LruEntry));
  Kswapd kswapd = { NULL, 0 };

  /* The scanner's passes due in this interval: each marks the next 256 MB of the VM
   * (slow-tier pages not marked yet), then the period adapts; the next pass is a period
   * after this one's exact time. */
  for (guint v = 0; v < setup->nr_vms; v++) {
    guint64 n = pl->nr_pages[v], todo = MIN((guint64)SCAN_SIZE_PAGES, n);

    while (nb->next_scan_ms[v] < start_ms + interval_ms) {
      /* due in this interval: it marks at the interval's start (the faults come after) */
      guint64 now_ms = MAX(nb->next_scan_ms[v], start_ms);

      for (guint64 i = 0; i < todo; i++) {
        guint64 p = (nb->scan_cursor[v] + i) % n;

        if (pl->place[v][p] == CORUN_SLOW && nb->mark_ms[v][p] == 0)
          nb->mark_ms[v][p] = (guint32)MIN(start_ms + 1, G_MAXUINT32);
      }
      nb->scan_cursor[v] = (nb->scan_cursor[v] + todo) % n;
      nb->pass_ms[v] = start_ms;
      nb->pass_faults[v] = 0;
      if (nb->promoted[v] > 0) {
        guint64 slot = (nb->period_ms[v] + NUMA_PERIOD_SLOTS - 1) / NUMA_PERIOD_SLOTS;

        nb->period_ms[v] = CLAMP(nb->period_ms[v] + NUMA_PERIOD_GROW_SLOTS * slot,
                                 nb->period_min_ms[v], nb->period_max_ms[v]);
        nb->promoted[v] = 0;
      }
      nb->next_scan_ms[v] = now_ms + nb->period_ms[v];
    }
  }
  /* Serve, then the hint faults of the marked pages touched. */
  for (guint v = 0; v < setup->nr_vms; v++) {
    corun_placement_serve(pl, v, &now[v], &demand[v]);
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      guint64 p = now[v].entries[i].page;

      nb->last_access[v][p] = (guint32)MIN(index + 1, G_MAXUINT32);
      guint64 at_ms;

      if (nb->mark_ms[v][p] == 0)
        continue;
      /* no sooner than the pass plus the VM's faults before this one (in page order: the
       * trace has no order inside an interval) */
      at_ms = MAX(fault_ms, nb->pass_ms[v] + nb->pass_faults[v] * nb->fault_ns / 1000000);
      nb->pass_faults[v]++;
      demand[v].fault_ns += nb->fault_ns;
      if (pl->place[v][p] == CORUN_SLOW &&
          should_promote(nb, at_ms, at_ms - (nb->mark_ms[v][p] - 1))) {
        LruEntry e = { v, p, 0 };
        g_array_append_val(promote, e);
      }
      nb->mark_ms[v][p] = 0;
    }
  }
  for (guint i = 0; i < promote->len; i++) {
    const LruEntry *e = &g_array_index(promote, LruEntry, i);

    /* migrate_balanced_pgdat: free above the high watermark plus the page; else the fault
     * wakes kswapd (which runs beside the guest: here at once) and this promotion is lost */
    if (corun_placement_dram_free(pl) > nb->high_wmark) {
      if (corun_placement_move(pl, e->vm, e->page, CORUN_DRAM, &demand[e->vm]))
        nb->promoted[e->vm]++;
    } else
      kswapd_demote(nb, &kswapd, setup->nr_vms, index, demand);
  }
  if (corun_placement_dram_free(pl) < nb->high_wmark)
    kswapd_demote(nb, &kswapd, setup->nr_vms, index, demand);
  if (kswapd.lru != NULL)
    g_array_unref(kswapd.lru);
  return TRUE;
}

static void
nb_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  NumaBalancing *nb = policy->priv;

  corun_placement_vm_dram(nb->pl, vm_dram);
}

static const CorunPlacement *
nb_placement(CorunPolicy *policy)
{
  NumaBalancing *nb = policy->priv;

  return nb->pl;
}

static void
nb_destroy(CorunPolicy *policy)
{
  NumaBalancing *nb = policy->priv;

  for (guint v = 0; v < policy->setup->nr_vms; v++) {
    g_free(nb->mark_ms[v]);
    g_free(nb->last_access[v]);
  }
  g_free(nb->mark_ms);
  g_free(nb->last_access);
  g_free(nb->scan_cursor);
  g_free(nb->next_scan_ms);
  g_free(nb->period_ms);
  g_free(nb->period_min_ms);
  g_free(nb->period_max_ms);
  g_free(nb->promoted);
  g_free(nb->pass_ms);
  g_free(nb->pass_faults);
  corun_placement_free(nb->pl);
  g_free(nb);
}

const struct corun_policy_ops corun_policy_numa_balancing = {
  .name = "numa-balancing",
  .init = nb_init,
  .interval = nb_interval,
  .dram_pages = nb_dram_pages,
  .placement = nb_placement,
  .destroy = nb_destroy,
};
