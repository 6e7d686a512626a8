/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The shared mover cases (mover-cases.h). Expected outcomes follow move_pages(2) as
 * mm/migrate.c implements it (see include/hmmv/mover.h), so a sim that answered differently
 * from the kernel, or a wrapper that believed statuses the kernel never wrote, fails here.
 */
#include "mover-cases.h"

#include <stdio.h>
#include <string.h>

static const MoverCaseHost *host;

typedef struct {
  const char *name;
  guint needs;
  const TTest *test;
} MoverCase;

static guint64 *
range_pages(guint64 nr)
{
  guint64 *pages = g_new(guint64, nr);

  for (guint64 i = 0; i < nr; i++)
    pages[i] = i;
  return pages;
}

/* The VM's record of every page equals a fresh query through the mover. */
static void
check_record_matches_query(HmmvMover *mover, HmmvVm *vm)
{
  guint64 nr = hmmv_vm_get_nr_pages(vm);
  g_autofree guint64 *pages = range_pages(nr);
  g_autofree int *recorded = g_new(int, nr);
  g_autoptr(GError) error = NULL;

  for (guint64 p = 0; p < nr; p++)
    recorded[p] = hmmv_vm_get_page_node(vm, p);
  ck_assert_msg(hmmv_mover_query(mover, vm, pages, nr, &error), "%s",
                error ? error->message : "");
  for (guint64 p = 0; p < nr; p++)
    ck_assert_msg(hmmv_vm_get_page_node(vm, p) == recorded[p],
                  "%s: page %" G_GUINT64_FORMAT ": recorded on node %d, really on %d",
                  host->name, p, recorded[p], hmmv_vm_get_page_node(vm, p));
}

/* Sets a case up: spec per page, and the mover's first look at every page. */
static void
setup_case_backed(const guint8 *spec, guint64 nr, guint64 slow_room, CaseBacking backing,
                  HmmvVm **vm, HmmvMover **mover)
{
  g_autofree guint64 *pages = range_pages(nr);
  g_autoptr(GError) error = NULL;

  host->setup(spec, nr, slow_room, backing, vm, mover);
  ck_assert_msg(hmmv_mover_query(*mover, *vm, pages, nr, &error), "%s",
                error ? error->message : "");
  for (guint64 p = 0; p < nr; p++) {
    int want = spec[p] == CASE_ABSENT ? -1 : spec[p] == CASE_NODE1 ? 1 : 0;

    ck_assert_msg(hmmv_vm_get_page_node(*vm, p) == want, "%s: set-up page %" G_GUINT64_FORMAT
                  " is on %d, not %d", host->name, p, hmmv_vm_get_page_node(*vm, p), want);
  }
  if (backing == CASE_BACKING_THP) {
    guint64 blocks = hmmv_vm_get_nr_thp_blocks(*vm), changed = 0;

    /* what the core does when it adds a VM: learn which blocks the kernel made THPs */
    ck_assert_uint_eq(blocks, nr / HMMV_THP_PAGES);
    ck_assert_msg(hmmv_mover_refresh_thp(*mover, *vm, 0, blocks, &changed, &error), "%s",
                  error ? error->message : "");
    for (guint64 b = 0; b < blocks; b++)
      ck_assert_msg(hmmv_vm_get_thp(*vm, b), "%s: block %" G_GUINT64_FORMAT " is not a THP "
                    "(the kernel made none: fragmented memory?)", host->name, b);
  }
}

static void
setup_case(const guint8 *spec, guint64 nr, guint64 slow_room, HmmvVm **vm, HmmvMover **mover)
{
  setup_case_backed(spec, nr, slow_room, CASE_BACKING_4K, vm, mover);
}

static guint64
failures(const HmmvMoveStats *s)
{
  return s->not_present + s->busy + s->no_memory + s->fault + s->access + s->other +
         s->call_failures;
}

/* One page in three touched: moving all to node 0 finds the touched ones there already (not
 * counted as promoted: the set-up query learnt their node) and reports the others not
 * present (-ENOENT; Linux 6.1 says -EFAULT for a never-touched anonymous page). */
