/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The interval's moves sized by the mover's learnt speed (loop-batch.c), and promotions of
 * hot pages ahead of demotions nothing waits for (plan.c), on a real core with a fake tracker
 * and the sim mover. The sim's clock is the cost it charged (ns_per_page per moved page), so
 * the speed the core learns and the time a batch takes are counted, not timed. */
#include "hmmv-test.h"
#include "swaps-bed.h"

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
  guint64 charged = 0, hot_from = 0, promoted_at = 0, speed = 3900, learnt_at = 0;
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
    if (interval < 3) {
      /* the fast mover's 3,900 ns (learnt, or the prior): the cap is what binds */
      ck_assert_uint_eq(report.mover_ns_per_page, 3900);
      ck_assert_uint_eq(report.batch_pages, 128205);
      ck_assert_uint_eq(moved, CAP);
      ck_assert_uint_eq(rep->deferred_batch, 0);
      continue;
    }
    if (speed < slow_ns) {
      /* planned at a speed the mover no longer has (3,900 ns, then 4 times slower each
       * interval: one interval moves the learnt speed at most 4x), the moves would take
       * longer than the interval: the deadline (twice the share, the whole interval) stops
       * them between the mover's 512-page calls once 1 s is used, at most one call (410 ms)
       * late */
      ck_assert_uint_eq(report.mover_ns_per_page, speed);
      ck_assert_uint_eq(report.batch_pages, MIN(128205, share_ns / speed));
      ck_assert_uint_lt(moved, CAP);
      ck_assert_uint_eq(rep->deferred_batch, CAP - moved);
      ck_assert_uint_ge(report.moved_ns, 1000000000u);
      ck_assert_uint_lt(report.moved_ns, 1000000000u + 512 * slow_ns);
      speed = MIN(speed * 4, slow_ns);
      learnt_at = interval + 1;
    } else {
      /* the slow intervals taught the core: every later one fits in half an interval */
      ck_assert_uint_eq(report.mover_ns_per_page, slow_ns);
      ck_assert_uint_eq(report.batch_pages, share_ns / slow_ns);
      ck_assert_uint_le(moved, share_ns / slow_ns);
      ck_assert_uint_le(report.moved_ns, share_ns);
      ck_assert_uint_gt(rep->deferred_batch, 0);
    }
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
  ck_assert_uint_eq(learnt_at, 7);
  printf("# hot from interval %" G_GUINT64_FORMAT ", all on DRAM after interval %"
         G_GUINT64_FORMAT ", slow speed learnt by interval %" G_GUINT64_FORMAT "\n", hot_from,
         promoted_at, learnt_at);
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

/* A host whose DRAM node another process keeps full (it takes back every page freed there at
 * once, as the testbed's node-0 hog does): every move call into that node fails whole with
 * ENOMEM after fail_ns (the kernel's allocation on a full node reclaims and compacts before it
 * gives up), statuses unwritten, nothing moved. Calls to other nodes go to the sim, whose
 * charged cost, plus the failures', is this mover's clock. */
typedef struct {
  HmmvMover *sim;
  int full_node;
  guint64 fail_ns;
  guint64 failed_ns;
  guint64 failed_calls;
} FullNode;

static gboolean
full_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int *status,
           GError **error)
{
  FullNode *full = mover->priv;

  return full->sim->ops->query(full->sim, vm, pages, nr_pages, status, error);
}

static gssize
full_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node,
          int *status, GError **error)
{
  FullNode *full = mover->priv;

  if (dest_node == full->full_node) {
    full->failed_ns += full->fail_ns;
    full->failed_calls++;
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NO_SPACE, "modelled node %d is full", dest_node);
    return -1;
  }
  return full->sim->ops->move(full->sim, vm, pages, nr_pages, dest_node, status, error);
}

static void
full_touch(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc)
{
  hmmv_mover_touch(((FullNode *)mover->priv)->sim, vm, acc);
}

static guint64
full_clock_ns(HmmvMover *mover)
{
  FullNode *full = mover->priv;

  return hmmv_mover_clock_ns(full->sim) + full->failed_ns;
}

