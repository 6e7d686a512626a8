/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmv-test.h"

#include <hmmv/reads.h>

#include <glib/gstdio.h>
#include <string.h>

#define NR_PAGES 200

static char *tmpdir;

static void
setup(void)
{
  tmpdir = g_dir_make_tmp("hmmv-test-tracker-XXXXXX", NULL);
  ck_assert_ptr_nonnull(tmpdir);
}

static void
teardown(void)
{
  hmmv_test_remove_tree(tmpdir);
  g_clear_pointer(&tmpdir, g_free);
}

/* ---- registration ---- */

static gboolean
null_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  acc->intervals = 1;
  return TRUE;
}

static void
count_destroy(HmmvTracker *tracker)
{
  (*(int *)tracker->priv)++;
}

static const struct hmmv_tracker_ops no_name = { .harvest = null_harvest,
                                                 .destroy = count_destroy };
static const struct hmmv_tracker_ops no_harvest = { .name = "x", .destroy = count_destroy };
static const struct hmmv_tracker_ops minimal = { .name = "minimal", .harvest = null_harvest,
                                                 .destroy = count_destroy };

START_TEST(test_registration)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autoptr(HmmvAccess) wrong = hmmv_access_new(NR_PAGES + 1, NULL);
  HmmvTracker *tracker;
  int destroyed = 0;

  ck_assert_ptr_null(hmmv_tracker_new(&no_name, &destroyed, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_tracker_new(&no_harvest, &destroyed, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_tracker_new(NULL, NULL, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  /* priv was handed over: it is released even when registration fails */
  ck_assert_int_eq(destroyed, 2);

  tracker = hmmv_tracker_new(&minimal, &destroyed, &error);
  ck_assert_ptr_nonnull(tracker);
  ck_assert_str_eq(hmmv_tracker_get_name(tracker), "minimal");
  /* optional hooks missing: the wrappers do nothing and succeed */
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(acc->intervals, 1);
  ck_assert(!hmmv_tracker_harvest(tracker, vm, wrong, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  hmmv_tracker_stop(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_int_eq(destroyed, 3);
}
END_TEST

/* ---- fake ---- */

static void
assert_bitmap_is(const guint64 *bitmap, const gboolean *expected, guint64 nr_pages)
{
  for (guint64 page = 0; page < nr_pages; page++)
    ck_assert_msg(hmmv_bitmap_test(bitmap, page) == expected[page], "page %" G_GUINT64_FORMAT,
                  page);
}

START_TEST(test_fake_once)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(3);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autoptr(HmmvTracker) tracker = hmmv_fake_tracker_new();
  g_autoptr(GError) error = NULL;

  ck_assert_str_eq(hmmv_tracker_get_name(tracker), "fake");
  for (int round = 0; round < 10; round++) {
    gboolean writes[NR_PAGES] = { 0 }, reads[NR_PAGES] = { 0 };
    gboolean any_read = FALSE;

    /* random pages, some queued twice */
    for (int k = 0; k < 60; k++) {
      guint64 page = (guint64)g_rand_int_range(rand, 0, NR_PAGES);

      if (g_rand_boolean(rand)) {
        hmmv_fake_tracker_queue_write(tracker, page);
        writes[page] = TRUE;
      } else if (round % 3 != 0) {
        hmmv_fake_tracker_queue_read(tracker, page);
        reads[page] = any_read = TRUE;
      }
    }
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert_int_eq(acc->has_reads, any_read);
    assert_bitmap_is(acc->writes, writes, NR_PAGES);
    assert_bitmap_is(acc->reads, reads, NR_PAGES);
    /* the queue was consumed: the next harvest is empty */
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    ck_assert_uint_eq(hmmv_bitmap_count(acc->writes, acc->nr_words), 0);
    ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 0);
  }
}
END_TEST

START_TEST(test_fake_fail_next)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autoptr(HmmvTracker) tracker = hmmv_fake_tracker_new();
  g_autoptr(GError) error = NULL;

  hmmv_fake_tracker_queue_write(tracker, 5);
  hmmv_fake_tracker_fail_next(tracker, HMMV_ERROR_GONE);
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
  ck_assert_str_eq(error->message, "fake failure (code 5)");
  g_clear_error(&error);
  /* recovers; the pages queued before the failure are reported now */
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(hmmv_bitmap_test(acc->writes, 5));
  ck_assert_uint_eq(hmmv_bitmap_count(acc->writes, acc->nr_words), 1);
  /* a page past the VM is an error, not a write out of bounds */
  hmmv_fake_tracker_queue_read(tracker, NR_PAGES);
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
}
END_TEST

/* ---- replay ---- */

typedef struct {
  GArray *entries;          /* HmmvTraceEntry */
  guint64 compute_ns;
} Interval;

/* Writes nr_intervals random intervals and returns them. */
static GPtrArray *
write_random_trace(const char *path, guint64 nr_pages, guint nr_intervals, guint32 flags,
                   guint32 seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
  HmmvTraceInfo info = { .nr_pages = nr_pages, .interval_ms = 100, .flags = flags };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, &info, &error);
  GPtrArray *intervals = g_ptr_array_new();

  ck_assert_ptr_nonnull(writer);
  for (guint k = 0; k < nr_intervals; k++) {
    GArray *entries = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));

    for (guint64 page = 0; page < nr_pages; page++) {
      if (g_rand_int_range(rand, 0, 4) == 0) {
        /* either count may be zero, so entries with only reads exist */
        HmmvTraceEntry entry = { page, (guint32)g_rand_int_range(rand, 0, 3),
                                 (guint32)g_rand_int_range(rand, 0, 3), 0 };

        g_array_append_val(entries, entry);
      }
    }
    ck_assert(hmmv_trace_writer_add_interval(writer, 1000 + k, (HmmvTraceEntry *)entries->data,
                                             entries->len, &error));
    g_ptr_array_add(intervals, entries);
  }
  ck_assert(hmmv_trace_writer_close(writer, &error));
  return intervals;
}

