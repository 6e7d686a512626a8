/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun's payback gate at the core's interval (tests/bench/corun/gate.c): the figures it
 * measures on a trace, per core interval, and what they change in the replay: the real core
 * no longer moves pages whose moves the tier model says cannot pay back. */
#include "corun-test.h"

#include "gate.h"
#include "run.h"

#include <hmmv/hmmv.h>

/* One VM of 8 pages, 4 intervals: page 0 read 4 times in each, page 1 written twice in
 * intervals 0 and 2, page 2 read 6 times in interval 1. */
static void
write_small_trace(const char *path)
{
  HmmvTraceInfo info = { .nr_pages = 8, .interval_ms = 10, .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(path, &info, &error);

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 4; k++) {
    HmmvTraceEntry e[2] = { { 0, 4, 0, 0 } };
    gsize n = 1;

    if (k % 2 == 0)
      e[n++] = (HmmvTraceEntry){ 1, 0, 2, 0 };
    else if (k == 1)
      e[n++] = (HmmvTraceEntry){ 2, 6, 0, 0 };
    ck_assert(hmmv_trace_writer_add_interval(w, 1000, e, n, &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));
}

static void
calibrate(const CorunSetup *s, guint per_core, guint64 max_intervals, CorunGate *gate)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(corun_gate_calibrate(s, per_core, max_intervals, gate, &error), "%s",
                error ? error->message : "");
}

/* Optane: a miss saves (305 - 80) / mlp 4 = 56.25 ns; a written interval weighs 2, a read 1.
 * Per trace interval: 7 touched (page, interval) pairs, 26 misses (1462.5 ns) over weight
 * 4 + 2 x 2 + 1 = 9: 162.5 ns. Per two: pages 0, 1, 2 then 0, 1: 5 pairs, weight 7: 208.9 ns.
 * The first interval alone: pages 0 and 1, 6 misses, weight 3: 112.5 ns. */
START_TEST(test_gate_measured_per_core_interval)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  CorunVmInfo vm = { .name = (char *)"vm0", .nr_pages = 8 };
  CorunSetup s = { .nr_vms = 1, .vms = &vm, .dram_pages = 4, .interval_ms = 10, .profile = p };
  CorunGate gate;

  vm.trace_path = g_build_filename(dir, "vm0.trace", NULL);
  write_small_trace(vm.trace_path);
  calibrate(&s, 1, 0, &gate);
  ck_assert_uint_eq(gate.touched, 7);
  ck_assert_double_eq_tol(gate.misses_per_touched, 26.0 / 7.0, 1e-9);
  ck_assert_uint_eq(gate.touch_saving_ns, 163);
  ck_assert_uint_eq(gate.move_cost_ns, 3900);
  calibrate(&s, 2, 0, &gate);
  ck_assert_uint_eq(gate.touched, 5);
  ck_assert_uint_eq(gate.touch_saving_ns, 209);
  calibrate(&s, 1, 1, &gate);
  ck_assert_uint_eq(gate.touched, 2);
  ck_assert_uint_eq(gate.touch_saving_ns, 113);
  /* the core's interval from --hmmv-interval-ms */
  ck_assert_uint_eq(corun_gate_per_core(&s), 1);
  s.hmmv_interval_ms = 500;
  ck_assert_uint_eq(corun_gate_per_core(&s), 50);
  hmmv_test_remove_tree(dir);
  g_free(vm.trace_path);
}
END_TEST

/* A trace whose header says more pages than the setup: refused, not read past the arrays. */
START_TEST(test_gate_refuses_a_bigger_trace)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  CorunVmInfo vm = { .name = (char *)"vm0", .nr_pages = 4 };
  CorunSetup s = { .nr_vms = 1, .vms = &vm, .dram_pages = 4, .interval_ms = 10, .profile = p };
  g_autoptr(GError) error = NULL;
  CorunGate gate;

  vm.trace_path = g_build_filename(dir, "vm0.trace", NULL);
  write_small_trace(vm.trace_path);
  ck_assert(!corun_gate_calibrate(&s, 1, 0, &gate, &error));
  ck_assert_msg(error != NULL && strstr(error->message, "vm vm0: ") != NULL, "%s",
                error ? error->message : "no error");
  hmmv_test_remove_tree(dir);
  g_free(vm.trace_path);
}
END_TEST

