/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun's setup.json and replay (tests/bench/corun/setup.c, run.c): the quotas, halted
 * VMs, start_slow ranges and touched pages a setup gives the policies, every policy on a
 * generated setup, and the setups refused. The policies themselves: test-corun-policies.c. */
#include "corun-test.h"

#include "run.h"
#include "setup.h"

#include <glib/gstdio.h>
#include <string.h>

/* A VM of nr_pages whose first hot pages are written in every interval. */
static void
write_hot_trace(const char *path, guint64 nr_pages, guint64 hot, guint intervals)
{
  HmmvTraceInfo info = { .nr_pages = nr_pages, .interval_ms = 100,
                         .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(path, &info, &error);
  g_autofree HmmvTraceEntry *e = g_new0(HmmvTraceEntry, hot);

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint64 p = 0; p < hot; p++)
    e[p] = (HmmvTraceEntry){ p, 0, 20, 0 };
  for (guint k = 0; k < intervals; k++)
    ck_assert(hmmv_trace_writer_add_interval(w, 100000, e, hot, &error));
  ck_assert(hmmv_trace_writer_close(w, &error));
}

/* DRAM pages VM vm of policy name held after the last interval. */
static guint64
last_dram_pages(const CorunRun *run, const char *name, guint vm)
{
  int pi = corun_run_find(run, name);
  guint64 pages = G_MAXUINT64;

  ck_assert_int_ge(pi, 0);
  for (guint i = 0; i < run->samples->len; i++) {
    const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

    if (smp->policy == (guint)pi && smp->vm == vm && smp->interval == run->intervals - 1)
      pages = smp->dram_pages;
  }
  ck_assert_uint_ne(pages, G_MAXUINT64);
  return pages;
}

/* setup.json's quotas (dram_min_mib, dram_max_mib, weight) reach hmmv's balance, and only
 * hmmv's: two VMs of 4 MiB, each writing a hot set of 2 MiB in every interval, share 3 MiB
 * of DRAM. First touch gives vm0 its whole hot set and vm1 the last 1 MiB; hmmv alone evens
 * them (1.5 MiB each); a min of 2 MiB for vm1, or a max of 1 MiB for vm0, or weight 300 for
 * vm1 gives vm1 its whole hot set. first-touch, which knows no quota, ends the same in all. */