START_TEST(case_present_and_absent)
{
  enum { NR = 96 };
  guint8 spec[NR];
  HmmvVm *vm;
  HmmvMover *mover;
  g_autofree guint64 *pages = range_pages(NR);
  g_autoptr(GError) error = NULL;
  guint64 moved = 0, touched = 0;
  HmmvMoveStats *stats;

  for (guint p = 0; p < NR; p++) {
    spec[p] = p % 3 == 0 ? CASE_NODE0 : CASE_ABSENT;
    touched += p % 3 == 0;
  }
  setup_case(spec, NR, 0, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  mover->batch_pages = 10;
  ck_assert_msg(hmmv_mover_move(mover, vm, pages, NR, 0, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(moved, touched);
  ck_assert_uint_eq(stats->promoted, 0);      /* they were on node 0 already */
  ck_assert_uint_eq(stats->not_present + stats->fault, NR - touched);
  ck_assert_uint_eq(stats->busy + stats->no_memory + stats->access + stats->other +
                    stats->call_failures, 0);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), touched);
  check_record_matches_query(mover, vm);
  host->teardown();
}
END_TEST

/* The review's case: two batches of 512, one page of the second pinned. The kernel returns 1
 * and writes none of the second batch's statuses; all but that page did move. */
START_TEST(case_pinned_in_second_batch)
{
  enum { NR = 1024, PINNED = 700 };
  g_autofree guint8 *spec = g_new(guint8, NR);
  HmmvVm *vm;
  HmmvMover *mover;
  g_autofree guint64 *pages = range_pages(NR);
  g_autoptr(GError) error = NULL;
  guint64 moved = 0;
  HmmvMoveStats *stats;

  memset(spec, CASE_NODE0, NR);
  spec[PINNED] = CASE_PINNED0;
  setup_case(spec, NR, 0, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  mover->batch_pages = 512;
  ck_assert_msg(hmmv_mover_move(mover, vm, pages, NR, 1, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, PINNED), 0);
  ck_assert_uint_eq(moved, NR - 1);
  ck_assert_uint_eq(stats->demoted, NR - 1);
  ck_assert_uint_eq(stats->busy, 1);
  ck_assert_uint_eq(failures(stats), 1);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), NR - 1);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 1);
  check_record_matches_query(mover, vm);
  host->teardown();
}
END_TEST

/* A call cut short in the middle: pages 100 and 400 never touched, 300 pinned. The kernel
 * migrates [0,100) at page 100, fails the group [101,400) at page 400 and never looks at
 * 401..511: it returns 1 + 111 and leaves 410 statuses unwritten. The wrapper learns by a
 * query that [101,400) moved but 300, and tries 300 and 401..511 again. */
START_TEST(case_short_call_rest_tried_again)
{
  enum { NR = 512 };
  guint8 spec[NR];
  HmmvVm *vm;
  HmmvMover *mover;
  g_autofree guint64 *pages = range_pages(NR);
  g_autoptr(GError) error = NULL;
  guint64 moved = 0;
  HmmvMoveStats *stats;

  memset(spec, CASE_NODE0, NR);
  spec[100] = spec[400] = CASE_ABSENT;
  spec[300] = CASE_PINNED0;
  setup_case(spec, NR, 0, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  ck_assert_msg(hmmv_mover_move(mover, vm, pages, NR, 1, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(moved, NR - 3);
  ck_assert_uint_eq(stats->demoted, NR - 3);
  ck_assert_uint_eq(stats->busy, 1);
  ck_assert_uint_eq(stats->not_present + stats->fault, 2);
  ck_assert_uint_eq(failures(stats), 3);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 300), 0);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 511), 1);
  check_record_matches_query(mover, vm);
  host->teardown();
}
END_TEST

/* A target with room for 300 pages: the first call moves 300 and fails with ENOMEM (never
 * -ENOMEM per page); the batches after it are not tried. Nothing is an error for the caller.
 * On a real node (filled to about 300 pages of room: the kernel's reserves and per-CPU lists
 * decide the rest) the count that moves is the kernel's: fewer than all, and the
 * record of every page agrees with the kernel's. */