/* One VM of 64 pages, DRAM 16. Interval 0 reads pages 0-15 once (first touch puts them on
 * DRAM, then they are never touched again); from interval 1 pages 16-31 are read once every
 * interval. A promotion there saves 56 ns an interval on the model and costs 3.9 us, and a
 * demotion to make its room as much: 40 intervals do not pay back two moves. At hmmvd's
 * defaults (7,200 ns a touched interval) hmmv-ideal swaps the read pages in anyway, and the
 * VM is slower than first touch; at the gate measured on the trace it moves nothing. */
START_TEST(test_measured_gate_keeps_moves_that_cannot_pay)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  CorunVmInfo vm = { .name = (char *)"vm0", .nr_pages = 64, .weight = 100 };
  CorunSetup s = { .nr_vms = 1, .vms = &vm, .dram_pages = 16, .interval_ms = 10, .profile = p };
  const char *policies[] = { "all-dram", "first-touch", "hmmv-ideal", NULL };
  HmmvTraceInfo info = { .nr_pages = 64, .interval_ms = 10, .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = NULL;
  g_autoptr(CorunRun) defaults = NULL;
  g_autoptr(CorunRun) measured = NULL;
  HmmvTraceEntry e[16];
  CorunGate gate;
  int ft, hi;

  vm.trace_path = g_build_filename(dir, "vm0.trace", NULL);
  w = hmmv_trace_writer_new(vm.trace_path, &info, &error);
  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 40; k++) {
    for (guint i = 0; i < 16; i++)
      e[i] = (HmmvTraceEntry){ (k == 0 ? 0 : 16) + i, 1, 0, 0 };
    ck_assert(hmmv_trace_writer_add_interval(w, 100000, e, 16, &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));

  defaults = corun_run(&s, policies, 0, NULL, NULL, &error);
  ck_assert_msg(defaults != NULL, "%s", error ? error->message : "");
  calibrate(&s, corun_gate_per_core(&s), 0, &gate);
  ck_assert_uint_eq(gate.touch_saving_ns, 56);
  s.hmmv_touch_saving_ns = gate.touch_saving_ns;
  s.hmmv_move_cost_ns = gate.move_cost_ns;
  measured = corun_run(&s, policies, 0, NULL, NULL, &error);
  ck_assert_msg(measured != NULL, "%s", error ? error->message : "");

  ft = corun_run_find(defaults, "first-touch");
  hi = corun_run_find(defaults, "hmmv-ideal");
  ck_assert_int_ge(ft, 0);
  ck_assert_int_ge(hi, 0);
  /* at hmmvd's defaults: moves that the model charges more than they save */
  ck_assert_uint_gt(corun_result_moved(defaults, (guint)hi, -1), 0);
  ck_assert(corun_result_total_ns(defaults, (guint)hi) >
            corun_result_total_ns(defaults, (guint)ft));
  /* measured: none, and the VM runs as first touch does */
  ck_assert_uint_eq(corun_result_moved(measured, (guint)hi, -1), 0);
  ck_assert_double_eq_tol(corun_result_total_ns(measured, (guint)hi),
                          corun_result_total_ns(measured, (guint)ft), 1e-6);
  hmmv_test_remove_tree(dir);
  g_free(vm.trace_path);
}
END_TEST

static Suite *
corun_gate_suite(void)
{
  Suite *s = suite_create("corun-gate");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_gate_measured_per_core_interval);
  tcase_add_test(tc, test_gate_refuses_a_bigger_trace);
  tcase_add_test(tc, test_measured_gate_keeps_moves_that_cannot_pay);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(corun_gate_suite());
}