static void
free_intervals(GPtrArray *intervals)
{
  for (guint k = 0; k < intervals->len; k++)
    g_array_unref(intervals->pdata[k]);
  g_ptr_array_unref(intervals);
}

/* The harvest equals a brute-force rendering of the interval's entries. */
static void
assert_harvest_is(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GArray *entries,
                  guint64 compute_ns, gboolean has_reads)
{
  gboolean writes[NR_PAGES] = { 0 }, reads[NR_PAGES] = { 0 };
  g_autoptr(GError) error = NULL;
  const HmmvTraceEntry *last;
  guint64 last_ns;
  gsize last_nr;

  for (guint i = 0; i < entries->len; i++) {
    HmmvTraceEntry *entry = &g_array_index(entries, HmmvTraceEntry, i);

    writes[entry->page] = entry->writes > 0;
    reads[entry->page] = has_reads && entry->reads > 0;
  }
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                error ? error->message : "");
  ck_assert_uint_eq(acc->intervals, 1);
  ck_assert_int_eq(acc->has_reads, has_reads);
  assert_bitmap_is(acc->writes, writes, NR_PAGES);
  assert_bitmap_is(acc->reads, reads, NR_PAGES);
  ck_assert(hmmv_replay_tracker_last_interval(tracker, &last, &last_nr, &last_ns));
  ck_assert_uint_eq(last_nr, entries->len);
  ck_assert_uint_eq(last_ns, compute_ns);
  for (gsize i = 0; i < last_nr; i++) {
    const HmmvTraceEntry *want = &g_array_index(entries, HmmvTraceEntry, i);

    /* field by field (padding); a version 1 or 2 trace reads stored as writes > 0 */
    ck_assert_uint_eq(last[i].page, want->page);
    ck_assert_uint_eq(last[i].reads, want->reads);
    ck_assert_uint_eq(last[i].writes, want->writes);
    ck_assert_uint_eq(last[i].stored, want->writes > 0);
  }
}

/* _i: 0 no loop, 1 loop; reads flag alternates with it; 2 and 3 the same on version 2
 * traces (instruction counts, as the co-run recorder writes them). */
