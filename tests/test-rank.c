/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a VM's pages can be ranked (libhmmv/loop-rank.c; core.h, HMMV_RANK_FLAT_*): the
 * real core on the sim mover, fed by fake trackers with a skewed workload. 90% of the
 * guest's writes go to a hot set of 1,024 pages at the top of the VM, 10% to the 15,360 pages
 * below it, with a DRAM pool of 2,048 pages. How many writes an interval holds decides
 * whether one dirty bit per page and interval can tell the two apart: at 900,000 (an idle
 * TCG guest in a 300 ms interval, issue 8) every cold page is written in ~99.7% of
 * intervals and the VM is flat; at 10,000 a cold page is written in ~6.3% of them and the
 * hot set is found.
 */
#include "hmmv-test.h"

#include <math.h>

#define VM_PAGES 16384u
#define HOT_PAGES 1024u
#define COLD_PAGES (VM_PAGES - HOT_PAGES)
#define HOT_FIRST COLD_PAGES          /* the hot set is at the top: it starts on the slow tier */
#define POOL_PAGES 2048u
#define FLAT_WRITES 900000u
#define SKEW_WRITES 10000u

/* The chance that n uniform writes over `pages` pages reach a given one: 1 - (1 - 1/pages)^n. */
static double
reached(double n, double pages)
{
  return -expm1(n * log1p(-1.0 / pages));
}

/* Queues one interval of `writes` writes, 90% on the hot set and 10% on the cold part, as the
 * pages they reach: each page drawn with its chance (what the tracker's one bit a page sees). */
static void
write_skewed(HmmvTestCore *bed, GRand *rand, guint64 writes)
{
  double hot = reached(writes * 0.9, HOT_PAGES), cold = reached(writes * 0.1, COLD_PAGES);

  for (guint64 page = 0; page < VM_PAGES; page++)
    if (g_rand_double(rand) < (page >= HOT_FIRST ? hot : cold))
      hmmv_fake_tracker_queue_write(bed->trackers[0], page);
}

/* A core with a DRAM pool of dram_pages and the VM, and one interval in which the guest boots:
 * it writes its lowest pages, as many as the pool, which fill DRAM (first touches land there
 * while it has room), so that the hot set starts on the slow tier and must be found to be
 * promoted. That interval is sampled and not flat (its written pages fit in the budget). */
static void
setup(HmmvTestCore *bed, HmmvIntervalReport *report, guint64 dram_pages)
{
  hmmv_test_core_init(bed, hmmv_test_topology_two_tier(dram_pages * HMMV_PAGE_SIZE,
                                                       (guint64)VM_PAGES * HMMV_PAGE_SIZE),
                      NULL, 0);
  hmmv_test_core_add_vm(bed, VM_PAGES, -1);
  hmmv_interval_report_init(report);
  hmmv_test_core_write(bed, 0, 0, MIN(dram_pages, (guint64)COLD_PAGES));
  hmmv_test_core_run(bed, report);
  ck_assert_uint_eq(hmmv_test_vm_report(report, 0)->rank_window, 1);
  ck_assert_uint_eq(hmmv_test_vm_report(report, 0)->rank_flat_intervals, 0);
}

/* Hot pages of the VM on DRAM (node 0). */
static guint64
hot_on_dram(HmmvTestCore *bed)
{
  HmmvVm *vm = hmmv_core_get_vm(bed->core, 0);
  guint64 n = 0;

  for (guint64 page = HOT_FIRST; page < VM_PAGES; page++)
    n += hmmv_vm_get_page_node(vm, page) == 0;
  return n;
}

/* 900,000 writes an interval: flat in every sampled interval, so the VM enters the state in
 * the interval that makes HMMV_RANK_FLAT_ENTER of them (the 8th), says so once, and stays;
 * meanwhile none of its hot set reaches DRAM (what an operator sees, and why it must be told). */
