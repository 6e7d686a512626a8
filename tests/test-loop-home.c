/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pages that fell back come home (loop-home.c; issue 7, item 4): on the fake two-socket host
 * of test-nodes.c (DRAM nodes 0 and 1 with CPUs, slow nodes 2 and 3 beside them), vm0's hot
 * set is promoted to node 1 while its own DRAM node 0 is full, and vm1's demotions go to
 * node 2 while its own slow node 3 is; once the node has room they come home, paced by the
 * cap, the interval's batch and its deadline, found by an incremental scan.
 */
#include "core-private.h"
#include "two-socket.h"

#include <stdio.h>

static HmmvTestCore fx;

/* Every page of vm0's hot set is on node. */
static void
check_hot_on_node(const GArray *hot, int node)
{
  HmmvVm *vm0 = hmmv_core_get_vm(fx.core, 0);

  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)), node);
}

/* The bed of vm0's cases: the two-socket host (report initialized); vm0's hot set of 128
 * pages, demoted to its slow node 2 and then written again while DRAM node 0 is full (16
 * pages free, 64 kept for the host): promoted to node 1, the fallback. Returns the hot pages;
 * *used0 is what vm0 holds on node 0. */
static GArray *
hot_set_fallen_back(HmmvIntervalReport *report, guint64 *used0)
{
  GArray *hot;
  HmmvVm *vm0;

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(report);
  hot = two_socket_demoted_hot_set(&fx, report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  *used0 = hmmv_vm_get_node_pages(vm0, 0);
  two_socket_fill_node0(&fx);
  for (guint i = 0; i < 10; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, report);
    ck_assert_uint_eq(hmmv_test_vm_report(report, 0)->homed_dram, 0);   /* no room at home */
  }
  check_hot_on_node(hot, 1);
  ck_assert_uint_eq(hmmv_test_vm_report(report, 0)->away_dram, hot->len);
  return hot;
}

/* Pages that fell back come home (issue 7, item 4): vm0's hot set, promoted to node 1 while
 * node 0 was full, stays there while node 0's room is within the margin (1/16 of its
 * capacity: the hysteresis), and once node 0 has room beyond it comes home to node 0 within
 * the cap (24 pages an interval here), each page once: 128 pages brought home, none away,
 * and nothing more moves between the nodes in the 10 intervals after. Before: the pages
 * stayed on node 1 for good. */
START_TEST(test_fallen_back_brought_home)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) hot = NULL;
  HmmvParams params;
  HmmvVm *vm0;
  guint64 used0, homed = 0, intervals = 0, cap, margin_room;

  hot = hot_set_fallen_back(&report, &used0);
  vm0 = hmmv_core_get_vm(fx.core, 0);

  /* room on node 0 within the margin: free - reserve = capacity / 16, nothing comes home */
  margin_room = (used0 + used0 / 15) / 16;
  ck_assert(hmmv_topology_set_free(fx.topo, 0, (64 + margin_room) * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 10; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->homed_dram, 0);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->away_dram, hot->len);
  }

  /* room returns; a cap of 1 MB/s at 100 ms intervals: 24 pages an interval */
  params = *hmmv_core_get_params(fx.core);
  params.migrate_mbps = 1;
  params.interval_ms = 100;
  ck_assert(hmmv_core_set_params(fx.core, &params, &error));
  cap = hmmv_params_cap_pages(&params);
  ck_assert_uint_eq(cap, 24);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 30; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    homed += hmmv_test_vm_report(&report, 0)->homed_dram;
    intervals += hmmv_test_vm_report(&report, 0)->homed_dram > 0;
    ck_assert_uint_le(hmmv_test_vm_report(&report, 0)->moved_max_pages, cap);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->homed_slow, 0);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->homed_dram, 0);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->homed_slow, 0);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->promoted_fallback, 0);
  }
  ck_assert_uint_eq(homed, hot->len);             /* each page once */
  ck_assert_uint_ge(intervals, hot->len / cap);   /* paced by the cap */
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->away_dram, 0);
  check_hot_on_node(hot, 0);
  ck_assert_uint_eq(hmmv_vm_get_node_pages(vm0, 1), 0);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* Pages brought home count against the interval's batch at the mover's speed (loop-batch.c)
 * as the plan's moves do: no cap, the sim's 3,900 ns a page, 10 ms intervals and 1% of them
 * for moves: 25 pages an interval. The 128 hot pages come home at most 25 an interval, and
 * every interval's moves fit in 0.1 ms of the mover. Before, with no cap they all came home
 * in one interval whatever the mover's speed. */
START_TEST(test_brought_home_within_batch)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) hot = NULL;
  HmmvParams params;
  guint64 used0, homed = 0, intervals = 0;

  hot = hot_set_fallen_back(&report, &used0);
  params = *hmmv_core_get_params(fx.core);
  params.interval_ms = 10;
  params.move_share_percent = 1;
  ck_assert(hmmv_core_set_params(fx.core, &params, &error));
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 30; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    ck_assert_uint_eq(report.mover_ns_per_page, 3900);
    ck_assert_uint_eq(report.batch_pages, 25);
    ck_assert_uint_le(hmmv_test_vm_report(&report, 0)->homed_dram, 25);
    ck_assert_uint_le(report.moved_ns, 100000);
    homed += hmmv_test_vm_report(&report, 0)->homed_dram;
    intervals += hmmv_test_vm_report(&report, 0)->homed_dram > 0;
  }
  ck_assert_uint_eq(homed, hot->len);
  ck_assert_uint_ge(intervals, (hot->len + 24) / 25);
  check_hot_on_node(hot, 0);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* Pages brought home stop at the interval's deadline as the plan's moves do (loop-batch.c):
 * the 128 hot pages fit the batch at the learnt 3,900 ns a page (half of a 10 ms interval:
 * 1,282 pages), but the mover has turned 100 times slower; in calls of 16 pages (6.24 ms
 * each) the moves stop once they have used the interval (10 ms): 32 pages come home in that
 * interval, the rest in later ones. Before, the home moves were one mover call and never
 * looked at the deadline: all 128 in 50 ms. */
