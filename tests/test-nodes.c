/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Several sockets (issue 7, item 4): the per-node pools, where each VM's pages go, and the
 * fallback when a node is full, on a fake two-socket Optane host: nodes 0 and 1 with CPUs and
 * DRAM, 2 and 3 CPU-less slow memory, node 2 on socket 0 and node 3 on socket 1 (SLIT 10 own
 * DRAM, 21 the other DRAM, 17 own slow node, 28 the other's). The real layout runs in the
 * testbed (hmmvd-2socket). How pages that fell back come home: test-loop-home.c.
 *
 * Before: every promotion went to node 0 (the lowest-numbered DRAM node), every demotion to
 * node 2, and the pool was the total of the DRAM nodes whatever was free.
 */
#include "core-private.h"
#include "two-socket.h"
#include "nodes-private.h"

#include <string.h>

static HmmvTestCore fx;

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

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .max_pages = VM_PAGES / 2, .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
  }
  for (guint v = 0; v < NR_VMS; v++)
    hmmv_test_core_write(&fx, v, 0, VM_PAGES);    /* first touch: on its own socket's DRAM */
  hmmv_test_core_run(&fx, &report);
  for (guint v = 0; v < NR_VMS; v++) {
    guint64 d, s;

    assert_only_on(v, (int)v, (int)v + 2, &d, &s);
    ck_assert_uint_eq(d + s, VM_PAGES);
    ck_assert_int_eq(hmmv_test_vm_report(&report, v)->dram_node, (int)v);
    ck_assert_int_eq(hmmv_test_vm_report(&report, v)->slow_node, (int)v + 2);
  }
  /* hot pages 0..255, then 768..1023: the second set was demoted meanwhile */
  for (guint i = 0; i < 40; i++) {
    for (guint v = 0; v < NR_VMS; v++) {
      hmmv_test_core_write(&fx, v, i < 20 ? 0 : 768, 256);
    }
    hmmv_test_core_run(&fx, &report);
    for (guint v = 0; v < NR_VMS; v++) {
      promoted[v] += hmmv_test_vm_report(&report, v)->promoted;
      demoted[v] += hmmv_test_vm_report(&report, v)->demoted;
      ck_assert_uint_eq(hmmv_test_vm_report(&report, v)->promoted_fallback, 0);
      ck_assert_uint_eq(hmmv_test_vm_report(&report, v)->demoted_fallback, 0);
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
  hmmv_test_core_clear(&fx);
}
END_TEST

/* Another process fills node 0: its free memory falls under the reserve. The pool shrinks by
 * what node 0 lacks, vm0's promotions go to node 1 (the next nearest DRAM node) and are
 * reported, its demotions still go to node 2. Before: the pool stayed the total of the DRAM
 * nodes and every promotion went to node 0. */
START_TEST(test_full_node_falls_back)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GArray) hot = NULL;
  HmmvNodePool pools[4];
  guint64 used0, fallback = 0, on_node1 = 0, pool_before;
  HmmvVm *vm0;

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core), 2 * DRAM_NODE_PAGES);
  hot = two_socket_demoted_hot_set(&fx, &report);   /* to its own slow node */
  vm0 = hmmv_core_get_vm(fx.core, 0);

  /* node 0: 16 pages free, 64 kept for the host */
  pool_before = hmmv_core_get_pool_pages(fx.core);
  used0 = hmmv_vm_get_node_pages(vm0, 0);
  two_socket_fill_node0(&fx);
  ck_assert_uint_eq(hmmv_core_get_pool_pages(fx.core),
                    pool_before - DRAM_NODE_PAGES + used0 - 48);
  ck_assert_uint_eq(hmmv_core_get_node_pools(fx.core, pools, 4), 4);
  ck_assert_uint_eq(pools[0].capacity_pages, used0 - 48);
  ck_assert_uint_eq(pools[0].used_pages, used0);
  ck_assert_uint_eq(pools[0].reserve_pages, 64);
  ck_assert_uint_eq(pools[1].capacity_pages, DRAM_NODE_PAGES);

  /* vm0's hot set moves to pages on node 2: promoted to node 1 */
  for (guint i = 0; i < 20; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    fallback += hmmv_test_vm_report(&report, 0)->promoted_fallback;
    if (hmmv_test_vm_report(&report, 0)->promoted_fallback > 0) {
      ck_assert_ptr_nonnull(report.fallback_note);
      ck_assert_msg(strstr(report.fallback_note, "vm vm0: DRAM node 0 full, promoted to node 1")
                    != NULL, "%s", report.fallback_note);
    }
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->promoted_fallback, 0);
    ck_assert_int_eq(hmmv_test_vm_report(&report, 0)->dram_node, 0);
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
  hmmv_test_core_clear(&fx);
}
END_TEST

