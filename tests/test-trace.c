/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmv-test.h"

#include <glib/gstdio.h>
#include <string.h>

/* Offsets in the format (trace.h). */
#define HEADER_BYTES 32
#define IHEADER_BYTES 24
#define ENTRY_BYTES 16

static char *tmpdir;

static void
setup(void)
{
  tmpdir = g_dir_make_tmp("hmmv-test-trace-XXXXXX", NULL);
  ck_assert_ptr_nonnull(tmpdir);
}

static void
teardown(void)
{
  hmmv_test_remove_tree(tmpdir);
  g_clear_pointer(&tmpdir, g_free);
}

/* No fsync: thousands of small mutants are written; durability is irrelevant here. */
static gboolean
set_contents(const char *path, const void *bytes, gsize len)
{
  return g_file_set_contents_full(path, bytes, (gssize)len, G_FILE_SET_CONTENTS_NONE, 0644,
                                  NULL);
}

static char *
tmp_path(const char *name)
{
  return g_build_filename(tmpdir, name, NULL);
}

typedef struct {
  guint64 compute_ns;
  guint64 instructions;
  GArray *entries;          /* HmmvTraceEntry */
} Interval;

static void
interval_clear(gpointer data)
{
  Interval *interval = data;

  g_array_unref(interval->entries);
}

/* Random intervals over nr_pages pages: sorted unique pages, random counts, some empty. */
static GArray *
random_intervals(GRand *rand, guint64 nr_pages, guint nr_intervals, gboolean stored)
{
  GArray *intervals = g_array_new(FALSE, TRUE, sizeof(Interval));

  g_array_set_clear_func(intervals, interval_clear);
  for (guint k = 0; k < nr_intervals; k++) {
    Interval interval = { .compute_ns = ((guint64)g_rand_int(rand) << 20) | k,
                          .instructions = ((guint64)g_rand_int(rand) << 24) | k };
    /* 0..4 pages in 8 are touched; every 5th interval is empty */
    guint density = k % 5 == 4 ? 0 : (guint)g_rand_int_range(rand, 1, 5);

    interval.entries = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
    for (guint64 page = 0; page < nr_pages; page++) {
      if ((guint)g_rand_int_range(rand, 0, 8) < density) {
        HmmvTraceEntry entry = { page, g_rand_int(rand), g_rand_int_range(rand, 0, 3),
                                 stored ? (guint32)g_rand_int_range(rand, 0, 2) : 0 };

        g_array_append_val(interval.entries, entry);
      }
    }
    g_array_append_val(intervals, interval);
  }
  return intervals;
}

static void
write_trace(const char *path, const HmmvTraceInfo *info, GArray *intervals)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, info, &error);

  ck_assert_msg(writer != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < intervals->len; k++) {
    Interval *interval = &g_array_index(intervals, Interval, k);
    HmmvTraceInterval head = { interval->compute_ns, interval->instructions };

    /* the old call where it writes the same (no instructions), the new one otherwise */
    if (k % 2 == 0 && !(info->flags & HMMV_TRACE_HAS_INSTRUCTIONS))
      ck_assert_msg(hmmv_trace_writer_add_interval(writer, interval->compute_ns,
                                                   (HmmvTraceEntry *)interval->entries->data,
                                                   interval->entries->len, &error),
                    "%s", error ? error->message : "");
    else
      ck_assert_msg(hmmv_trace_writer_add_interval_full(writer, &head,
                                                        (HmmvTraceEntry *)interval->entries->data,
                                                        interval->entries->len, &error),
                    "%s", error ? error->message : "");
  }
  ck_assert(hmmv_trace_writer_close(writer, &error));
}

/* Field by field (the struct has padding): what was written; stored as written in a version 3
 * trace, writes > 0 in versions 1 and 2 (read as before). */
static void
assert_entries_read_back(const HmmvTraceEntry *got, const HmmvTraceEntry *want, gsize nr,
                         gboolean has_stored)
{
  for (gsize i = 0; i < nr; i++) {
    ck_assert_uint_eq(got[i].page, want[i].page);
    ck_assert_uint_eq(got[i].reads, want[i].reads);
    ck_assert_uint_eq(got[i].writes, want[i].writes);
    ck_assert_uint_eq(got[i].stored, has_stored ? want[i].stored : want[i].writes > 0);
  }
}

