/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The recording tracker: wraps a VM's tracker and appends what each of its harvests saw to a
 * trace file (trace.h), one interval per harvest that had something published. This is what
 * the daemon really saw, page by page, for the co-run harness (issue 12) to hold against the
 * ground truth of the recorder plugin: which written or read pages the tracker caught.
 *
 * A page seen written counts 1 write, seen read 1 read (flag HMMV_TRACE_HAS_READS only when
 * the VM has a read source): a tracker sees one bit per page per interval, not how often.
 * compute_ns is the wall time since the previous recorded harvest (the first: 0), the
 * interval's real length. The trace is complete (flushed) once the VM stopped being tracked.
 *
 * Recording never costs the VM its tracking: a trace that cannot be written is reported once
 * and recording stops, the harvests go on.
 */
#include <hmmv/error.h>
#include <hmmv/tracker.h>

typedef struct {
  HmmvTracker *inner;
  char *path;
  HmmvTraceWriter *writer;
  GArray *entries;          /* HmmvTraceEntry scratch, reused */
  guint interval_ms;
  guint32 flags;
  gint64 last_us;
  gboolean done;            /* failed or closed: never opened again (that would truncate) */
} Recording;

static gboolean
record_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  Recording *r = tracker->priv;

  return hmmv_tracker_start(r->inner, vm, error);
}

static void
record_fail(Recording *r, HmmvVm *vm, const GError *error)
{
  g_warning("vm %s: recording what the tracker sees into %s stopped: %s", hmmv_vm_get_name(vm),
            r->path, error->message);
  r->done = TRUE;
  g_clear_pointer(&r->writer, hmmv_trace_writer_free);
}

/* Closing flushes: the trace is complete once its VM is no longer tracked. */
static void
record_close(Recording *r)
{
  g_autoptr(GError) error = NULL;

  if (r->writer != NULL && !hmmv_trace_writer_close(r->writer, &error))
    g_warning("recording into %s: %s", r->path, error->message);
  g_clear_pointer(&r->writer, hmmv_trace_writer_free);
  r->done = TRUE;
}

static void
record_interval(Recording *r, HmmvVm *vm, const HmmvAccess *acc)
{
  g_autoptr(GError) error = NULL;
  gint64 now_us = g_get_monotonic_time();
  guint64 compute_ns = r->last_us ? (guint64)(now_us - r->last_us) * 1000u : 0;

  if (r->writer == NULL) {
    HmmvTraceInfo info = {
      .nr_pages = acc->nr_pages,
      .interval_ms = r->interval_ms,
      .flags = r->flags,
    };

    r->writer = hmmv_trace_writer_new(r->path, &info, &error);
    if (r->writer == NULL) {
      record_fail(r, vm, error);
      return;
    }
  }
  g_array_set_size(r->entries, 0);
  for (gsize w = 0; w < acc->nr_words; w++) {
    guint64 bits = acc->writes[w] | (acc->has_reads ? acc->reads[w] : 0);

    while (bits != 0) {
      guint64 page = w * 64 + (guint64)__builtin_ctzll(bits);
      HmmvTraceEntry e = {
        .page = page,
        .reads = acc->has_reads && hmmv_bitmap_test(acc->reads, page),
        .writes = hmmv_bitmap_test(acc->writes, page),
      };

      bits &= bits - 1;
      g_array_append_val(r->entries, e);
    }
  }
  if (!hmmv_trace_writer_add_interval(r->writer, compute_ns,
                                      (const HmmvTraceEntry *)r->entries->data,
                                      r->entries->len, &error)) {
    record_fail(r, vm, error);
    return;
  }
  r->last_us = now_us;
}

static gboolean
record_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  Recording *r = tracker->priv;

  if (!hmmv_tracker_harvest(r->inner, vm, acc, error))
    return FALSE;
  /* a harvest with nothing published is no interval of the VM's: not recorded */
  if (!r->done && acc->intervals > 0)
    record_interval(r, vm, acc);
  return TRUE;
}

static void
record_stop(HmmvTracker *tracker)
{
  Recording *r = tracker->priv;

  hmmv_tracker_stop(r->inner);
  record_close(r);
}

static void
record_set_watch(HmmvTracker *tracker, HmmvWatch watch)
{
  hmmv_tracker_set_watch(((Recording *)tracker->priv)->inner, watch);
}

static gboolean
record_is_paused(HmmvTracker *tracker)
{
  return hmmv_tracker_is_paused(((Recording *)tracker->priv)->inner);
}

static void
record_destroy(HmmvTracker *tracker)
{
  Recording *r = tracker->priv;

  record_close(r);
  hmmv_tracker_free(r->inner);
  g_array_unref(r->entries);
  g_free(r->path);
  g_free(r);
}

static const struct hmmv_tracker_ops record_ops = {
  .name = "record",
  .start = record_start,
  .harvest = record_harvest,
  .stop = record_stop,
  .set_watch = record_set_watch,
  .is_paused = record_is_paused,
  .destroy = record_destroy,
};

HmmvTracker *
hmmv_recording_tracker_new(HmmvTracker *inner, const char *path, guint interval_ms,
                           gboolean reads)
{
  Recording *r;

  g_return_val_if_fail(inner != NULL && path != NULL, NULL);
  r = g_new0(Recording, 1);
  r->inner = inner;
  r->path = g_strdup(path);
  r->interval_ms = interval_ms;
  r->flags = reads ? HMMV_TRACE_HAS_READS : 0;
  r->entries = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
  /* Cannot fail: the table is complete. */
  return hmmv_tracker_new(&record_ops, r, NULL);
}