START_TEST(case_full_target_node)
{
  enum { NR = 8192, ROOM = 300 };
  g_autofree guint8 *spec = g_new(guint8, NR);
  HmmvVm *vm;
  HmmvMover *mover;
  g_autofree guint64 *pages = range_pages(NR);
  g_autoptr(GError) error = NULL;
  guint64 moved = 0;
  HmmvMoveStats *stats;

  memset(spec, CASE_NODE0, NR);
  setup_case(spec, NR, ROOM, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  mover->batch_pages = 512;
  ck_assert_msg(hmmv_mover_move(mover, vm, pages, NR, 1, &moved, &error), "%s",
                error ? error->message : "");
  printf("# full_target_node on %s: %" G_GUINT64_FORMAT " of %d pages moved, %" G_GUINT64_FORMAT
         " counted no-memory\n", host->name, moved, NR, stats->no_memory);
  fflush(stdout);
  if (host->exact_room)
    ck_assert_uint_eq(moved, ROOM);
  else  /* the kernel's room: 915, 1,451 (6.12), 732 (6.1) and 0 (6.12 and 6.1, 2026-12-03
         * 11:28 UTC, quiet host) of 8,192 seen; the record must agree with it whatever it is */
    ck_assert_uint_lt(moved, NR);
  ck_assert_uint_eq(stats->demoted, moved);
  ck_assert_uint_eq(stats->no_memory, NR - moved);
  ck_assert_uint_eq(failures(stats), NR - moved);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), moved);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), NR - moved);
  check_record_matches_query(mover, vm);
  host->teardown();
}
END_TEST

/* Pages other processes map too (vhost-user, virtiofsd, KSM): -EACCES without
 * MPOL_MF_MOVE_ALL, moved with it (hmmvd runs as root, which has CAP_SYS_NICE). A page that
 * does not move is backed off, counted as shared. */
