/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The rolling placement rescan follows what it finds (libhmmv/loop-place.c, core.h's
 * HMMV_CORE_RESCAN_GAP_MAX): windows that find every page where the core's record has it
 * double the intervals to the next window, up to 8; a window that finds a page moved behind
 * the core's back brings it back to every interval. Counted in intervals and in the sim's
 * status queries (the move_pages(2) calls the numa mover would make), never in time. Sim
 * mover, fake tracker, the real core.
 *
 * Why (issue 8): in the testbed's tiering race the rescan's status queries were 18% of
 * hmmvd's CPU, and found nothing: with NUMA balancing and demotion off, only hmmvd moves
 * the VMs' pages, and it records its own moves from their statuses.
 */
#include "hmmv-test.h"

#include <string.h>

#define VM_PAGES 16384u                       /* 64 MiB: four 4096-page windows a pass */
#define WINDOW ((guint64)HMMV_CORE_RESCAN_MIN_PAGES)
#define PASS ((guint)(VM_PAGES / WINDOW))
#define DRAM_PAGES (VM_PAGES / 2)
#define QUIET 64u                             /* intervals with nothing moving */

typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvTracker *tracker;
  HmmvVm *vm;
  HmmvIntervalReport report;
} Bed;

/* A VM with all its pages placed by a first touch before the core takes it: DRAM_PAGES on
 * node 0, the rest on node 1; the first interval reads that placement whole. */
static void
bed_init(Bed *bed)
{
  g_autoptr(GError) error = NULL;
  HmmvAccess acc = { 0 };
  g_autofree guint64 *writes = NULL;
  HmmvParams params;

  memset(bed, 0, sizeof(*bed));
  bed->topo = hmmv_test_topology_two_tier(DRAM_PAGES * HMMV_PAGE_SIZE,
                                          VM_PAGES * 2 * HMMV_PAGE_SIZE);
  bed->mover = hmmv_sim_mover_new(bed->topo, &error);
  ck_assert_msg(bed->mover != NULL, "%s", error ? error->message : "");
  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  bed->core = hmmv_core_new(bed->topo, bed->mover, &params, 0, &error);
  ck_assert_msg(bed->core != NULL, "%s", error ? error->message : "");
  bed->tracker = hmmv_fake_tracker_new();
  bed->vm = hmmv_test_vm_new("vm0", VM_PAGES);
  acc.nr_pages = VM_PAGES;
  acc.nr_words = (VM_PAGES + 63) / 64;
  writes = g_new(guint64, acc.nr_words);
  memset(writes, 0xff, acc.nr_words * sizeof(guint64));
  acc.writes = writes;
  acc.intervals = 1;
  hmmv_mover_touch(bed->mover, bed->vm, &acc);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(bed->mover, 0), DRAM_PAGES);
  ck_assert(hmmv_core_add_vm(bed->core, bed->vm, bed->tracker, &error));
}

static void
bed_clear(Bed *bed)
{
  hmmv_interval_report_clear(&bed->report);
  hmmv_core_free(bed->core);
  hmmv_mover_free(bed->mover);
  hmmv_topology_free(bed->topo);
}

/* One interval; its report of the VM, checked for errors. */
static const HmmvVmReport *
bed_interval(Bed *bed)
{
  g_autoptr(GError) error = NULL;
  const HmmvVmReport *rep;

  ck_assert_msg(hmmv_core_run_interval(bed->core, &bed->report, &error), "%s",
                error ? error->message : "");
  rep = &g_array_index(bed->report.vms, HmmvVmReport, 0);
  ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
  return rep;
}

/* Nothing moves behind the core's back: after the first windows the rescan reads a window
 * every HMMV_CORE_RESCAN_GAP_MAX intervals, and the status queries are exactly its windows;
 * every page is still read again (the windows roll over the whole VM). */