START_TEST(test_hmmv_honours_setup_quotas)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  const char *policies[] = { "all-dram", "first-touch", "hmmv-writes", NULL };
  const struct {
    const char *vm0, *vm1;
    guint64 vm1_min_dram;     /* vm1's DRAM at the end: at least */
    guint64 vm1_max_dram;     /* and at most */
  } cases[] = {
    { "", "", 384 - 8, 384 + 8 },
    { "", ", \"dram_min_mib\": 2", 512, 512 },
    { ", \"dram_max_mib\": 1", "", 512, 512 },
    { "", ", \"weight\": 300", 512, 512 },
  };

  for (guint v = 0; v < 2; v++) {
    g_autofree char *file = g_strdup_printf("%s/vm%u.trace", dir, v);

    write_hot_trace(file, 1024, 512, 40);
  }
  for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"quotas\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"%s}, "
      "{\"name\": \"vm1\", \"trace\": \"vm1.trace\"%s}]}", cases[c].vm0, cases[c].vm1);
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;
    g_autoptr(CorunRun) run = NULL;
    guint64 vm0, vm1;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
    sf->setup.profile = p;
    sf->setup.dram_pages = 768;
    run = corun_run(&sf->setup, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(last_dram_pages(run, "first-touch", 0), 512);
    ck_assert_uint_eq(last_dram_pages(run, "first-touch", 1), 256);
    vm0 = last_dram_pages(run, "hmmv-writes", 0);
    vm1 = last_dram_pages(run, "hmmv-writes", 1);
    ck_assert_msg(vm1 >= cases[c].vm1_min_dram && vm1 <= cases[c].vm1_max_dram,
                  "case %u: vm1 holds %" G_GUINT64_FORMAT " DRAM pages, vm0 %" G_GUINT64_FORMAT,
                  c, vm1, vm0);
    ck_assert_uint_le(vm0 + vm1, 768);
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

/* setup.json's "halted": a VM whose guest halted before the others idles after its trace ends
 * (no instruction, no miss) and the replay runs to the end of the others' traces; without
 * it the shortest trace ends the run, as before. */
START_TEST(test_halted_vm_idles_after_its_trace)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *t0 = g_build_filename(dir, "vm0.trace", NULL);
  g_autofree char *t1 = g_build_filename(dir, "vm1.trace", NULL);
  const char *policies[] = { "all-dram", "first-touch", "hmmv-writes", NULL };

  write_hot_trace(t0, 1024, 512, 20);
  write_hot_trace(t1, 1024, 256, 5);
  for (guint halted = 0; halted < 2; halted++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"halt\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"}, "
      "{\"name\": \"vm1\", \"trace\": \"vm1.trace\", \"halted\": %s}]}",
      halted ? "true" : "false");
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;
    g_autoptr(CorunRun) run = NULL;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
    sf->setup.profile = p;
    sf->setup.dram_pages = 512;
    run = corun_run(&sf->setup, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(run->intervals, halted ? 20 : 5);
    for (guint pi = 0; pi < run->nr_policies; pi++) {
      /* vm1's misses are its 5 intervals' in both cases; vm0's are its whole trace's */
      ck_assert_uint_eq(run->results[pi].accesses[1], 5 * 256 * 20);
      ck_assert_uint_eq(run->results[pi].accesses[0], run->intervals * 512 * 20);
    }
    for (guint i = 0; i < run->samples->len; i++) {
      const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

      if (smp->vm == 1 && smp->interval >= 5 && smp->policy == 0)
        ck_assert_double_eq(smp->time_ns, 0);   /* all-DRAM: an idle VM takes no time */
    }
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

/* setup.json's "start_slow": the pages of the range are first touched on the slow tier even
 * while DRAM has room (the testbed's starting placement: the hot set moved to the slow node
 * before the mechanism starts); first-touch then serves them from the slow tier for good, and
 * numa-balancing's hint faults bring them up, which the per-interval start_slow_dram shows.
 * Without the field every page fits in DRAM and nothing is slow. Bad ranges are refused. */
START_TEST(test_start_slow_first_touch)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *t0 = g_build_filename(dir, "vm0.trace", NULL);
  const char *policies[] = { "all-dram", "first-touch", "numa-balancing", NULL };
  const char *bad[] = { "[0, 257]", "[200, 57]", "[-1, 4]", "[0]", "\"0-8\"", "[0, 1.5]" };

  write_hot_trace(t0, 256, 64, 40);
  for (guint with = 0; with < 2; with++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"slow\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"%s}]}",
      with ? ", \"start_slow\": [16, 32]" : "");
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;
    g_autoptr(CorunRun) run = NULL;
    int ft, nb;
    gint64 first = -2, last = -2;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(sf->setup.vms[0].start_slow_first, (with ? 16 : 0));
    ck_assert_uint_eq(sf->setup.vms[0].start_slow_pages, (with ? 32 : 0));
    sf->setup.profile = p;
    sf->setup.dram_pages = 128;   /* room for the whole hot set of 64 */
    run = corun_run(&sf->setup, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    ft = corun_run_find(run, "first-touch");
    nb = corun_run_find(run, "numa-balancing");
    /* 32 of the 64 pages on the slow tier from the start: half of first-touch's misses */
    ck_assert_double_eq_tol(corun_result_dram_share(run, (guint)ft, -1), (with ? 0.5 : 1.0),
                            1e-9);
    ck_assert_uint_eq(last_dram_pages(run, "first-touch", 0), (with ? 32 : 64));
    for (guint i = 0; i < run->samples->len; i++) {
      const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

      if (smp->policy != (guint)nb)
        continue;
      if (smp->interval == 0)
        first = smp->start_slow_dram;
      if (smp->interval == run->intervals - 1)
        last = smp->start_slow_dram;
    }
    /* numa-balancing: none of the range on DRAM after the first interval, all of it at the
     * end (DRAM has room: pgdat_free_space_enough is false at 128 pages, but every fault is
     * well under the 1 s threshold); -1 without a range */
    ck_assert_int_eq(first, (with ? 0 : -1));
    ck_assert_int_eq(last, (with ? 32 : -1));
    ck_assert_uint_eq(last_dram_pages(run, "numa-balancing", 0), 64);
  }
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"slow\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\", \"start_slow\": %s}]}", bad[i]);
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf == NULL, "accepted start_slow %s", bad[i]);
    ck_assert_msg(strstr(error->message, "\"start_slow\" must be [first, count]") != NULL,
                  "%s", error->message);
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

/* hmmv-corun replay --dram-of touched: the pages the traces touch in the intervals replayed,
 * each counted once per VM: vm0 touches page 2k (and page 0 again) in interval k of 20,
 * vm1 its 256 first pages in each of 5 intervals. */
