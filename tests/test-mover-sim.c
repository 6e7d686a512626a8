/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmv-test.h"
#include "mover-cases.h"

#include <errno.h>

#define PAGE HMMV_PAGE_SIZE

static guint64 *
range_pages(guint64 first, guint64 nr)
{
  guint64 *pages = g_new(guint64, nr);

  for (guint64 i = 0; i < nr; i++)
    pages[i] = first + i;
  return pages;
}

/* The guest touches pages: the way pages get placed on the modelled host. */
static void
touch_pages(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr, gboolean as_reads)
{
  g_autoptr(HmmvAccess) acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), NULL);

  for (gsize i = 0; i < nr; i++) {
    if (as_reads)
      hmmv_access_mark_read(acc, pages[i]);
    else
      hmmv_access_mark_write(acc, pages[i]);
  }
  hmmv_mover_touch(mover, vm, acc);
}

/* The VM's placement equals the sim's truth as a fresh query of every page sees it. */
static void
assert_vm_matches_sim(HmmvMover *mover, HmmvVm *vm)
{
  guint64 nr = hmmv_vm_get_nr_pages(vm);
  g_autofree guint64 *pages = range_pages(0, nr);
  g_autofree int *before = g_new(int, nr);
  g_autoptr(GError) error = NULL;

  for (guint64 p = 0; p < nr; p++)
    before[p] = hmmv_vm_get_page_node(vm, p);
  ck_assert(hmmv_mover_query(mover, vm, pages, nr, &error));
  for (guint64 p = 0; p < nr; p++)
    ck_assert_msg(hmmv_vm_get_page_node(vm, p) == before[p], "page %" G_GUINT64_FORMAT
                  ": vm says %d, sim says %d", p, before[p], hmmv_vm_get_page_node(vm, p));
}

START_TEST(test_first_touch)
{
  /* DRAM holds 100 pages, slow 50: 160 pages overflow both */
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(100 * PAGE, 50 * PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 160);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autofree guint64 *pages = range_pages(0, 160);

  ck_assert_ptr_nonnull(mover);
  ck_assert_str_eq(hmmv_mover_get_name(mover), "sim");
  ck_assert_uint_eq(mover->batch_pages, 512);
  mover->batch_pages = 7;   /* batches must not change the outcome */
  /* nothing is placed before the guest touches it; a query does not place */
  ck_assert(hmmv_mover_query(mover, vm, pages, 160, &error));
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 0);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm) + hmmv_vm_get_slow_pages(vm), 0);
  /* the guest reads the first 80 pages, then writes all 160 */
  touch_pages(mover, vm, pages, 80, TRUE);
  touch_pages(mover, vm, pages, 160, FALSE);
  ck_assert(hmmv_mover_query(mover, vm, pages, 160, &error));
  for (guint64 p = 0; p < 160; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), p < 100 ? 0 : p < 150 ? 1 : -1);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 100);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 50);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 100);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 50);
  ck_assert(HMMV_PLACE_IS_SLOW(hmmv_vm_get_place(vm)[120]));
  ck_assert(!HMMV_PLACE_IS_SLOW(hmmv_vm_get_place(vm)[20]));
  /* querying again changes nothing; no page was moved, so nothing is charged */
  assert_vm_matches_sim(mover, vm);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 100);
  ck_assert_uint_eq(hmmv_sim_mover_get_charged_ns(mover), 0);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 5), 0);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, -1), 0);
}
END_TEST