/* Nodes 0 and 1 give the VMs 512 pages each; both VMs' 1024 pages are hot every interval. */
static void
run_all_hot(HmmvIntervalReport *report, guint intervals, guint64 *fallback)
{
  for (guint i = 0; i < intervals; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      hmmv_test_core_write(&fx, v, 0, VM_PAGES);
    hmmv_test_core_run(&fx, report);
    for (guint v = 0; v < NR_VMS; v++)
      fallback[v] += hmmv_test_vm_report(report, v)->promoted_fallback;
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

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .weight = v == 0 ? 300 : 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
    ck_assert(hmmv_core_set_node_pool(fx.core, (int)v, VM_PAGES / 2, 0, &error));
  }
  run_all_hot(&report, 12, fallback);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvVm *vm = hmmv_core_get_vm(fx.core, v);

    ck_assert_uint_eq(hmmv_test_vm_report(&report, v)->budget_pages, VM_PAGES / 2);
    ck_assert_uint_eq(hmmv_vm_get_node_pages(vm, (int)v), VM_PAGES / 2);
    ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), VM_PAGES / 2);
    ck_assert_uint_eq(fallback[v], 0);
  }
  hmmv_test_core_clear(&fx);
}
END_TEST

/* A min its own node cannot hold comes from the other node: vm0's min of 768 pages is node
 * 0's 512 and 256 of node 1, and vm1, nearest node 1, gets the 256 left of it. Before: the
 * 256 pages beyond the mins were lent host-wide by weight, 128 each: vm0 896, vm1 128. */
START_TEST(test_min_from_next_node)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  guint64 fallback[NR_VMS] = { 0 };
  HmmvVm *vm0;

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .min_pages = v == 0 ? 768 : 0, .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
    ck_assert(hmmv_core_set_node_pool(fx.core, (int)v, VM_PAGES / 2, 0, &error));
  }
  run_all_hot(&report, 12, fallback);
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->budget_pages, 768);
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->min_granted_pages, 768);
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->budget_pages, 256);
  /* (its first touches all landed on node 0, which keeps them: a node over its pool takes
   * nothing more but is not emptied) */
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm0), 768);
  ck_assert_uint_eq(hmmv_vm_get_node_pages(hmmv_core_get_vm(fx.core, 1), 1), 256);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(hmmv_core_get_vm(fx.core, 1)), 256);
  ck_assert_uint_eq(fallback[1], 0);
  hmmv_test_core_clear(&fx);
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
  g_autoptr(HmmvTopology) topo = two_socket_topology();

  nodes[0].capacity_pages = 2048;
  nodes[1].capacity_pages = 1024;
  nodes[2].capacity_pages = 8192;
  ck_assert_uint_eq(hmmv_nodes_dram_pools(topo, nodes, 3072, outside, ids, pools), 2);
  ck_assert_int_eq(ids[0], 0);
  ck_assert_int_eq(ids[1], 1);
  ck_assert_uint_eq(pools[0], 2048);
  ck_assert_uint_eq(pools[1], 1024);
  ck_assert_uint_eq(hmmv_nodes_dram_pools(topo, nodes, 1001, outside, ids, pools), 2);
  ck_assert_uint_eq(pools[0], 668);   /* 667.3 + the page rounding left */
  ck_assert_uint_eq(pools[1], 333);
  outside[1] = 400;
  outside[2] = 5000;                  /* slow: not the DRAM pools' */
  hmmv_nodes_dram_pools(topo, nodes, 1001, outside, ids, pools);
  ck_assert_uint_eq(pools[0], 601);
  ck_assert_uint_eq(pools[1], 0);
  hmmv_nodes_pool_ranks(&dram, ids, 2, ranks);
  ck_assert_uint_eq(ranks[0], 1);
  ck_assert_uint_eq(ranks[1], 0);
  dram.nr_rank = 1;                   /* bound to node 1 */
  hmmv_nodes_pool_ranks(&dram, ids, 2, ranks);
  ck_assert_uint_eq(ranks[1], G_MAXUINT);
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
 * outside cpuset.mems with EACCES: the sim fails the call, hmmv_test_core_run asserts no VM error).
 * Before: vm0's 128 hot pages went to node 1 (the sim without cpusets), a failed call every
 * interval (with them). */
