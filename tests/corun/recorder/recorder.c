/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The co-run trace recorder's core (recorder.h): per-page LLC miss counts, cut into
 * intervals by instruction count (not wall time: TCG's speed follows the host's load, an
 * instruction count makes a recording reproducible). A page's entry also says whether the
 * guest stored to it in the interval, hit or miss (the trace's stored bit, version 3): what a
 * dirty bitmap sees, where the counts see a read-modify-write's store only if it misses.
 */
#include "recorder.h"

#include <hmmv/error.h>

#define LEGACY_HOLE_FIRST 0xa0u    /* pfn of 0xa0000 */
#define LEGACY_HOLE_END 0x100u     /* pfn of 1 MiB */

struct _HmmvRecorder {
  HmmvRecorderOptions options;
  HmmvLlc *llc;
  HmmvTraceWriter *writer;
  guint64 nr_pages;
  guint32 *reads;
  guint32 *writes;
  guint8 *stored;            /* stored to this interval (hit or miss) */
  GArray *touched;           /* pages with a count this interval, in first-touch order */
  GArray *entries;           /* HmmvTraceEntry scratch */
  guint64 interval_insns;    /* instructions in the open interval */
  gboolean complete;         /* max_intervals written, the trace closed */
  HmmvRecorderStats stats;
};

void
hmmv_recorder_free(HmmvRecorder *rec)
{
  if (rec == NULL)
    return;
  hmmv_llc_free(rec->llc);
  hmmv_trace_writer_free(rec->writer);
  g_free(rec->reads);
  g_free(rec->writes);
  g_free(rec->stored);
  g_array_unref(rec->touched);
  g_array_unref(rec->entries);
  g_free(rec);
}

HmmvRecorder *
hmmv_recorder_new(const HmmvRecorderOptions *options, GError **error)
{
  g_autoptr(HmmvRecorder) rec = g_new0(HmmvRecorder, 1);
  HmmvTraceInfo info = { .flags = HMMV_TRACE_HAS_READS | HMMV_TRACE_HAS_INSTRUCTIONS |
                                   HMMV_TRACE_HAS_STORED };

  rec->options = *options;
  if (rec->options.llc_bytes == 0)
    rec->options.llc_bytes = 4u << 20;
  if (rec->options.llc_ways == 0)
    rec->options.llc_ways = 16;
  if (rec->options.interval_insns == 0)
    rec->options.interval_insns = 50000000;
  if (rec->options.ns_per_insn <= 0)
    rec->options.ns_per_insn = 0.5;
  rec->touched = g_array_new(FALSE, FALSE, sizeof(guint64));
  rec->entries = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
  /* 2^28 pages (1 TiB) bounds the two count arrays at 2 GiB; co-run VMs are MiBs */
  if (options->ram_bytes < (2u << 20) || (options->ram_bytes >> 12) > (1u << 28)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "recorder: RAM of %" G_GUINT64_FORMAT " bytes (2 MiB .. 1 TiB)",
                options->ram_bytes);
    return NULL;
  }
  rec->nr_pages = options->ram_bytes >> 12;
  rec->llc = hmmv_llc_new(rec->options.llc_bytes, rec->options.llc_ways, error);
  if (rec->llc == NULL)
    return NULL;
  info.nr_pages = rec->nr_pages;
  info.interval_ms = (guint32)MAX(1.0, rec->options.interval_insns *
                                  rec->options.ns_per_insn / 1e6);
  rec->writer = hmmv_trace_writer_new(options->trace_path, &info, error);
  if (rec->writer == NULL)
    return NULL;
  rec->reads = g_new0(guint32, rec->nr_pages);
  rec->writes = g_new0(guint32, rec->nr_pages);
  rec->stored = g_new0(guint8, rec->nr_pages);
  return g_steal_pointer(&rec);
}

static void
bump(HmmvRecorder *rec, guint32 *count)
{
  if (*count == G_MAXUINT32)
    rec->stats.saturated++;
  else
    (*count)++;
}

void
hmmv_recorder_access(HmmvRecorder *rec, guint64 phys_addr, gboolean is_store)
{
  guint64 page = phys_addr >> 12;

  if (rec->complete)
    return;
  if (page >= rec->nr_pages || (page >= LEGACY_HOLE_FIRST && page < LEGACY_HOLE_END)) {
    rec->stats.dropped++;
    return;
  }
  rec->stats.accesses++;
  /* a page stored to is in the interval's entries even when every access hits */
  if (is_store && !rec->stored[page]) {
    if (rec->reads[page] == 0 && rec->writes[page] == 0)
      g_array_append_val(rec->touched, page);
    rec->stored[page] = 1;
  }
  if (hmmv_llc_access(rec->llc, phys_addr))
    return;
  rec->stats.misses++;
  if (rec->reads[page] == 0 && rec->writes[page] == 0 && !rec->stored[page])
    g_array_append_val(rec->touched, page);
  bump(rec, is_store ? &rec->writes[page] : &rec->reads[page]);
}

static int
compare_page(gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;

  return x < y ? -1 : x > y;
}

static gboolean
write_interval(HmmvRecorder *rec, GError **error)
{
  HmmvTraceInterval interval = {
    .instructions = rec->interval_insns,
    .compute_ns = (guint64)(rec->interval_insns * rec->options.ns_per_insn),
  };
  gboolean ok;

  g_array_sort(rec->touched, compare_page);
  g_array_set_size(rec->entries, 0);
  for (guint i = 0; i < rec->touched->len; i++) {
    guint64 page = g_array_index(rec->touched, guint64, i);
    HmmvTraceEntry entry = { page, rec->reads[page], rec->writes[page], rec->stored[page] };

    g_array_append_val(rec->entries, entry);
    rec->reads[page] = rec->writes[page] = 0;
    rec->stored[page] = 0;
  }
  g_array_set_size(rec->touched, 0);
  ok = hmmv_trace_writer_add_interval_full(rec->writer, &interval,
                                           (const HmmvTraceEntry *)rec->entries->data,
                                           rec->entries->len, error);
  rec->interval_insns = 0;
  rec->stats.intervals += ok;
  if (ok && rec->options.max_intervals != 0 &&
      rec->stats.intervals >= rec->options.max_intervals) {
    /* closed now, so the trace is whole on disk even when QEMU is killed afterwards */
    rec->complete = TRUE;
    ok = hmmv_trace_writer_close(rec->writer, error);
  }
  return ok;
}

gboolean
hmmv_recorder_is_complete(const HmmvRecorder *rec)
{
  return rec->complete;
}

gboolean
hmmv_recorder_add_insns(HmmvRecorder *rec, guint64 n, GError **error)
{
  if (rec->complete)
    return TRUE;
  rec->stats.instructions += n;
  rec->interval_insns += n;
  /* a TB's instructions are added as it starts: an interval ends within one TB of its mark */
  if (rec->interval_insns < rec->options.interval_insns)
    return TRUE;
  return write_interval(rec, error);
}

gboolean
hmmv_recorder_finish(HmmvRecorder *rec, GError **error)
{
  if (rec->complete)
    return TRUE;
  if ((rec->interval_insns > 0 || rec->touched->len > 0) && !write_interval(rec, error))
    return FALSE;
  return hmmv_trace_writer_close(rec->writer, error);
}

void
hmmv_recorder_get_stats(const HmmvRecorder *rec, HmmvRecorderStats *stats)
{
  *stats = rec->stats;
}
