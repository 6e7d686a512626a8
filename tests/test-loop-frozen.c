/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A VM frozen because its QEMU stopped answering (issue 8; core.h, hmmv_core_set_frozen): the
 * real core on the sim mover, fake trackers, counted in intervals.
 *
 * Before, a VM whose QEMU missed a QMP deadline left the core and came back from scratch when
 * QEMU answered again; meanwhile its pages stayed where they were, but nobody counted the DRAM
 * they held: the other VMs' budgets took it (their promotions then fail ENOMEM on a real
 * host) and a min the operator set could not be met. Here vm0's guest holds HELD pages of DRAM
 * when its QEMU stops answering (its harvest fails HMMV_ERROR_TIMED_OUT, as through libvirt),
 * and vm1's hot set wants more DRAM than is left. Checked:
 *   frozen  every interval: vm0 reported frozen, no error, nothing harvested, planned or moved,
 *           its tracker not called (a failure queued on it stays queued, its watch is not
 *           told), its DRAM unchanged and its budget exactly that; vm1's budget within the
 *           pool less vm0's DRAM, and the pool usage counts vm0's DRAM as held outside; a
 *           min of vm1 above what is left is scaled (the balance sees vm0's DRAM);
 *   thaw    pages moved behind the core's back while frozen (the kernel, or a guest that ran
 *           on) are found: the thaw re-reads vm0's placement from the first page, and its
 *           harvest resumes with what was queued meanwhile;
 *   removed a frozen VM that goes (its QEMU died) leaves the core as any: its DRAM is vm1's
 *           to take;
 *   held    a frozen VM removed while its QEMU lives (standalone: its QMP stream broke; it is
 *           connected again, up to 60 s later) keeps its DRAM counted through the removal
 *           (hmmv_core_hold_dram) until it is back with its placement read, or released; before,
 *           vm1's budget took it at the first interval after the removal (review 17b, E);
 *           hmmv_core_list_held_dram names each hold with its pages, out of the core or back
 *           and reading its placement (issue 8, F9: status and metrics show it);
 *   keyed   the hold is vm0's QEMU's (name and pid): another VM named vm0 with another pid (a
 *           libvirt domain beside a standalone VM) that reads its placement does not end it,
 *           does not count its own pages against it, and its removal or a release with its
 *           pid does not drop it (two holds under one name are listed as one, each released by
 *           its pid); vm0's own QEMU back ends it; a release with its pid ends it.
 *           Before, the name alone keyed it (review 18b, F5).
 */
#include "hmmv-test.h"

#include <string.h>

enum {
  NR = 4096,          /* 16 MiB each */
  POOL = 3072,        /* 12 MiB of DRAM */
  HELD = 2048,        /* vm0's guest first-touched this much of DRAM */
  HOT1 = 2048,        /* vm1's hot set: more than POOL - HELD */
  FROZEN = 12,        /* intervals vm0 stays frozen */
  KERNEL_MOVED = 300, /* vm0's pages the kernel moves to the slow node while it is frozen */
};

static void
write_vm1(HmmvTestCore *bed)
{
  hmmv_test_core_write(bed, 1, 0, HOT1);
}

static const HmmvVmReport *
run(HmmvTestCore *bed, HmmvIntervalReport *report, guint vm)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_core_run_interval(bed->core, report, &error), "%s",
                error ? error->message : "");
  return hmmv_test_vm_report(report, vm);
}

/* vm0 holds HELD pages of DRAM, vm1 runs its hot set; then vm0's harvest misses its
 * deadline and the caller (as hmmvd does) freezes it. */
