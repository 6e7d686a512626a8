/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The host-wide migration cap (loop-cap.c): shared max-min fairly among the VMs' plans, on a
 * real core with fake trackers and the sim mover. */
#include "hmmv-test.h"

#include <stdio.h>
#include <string.h>

#define DRAM_NODE 0
#define SLOW_NODE 1

#define NR_VMS 3
#define VM_PAGES 1000

static HmmvTestCore fx;

/* DRAM for everything (4,096 pages), so every first touch lands on DRAM; cap_mbps over
 * interval_ms gives the host cap. No per-VM cap. */
static void
setup_core(guint host_mbps, guint interval_ms)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  params.host_migrate_mbps = host_mbps;
  params.interval_ms = interval_ms;
  hmmv_test_core_init(&fx, hmmv_test_topology_two_tier(4096u * HMMV_PAGE_SIZE,
                                                       4096u * HMMV_PAGE_SIZE),
                      &params, 0);
  for (guint i = 0; i < NR_VMS; i++)
    hmmv_test_core_add_vm(&fx, VM_PAGES, -1);
}

/* The reference: progressive filling, one page at a time to each VM that still wants one, in
 * turn, until the cap is spent. Slow and obviously max-min fair; the core's water filling
 * must give the same pages (its rounding leftovers also go from the lowest index). */
static void
reference_shares(const guint64 *want, guint64 *grant, guint n, guint64 cap)
{
  gboolean more = TRUE;

  memset(grant, 0, n * sizeof(*grant));
  while (cap > 0 && more) {
    more = FALSE;
    for (guint i = 0; i < n && cap > 0; i++) {
      if (grant[i] < want[i]) {
        grant[i]++;
        cap--;
        more = TRUE;
      }
    }
  }
}

/* Three VMs must give back 31, 300 and 500 DRAM pages (their dram-max fell), the host allows
 * 400 moves an interval: 31 / 185 / 184 (the page left by rounding to the lowest index that
 * wants more), then 0 / 115 / 285 (what vm0 and vm1 no longer need goes to vm2), then the last
 * 31 of vm2. The per-VM lists alone would have moved all 831 in the first interval (next
 * case). */
START_TEST(test_host_cap_shared_max_min)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  const guint64 max_pages[NR_VMS] = { 969, 700, 500 };
  guint64 left[NR_VMS] = { 31, 300, 500 };
  guint64 cap;

  /* 1 MB/s over 1,639 ms = 400 pages of 4 KiB */
  setup_core(1, 1639);
  cap = hmmv_params_host_cap_pages(hmmv_core_get_params(fx.core));
  ck_assert_uint_eq(cap, 400);
  for (guint i = 0; i < NR_VMS; i++) {
    HmmvQuota quota = { .max_pages = max_pages[i], .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, i), &quota);
    for (guint64 p = 0; p < VM_PAGES; p++)
      hmmv_fake_tracker_queue_write(fx.trackers[i], p);
  }
  hmmv_interval_report_init(&report);
  for (guint interval = 0; interval < 4; interval++) {
    guint64 expect[NR_VMS], total = 0;

    reference_shares(left, expect, NR_VMS, cap);
    ck_assert(hmmv_core_run_interval(fx.core, &report, &error));
    for (guint i = 0; i < NR_VMS; i++) {
      const HmmvVmReport *rep = &g_array_index(report.vms, HmmvVmReport, i);

      ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
      ck_assert_uint_eq(rep->promoted, 0);
      ck_assert_msg(rep->demoted == expect[i], "interval %u vm%u: demoted %" G_GUINT64_FORMAT
                    ", max-min share %" G_GUINT64_FORMAT, interval, i, rep->demoted, expect[i]);
      ck_assert_uint_eq(rep->deferred_host_cap, left[i] - expect[i]);
      left[i] -= rep->demoted;
      total += rep->demoted;
    }
    ck_assert_uint_le(total, cap);
  }
  ck_assert_uint_eq(left[0] + left[1] + left[2], 0);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(hmmv_core_get_vm(fx.core, 2)), 500);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* Cap 0: no host cap, all 831 in the first interval. */