START_TEST(test_touched_pages)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *t0 = g_build_filename(dir, "vm0.trace", NULL);
  g_autofree char *t1 = g_build_filename(dir, "vm1.trace", NULL);
  HmmvTraceInfo info = { .nr_pages = 1024, .interval_ms = 100, .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(t0, &info, &error);
  g_autoptr(CorunSetupFile) sf = NULL;
  guint64 touched = 0;

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 20; k++) {
    HmmvTraceEntry e[2] = { { 0, 1, 0, 0 }, { 2 * k + 2, 0, 1, 0 } };

    ck_assert(hmmv_trace_writer_add_interval(w, 1000, e, 2, &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));
  write_hot_trace(t1, 512, 256, 5);
  ck_assert(g_file_set_contents(path, "{\"setup\": \"t\", \"interval_ms\": 100, \"vms\": ["
                                "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"}, "
                                "{\"name\": \"vm1\", \"trace\": \"vm1.trace\"}]}", -1, NULL));
  sf = corun_setup_load(dir, &error);
  ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(sf->total_pages, 1024 + 512);
  ck_assert(corun_setup_touched_pages(&sf->setup, 0, &touched, &error));
  ck_assert_uint_eq(touched, 21 + 256);
  ck_assert(corun_setup_touched_pages(&sf->setup, 3, &touched, &error));
  ck_assert_uint_eq(touched, 4 + 256);
  hmmv_test_remove_tree(dir);
}
END_TEST

/* Every policy on a generated co-run: the assertions of the corun suite, in small. */
START_TEST(test_bounds_on_generated_setup)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(CorunSetupFile) sf = NULL;
  g_autoptr(CorunRun) run = NULL;
  g_autofree char **names = g_new0(char *, 32);
  int ref, oracle;

  ck_assert_msg(corun_setup_generate(dir, 3, 1024, 12, 7, &error), "%s",
                error ? error->message : "");
  sf = corun_setup_load(dir, &error);
  ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
  sf->setup.profile = p;
  sf->setup.dram_pages = sf->total_pages / 4;
  for (guint i = 0; corun_policies[i] != NULL; i++)
    names[i] = (char *)corun_policies[i]->name;
  run = corun_run(&sf->setup, (const char *const *)names, 0, NULL, NULL, &error);
  ck_assert_msg(run != NULL, "%s", error ? error->message : "");
  ref = corun_run_find(run, "all-dram");
  oracle = corun_run_find(run, "oracle");
  for (guint pi = 0; pi < run->nr_policies; pi++) {
    ck_assert(corun_result_dram_share(run, (guint)oracle, -1) + 1e-12 >=
              corun_result_dram_share(run, pi, -1));
    ck_assert(corun_result_total_ns(run, (guint)ref) <= corun_result_total_ns(run, pi) + 1e-6);
    /* one VM may gain a little from neighbours on the slow tier (shared bandwidth) */
    for (guint v = 0; v < run->nr_vms; v++)
      ck_assert(run->results[ref].runtime_ns[v] <= run->results[pi].runtime_ns[v] * 1.01);
  }
  ck_assert_double_eq_tol(corun_result_dram_share(run, (guint)ref, -1), 1.0, 1e-12);
  hmmv_test_remove_tree(dir);
}
END_TEST

START_TEST(test_bad_setups)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  const char *bad[][2] = {
    { "[]", "not a JSON object" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": []}", "\"vms\" must be an array" },
    { "{\"setup\": \"x\", \"vms\": [{}]}", "interval_ms" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"../a\", \"trace\": \"t\"}]}",
      "VM name" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"nope\"}]}",
      "vm a" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\"}]}", "\"trace\"" },
    { "{\"setup\": \"x\", \"interval_ms\": 10} trailing", "" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"t\", "
      "\"dram_min_mib\": 2, \"dram_max_mib\": 1}]}", "dram_min_mib 2 is above dram_max_mib 1" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"t\", "
      "\"dram_max_mib\": -1}]}", "\"dram_max_mib\" must be an integer" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"t\", "
      "\"halted\": 1}]}", "\"halted\" must be true or false" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"numa_balancing\": 3, \"vms\": []}",
      "\"numa_balancing\" must be an object" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"numa_balancing\": {\"scan_period_ms\": -1}}",
      "numa_balancing: \"scan_period_ms\" must be an integer" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"numa_balancing\": {\"high_wmark_pages\": 9, "
      "\"promo_wmark_pages\": 8}}", "promo_wmark_pages 8 is below high_wmark_pages 9" },
  };

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;

    ck_assert(g_file_set_contents(path, bad[i][0], -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf == NULL, "accepted %s", bad[i][0]);
    ck_assert_msg(strstr(error->message, bad[i][1]) != NULL, "'%s' lacks '%s'", error->message,
                  bad[i][1]);
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

static Suite *
corun_setup_suite(void)
{
  Suite *s = suite_create("corun-setup");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_hmmv_honours_setup_quotas);
  tcase_add_test(tc, test_halted_vm_idles_after_its_trace);
  tcase_add_test(tc, test_start_slow_first_touch);
  tcase_add_test(tc, test_touched_pages);
  tcase_add_test(tc, test_bounds_on_generated_setup);
  tcase_add_test(tc, test_bad_setups);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(corun_setup_suite());
}
