/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The interval's moves sized by the mover's learnt speed (loop-batch.c), and promotions of
 * hot pages ahead of demotions nothing waits for (plan.c), on a real core with a fake tracker
 * and the sim mover. The sim's clock is the cost it charged (ns_per_page per moved page), so
 * the speed the core learns and the time a batch takes are counted, not timed. */
#include "hmmv-test.h"

#include <stdio.h>
#include <string.h>

#define DRAM_NODE 0
#define SLOW_NODE 1

enum {
  NR = 100000,           /* the VM's pages, all first touched on DRAM */
  MAX_PAGES = 10000,     /* then its dram-max: 90,000 forced demotions pending */
  CAP = 2441,            /* 10 MB/s at 1 s intervals, in 4 KiB pages */
  NR_HOT = 100,          /* pages 0..99: demoted first (coldest, lowest index), then hot */
};

typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvTracker *tracker;
  HmmvVm *vm;
} Bed;

static void
bed_init(Bed *bed, guint move_share_percent)
{
  g_autoptr(GError) error = NULL;
  HmmvParams params;

  memset(bed, 0, sizeof(*bed));
  bed->topo = hmmv_test_topology_two_tier((guint64)2 * NR * HMMV_PAGE_SIZE,
                                          (guint64)2 * NR * HMMV_PAGE_SIZE);
  bed->mover = hmmv_sim_mover_new(bed->topo, &error);
  ck_assert(bed->mover != NULL);
  hmmv_params_init(&params);
  params.migrate_mbps = 10;
  params.host_migrate_mbps = 0;
  params.interval_ms = 1000;
  params.move_share_percent = move_share_percent;
  ck_assert_uint_eq(hmmv_params_cap_pages(&params), CAP);
  bed->core = hmmv_core_new(bed->topo, bed->mover, &params, 0, &error);
  ck_assert_msg(bed->core != NULL, "%s", error ? error->message : "");
  bed->tracker = hmmv_fake_tracker_new();
  ck_assert(hmmv_core_add_vm(bed->core, hmmv_test_vm_new("vm", NR), bed->tracker, &error));
  bed->vm = hmmv_core_get_vm(bed->core, 0);
}

static void
bed_clear(Bed *bed)
{
  hmmv_core_free(bed->core);
  hmmv_mover_free(bed->mover);
  hmmv_topology_free(bed->topo);
}

/* Interval 0 touches every page (all land on DRAM); then the VM's dram-max falls to
 * MAX_PAGES. */
static void
bed_fill_then_shrink(Bed *bed, HmmvIntervalReport *report)
{
  g_autoptr(GError) error = NULL;
  HmmvQuota quota = { .max_pages = MAX_PAGES, .weight = 100, .managed = TRUE };

  for (guint64 p = 0; p < NR; p++)
    hmmv_fake_tracker_queue_write(bed->tracker, p);
  ck_assert(hmmv_core_run_interval(bed->core, report, &error));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(bed->vm), NR);
  hmmv_vm_set_quota(bed->vm, &quota);
}

static guint
hot_on_dram(Bed *bed)
{
  guint n = 0;

  for (guint64 p = 0; p < NR_HOT; p++)
    n += hmmv_vm_get_page_node(bed->vm, p) == DRAM_NODE;
  return n;
}

/* The mover turns slow (0.8 ms a page, e.g. a loaded or emulated host) while 90,000
 * demotions are pending under a cap of 2,441 pages an interval. The interval planned before
 * the core saw the slow mover is stopped by the deadline once its moves took the whole
 * interval (1,536 pages, 1.23 s: three 512-page calls; planned, 1.95 s); from the next one
 * on every interval's moves fit in half an interval (625 pages, 0.5 s), and hot pages
 * written meanwhile are promoted within a few intervals, each with its room made first,
 * while thousands of demotions still wait. Before the change every interval moved the cap's
 * 2,441 pages, 1.95 s of mover for a 1 s interval, whatever the mover's speed. */