static void
full_destroy(HmmvMover *mover)
{
  FullNode *full = mover->priv;

  hmmv_mover_free(full->sim);
  g_free(full);
}

static const struct hmmv_mover_ops full_ops = {
  .name = "full-node",
  .query = full_query,
  .move = full_move,
  .touch = full_touch,
  .clock_ns = full_clock_ns,
  .destroy = full_destroy,
};

/* The testbed's stall (notes/old/home.md: node 0 kept full, ~2 pages/s moved while the VMs
 * were far over budget), counted: 90,000 demotions pending under a cap of 2,441 pages an
 * interval, and from interval 9 (the payback gate's warm-up) hot pages on the slow tier whose
 * promotions into the full DRAM node fail, each call after 0.8 s. Those calls move nothing and
 * teach nothing of the mover's speed: the demotions keep going at the cap less the hot pages'
 * 100 (3.9 us a page, 9 ms an interval), the learnt speed stays 3,900 ns, and the node, once
 * found full, is left alone for 1, 2, 4, 8 intervals, with at most one more failed call in
 * each pause: the swap of the hot pages into the room the pause's first demotions freed,
 * which this mover refuses too, so the node takes no swap for the rest of the pause (9
 * failed calls in 30 intervals, at most 10; not 22, a try every interval, as the swap room
 * had it before the refusal). Before, the failed calls' time was spread over the pages they
 * were given: the speed fell interval after interval, the batch shrank to one promotion and
 * its room-making demotion an interval, and the VM stopped shrinking. */
START_TEST(test_slow_failures_do_not_stall)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvQuota quota = { .max_pages = MAX_PAGES, .weight = 100, .managed = TRUE };
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier((guint64)2 * NR * HMMV_PAGE_SIZE,
                                                             (guint64)2 * NR * HMMV_PAGE_SIZE);
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  FullNode *full = g_new0(FullNode, 1);
  guint64 demoted = 0, failed_before = 0;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvParams params;
  HmmvVm *vm;

  full->sim = hmmv_sim_mover_new(topo, &error);
  ck_assert(full->sim != NULL);
  full->full_node = -1;          /* full from interval 1 on */
  full->fail_ns = 800000000u;
  mover = hmmv_mover_new(&full_ops, full, topo, &error);
  ck_assert(mover != NULL);
  hmmv_params_init(&params);
  params.migrate_mbps = 10;
  params.host_migrate_mbps = 0;
  params.interval_ms = 1000;
  params.move_share_percent = 50;
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_core_add_vm(core, hmmv_test_vm_new("vm", NR), tracker, &error));
  vm = hmmv_core_get_vm(core, 0);
  hmmv_interval_report_init(&report);
  for (guint64 p = 0; p < NR; p++)
    hmmv_fake_tracker_queue_write(tracker, p);
  ck_assert(hmmv_core_run_interval(core, &report, &error));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), NR);
  hmmv_vm_set_quota(vm, &quota);
  full->full_node = DRAM_NODE;
  for (guint interval = 1; interval <= 30; interval++) {
    const HmmvVmReport *rep;

    if (interval >= 2)
      for (guint64 p = 0; p < NR_HOT; p++)
        hmmv_fake_tracker_queue_write(tracker, p);
    ck_assert(hmmv_core_run_interval(core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    demoted += rep->demoted;
    printf("# interval %u: speed %" G_GUINT64_FORMAT " ns/page, batch %" G_GUINT64_FORMAT
           ", demoted %" G_GUINT64_FORMAT ", promoted %" G_GUINT64_FORMAT ", failed calls %"
           G_GUINT64_FORMAT ", mover %" G_GUINT64_FORMAT " ms\n", interval,
           report.mover_ns_per_page, report.batch_pages, rep->demoted, rep->promoted,
           full->failed_calls - failed_before, report.moved_ns / 1000000);
    failed_before = full->failed_calls;
    ck_assert_uint_eq(rep->promoted, 0);
    /* what the mover moved teaches it; the failed calls do not */
    ck_assert_uint_eq(report.mover_ns_per_page, 3900);
    /* the hot pages' promotions take at most their 100 pages of the cap */
    ck_assert_uint_ge(rep->demoted, CAP - NR_HOT);
  }
  /* the promotions were tried (and failed) while the demotions went on at the cap */
  ck_assert_uint_gt(full->failed_calls, 0);
  ck_assert_uint_le(full->failed_calls, 10);
  ck_assert_uint_ge(demoted, (guint64)30 * CAP * 9 / 10);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), NR - demoted);
  hmmv_core_free(core);
  hmmv_mover_free(mover);
}
END_TEST