START_TEST(test_move_capacity)
{
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(10 * PAGE, 100 * PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 60);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autofree guint64 *all = range_pages(0, 60);
  g_autofree guint64 *tail = range_pages(30, 20);
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  guint64 moved = 99;

  /* only the first 40 pages are touched: 0-9 DRAM, 10-39 slow */
  touch_pages(mover, vm, all, 40, FALSE);
  ck_assert(hmmv_mover_query(mover, vm, all, 60, &error));
  /* free 5 DRAM pages, then try to promote 20 pages (30..49): 5 fit, 5 full, 10 never placed */
  ck_assert(hmmv_mover_move(mover, vm, all, 5, 1, &moved, &error));
  ck_assert_uint_eq(moved, 5);
  ck_assert_uint_eq(stats->demoted, 5);
  ck_assert(hmmv_mover_move(mover, vm, tail, 20, 0, &moved, &error));
  ck_assert_uint_eq(moved, 5);
  ck_assert_uint_eq(stats->promoted, 5);
  ck_assert_uint_eq(stats->no_memory, 5);
  ck_assert_uint_eq(stats->not_present, 10);
  ck_assert_uint_eq(stats->other + stats->busy + stats->fault + stats->access, 0);
  ck_assert_uint_eq(stats->call_failures, 0);
  for (guint64 p = 30; p < 35; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), 0);
  for (guint64 p = 35; p < 40; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), 1);
  for (guint64 p = 40; p < 50; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), -1);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 10);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 30);
  ck_assert_uint_eq(hmmv_sim_mover_get_charged_ns(mover), 10 * 3900);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 10);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 30);
  /* a page already on the target is reported there but neither moved again nor charged */
  ck_assert(hmmv_mover_move(mover, vm, tail, 1, 0, &moved, &error));
  ck_assert_uint_eq(moved, 1);
  ck_assert_uint_eq(stats->promoted, 5);
  ck_assert_uint_eq(hmmv_sim_mover_get_charged_ns(mover), 10 * 3900);
  assert_vm_matches_sim(mover, vm);
}
END_TEST

START_TEST(test_move_errors)
{
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(10 * PAGE, 10 * PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 8);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  guint64 page = 0, bad_page = 8;
  guint64 moved = 99;

  ck_assert(!hmmv_mover_move(mover, vm, &page, 1, 7, &moved, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_msg(g_str_has_prefix(error->message, "vm vm: move to node 7: "), "%s",
                error->message);
  ck_assert_uint_eq(moved, 0);
  g_clear_error(&error);
  ck_assert(!hmmv_mover_move(mover, vm, &bad_page, 1, 0, &moved, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert(!hmmv_mover_query(mover, vm, &bad_page, 1, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_sim_mover_new(NULL, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  /* empty calls are fine */
  ck_assert(hmmv_mover_move(mover, vm, NULL, 0, 1, &moved, NULL));
  ck_assert(hmmv_mover_query(mover, vm, NULL, 0, NULL));
}
END_TEST

/* Random moves against a brute-force model of the same host. */
START_TEST(test_random_against_model)
{
  enum { NR = 300, DRAM = 120, SLOW = 200 };
  g_autoptr(GRand) rand = g_rand_new_with_seed(1234);
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(DRAM * PAGE, SLOW * PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  int model[NR];
  guint64 cap[2] = { DRAM, SLOW }, used[2] = { 0, 0 };
  guint64 moved_total = 0, enomem = 0, enoent = 0, promoted = 0;

  hmmv_sim_mover_set_ns_per_page(mover, 1000);
  mover->batch_pages = 16;
  for (int p = 0; p < NR; p++)
    model[p] = -1;
  for (int round = 0; round < 40; round++) {
    guint64 pages[64];
    guint n = 0;
    int dest = g_rand_int_range(rand, 0, 2);
    guint64 moved;

    /* touch a few pages first */
    for (int k = 0; k < 10; k++) {
      guint64 p = (guint64)g_rand_int_range(rand, 0, NR);

      touch_pages(mover, vm, &p, 1, k % 2 == 0);
      ck_assert(hmmv_mover_query(mover, vm, &p, 1, &error));
      if (model[p] < 0 && (used[0] < cap[0] || used[1] < cap[1])) {
        model[p] = used[0] < cap[0] ? 0 : 1;
        used[model[p]]++;
      }
    }
    /* unique random pages to move */
    for (int p = g_rand_int_range(rand, 0, NR); n < 64 && p < NR;
         p += g_rand_int_range(rand, 1, 6))
      pages[n++] = (guint64)p;
    ck_assert(hmmv_mover_move(mover, vm, pages, n, dest, &moved, &error));
    guint64 expect_on_dest = 0;
    gboolean full = FALSE;
    /* As move_pages(2): the first page that finds the target full fails its whole call
     * (ENOMEM); the wrapper queries that batch, and the later batches are not tried. */
    for (guint i = 0; i < n; i++) {
      int *m = &model[pages[i]];

      if (full && i % 16 == 0) {
        enomem += n - i;
        break;
      }
      if (*m < 0) {
        enoent++;
      } else if (*m == dest) {
        expect_on_dest++;
      } else if (full || used[dest] >= cap[dest]) {
        full = TRUE;
        enomem++;
      } else {
        used[*m]--;
        used[dest]++;
        *m = dest;
        expect_on_dest++;
        moved_total++;
        promoted += dest == 0;
      }
    }
    ck_assert_uint_eq(moved, expect_on_dest);
  }
  for (int p = 0; p < NR; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), model[p]);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), used[0]);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), used[1]);
  ck_assert_uint_eq(hmmv_sim_mover_get_charged_ns(mover), moved_total * 1000);
  ck_assert_uint_eq(stats->no_memory, enomem);
  ck_assert_uint_eq(stats->not_present, enoent);
  ck_assert_uint_eq(stats->promoted, promoted);
  ck_assert_uint_eq(stats->demoted, moved_total - promoted);
  ck_assert_uint_gt(enomem, 0);
  ck_assert_uint_gt(moved_total, 0);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), used[0]);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), used[1]);
  assert_vm_matches_sim(mover, vm);
}
END_TEST

