/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Several sockets (issue 7, item 4): the per-node pools, where each VM's pages go, and the
 * fallback when a node is full, on a fake two-socket Optane host: nodes 0 and 1 with CPUs and
 * DRAM, 2 and 3 CPU-less slow memory, node 2 on socket 0 and node 3 on socket 1 (SLIT 10 own
 * DRAM, 21 the other DRAM, 17 own slow node, 28 the other's). The real layout runs in the
 * testbed (hmmvd-2socket).
 *
 * Before: every promotion went to node 0 (the lowest-numbered DRAM node), every demotion to
 * node 2, and the pool was the total of the DRAM nodes whatever was free.
 */
#include "core-private.h"
#include "hmmv-test.h"
#include "nodes-private.h"

#include <string.h>

#define VM_PAGES 1024
#define DRAM_NODE_PAGES 2048
#define SLOW_NODE_PAGES 8192
#define NR_VMS 2

typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvTracker *trackers[NR_VMS];   /* borrowed: the core owns them */
} Fixture;

static Fixture fx;

static HmmvTopology *
two_socket_topology(void)
{
  static const guint dist[4][4] = {
    { 10, 21, 17, 28 }, { 21, 10, 28, 17 }, { 17, 28, 10, 28 }, { 28, 17, 28, 10 },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();

  for (int id = 0; id < 4; id++) {
    gboolean dram = id < 2;

    ck_assert(hmmv_topology_add_node(topo, id,
                                     (guint64)(dram ? DRAM_NODE_PAGES : SLOW_NODE_PAGES)
                                       * HMMV_PAGE_SIZE, dram ? 4 : 0,
                                     dram ? HMMV_TIER_DRAM : HMMV_TIER_SLOW, &error));
  }
  ck_assert(hmmv_topology_set_cpus(topo, 0, "0-3", &error));
  ck_assert(hmmv_topology_set_cpus(topo, 1, "4-7", &error));
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      ck_assert(hmmv_topology_set_distance(topo, a, b, dist[a][b], &error));
  return g_steal_pointer(&topo);
}

/* vm i runs on socket i (cpu_node i), or nowhere known when cpu_nodes is FALSE. */
static void
setup(guint64 pool_pages, gboolean cpu_nodes)
{
  g_autoptr(GError) error = NULL;
  HmmvParams params;

  memset(&fx, 0, sizeof(fx));
  fx.topo = two_socket_topology();
  fx.mover = hmmv_sim_mover_new(fx.topo, &error);
  ck_assert_msg(fx.mover != NULL, "%s", error ? error->message : "");
  hmmv_params_init(&params);
  params.migrate_mbps = 0;  /* no cap: placement, not pacing */
  fx.core = hmmv_core_new(fx.topo, fx.mover, &params, pool_pages, &error);
  ck_assert_msg(fx.core != NULL, "%s", error ? error->message : "");
  for (guint i = 0; i < NR_VMS; i++) {
    g_autofree char *name = g_strdup_printf("vm%u", i);
    HmmvVm *vm = hmmv_test_vm_new(name, VM_PAGES);

    if (cpu_nodes)
      hmmv_vm_set_cpu_node(vm, (int)i);
    fx.trackers[i] = hmmv_fake_tracker_new();
    ck_assert(hmmv_core_add_vm(fx.core, vm, fx.trackers[i], &error));
  }
}

static void
teardown(void)
{
  hmmv_core_free(fx.core);
  hmmv_mover_free(fx.mover);
  hmmv_topology_free(fx.topo);
}

static void
write_range(guint vm, guint64 first, guint64 nr)
{
  for (guint64 p = first; p < first + nr; p++)
    hmmv_fake_tracker_queue_write(fx.trackers[vm], p);
}

static void
run(HmmvIntervalReport *report)
{
  g_autoptr(GError) error = NULL;

  ck_assert(hmmv_core_run_interval(fx.core, report, &error));
  for (guint i = 0; i < report->vms->len; i++) {
    const HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
  }
}

static const HmmvVmReport *
vm_report(const HmmvIntervalReport *report, guint vm)
{
  return &g_array_index(report->vms, HmmvVmReport, vm);
}

/* Every present page of vm on one of the two nodes; returns the count on each. */
static void
assert_only_on(guint vm_index, int dram, int slow, guint64 *on_dram, guint64 *on_slow)
{
  HmmvVm *vm = hmmv_core_get_vm(fx.core, vm_index);

  *on_dram = *on_slow = 0;
  for (guint64 p = 0; p < VM_PAGES; p++) {
    int node = hmmv_vm_get_page_node(vm, p);

    ck_assert_msg(node < 0 || node == dram || node == slow,
                  "vm%u page %" G_GUINT64_FORMAT " on node %d, want %d or %d", vm_index, p,
                  node, dram, slow);
    *on_dram += node == dram;
    *on_slow += node == slow;
  }
}

/* Each VM's cold pages go to its own socket's slow node and its hot pages back to its own
 * socket's DRAM, in both directions, each VM held to half its pages on DRAM. Before: vm1's
 * demotions went to node 2 and its promotions to node 0. */
START_TEST(test_own_socket)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  guint64 promoted[NR_VMS] = { 0 }, demoted[NR_VMS] = { 0 };

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .max_pages = VM_PAGES / 2, .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
  }
  for (guint v = 0; v < NR_VMS; v++)
    write_range(v, 0, VM_PAGES);    /* first touch: on its own socket's DRAM */
  run(&report);
  for (guint v = 0; v < NR_VMS; v++) {
    guint64 d, s;

    assert_only_on(v, (int)v, (int)v + 2, &d, &s);
    ck_assert_uint_eq(d + s, VM_PAGES);
    ck_assert_int_eq(vm_report(&report, v)->dram_node, (int)v);
    ck_assert_int_eq(vm_report(&report, v)->slow_node, (int)v + 2);
  }
  /* hot pages 0..255, then 768..1023: the second set was demoted meanwhile */
  for (guint i = 0; i < 40; i++) {
    for (guint v = 0; v < NR_VMS; v++) {
      write_range(v, i < 20 ? 0 : 768, 256);
    }
    run(&report);
    for (guint v = 0; v < NR_VMS; v++) {
      promoted[v] += vm_report(&report, v)->promoted;
      demoted[v] += vm_report(&report, v)->demoted;
      ck_assert_uint_eq(vm_report(&report, v)->promoted_fallback, 0);
      ck_assert_uint_eq(vm_report(&report, v)->demoted_fallback, 0);
    }
    ck_assert_ptr_null(report.fallback_note);
  }
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvVm *vm = hmmv_core_get_vm(fx.core, v);
    guint64 d, s;

    assert_only_on(v, (int)v, (int)v + 2, &d, &s);
    ck_assert_uint_ge(demoted[v], 256);   /* and 512 in the first interval */
    ck_assert_uint_ge(promoted[v], 128);
    for (guint64 p = 768; p < VM_PAGES; p++)
      ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), (int)v);
  }
  teardown();
}
END_TEST