START_TEST(test_replay)
{
  gboolean loop = _i % 2 == 1;
  gboolean has_reads = _i % 2 == 0;
  g_autofree char *path = g_build_filename(tmpdir, "replay.trace", NULL);
  GPtrArray *intervals = write_random_trace(path, NR_PAGES, 5,
                                            (has_reads ? HMMV_TRACE_HAS_READS : 0) |
                                            (_i >= 2 ? HMMV_TRACE_HAS_INSTRUCTIONS : 0),
                                            11 + _i);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTracker) tracker = hmmv_replay_tracker_new(path, loop, &error);
  const HmmvTraceEntry *last;
  guint64 last_ns;
  gsize last_nr;

  ck_assert_ptr_nonnull(tracker);
  ck_assert_str_eq(hmmv_tracker_get_name(tracker), "replay");
  ck_assert(!hmmv_replay_tracker_last_interval(tracker, &last, &last_nr, &last_ns));
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  for (guint k = 0; k < intervals->len; k++)
    assert_harvest_is(tracker, vm, acc, intervals->pdata[k], 1000 + k, has_reads);
  if (loop) {
    /* starts over at the first interval, then carries on */
    assert_harvest_is(tracker, vm, acc, intervals->pdata[0], 1000, has_reads);
    assert_harvest_is(tracker, vm, acc, intervals->pdata[1], 1001, has_reads);
  } else {
    for (int again = 0; again < 2; again++) {
      hmmv_access_clear(acc);
      ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
      ck_assert_uint_eq(acc->intervals, 0);
      ck_assert_uint_eq(hmmv_bitmap_count(acc->writes, acc->nr_words), 0);
      ck_assert(!hmmv_replay_tracker_last_interval(tracker, &last, &last_nr, &last_ns));
    }
  }
  /* a new start replays from the beginning */
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  assert_harvest_is(tracker, vm, acc, intervals->pdata[0], 1000, has_reads);
  hmmv_tracker_stop(tracker);
  free_intervals(intervals);
}
END_TEST

START_TEST(test_replay_empty_loop)
{
  g_autofree char *path = g_build_filename(tmpdir, "empty.trace", NULL);
  GPtrArray *intervals = write_random_trace(path, NR_PAGES, 0, 0, 1);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTracker) tracker = hmmv_replay_tracker_new(path, TRUE, &error);

  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(acc->intervals, 0);
  free_intervals(intervals);
}
END_TEST