START_TEST(test_shared_capacity)
{
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(100 * PAGE, 100 * PAGE);
  g_autoptr(HmmvVm) a = hmmv_test_vm_new("a", 80);
  g_autoptr(HmmvVm) b = hmmv_test_vm_new("b", 80);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autofree guint64 *pages = range_pages(0, 80);
  guint64 moved;

  touch_pages(mover, a, pages, 80, FALSE);
  touch_pages(mover, b, pages, 80, FALSE);
  ck_assert(hmmv_mover_query(mover, a, pages, 80, &error));
  ck_assert(hmmv_mover_query(mover, b, pages, 80, &error));
  /* a took 80 DRAM pages, b got the last 20 and spilled 60 to the slow node */
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(a), 80);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(b), 20);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(b), 60);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 100);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 60);
  /* b cannot promote while a holds the DRAM */
  ck_assert(hmmv_mover_move(mover, b, pages + 20, 10, 0, &moved, &error));
  ck_assert_uint_eq(moved, 0);
  ck_assert_uint_eq(hmmv_vm_get_move_stats(b)->no_memory, 10);
  /* a demotes 30, b can now promote 30 */
  ck_assert(hmmv_mover_move(mover, a, pages, 30, 1, &moved, &error));
  ck_assert_uint_eq(moved, 30);
  ck_assert(hmmv_mover_move(mover, b, pages + 20, 40, 0, &moved, &error));
  ck_assert_uint_eq(moved, 30);
  ck_assert_uint_eq(hmmv_vm_get_move_stats(b)->no_memory, 20);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 100);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 60);
  assert_vm_matches_sim(mover, a);
  assert_vm_matches_sim(mover, b);
  /* forgetting a releases its 50 DRAM and 30 slow pages; b can take them */
  hmmv_sim_mover_forget_vm(mover, a);
  hmmv_sim_mover_forget_vm(mover, a);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 50);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 30);
  ck_assert(hmmv_mover_move(mover, b, pages, 80, 0, &moved, &error));
  ck_assert_uint_eq(moved, 80);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 80);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 0);
  ck_assert_uint_eq(hmmv_sim_mover_get_charged_ns(mover), (30 + 30 + 30) * 3900);
}
END_TEST

/* Node ids need not be 0 and 1; several DRAM nodes fill lowest id first. */
START_TEST(test_many_nodes)
{
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 40);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = NULL;
  g_autofree guint64 *pages = range_pages(0, 40);

  ck_assert(hmmv_topology_add_node(topo, 4, 10 * PAGE, 0, HMMV_TIER_SLOW, &error));
  ck_assert(hmmv_topology_add_node(topo, 2, 10 * PAGE, 0, HMMV_TIER_SLOW, &error));
  ck_assert(hmmv_topology_add_node(topo, 3, 10 * PAGE, 2, HMMV_TIER_DRAM, &error));
  ck_assert(hmmv_topology_add_node(topo, 1, 5 * PAGE, 2, HMMV_TIER_DRAM, &error));
  mover = hmmv_sim_mover_new(topo, &error);
  touch_pages(mover, vm, pages, 40, FALSE);
  ck_assert(hmmv_mover_query(mover, vm, pages, 40, &error));
  for (guint64 p = 0; p < 40; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p),
                     p < 5 ? 1 : p < 15 ? 3 : p < 25 ? 2 : p < 35 ? 4 : -1);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 15);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 20);
}
END_TEST