/* Another process fills node 0: its free memory falls under the reserve. The pool shrinks by
 * what node 0 lacks, vm0's promotions go to node 1 (the next nearest DRAM node) and are
 * reported, its demotions still go to node 2. Before: the pool stayed the total of the DRAM
 * nodes and every promotion went to node 0. */
START_TEST(test_full_node_falls_back)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) hot = g_array_new(FALSE, FALSE, sizeof(guint64));
  HmmvNodePool pools[4];
  guint64 used0, fallback = 0, on_node1 = 0, pool_before;
  HmmvVm *vm0;

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core), 2 * DRAM_NODE_PAGES);
  hmmv_core_set_pool_pages(fx.core, VM_PAGES);   /* two VMs of VM_PAGES */
  for (guint v = 0; v < NR_VMS; v++)
    write_range(v, 0, VM_PAGES);
  run(&report);
  for (guint i = 0; i < 12; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, 0, 128);
    run(&report);
  }
  vm0 = hmmv_core_get_vm(fx.core, 0);
  for (guint64 p = 0; p < VM_PAGES && hot->len < 128; p++)
    if (hmmv_vm_get_page_node(vm0, p) == 2)
      g_array_append_val(hot, p);
  ck_assert_uint_eq(hot->len, 128);   /* demoted to its own slow node */

  /* node 0: 16 pages free, 64 kept for the host */
  hmmv_core_set_pool_pages(fx.core, 0);
  pool_before = hmmv_core_get_pool_pages(fx.core);
  used0 = hmmv_vm_get_node_pages(vm0, 0);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 16 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 0, 0, 64, &error));
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core),
                    pool_before - DRAM_NODE_PAGES + used0 - 48);
  ck_assert_uint_eq(hmmv_core_get_node_pools(fx.core, pools, 4), 4);
  ck_assert_uint_eq(pools[0].capacity_pages, used0 - 48);
  ck_assert_uint_eq(pools[0].used_pages, used0);
  ck_assert_uint_eq(pools[0].reserve_pages, 64);
  ck_assert_uint_eq(pools[1].capacity_pages, DRAM_NODE_PAGES);

  /* vm0's hot set moves to pages on node 2: promoted to node 1 */
  for (guint i = 0; i < 20; i++) {
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    fallback += vm_report(&report, 0)->promoted_fallback;
    if (vm_report(&report, 0)->promoted_fallback > 0) {
      ck_assert_ptr_nonnull(report.fallback_note);
      ck_assert_msg(strstr(report.fallback_note, "vm vm0: DRAM node 0 full, promoted to node 1")
                    != NULL, "%s", report.fallback_note);
    }
    ck_assert_uint_eq(vm_report(&report, 1)->promoted_fallback, 0);
    ck_assert_int_eq(vm_report(&report, 0)->dram_node, 0);
    ck_assert_uint_le(hmmv_vm_get_node_pages(vm0, 0), used0);
  }
  for (guint h = 0; h < hot->len; h++)
    on_node1 += hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)) == 1;
  ck_assert_uint_eq(on_node1, hot->len);
  ck_assert_uint_ge(fallback, hot->len);
  for (guint64 p = 0; p < VM_PAGES; p++)
    ck_assert_int_ne(hmmv_vm_get_page_node(vm0, p), 3);
  hmmv_core_get_node_pools(fx.core, pools, 4);
  ck_assert_uint_eq(pools[1].fallback_in_pages, fallback);
  ck_assert_uint_eq(pools[0].fallback_in_pages, 0);
  teardown();
}
END_TEST