/* The deadline is checked every mover call of 2 MiB (512 pages), whatever the entries are: a
 * VM on 2 MiB hugetlbfs pages (a unit is one entry) must give back 60 of its 64 units, planned
 * at the mover's 3.9 us a page (the 30,720 pages fit in half an interval) while the mover has
 * turned 50 us a page (25.6 ms a unit, 1.54 s for all). The calls stop once the interval's
 * moves have used 1 s, at most one unit late, and the rest waits. Before, the 60 entries were
 * one call (the deadline came every 512 entries: 256 MiB here, 512 GiB of 1 GiB pages) and
 * the interval's moves ran 1.54 s. */
START_TEST(test_deadline_per_pages_not_entries)
{
  enum { UNIT = 512, UNITS = 64, NR_UNITS = UNIT * UNITS, KEEP = 4 };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(
      (guint64)2 * NR_UNITS * HMMV_PAGE_SIZE, (guint64)2 * NR_UNITS * HMMV_PAGE_SIZE);
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autoptr(HmmvCore) core = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvQuota quota = { .max_pages = KEEP * UNIT, .weight = 100, .managed = TRUE };
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  HmmvVm *vm = hmmv_vm_new("huge");
  const guint64 slow_ns = 50000;
  const HmmvVmReport *rep;
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;               /* no caps: the batch alone bounds the moves */
  params.host_migrate_mbps = 0;
  params.interval_ms = 1000;
  params.move_share_percent = 50;
  ck_assert(hmmv_vm_add_region(vm, "ram", 0, 0, (guint64)NR_UNITS * HMMV_PAGE_SIZE, 2u << 20,
                               NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_core_add_vm(core, vm, tracker, &error));
  hmmv_interval_report_init(&report);
  for (guint64 p = 0; p < NR_UNITS; p++)
    hmmv_fake_tracker_queue_write(tracker, p);
  ck_assert(hmmv_core_run_interval(core, &report, &error));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), NR_UNITS);
  hmmv_vm_set_quota(vm, &quota);
  hmmv_sim_mover_set_ns_per_page(mover, slow_ns);
  ck_assert(hmmv_core_run_interval(core, &report, &error));
  rep = &g_array_index(report.vms, HmmvVmReport, 0);
  ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
  printf("# planned at %" G_GUINT64_FORMAT " ns/page: demoted %" G_GUINT64_FORMAT
         " pages, mover %" G_GUINT64_FORMAT " ms, deferred by the batch %" G_GUINT64_FORMAT
         "\n", report.mover_ns_per_page, rep->demoted, report.moved_ns / 1000000,
         rep->deferred_batch);
  ck_assert_uint_eq(report.mover_ns_per_page, 3900);
  ck_assert_uint_ge(report.moved_ns, 1000000000u);
  ck_assert_uint_lt(report.moved_ns, 1000000000u + UNIT * slow_ns);
  ck_assert_uint_eq(rep->demoted % UNIT, 0);
  ck_assert_uint_eq(rep->demoted + rep->deferred_batch, (UNITS - KEEP) * UNIT);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), NR_UNITS - rep->demoted);
  hmmv_core_remove_vm(core, "huge", NULL);
}
END_TEST

/* Promotions of hot pages do not wait behind demotions they do not need: the mover turns
 * slow (0.8 ms a page) in interval 9, the first whose plan wants the hot pages (written from
 * interval 2, after interval 1 demoted them; the payback gate's warm-up), and the deadline
 * cuts that interval's moves at 1 s. Each VM's room-making demotions and its promotions go
 * first, the 90,000 demotions nothing waits for after them: the hot pages are all on DRAM
 * after interval 9. Before, every demotion went first and the deadline cut the promotions:
 * they waited for the next interval (and for as long as the deadline kept cutting). */