/* Without MPOL_MF_MOVE_ALL a shared page is -EACCES: counted, backed off as shared, and
 * the backoff ends once it moves. An -EBUSY page is backed off as busy. */
START_TEST(test_shared_without_move_all)
{
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(100 * PAGE, 100 * PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 10);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autofree guint64 *pages = range_pages(0, 10);
  HmmvUnmovable unmovable;
  guint64 moved;

  touch_pages(mover, vm, pages, 10, FALSE);
  ck_assert(hmmv_mover_query(mover, vm, pages, 10, &error));
  ck_assert(hmmv_sim_mover_set_page_kind(mover, vm, 2, 3, HMMV_SIM_PAGE_SHARED, &error));
  ck_assert(hmmv_sim_mover_set_page_kind(mover, vm, 7, 1, HMMV_SIM_PAGE_BUSY, &error));
  ck_assert(!hmmv_sim_mover_set_page_kind(mover, vm, 8, 3, HMMV_SIM_PAGE_BUSY, &error));
  g_clear_error(&error);
  hmmv_sim_mover_set_move_all(mover, FALSE);
  ck_assert(hmmv_mover_move(mover, vm, pages, 10, 1, &moved, &error));
  ck_assert_uint_eq(moved, 6);
  ck_assert_uint_eq(hmmv_vm_get_move_stats(vm)->access, 3);
  ck_assert_uint_eq(hmmv_vm_get_move_stats(vm)->busy, 1);
  hmmv_vm_get_unmovable(vm, &unmovable);
  ck_assert_uint_eq(unmovable.pages[HMMV_UNMOVABLE_SHARED], 3);
  ck_assert_uint_eq(unmovable.pages[HMMV_UNMOVABLE_BUSY], 1);
  ck_assert_uint_eq(hmmv_vm_get_nr_backed_off(vm), 4);
  /* backed off in about half the intervals after one failure, staggered by page */
  ck_assert(hmmv_vm_page_backed_off(vm, 2, 1) != hmmv_vm_page_backed_off(vm, 3, 1));
  ck_assert(!hmmv_vm_page_backed_off(vm, 0, 1));
  hmmv_sim_mover_set_move_all(mover, TRUE);
  ck_assert(hmmv_mover_move(mover, vm, pages, 10, 1, &moved, &error));
  ck_assert_uint_eq(moved, 9);
  hmmv_vm_get_unmovable(vm, &unmovable);
  ck_assert_uint_eq(unmovable.pages[HMMV_UNMOVABLE_SHARED], 0);
  ck_assert_uint_eq(unmovable.pages[HMMV_UNMOVABLE_BUSY], 1);
  ck_assert_str_eq(hmmv_unmovable_cause_to_string(HMMV_UNMOVABLE_PINNED), "pinned");
}
END_TEST

/* Transparent huge pages as the kernel moves them: a first touch places 2 MiB, a move of
 * the 512 pages of a THP reads -EBUSY for 511 of them (queried: they moved), a move of one
 * subpage moves all 512, and a target without room for 2 MiB splits the THP. */
START_TEST(test_thp_moves_whole)
{
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(2048 * PAGE, 1324 * PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 2048);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autofree guint64 *pages = range_pages(0, 2048);
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  guint64 moved, one = 600;

  ck_assert(!hmmv_sim_mover_set_thp(mover, vm, 100, 512, &error));
  g_clear_error(&error);
  ck_assert(hmmv_sim_mover_set_thp(mover, vm, 0, 1536, &error));
  touch_pages(mover, vm, pages + 3, 1, FALSE);
  touch_pages(mover, vm, &one, 1, FALSE);
  touch_pages(mover, vm, pages + 1030, 1, FALSE);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 0), 1536);
  ck_assert(hmmv_mover_query(mover, vm, pages, 2048, &error));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 1536);
  /* the whole first THP: one migration, 511 -EBUSY statuses found moved by the query */
  ck_assert(hmmv_mover_move(mover, vm, pages, 512, 1, &moved, &error));
  ck_assert_uint_eq(moved, 512);
  ck_assert_uint_eq(stats->demoted, 512);
  ck_assert_uint_eq(stats->busy, 0);
  ck_assert_uint_eq(hmmv_sim_mover_get_charged_ns(mover), 512 * 3900);
  assert_vm_matches_sim(mover, vm);
  /* one subpage of the second THP: all 512 move */
  ck_assert(hmmv_mover_move(mover, vm, &one, 1, 1, &moved, &error));
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 1024);
  ck_assert(hmmv_mover_query(mover, vm, pages, 2048, &error));
  for (guint64 p = 512; p < 1024; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), 1);
  /* 300 pages of room left on node 1: the third THP is split, 300 of it move, ENOMEM */
  ck_assert(hmmv_mover_move(mover, vm, pages + 1024, 512, 1, &moved, &error));
  ck_assert_uint_eq(moved, 300);
  ck_assert_uint_eq(stats->no_memory, 212);
  ck_assert_uint_eq(hmmv_sim_mover_get_used_pages(mover, 1), 1324);
  assert_vm_matches_sim(mover, vm);
}
END_TEST