/* vm0's hot set of 128 pages, demoted to its slow node 2 and then written again while DRAM
 * node 0 is full (16 pages free, 64 kept for the host): promoted to node 1, the fallback.
 * Returns the hot pages; *used0 is what vm0 holds on node 0. */
static GArray *
hot_set_fallen_back(HmmvIntervalReport *report, guint64 *used0)
{
  g_autoptr(GError) error = NULL;
  GArray *hot = g_array_new(FALSE, FALSE, sizeof(guint64));
  HmmvVm *vm0 = hmmv_core_get_vm(fx.core, 0);

  hmmv_core_set_pool_pages(fx.core, VM_PAGES);
  for (guint v = 0; v < NR_VMS; v++)
    write_range(v, 0, VM_PAGES);
  run(report);
  for (guint i = 0; i < 12; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, 0, 128);
    run(report);
  }
  for (guint64 p = 0; p < VM_PAGES && hot->len < 128; p++)
    if (hmmv_vm_get_page_node(vm0, p) == 2)
      g_array_append_val(hot, p);
  ck_assert_uint_eq(hot->len, 128);
  hmmv_core_set_pool_pages(fx.core, 0);
  *used0 = hmmv_vm_get_node_pages(vm0, 0);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 16 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 0, 0, 64, &error));
  for (guint i = 0; i < 10; i++) {
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(report);
    ck_assert_uint_eq(vm_report(report, 0)->homed_dram, 0);   /* no room at home */
  }
  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)), 1);
  ck_assert_uint_eq(vm_report(report, 0)->away_dram, hot->len);
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

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  hot = hot_set_fallen_back(&report, &used0);

  /* room on node 0 within the margin: free - reserve = capacity / 16, nothing comes home */
  margin_room = (used0 + used0 / 15) / 16;
  ck_assert(hmmv_topology_set_free(fx.topo, 0, (64 + margin_room) * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 10; i++) {
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    ck_assert_uint_eq(vm_report(&report, 0)->homed_dram, 0);
    ck_assert_uint_eq(vm_report(&report, 0)->away_dram, hot->len);
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
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    homed += vm_report(&report, 0)->homed_dram;
    intervals += vm_report(&report, 0)->homed_dram > 0;
    ck_assert_uint_le(vm_report(&report, 0)->moved_max_pages, cap);
    ck_assert_uint_eq(vm_report(&report, 0)->homed_slow, 0);
    ck_assert_uint_eq(vm_report(&report, 1)->homed_dram + vm_report(&report, 1)->homed_slow, 0);
    ck_assert_uint_eq(vm_report(&report, 0)->promoted_fallback, 0);
  }
  ck_assert_uint_eq(homed, hot->len);             /* each page once */
  ck_assert_uint_ge(intervals, hot->len / cap);   /* paced by the cap */
  ck_assert_uint_eq(vm_report(&report, 0)->away_dram, 0);
  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)), 0);
  ck_assert_uint_eq(hmmv_vm_get_node_pages(vm0, 1), 0);
  teardown();
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
  HmmvVm *vm0;
  guint64 used0, homed = 0, intervals = 0;

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  hot = hot_set_fallen_back(&report, &used0);
  params = *hmmv_core_get_params(fx.core);
  params.interval_ms = 10;
  params.move_share_percent = 1;
  ck_assert(hmmv_core_set_params(fx.core, &params, &error));
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 30; i++) {
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    ck_assert_uint_eq(report.mover_ns_per_page, 3900);
    ck_assert_uint_eq(report.batch_pages, 25);
    ck_assert_uint_le(vm_report(&report, 0)->homed_dram, 25);
    ck_assert_uint_le(report.moved_ns, 100000);
    homed += vm_report(&report, 0)->homed_dram;
    intervals += vm_report(&report, 0)->homed_dram > 0;
  }
  ck_assert_uint_eq(homed, hot->len);
  ck_assert_uint_ge(intervals, (hot->len + 24) / 25);
  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)), 0);
  teardown();
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

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  hot = hot_set_fallen_back(&report, &used0);
  params = *hmmv_core_get_params(fx.core);
  params.interval_ms = 10;
  params.move_share_percent = 50;
  ck_assert(hmmv_core_set_params(fx.core, &params, &error));
  fx.mover->batch_pages = 16;
  hmmv_sim_mover_set_ns_per_page(fx.mover, 390000);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  for (guint i = 0; i < 30 && homed < hot->len; i++) {
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    if (i == 0) {
      ck_assert_uint_eq(report.mover_ns_per_page, 3900);
      ck_assert_uint_eq(report.batch_pages, 1282);
      ck_assert_uint_eq(vm_report(&report, 0)->homed_dram, 32);
    }
    ck_assert_uint_lt(report.moved_ns, 10000000 + 16 * 390000);
    homed += vm_report(&report, 0)->homed_dram;
  }
  ck_assert_uint_eq(homed, hot->len);
  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(hmmv_core_get_vm(fx.core, 0),
                                           g_array_index(hot, guint64, h)), 0);
  teardown();
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

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  hot = hot_set_fallen_back(&report, &used0);
  for (guint h = 0; h < hot->len; h++)
    ck_assert(hmmv_sim_mover_set_page_kind(fx.mover, vm0, g_array_index(hot, guint64, h), 1,
                                           HMMV_SIM_PAGE_PINNED, &error));
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  visits = fx.core->home_visits;
  for (guint i = 0; i < 30; i++) {
    guint64 now;

    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    now = fx.core->home_visits;
    ck_assert_uint_eq(vm_report(&report, 0)->homed_dram, 0);
    ck_assert_uint_eq(vm_report(&report, 0)->away_dram, hot->len);
    tried += vm_report(&report, 0)->move_failed;
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
  teardown();
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

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  vm1 = hmmv_core_get_vm(fx.core, 1);
  /* node 3 full: 16 pages free, 64 kept for the host */
  ck_assert(hmmv_topology_set_free(fx.topo, 3, 16 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 3, 0, 64, &error));
  hmmv_core_set_pool_pages(fx.core, VM_PAGES);
  for (guint v = 0; v < NR_VMS; v++)
    write_range(v, 0, VM_PAGES);
  for (guint i = 0; i < 8; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, 0, 128);
    run(&report);
    demoted_fallback += vm_report(&report, 1)->demoted_fallback;
    ck_assert_uint_eq(vm_report(&report, 1)->homed_slow, 0);
  }
  on2 = hmmv_vm_get_node_pages(vm1, 2);
  ck_assert_uint_gt(on2, 0);
  ck_assert_uint_eq(demoted_fallback, on2);
  ck_assert_uint_eq(vm_report(&report, 1)->away_slow, on2);
  ck_assert(hmmv_topology_set_free(fx.topo, 3, (guint64)SLOW_NODE_PAGES * HMMV_PAGE_SIZE,
                                   &error));
  for (guint i = 0; i < 8; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, 0, 128);
    run(&report);
    homed += vm_report(&report, 1)->homed_slow;
    ck_assert_uint_eq(vm_report(&report, 1)->homed_dram, 0);
  }
  ck_assert_uint_eq(homed, on2);
  ck_assert_uint_eq(hmmv_vm_get_node_pages(vm1, 2), 0);
  ck_assert_uint_eq(vm_report(&report, 1)->away_slow, 0);
  teardown();
}
END_TEST