static void
assert_reads_back(HmmvTraceReader *reader, GArray *intervals)
{
  g_autoptr(GError) error = NULL;
  gboolean has_insns = (hmmv_trace_reader_get_info(reader)->flags &
                        HMMV_TRACE_HAS_INSTRUCTIONS) != 0;
  const HmmvTraceEntry *entries;
  guint64 compute_ns;
  gsize nr;

  for (guint k = 0; k < intervals->len; k++) {
    Interval *interval = &g_array_index(intervals, Interval, k);
    HmmvTraceInterval head = { 0, G_MAXUINT64 };

    /* both reading calls, alternately */
    if (k % 2 == 0) {
      ck_assert_msg(hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error),
                    "interval %u: %s", k, error ? error->message : "EOF");
    } else {
      ck_assert_msg(hmmv_trace_reader_next_interval(reader, &head, &entries, &nr, &error),
                    "interval %u: %s", k, error ? error->message : "EOF");
      compute_ns = head.compute_ns;
      ck_assert_uint_eq(head.instructions, has_insns ? interval->instructions : 0);
    }
    ck_assert_uint_eq(nr, interval->entries->len);
    ck_assert_uint_eq(compute_ns, interval->compute_ns);
    assert_entries_read_back(entries, (const HmmvTraceEntry *)interval->entries->data, nr,
                             (hmmv_trace_reader_get_info(reader)->flags &
                              HMMV_TRACE_HAS_STORED) != 0);
  }
  /* A clean end: FALSE with no error, and it stays at the end. */
  for (int i = 0; i < 2; i++) {
    ck_assert(!hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error));
    ck_assert_ptr_null(error);
  }
}

START_TEST(test_round_trip)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(42 + (guint32)_i);
  g_autofree char *path = tmp_path("round.trace");
  HmmvTraceInfo info = { .nr_pages = 1000 + (guint64)_i * 777, .interval_ms = 250,
                         .flags = (_i % 2 ? HMMV_TRACE_HAS_READS : 0) |
                                  (_i >= 4 ? HMMV_TRACE_HAS_INSTRUCTIONS : 0) |
                                  (_i >= 6 ? HMMV_TRACE_HAS_STORED : 0) };
  g_autoptr(GArray) intervals = random_intervals(rand, info.nr_pages, 12, _i >= 6);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceReader) reader = NULL;
  const HmmvTraceInfo *got;

  write_trace(path, &info, intervals);
  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_msg(reader != NULL, "%s", error ? error->message : "");
  got = hmmv_trace_reader_get_info(reader);
  ck_assert_uint_eq(got->nr_pages, info.nr_pages);
  ck_assert_uint_eq(got->interval_ms, info.interval_ms);
  ck_assert_uint_eq(got->flags, info.flags);
  assert_reads_back(reader, intervals);
  /* rewind replays the same data from the first interval */
  ck_assert(hmmv_trace_reader_rewind(reader, &error));
  assert_reads_back(reader, intervals);
}
END_TEST

/* The bytes on disk are little-endian at the documented offsets. */
START_TEST(test_layout)
{
  g_autofree char *path = tmp_path("layout.trace");
  HmmvTraceInfo info = { .nr_pages = 0x123456789, .interval_ms = 1000, .flags = 1 };
  HmmvTraceEntry entry = { .page = 0x0102030405, .reads = 7, .writes = 0x01020304 };
  static const guint8 expected[] = {
    'H', 'M', 'M', 'V', 'T', 'R', 'C', '1', 1, 0, 0, 0, 12, 0, 0, 0,
    0x89, 0x67, 0x45, 0x23, 1, 0, 0, 0, 0xe8, 0x03, 0, 0, 1, 0, 0, 0,
    'I', 'N', 'T', 'V', 1, 0, 0, 0, 0x10, 0x20, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 7, 0, 0, 0, 0x04, 0x03, 0x02, 0x01,
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, &info, &error);
  g_autofree char *bytes = NULL;
  gsize len;

  ck_assert_ptr_nonnull(writer);
  ck_assert(hmmv_trace_writer_add_interval(writer, 0x2010, &entry, 1, &error));
  ck_assert(hmmv_trace_writer_close(writer, &error));
  ck_assert(g_file_get_contents(path, &bytes, &len, NULL));
  ck_assert_uint_eq(len, sizeof(expected));
  ck_assert_mem_eq(bytes, expected, sizeof(expected));
}
END_TEST