static void
bed_up(HmmvTestCore *bed, HmmvIntervalReport *report)
{
  g_autoptr(GError) error = NULL;
  const HmmvVmReport *rep;

  hmmv_test_core_init(bed, hmmv_test_topology_two_tier((guint64)POOL * HMMV_PAGE_SIZE,
                                                        (guint64)4 * NR * HMMV_PAGE_SIZE),
                      NULL, POOL);
  hmmv_test_core_add_vm(bed, NR, 0);
  hmmv_test_core_add_vm(bed, NR, 0);
  hmmv_interval_report_init(report);
  hmmv_test_core_write(bed, 0, 0, HELD);
  hmmv_test_core_run(bed, report);
  ck_assert_uint_eq(hmmv_test_vm_report(report, 0)->dram_pages, HELD);
  for (guint i = 0; i < 4; i++) {   /* vm1 idle: vm0 keeps its DRAM */
    hmmv_test_core_write(bed, 0, 0, HELD);
    hmmv_test_core_run(bed, report);
  }
  hmmv_fake_tracker_fail_next(bed->trackers[0], HMMV_ERROR_TIMED_OUT);
  rep = run(bed, report, 0);
  ck_assert(rep->error != NULL && g_error_matches(rep->error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(hmmv_core_set_frozen(bed->core, "vm0", TRUE, &error));
}

START_TEST(test_frozen_kept_counted_then_thawed)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvQuota min1 = { .min_pages = POOL, .max_pages = 0, .weight = 100, .managed = TRUE };
  HmmvTestCore bed;
  guint64 held, moves0 = 0;
  guint watch_changes, watch_changes_before;
  HmmvPoolUsage usage;
  const HmmvVmReport *rep0, *rep1;

  bed_up(&bed, &report);
  held = hmmv_vm_get_dram_pages(hmmv_core_get_vm(bed.core, 0));
  printf("# vm0 holds %" G_GUINT64_FORMAT " pages of DRAM when frozen, vm1 %" G_GUINT64_FORMAT
         ", pool %u\n", held, hmmv_vm_get_dram_pages(hmmv_core_get_vm(bed.core, 1)), POOL);
  ck_assert_uint_gt(held, POOL / 2);
  (void)hmmv_fake_tracker_get_watch(bed.trackers[0], &watch_changes_before);
  /* a harvest, if the core made one, would fail: the core must not ask a frozen VM's tracker */
  hmmv_fake_tracker_fail_next(bed.trackers[0], HMMV_ERROR_TIMED_OUT);
  hmmv_core_get_pool_usage(bed.core, NULL, NULL, &usage);
  ck_assert_uint_eq(usage.held_outside_pages, held);   /* at once, before an interval */

  for (guint i = 0; i < FROZEN; i++) {
    guint64 free_dram;

    hmmv_test_core_write(&bed, 0, HELD, 512);   /* queued: the guest wrote before it stopped */
    write_vm1(&bed);
    if (i == FROZEN / 2)   /* vm1's operator asks for all of the pool */
      ck_assert(hmmv_core_set_quota(bed.core, "vm1", &min1, &error));
    if (i == 2)            /* the kernel moves some of vm0's pages behind the core's back */
      ck_assert(hmmv_sim_mover_kernel_move(bed.mover, hmmv_core_get_vm(bed.core, 0), 0,
                                           KERNEL_MOVED, 1, &error));
    rep0 = run(&bed, &report, 0);
    rep1 = hmmv_test_vm_report(&report, 1);
    ck_assert_msg(rep0->error == NULL, "interval %u: %s", i, rep0->error->message);
    ck_assert(rep0->frozen);
    ck_assert(!rep1->frozen);
    ck_assert_uint_eq(rep0->written, 0);
    ck_assert_uint_eq(rep0->intervals_merged, 0);
    ck_assert_uint_eq(rep0->promoted + rep0->demoted + rep0->homed_dram + rep0->homed_slow, 0);
    ck_assert_uint_eq(rep0->dram_pages, held);   /* its last placement, as the core knew it */
    ck_assert_uint_eq(rep0->budget_pages, held);
    ck_assert_uint_eq(rep0->min_granted_pages, 0);
    ck_assert_uint_le(rep1->budget_pages, POOL - held);
    ck_assert_uint_le(rep1->dram_pages, POOL - held);
    ck_assert_uint_le(rep0->dram_pages + rep1->dram_pages, POOL);
    free_dram = POOL - hmmv_sim_mover_get_used_pages(bed.mover, 0);
    ck_assert_uint_le(rep1->budget_pages - MIN(rep1->budget_pages, rep1->dram_pages),
                      free_dram);
    hmmv_core_get_pool_usage(bed.core, NULL, NULL, &usage);
    ck_assert_uint_eq(usage.held_outside_pages, held);
    if (i > FROZEN / 2) {
      /* vm1's min of the whole pool does not fit beside vm0's DRAM: scaled, vm0 named */
      ck_assert_ptr_nonnull(report.balance_note);
      ck_assert_msg(strstr(report.balance_note, "vm vm0 (frozen") != NULL, "%s",
                    report.balance_note);
      ck_assert_uint_le(rep1->min_granted_pages, POOL - held);
    }
    moves0 += rep0->promoted + rep0->demoted;
  }
  printf("# frozen %u intervals: vm0 kept %" G_GUINT64_FORMAT " pages counted, vm1 budget %"
         G_GUINT64_FORMAT " DRAM %" G_GUINT64_FORMAT "; note: %s\n", FROZEN, held,
         rep1->budget_pages, rep1->dram_pages, report.balance_note);
  ck_assert_uint_eq(moves0, 0);
  (void)hmmv_fake_tracker_get_watch(bed.trackers[0], &watch_changes);
  ck_assert_uint_eq(watch_changes, watch_changes_before);

  /* thawed: the harvest comes back (the failure queued meanwhile is its first: a QEMU still
   * not answering reports as before), then the placement is re-read whole */
  ck_assert(hmmv_core_set_frozen(bed.core, "vm0", FALSE, &error));
  rep0 = run(&bed, &report, 0);
  ck_assert(!rep0->frozen);
  ck_assert(rep0->error != NULL && g_error_matches(rep0->error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  /* the placement was re-read before that harvest: the kernel's moves are known */
  ck_assert_uint_eq(rep0->placement_unread, 0);
  ck_assert_uint_eq(rep0->dram_pages, held - KERNEL_MOVED);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(hmmv_core_get_vm(bed.core, 0)), held - KERNEL_MOVED);
  rep0 = run(&bed, &report, 0);
  ck_assert_msg(rep0->error == NULL, "%s", rep0->error ? rep0->error->message : "");
  ck_assert_uint_eq(rep0->written, 512);   /* what was queued while it was frozen */
  printf("# thawed: vm0 re-read with %" G_GUINT64_FORMAT " pages on DRAM (%u moved by the "
         "kernel meanwhile)\n", rep0->dram_pages, KERNEL_MOVED);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* The thaw re-reads the placement: 100 hot pages of vm0 the kernel moved to the slow node
 * while it was frozen (the core's record still has them on DRAM) are found there and
 * promoted back in the thaw's interval; without the re-read the record would show nothing to
 * promote until the rolling rescan came by. */
START_TEST(test_thaw_rereads_placement)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvTestCore bed;
  HmmvVm *vm0;
  guint64 queried, held;
  const HmmvVmReport *rep0;

  bed_up(&bed, &report);
  vm0 = hmmv_core_get_vm(bed.core, 0);
  held = hmmv_vm_get_dram_pages(vm0);
  ck_assert(hmmv_sim_mover_kernel_move(bed.mover, vm0, 0, 100, 1, &error));
  rep0 = run(&bed, &report, 0);
  ck_assert(rep0->frozen);
  ck_assert_uint_eq(rep0->dram_pages, held);   /* not looked at while frozen */
  ck_assert_uint_eq(hmmv_vm_get_page_node(vm0, 0), 0);
  ck_assert(hmmv_core_set_frozen(bed.core, "vm0", FALSE, &error));
  queried = hmmv_sim_mover_get_queried_pages(bed.mover);
  hmmv_test_core_write(&bed, 0, 0, 100);   /* the guest runs again: those pages are hot */
  rep0 = run(&bed, &report, 0);
  ck_assert(!rep0->frozen);
  ck_assert_msg(rep0->error == NULL, "%s", rep0->error ? rep0->error->message : "");
  printf("# thaw: %" G_GUINT64_FORMAT " pages queried, vm0 promoted %" G_GUINT64_FORMAT
         ", demoted %" G_GUINT64_FORMAT "\n", hmmv_sim_mover_get_queried_pages(bed.mover) - queried,
         rep0->promoted, rep0->demoted);
  /* every page of vm0 asked again */
  ck_assert_uint_ge(hmmv_sim_mover_get_queried_pages(bed.mover) - queried, NR);
  ck_assert_uint_eq(rep0->placement_unread, 0);
  ck_assert_uint_eq(rep0->promoted, 100);
  ck_assert_uint_eq(rep0->demoted, 0);
  ck_assert_uint_eq(hmmv_vm_get_page_node(vm0, 0), 0);
  ck_assert_uint_eq(rep0->dram_pages, held);
  hmmv_test_core_clear(&bed);
}
END_TEST

START_TEST(test_frozen_vm_removed)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvTestCore bed;
  HmmvPoolUsage usage;
  const HmmvVmReport *rep;
  guint64 held;

  bed_up(&bed, &report);
  held = hmmv_vm_get_dram_pages(hmmv_core_get_vm(bed.core, 0));
  write_vm1(&bed);
  ck_assert(run(&bed, &report, 0)->frozen);
  ck_assert_uint_le(hmmv_test_vm_report(&report, 1)->budget_pages, POOL - held);
  /* its QEMU died: the source removes it, as any VM */
  hmmv_sim_mover_forget_vm(bed.mover, hmmv_core_get_vm(bed.core, 0));
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  hmmv_core_get_pool_usage(bed.core, NULL, NULL, &usage);
  ck_assert_uint_eq(usage.held_outside_pages, 0);
  ck_assert_uint_eq(hmmv_core_get_nr_vms(bed.core), 1);
  ck_assert(!hmmv_core_set_frozen(bed.core, "vm0", FALSE, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND));
  write_vm1(&bed);
  hmmv_test_core_run(&bed, &report);
  rep = hmmv_test_vm_report(&report, 0);
  ck_assert_str_eq(rep->name, "vm1");
  ck_assert_uint_gt(rep->budget_pages, POOL - held);
  hmmv_test_core_clear(&bed);
}
END_TEST

/* The holds as hmmv_core_list_held_dram gives them: "name:pages:in|out", with "/pid" after
 * the name when the hold has one, joined by ","; their pages sum to
 * hmmv_core_get_held_dram_pages and are part of the pool usage listed with them. */
static char *
holds_text(HmmvCore *core)
{
  HmmvPoolUsage usage;
  g_autoptr(GArray) holds = hmmv_core_list_held_dram(core, &usage);
  g_autoptr(GString) text = g_string_new(NULL);
  guint64 sum = 0;

  for (guint i = 0; i < holds->len; i++) {
    const HmmvHeldDram *hold = &g_array_index(holds, HmmvHeldDram, i);
    g_autofree char *pid = hold->pid > 0 ? g_strdup_printf("/%d", hold->pid) : g_strdup("");

    g_string_append_printf(text, "%s%s%s:%" G_GUINT64_FORMAT ":%s", i > 0 ? "," : "",
                           hold->name, pid, hold->dram_pages, hold->in_core ? "in" : "out");
    sum += hold->dram_pages;
  }
  ck_assert_uint_eq(sum, hmmv_core_get_held_dram_pages(core));
  ck_assert_uint_le(sum, usage.held_outside_pages);
  return g_string_free(g_steal_pointer(&text), FALSE);
}

static void
assert_holds(HmmvCore *core, const char *expect)
{
  g_autofree char *text = holds_text(core);

  ck_assert_str_eq(text, expect);
}

/* vm0 (frozen) is removed with a hold while its QEMU lives: vm1's budget and DRAM stay within
 * the pool less vm0's DRAM while vm0 is out, and while vm0 is back but its placement not read;
 * the hold ends once it is read (vm0 then counts its own pages), or when released. */
START_TEST(test_removed_vm_held)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvTestCore bed;
  HmmvPoolUsage usage;
  const HmmvVmReport *rep1;
  HmmvVm *again;
  guint64 held;

  g_autofree char *expect = NULL;

  bed_up(&bed, &report);
  held = hmmv_vm_get_dram_pages(hmmv_core_get_vm(bed.core, 0));
  ck_assert(hmmv_core_hold_dram(bed.core, "vm0", &error));
  assert_holds(bed.core, "");   /* marked only: a hold is made by the removal */
  ck_assert(!hmmv_core_hold_dram(bed.core, "vm9", &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND));
  g_clear_error(&error);
  /* as hmmvd removes it: the sim forgets its pages (the real kernel keeps them) */
  hmmv_sim_mover_forget_vm(bed.mover, hmmv_core_get_vm(bed.core, 0));
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_uint_eq(hmmv_core_get_nr_vms(bed.core), 1);
  for (guint i = 0; i < FROZEN; i++) {
    write_vm1(&bed);
    rep1 = run(&bed, &report, 0);
    ck_assert_str_eq(rep1->name, "vm1");
    ck_assert_msg(rep1->budget_pages <= POOL - held, "interval %u after the removal: vm1's "
                  "budget %" G_GUINT64_FORMAT " took vm0's held DRAM (%" G_GUINT64_FORMAT
                  " of %u)", i, rep1->budget_pages, held, POOL);
    ck_assert_uint_le(rep1->dram_pages, POOL - held);
    hmmv_core_get_pool_usage(bed.core, NULL, NULL, &usage);
    ck_assert_uint_eq(usage.held_outside_pages, held);
  }
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);
  /* the status lists it (issue 8, F9): by name, what it holds, out of the core */
  expect = g_strdup_printf("vm0:%" G_GUINT64_FORMAT ":out", held);
  assert_holds(bed.core, expect);
  printf("# vm0 out of the core %u intervals: %" G_GUINT64_FORMAT " pages held, vm1 budget %"
         G_GUINT64_FORMAT " DRAM %" G_GUINT64_FORMAT " (pool %u)\n", FROZEN, held,
         rep1->budget_pages, rep1->dram_pages, POOL);

  /* connected again: a new VM of that name (the sim finds its pages on DRAM, where the hold
   * kept room for them); its placement is read in its first harvest, so it takes part in that
   * interval's balance with its own pages, the hold counting only what the read did not find */
  again = hmmv_test_vm_new("vm0", NR);
  hmmv_test_core_add(&bed, again);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);
  g_free(expect);
  expect = g_strdup_printf("vm0:%" G_GUINT64_FORMAT ":in", held);   /* back, not read yet */
  assert_holds(bed.core, expect);
  hmmv_test_core_write(&bed, 2, 0, HELD);
  write_vm1(&bed);
  rep1 = run(&bed, &report, 0);
  ck_assert_uint_eq(hmmv_test_vm_report(&report, 1)->placement_unread, 0);
  ck_assert_uint_le(hmmv_test_vm_report(&report, 1)->budget_pages + rep1->budget_pages, POOL);
  ck_assert_uint_le(hmmv_test_vm_report(&report, 1)->dram_pages + rep1->dram_pages, POOL);
  for (guint i = 0; i < 3; i++) {
    hmmv_test_core_write(&bed, 2, 0, HELD);
    write_vm1(&bed);
    rep1 = run(&bed, &report, 0);
    ck_assert_uint_le(hmmv_test_vm_report(&report, 1)->budget_pages + rep1->budget_pages, POOL);
    ck_assert_uint_le(hmmv_test_vm_report(&report, 1)->dram_pages + rep1->dram_pages, POOL);
  }
  /* read: the hold ended, vm0 counts its own pages */
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);
  assert_holds(bed.core, "");
  printf("# back: vm0 %" G_GUINT64_FORMAT " pages on DRAM, vm1 %" G_GUINT64_FORMAT
         ", hold ended\n", hmmv_test_vm_report(&report, 1)->dram_pages, rep1->dram_pages);

  /* held again, then its QEMU died: released, vm1 may take it */
  held = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(bed.core, "vm0"));
  ck_assert_uint_gt(held, 0);
  ck_assert(hmmv_core_hold_dram(bed.core, "vm0", &error));
  hmmv_sim_mover_forget_vm(bed.mover, hmmv_core_lookup_vm(bed.core, "vm0"));
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);
  g_free(expect);
  expect = g_strdup_printf("vm0:%" G_GUINT64_FORMAT ":out", held);
  assert_holds(bed.core, expect);
  hmmv_core_release_dram(bed.core, "vm0", 0);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);
  assert_holds(bed.core, "");
  write_vm1(&bed);
  rep1 = run(&bed, &report, 0);
  ck_assert_uint_gt(rep1->budget_pages, POOL - held);
  hmmv_test_core_clear(&bed);
}
END_TEST