/* Nodes 0 and 1 give the VMs 512 pages each; both VMs' 1024 pages are hot every interval. */
static void
run_all_hot(HmmvIntervalReport *report, guint intervals, guint64 *fallback)
{
  for (guint i = 0; i < intervals; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, 0, VM_PAGES);
    run(report);
    for (guint v = 0; v < NR_VMS; v++)
      fallback[v] += vm_report(report, v)->promoted_fallback;
  }
}

/* Budgets per DRAM node (issue 7, item 4): vm0 (weight 300) on socket 0 and vm1 (weight 100)
 * on socket 1, both all hot, each node giving 512 pages: each VM gets its own node's 512 and
 * nothing falls back. Before: the pool was lent host-wide, vm0 got 768 (3:1) and 256 of
 * them were promoted to node 1, where vm1 then had 256. */
START_TEST(test_budget_from_own_node)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  guint64 fallback[NR_VMS] = { 0 };

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .weight = v == 0 ? 300 : 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
    ck_assert(hmmv_core_set_node_pool(fx.core, (int)v, VM_PAGES / 2, 0, &error));
  }
  run_all_hot(&report, 12, fallback);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvVm *vm = hmmv_core_get_vm(fx.core, v);

    ck_assert_uint_eq(vm_report(&report, v)->budget_pages, VM_PAGES / 2);
    ck_assert_uint_eq(hmmv_vm_get_node_pages(vm, (int)v), VM_PAGES / 2);
    ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), VM_PAGES / 2);
    ck_assert_uint_eq(fallback[v], 0);
  }
  teardown();
}
END_TEST