START_TEST(test_host_cap_off)
{
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autoptr(GError) error = NULL;
  const guint64 max_pages[NR_VMS] = { 969, 700, 500 };
  guint64 total = 0;

  setup_core(0, 1000);
  for (guint i = 0; i < NR_VMS; i++) {
    HmmvQuota quota = { .max_pages = max_pages[i], .weight = 100, .managed = TRUE };

    hmmv_vm_set_quota(hmmv_core_get_vm(fx.core, i), &quota);
    for (guint64 p = 0; p < VM_PAGES; p++)
      hmmv_fake_tracker_queue_write(fx.trackers[i], p);
  }
  hmmv_interval_report_init(&report);
  ck_assert(hmmv_core_run_interval(fx.core, &report, &error));
  for (guint i = 0; i < NR_VMS; i++)
    total += g_array_index(report.vms, HmmvVmReport, i).demoted;
  ck_assert_uint_eq(total, 831);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* One VM of nr_pages in 2 MiB units (hugetlbfs: the sim's 512-page units) on dram_pages of
 * DRAM and a slow tier of twice the VM; the sim charges 1 ns a page, so its charged_ns counts
 * the pages migrated. */
static HmmvVm *
setup_units(const char *name, guint64 nr_pages, guint64 dram_pages, const HmmvParams *params)
{
  HmmvVm *vm = hmmv_vm_new(name);

  hmmv_test_core_init(&fx, hmmv_test_topology_two_tier(dram_pages * HMMV_PAGE_SIZE,
                                                       2 * nr_pages * HMMV_PAGE_SIZE),
                      params, 0);
  ck_assert(hmmv_vm_add_region(vm, "ram", 0, 0, nr_pages * HMMV_PAGE_SIZE, 2u << 20, NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  hmmv_sim_mover_set_ns_per_page(fx.mover, 1);
  hmmv_test_core_add(&fx, vm);
  return vm;
}

/* A unit larger than one interval's cap moves once the cap has carried enough over (the
 * token bucket of loop-cap.c). In production that is a 1 GiB hugetlbfs page (262,144 pages)
 * under the default caps (48,828 pages an interval per VM, 244,140 for the host); here, where
 * the sim models 2 MiB hugetlbfs pages, a 512-page unit under caps of 244 (1 MB/s), the same
 * arithmetic. Before the bucket each interval started from 244 and the hot unit never moved
 * (deferred every interval). The bucket lends nothing in advance: after n intervals at most
 * n x 244 pages have moved, and never more than one unit's worth in one interval. */
START_TEST(test_unit_above_cap_moves_with_carry_over)
{
  enum { NR = 4096, DRAM = 2560, UNIT = 512, CAP = 244, HOT = 3072 };
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvVm *vm;
  HmmvParams params;
  guint64 charged = 0, deferred = 0;
  guint promoted_at = 0;

  hmmv_params_init(&params);
  params.migrate_mbps = 1;                    /* 1e6 B/s x 1 s / 4096 = 244 pages */
  params.host_migrate_mbps = 1;               /* the host's bucket must carry over too */
  ck_assert_uint_eq(hmmv_params_cap_pages(&params), CAP);
  ck_assert_uint_eq(hmmv_params_host_cap_pages(&params), CAP);
  vm = setup_units("gib", NR, DRAM, &params);
  hmmv_interval_report_init(&report);

  for (guint i = 0; i < 40 && promoted_at == 0; i++) {
    const HmmvVmReport *rep;
    guint64 now;

    /* interval 0 touches everything: units 0..4 fill DRAM, 5..7 land on the slow node; then
     * unit 6 is hot and a cold unit must make room for it */
    for (guint64 p = 0; p < NR; p++)
      if (i == 0 || (p >= HOT && p < HOT + UNIT))
        hmmv_fake_tracker_queue_write(fx.trackers[0], p);
    hmmv_test_core_run(&fx, &report);
    rep = hmmv_test_vm_report(&report, 0);
    if (i == 0)
      ck_assert_int_eq(hmmv_vm_get_page_node(vm, HOT), SLOW_NODE);
    now = hmmv_sim_mover_get_charged_ns(fx.mover);
    ck_assert_uint_le(now - charged, UNIT);
    ck_assert_uint_le(now, (guint64)(i + 1) * CAP);
    ck_assert_uint_eq(rep->promoted + rep->demoted, now - charged);
    charged = now;
    deferred += rep->deferred_cap + rep->deferred_unit;
    if (hmmv_vm_get_page_node(vm, HOT) == DRAM_NODE)
      promoted_at = i;
  }
  ck_assert_msg(promoted_at > 0, "the hot 512-page unit never moved under a 244-page cap "
                "(%" G_GUINT64_FORMAT " pages deferred)", deferred);
  for (guint64 p = HOT; p < HOT + UNIT; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), DRAM_NODE);
  /* a demotion of one unit and a promotion of another: 1,024 pages, 5 intervals of cap */
  ck_assert_uint_eq(charged, 2 * UNIT);
  printf("# the unit was promoted in interval %u\n", promoted_at);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* The bound of the brief (issue 7): a unit of 10.24 caps, as a 1 GiB hugetlbfs page is under
 * a cap of 100 MiB an interval, moves within ceil(10.24) + 1 = 12 intervals of the first plan
 * that wants it, and over any n intervals the VM moves at most n caps. Here a 2 MiB unit
 * (512 pages, what the sim models) under 50 pages an interval (1 MB/s at 205 ms): the same
 * ratio. Phase A: dram-max falls by one unit and a cold unit is demoted (the bucket is spent
 * by it); nothing is promoted meanwhile (promote-min-key 255). Phase B: the room comes back
 * and the hot unit, warm by then, is wanted at once: it moves when the bucket holds 512
 * pages again, 11 intervals later. Before the bucket (main before 5f049a9) neither unit ever
 * moved. */
START_TEST(test_unit_of_ten_caps_within_bound)
{
  enum { NR = 4096, DRAM = 2560, UNIT = 512, CAP = 50, HOT = 3072 };
  g_autoptr(GError) error = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvVm *vm;
  HmmvParams params;
  HmmvQuota quota = { .max_pages = DRAM - UNIT, .weight = 100, .managed = TRUE };
  guint64 charged = 0, wanted_at = 0, promoted_at = 0, demoted_at = 0;
  guint i;

  hmmv_params_init(&params);
  params.migrate_mbps = 1;
  params.interval_ms = 205;                   /* 1e6 B/s x 0.205 s / 4096 = 50 pages */
  params.host_migrate_mbps = 0;
  params.promote_min_key = 255;               /* phase A: nothing is hot */
  ck_assert_uint_eq(hmmv_params_cap_pages(&params), CAP);
  vm = setup_units("gib", NR, DRAM, &params);
  hmmv_interval_report_init(&report);

  for (i = 0; i < 80 && promoted_at == 0; i++) {
    const HmmvVmReport *rep;
    guint64 now;

    for (guint64 p = 0; p < NR; p++)
      if (i == 0 || (p >= HOT && p < HOT + UNIT))
        hmmv_fake_tracker_queue_write(fx.trackers[0], p);
    if (i == 1)
      hmmv_vm_set_quota(vm, &quota);
    if (demoted_at > 0 && i == demoted_at + 1) {
      /* phase B: the room is back, the hot unit is warm and wanted from this plan on */
      quota.max_pages = DRAM;
      hmmv_vm_set_quota(vm, &quota);
      params.promote_min_key = 0x10;
      ck_assert(hmmv_core_set_params(fx.core, &params, &error));
    }
    hmmv_test_core_run(&fx, &report);
    rep = hmmv_test_vm_report(&report, 0);
    now = hmmv_sim_mover_get_charged_ns(fx.mover);
    /* never more than n caps in n intervals: the bucket lends nothing in advance */
    ck_assert_uint_le(now, (guint64)(i + 1) * CAP);
    charged = now;
    if (demoted_at == 0 && rep->demoted > 0) {
      ck_assert_uint_eq(rep->demoted, UNIT);
      demoted_at = i;
    }
    if (wanted_at == 0 && demoted_at > 0 && i >= demoted_at + 1 &&
        (rep->deferred_cap + rep->deferred_unit > 0 || rep->promoted > 0))
      wanted_at = i;
    if (hmmv_vm_get_page_node(vm, HOT) == DRAM_NODE)
      promoted_at = i;
  }
  ck_assert_msg(demoted_at > 0, "the cold unit was never demoted");
  ck_assert_msg(promoted_at > 0 && wanted_at > 0, "the hot unit was never promoted");
  printf("# cold unit demoted in interval %" G_GUINT64_FORMAT ", hot unit wanted from %"
         G_GUINT64_FORMAT ", promoted in %" G_GUINT64_FORMAT "; %" G_GUINT64_FORMAT
         " pages in %u intervals (cap %u)\n", demoted_at, wanted_at, promoted_at, charged, i,
         CAP);
  /* the bucket starts from the 0-50 pages left after the demotion: ceil(512 / 50) + 1 */
  ck_assert_uint_le(promoted_at - wanted_at + 1, (UNIT + CAP - 1) / CAP + 1);
  ck_assert_uint_le(demoted_at, (UNIT + CAP - 1) / CAP + 1);
  for (guint64 p = HOT; p < HOT + UNIT; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), DRAM_NODE);
  ck_assert_uint_eq(charged, 2 * UNIT);
  hmmv_test_core_clear(&fx);
}
END_TEST

/* A unit larger than a VM's share of the host cap, while another VM takes its share every
 * interval: "big" (hugetlbfs, 512-page units) must give back one unit, "busy" (4 KiB pages)
 * 10,000 pages, under a host cap of 244 pages an interval and no per-VM cap. The host's
 * bucket is 512 deep, but big's max-min share was at most half of it and busy spent its half
 * every interval, so big's unit never fitted: before, 0 pages of big moved in 30 intervals.
 * Now big's share is saved for it while its unit does not fit: the unit moves within a few
 * intervals while busy's demotions still wait, and the host still moves at most n caps in n
 * intervals. */
START_TEST(test_unit_above_host_share_moves)
{
  enum { BIG = 4096, BUSY = 20000, UNIT = 512, CAP = 244 };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(
    (guint64)(BIG + BUSY + 1000) * HMMV_PAGE_SIZE, (guint64)4 * BUSY * HMMV_PAGE_SIZE);
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autoptr(HmmvCore) core = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvTracker *trackers[2] = { hmmv_fake_tracker_new(), hmmv_fake_tracker_new() };
  HmmvVm *big = hmmv_vm_new("big"), *busy = hmmv_test_vm_new("busy", BUSY);
  HmmvQuota big_quota = { .max_pages = BIG - UNIT, .weight = 100, .managed = TRUE };
  HmmvQuota busy_quota = { .max_pages = BUSY - 10000, .weight = 100, .managed = TRUE };
  HmmvParams params;
  guint64 moved = 0, demoted_at = 0;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  params.host_migrate_mbps = 1;               /* 244 pages an interval */
  ck_assert_uint_eq(hmmv_params_host_cap_pages(&params), CAP);
  ck_assert(hmmv_vm_add_region(big, "ram", 0, 0, (guint64)BIG * HMMV_PAGE_SIZE, 2u << 20, NULL));
  ck_assert(hmmv_vm_finalize_layout(big, NULL));
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_core_add_vm(core, big, trackers[0], &error));
  ck_assert(hmmv_core_add_vm(core, busy, trackers[1], &error));
  hmmv_interval_report_init(&report);

  for (guint i = 0; i < 30 && demoted_at == 0; i++) {
    const HmmvVmReport *rep_big, *rep_busy;

    if (i == 0) {
      for (guint64 p = 0; p < BIG; p++)
        hmmv_fake_tracker_queue_write(trackers[0], p);
      for (guint64 p = 0; p < BUSY; p++)
        hmmv_fake_tracker_queue_write(trackers[1], p);
    }
    if (i == 1) {
      hmmv_vm_set_quota(big, &big_quota);
      hmmv_vm_set_quota(busy, &busy_quota);
    }
    ck_assert(hmmv_core_run_interval(core, &report, &error));
    rep_big = &g_array_index(report.vms, HmmvVmReport, 0);
    rep_busy = &g_array_index(report.vms, HmmvVmReport, 1);
    ck_assert(rep_big->error == NULL && rep_busy->error == NULL);
    if (i == 0)
      ck_assert_uint_eq(hmmv_vm_get_dram_pages(big) + hmmv_vm_get_dram_pages(busy), BIG + BUSY);
    moved += rep_big->moved_max_pages + rep_busy->moved_max_pages;
    ck_assert_uint_le(moved, (guint64)(i + 1) * CAP);
    if (rep_big->demoted > 0) {
      ck_assert_uint_eq(rep_big->demoted, UNIT);
      demoted_at = i;
      /* busy's demotions still wait: it was not starved for it */
      ck_assert_uint_gt(hmmv_vm_get_dram_pages(busy), BUSY - 10000 + 5000);
      ck_assert_uint_gt(BUSY - hmmv_vm_get_dram_pages(busy), 0);
    }
  }
  printf("# big's unit demoted in interval %" G_GUINT64_FORMAT "; busy gave back %"
         G_GUINT64_FORMAT " pages meanwhile\n", demoted_at,
         (guint64)BUSY - hmmv_vm_get_dram_pages(busy));
  ck_assert_msg(demoted_at > 0, "big's 512-page unit never moved beside busy (host cap %u)",
                CAP);
  /* 512 pages at about half of 244 an interval from interval 1 */
  ck_assert_uint_le(demoted_at, 1 + (UNIT + CAP / 2 - 1) / (CAP / 2) + 1);
  hmmv_core_remove_vm(core, "big", NULL);
  hmmv_core_remove_vm(core, "busy", NULL);
}
END_TEST

/* Issue 7/8, the two-socket testbed's hmmvd-e2e (0 promoted in 800 intervals, 18,368 pages
 * demoted): 48 MiB of 2 MiB hugetlbfs units, a budget a fraction of a unit above three units
 * (3 x 512 + 136 pages), a hot set of two units that shifts by two units every SHIFT
 * intervals (the guest's 200k writes, ~50 intervals there), and a per-VM cap of 976 pages
 * (8 MB/s at 500 ms), less than a swap of two units (1,024 pages). After each shift both hot
 * units must be on DRAM, the VM within its budget, within REACH intervals. Counted in
 * intervals. Most of them are the payback gate's: the last unit to come in must displace an
 * old hot unit, which takes ~20 intervals to cool (1/16 an interval) below it by the gate's
 * margin; the swap itself is two intervals (demote, then promote into its room). Before the
 * fix only the unit that could displace a cold unit came in; the second waited for good:
 * its swap's promotion took the cap left over that the demotion needed to round up to a
 * whole unit, so neither moved (plan.c, decide()). */
START_TEST(test_shifting_unit_hot_set_under_small_cap)
{
  enum { NR = 12288, UNIT = 512, CAP = 976, BUDGET = 3 * UNIT + 136, HOT = 2 * UNIT,
         SHIFT = 50, NR_SHIFTS = 6, REACH = 30 };
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvVm *vm;
  HmmvParams params;
  HmmvQuota quota = { .max_pages = BUDGET, .weight = 100, .managed = TRUE };
  guint64 promoted = 0, demoted = 0, reached_in[NR_SHIFTS];

  hmmv_params_init(&params);
  params.migrate_mbps = 8;
  params.interval_ms = 500;                   /* 8e6 B/s x 0.5 s / 4096 = 976 pages */
  params.host_migrate_mbps = 0;
  ck_assert_uint_eq(hmmv_params_cap_pages(&params), CAP);
  vm = setup_units("vm1", NR, 8192, &params);
  hmmv_interval_report_init(&report);

  for (guint s = 0; s < NR_SHIFTS; s++) {
    /* units 2 + 2s and 3 + 2s; the first phase also waits for the budget to be reached */
    guint64 hot = (guint64)(2 + 2 * s) * UNIT;

    reached_in[s] = 0;
    for (guint i = 0; i < SHIFT; i++) {
      const HmmvVmReport *rep;
      guint64 on_dram = 0;

      for (guint64 p = 0; p < NR; p++)
        if ((s == 0 && i == 0) || (p >= hot && p < hot + HOT))
          hmmv_fake_tracker_queue_write(fx.trackers[0], p);
      if (s == 0 && i == 1)
        hmmv_vm_set_quota(vm, &quota);
      hmmv_test_core_run(&fx, &report);
      rep = hmmv_test_vm_report(&report, 0);
      promoted += rep->promoted;
      demoted += rep->demoted;
      ck_assert_uint_le(rep->moved_max_pages, CAP);
      for (guint64 p = hot; p < hot + HOT; p++)
        on_dram += hmmv_vm_get_page_node(vm, p) == DRAM_NODE;
      if (reached_in[s] == 0 && on_dram == HOT && hmmv_vm_get_dram_pages(vm) <= BUDGET)
        reached_in[s] = i + 1;
    }
    printf("# shift %u (hot units %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT "): on DRAM "
           "within budget after %" G_GUINT64_FORMAT " intervals (0: never in %u); promoted %"
           G_GUINT64_FORMAT ", demoted %" G_GUINT64_FORMAT ", DRAM %" G_GUINT64_FORMAT
           " pages\n", s, hot / UNIT, hot / UNIT + 1, reached_in[s], SHIFT, promoted, demoted,
           hmmv_vm_get_dram_pages(vm));
    fflush(stdout);
  }
  for (guint s = 0; s < NR_SHIFTS; s++)
    ck_assert_msg(reached_in[s] > 0 && reached_in[s] <= (s == 0 ? SHIFT : REACH),
                  "shift %u: the hot units were not on DRAM within budget after %u intervals "
                  "(%" G_GUINT64_FORMAT "; promoted %" G_GUINT64_FORMAT " in all)", s,
                  s == 0 ? SHIFT : REACH, reached_in[s], promoted);
  hmmv_test_core_clear(&fx);
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("loop-cap");
  TCase *tc = tcase_create("host-cap");

  tcase_add_test(tc, test_host_cap_shared_max_min);
  tcase_add_test(tc, test_host_cap_off);
  tcase_add_test(tc, test_unit_above_cap_moves_with_carry_over);
  tcase_add_test(tc, test_unit_of_ten_caps_within_bound);
  tcase_add_test(tc, test_unit_above_host_share_moves);
  tcase_add_test(tc, test_shifting_unit_hot_set_under_small_cap);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
