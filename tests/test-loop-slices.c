/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A VM the core takes with its pages already placed (libhmmv/loop-place.c): the core reads
 * where they are HMMV_CORE_ADD_SLICE_PAGES an interval, not all at once when the VM is added
 * (issue 7: ~5 s for 256 GiB on the thread that serves libvirt), and until it has read them
 * all the VM keeps what it holds and nothing of it moves. Sim mover, fake tracker, the real
 * core.
 */
#include "hmmv-test.h"

#include <string.h>

#define SLICE ((guint64)HMMV_CORE_ADD_SLICE_PAGES)
#define VM_PAGES (2 * SLICE + SLICE / 2)      /* 2.5 slices: read in 3 intervals */
#define DRAM_PAGES SLICE                      /* first touch fills DRAM, the rest goes slow */

/* Places every page of vm on the sim's nodes by a first touch, as the guest did before hmmv
 * came: DRAM_PAGES on node 0, the rest on node 1. */
static void
touch_all(HmmvMover *mover, HmmvVm *vm)
{
  HmmvAccess acc = { 0 };
  g_autofree guint64 *writes = NULL;

  acc.nr_pages = VM_PAGES;
  acc.nr_words = (VM_PAGES + 63) / 64;
  writes = g_new(guint64, acc.nr_words);
  memset(writes, 0xff, acc.nr_words * sizeof(guint64));
  acc.writes = writes;
  acc.intervals = 1;
  hmmv_mover_touch(mover, vm, &acc);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), DRAM_PAGES);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), VM_PAGES - DRAM_PAGES);
}

/* 2.5 slices of pages placed before the VM is added: the first interval reads one slice, the
 * second another, the third the rest (placement_unread counts down by exactly a slice);
 * pages written meanwhile in the read part and in the unread part are neither promoted nor
 * demoted until all is read; then the VM's DRAM and slow counts are the sim's, and the hot
 * pages on the slow node move up. */
START_TEST(test_placement_read_in_slices)
{
  g_autoptr(GError) error = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvTopology *topo = hmmv_test_topology_two_tier(DRAM_PAGES * HMMV_PAGE_SIZE,
                                                   VM_PAGES * 2 * HMMV_PAGE_SIZE);
  HmmvMover *mover = hmmv_sim_mover_new(topo, &error);
  HmmvParams params;
  HmmvCore *core;
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  HmmvVm *vm = hmmv_test_vm_new("vm0", VM_PAGES);
  const HmmvVmReport *rep = NULL;
  /* hot pages on the slow node (the first slice is all DRAM): in the second slice (read at
   * interval 2) and in the third (interval 3) */
  const guint64 hot_first = SLICE + 1000, hot_nr = 256, late_first = 2 * SLICE + 1000;
  guint64 promoted = 0, demoted = 0;

  ck_assert_msg(mover != NULL, "%s", error ? error->message : "");
  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  touch_all(mover, vm);
  ck_assert(hmmv_core_add_vm(core, vm, tracker, &error));

  for (guint i = 1; i <= 3; i++) {
    for (guint64 p = 0; p < hot_nr; p++) {
      hmmv_fake_tracker_queue_write(tracker, hot_first + p);
      hmmv_fake_tracker_queue_write(tracker, late_first + p);
    }
    ck_assert(hmmv_core_run_interval(core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    ck_assert_uint_eq(rep->placement_unread, i < 3 ? VM_PAGES - i * SLICE : 0);
    if (i < 3) {
      ck_assert_uint_eq(rep->promoted, 0);
      ck_assert_uint_eq(rep->demoted, 0);
    }
    promoted += rep->promoted;
    demoted += rep->demoted;
    /* the sim's nodes hold what they held: nothing moved behind the core's back */
    if (i < 3) {
      ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), DRAM_PAGES);
      ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), VM_PAGES - DRAM_PAGES);
    }
  }
  /* all read: the VM's record is the sim's placement, moves may start */
  ck_assert_uint_eq(rep->dram_pages + rep->slow_pages, VM_PAGES);
  for (guint i = 4; i <= 12; i++) {
    for (guint64 p = 0; p < hot_nr; p++) {
      hmmv_fake_tracker_queue_write(tracker, hot_first + p);
      hmmv_fake_tracker_queue_write(tracker, late_first + p);
    }
    ck_assert(hmmv_core_run_interval(core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    promoted += rep->promoted;
    demoted += rep->demoted;
  }
  /* the written pages found on the slow node in the later slices came up to DRAM */
  ck_assert_uint_ge(promoted, 2 * hot_nr);
  ck_assert_uint_eq(rep->dram_pages, hmmv_sim_mover_get_used_pages(mover, 0));
  ck_assert_uint_eq(rep->slow_pages, hmmv_sim_mover_get_used_pages(mover, 1));
  for (guint64 p = 0; p < hot_nr; p++) {
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, hot_first + p), 0);
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, late_first + p), 0);
  }
  /* DRAM was full: each promotion made room first */
  ck_assert_uint_ge(demoted, promoted);
  hmmv_core_free(core);
  hmmv_mover_free(mover);
  hmmv_topology_free(topo);
}
END_TEST

static Suite *
loop_slices_suite(void)
{
  Suite *suite = suite_create("loop-slices");
  TCase *tc = tcase_create("slices");

  /* 2.5M pages under valgrind take a while */
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_placement_read_in_slices);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(loop_slices_suite());
}