START_TEST(test_replay_mismatch)
{
  g_autofree char *path = g_build_filename(tmpdir, "other.trace", NULL);
  GPtrArray *intervals = write_random_trace(path, NR_PAGES, 2, 0, 5);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES + 64);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES + 64, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTracker) tracker = hmmv_replay_tracker_new(path, FALSE, &error);

  ck_assert_ptr_nonnull(tracker);
  ck_assert(!hmmv_tracker_start(tracker, vm, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_str_eq(error->message, "the trace covers 200 pages but the VM has 264");
  g_clear_error(&error);
  /* harvesting without a successful start is refused too, never out of bounds */
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  free_intervals(intervals);
}
END_TEST

START_TEST(test_replay_corrupt)
{
  g_autofree char *path = g_build_filename(tmpdir, "bad.trace", NULL);
  GPtrArray *intervals = write_random_trace(path, NR_PAGES, 3, 0, 9);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *bytes = NULL;
  gsize len;

  /* cut the last interval short */
  ck_assert(g_file_get_contents(path, &bytes, &len, NULL));
  ck_assert_uint_gt(((GArray *)intervals->pdata[2])->len, 0);
  ck_assert(g_file_set_contents(path, bytes, (gssize)len - 5, NULL));
  tracker = hmmv_replay_tracker_new(path, TRUE, &error);
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  g_clear_error(&error);
  /* it stays failed rather than looping over a broken file */
  ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  g_clear_error(&error);
  /* a bad header fails already at creation */
  ck_assert(g_file_set_contents(path, "HMMVTRC2", 8, NULL));
  ck_assert_ptr_null(hmmv_replay_tracker_new(path, TRUE, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  free_intervals(intervals);
}
END_TEST

/* ---- recording ---- */

/* Every harvest of the fake tracker through the recording tracker is one interval of the
 * trace, page for page (1 read / 1 write per page seen); a failed harvest records nothing and
 * still fails; the trace is complete once tracking stopped. */
START_TEST(test_recording)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(11);
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autofree char *path = g_build_filename(tmpdir, "vm.trace", NULL);
  HmmvTracker *fake = hmmv_fake_tracker_new();
  g_autoptr(HmmvTracker) tracker = hmmv_recording_tracker_new(fake, path, 250, TRUE);
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autoptr(GError) error = NULL;
  gboolean writes[4][NR_PAGES] = { 0 }, reads[4][NR_PAGES] = { 0 };
  guint seen[4] = { 0 };

  ck_assert_str_eq(hmmv_tracker_get_name(tracker), "record");
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  for (int round = 0; round < 4; round++) {
    for (int k = 0; k < 50; k++) {
      guint64 page = (guint64)g_rand_int_range(rand, 0, NR_PAGES);

      if (g_rand_boolean(rand)) {
        hmmv_fake_tracker_queue_write(fake, page);
        writes[round][page] = TRUE;
      } else {
        hmmv_fake_tracker_queue_read(fake, page);
        reads[round][page] = TRUE;
      }
    }
    if (round == 2) {
      /* the failure passes through and is not an interval; the queue shows up next time */
      hmmv_fake_tracker_fail_next(fake, HMMV_ERROR_GONE);
      ck_assert(!hmmv_tracker_harvest(tracker, vm, acc, &error));
      ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
      g_clear_error(&error);
    }
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    assert_bitmap_is(acc->writes, writes[round], NR_PAGES);
  }
  hmmv_tracker_stop(tracker);

  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_msg(reader != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(hmmv_trace_reader_get_info(reader)->nr_pages, NR_PAGES);
  ck_assert_uint_eq(hmmv_trace_reader_get_info(reader)->interval_ms, 250);
  ck_assert_uint_eq(hmmv_trace_reader_get_info(reader)->flags, HMMV_TRACE_HAS_READS);
  for (int round = 0; round < 4; round++) {
    const HmmvTraceEntry *entries;
    gsize n;
    guint64 compute_ns;

    ck_assert(hmmv_trace_reader_next(reader, &entries, &n, &compute_ns, &error));
    if (round == 0)
      ck_assert_uint_eq(compute_ns, 0);
    for (gsize i = 0; i < n; i++) {
      guint64 page = entries[i].page;

      ck_assert_uint_lt(page, NR_PAGES);
      ck_assert_uint_eq(entries[i].writes, writes[round][page]);
      ck_assert_uint_eq(entries[i].reads, reads[round][page]);
      seen[round]++;
    }
    for (guint64 page = 0; page < NR_PAGES; page++)
      seen[round] -= writes[round][page] || reads[round][page];
    ck_assert_uint_eq(seen[round], 0);
  }
  ck_assert(!hmmv_trace_reader_next(reader, NULL, NULL, NULL, &error));
  ck_assert_ptr_null(error);
}
END_TEST

/* A trace that cannot be written stops the recording, never the tracking. */
START_TEST(test_recording_unwritable)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  g_autofree char *path = g_build_filename(tmpdir, "missing", "vm.trace", NULL);
  HmmvTracker *fake = hmmv_fake_tracker_new();
  g_autoptr(HmmvTracker) tracker = hmmv_recording_tracker_new(fake, path, 250, FALSE);
  g_autoptr(GError) error = NULL;

  for (int round = 0; round < 3; round++) {
    hmmv_fake_tracker_queue_write(fake, (guint64)round);
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    ck_assert(hmmv_bitmap_test(acc->writes, (guint64)round));
  }
  ck_assert(!g_file_test(path, G_FILE_TEST_EXISTS));
}
END_TEST

/* The core's watch (tracker.h) reaches the trackers inside the wrappers hmmvd builds:
 * recording(combined(writes, reads)); both sources of the combined tracker hear it, and a
 * tracker without set_watch ignores it. */
START_TEST(test_watch_reaches_wrapped)
{
  g_autofree char *path = g_build_filename(tmpdir, "watch.trace", NULL);
  HmmvTracker *writes = hmmv_fake_tracker_new();
  HmmvTracker *reads = hmmv_fake_tracker_new();
  g_autoptr(HmmvTracker) tracker =
    hmmv_recording_tracker_new(hmmv_combined_tracker_new(writes, reads), path, 250, TRUE);
  guint changes = 0;

  ck_assert_int_eq(hmmv_fake_tracker_get_watch(reads, &changes), HMMV_WATCH_FINE);
  ck_assert_uint_eq(changes, 0);
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(reads, &changes), HMMV_WATCH_COARSE);
  ck_assert_uint_eq(changes, 1);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(writes, NULL), HMMV_WATCH_COARSE);
  /* told again every interval: no change */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(reads, &changes), HMMV_WATCH_COARSE);
  ck_assert_uint_eq(changes, 1);
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(reads, &changes), HMMV_WATCH_FINE);
  ck_assert_uint_eq(changes, 2);
  ck_assert_int_eq(hmmv_fake_tracker_get_watch(writes, NULL), HMMV_WATCH_FINE);
}
END_TEST