START_TEST(test_release_before_deferred_removal)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvTestCore bed;

  bed_up(&bed, &report);
  /* hmmvd: hold marked while an interval runs, removal deferred; the QEMU dies and is
   * released before the deferred removal runs */
  ck_assert(hmmv_core_hold_dram(bed.core, "vm0", &error));
  hmmv_core_release_dram(bed.core, "vm0", 0);
  hmmv_sim_mover_forget_vm(bed.mover, hmmv_core_get_vm(bed.core, 0));
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_msg(hmmv_core_get_held_dram_pages(bed.core) == 0,
                "released before its removal, yet %" G_GUINT64_FORMAT " pages held",
                hmmv_core_get_held_dram_pages(bed.core));
  hmmv_test_core_clear(&bed);
}
END_TEST

enum { PID_A = 1001, PID_B = 2002, PID_C = 3003 };

/* vm0's QEMU (PID_A) leaves with a hold; a different VM named vm0 (PID_B) comes and reads its
 * placement, then leaves with a hold of its own, released; a third (PID_C) comes and goes
 * unmarked; then vm0's own QEMU comes back and ends the hold; held again, only the release
 * with PID_A ends it. */
START_TEST(test_hold_keyed_by_pid)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvTestCore bed;
  HmmvPoolUsage usage;
  HmmvVm *stranger, *back, *other, *again;
  guint64 held, held_other;
  g_autofree char *expect = NULL;

  bed_up(&bed, &report);
  hmmv_vm_set_pid(hmmv_core_get_vm(bed.core, 0), PID_A);
  held = hmmv_vm_get_dram_pages(hmmv_core_get_vm(bed.core, 0));
  ck_assert(hmmv_core_hold_dram(bed.core, "vm0", &error));
  hmmv_sim_mover_forget_vm(bed.mover, hmmv_core_get_vm(bed.core, 0));
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);

  /* another QEMU under the same name: read whole, it is not vm0's QEMU back */
  stranger = hmmv_test_vm_new("vm0", NR);
  hmmv_vm_set_pid(stranger, PID_B);
  hmmv_test_core_add(&bed, stranger);   /* trackers[2] */
  for (guint i = 0; i < 4; i++) {
    const HmmvVmReport *rep;

    hmmv_test_core_write(&bed, 2, 0, HELD / 2);
    write_vm1(&bed);
    (void)run(&bed, &report, 0);
    rep = hmmv_test_vm_report(&report, 1);
    ck_assert_str_eq(rep->name, "vm0");
    ck_assert_uint_eq(rep->placement_unread, 0);
    ck_assert_msg(hmmv_core_get_held_dram_pages(bed.core) == held, "interval %u: vm0 (pid %d) "
                  "read its placement (%" G_GUINT64_FORMAT " pages on DRAM) and the hold of "
                  "pid %d is %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " pages", i, PID_B,
                  rep->dram_pages, PID_A, hmmv_core_get_held_dram_pages(bed.core), held);
    hmmv_core_get_pool_usage(bed.core, NULL, NULL, &usage);
    ck_assert_uint_ge(usage.held_outside_pages, held);
  }
  printf("# vm0 pid %d held %" G_GUINT64_FORMAT " pages while vm0 pid %d ran 4 intervals "
         "with %" G_GUINT64_FORMAT " on DRAM\n", PID_A, held, PID_B,
         hmmv_vm_get_dram_pages(stranger));
  expect = g_strdup_printf("vm0/%d:%" G_GUINT64_FORMAT ":out", PID_A, held);   /* not back */
  assert_holds(bed.core, expect);
  /* it leaves with a hold too: two holds under one name, listed one entry each with its pid
   * (merged, they were one "in" entry once either QEMU was back: review 19, finding 4), each
   * released by its own pid */
  held_other = hmmv_vm_get_dram_pages(stranger);
  ck_assert_uint_gt(held_other, 0);
  ck_assert(hmmv_core_hold_dram(bed.core, "vm0", &error));
  hmmv_sim_mover_forget_vm(bed.mover, stranger);
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held + held_other);
  g_free(expect);
  expect = g_strdup_printf("vm0/%d:%" G_GUINT64_FORMAT ":out,vm0/%d:%" G_GUINT64_FORMAT ":out",
                           PID_A, held, PID_B, held_other);
  assert_holds(bed.core, expect);
  /* PID_B's QEMU back, its placement not read yet: only its own hold is being read */
  again = hmmv_test_vm_new("vm0", NR);
  hmmv_vm_set_pid(again, PID_B);
  hmmv_test_core_add(&bed, again);   /* trackers[3] */
  g_free(expect);
  expect = g_strdup_printf("vm0/%d:%" G_GUINT64_FORMAT ":out,vm0/%d:%" G_GUINT64_FORMAT ":in",
                           PID_A, held, PID_B, held_other);
  assert_holds(bed.core, expect);
  hmmv_sim_mover_forget_vm(bed.mover, again);
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));   /* unmarked: drops its hold */
  hmmv_core_release_dram(bed.core, "vm0", PID_B);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);

  /* a third QEMU under the name comes and goes unmarked, and is released: vm0's hold stays */
  other = hmmv_test_vm_new("vm0", NR);
  hmmv_vm_set_pid(other, PID_C);
  hmmv_test_core_add(&bed, other);   /* trackers[4] */
  hmmv_test_core_write(&bed, 4, 0, HELD / 4);
  write_vm1(&bed);
  (void)run(&bed, &report, 0);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);
  hmmv_sim_mover_forget_vm(bed.mover, other);
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);
  hmmv_core_release_dram(bed.core, "vm0", PID_C);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);

  /* vm0's own QEMU back: once its placement is read, the hold ends */
  back = hmmv_test_vm_new("vm0", NR);
  hmmv_vm_set_pid(back, PID_A);
  hmmv_test_core_add(&bed, back);   /* trackers[5] */
  for (guint i = 0; i < 4; i++) {
    hmmv_test_core_write(&bed, 5, 0, HELD);
    write_vm1(&bed);
    (void)run(&bed, &report, 0);
  }
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);

  /* held again; a release of another pid neither ends it nor unmarks the VM */
  held = hmmv_vm_get_dram_pages(back);
  ck_assert_uint_gt(held, 0);
  ck_assert(hmmv_core_hold_dram(bed.core, "vm0", &error));
  hmmv_core_release_dram(bed.core, "vm0", PID_B);
  hmmv_sim_mover_forget_vm(bed.mover, back);
  ck_assert(hmmv_core_remove_vm(bed.core, "vm0", &error));
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);
  hmmv_core_release_dram(bed.core, "vm0", PID_B);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), held);

  hmmv_core_release_dram(bed.core, "vm0", PID_A);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);
  assert_holds(bed.core, "");
  hmmv_test_core_clear(&bed);
}
END_TEST

int
main(void)
{
  Suite *suite = suite_create("loop-frozen");
  TCase *tc = tcase_create("frozen");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_frozen_kept_counted_then_thawed);
  tcase_add_test(tc, test_thaw_rereads_placement);
  tcase_add_test(tc, test_frozen_vm_removed);
  tcase_add_test(tc, test_removed_vm_held);
  tcase_add_test(tc, test_release_before_deferred_removal);
  tcase_add_test(tc, test_hold_keyed_by_pid);
  suite_add_tcase(suite, tc);
  return hmmv_test_run(suite);
}