/* A min its own node cannot hold comes from the other node: vm0's min of 768 pages is node
 * 0's 512 and 256 of node 1, and vm1, nearest node 1, gets the 256 left of it. Before: the 256 pages beyond the mins were lent host-wide by
 * weight, 128 each: vm0 896, vm1 128. */
START_TEST(test_min_from_next_node)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  guint64 fallback[NR_VMS] = { 0 };
  HmmvVm *vm0;

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .min_pages = v == 0 ? 768 : 0, .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
    ck_assert(hmmv_core_set_node_pool(fx.core, (int)v, VM_PAGES / 2, 0, &error));
  }
  run_all_hot(&report, 12, fallback);
  ck_assert_uint_eq(vm_report(&report, 0)->budget_pages, 768);
  ck_assert_uint_eq(vm_report(&report, 0)->min_granted_pages, 768);
  ck_assert_uint_eq(vm_report(&report, 1)->budget_pages, 256);
  /* (its first touches all landed on node 0, which keeps them: a node over its pool takes
   * nothing more but is not emptied) */
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm0), 768);
  ck_assert_uint_eq(hmmv_vm_get_node_pages(hmmv_core_get_vm(fx.core, 1), 1), 256);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(hmmv_core_get_vm(fx.core, 1)), 256);
  ck_assert_uint_eq(fallback[1], 0);
  teardown();
}
END_TEST

/* The pools the balance shares per DRAM node: a limited pool split in proportion to the
 * nodes' capacities, and DRAM held by VMs outside the balance taken from its node, the excess
 * from the nearest other node. */