/* The wrapper's per-errno accounting, with a scripted backend. */
static gboolean
scripted_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr, int *status,
               GError **error)
{
  const int *script = mover->priv;

  for (gsize i = 0; i < nr; i++)
    status[i] = script[pages[i]];
  return TRUE;
}

static gssize
scripted_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr, int dest,
              int *status, GError **error)
{
  if (pages[0] == 99) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "process 1 is gone");
    return -1;
  }
  return scripted_query(mover, vm, pages, nr, status, error) ? 0 : -1;
}

static const struct hmmv_mover_ops scripted_ops = {
  .name = "scripted", .query = scripted_query, .move = scripted_move,
};
static const struct hmmv_mover_ops no_move_ops = { .name = "x", .query = scripted_query };
static const struct hmmv_mover_ops no_query_ops = { .name = "x", .move = scripted_move };
static const struct hmmv_mover_ops no_name_ops = { .query = scripted_query,
                                                   .move = scripted_move };

START_TEST(test_wrapper_accounting)
{
  static const int script[12] = { 1, 0, -ENOENT, -EBUSY, -EAGAIN, -ENOMEM, -EFAULT, -EACCES,
                                  -EPERM, -EINVAL, -EIO, 9 };
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(PAGE, PAGE);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 100);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_mover_new(&scripted_ops, (gpointer)script, topo, &error);
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  g_autofree guint64 *pages = range_pages(0, 12);
  guint64 gone[] = { 0, 99 };
  guint64 moved;

  ck_assert_ptr_null(hmmv_mover_new(&no_move_ops, NULL, topo, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_mover_new(&no_query_ops, NULL, topo, &error));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_mover_new(&no_name_ops, NULL, topo, &error));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_mover_new(&scripted_ops, NULL, NULL, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);

  hmmv_vm_set_page_node(vm, 2, 1, HMMV_TIER_SLOW);
  hmmv_vm_get_place_mut(vm)[0] |= 2u << HMMV_PLACE_COOLDOWN_SHIFT;
  ck_assert(hmmv_mover_move(mover, vm, pages, 12, 1, &moved, &error));
  ck_assert_uint_eq(moved, 1);
  ck_assert_uint_eq(stats->demoted, 1);
  ck_assert_uint_eq(stats->promoted, 0);
  ck_assert_uint_eq(stats->not_present, 1);
  ck_assert_uint_eq(stats->busy, 2);
  ck_assert_uint_eq(stats->no_memory, 1);
  ck_assert_uint_eq(stats->fault, 1);
  ck_assert_uint_eq(stats->access, 3);
  /* -EIO, a page left on node 0, and a page on node 9 that the topology does not know */
  ck_assert_uint_eq(stats->other, 3);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 0), 1);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(hmmv_vm_get_place(vm)[0]), 2);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 1), 0);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 2), -1);   /* -ENOENT: now unknown */
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 11), -1);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 1);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 1);
  /* a whole call that fails: counted, prefixed, and earlier batches still reported */
  mover->batch_pages = 1;
  ck_assert(!hmmv_mover_move(mover, vm, gone, 2, 0, &moved, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
  ck_assert_str_eq(error->message, "vm vm: move to node 0: process 1 is gone");
  ck_assert_uint_eq(moved, 0);
  ck_assert_uint_eq(stats->call_failures, 1);
  ck_assert_uint_eq(stats->other, 4);       /* page 0 of the first batch stayed on node 1 */
  /* query records nodes; node 9 is unknown and counted as other */
  ck_assert(hmmv_mover_query(mover, vm, pages, 12, &error));
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 0), 1);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 1), 0);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 6), -1);
  ck_assert_uint_eq(stats->other, 5);
}
END_TEST