START_TEST(test_promotions_not_behind_the_deadline)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  guint64 first_wanted = 0, promoted_at = 0, cut = 0;
  Bed bed;

  bed_init(&bed, 50);
  hmmv_interval_report_init(&report);
  bed_fill_then_shrink(&bed, &report);
  for (guint interval = 1; interval <= 30 && promoted_at == 0; interval++) {
    const HmmvVmReport *rep;

    if (interval == 9)
      hmmv_sim_mover_set_ns_per_page(bed.mover, 800000);
    for (guint64 p = 0; interval >= 2 && p < NR_HOT; p++)
      hmmv_fake_tracker_queue_write(bed.tracker, p);
    ck_assert(hmmv_core_run_interval(bed.core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    printf("# interval %u: speed %" G_GUINT64_FORMAT " ns/page, demoted %" G_GUINT64_FORMAT
           ", promoted %" G_GUINT64_FORMAT ", deferred by the batch %" G_GUINT64_FORMAT
           ", mover %" G_GUINT64_FORMAT " ms\n", interval, report.mover_ns_per_page,
           rep->demoted, rep->promoted, rep->deferred_batch, report.moved_ns / 1000000);
    cut += interval >= 9 && report.moved_ns >= 1000000000u;
    if (first_wanted == 0 && hmmv_vm_get_dram_pages(bed.vm) > 0 &&
        (rep->promoted > 0 || rep->deferred_room > 0))
      first_wanted = interval;
    if (interval == 1)
      ck_assert_uint_eq(hot_on_dram(&bed), 0);
    else if (hot_on_dram(&bed) == NR_HOT)
      promoted_at = interval;
  }
  ck_assert_msg(promoted_at > 0, "not promoted (%u of %u on DRAM)", hot_on_dram(&bed), NR_HOT);
  printf("# hot from interval 2, all on DRAM after interval %" G_GUINT64_FORMAT
         ", intervals cut by the deadline meanwhile %" G_GUINT64_FORMAT "\n", promoted_at, cut);
  ck_assert_uint_gt(cut, 0);
  ck_assert_uint_le(promoted_at, 9);
  bed_clear(&bed);
}
END_TEST

/* The squeeze (swaps-bed.c): every hot page on DRAM within 280 intervals of the hot sets'
 * start, and no demotion for nothing. Before the swap room (the hmmvd of 7233104): promoted
 * 1,200, demoted 1,264, all on DRAM after interval 53. After: 1,200 and 1,200, interval 39. */
START_TEST(test_swaps_when_dram_full)
{
  const SwapsOpts opts = { .max_intervals = 300 };
  SwapsResult res;

  swaps_run(&opts, &res);
  ck_assert_msg(res.done_at > 0, "%u hot pages stuck on the slow node", res.hot_left);
  /* a swap each: every demotion made room for a promotion */
  ck_assert_uint_eq(res.promoted, 1200);
  ck_assert_uint_eq(res.demoted, 1200);
}
END_TEST

/* The same with failures: a fifth of each hot set EBUSY in intervals 20-31 and another
 * process taking node 0's free pages. */
START_TEST(test_swaps_with_failures)
{
  const SwapsOpts opts = { .hog = TRUE, .busy_from = 20, .busy_to = 32, .max_intervals = 300 };
  SwapsResult res;

  swaps_run(&opts, &res);
  ck_assert_msg(res.done_at > 0, "%u hot pages stuck on the slow node", res.hot_left);
  ck_assert_uint_ge(res.promoted, 1200);
  /* the other process took some of the room the swaps freed */
  ck_assert_uint_gt(res.stolen, 0);
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("loop-batch");
  TCase *tc = tcase_create("batch");

  tcase_add_test(tc, test_slow_mover_smaller_batches);
  tcase_add_test(tc, test_promotions_before_forced_demotions);
  tcase_add_test(tc, test_slow_failures_do_not_stall);
  tcase_add_test(tc, test_deadline_per_pages_not_entries);
  tcase_add_test(tc, test_promotions_not_behind_the_deadline);
  tcase_add_test(tc, test_swaps_when_dram_full);
  tcase_add_test(tc, test_swaps_with_failures);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