START_TEST(test_dram_pools)
{
  HmmvNodeState nodes[HMMV_NR_NODE_SLOTS] = { 0 };
  guint64 outside[HMMV_NR_NODE_SLOTS] = { 0 }, pools[HMMV_NR_NODE_SLOTS];
  int ids[HMMV_NR_NODE_SLOTS];
  HmmvNodeRequest dram = { .rank = { 1, 0 }, .nr_rank = 2 };
  guint ranks[2];

  fx.topo = two_socket_topology();
  nodes[0].capacity_pages = 2048;
  nodes[1].capacity_pages = 1024;
  nodes[2].capacity_pages = 8192;
  ck_assert_uint_eq(hmmv_nodes_dram_pools(fx.topo, nodes, 3072, outside, ids, pools), 2);
  ck_assert_int_eq(ids[0], 0);
  ck_assert_int_eq(ids[1], 1);
  ck_assert_uint_eq(pools[0], 2048);
  ck_assert_uint_eq(pools[1], 1024);
  ck_assert_uint_eq(hmmv_nodes_dram_pools(fx.topo, nodes, 1001, outside, ids, pools), 2);
  ck_assert_uint_eq(pools[0], 668);   /* 667.3 + the page rounding left */
  ck_assert_uint_eq(pools[1], 333);
  outside[1] = 400;
  outside[2] = 5000;                  /* slow: not the DRAM pools' */
  hmmv_nodes_dram_pools(fx.topo, nodes, 1001, outside, ids, pools);
  ck_assert_uint_eq(pools[0], 601);
  ck_assert_uint_eq(pools[1], 0);
  hmmv_nodes_pool_ranks(&dram, ids, 2, ranks);
  ck_assert_uint_eq(ranks[0], 1);
  ck_assert_uint_eq(ranks[1], 0);
  dram.nr_rank = 1;                   /* bound to node 1 */
  hmmv_nodes_pool_ranks(&dram, ids, 2, ranks);
  ck_assert_uint_eq(ranks[1], G_MAXUINT);
  hmmv_topology_free(fx.topo);
}
END_TEST

/* A VM bound to nodes (strict numatune: its QEMU's cpuset.mems), in the core and in the sim's
 * modelled kernel, which refuses a move to any other node with EACCES for the whole call. */
static void
bind_vm(guint vm_index, guint32 mask)
{
  g_autoptr(GError) error = NULL;
  HmmvVm *vm = hmmv_core_get_vm(fx.core, vm_index);

  hmmv_vm_set_allowed_nodes(vm, mask);
  ck_assert(hmmv_sim_mover_set_allowed_nodes(fx.mover, vm, mask, &error));
}

/* Strict numatune (issue 7, sockets): vm0's cpuset holds nodes 0 and 2 only. With node 0
 * full its promotions must wait, never fall back to node 1 (the kernel refuses a node
 * outside cpuset.mems with EACCES: the sim fails the call, run() asserts no VM error).
 * Before: vm0's 128 hot pages went to node 1 (the sim without cpusets), a failed call every
 * interval (with them). */
START_TEST(test_strict_numatune_never_falls_back)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) hot = g_array_new(FALSE, FALSE, sizeof(guint64));
  guint64 fallback = 0, on_dram, on_slow;
  HmmvVm *vm0;

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  bind_vm(0, (1u << 0) | (1u << 2));
  hmmv_core_set_pool_pages(fx.core, VM_PAGES);
  for (guint v = 0; v < NR_VMS; v++)
    write_range(v, 0, VM_PAGES);
  run(&report);
  for (guint i = 0; i < 12; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, 0, 128);
    run(&report);
  }
  for (guint64 p = 0; p < VM_PAGES && hot->len < 128; p++)
    if (hmmv_vm_get_page_node(vm0, p) == 2)
      g_array_append_val(hot, p);
  ck_assert_uint_eq(hot->len, 128);
  /* node 0 full: 16 pages free, 64 kept for the host */
  hmmv_core_set_pool_pages(fx.core, 0);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 16 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 0, 0, 64, &error));
  for (guint i = 0; i < 20; i++) {
    for (guint h = 0; h < hot->len; h++)
      hmmv_fake_tracker_queue_write(fx.trackers[0], g_array_index(hot, guint64, h));
    run(&report);
    fallback += vm_report(&report, 0)->promoted_fallback;
    ck_assert_uint_eq(vm_report(&report, 0)->move_failed, 0);
  }
  ck_assert_uint_eq(fallback, 0);
  assert_only_on(0, 0, 2, &on_dram, &on_slow);
  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)), 2);
  ck_assert_ptr_null(vm_report(&report, 0)->left_alone);
  teardown();
}
END_TEST

/* vm0's vCPUs run on socket 0 but its memory is bound to socket 1's nodes (numatune strict
 * nodeset 1,3): its pages are first touched there, promoted to node 1 and demoted to node 3,
 * never to nodes 0 or 2. Before: promotions went to node 0 (nearest its vCPUs), refused by
 * the kernel (the sim: EACCES, an error every interval). */
