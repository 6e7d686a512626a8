/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The replay tracker: each harvest replays one interval of a recorded trace (trace.h) into
 * the access bitmaps, so the real decision code can run on real guest workloads.
 */
#include <hmmv/error.h>
#include <hmmv/tracker.h>

typedef struct {
  HmmvTraceReader *reader;
  gboolean loop;
  /* the interval the last harvest replayed (entries owned by the reader) */
  gboolean have_last;
  const HmmvTraceEntry *last_entries;
  gsize last_nr;
  guint64 last_compute_ns;
} ReplayTracker;

static gboolean
check_pages(ReplayTracker *replay, guint64 nr_pages, GError **error)
{
  guint64 trace_pages = hmmv_trace_reader_get_info(replay->reader)->nr_pages;

  if (trace_pages != nr_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "the trace covers %" G_GUINT64_FORMAT " pages but the VM has %"
                G_GUINT64_FORMAT, trace_pages, nr_pages);
    return FALSE;
  }
  return TRUE;
}

/* Starting (again) replays from the first interval. */
static gboolean
replay_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  ReplayTracker *replay = tracker->priv;

  replay->have_last = FALSE;
  return check_pages(replay, hmmv_vm_get_nr_pages(vm), error) &&
         hmmv_trace_reader_rewind(replay->reader, error);
}

/* Next interval, starting over at the end when looping; FALSE with no error at the end. */
static gboolean
next_interval(ReplayTracker *replay, GError **error)
{
  GError *local = NULL;

  if (hmmv_trace_reader_next(replay->reader, &replay->last_entries, &replay->last_nr,
                             &replay->last_compute_ns, &local))
    return TRUE;
  if (local != NULL) {
    g_propagate_error(error, local);
    return FALSE;
  }
  if (!replay->loop)
    return FALSE;
  if (!hmmv_trace_reader_rewind(replay->reader, error))
    return FALSE;
  /* An empty trace ends here again, with no error: nothing to report, ever. */
  return hmmv_trace_reader_next(replay->reader, &replay->last_entries, &replay->last_nr,
                                &replay->last_compute_ns, error);
}

static gboolean
replay_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  ReplayTracker *replay = tracker->priv;
  gboolean has_reads = (hmmv_trace_reader_get_info(replay->reader)->flags &
                        HMMV_TRACE_HAS_READS) != 0;
  GError *local = NULL;

  replay->have_last = FALSE;
  /* The reader bounds pages by the trace's nr_pages; this makes that the bitmaps' size. */
  if (!check_pages(replay, acc->nr_pages, error))
    return FALSE;
  if (!next_interval(replay, &local)) {
    if (local != NULL) {
      g_propagate_error(error, local);
      return FALSE;
    }
    acc->intervals = 0;
    return TRUE;
  }
  for (gsize i = 0; i < replay->last_nr; i++) {
    const HmmvTraceEntry *entry = &replay->last_entries[i];

    /* stored to (version 3), or a write that reached memory (versions 1, 2) */
    if (entry->stored)
      hmmv_access_mark_write(acc, entry->page);
    if (has_reads && entry->reads > 0)
      hmmv_access_mark_read(acc, entry->page);
  }
  if (has_reads)
    acc->has_reads = TRUE;
  acc->intervals = 1;
  replay->have_last = TRUE;
  return TRUE;
}

static void
replay_destroy(HmmvTracker *tracker)
{
  ReplayTracker *replay = tracker->priv;

  hmmv_trace_reader_free(replay->reader);
  g_free(replay);
}

static const struct hmmv_tracker_ops replay_ops = {
  .name = "replay",
  .start = replay_start,
  .harvest = replay_harvest,
  .destroy = replay_destroy,
};

HmmvTracker *
hmmv_replay_tracker_new(const char *path, gboolean loop, GError **error)
{
  HmmvTraceReader *reader = hmmv_trace_reader_new(path, error);
  ReplayTracker *replay;

  if (reader == NULL)
    return NULL;
  replay = g_new0(ReplayTracker, 1);
  replay->reader = reader;
  replay->loop = loop;
  return hmmv_tracker_new(&replay_ops, replay, error);
}

gboolean
hmmv_replay_tracker_last_interval(HmmvTracker *tracker, const HmmvTraceEntry **entries,
                                  gsize *nr_entries, guint64 *compute_ns)
{
  ReplayTracker *replay;

  g_return_val_if_fail(tracker != NULL && tracker->ops == &replay_ops, FALSE);
  replay = tracker->priv;
  if (!replay->have_last)
    return FALSE;
  *entries = replay->last_entries;
  *nr_entries = replay->last_nr;
  *compute_ns = replay->last_compute_ns;
  return TRUE;
}