START_TEST(test_strict_numatune_never_falls_back)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GArray) hot = NULL;
  guint64 fallback = 0, on_dram, on_slow;
  HmmvVm *vm0;

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  vm0 = hmmv_core_get_vm(fx.core, 0);
  bind_vm(0, (1u << 0) | (1u << 2));
  hot = two_socket_demoted_hot_set(&fx, &report);
  two_socket_fill_node0(&fx);
  for (guint i = 0; i < 20; i++) {
    hmmv_test_core_write_pages(&fx, 0, hot);
    hmmv_test_core_run(&fx, &report);
    fallback += hmmv_test_vm_report(&report, 0)->promoted_fallback;
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->move_failed, 0);
  }
  ck_assert_uint_eq(fallback, 0);
  assert_only_on(0, 0, 2, &on_dram, &on_slow);
  for (guint h = 0; h < hot->len; h++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm0, g_array_index(hot, guint64, h)), 2);
  ck_assert_ptr_null(hmmv_test_vm_report(&report, 0)->left_alone);
  hmmv_test_core_clear(&fx);
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

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  bind_vm(0, (1u << 1) | (1u << 3));
  for (guint v = 0; v < NR_VMS; v++) {
    HmmvQuota quota = { .max_pages = VM_PAGES / 2, .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, v), &quota);
    hmmv_test_core_write(&fx, v, 0, VM_PAGES);
  }
  hmmv_test_core_run(&fx, &report);
  ck_assert_int_eq(hmmv_test_vm_report(&report, 0)->dram_node, 1);
  ck_assert_int_eq(hmmv_test_vm_report(&report, 0)->slow_node, 3);
  ck_assert_ptr_null(hmmv_test_vm_report(&report, 0)->left_alone);
  for (guint i = 0; i < 40; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      hmmv_test_core_write(&fx, v, i < 20 ? 0 : 768, 256);
    hmmv_test_core_run(&fx, &report);
    promoted += hmmv_test_vm_report(&report, 0)->promoted;
    demoted += hmmv_test_vm_report(&report, 0)->demoted;
    ck_assert_uint_eq(hmmv_test_vm_report(&report, 0)->move_failed, 0);
  }
  ck_assert_uint_ge(demoted, 256);
  ck_assert_uint_ge(promoted, 128);
  assert_only_on(0, 1, 3, &on_dram, &on_slow);
  ck_assert_uint_eq(on_dram + on_slow, VM_PAGES);
  assert_only_on(1, 1, 3, &on_dram, &on_slow);   /* vm1, unbound, on its own socket */
  hmmv_test_core_clear(&fx);
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

  two_socket_setup(&fx, 0, TRUE);
  hmmv_interval_report_init(&report);
  bind_vm(0, 1u << 0);
  hmmv_core_set_pool_pages(fx.core, 2 * VM_PAGES - 256);
  for (guint v = 0; v < NR_VMS; v++)
    hmmv_test_core_write(&fx, v, 0, VM_PAGES);
  for (guint i = 0; i < 20; i++) {
    const HmmvVmReport *vm0_rep, *vm1_rep;

    for (guint v = 0; v < NR_VMS; v++)
      hmmv_test_core_write(&fx, v, i < 10 ? 0 : 768, 256);
    hmmv_test_core_run(&fx, &report);
    vm0_rep = hmmv_test_vm_report(&report, 0);
    vm1_rep = hmmv_test_vm_report(&report, 1);
    ck_assert_str_eq(vm0_rep->left_alone, "its allowed nodes hold no slow node");
    ck_assert_uint_eq(vm0_rep->promoted + vm0_rep->demoted, 0);
    ck_assert_uint_eq(vm0_rep->move_failed, 0);
    ck_assert_ptr_null(vm1_rep->left_alone);
    vm1_moved += vm1_rep->promoted + vm1_rep->demoted;
  }
  assert_only_on(0, 0, 2, &on_dram, &on_slow);
  ck_assert_uint_eq(on_dram, VM_PAGES);
  ck_assert_uint_eq(on_slow, 0);
  ck_assert_uint_gt(vm1_moved, 0);
  /* what vm0 holds is taken from the pool: vm1 fits in the rest (it would keep all its
   * VM_PAGES in a pool of 2 * VM_PAGES - 256 otherwise) */
  ck_assert_uint_le(hmmv_vm_get_dram_pages(hmmv_core_get_vm(fx.core, 1)), VM_PAGES - 256);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* A node's pool: its free memory less the reserve plus what the VMs hold, at most the node,
 * at most the configured size; the DRAM pool is the DRAM nodes' sum, at most the limit. */
START_TEST(test_pool_from_free_memory)
{
  g_autoptr(GError) error = NULL;
  HmmvNodePool pools[4];

  two_socket_setup(&fx, 0, TRUE);
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
  hmmv_test_core_clear(&fx);
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

  two_socket_setup(&fx, VM_PAGES, FALSE);
  hmmv_interval_report_init(&report);
  vm1 = hmmv_core_get_vm(fx.core, 1);
  /* its first touches on socket 1 (the sim places them there), then its CPUs forgotten */
  hmmv_vm_set_cpu_node(vm1, 1);
  hmmv_test_core_write(&fx, 0, 0, VM_PAGES);
  hmmv_test_core_write(&fx, 1, 0, VM_PAGES);
  hmmv_test_core_run(&fx, &report);
  hmmv_vm_set_cpu_node(vm1, -1);
  for (guint i = 0; i < 20; i++) {
    hmmv_test_core_write(&fx, 1, 700, 256);
    hmmv_test_core_run(&fx, &report);
  }
  ck_assert_int_eq(hmmv_test_vm_report(&report, 1)->dram_node, 1);
  ck_assert_int_eq(hmmv_test_vm_report(&report, 1)->slow_node, 3);
  assert_only_on(1, 1, 3, &d, &s);
  for (guint64 p = 700; p < 956; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm1, p), 1);
  hmmv_test_core_clear(&fx);
}
END_TEST

static Suite *
nodes_suite(void)
{
  Suite *suite = suite_create("nodes");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_own_socket);
  tcase_add_test(tc, test_full_node_falls_back);
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