START_TEST(test_all_written_enters_flat)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;
  guint changes = 0;
  guint64 entered = G_MAXUINT64;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 30; i++) {
    const HmmvVmReport *rep;

    write_skewed(&bed, rand, FLAT_WRITES);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    ck_assert_uint_gt(rep->budget_pages, 0);
    ck_assert_uint_lt(rep->budget_pages, rep->written);
    ck_assert_uint_eq(rep->rank_window, MIN(i + 2, HMMV_RANK_FLAT_WINDOW));
    ck_assert_uint_eq(rep->rank_flat_intervals, MIN(i + 1, HMMV_RANK_FLAT_WINDOW));
    changes += rep->rank_flat_changed;
    if (rep->rank_flat_changed)
      entered = i;
    ck_assert(rep->rank_flat == (i + 1 >= HMMV_RANK_FLAT_ENTER));
    ck_assert(!rep->rank_reads);
  }
  ck_assert_uint_eq(changes, 1);
  ck_assert_uint_eq(entered, HMMV_RANK_FLAT_ENTER - 1);
  /* the figures the operator is shown: nearly every warm page written, nearly all warm */
  ck_assert_uint_ge(hmmv_test_vm_report(&report, 0)->rank_flat_percent, 99);
  ck_assert_uint_le(hmmv_test_vm_report(&report, 0)->rank_flat_percent, 100);
  ck_assert_uint_ge(hmmv_test_vm_report(&report, 0)->rank_warm_pages, VM_PAGES - 16);
  /* and what it means: the hot set was never found (seed 8: none of it on DRAM) */
  ck_assert_uint_lt(hot_on_dram(&bed), HOT_PAGES / 10);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* The same skew at 10,000 writes an interval: ~22% of the warm pages written in an interval
 * (seed 8: 2,021 of 9,288 at the end); never flat (the first workload interval may be, warm
 * pages being mostly those it wrote, and leaves the window after 10), and the ranking finds the
 * hot set: it is promoted. */
START_TEST(test_skewed_stays_ranked)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;
  const HmmvVmReport *rep = NULL;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 60; i++) {
    write_skewed(&bed, rand, SKEW_WRITES);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    ck_assert(!rep->rank_flat);
    ck_assert(!rep->rank_flat_changed);
    ck_assert_uint_le(rep->rank_flat_intervals, 1);
  }
  ck_assert_uint_eq(rep->rank_flat_intervals, 0);
  ck_assert_uint_eq(rep->rank_flat_percent, 0);
  ck_assert_uint_ge(hot_on_dram(&bed), HOT_PAGES * 9 / 10);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* Between the skew and the flat case (review 18): at 250,000 writes an interval ~82% of the
 * warm pages are written and the hot set is already lost (seed 8: 29 of 1,024 hot pages on DRAM
 * after 60 intervals): flat, reported once. At 150,000, ~65%: ranked, all of it promoted. */
START_TEST(test_mostly_written_enters_flat)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;
  const HmmvVmReport *rep = NULL;
  guint changes = 0;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 30; i++) {
    write_skewed(&bed, rand, 250000);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    changes += rep->rank_flat_changed;
  }
  ck_assert(rep->rank_flat);
  ck_assert_uint_eq(changes, 1);
  ck_assert_uint_ge(rep->rank_flat_percent, HMMV_RANK_FLAT_PERCENT);
  ck_assert_uint_lt(rep->rank_flat_percent, 90);
  ck_assert_uint_lt(hot_on_dram(&bed), HOT_PAGES / 2);
  hmmv_test_core_clear(&bed);
}
END_TEST

START_TEST(test_two_thirds_written_stays_ranked)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;
  const HmmvVmReport *rep = NULL;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 60; i++) {
    write_skewed(&bed, rand, 150000);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    ck_assert(!rep->rank_flat);
  }
  ck_assert_uint_ge(hot_on_dram(&bed), HOT_PAGES * 9 / 10);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* A read tracker (review 18): the skewed writes at 10,000 an interval plus a read set of 8,192
 * pages, larger than the budget, read in every interval (as DAMON's region-wide snapshot
 * reports a steady read set). Written pages rank above pages only read, so the hot set is
 * found; only written pages count, so the VM is not called flat. */
START_TEST(test_steady_reads_not_flat)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;
  const HmmvVmReport *rep = NULL;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 60; i++) {
    write_skewed(&bed, rand, SKEW_WRITES);
    for (guint64 page = 0; page < 8192; page++)
      hmmv_fake_tracker_queue_read(bed.trackers[0], page);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    ck_assert(!rep->rank_flat);
  }
  ck_assert(rep->rank_reads);
  ck_assert_uint_eq(rep->rank_flat_intervals, 0);
  ck_assert_uint_ge(hot_on_dram(&bed), HOT_PAGES * 9 / 10);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* Flat for 15 intervals, then skewed: it leaves the state once, in the interval that leaves
 * HMMV_RANK_FLAT_LEAVE flat ones in the window (the 5th skewed one), and the hot set is found
 * after. Entering and leaving are the only two changes. */