START_TEST(test_brought_home_within_deadline)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) hot = NULL;
  HmmvParams params;
  guint64 used0, homed = 0;

  hot = hot_set_fallen_back(&report, &used0);
  params = *hmmv_core_get_params(fx.core);
  params.interval_ms = 10;
  params.move_share_percent = 50;
  ck_assert(hmmv_core_set_params(fx.core, &params, &error));
  fx.mover->batch_pages = 16;
  hmmv_sim_mover_set_ns_per_page(fx.mover, 390000);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 30 && homed < hot->len; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    if (i == 0) {
      ck_assert_uint_eq(report.mover_ns_per_page, 3900);
      ck_assert_uint_eq(report.batch_pages, 1282);
      ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->homed_dram, 32);
    }
    ck_assert_uint_lt(report.moved_ns, 10000000 + 16 * 390000);
    homed += hmmv_test_vm_report(&report, 0)->homed_dram;
  }
  ck_assert_uint_eq(homed, hot->len);
  check_hot_on_node(hot, 0);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* Looking for pages to bring home is incremental (loop-home.c): vm0's 128 hot pages fell back
 * to node 1 and are pinned there (VFIO, say: every move fails); node 0 has room again, so
 * every interval looks for them, and some, as their backoff allows, are tried again. One full
 * scan of the VM's 1,024 pages (two passes) builds the list of its away pages; after it each
 * interval looks at those 128 only (3 visits each at most), counted in page visits. Before,
 * both passes went over all 1,024 pages every interval (2,048 visits). */
START_TEST(test_home_scan_incremental)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) hot = NULL;
  HmmvVm *vm0;
  guint64 used0, visits, tried = 0, scans = 0;

  hot = hot_set_fallen_back(&report, &used0);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  for (guint h = 0; h < hot->len; h++)
    ck_assert(hmmv_sim_mover_set_page_kind(fx.mover, vm0, g_array_index(hot, guint64, h), 1,
                                           HMMV_SIM_PAGE_PINNED, &error));
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  visits = fx.core->home_visits;
  for (guint i = 0; i < 30; i++) {
    guint64 now;

    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    now = fx.core->home_visits;
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->homed_dram, 0);
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->away_dram, hot->len);
    tried += hmmv_test_vm_report(&report, 0)->move_failed;
    if (now - visits > 3 * hot->len) {
      /* a full scan: both passes over the VM, then the list */
      ck_assert_uint_le(now - visits, 2 * VM_PAGES + 3 * hot->len);
      scans++;
    }
    visits = now;
  }
  printf("# 30 intervals: %" G_GUINT64_FORMAT " full scans, %" G_GUINT64_FORMAT " pinned "
         "pages tried again\n", scans, tried);
  ck_assert_uint_eq(scans, 1);
  ck_assert_uint_gt(tried, 0);   /* the list is what they are tried again from */
  hmmv_test_core_clear(&fx);
}
END_TEST

/* The same for the slow tier: vm1's demotions go to node 2 while its own slow node 3 is full
 * (another process filled it) and come home to node 3 once it has room. Before: they stayed
 * on node 2. */
START_TEST(test_fallen_back_slow_brought_home)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvVm *vm1;
  guint64 on2, demoted_fallback = 0, homed = 0;

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  vm1 = hmmv_core_get_vm(fx.core, 1);
  /* node 3 full: 16 pages free, 64 kept for the host */
  ck_assert(hmmv_topology_set_free(fx.topo, 3, 16 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 3, 0, 64, &error));
  hmmv_core_set_pool_pages(fx.core, VM_PAGES);
  for (guint v = 0; v < NR_VMS; v++)
    hmmv_test_core_write(&fx, v, 0, VM_PAGES);
  for (guint i = 0; i < 8; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      hmmv_test_core_write(&fx, v, 0, 128);
    hmmv_test_core_run(&fx, &report);
    demoted_fallback += hmmv_test_vm_report(&report, 1)->demoted_fallback;
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->homed_slow, 0);
  }
  on2 = hmmv_vm_get_node_pages(vm1, 2);
  ck_assert_uint_gt(on2, 0);
  ck_assert_uint_eq(demoted_fallback, on2);
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->away_slow, on2);
  ck_assert(hmmv_topology_set_free(fx.topo, 3, (guint64)SLOW_NODE_PAGES * HMMV_PAGE_SIZE,
                                   &error));
  for (guint i = 0; i < 8; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      hmmv_test_core_write(&fx, v, 0, 128);
    hmmv_test_core_run(&fx, &report);
    homed += hmmv_test_vm_report(&report, 1)->homed_slow;
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->homed_dram, 0);
  }
  ck_assert_uint_eq(homed, on2);
  ck_assert_uint_eq(hmmv_vm_get_node_pages(vm1, 2), 0);
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->away_slow, 0);
  hmmv_test_core_clear(&fx);
}
END_TEST

static Suite *
loop_home_suite(void)
{
  Suite *suite = suite_create("loop-home");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_fallen_back_brought_home);
  tcase_add_test(tc, test_brought_home_within_batch);
  tcase_add_test(tc, test_brought_home_within_deadline);
  tcase_add_test(tc, test_home_scan_incremental);
  tcase_add_test(tc, test_fallen_back_slow_brought_home);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(loop_home_suite());
}
