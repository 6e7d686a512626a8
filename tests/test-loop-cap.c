/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The host-wide migration cap (loop-cap.c): shared max-min fairly among the VMs' plans, on a
 * real core with fake trackers and the sim mover. */
#include "hmmv-test.h"

#include <string.h>

#define NR_VMS 3
#define VM_PAGES 1000

typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvTracker *trackers[NR_VMS];
} Fixture;

static Fixture fx;

/* DRAM for everything (4,096 pages), so every first touch lands on DRAM; cap_mbps over
 * interval_ms gives the host cap. No per-VM cap. */
static void
setup_core(guint host_mbps, guint interval_ms)
{
  g_autoptr(GError) error = NULL;
  HmmvParams params;

  memset(&fx, 0, sizeof(fx));
  fx.topo = hmmv_test_topology_two_tier(4096u * HMMV_PAGE_SIZE, 4096u * HMMV_PAGE_SIZE);
  fx.mover = hmmv_sim_mover_new(fx.topo, &error);
  ck_assert(fx.mover != NULL);
  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  params.host_migrate_mbps = host_mbps;
  params.interval_ms = interval_ms;
  fx.core = hmmv_core_new(fx.topo, fx.mover, &params, 0, &error);
  ck_assert_msg(fx.core != NULL, "%s", error ? error->message : "");
  for (guint i = 0; i < NR_VMS; i++) {
    g_autofree char *name = g_strdup_printf("vm%u", i);

    fx.trackers[i] = hmmv_fake_tracker_new();
    ck_assert(hmmv_core_add_vm(fx.core, hmmv_test_vm_new(name, VM_PAGES), fx.trackers[i],
                               &error));
  }
}

static void
teardown_core(void)
{
  hmmv_core_free(fx.core);
  hmmv_mover_free(fx.mover);
  hmmv_topology_free(fx.topo);
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
  teardown_core();
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
  teardown_core();
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("loop-cap");
  TCase *tc = tcase_create("host-cap");

  tcase_add_test(tc, test_host_cap_shared_max_min);
  tcase_add_test(tc, test_host_cap_off);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