START_TEST(test_slow_mover_smaller_batches)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  const guint64 slow_ns = 800000, share_ns = 500000000;
  guint64 charged = 0, hot_from = 0, promoted_at = 0;
  guint interval;
  Bed bed;

  bed_init(&bed, 50);
  hmmv_interval_report_init(&report);
  bed_fill_then_shrink(&bed, &report);
  for (interval = 1; interval <= 20 && promoted_at == 0; interval++) {
    const HmmvVmReport *rep;
    guint64 now, moved;

    if (interval == 3)
      hmmv_sim_mover_set_ns_per_page(bed.mover, slow_ns);
    if (interval >= 5) {
      if (hot_from == 0)
        hot_from = interval;
      for (guint64 p = 0; p < NR_HOT; p++)
        hmmv_fake_tracker_queue_write(bed.tracker, p);
    }
    ck_assert(hmmv_core_run_interval(bed.core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    now = hmmv_sim_mover_get_charged_ns(bed.mover);
    moved = rep->promoted + rep->demoted;
    ck_assert_uint_eq(report.moved_ns, now - charged);
    charged = now;
    printf("# interval %u: speed %" G_GUINT64_FORMAT " ns/page, batch %" G_GUINT64_FORMAT
           ", moved %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " promoted), mover %"
           G_GUINT64_FORMAT " ms, deferred by the batch %" G_GUINT64_FORMAT ", DRAM %"
           G_GUINT64_FORMAT "\n", interval, report.mover_ns_per_page, report.batch_pages,
           moved, rep->promoted, report.moved_ns / 1000000, rep->deferred_batch,
           rep->dram_pages);
    if (interval <= 3) {
      /* the fast mover's 3,900 ns (learnt, or the prior): the cap is what binds */
      ck_assert_uint_eq(report.mover_ns_per_page, 3900);
      ck_assert_uint_eq(report.batch_pages, 128205);
      if (interval < 3) {
        ck_assert_uint_eq(moved, CAP);
        ck_assert_uint_eq(rep->deferred_batch, 0);
        continue;
      }
      /* planned at 3,900 ns, the 2,441 pages would take 1.95 s: the deadline (twice the
       * share, the whole interval) stops the moves between the mover's 512-page calls once
       * 1 s is used, at most one call (410 ms) late */
      ck_assert_uint_lt(moved, CAP);
      ck_assert_uint_eq(rep->deferred_batch, CAP - moved);
      ck_assert_uint_ge(report.moved_ns, 1000000000u);
      ck_assert_uint_lt(report.moved_ns, 1000000000u + 512 * slow_ns);
      continue;
    }
    /* the slow interval taught the core: every later one fits in half an interval */
    ck_assert_uint_eq(report.mover_ns_per_page, slow_ns);
    ck_assert_uint_eq(report.batch_pages, share_ns / slow_ns);
    ck_assert_uint_le(moved, share_ns / slow_ns);
    ck_assert_uint_le(report.moved_ns, share_ns);
    ck_assert_uint_gt(rep->deferred_batch, 0);
    /* promotions never grow the VM while it is above its budget */
    ck_assert_uint_le(rep->promoted, rep->demoted);
    if (hot_on_dram(&bed) == NR_HOT) {
      promoted_at = interval;
      /* and thousands of demotions still wait */
      ck_assert_uint_ge(rep->dram_pages, MAX_PAGES + 10000);
    }
  }
  ck_assert_msg(promoted_at > 0, "the hot pages were not promoted while demotions waited "
                "(%u of %u on DRAM)", hot_on_dram(&bed), NR_HOT);
  ck_assert_uint_le(promoted_at - hot_from, 8);
  printf("# hot from interval %" G_GUINT64_FORMAT ", all on DRAM after interval %"
         G_GUINT64_FORMAT "\n", hot_from, promoted_at);
  bed_clear(&bed);
}
END_TEST

/* The same 90,000 pending demotions under the cap alone (no limit by speed): the cap grants
 * promotions, each a swap with a cold DRAM page, before the forced demotions, so the hot pages
 * move within a few intervals of turning hot while the VM shrinks at the cap's pace meanwhile.
 * Before the change the forced demotions took the whole cap until they were done (9
 * intervals) and the hot pages waited on the slow tier all that time. */
START_TEST(test_promotions_before_forced_demotions)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  guint64 promoted_at = 0;
  const guint hot_from = 2;
  Bed bed;

  bed_init(&bed, 0);
  hmmv_interval_report_init(&report);
  bed_fill_then_shrink(&bed, &report);
  for (guint interval = 1; interval <= 20 && promoted_at == 0; interval++) {
    const HmmvVmReport *rep;

    if (interval >= hot_from)
      for (guint64 p = 0; p < NR_HOT; p++)
        hmmv_fake_tracker_queue_write(bed.tracker, p);
    ck_assert(hmmv_core_run_interval(bed.core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    ck_assert_uint_eq(report.batch_pages, G_MAXUINT64);
    ck_assert_uint_eq(rep->promoted + rep->demoted, CAP);
    ck_assert_uint_le(rep->promoted, rep->demoted);
    if (interval == 1)
      ck_assert_uint_eq(hot_on_dram(&bed), 0);
    if (hot_on_dram(&bed) == NR_HOT)
      promoted_at = interval;
  }
  ck_assert_msg(promoted_at > 0, "the hot pages were not promoted (%u of %u on DRAM)",
                hot_on_dram(&bed), NR_HOT);
  printf("# hot from interval %u, all on DRAM after interval %" G_GUINT64_FORMAT ", DRAM %"
         G_GUINT64_FORMAT " pages (dram-max %u)\n", hot_from, promoted_at,
         hmmv_vm_get_dram_pages(bed.vm), MAX_PAGES);
  ck_assert_uint_le(promoted_at - hot_from, 8);
  ck_assert_uint_ge(hmmv_vm_get_dram_pages(bed.vm), MAX_PAGES + 10000);
  bed_clear(&bed);
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("loop-batch");
  TCase *tc = tcase_create("batch");

  tcase_add_test(tc, test_slow_mover_smaller_batches);
  tcase_add_test(tc, test_promotions_before_forced_demotions);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
