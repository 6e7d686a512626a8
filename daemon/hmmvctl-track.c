/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvctl track: attach to one QEMU's QMP socket, start the qemu-dirty export, and print the
 * guest-physical pages written per interval (or write them as a replay trace). Harvests run
 * from a GMainLoop timer and SIGINT/SIGTERM only quit the loop, so a signal never lands in the
 * middle of a harvest and tracking always ends with hmmv-stop.
 */
#include "hmmvctl.h"
#include "reads.h"

#include <glib-unix.h>
#include <hmmv/hmmv.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Harvest period when QEMU publishes only on demand (--interval-ms 0). */
#define ON_DEMAND_PERIOD_MS 1000u
#define QMP_TIMEOUT_MS 5000u

typedef struct {
  GMainLoop *loop;
  HmmvQmp *qmp;               /* borrowed from the tracker */
  HmmvVm *vm;
  HmmvTracker *tracker;
  HmmvTracker *dirty;         /* the qemu-dirty part of tracker (borrowed) */
  gboolean reads;
  HmmvAccess *acc;
  HmmvTraceWriter *trace;
  GArray *entries;            /* HmmvTraceEntry, reused */
  int count;                  /* < 0: until interrupted */
  guint intervals;
  gint64 last_us;
  GError *error;
} Track;

static void
print_range(guint64 start, guint64 end)
{
  printf("  0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER "x (%" G_GUINT64_FORMAT
         " pages)\n", start, end, (end - start) / HMMV_PAGE_SIZE);
}

/* Pages of one kind as coalesced guest-physical ranges, END exclusive. Page indices ascend
 * and regions ascend in gpa, so one pass in index order sees addresses in order. reads:
 * pages read and not written (DAMON sees writes as accesses too; qemu-dirty knows them). */
static void
print_ranges(Track *t, gboolean reads)
{
  guint64 start = 0, end = 0;
  gboolean open = FALSE;

  for (gsize w = 0; w < t->acc->nr_words; w++) {
    guint64 word = reads ? t->acc->reads[w] & ~t->acc->writes[w] : t->acc->writes[w];

    for (guint64 bits = word; bits != 0; bits &= bits - 1) {
      guint64 gpa = hmmv_vm_page_to_gpa(t->vm, w * 64 + (guint64)__builtin_ctzll(bits));

      if (open && gpa == end) {
        end += HMMV_PAGE_SIZE;
        continue;
      }
      if (open)
        print_range(start, end);
      start = gpa;
      end = gpa + HMMV_PAGE_SIZE;
      open = TRUE;
    }
  }
  if (open)
    print_range(start, end);
}

static gboolean
write_trace_interval(Track *t, guint64 compute_ns, GError **error)
{
  g_array_set_size(t->entries, 0);
  for (gsize w = 0; w < t->acc->nr_words; w++) {
    for (guint64 bits = t->acc->writes[w]; bits != 0; bits &= bits - 1) {
      HmmvTraceEntry entry = { .page = w * 64 + (guint64)__builtin_ctzll(bits), .writes = 1 };

      g_array_append_val(t->entries, entry);
    }
  }
  if (t->reads) {
    /* read-only pages, merged in page order with the written ones */
    g_autoptr(GArray) merged = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
    guint i = 0;

    for (gsize w = 0; w < t->acc->nr_words; w++) {
      for (guint64 bits = t->acc->reads[w] & ~t->acc->writes[w]; bits != 0; bits &= bits - 1) {
        HmmvTraceEntry entry = { .page = w * 64 + (guint64)__builtin_ctzll(bits), .reads = 1 };

        while (i < t->entries->len && g_array_index(t->entries, HmmvTraceEntry, i).page < entry.page)
          g_array_append_val(merged, g_array_index(t->entries, HmmvTraceEntry, i++));
        g_array_append_val(merged, entry);
      }
    }
    while (i < t->entries->len)
      g_array_append_val(merged, g_array_index(t->entries, HmmvTraceEntry, i++));
    g_array_set_size(t->entries, 0);
    g_array_append_vals(t->entries, merged->data, merged->len);
  }
  return hmmv_trace_writer_add_interval(t->trace, compute_ns,
                                        (const HmmvTraceEntry *)t->entries->data,
                                        t->entries->len, error);
}

/* A DAMON read source sets its kdamond up on its own thread (hmmvd's main loop must not
 * wait for it); the command line waits, so that a source that cannot start says so at
 * once instead of at the first interval. */
static gboolean
wait_reads_setup(Track *t, GError **error)
{
  if (!t->reads || hmmv_damon_tracker_wait_setup(hmmv_combined_tracker_get_reads(t->tracker),
                                                 error))
    return TRUE;
  g_prefix_error(error, "--reads: ");
  return FALSE;
}

/* QEMU's RAM layout changed (hot-plug): learn the new one and restart the export. */
static gboolean
restart(Track *t, GError **error)
{
  g_autoptr(HmmvVm) vm = NULL;

  if (t->trace != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                "QEMU's RAM layout changed; a trace covers one layout, so it ends here");
    return FALSE;
  }
  fprintf(stderr, "hmmvctl: QEMU's RAM layout changed; tracking restarts\n");
  vm = hmmv_qemu_vm_new(t->qmp, "track", error);
  if (vm != NULL)
    hmmv_vm_set_pid(vm, hmmv_qmp_get_peer_pid(t->qmp));
  if (vm == NULL || !hmmv_tracker_start(t->tracker, vm, error) || !wait_reads_setup(t, error))
    return FALSE;
  hmmv_access_free(t->acc);
  t->acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), error);
  if (t->acc == NULL)
    return FALSE;
  hmmv_vm_free(t->vm);
  t->vm = g_steal_pointer(&vm);
  return TRUE;
}

