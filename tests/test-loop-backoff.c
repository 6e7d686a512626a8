/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A page's backoff after failed moves (vm.c) against the pause of a DRAM node found full
 * (loop-batch.c), counted in intervals on the squeeze of swaps-bed.c. */
#include "hmmv-test.h"
#include "swaps-bed.h"

/* The lockstep (notes of fullnode, session 14). A hot page that failed four times (EBUSY) is
 * tried once in 16 intervals, at (interval + page) % 16 == 0; the full node's pause is 16
 * intervals too, and its first interval is a plain try into the room the free count shows,
 * which the kernel refuses (ENOMEM). A page whose try interval is that one is refused for
 * the node, not for itself, and is next tried 16 intervals later: the first interval of the
 * next pause again, never one of the 15 in between where the swap room would take it; the
 * same when its promotion is cut because another VM's call found the node full first in that
 * interval (deferred_room, never tried). Here a fifth of each hot set is EBUSY in intervals
 * 20-39 (backoff level 4 by then) and the other process (Hog) keeps the node found full. A
 * page movable from interval 40 is tried within its backoff's period (16 intervals) and,
 * refused or cut for room, again in the next interval with room whatever its phase: all hot
 * pages on DRAM by interval 40 + 16 + 16 (a pause's swaps cut or refused). Counted
 * (deterministic: the sim's clock): before, vm2's page 1040 was on the slow node at interval
 * 300 (tried at 63, 79, 95 ...: each the first interval of a pause); with only the pages of
 * an ENOMEM'd call let off their phase, all on DRAM after interval 96; with the cut ones too,
 * after interval 56. */
START_TEST(test_backoff_not_in_lockstep_with_the_pause)
{
  const SwapsOpts opts = { .hog = TRUE, .busy_from = 20, .busy_to = 40, .max_intervals = 300 };
  SwapsResult res;

  swaps_run(&opts, &res);
  ck_assert_msg(res.done_at > 0, "%u hot pages stuck on the slow node at interval %u, e.g. vm%u "
                "page %" G_GUINT64_FORMAT, res.hot_left, opts.max_intervals, res.stuck_vm,
                res.stuck_page);
  ck_assert_uint_le(res.done_at, 40 + 16 + 16);
  ck_assert_uint_ge(res.promoted, 1200);
}
END_TEST

/* Counts the intervals of [0, n) in which page is backed off. */
static guint
backed_off_in(const HmmvVm *vm, guint64 page, guint n)
{
  guint count = 0;

  for (guint i = 0; i < n; i++)
    count += hmmv_vm_page_backed_off(vm, page, i);
  return count;
}

/* The backoff byte itself (vm.c): a page refused for room keeps its level and cause but is
 * tried in any interval until its next move is noted; a page that never failed is left
 * alone. */
START_TEST(test_no_room_lets_a_page_off_its_phase)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", 16);
  HmmvUnmovable unmovable;

  for (guint k = 0; k < 4; k++)
    hmmv_vm_note_move_failed(vm, 3, HMMV_UNMOVABLE_BUSY);
  ck_assert_uint_eq(backed_off_in(vm, 3, 64), 60);        /* tried in 1 interval of 16 */
  hmmv_vm_note_move_no_room(vm, 3);
  ck_assert_uint_eq(backed_off_in(vm, 3, 64), 0);
  ck_assert(hmmv_vm_page_move_failed(vm, 3));              /* still its own failure's */
  hmmv_vm_get_unmovable(vm, &unmovable);
  ck_assert_uint_eq(unmovable.pages[HMMV_UNMOVABLE_BUSY], 1);
  ck_assert_uint_eq(hmmv_vm_get_nr_backed_off(vm), 1);
  hmmv_vm_note_move_failed(vm, 3, HMMV_UNMOVABLE_BUSY);   /* its fifth own failure */
  ck_assert_uint_eq(backed_off_in(vm, 3, 64), 62);        /* 1 in 32 */
  hmmv_vm_note_move_no_room(vm, 5);                       /* never failed: nothing */
  ck_assert_uint_eq(backed_off_in(vm, 5, 64), 0);
  ck_assert_uint_eq(hmmv_vm_get_nr_backed_off(vm), 1);
  hmmv_vm_note_move_no_room(vm, 3);
  hmmv_vm_note_moved(vm, 3);
  ck_assert(!hmmv_vm_page_move_failed(vm, 3));
  ck_assert_uint_eq(hmmv_vm_get_nr_backed_off(vm), 0);
  hmmv_vm_note_move_failed(vm, 3, HMMV_UNMOVABLE_BUSY);   /* a new run of failures: level 1 */
  ck_assert_uint_eq(backed_off_in(vm, 3, 64), 32);
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("loop-backoff");
  TCase *tc = tcase_create("backoff");

  tcase_add_test(tc, test_no_room_lets_a_page_off_its_phase);
  tcase_add_test(tc, test_backoff_not_in_lockstep_with_the_pause);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