START_TEST(test_strict_other_socket)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  guint64 promoted = 0, demoted = 0, on_dram, on_slow;

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  bind_vm(0, (1u << 1) | (1u << 3));
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .max_pages = VM_PAGES / 2, .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
    write_range(v, 0, VM_PAGES);
  }
  run(&report);
  ck_assert_int_eq(vm_report(&report, 0)->dram_node, 1);
  ck_assert_int_eq(vm_report(&report, 0)->slow_node, 3);
  ck_assert_ptr_null(vm_report(&report, 0)->left_alone);
  for (guint i = 0; i < 40; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, i < 20 ? 0 : 768, 256);
    run(&report);
    promoted += vm_report(&report, 0)->promoted;
    demoted += vm_report(&report, 0)->demoted;
    ck_assert_uint_eq(vm_report(&report, 0)->move_failed, 0);
  }
  ck_assert_uint_ge(demoted, 256);
  ck_assert_uint_ge(promoted, 128);
  assert_only_on(0, 1, 3, &on_dram, &on_slow);
  ck_assert_uint_eq(on_dram + on_slow, VM_PAGES);
  assert_only_on(1, 1, 3, &on_dram, &on_slow);   /* vm1, unbound, on its own socket */
  teardown();
}
END_TEST

/* vm0 bound to DRAM node 0 alone (numatune strict nodeset 0): hmmv has no slow node to demote
 * it to, so it is left alone, reported (left_alone), outside the balance: nothing of it moves
 * and it keeps its DRAM, while vm1 is still managed. Before: its demotions went to node 2,
 * refused by the kernel (the sim: EACCES, an error every interval). */
START_TEST(test_strict_without_slow_node_left_alone)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  guint64 on_dram, on_slow, vm1_moved = 0;

  setup(0, TRUE);
  hmmv_interval_report_init(&report);
  bind_vm(0, 1u << 0);
  hmmv_core_set_pool_pages(fx.core, 2 * VM_PAGES - 256);
  for (guint v = 0; v < NR_VMS; v++)
    write_range(v, 0, VM_PAGES);
  for (guint i = 0; i < 20; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      write_range(v, i < 10 ? 0 : 768, 256);
    run(&report);
    ck_assert_str_eq(vm_report(&report, 0)->left_alone, "its allowed nodes hold no slow node");
    ck_assert_uint_eq(vm_report(&report, 0)->promoted + vm_report(&report, 0)->demoted, 0);
    ck_assert_uint_eq(vm_report(&report, 0)->move_failed, 0);
    ck_assert_ptr_null(vm_report(&report, 1)->left_alone);
    vm1_moved += vm_report(&report, 1)->promoted + vm_report(&report, 1)->demoted;
  }
  assert_only_on(0, 0, 2, &on_dram, &on_slow);
  ck_assert_uint_eq(on_dram, VM_PAGES);
  ck_assert_uint_eq(on_slow, 0);
  ck_assert_uint_gt(vm1_moved, 0);
  /* what vm0 holds is taken from the pool: vm1 fits in the rest (it would keep all its
   * VM_PAGES in a pool of 2 * VM_PAGES - 256 otherwise) */
  ck_assert_uint_le(hmmv_vm_get_dram_pages(hmmv_core_get_vm(fx.core, 1)), VM_PAGES - 256);
  teardown();
}
END_TEST

/* A node's pool: its free memory less the reserve plus what the VMs hold, at most the node,
 * at most the configured size; the DRAM pool is the DRAM nodes' sum, at most the limit. */
START_TEST(test_pool_from_free_memory)
{
  g_autoptr(GError) error = NULL;
  HmmvNodePool pools[4];

  setup(0, TRUE);
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core), 2 * DRAM_NODE_PAGES);
  ck_assert(hmmv_topology_set_free(fx.topo, 0, 1000 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_topology_set_free(fx.topo, 1, 300 * HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 0, 0, 100, &error));
  ck_assert(hmmv_core_set_node_pool(fx.core, 1, 0, 400, &error));
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core), 900);   /* 900 + 0 */
  ck_assert(hmmv_core_set_node_pool(fx.core, 0, 500, 100, &error));
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core), 500);
  hmmv_core_set_pool_pages(fx.core, 200);
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core), 200);
  hmmv_core_get_node_pools(fx.core, pools, 4);
  ck_assert_int_eq(pools[1].id, 1);
  ck_assert_uint_eq(pools[1].capacity_pages, 0);
  ck_assert_uint_eq(pools[0].configured_pages, 500);
  ck_assert_uint_eq(pools[0].free_pages, 1000);
  ck_assert_uint_eq(pools[2].capacity_pages, SLOW_NODE_PAGES);
  ck_assert(!hmmv_core_set_node_pool(fx.core, 7, 1, 0, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "node 7"));
  teardown();
}
END_TEST