static gboolean
harvest_once(Track *t, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  HmmvQemuDirtyStats stats;
  gint64 now_us;
  guint64 written, read = 0;

  hmmv_access_clear(t->acc);
  if (!hmmv_tracker_harvest(t->tracker, t->vm, t->acc, &local_error)) {
    if (g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED))
      return restart(t, error);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  if (t->acc->intervals == 0)
    return TRUE;    /* nothing published since the last harvest */
  now_us = g_get_monotonic_time();
  written = hmmv_bitmap_count(t->acc->writes, t->acc->nr_words);
  for (gsize w = 0; w < t->acc->nr_words; w++)
    read += (guint64)__builtin_popcountll(t->acc->reads[w] & ~t->acc->writes[w]);
  (void)hmmv_qemu_dirty_tracker_get_stats(t->dirty, &stats);
  t->intervals++;
  if (t->trace != NULL) {
    if (!write_trace_interval(t, (guint64)(now_us - t->last_us) * 1000u, error))
      return FALSE;
  } else {
    printf("interval %u: %" G_GUINT64_FORMAT " pages written (generation %" G_GUINT64_FORMAT
           ", %" G_GUINT64_FORMAT " merged)\n", t->intervals, written, stats.generation,
           t->acc->intervals);
    print_ranges(t, FALSE);
    if (t->reads) {
      printf("interval %u: %" G_GUINT64_FORMAT " pages read, not written (%s)\n",
             t->intervals, read, t->tracker != t->dirty &&
             hmmv_combined_tracker_get_reads(t->tracker) != NULL
               ? hmmv_tracker_get_name(hmmv_combined_tracker_get_reads(t->tracker))
               : "read source lost");
      print_ranges(t, TRUE);
    }
    fflush(stdout);
  }
  t->last_us = now_us;
  return TRUE;
}

static gboolean
on_tick(gpointer user_data)
{
  Track *t = user_data;

  if (!harvest_once(t, &t->error) || (t->count >= 0 && t->intervals >= (guint)t->count)) {
    g_main_loop_quit(t->loop);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal(gpointer user_data)
{
  Track *t = user_data;

  fprintf(stderr, "hmmvctl: interrupted; stopping tracking\n");
  g_main_loop_quit(t->loop);
  return G_SOURCE_CONTINUE;
}

/* The read source hmmvd's [reads] source = auto takes (daemon/reads.c): DAMON vaddr, then
 * idle page tracking, then DAMON paddr, each only where the kernel offers it and (DAMON) a
 * kdamond is free; decided without writing, the reasons for the ones passed over printed.
 * Takes dirty; returns it combined with the read tracker, or NULL with error. */
static HmmvTracker *
reads_wrap(HmmvTracker *dirty, int interval_ms, GError **error)
{
  HmmvdConfig config;
  g_autoptr(HmmvdReads) reads = NULL;
  const char *source, *reason;
  HmmvTracker *tracker;

  hmmvd_config_init(&config);
  config.interval_ms = interval_ms > 0 ? (guint)interval_ms : ON_DEMAND_PERIOD_MS;
  reads = hmmvd_reads_new_quiet(&config, NULL);
  hmmvd_config_clear(&config);
  source = hmmvd_reads_get_source(reads);
  reason = hmmvd_reads_get_reason(reads);
  if (g_strcmp0(source, "none") == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED, "--reads: no read source (%s)",
                reason != NULL ? reason : "none offered");
    hmmv_tracker_free(dirty);
    return NULL;
  }
  tracker = hmmvd_reads_wrap(reads, dirty);
  if (tracker == dirty) {   /* the read tracker could not be made (hmmvd_reads_wrap says why) */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "--reads: %s could not be set up",
                source);
    hmmv_tracker_free(dirty);
    return NULL;
  }
  fprintf(stderr, "hmmvctl: reads from %s%s%s%s\n", source,
          reason != NULL ? " (passed over: " : "", reason != NULL ? reason : "",
          reason != NULL ? ")" : "");
  return tracker;
}