START_TEST(test_rescan_slows_when_nothing_drifts)
{
  Bed bed;
  const HmmvVmReport *rep;
  guint windows = 0, windows_late = 0;
  guint64 queried0, rescanned = 0;

  bed_init(&bed);
  rep = bed_interval(&bed);            /* reads the placement whole */
  ck_assert_uint_eq(rep->placement_unread, 0);
  queried0 = hmmv_sim_mover_get_queried_pages(bed.mover);
  for (guint i = 0; i < QUIET; i++) {
    rep = bed_interval(&bed);
    ck_assert_uint_eq(rep->promoted + rep->demoted, 0);
    ck_assert_uint_eq(rep->rescan_drift, 0);
    ck_assert(rep->rescanned == 0 || rep->rescanned == WINDOW);
    ck_assert_uint_le(rep->rescan_gap, HMMV_CORE_RESCAN_GAP_MAX);
    if (rep->rescanned > 0) {
      windows++;
      windows_late += i >= QUIET / 2;
    }
    rescanned += rep->rescanned;
  }
  /* every interval before: QUIET windows; now the gap doubles 2, 4, 8 and stays at 8 */
  ck_assert_uint_le(windows, QUIET / HMMV_CORE_RESCAN_GAP_MAX + 3);
  ck_assert_uint_ge(windows, QUIET / HMMV_CORE_RESCAN_GAP_MAX);
  ck_assert_uint_eq(windows_late, QUIET / 2 / HMMV_CORE_RESCAN_GAP_MAX);
  ck_assert_uint_eq(rep->rescan_gap, HMMV_CORE_RESCAN_GAP_MAX);
  /* the status queries were the windows' and nothing else's (no access, no move) */
  ck_assert_uint_eq(hmmv_sim_mover_get_queried_pages(bed.mover) - queried0, rescanned);
  ck_assert_uint_eq(rescanned, windows * WINDOW);
  /* and the windows still went round the VM: more than a full pass */
  ck_assert_uint_ge(rescanned, VM_PAGES);
  bed_clear(&bed);
}
END_TEST

/* The kernel moves pages on its own after the rescan has slowed to its longest gap: the
 * window that covers them finds them within a pass at that gap, records where they are, and
 * the next window is read in the next interval; while every window finds drift, every
 * interval reads one. */
START_TEST(test_rescan_speeds_up_on_drift)
{
  g_autoptr(GError) error = NULL;
  Bed bed;
  const HmmvVmReport *rep;
  const guint64 moved_first = 100, moved_nr = 512;   /* DRAM pages (node 0) */
  guint found_after = 0, windows = 0;

  bed_init(&bed);
  for (guint i = 0; i <= QUIET; i++)
    rep = bed_interval(&bed);
  ck_assert_uint_eq(rep->rescan_gap, HMMV_CORE_RESCAN_GAP_MAX);
  ck_assert_int_eq(hmmv_vm_get_page_node(bed.vm, moved_first), 0);

  ck_assert(hmmv_sim_mover_kernel_move(bed.mover, bed.vm, moved_first, moved_nr, 1, &error));
  for (guint i = 1; i <= PASS * HMMV_CORE_RESCAN_GAP_MAX + 1 && found_after == 0; i++) {
    rep = bed_interval(&bed);
    if (rep->rescan_drift > 0) {
      found_after = i;
      ck_assert_uint_eq(rep->rescan_drift, moved_nr);
      ck_assert_uint_eq(rep->rescan_gap, 1);
    } else {
      ck_assert_int_eq(hmmv_vm_get_page_node(bed.vm, moved_first), 0);
    }
  }
  ck_assert_msg(found_after > 0, "the moved pages were not found within %u intervals",
                PASS * HMMV_CORE_RESCAN_GAP_MAX + 1);
  for (guint64 p = moved_first; p < moved_first + moved_nr; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(bed.vm, p), 1);
  /* the next interval reads the next window (which finds nothing: the gap doubles) */
  rep = bed_interval(&bed);
  ck_assert_uint_eq(rep->rescanned, WINDOW);
  ck_assert_uint_eq(rep->rescan_gap, 2);

  /* drift in every window: a page of each window moved every interval (the first two
   * windows are DRAM, the last two slow: as many pages go each way, so no node overfills);
   * from the first window that finds its page on, every interval reads a window, and each
   * finds drift */
  for (guint i = 0; i < 2 * PASS + 2; i++) {
    for (guint64 w = 0; w < PASS; w++) {
      guint64 page = w * WINDOW + 3000 + i;

      ck_assert_int_eq(hmmv_vm_get_page_node(bed.vm, page), w < PASS / 2 ? 0 : 1);
      ck_assert(hmmv_sim_mover_kernel_move(bed.mover, bed.vm, page, 1, w < PASS / 2 ? 1 : 0,
                                           &error));
    }
    rep = bed_interval(&bed);
    if (windows == 0 && rep->rescanned == 0) {
      ck_assert_uint_eq(i, 0);    /* the gap of 2 above */
      continue;
    }
    windows++;
    ck_assert_uint_eq(rep->rescanned, WINDOW);
    ck_assert_uint_ge(rep->rescan_drift, 1);
    ck_assert_uint_eq(rep->rescan_gap, 1);
  }
  ck_assert_uint_ge(windows, 2 * PASS + 1);
  bed_clear(&bed);
}
END_TEST

static Suite *
loop_rescan_suite(void)
{
  Suite *suite = suite_create("loop-rescan");
  TCase *tc = tcase_create("rescan");

  tcase_add_test(tc, test_rescan_slows_when_nothing_drifts);
  tcase_add_test(tc, test_rescan_speeds_up_on_drift);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(loop_rescan_suite());
}