/* Version 2 (instructions counted): the interval header grows by the count at offset 24. */
START_TEST(test_layout_v2)
{
  g_autofree char *path = tmp_path("layout2.trace");
  HmmvTraceInfo info = { .nr_pages = 0x10, .interval_ms = 25, .flags = 3 };
  HmmvTraceEntry entry = { .page = 0xf, .reads = 2, .writes = 1 };
  HmmvTraceInterval head = { .compute_ns = 0x2010, .instructions = 0x0102030405060708 };
  static const guint8 expected[] = {
    'H', 'M', 'M', 'V', 'T', 'R', 'C', '1', 2, 0, 0, 0, 12, 0, 0, 0,
    0x10, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 3, 0, 0, 0,
    'I', 'N', 'T', 'V', 1, 0, 0, 0, 0x10, 0x20, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    0x0f, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, &info, &error);
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autofree char *bytes = NULL;
  const HmmvTraceEntry *entries;
  HmmvTraceInterval got;
  gsize len, nr;

  ck_assert_ptr_nonnull(writer);
  ck_assert(hmmv_trace_writer_add_interval_full(writer, &head, &entry, 1, &error));
  ck_assert(hmmv_trace_writer_close(writer, &error));
  ck_assert(g_file_get_contents(path, &bytes, &len, NULL));
  ck_assert_uint_eq(len, sizeof(expected));
  ck_assert_mem_eq(bytes, expected, sizeof(expected));
  /* a version 2 header without the flag, or the flag in version 1, is refused */
  for (int v = 1; v <= 2; v++) {
    g_autofree guint8 *bad = g_memdup2(expected, sizeof(expected));
    g_autoptr(GError) refused = NULL;
    g_autoptr(HmmvTraceReader) r = NULL;

    if (v == 1)
      bad[8] = 1;
    else
      bad[28] = 1;
    ck_assert(set_contents(path, bad, sizeof(expected)));
    r = hmmv_trace_reader_new(path, &refused);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(refused->message, "do not match version") != NULL, "%s",
                  refused->message);
  }
  ck_assert(set_contents(path, expected, sizeof(expected)));
  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_ptr_nonnull(reader);
  ck_assert(hmmv_trace_reader_next_interval(reader, &got, &entries, &nr, &error));
  ck_assert_uint_eq(got.instructions, head.instructions);
  ck_assert_uint_eq(got.compute_ns, head.compute_ns);
  ck_assert_uint_eq(nr, 1);
  ck_assert_uint_eq(entries[0].page, 0xf);
}
END_TEST

/* Version 3: the stored bit is the page field's bit 63; without the stored flag (or the
 * instructions flag it comes with) the header is refused, and a version 2 writer refuses a
 * stored entry rather than losing the bit. */
