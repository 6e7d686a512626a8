/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How closely the core tells each VM's tracker to watch (libhmmv/loop-watch.c): COARSE once
 * the VM has been settled (every hot page that pays on DRAM, room to spare, nothing waiting)
 * for HMMV_WATCH_SETTLE_INTERVALS in a row, FINE at once when it is not. Fake trackers, the
 * sim mover, the real core.
 */
#include "hmmv-test.h"

#include "core-private.h"

#include <string.h>

#define VM_PAGES 4096

typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvTracker *tracker;     /* borrowed: the core owns it */
} Fixture;

static Fixture fx;

static void
setup_core(guint64 dram_pages)
{
  g_autoptr(GError) error = NULL;
  HmmvParams params;

  memset(&fx, 0, sizeof(fx));
  fx.topo = hmmv_test_topology_two_tier(dram_pages * HMMV_PAGE_SIZE,
                                        (guint64)VM_PAGES * 2 * HMMV_PAGE_SIZE);
  fx.mover = hmmv_sim_mover_new(fx.topo, &error);
  ck_assert_msg(fx.mover != NULL, "%s", error ? error->message : "");
  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  fx.core = hmmv_core_new(fx.topo, fx.mover, &params, 0, &error);
  ck_assert_msg(fx.core != NULL, "%s", error ? error->message : "");
  fx.tracker = hmmv_fake_tracker_new();
  ck_assert(hmmv_core_add_vm(fx.core, hmmv_test_vm_new("vm0", VM_PAGES), fx.tracker, &error));
}

static void
teardown_core(void)
{
  hmmv_core_free(fx.core);
  hmmv_mover_free(fx.mover);
  hmmv_topology_free(fx.topo);
}

/* One interval with pages [first, first + nr) written; the VM's report. */
static const HmmvVmReport *
run_writing(HmmvIntervalReport *report, guint64 first, guint64 nr)
{
  g_autoptr(GError) error = NULL;
  const HmmvVmReport *rep;

  for (guint64 p = first; p < first + nr; p++)
    hmmv_fake_tracker_queue_write(fx.tracker, p);
  ck_assert(hmmv_core_run_interval(fx.core, report, &error));
  rep = &g_array_index(report->vms, HmmvVmReport, 0);
  ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
  /* what the report says is what the tracker was told */
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(fx.tracker, NULL), rep->watch);
  return rep;
}

/* A hot set of 256 pages on DRAM with room for 1,500 more: COARSE after exactly
 * HMMV_WATCH_SETTLE_INTERVALS settled intervals (the first ones place and heat the pages:
 * not settled until no hot page waits); a quota that leaves no room tells FINE in the same
 * interval; room again, COARSE only after as many settled intervals again; paused, FINE. */
START_TEST(test_settled_vm_watched_coarsely)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvQuota tight = { .max_pages = 300, .weight = 100, .managed = TRUE };
  HmmvQuota loose = { .weight = 100, .managed = TRUE };
  g_autoptr(GError) error = NULL;
  const HmmvVmReport *rep = NULL;
  guint fine = 0, changes = 0;

  setup_core(2048);
  hmmv_interval_report_init(&report);
  for (guint i = 0; i < 40 && (rep == NULL || rep->watch == HMMV_WATCH_FINE); i++) {
    rep = run_writing(&report, 0, 256);
    fine += rep->watch == HMMV_WATCH_FINE;
  }
  ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
  ck_assert_uint_eq(fine, HMMV_WATCH_SETTLE_INTERVALS - 1);
  ck_assert_uint_eq(rep->hot_pages, 256);
  ck_assert_uint_eq(rep->dram_pages, 256);
  ck_assert_uint_ge(rep->budget_pages - rep->dram_pages, HMMV_WATCH_ROOM_MIN_PAGES);
  /* and it stays so while nothing changes */
  for (guint i = 0; i < 20; i++)
    ck_assert_int_eq(run_writing(&report, 0, 256)->watch, HMMV_WATCH_COARSE);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(fx.tracker, &changes), HMMV_WATCH_COARSE);
  ck_assert_uint_eq(changes, 1);

  /* room 44 pages: FINE in the interval the quota applies */
  ck_assert(hmmv_core_set_quota(fx.core, "vm0", &tight, &error));
  rep = run_writing(&report, 0, 256);
  ck_assert_uint_eq(rep->budget_pages, 300);
  ck_assert_int_eq(rep->watch, HMMV_WATCH_FINE);
  for (guint i = 0; i < 20; i++)
    ck_assert_int_eq(run_writing(&report, 0, 256)->watch, HMMV_WATCH_FINE);

  /* room again: FINE for HMMV_WATCH_SETTLE_INTERVALS - 1 more intervals, then COARSE */
  ck_assert(hmmv_core_set_quota(fx.core, "vm0", &loose, &error));
  for (guint i = 0; i + 1 < HMMV_WATCH_SETTLE_INTERVALS; i++)
    ck_assert_int_eq(run_writing(&report, 0, 256)->watch, HMMV_WATCH_FINE);
  ck_assert_int_eq(run_writing(&report, 0, 256)->watch, HMMV_WATCH_COARSE);

  /* paused: nothing of it moves, nothing it sees is decided on now, but it is outside the
   * balance, so FINE (its tracker watches as before once it is back) */
  ck_assert(hmmv_core_set_paused(fx.core, "vm0", TRUE, &error));
  ck_assert_int_eq(run_writing(&report, 0, 256)->watch, HMMV_WATCH_FINE);
  teardown_core();
}
END_TEST

