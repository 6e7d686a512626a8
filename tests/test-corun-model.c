/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun's tier model (tests/bench/corun/model.c): profiles and hand-computed intervals. */
#include "hmmv-test.h"

#include "model.h"

#include <glib/gstdio.h>
#include <math.h>

#define EPS 1e-6

/* Round figures, so that every expectation below is computed by hand. */
static CorunProfile
hand_profile(void)
{
  CorunProfile p = {
    .name = (char *)"hand",
    .dram = { .read_ns = 100, .write_ns = 100, .read_gbps = 10, .write_gbps = 10 },
    .slow = { .read_ns = 300, .write_ns = 300, .read_gbps = 10, .write_gbps = 2.5 },
    .line_bytes = 64,
    .mlp = 2,
    .move_ns_per_page = 1000,
    .alpha = 1,
    .rho_max = 0.9,
  };
  return p;
}

START_TEST(test_idle_single_vm)
{
  CorunProfile p = hand_profile();
  CorunDemand d = { .compute_ns = 1000, .dram_reads = 10 };
  CorunModelStats stats;
  double t;

  corun_model_interval(&p, &d, 1, &t, &stats);
  /* t0 = 1000 + 10 x 100 / 2 = 1500; DRAM reads 640 B in 1500 ns at 10 B/ns: rho = 640/15000 */
  ck_assert_double_eq_tol(stats.idle_interval_ns, 1500, EPS);
  ck_assert_double_eq_tol(stats.rho_dram, 640.0 / 15000, EPS);
  ck_assert_double_eq_tol(stats.rho_slow, 0, EPS);
  ck_assert_double_eq_tol(t, 1000 + 10 * 100 * (1 + (640.0 / 15000) / (1 - 640.0 / 15000)) / 2,
                          EPS);
}
END_TEST

START_TEST(test_two_vms_share_bandwidth)
{
  CorunProfile p = hand_profile();
  CorunDemand d[2] = {
    { .compute_ns = 1000, .dram_reads = 100 },
    { .slow_writes = 10 },
  };
  CorunModelStats stats;
  double t[2], alone;
  double rho_dram = 6400.0 / 60000;
  /* the store misses read 640 B (ownership) and write back 640 B, at 10 and 2.5 B/ns */
  double rho_slow = 640.0 / 60000 + 640.0 / 15000;

  corun_model_interval(&p, d, 2, t, &stats);
  /* t0: VM 0 = 1000 + 100 x 100 / 2 = 6000, VM 1 = 10 x 300 / 2 = 1500: T = 6000 */
  ck_assert_double_eq_tol(stats.idle_interval_ns, 6000, EPS);
  ck_assert_double_eq_tol(stats.rho_dram, rho_dram, EPS);
  ck_assert_double_eq_tol(stats.rho_slow, rho_slow, EPS);
  ck_assert_double_eq_tol(stats.slow_write_ns, 300 * (1 + rho_slow / (1 - rho_slow)), EPS);
  ck_assert_double_eq_tol(t[0], 1000 + 100 * 100 * (1 + rho_dram / (1 - rho_dram)) / 2, EPS);
  ck_assert_double_eq_tol(t[1], 10 * 300 * (1 + rho_slow / (1 - rho_slow)) / 2, EPS);

  /* VM 1 alone takes its own 1500 ns as the interval: its rho is 4x, it is slower alone than
   * beside VM 0 only because the model measures utilization over the longest VM */
  corun_model_interval(&p, &d[1], 1, &alone, NULL);
  ck_assert_double_eq_tol(alone, 10 * 300 * (1 + 4 * rho_slow / (1 - 4 * rho_slow)) / 2, EPS);
}
END_TEST

START_TEST(test_rho_capped)
{
  CorunProfile p = hand_profile();
  /* 1000 reads in 50,000 ns: 64,000 B at 1 B/ns = 128% utilization, capped at 0.9 */
  CorunDemand d = { .dram_reads = 1000 };
  CorunModelStats stats;
  double t;

  p.dram.read_gbps = 1;

  corun_model_interval(&p, &d, 1, &t, &stats);
  ck_assert_double_eq_tol(stats.rho_dram, 0.9, EPS);
  ck_assert_double_eq_tol(stats.dram_read_ns, 100 * (1 + 0.9 / 0.1), EPS);
  ck_assert_double_eq_tol(t, 1000 * 1000.0 / 2, EPS); /* 10x the idle 50,000 ns */
}
END_TEST

START_TEST(test_migration_cost_and_traffic)
{
  CorunProfile p = hand_profile();
  /* 2 pages promoted, 1 demoted, overhead 500 ns: t0 = 3 x 1000 + 500 = 3500 */
  CorunDemand d = { .promoted = 2, .demoted = 1, .fault_ns = 500 };
  CorunModelStats stats;
  double t;

  corun_model_interval(&p, &d, 1, &t, &stats);
  ck_assert_double_eq_tol(t, 3500, EPS);
  /* DRAM: reads 4096 (the demoted page), writes 8192; slow: reads 8192, writes 4096 */
  ck_assert_double_eq_tol(stats.rho_dram, 4096.0 / 35000 + 8192.0 / 35000, EPS);
  ck_assert_double_eq_tol(stats.rho_slow, 8192.0 / 35000 + 4096.0 / 8750, EPS);
}
END_TEST