START_TEST(test_leaving_reported_once)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(17);
  HmmvTestCore bed;
  guint changes = 0;
  guint64 left = G_MAXUINT64;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 60; i++) {
    const HmmvVmReport *rep;

    write_skewed(&bed, rand, i < 15 ? FLAT_WRITES : SKEW_WRITES);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    changes += rep->rank_flat_changed;
    if (rep->rank_flat_changed && !rep->rank_flat)
      left = i;
  }
  ck_assert_uint_eq(changes, 2);
  ck_assert_uint_eq(left, 15 + HMMV_RANK_FLAT_WINDOW - HMMV_RANK_FLAT_LEAVE - 1);
  ck_assert(!hmmv_test_vm_report(&report, 0)->rank_flat);
  ck_assert_uint_ge(hot_on_dram(&bed), HOT_PAGES * 9 / 10);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* Every page written every interval, but DRAM for all of them: nothing needs ranking, not
 * flat. */
START_TEST(test_fits_in_budget_not_flat)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;

  setup(&bed, &report, 2 * VM_PAGES);
  for (guint i = 0; i < 20; i++) {
    const HmmvVmReport *rep;

    write_skewed(&bed, rand, FLAT_WRITES);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    ck_assert_uint_ge(rep->budget_pages, rep->written);
    ck_assert(!rep->rank_flat);
    ck_assert_uint_eq(rep->rank_flat_intervals, 0);
  }
  hmmv_test_core_clear(&bed);
}
END_TEST

/* Late harvests (the tracker's HMMV_ERROR_BUSY: nothing yet) are not sampled: with every
 * other harvest late, the window fills at half the rate and the VM enters the state at its
 * 8th flat sampled interval, the 15th after boot. */
START_TEST(test_late_harvests_not_sampled)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  HmmvTestCore bed;
  guint64 entered = G_MAXUINT64;

  setup(&bed, &report, POOL_PAGES);
  for (guint i = 0; i < 30; i++) {
    const HmmvVmReport *rep;
    gboolean late = i % 2 == 1;

    if (late)
      hmmv_fake_tracker_fail_next(bed.trackers[0], HMMV_ERROR_BUSY);
    else
      write_skewed(&bed, rand, FLAT_WRITES);
    hmmv_test_core_run(&bed, &report);
    rep = hmmv_test_vm_report(&report, 0);
    ck_assert(rep->harvest_late == late);
    ck_assert_uint_eq(rep->rank_window, MIN(i / 2 + 2, HMMV_RANK_FLAT_WINDOW));
    if (rep->rank_flat_changed)
      entered = i;
  }
  ck_assert_uint_eq(entered, 2 * (HMMV_RANK_FLAT_ENTER - 1));
  ck_assert(hmmv_test_vm_report(&report, 0)->rank_flat);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* A paused VM is outside the balance, nothing is ranked for it: its intervals are not
 * sampled (the window waits, the state is not entered); resumed, it enters the state at its
 * 8th flat sampled interval. */
START_TEST(test_paused_not_sampled)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(8);
  g_autoptr(GError) error = NULL;
  HmmvTestCore bed;
  guint64 entered = G_MAXUINT64;

  setup(&bed, &report, POOL_PAGES);
  ck_assert(hmmv_core_set_paused(bed.core, "vm0", TRUE, &error));
  for (guint i = 0; i < 20; i++) {
    write_skewed(&bed, rand, FLAT_WRITES);
    hmmv_test_core_run(&bed, &report);
    ck_assert(hmmv_test_vm_report(&report, 0)->paused);
    ck_assert(!hmmv_test_vm_report(&report, 0)->rank_flat);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->rank_window, 1);
  }
  ck_assert(hmmv_core_set_paused(bed.core, "vm0", FALSE, &error));
  for (guint i = 0; i < 20; i++) {
    write_skewed(&bed, rand, FLAT_WRITES);
    hmmv_test_core_run(&bed, &report);
    if (hmmv_test_vm_report(&report, 0)->rank_flat_changed)
      entered = i;
  }
  ck_assert_uint_eq(entered, HMMV_RANK_FLAT_ENTER - 1);
  hmmv_test_core_clear(&bed);
}
END_TEST

static Suite *
rank_suite(void)
{
  Suite *suite = suite_create("rank");
  TCase *tc = tcase_create("flat");

  tcase_add_test(tc, test_all_written_enters_flat);
  tcase_add_test(tc, test_skewed_stays_ranked);
  tcase_add_test(tc, test_mostly_written_enters_flat);
  tcase_add_test(tc, test_two_thirds_written_stays_ranked);
  tcase_add_test(tc, test_steady_reads_not_flat);
  tcase_add_test(tc, test_leaving_reported_once);
  tcase_add_test(tc, test_fits_in_budget_not_flat);
  tcase_add_test(tc, test_late_harvests_not_sampled);
  tcase_add_test(tc, test_paused_not_sampled);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(rank_suite());
}
