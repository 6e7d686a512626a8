/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The co-run recorder's core (tests/corun/recorder/recorder.c): LLC misses per page and
 * interval, read back through the trace reader. */
#include "hmmv-test.h"
#include "recorder.h"

#include <glib/gstdio.h>

static char *tmpdir;

static void
setup(void)
{
  tmpdir = g_dir_make_tmp("hmmv-test-recorder-XXXXXX", NULL);
  ck_assert_ptr_nonnull(tmpdir);
}

static void
teardown(void)
{
  hmmv_test_remove_tree(tmpdir);
  g_clear_pointer(&tmpdir, g_free);
}

static HmmvRecorder *
recorder_new(const char *path, guint64 interval_insns)
{
  g_autoptr(GError) error = NULL;
  HmmvRecorderOptions options = {
    .trace_path = path, .ram_bytes = 16u << 20, .llc_bytes = 64 * 1024, .llc_ways = 4,
    .interval_insns = interval_insns, .ns_per_insn = 0.5,
  };
  HmmvRecorder *rec = hmmv_recorder_new(&options, &error);

  ck_assert_msg(rec != NULL, "%s", error ? error->message : "");
  return rec;
}

/* Two intervals of known accesses: misses counted per page as reads or writes, hits not,
 * non-RAM dropped; instructions and compute time per interval. */