START_TEST(test_extra_traffic_loads_the_tier)
{
  CorunProfile p = hand_profile();
  CorunDemand plain = { .compute_ns = 10000, .slow_reads = 10 };
  CorunDemand filled = plain;
  double t_plain, t_filled;

  filled.extra_slow_write_bytes = 10000; /* rho_slow + 10000 / (2.5 x 11500) */
  corun_model_interval(&p, &plain, 1, &t_plain, NULL);
  corun_model_interval(&p, &filled, 1, &t_filled, NULL);
  ck_assert(t_filled > t_plain);
}
END_TEST

START_TEST(test_all_dram_never_slower)
{
  /* Moving misses from the slow tier to DRAM never makes a VM slower (both profiles). */
  const char *names[] = { "optane", "cxl" };

  for (guint n = 0; n < G_N_ELEMENTS(names); n++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunProfile) p = corun_profile_load_named(HMMV_TIER_PROFILE_DIR, names[n], &error);

    ck_assert_msg(p != NULL, "%s", error ? error->message : "");
    for (guint64 slow = 0; slow <= 1000; slow += 100) {
      CorunDemand mixed = { .compute_ns = 5000, .dram_reads = 1000 - slow, .slow_reads = slow,
                            .dram_writes = 300, .slow_writes = slow / 2 };
      CorunDemand dram = { .compute_ns = 5000, .dram_reads = 1000, .dram_writes = 300 + slow / 2 };
      double t_mixed, t_dram;

      corun_model_interval(p, &mixed, 1, &t_mixed, NULL);
      corun_model_interval(p, &dram, 1, &t_dram, NULL);
      ck_assert_msg(t_dram <= t_mixed + EPS, "%s slow=%" G_GUINT64_FORMAT ": %f > %f",
                    names[n], slow, t_dram, t_mixed);
    }
  }
}
END_TEST

START_TEST(test_profiles_in_tree)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(CorunProfile) optane = corun_profile_load_named(HMMV_TIER_PROFILE_DIR, "optane",
                                                            &error);
  g_autoptr(CorunProfile) cxl = NULL;

  ck_assert_msg(optane != NULL, "%s", error ? error->message : "");
  ck_assert_str_eq(optane->name, "optane");
  ck_assert_double_eq_tol(optane->slow.read_ns, 305, EPS);
  ck_assert_double_eq_tol(optane->slow.write_gbps, 13.9, EPS);
  ck_assert(optane->slow.write_gbps < optane->slow.read_gbps);
  cxl = corun_profile_load_named(HMMV_TIER_PROFILE_DIR, "cxl", &error);
  ck_assert_msg(cxl != NULL, "%s", error ? error->message : "");
  ck_assert(cxl->slow.read_ns < optane->slow.read_ns);
  ck_assert(corun_profile_load_named(HMMV_TIER_PROFILE_DIR, "nvdimm-n", &error) == NULL);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND));
}
END_TEST

static void
expect_bad(const char *text, const char *needle)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "bad.conf", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(CorunProfile) p = NULL;
  g_autofree char *good = NULL;

  ck_assert(g_file_get_contents(HMMV_TIER_PROFILE_DIR "/optane.conf", &good, NULL, NULL));
  ck_assert(g_file_set_contents(path, text ? text : good, -1, NULL));
  p = corun_profile_load(path, &error);
  hmmv_test_remove_tree(dir);
  if (needle == NULL) {
    ck_assert_msg(p != NULL, "%s", error ? error->message : "");
    return;
  }
  ck_assert(p == NULL);
  ck_assert_msg(strstr(error->message, needle) != NULL, "'%s' lacks '%s'", error->message,
                needle);
}

START_TEST(test_bad_profiles)
{
  expect_bad(NULL, NULL);
  expect_bad("[profile]\nname=x\n", "[dram] read-ns");
  expect_bad("[profile]\n", "name is missing");
  expect_bad("[profile]\nname=x\n[dram]\nread-ns=fast\n", "read-ns");
  expect_bad("[profile]\nname=x\n[dram]\nread-ns=0.08\nwrite-ns=80\nread-gbps=1\nwrite-gbps=1\n"
             "[slow]\nread-ns=300\nwrite-ns=300\nread-gbps=1\nwrite-gbps=1\n"
             "[cpu]\nline-bytes=64\nmlp=4\n[migration]\nmove-ns-per-page=3900\n"
             "[contention]\nalpha=0.2\nrho-max=0.95\n", "dram read-ns = 0.08");
  expect_bad("[profile]\nname=x\n[dram]\nread-ns=80\nwrite-ns=80\nread-gbps=1\nwrite-gbps=1\n"
             "[slow]\nread-ns=300\nwrite-ns=300\nread-gbps=1\nwrite-gbps=1\n"
             "[cpu]\nline-bytes=64\nmlp=4\n[migration]\nmove-ns-per-page=3900\n"
             "[contention]\nalpha=0.2\nrho-max=1\n", "rho-max");
  expect_bad("not a key file", "tier profile");
}
END_TEST

static Suite *
corun_model_suite(void)
{
  Suite *s = suite_create("corun-model");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_idle_single_vm);
  tcase_add_test(tc, test_two_vms_share_bandwidth);
  tcase_add_test(tc, test_rho_capped);
  tcase_add_test(tc, test_migration_cost_and_traffic);
  tcase_add_test(tc, test_extra_traffic_loads_the_tier);
  tcase_add_test(tc, test_all_dram_never_slower);
  tcase_add_test(tc, test_profiles_in_tree);
  tcase_add_test(tc, test_bad_profiles);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(corun_model_suite());
}