/* The shared cases' host: a modelled DRAM node 0 and slow node 1 (1M pages each, or
 * slow_room pages), the VM's pages placed by touching them and, for node 1, moving them. */
static HmmvTopology *case_topo;
static HmmvVm *case_vm;
static HmmvMover *case_mover;

static void
case_teardown(void)
{
  hmmv_sim_mover_forget_vm(case_mover, case_vm);
  g_clear_pointer(&case_vm, hmmv_vm_free);
  g_clear_pointer(&case_mover, hmmv_mover_free);
  g_clear_pointer(&case_topo, hmmv_topology_free);
}

static void
case_setup(const guint8 *spec, guint64 nr, guint64 slow_room, CaseBacking backing, HmmvVm **vm,
           HmmvMover **mover)
{
  g_autofree guint64 *pages = range_pages(0, nr);
  g_autoptr(GArray) slow = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_autoptr(GError) error = NULL;
  guint64 moved;

  case_topo = hmmv_test_topology_two_tier(G_GUINT64_CONSTANT(1) << 32,
                                          slow_room > 0 ? slow_room * PAGE
                                                        : G_GUINT64_CONSTANT(1) << 32);
  if (backing == CASE_BACKING_HUGETLB) {
    case_vm = hmmv_vm_new("case");
    ck_assert(hmmv_vm_add_region(case_vm, "ram", 0, 0, nr * PAGE, 2u << 20, NULL));
    ck_assert(hmmv_vm_finalize_layout(case_vm, NULL));
  } else {
    case_vm = hmmv_test_vm_new("case", nr);
  }
  case_mover = hmmv_sim_mover_new(case_topo, &error);
  ck_assert_ptr_nonnull(case_mover);
  if (backing == CASE_BACKING_THP)
    ck_assert(hmmv_sim_mover_set_thp(case_mover, case_vm, 0, nr, &error));
  for (guint64 p = 0; p < nr; p++) {
    if (spec[p] != CASE_ABSENT)
      touch_pages(case_mover, case_vm, &p, 1, FALSE);
    if (spec[p] == CASE_NODE1)
      g_array_append_val(slow, p);
    if (spec[p] == CASE_PINNED0 || spec[p] == CASE_SHARED0)
      ck_assert(hmmv_sim_mover_set_page_kind(case_mover, case_vm, p, 1,
                                             spec[p] == CASE_PINNED0 ? HMMV_SIM_PAGE_PINNED
                                                                     : HMMV_SIM_PAGE_SHARED,
                                             &error));
  }
  ck_assert(hmmv_mover_move(case_mover, case_vm, (guint64 *)slow->data, slow->len, 1, &moved,
                            &error));
  ck_assert_uint_eq(moved, slow->len);
  /* the case counts from zero */
  *hmmv_vm_get_move_stats(case_vm) = (HmmvMoveStats){ 0 };
  *vm = case_vm;
  *mover = case_mover;
}

static const MoverCaseHost sim_case_host = {
  .name = "the sim mover",
  .supports = CASE_NEEDS_TWO_NODES | CASE_NEEDS_SLOW_ROOM | CASE_NEEDS_THP | CASE_NEEDS_HUGETLB,
  .move_all = TRUE,
  .exact_room = TRUE,
  .setup = case_setup,
  .teardown = case_teardown,
};

static Suite *
sim_suite(void)
{
  Suite *suite = suite_create("mover-sim");
  TCase *tc = tcase_create("mover-sim");

  tcase_add_test(tc, test_first_touch);
  tcase_add_test(tc, test_move_capacity);
  tcase_add_test(tc, test_move_errors);
  tcase_add_test(tc, test_random_against_model);
  tcase_add_test(tc, test_shared_capacity);
  tcase_add_test(tc, test_many_nodes);
  tcase_add_test(tc, test_wrapper_accounting);
  tcase_add_test(tc, test_shared_without_move_all);
  tcase_add_test(tc, test_thp_moves_whole);
  suite_add_tcase(suite, tc);
  tc = tcase_create("shared");
  mover_cases_add(tc, &sim_case_host);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(sim_suite());
}
