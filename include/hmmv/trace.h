/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the access trace file format (read by the replay tracker, written by hmmvctl track
 * --trace and the trace recorders). Versions 1, 2 and 3, all integers little-endian:
 *
 *   file header, 32 bytes
 *     0  u8[8]  magic "HMMVTRC1"
 *     8  u32    version: 1; 2 with instruction counts (exactly when flag bit 1 is set); 3
 *                  with instruction counts and stored bits (flag bits 1 and 2 set)
 *    12  u32    page_shift (12)
 *    16  u64    nr_pages: guest pages covered; page indices are 0 .. nr_pages-1
 *    24  u32    interval_ms: nominal length of one interval
 *    28  u32    flags: bit 0 HMMV_TRACE_HAS_READS (read counts are meaningful),
 *                      bit 1 HMMV_TRACE_HAS_INSTRUCTIONS (version 2: intervals count them)
 *                      bit 2 HMMV_TRACE_HAS_STORED (version 3: entries carry the stored bit)
 *   then intervals, until end of file; each is
 *     interval header, 24 bytes (version 1) or 32 (version 2)
 *       0  u32  magic "INTV" (0x56544e49)
 *       4  u32  nr_entries
 *       8  u64  compute_ns: guest compute time in the interval, excluding memory stalls
 *      16  u64  index: 0, 1, 2, ... (checked)
 *      24  u64  instructions: guest instructions executed in the interval (version 2 only)
 *     nr_entries entries, 16 bytes each, page ascending, no duplicates
 *       0  u64  page; in version 3 bit 63 is the stored bit: the guest stored to the page in
 *               the interval, whether or not the store reached memory (what a dirty bitmap
 *               sees: a read-modify-write misses on its load and its store hits the cache)
 *       8  u32  reads that reached memory (after the recorder's last-level cache)
 *      12  u32  writes that reached memory
 *
 * A version 1 or 2 trace is read as before: an entry's stored is writes > 0. A reader built
 * before version 3 refuses a version 3 trace (unsupported version).
 *
 * Readers check everything: magic, version, page_shift, entry counts against the file size,
 * page < nr_pages and ascending, interval index sequence. A truncated last interval is an
 * error (HMMV_ERROR_CORRUPT), never a crash.
 */
#pragma once

#include <glib.h>
#include <stdio.h>

G_BEGIN_DECLS

#define HMMV_TRACE_MAGIC "HMMVTRC1"
#define HMMV_TRACE_VERSION 1u
#define HMMV_TRACE_INTERVAL_MAGIC 0x56544e49u
#define HMMV_TRACE_VERSION_INSTRUCTIONS 2u
#define HMMV_TRACE_VERSION_STORED 3u
#define HMMV_TRACE_HAS_READS 0x1u
#define HMMV_TRACE_HAS_INSTRUCTIONS 0x2u
#define HMMV_TRACE_HAS_STORED 0x4u      /* only with HMMV_TRACE_HAS_INSTRUCTIONS */
/* Bound on one interval's entries that a reader will allocate for (2^28: 1 TiB of pages). */
#define HMMV_TRACE_MAX_ENTRIES (1u << 28)

typedef struct {
  guint64 page;
  guint32 reads;
  guint32 writes;
  guint32 stored;           /* 1: stored to in the interval (see the format); 0 or 1 */
} HmmvTraceEntry;

typedef struct {
  guint64 nr_pages;
  guint32 interval_ms;
  guint32 flags;
} HmmvTraceInfo;

/* What an interval says besides its entries (instructions is 0 in a version 1 trace). */
typedef struct {
  guint64 compute_ns;
  guint64 instructions;
} HmmvTraceInterval;

typedef struct _HmmvTraceWriter HmmvTraceWriter;
typedef struct _HmmvTraceReader HmmvTraceReader;

HmmvTraceWriter *hmmv_trace_writer_new(const char *path, const HmmvTraceInfo *info,
                                       GError **error);
/* entries must be page-ascending and unique, pages < nr_pages */
gboolean hmmv_trace_writer_add_interval(HmmvTraceWriter *writer, guint64 compute_ns,
                                        const HmmvTraceEntry *entries, gsize nr_entries,
                                        GError **error);
/* The same with the instruction count, written only when the trace has
 * HMMV_TRACE_HAS_INSTRUCTIONS. */
gboolean hmmv_trace_writer_add_interval_full(HmmvTraceWriter *writer,
                                             const HmmvTraceInterval *interval,
                                             const HmmvTraceEntry *entries, gsize nr_entries,
                                             GError **error);
/* Flushes and closes; FALSE if anything could not be written. */
gboolean hmmv_trace_writer_close(HmmvTraceWriter *writer, GError **error);
void hmmv_trace_writer_free(HmmvTraceWriter *writer);

HmmvTraceReader *hmmv_trace_reader_new(const char *path, GError **error);
const HmmvTraceInfo *hmmv_trace_reader_get_info(const HmmvTraceReader *reader);
/* Next interval: TRUE and fills entries (owned by the reader, valid until the next call);
 * FALSE with *error NULL at a clean end of file; FALSE with an error when corrupt. */
gboolean hmmv_trace_reader_next(HmmvTraceReader *reader, const HmmvTraceEntry **entries,
                                gsize *nr_entries, guint64 *compute_ns, GError **error);
/* The same with the interval's compute time and instruction count. */
gboolean hmmv_trace_reader_next_interval(HmmvTraceReader *reader, HmmvTraceInterval *interval,
                                         const HmmvTraceEntry **entries, gsize *nr_entries,
                                         GError **error);
gboolean hmmv_trace_reader_rewind(HmmvTraceReader *reader, GError **error);
void hmmv_trace_reader_free(HmmvTraceReader *reader);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvTraceWriter, hmmv_trace_writer_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvTraceReader, hmmv_trace_reader_free)

G_END_DECLS