START_TEST(test_intervals)
{
  g_autofree char *path = g_build_filename(tmpdir, "r.trace", NULL);
  g_autoptr(HmmvRecorder) rec = recorder_new(path, 1000);
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autoptr(GError) error = NULL;
  const HmmvTraceEntry *e;
  HmmvTraceInterval iv;
  HmmvRecorderStats stats;
  gsize nr;

  /* interval 0: page 0x200 read on 3 lines, twice each (3 misses); page 0x300 written on
   * one line 5 times (1 miss); the legacy hole and past RAM dropped */
  for (int k = 0; k < 2; k++)
    for (int l = 0; l < 3; l++)
      hmmv_recorder_access(rec, 0x200000 + l * 64, FALSE);
  for (int k = 0; k < 5; k++)
    hmmv_recorder_access(rec, 0x300000 + 8 * k, TRUE);
  hmmv_recorder_access(rec, 0xb8000, TRUE);
  hmmv_recorder_access(rec, 16u << 20, FALSE);
  ck_assert(hmmv_recorder_add_insns(rec, 600, &error));
  ck_assert(hmmv_recorder_add_insns(rec, 500, &error));   /* 1,100 >= 1,000: written */
  /* interval 1: a store to a line still cached (no miss, but the stored bit: what a dirty
   * bitmap sees of a read-modify-write), a new page missed by a write */
  hmmv_recorder_access(rec, 0x200000, TRUE);
  hmmv_recorder_access(rec, 0x3000, TRUE);
  ck_assert(hmmv_recorder_add_insns(rec, 10, &error));
  ck_assert(hmmv_recorder_finish(rec, &error));
  hmmv_recorder_get_stats(rec, &stats);
  ck_assert_uint_eq(stats.accesses, 13);
  ck_assert_uint_eq(stats.misses, 5);
  ck_assert_uint_eq(stats.dropped, 2);
  ck_assert_uint_eq(stats.instructions, 1110);
  ck_assert_uint_eq(stats.intervals, 2);

  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_msg(reader != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(hmmv_trace_reader_get_info(reader)->nr_pages, 4096);
  ck_assert_uint_eq(hmmv_trace_reader_get_info(reader)->flags,
                    HMMV_TRACE_HAS_READS | HMMV_TRACE_HAS_INSTRUCTIONS | HMMV_TRACE_HAS_STORED);
  ck_assert(hmmv_trace_reader_next_interval(reader, &iv, &e, &nr, &error));
  ck_assert_uint_eq(iv.instructions, 1100);
  ck_assert_uint_eq(iv.compute_ns, 550);
  ck_assert_uint_eq(nr, 2);
  ck_assert_uint_eq(e[0].page, 0x200);
  ck_assert_uint_eq(e[0].reads, 3);
  ck_assert_uint_eq(e[0].writes, 0);
  ck_assert_uint_eq(e[0].stored, 0);
  ck_assert_uint_eq(e[1].page, 0x300);
  ck_assert_uint_eq(e[1].reads, 0);
  ck_assert_uint_eq(e[1].writes, 1);
  ck_assert_uint_eq(e[1].stored, 1);      /* 5 stores, 1 miss */
  ck_assert(hmmv_trace_reader_next_interval(reader, &iv, &e, &nr, &error));
  ck_assert_uint_eq(iv.instructions, 10);
  ck_assert_uint_eq(nr, 2);
  ck_assert_uint_eq(e[0].page, 3);
  ck_assert_uint_eq(e[0].writes, 1);
  ck_assert_uint_eq(e[0].stored, 1);
  ck_assert_uint_eq(e[1].page, 0x200);    /* stored to, every access a hit */
  ck_assert_uint_eq(e[1].reads + e[1].writes, 0);
  ck_assert_uint_eq(e[1].stored, 1);
  ck_assert(!hmmv_trace_reader_next_interval(reader, &iv, &e, &nr, &error));
  ck_assert_ptr_null(error);
}
END_TEST

/* Pages come out ascending whatever the order they were first touched in; a sweep larger
 * than the LLC misses on every line, every time. */
START_TEST(test_sweep)
{
  g_autofree char *path = g_build_filename(tmpdir, "s.trace", NULL);
  g_autoptr(HmmvRecorder) rec = recorder_new(path, 1u << 30);
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autoptr(GError) error = NULL;
  const HmmvTraceEntry *e;
  HmmvTraceInterval iv;
  gsize nr;

  /* 64 pages = 256 KiB, four times the 64 KiB LLC, descending, twice */
  for (int pass = 0; pass < 2; pass++)
    for (int p = 63; p >= 0; p--)
      for (int l = 0; l < 64; l++)
        hmmv_recorder_access(rec, ((guint64)(0x800 + p) << 12) + l * 64, pass == 1);
  ck_assert(hmmv_recorder_add_insns(rec, 5, &error));
  ck_assert(hmmv_recorder_finish(rec, &error));
  reader = hmmv_trace_reader_new(path, &error);
  ck_assert(hmmv_trace_reader_next_interval(reader, &iv, &e, &nr, &error));
  ck_assert_uint_eq(nr, 64);
  for (guint i = 0; i < 64; i++) {
    ck_assert_uint_eq(e[i].page, 0x800 + i);
    ck_assert_uint_eq(e[i].reads, 64);
    ck_assert_uint_eq(e[i].writes, 64);
  }
}
END_TEST

/* intervals=N: the trace is closed and whole after N intervals, and later accesses and
 * instructions are not counted (the co-run stops its VMs then). */
START_TEST(test_max_intervals)
{
  g_autofree char *path = g_build_filename(tmpdir, "m.trace", NULL);
  g_autoptr(GError) error = NULL;
  HmmvRecorderOptions options = {
    .trace_path = path, .ram_bytes = 16u << 20, .llc_bytes = 64 * 1024, .llc_ways = 4,
    .interval_insns = 100, .ns_per_insn = 0.5, .max_intervals = 3,
  };
  g_autoptr(HmmvRecorder) rec = hmmv_recorder_new(&options, &error);
  g_autoptr(HmmvTraceReader) reader = NULL;
  const HmmvTraceEntry *e;
  HmmvTraceInterval iv;
  HmmvRecorderStats stats;
  gsize nr;

  ck_assert_msg(rec != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 5; k++) {
    ck_assert(!hmmv_recorder_is_complete(rec) == (k < 3));
    hmmv_recorder_access(rec, (guint64)(0x400 + k) << 12, TRUE);
    ck_assert(hmmv_recorder_add_insns(rec, 100, &error));
  }
  ck_assert(hmmv_recorder_is_complete(rec));
  /* already whole on disk before finish (QEMU may be killed once it is complete) */
  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_msg(reader != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 3; k++) {
    ck_assert(hmmv_trace_reader_next_interval(reader, &iv, &e, &nr, &error));
    ck_assert_uint_eq(nr, 1);
    ck_assert_uint_eq(e[0].page, 0x400 + k);
  }
  ck_assert(!hmmv_trace_reader_next_interval(reader, &iv, &e, &nr, &error));
  ck_assert_ptr_null(error);
  ck_assert(hmmv_recorder_finish(rec, &error));
  hmmv_recorder_get_stats(rec, &stats);
  ck_assert_uint_eq(stats.intervals, 3);
  ck_assert_uint_eq(stats.instructions, 300);
  ck_assert_uint_eq(stats.misses, 3);
}
END_TEST

START_TEST(test_bad_options)
{
  g_autofree char *path = g_build_filename(tmpdir, "b.trace", NULL);
  g_autofree char *nodir = g_build_filename(tmpdir, "no", "such", "x.trace", NULL);
  g_autoptr(GError) error = NULL;
  HmmvRecorderOptions small = { .trace_path = path, .ram_bytes = 4096 };
  HmmvRecorderOptions llc = { .trace_path = path, .ram_bytes = 16u << 20,
                              .llc_bytes = 3u << 20 };
  HmmvRecorderOptions missing = { .trace_path = nodir, .ram_bytes = 16u << 20 };

  ck_assert_ptr_null(hmmv_recorder_new(&small, &error));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_recorder_new(&llc, &error));
  ck_assert_msg(strstr(error->message, "power of two") != NULL, "%s", error->message);
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_recorder_new(&missing, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO));
}
END_TEST

static Suite *
recorder_suite(void)
{
  Suite *suite = suite_create("recorder");
  TCase *tc = tcase_create("core");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_intervals);
  tcase_add_test(tc, test_sweep);
  tcase_add_test(tc, test_max_intervals);
  tcase_add_test(tc, test_bad_options);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(recorder_suite());
}