START_TEST(test_layout_v3)
{
  g_autofree char *path = tmp_path("layout3.trace");
  HmmvTraceInfo info = { .nr_pages = 0x10, .interval_ms = 25, .flags = 7 };
  HmmvTraceInfo v2 = { .nr_pages = 0x10, .interval_ms = 25, .flags = 3 };
  HmmvTraceEntry entries[] = { { .page = 0xe, .reads = 0, .writes = 0, .stored = 1 },
                               { .page = 0xf, .reads = 2, .writes = 1, .stored = 0 } };
  HmmvTraceInterval head = { .compute_ns = 0x2010, .instructions = 0x0102030405060708 };
  static const guint8 expected[] = {
    'H', 'M', 'M', 'V', 'T', 'R', 'C', '1', 3, 0, 0, 0, 12, 0, 0, 0,
    0x10, 0, 0, 0, 0, 0, 0, 0, 25, 0, 0, 0, 7, 0, 0, 0,
    'I', 'N', 'T', 'V', 2, 0, 0, 0, 0x10, 0x20, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
    0x0e, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0,
    0x0f, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0,
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, &info, &error);
  g_autoptr(HmmvTraceWriter) writer2 = NULL;
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autofree char *bytes = NULL;
  const HmmvTraceEntry *e;
  HmmvTraceInterval got;
  gsize len, nr;

  ck_assert_ptr_nonnull(writer);
  ck_assert(hmmv_trace_writer_add_interval_full(writer, &head, entries, 2, &error));
  ck_assert(hmmv_trace_writer_close(writer, &error));
  ck_assert(g_file_get_contents(path, &bytes, &len, NULL));
  ck_assert_uint_eq(len, sizeof(expected));
  ck_assert_mem_eq(bytes, expected, sizeof(expected));
  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_msg(reader != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_trace_reader_next_interval(reader, &got, &e, &nr, &error));
  ck_assert_uint_eq(nr, 2);
  ck_assert_uint_eq(e[0].page, 0xe);
  ck_assert_uint_eq(e[0].stored, 1);
  ck_assert_uint_eq(e[1].page, 0xf);
  ck_assert_uint_eq(e[1].stored, 0);       /* a write miss without the bit: as written */
  /* version 3 without the stored flag, the flag without the instructions flag: refused */
  for (int v = 0; v < 2; v++) {
    g_autofree guint8 *bad = g_memdup2(expected, sizeof(expected));
    g_autoptr(GError) refused = NULL;
    g_autoptr(HmmvTraceReader) r = NULL;

    bad[28] = v == 0 ? 3 : 5;
    ck_assert(set_contents(path, bad, sizeof(expected)));
    r = hmmv_trace_reader_new(path, &refused);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(refused->message, "do not match version") != NULL, "%s",
                  refused->message);
  }
  /* bit 63 in a version 2 trace is a page out of range */
  {
    g_autofree guint8 *bad = g_memdup2(expected, sizeof(expected));
    g_autoptr(GError) refused = NULL;
    g_autoptr(HmmvTraceReader) r = NULL;

    bad[8] = 2;
    bad[28] = 3;
    ck_assert(set_contents(path, bad, sizeof(expected)));
    r = hmmv_trace_reader_new(path, &refused);
    ck_assert_ptr_nonnull(r);
    ck_assert(!hmmv_trace_reader_next_interval(r, &got, &e, &nr, &refused));
    ck_assert(g_error_matches(refused, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  }
  writer2 = hmmv_trace_writer_new(path, &v2, &error);
  ck_assert_ptr_nonnull(writer2);
  ck_assert(!hmmv_trace_writer_add_interval_full(writer2, &head, entries, 2, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
}
END_TEST

START_TEST(test_writer_rejects)
{
  g_autofree char *path = tmp_path("bad.trace");
  HmmvTraceInfo info = { .nr_pages = 100, .interval_ms = 1000 };
  HmmvTraceInfo zero = { .nr_pages = 0 };
  HmmvTraceInfo huge = { .nr_pages = (G_GUINT64_CONSTANT(1) << 40) + 1 };
  HmmvTraceInfo flags = { .nr_pages = 10, .flags = 0x4 };
  HmmvTraceEntry descending[] = { { 5, 1, 1, 0 }, { 4, 1, 1, 0 } };
  HmmvTraceEntry duplicate[] = { { 5, 1, 1, 0 }, { 5, 1, 1, 0 } };
  HmmvTraceEntry outside[] = { { 1, 1, 1, 0 }, { 100, 1, 1, 0 } };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = NULL;
  g_autofree char *missing = g_build_filename(tmpdir, "no", "such", "dir", NULL);

  ck_assert_ptr_null(hmmv_trace_writer_new(path, &zero, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_trace_writer_new(path, &huge, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_trace_writer_new(path, &flags, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_trace_writer_new(missing, &info, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO));
  g_clear_error(&error);

  writer = hmmv_trace_writer_new(path, &info, &error);
  ck_assert_ptr_nonnull(writer);
  ck_assert(!hmmv_trace_writer_add_interval(writer, 0, descending, 2, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert(!hmmv_trace_writer_add_interval(writer, 0, duplicate, 2, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  ck_assert(!hmmv_trace_writer_add_interval(writer, 0, outside, 2, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);
  /* rejected intervals wrote nothing: the index sequence stays intact */
  ck_assert(hmmv_trace_writer_add_interval(writer, 0, outside, 1, &error));
  ck_assert(hmmv_trace_writer_close(writer, &error));
  ck_assert(!hmmv_trace_writer_add_interval(writer, 0, outside, 1, &error));
  g_clear_error(&error);
  {
    g_autoptr(HmmvTraceReader) reader = hmmv_trace_reader_new(path, &error);
    const HmmvTraceEntry *entries;
    guint64 compute_ns;
    gsize nr;

    ck_assert_ptr_nonnull(reader);
    ck_assert(hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error));
    ck_assert_uint_eq(nr, 1);
    ck_assert(!hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error));
    ck_assert_ptr_null(error);
  }
}
END_TEST

/* A small valid file: 3 intervals of 3, 0 and 2 entries over 64 pages. */
static GBytes *
small_trace(void)
{
  g_autofree char *path = tmp_path("small.trace");
  HmmvTraceInfo info = { .nr_pages = 64, .interval_ms = 100, .flags = HMMV_TRACE_HAS_READS };
  HmmvTraceEntry first[] = { { 1, 2, 3, 0 }, { 7, 0, 1, 0 }, { 63, 5, 0, 0 } };
  HmmvTraceEntry third[] = { { 0, 1, 1, 0 }, { 2, 9, 9, 0 } };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, &info, &error);
  char *bytes = NULL;
  gsize len = 0;

  ck_assert_ptr_nonnull(writer);
  ck_assert(hmmv_trace_writer_add_interval(writer, 111, first, 3, &error));
  ck_assert(hmmv_trace_writer_add_interval(writer, 222, NULL, 0, &error));
  ck_assert(hmmv_trace_writer_add_interval(writer, 333, third, 2, &error));
  ck_assert(hmmv_trace_writer_close(writer, &error));
  ck_assert(g_file_get_contents(path, &bytes, &len, NULL));
  ck_assert_uint_eq(len, HEADER_BYTES + 3 * IHEADER_BYTES + 5 * ENTRY_BYTES);
  return g_bytes_new_take(bytes, len);
}

/* Offsets of the small trace's parts. */
#define I0 HEADER_BYTES
#define I1 (I0 + IHEADER_BYTES + 3 * ENTRY_BYTES)
#define I2 (I1 + IHEADER_BYTES)
#define SMALL_END (I2 + IHEADER_BYTES + 2 * ENTRY_BYTES)

/*
 * Opens bytes as a trace and reads every interval. Returns the number of intervals read, -1
 * when opening failed; *error gets the first error.
 */
static int
read_all(const guint8 *bytes, gsize len, GError **error)
{
  g_autofree char *path = tmp_path("mutant.trace");
  g_autoptr(HmmvTraceReader) reader = NULL;
  const HmmvTraceEntry *entries;
  guint64 compute_ns;
  gsize nr;
  int count = 0;

  ck_assert(set_contents(path, bytes, len));
  reader = hmmv_trace_reader_new(path, error);
  if (reader == NULL)
    return -1;
  while (hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, error)) {
    const HmmvTraceInfo *info = hmmv_trace_reader_get_info(reader);

    /* whatever the reader hands out must satisfy the format's promises */
    for (gsize i = 0; i < nr; i++) {
      ck_assert_uint_lt(entries[i].page, info->nr_pages);
      if (i > 0)
        ck_assert_uint_gt(entries[i].page, entries[i - 1].page);
    }
    count++;
  }
  return count;
}

static void
put32(guint8 *bytes, gsize offset, guint32 value)
{
  value = GUINT32_TO_LE(value);
  memcpy(bytes + offset, &value, 4);
}

static void
put64(guint8 *bytes, gsize offset, guint64 value)
{
  value = GUINT64_TO_LE(value);
  memcpy(bytes + offset, &value, 8);
}

typedef struct {
  const char *what;
  gsize truncate_to;        /* 0: keep the length */
  gsize offset;             /* where to patch (with size) */
  guint size;               /* 0: no patch; 4 or 8 bytes */
  guint64 value;
  gboolean fails_at_open;
  int intervals_before;     /* good intervals before the error */
  const char *message;      /* expected in the error message */
} Corruption;

static const Corruption corruptions[] = {
  { "truncated header", 20, 0, 0, 0, TRUE, 0, "at byte 20" },
  { "empty file", 1, 0, 0, 0, TRUE, 0, "truncated file header" },
  { "wrong magic", 0, 0, 4, 0x21214d48, TRUE, 0, "bad magic" },
  { "wrong version", 0, 8, 4, 2, TRUE, 0, "version 2" },
  { "wrong page shift", 0, 12, 4, 21, TRUE, 0, "page_shift 21" },
  { "zero pages", 0, 16, 8, 0, TRUE, 0, "nr_pages 0" },
  { "too many pages", 0, 16, 8, (G_GUINT64_CONSTANT(1) << 40) + 1, TRUE, 0, "nr_pages" },
  { "unknown flags", 0, 28, 4, 0x80, TRUE, 0, "flags" },
  { "interval magic", 0, I1, 4, 0x12345678, FALSE, 1, "interval magic" },
  { "entries past the file", 0, I2 + 4, 4, 3, FALSE, 2, "claims 3 entries" },
  { "absurd entry count", 0, I0 + 4, 4, 0xffffffffu, FALSE, 0, "claims" },
  { "entry count over the bound", 0, I0 + 4, 4, (1u << 28) + 1, FALSE, 0, "claims" },
  { "page out of range", 0, I0 + IHEADER_BYTES + 2 * ENTRY_BYTES, 8, 64, FALSE, 0,
    "page 64 is out of range" },
  { "non-ascending", 0, I0 + IHEADER_BYTES + ENTRY_BYTES, 8, 1, FALSE, 0, "not ascending" },
  { "descending", 0, I2 + IHEADER_BYTES, 8, 3, FALSE, 2, "page 2" },
  { "truncated last entry", SMALL_END - 3, 0, 0, 0, FALSE, 2, "claims 2 entries" },
  { "truncated interval header", I2 + 10, 0, 0, 0, FALSE, 2, "truncated interval header" },
  { "wrong interval index", 0, I1 + 16, 8, 5, FALSE, 1, "interval index 5" },
  { "repeated interval index", 0, I2 + 16, 8, 1, FALSE, 2, "where 2 was expected" },
};

START_TEST(test_corruption)
{
  const Corruption *c = &corruptions[_i];
  g_autoptr(GBytes) valid = small_trace();
  gsize len = c->truncate_to ? c->truncate_to : g_bytes_get_size(valid);
  g_autofree guint8 *bytes = g_memdup2(g_bytes_get_data(valid, NULL), g_bytes_get_size(valid));
  g_autoptr(GError) error = NULL;
  int count;

  if (c->size == 4)
    put32(bytes, c->offset, (guint32)c->value);
  else if (c->size == 8)
    put64(bytes, c->offset, c->value);
  count = read_all(bytes, len, &error);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT), "%s: %s", c->what,
                error ? error->message : "no error");
  ck_assert_int_eq(count, c->fails_at_open ? -1 : c->intervals_before);
  ck_assert_msg(strstr(error->message, c->message) != NULL, "%s: '%s' lacks '%s'", c->what,
                error->message, c->message);
  ck_assert_msg(strstr(error->message, "at byte ") != NULL, "%s", error->message);
}
END_TEST

/* After an error the reader keeps failing; rewind lets it read the good prefix again. */
START_TEST(test_corrupt_is_sticky)
{
  g_autoptr(GBytes) valid = small_trace();
  g_autofree guint8 *bytes = g_memdup2(g_bytes_get_data(valid, NULL), g_bytes_get_size(valid));
  g_autofree char *path = tmp_path("sticky.trace");
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autoptr(GError) error = NULL;
  const HmmvTraceEntry *entries;
  guint64 compute_ns;
  gsize nr;

  put64(bytes, I1 + 16, 9);
  ck_assert(set_contents(path, bytes, SMALL_END));
  reader = hmmv_trace_reader_new(path, &error);
  ck_assert_ptr_nonnull(reader);
  for (int pass = 0; pass < 2; pass++) {
    ck_assert(hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error));
    ck_assert_uint_eq(nr, 3);
    ck_assert_uint_eq(compute_ns, 111);
    ck_assert_uint_eq(entries[2].page, 63);
    ck_assert_uint_eq(entries[0].writes, 3);
    for (int again = 0; again < 2; again++) {
      ck_assert(!hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error));
      ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
      g_clear_error(&error);
    }
    ck_assert(hmmv_trace_reader_rewind(reader, &error));
  }
}
END_TEST

START_TEST(test_missing_file)
{
  g_autofree char *path = tmp_path("absent.trace");
  g_autoptr(GError) error = NULL;

  ck_assert_ptr_null(hmmv_trace_reader_new(path, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND));
}
END_TEST

/* Truncation at every offset: only interval boundaries are clean ends. */
START_TEST(test_fuzz_truncate)
{
  g_autoptr(GBytes) valid = small_trace();
  const guint8 *bytes = g_bytes_get_data(valid, NULL);

  for (gsize len = 0; len <= SMALL_END; len++) {
    g_autoptr(GError) error = NULL;
    int count = read_all(bytes, len, &error);
    int boundary = len == I0 ? 0 : len == I1 ? 1 : len == I2 ? 2 : len == SMALL_END ? 3 : -1;

    if (boundary >= 0) {
      ck_assert_msg(error == NULL, "len %zu: %s", len, error->message);
      ck_assert_int_eq(count, boundary);
    } else {
      ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT), "len %zu", len);
    }
  }
}
END_TEST

/* Every single-bit flip, then random multi-byte damage: succeed or fail, never crash. */
START_TEST(test_fuzz_flip)
{
  g_autoptr(GBytes) valid = small_trace();
  gsize len = g_bytes_get_size(valid);
  g_autofree guint8 *bytes = g_memdup2(g_bytes_get_data(valid, NULL), len);
  g_autoptr(GRand) rand = g_rand_new_with_seed(7);
  guint failed = 0;

  for (gsize offset = 0; offset < len; offset++) {
    for (guint bit = 0; bit < 8; bit++) {
      g_autoptr(GError) error = NULL;

      bytes[offset] ^= (guint8)(1u << bit);
      if (read_all(bytes, len, &error) < 3 || error != NULL) {
        ck_assert(error != NULL && error->domain == HMMV_ERROR);
        failed++;
      }
      bytes[offset] ^= (guint8)(1u << bit);
    }
  }
  /* Flips in counts and compute_ns are legal data; flips in headers and pages are not. */
  ck_assert_uint_gt(failed, len);
  for (guint round = 0; round < 300; round++) {
    g_autofree guint8 *mutant = g_memdup2(bytes, len);
    gsize cut = (gsize)g_rand_int_range(rand, 0, (gint32)len + 1);
    g_autoptr(GError) error = NULL;
    int count;

    for (guint k = g_rand_int_range(rand, 1, 6); k > 0; k--)
      mutant[g_rand_int_range(rand, 0, (gint32)len)] = (guint8)g_rand_int(rand);
    count = read_all(mutant, cut, &error);
    ck_assert(count >= -1 && count <= 3);
    ck_assert(error == NULL || error->domain == HMMV_ERROR);
  }
}
END_TEST

static Suite *
trace_suite(void)
{
  Suite *suite = suite_create("trace");
  TCase *tc = tcase_create("trace");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_round_trip, 0, 8);
  tcase_add_test(tc, test_layout);
  tcase_add_test(tc, test_layout_v2);
  tcase_add_test(tc, test_layout_v3);
  tcase_add_test(tc, test_writer_rejects);
  tcase_add_loop_test(tc, test_corruption, 0, G_N_ELEMENTS(corruptions));
  tcase_add_test(tc, test_corrupt_is_sticky);
  tcase_add_test(tc, test_missing_file);
  tcase_add_test(tc, test_fuzz_truncate);
  tcase_add_test(tc, test_fuzz_flip);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(trace_suite());
}