/* A write source that can pause (qemu-dirty with hmmv-pause; here the fake tracker, which
 * pauses the same way): paused 7 intervals in 8 while COARSE, nothing cools meanwhile (the
 * paused harvests count no interval), and a quota that leaves no room resumes it in the
 * interval it applies. */
START_TEST(test_settled_vm_pauses_writes)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvQuota tight = { .max_pages = 300, .weight = 100, .managed = TRUE };
  g_autoptr(GError) error = NULL;
  const HmmvVmReport *rep = NULL;
  guint paused = 0;

  setup_core(2048);
  hmmv_fake_tracker_set_pausable(fx.tracker, TRUE);
  hmmv_interval_report_init(&report);
  for (guint i = 0; i < 40 && (rep == NULL || rep->watch == HMMV_WATCH_FINE); i++) {
    rep = run_writing(&report, 0, 256);
    ck_assert(!rep->writes_paused);
  }
  ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
  ck_assert_uint_eq(hmmv_fake_tracker_get_pauses(fx.tracker), 0);
  for (guint i = 0; i < 2 * HMMV_PAUSE_CYCLE; i++) {
    rep = run_writing(&report, 0, 256);
    ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
    ck_assert_int_eq(rep->writes_paused, hmmv_tracker_is_paused(fx.tracker));
    paused += rep->writes_paused;
    /* frozen while paused: the hot set stays hot and on DRAM */
    ck_assert_uint_eq(rep->hot_pages, 256);
    ck_assert_uint_eq(rep->dram_pages, 256);
    ck_assert_uint_eq(rep->intervals_merged, i % HMMV_PAUSE_CYCLE == 0 ? 1 : 0);
  }
  ck_assert_uint_eq(paused, 2 * (HMMV_PAUSE_CYCLE - 1));
  ck_assert_uint_eq(hmmv_fake_tracker_get_pauses(fx.tracker), 2);

  /* room short: FINE and resumed in the interval the quota applies, and it stays so */
  for (guint i = 0; i < HMMV_PAUSE_CYCLE && !hmmv_tracker_is_paused(fx.tracker); i++)
    run_writing(&report, 0, 256);   /* into the next paused stretch */
  ck_assert(hmmv_tracker_is_paused(fx.tracker));
  ck_assert(hmmv_core_set_quota(fx.core, "vm0", &tight, &error));
  rep = run_writing(&report, 0, 256);
  ck_assert_int_eq(rep->watch, HMMV_WATCH_FINE);
  ck_assert(!rep->writes_paused);
  for (guint i = 0; i < 10; i++) {
    rep = run_writing(&report, 0, 256);
    ck_assert(!rep->writes_paused);
    ck_assert_uint_eq(rep->intervals_merged, 1);
  }
  teardown_core();
}
END_TEST

/* A settled VM whose write source is paused keeps its last plan (loop-plan.c,
 * core_plan_unchanged): in a paused interval nothing was learnt, so the plan is not built
 * again. Counted in intervals: planned in the one tracked interval of each HMMV_PAUSE_CYCLE,
 * kept in the other 7; pages written from then on are planned for in the next tracked
 * interval; a budget that changes (a quota) is planned for in the interval it applies, paused
 * or not. */