static gboolean
track_start(Track *t, const char *qmp_path, int interval_ms, const char *trace,
            GError **error)
{
  HmmvQemuDirtyOptions options = { .interval_ms = (guint)interval_ms };
  HmmvQmp *qmp = hmmv_qmp_connect_unix(qmp_path, QMP_TIMEOUT_MS, error);

  if (qmp == NULL)
    return FALSE;
  t->vm = hmmv_qemu_vm_new(qmp, "track", error);
  if (t->vm == NULL) {
    hmmv_qmp_free(qmp);
    return FALSE;
  }
  t->qmp = qmp;
  hmmv_vm_set_pid(t->vm, hmmv_qmp_get_peer_pid(qmp));
  t->tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, error);   /* takes qmp */
  if (t->tracker == NULL)
    return FALSE;
  t->dirty = t->tracker;
  if (t->reads) {
    t->tracker = reads_wrap(t->tracker, interval_ms, error);
    if (t->tracker == NULL)
      return FALSE;
  }
  t->acc = hmmv_access_new(hmmv_vm_get_nr_pages(t->vm), error);
  if (t->acc == NULL || !hmmv_tracker_start(t->tracker, t->vm, error) ||
      !wait_reads_setup(t, error))
    return FALSE;
  if (trace != NULL) {
    HmmvTraceInfo info = {
      .nr_pages = hmmv_vm_get_nr_pages(t->vm),
      .interval_ms = interval_ms > 0 ? (guint32)interval_ms : ON_DEMAND_PERIOD_MS,
    };

    t->trace = hmmv_trace_writer_new(trace, &info, error);
    if (t->trace == NULL)
      return FALSE;
  }
  return TRUE;
}

static void
track_clear(Track *t)
{
  if (t->tracker != NULL) {
    hmmv_tracker_stop(t->tracker);   /* hmmv-stop; harmless when QEMU is gone */
    hmmv_tracker_free(t->tracker);
    /* --reads: the kdamond is turned off and given back on the tracker's thread */
    if (!hmmv_damon_wait_released(150000))
      fprintf(stderr, "hmmvctl: the kdamond is still being given back; the next hmmvd "
              "turns it off\n");
  }
  hmmv_access_free(t->acc);
  hmmv_vm_free(t->vm);
  hmmv_trace_writer_free(t->trace);
  g_array_unref(t->entries);
  g_main_loop_unref(t->loop);
  g_clear_error(&t->error);
}

gboolean
hmmvctl_track(const char *qmp_path, int interval_ms, int count, const char *trace,
              gboolean reads, GError **error)
{
  Track t = { .count = count, .reads = reads };
  guint period_ms = interval_ms > 0 ? (guint)interval_ms : ON_DEMAND_PERIOD_MS;
  guint sigint, sigterm;
  gboolean ok;

  if (interval_ms < 0 || interval_ms > 3600 * 1000) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--interval-ms must be in 0..3600000");
    return FALSE;
  }
  t.loop = g_main_loop_new(NULL, FALSE);
  t.entries = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
  if (count == 0 || !track_start(&t, qmp_path, interval_ms, trace, error)) {
    ok = count == 0;
    track_clear(&t);
    return ok;
  }
  fprintf(stderr, "hmmvctl: tracking %" G_GUINT64_FORMAT " MiB of guest RAM in %u region(s) "
          "through %s%s\n", hmmv_vm_get_nr_pages(t.vm) >> 8, hmmv_vm_get_nr_regions(t.vm),
          qmp_path, interval_ms == 0 ? " (published on demand)" : "");
  t.last_us = g_get_monotonic_time();
  sigint = g_unix_signal_add(SIGINT, on_signal, &t);
  sigterm = g_unix_signal_add(SIGTERM, on_signal, &t);
  g_timeout_add(period_ms, on_tick, &t);
  g_main_loop_run(t.loop);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  (void)g_source_remove_by_user_data(&t);
  ok = t.error == NULL;
  if (!ok)
    g_propagate_error(error, g_steal_pointer(&t.error));
  if (ok && t.trace != NULL)
    ok = hmmv_trace_writer_close(t.trace, error);
  fprintf(stderr, "hmmvctl: %u interval(s) seen; tracking stopped\n", t.intervals);
  track_clear(&t);
  return ok;
}