/* VMs wanting one node share its room in proportion; the rest goes to their next node. */
START_TEST(test_assign_shares_room)
{
  HmmvNodeState nodes[HMMV_NR_NODE_SLOTS] = { 0 };
  HmmvNodeRequest reqs[3] = { 0 };
  gint64 room[HMMV_NR_NODE_SLOTS] = { 0 };

  room[0] = 101;
  room[1] = 30;
  reqs[0] = (HmmvNodeRequest){ .want = 150, .rank = { 0, 1 }, .nr_rank = 2 };
  reqs[1] = (HmmvNodeRequest){ .want = 50, .rank = { 0, 1 }, .nr_rank = 2 };
  reqs[2] = (HmmvNodeRequest){ .want = 20, .rank = { 1, 0 }, .nr_rank = 2 };
  hmmv_nodes_assign(reqs, 3, room, nodes);
  ck_assert_uint_eq(reqs[0].granted[0], 76);    /* 75.75 -> 75, + 1 of the left-over page */
  ck_assert_uint_eq(reqs[1].granted[0], 25);
  ck_assert_uint_eq(reqs[2].granted[0], 20);    /* its own node 1 first */
  ck_assert_uint_eq(reqs[0].granted[1] + reqs[1].granted[1], 10);
  ck_assert_uint_eq(reqs[2].granted[1], 0);
  ck_assert_int_eq(room[0], 0);
  ck_assert_int_eq(room[1], 0);
  ck_assert(nodes[0].full && nodes[1].full);
  ck_assert(!nodes[2].full);
}
END_TEST

/* Without a known vCPU node a VM's pages go where most of them are: vm placed on socket 1
 * by first touch is promoted to node 1 and demoted to node 3. */
START_TEST(test_unknown_cpus_follow_the_pages)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvVm *vm1;
  guint64 d, s;

  setup(VM_PAGES, FALSE);
  hmmv_interval_report_init(&report);
  vm1 = hmmv_core_get_vm(fx.core, 1);
  /* its first touches on socket 1 (the sim places them there), then its CPUs forgotten */
  hmmv_vm_set_cpu_node(vm1, 1);
  write_range(0, 0, VM_PAGES);
  write_range(1, 0, VM_PAGES);
  run(&report);
  hmmv_vm_set_cpu_node(vm1, -1);
  for (guint i = 0; i < 20; i++) {
    write_range(1, 700, 256);
    run(&report);
  }
  ck_assert_int_eq(vm_report(&report, 1)->dram_node, 1);
  ck_assert_int_eq(vm_report(&report, 1)->slow_node, 3);
  assert_only_on(1, 1, 3, &d, &s);
  for (guint64 p = 700; p < 956; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm1, p), 1);
  teardown();
}
END_TEST

static Suite *
nodes_suite(void)
{
  Suite *suite = suite_create("nodes");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_own_socket);
  tcase_add_test(tc, test_full_node_falls_back);
  tcase_add_test(tc, test_fallen_back_brought_home);
  tcase_add_test(tc, test_brought_home_within_batch);
  tcase_add_test(tc, test_brought_home_within_deadline);
  tcase_add_test(tc, test_home_scan_incremental);
  tcase_add_test(tc, test_fallen_back_slow_brought_home);
  tcase_add_test(tc, test_budget_from_own_node);
  tcase_add_test(tc, test_min_from_next_node);
  tcase_add_test(tc, test_dram_pools);
  tcase_add_test(tc, test_strict_numatune_never_falls_back);
  tcase_add_test(tc, test_strict_other_socket);
  tcase_add_test(tc, test_strict_without_slow_node_left_alone);
  tcase_add_test(tc, test_pool_from_free_memory);
  tcase_add_test(tc, test_assign_shares_room);
  tcase_add_test(tc, test_unknown_cpus_follow_the_pages);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(nodes_suite());
}