START_TEST(test_settled_vm_keeps_its_plan_while_paused)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvQuota tight = { .max_pages = 300, .weight = 100, .managed = TRUE };
  g_autoptr(GError) error = NULL;
  const HmmvVmReport *rep = NULL;
  guint kept = 0, paused_before = 0;

  setup_core(2048);
  hmmv_fake_tracker_set_pausable(fx.tracker, TRUE);
  hmmv_interval_report_init(&report);
  for (guint i = 0; i < 40 && (rep == NULL || rep->watch == HMMV_WATCH_FINE); i++) {
    rep = run_writing(&report, 0, 256);
    ck_assert(!rep->plan_kept);   /* FINE: built every interval */
  }
  ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
  for (guint i = 0; i < 4 * HMMV_PAUSE_CYCLE; i++) {
    /* what this interval's harvest covers: paused since the last one, or tracked */
    gboolean was_paused = hmmv_tracker_is_paused(fx.tracker);

    rep = run_writing(&report, 0, 256);
    ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
    ck_assert_int_eq(rep->plan_kept, was_paused);
    ck_assert_uint_eq(rep->hot_pages, 256);
    ck_assert_uint_eq(rep->dram_pages, 256);
    ck_assert_uint_eq(rep->promoted + rep->demoted, 0);
    kept += rep->plan_kept;
    paused_before += was_paused;
  }
  ck_assert_uint_eq(kept, 4 * (HMMV_PAUSE_CYCLE - 1));
  ck_assert_uint_eq(paused_before, kept);

  /* 256 more pages written from now on: the next tracked interval plans (they are hot),
   * within one pause cycle */
  for (guint i = 0; i < HMMV_PAUSE_CYCLE + 1; i++) {
    gboolean was_paused = hmmv_tracker_is_paused(fx.tracker);

    rep = run_writing(&report, 0, 512);
    ck_assert_int_eq(rep->plan_kept, was_paused);
    if (!was_paused)
      break;
  }
  ck_assert(!rep->plan_kept);
  ck_assert_uint_eq(rep->hot_pages, 512);

  /* settled again, paused; then a quota: planned in the interval it applies */
  for (guint i = 0; i < 60 && !(rep->watch == HMMV_WATCH_COARSE &&
                                hmmv_tracker_is_paused(fx.tracker)); i++)
    rep = run_writing(&report, 0, 512);
  ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
  ck_assert(hmmv_tracker_is_paused(fx.tracker));
  tight.max_pages = 600;
  ck_assert(hmmv_core_set_quota(fx.core, "vm0", &tight, &error));
  rep = run_writing(&report, 0, 512);
  ck_assert_uint_eq(rep->budget_pages, 600);
  ck_assert(!rep->plan_kept);
  ck_assert_int_eq(rep->watch, HMMV_WATCH_FINE);
  teardown_core();
}
END_TEST

/* A new hot set first touched on the slow tier (DRAM full of pages gone cold) waits there:
 * FINE from the interval it appears until it is on DRAM and the VM settled again. */
START_TEST(test_hot_set_on_slow_tier_watched_finely)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  const HmmvVmReport *rep = NULL;
  HmmvVm *vm;

  setup_core(2048);
  hmmv_interval_report_init(&report);
  /* 1,024 pages written once fill half of DRAM; 256 stay hot */
  rep = run_writing(&report, 0, 1024);
  for (guint i = 0; i < 40 && rep->watch == HMMV_WATCH_FINE; i++)
    rep = run_writing(&report, 0, 256);
  ck_assert_int_eq(rep->watch, HMMV_WATCH_COARSE);
  /* DRAM's free room is taken by another 1,000 pages written once: the VM still has room
   * in its budget only while they are on DRAM and cold; the next hot set lands on slow */
  vm = hmmv_core_get_vm(fx.core, 0);
  rep = run_writing(&report, 1024, 1024);
  rep = run_writing(&report, 2048, 512);
  /* pages first touched beyond DRAM's free memory are on the slow tier: hot ones wait */
  ck_assert_uint_gt(hmmv_vm_get_slow_pages(vm), 0);
  for (guint i = 0; i < 3; i++) {
    rep = run_writing(&report, 2048, 512);
    ck_assert_int_eq(rep->watch, HMMV_WATCH_FINE);
  }
  teardown_core();
}
END_TEST

/* A hot set larger than the VM's budget (the pool is contended): never COARSE. */
START_TEST(test_contended_vm_stays_fine)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  guint changes = 0;

  setup_core(1024);
  hmmv_interval_report_init(&report);
  for (guint i = 0; i < 60; i++)
    ck_assert_int_eq(run_writing(&report, 0, 1536)->watch, HMMV_WATCH_FINE);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(fx.tracker, &changes), HMMV_WATCH_FINE);
  ck_assert_uint_eq(changes, 0);
  teardown_core();
}
END_TEST

static Suite *
loop_watch_suite(void)
{
  Suite *suite = suite_create("loop-watch");
  TCase *tc = tcase_create("loop-watch");

  tcase_add_test(tc, test_settled_vm_watched_coarsely);
  tcase_add_test(tc, test_settled_vm_pauses_writes);
  tcase_add_test(tc, test_settled_vm_keeps_its_plan_while_paused);
  tcase_add_test(tc, test_hot_set_on_slow_tier_watched_finely);
  tcase_add_test(tc, test_contended_vm_stays_fine);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(loop_watch_suite());
}