/* Issue 8: while the combined tracker's write source is paused (COARSE: 7 intervals in 8),
 * a harvest whose read source brought reads counts one interval, so the temperature takes
 * them (before, they were dropped with the paused interval); with nothing read it counts none
 * (nothing cools, as before); tracked intervals count as the write source says. */
START_TEST(test_combined_reads_while_paused)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("vm", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvTracker *writes = hmmv_fake_tracker_new();
  HmmvTracker *reads = hmmv_fake_tracker_new();
  g_autoptr(HmmvTracker) tracker = hmmv_combined_tracker_new(writes, reads);

  hmmv_fake_tracker_set_pausable(writes, TRUE);
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  /* the tracked interval; the write source pauses after it */
  hmmv_fake_tracker_queue_write(writes, 3);
  hmmv_fake_tracker_queue_read(reads, 7);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(acc->intervals, 1);
  ck_assert(hmmv_bitmap_test(acc->writes, 3) && hmmv_bitmap_test(acc->reads, 7));
  ck_assert(hmmv_tracker_is_paused(writes));
  /* paused, something read: one interval of reads */
  hmmv_access_clear(acc);
  hmmv_fake_tracker_queue_read(reads, 7);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(acc->intervals, 1);
  ck_assert(hmmv_bitmap_test(acc->reads, 7) && hmmv_bitmap_count(acc->writes, acc->nr_words) == 0);
  /* paused, nothing read: no interval */
  hmmv_access_clear(acc);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(acc->intervals, 0);
  /* FINE resumes the write source at once: its count again */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  ck_assert(!hmmv_tracker_is_paused(writes));
  hmmv_access_clear(acc);
  hmmv_fake_tracker_queue_write(writes, 4);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(acc->intervals, 1);
  ck_assert(hmmv_bitmap_test(acc->writes, 4));
  hmmv_tracker_stop(tracker);
}
END_TEST

static Suite *
tracker_suite(void)
{
  Suite *suite = suite_create("tracker");
  TCase *tc = tcase_create("tracker");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_registration);
  tcase_add_test(tc, test_fake_once);
  tcase_add_test(tc, test_fake_fail_next);
  tcase_add_loop_test(tc, test_replay, 0, 4);
  tcase_add_test(tc, test_replay_empty_loop);
  tcase_add_test(tc, test_replay_mismatch);
  tcase_add_test(tc, test_replay_corrupt);
  tcase_add_test(tc, test_recording);
  tcase_add_test(tc, test_recording_unwritable);
  tcase_add_test(tc, test_watch_reaches_wrapped);
  tcase_add_test(tc, test_combined_reads_while_paused);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(tracker_suite());
}