START_TEST(case_shared_pages)
{
  enum { NR = 64 };
  guint8 spec[NR];
  HmmvVm *vm;
  HmmvMover *mover;
  g_autofree guint64 *pages = range_pages(NR);
  g_autoptr(GError) error = NULL;
  guint64 moved = 0, expect_moved = host->move_all ? NR : NR - 2;
  HmmvUnmovable unmovable;
  HmmvMoveStats *stats;

  memset(spec, CASE_NODE0, NR);
  spec[5] = spec[40] = CASE_SHARED0;
  setup_case(spec, NR, 0, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  ck_assert_msg(hmmv_mover_move(mover, vm, pages, NR, 1, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(moved, expect_moved);
  ck_assert_uint_eq(stats->access, NR - expect_moved);
  ck_assert_uint_eq(failures(stats), NR - expect_moved);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 5), host->move_all ? 1 : 0);
  hmmv_vm_get_unmovable(vm, &unmovable);
  ck_assert_uint_eq(unmovable.pages[HMMV_UNMOVABLE_SHARED], NR - expect_moved);
  check_record_matches_query(mover, vm);
  host->teardown();
}
END_TEST

/* Huge pages on (issue 7, item 3). Three THPs on node 0; the list names one page of THP 0
 * (its first) and one of THP 2 (not its first: any 4 KiB of a THP moves all of it). The
 * kernel moves 1,024 pages for two entries; the wrapper records every one of them (a query
 * of the units' pages) and counts 1,024 demoted, and THP 1 stays. */
static void
huge_moves_whole(CaseBacking backing)
{
  enum { NR = 1536 };
  g_autofree guint8 *spec = g_new(guint8, NR);
  HmmvVm *vm;
  HmmvMover *mover;
  g_autoptr(GError) error = NULL;
  guint64 entries[2] = { 0, 1024 + 300 }, moved = 0;
  HmmvMoveStats *stats;

  memset(spec, CASE_NODE0, NR);
  setup_case_backed(spec, NR, 0, backing, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  ck_assert_uint_eq(hmmv_vm_unit_pages(vm, 1024 + 300), 512);
  ck_assert_msg(hmmv_mover_move(mover, vm, entries, 2, 1, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(moved, 1024);
  ck_assert_uint_eq(stats->demoted, 1024);
  ck_assert_uint_eq(failures(stats), 0);
  for (guint64 p = 0; p < NR; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), p >= 512 && p < 1024 ? 0 : 1);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 1024);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 512);
  check_record_matches_query(mover, vm);
  /* and back, one entry in the middle of THP 0 */
  entries[0] = 200;
  ck_assert_msg(hmmv_mover_move(mover, vm, entries, 1, 0, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(moved, 512);
  ck_assert_uint_eq(stats->promoted, 512);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 1024);
  check_record_matches_query(mover, vm);
  host->teardown();
}

START_TEST(case_thp_moves_whole)
{
  huge_moves_whole(CASE_BACKING_THP);
}
END_TEST

START_TEST(case_hugetlb_moves_whole)
{
  huge_moves_whole(CASE_BACKING_HUGETLB);
}
END_TEST

/* A pin on one 4 KiB of a THP holds the whole THP (the folio's refcount): THP 0 stays on
 * node 0 whole, THP 1 moves whole, and the record says exactly that. */
START_TEST(case_thp_pinned_holds_all)
{
  enum { NR = 1024 };
  g_autofree guint8 *spec = g_new(guint8, NR);
  HmmvVm *vm;
  HmmvMover *mover;
  g_autoptr(GError) error = NULL;
  guint64 entries[2] = { 0, 512 }, moved = 0;
  HmmvMoveStats *stats;

  memset(spec, CASE_NODE0, NR);
  spec[5] = CASE_PINNED0;
  setup_case_backed(spec, NR, 0, CASE_BACKING_THP, &vm, &mover);
  stats = hmmv_vm_get_move_stats(vm);
  ck_assert_msg(hmmv_mover_move(mover, vm, entries, 2, 1, &moved, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(moved, 512);
  ck_assert_uint_eq(stats->demoted, 512);
  ck_assert_uint_eq(stats->busy, 1);          /* the one entry that stood for THP 0 */
  for (guint64 p = 0; p < NR; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), p < 512 ? 0 : 1);
  check_record_matches_query(mover, vm);
  host->teardown();
}
END_TEST

void
mover_cases_add(TCase *tc, const MoverCaseHost *the_host)
{
  const MoverCase cases[] = {
    { "present_and_absent", 0, case_present_and_absent },
    { "pinned_in_second_batch", CASE_NEEDS_TWO_NODES, case_pinned_in_second_batch },
    { "short_call_rest_tried_again", CASE_NEEDS_TWO_NODES, case_short_call_rest_tried_again },
    { "full_target_node", CASE_NEEDS_TWO_NODES | CASE_NEEDS_SLOW_ROOM, case_full_target_node },
    { "shared_pages", CASE_NEEDS_TWO_NODES, case_shared_pages },
    { "thp_moves_whole", CASE_NEEDS_TWO_NODES | CASE_NEEDS_THP, case_thp_moves_whole },
    { "thp_pinned_holds_all", CASE_NEEDS_TWO_NODES | CASE_NEEDS_THP,
      case_thp_pinned_holds_all },
    { "hugetlb_moves_whole", CASE_NEEDS_TWO_NODES | CASE_NEEDS_HUGETLB,
      case_hugetlb_moves_whole },
  };

  host = the_host;
  printf("# shared cases on %s, MPOL_MF_MOVE_ALL %s\n", host->name,
         host->move_all ? "allowed" : "not allowed");
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    guint missing = cases[i].needs & ~host->supports;

    if (missing == 0) {
      tcase_add_test(tc, cases[i].test);
      continue;
    }
    printf("# shared case %s is not run on %s: it needs %s\n", cases[i].name, host->name,
           (missing & CASE_NEEDS_TWO_NODES) ? "two NUMA nodes (the testbed runs it)"
           : (missing & CASE_NEEDS_THP) ? "transparent huge pages (enabled: never)"
           : (missing & CASE_NEEDS_HUGETLB) ? "4 free 2 MiB hugetlbfs pages on nodes 0 and 1"
                                            : "a node 1 it may fill for a moment (root and "
                                              "HMMV_MOVER_FILL_NODE1=1, as the testbed sets)");
  }
  fflush(stdout);
}
