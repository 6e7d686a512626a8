/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvd's read source: see reads.h. */
#include "reads.h"

#include <string.h>

typedef enum {
  SOURCE_NONE,
  SOURCE_DAMON,
  SOURCE_IDLE,
} Source;

struct _HmmvdReads {
  HmmvSysfs *fs;
  char *run_dir;
  guint interval_ms;
  gboolean enabled;
  Source kind;
  HmmvDamonOps ops;
  char *bitmap_path;
  HmmvIdleIo *(*make_idle_io)(gpointer data);
  gpointer data;
  char *source;
  char *reason;
};

static gboolean
try_ops(HmmvdReads *reads, HmmvDamonOps ops, GString *why)
{
  g_autoptr(GError) error = NULL;

  if (hmmv_damon_probe(reads->fs, ops, NULL, &error) &&
      hmmv_damon_can_acquire(reads->fs, reads->run_dir, &error))
    return TRUE;
  g_string_append_printf(why, "%sDAMON %s: %s", why->len > 0 ? "; " : "",
                         hmmv_damon_ops_name(ops), error->message);
  return FALSE;
}

static gboolean
try_idle(HmmvdReads *reads, GString *why)
{
  g_autoptr(GError) error = NULL;

  if (hmmv_idle_probe(reads->bitmap_path, &error))
    return TRUE;
  g_string_append_printf(why, "%s%s", why->len > 0 ? "; " : "", error->message);
  return FALSE;
}

static HmmvdReads *reads_new(const HmmvdConfig *config, HmmvSysfs *fs,
                             const char *bitmap_path,
                             HmmvIdleIo *(*make_idle_io)(gpointer data), gpointer data,
                             gboolean quiet);

HmmvdReads *
hmmvd_reads_new(const HmmvdConfig *config, HmmvSysfs *fs)
{
  return reads_new(config, fs, NULL, NULL, NULL, FALSE);
}

HmmvdReads *
hmmvd_reads_new_quiet(const HmmvdConfig *config, HmmvSysfs *fs)
{
  return reads_new(config, fs, NULL, NULL, NULL, TRUE);
}

HmmvdReads *
hmmvd_reads_new_full(const HmmvdConfig *config, HmmvSysfs *fs, const char *bitmap_path,
                     HmmvIdleIo *(*make_idle_io)(gpointer data), gpointer data)
{
  return reads_new(config, fs, bitmap_path, make_idle_io, data, FALSE);
}

static HmmvdReads *
reads_new(const HmmvdConfig *config, HmmvSysfs *fs, const char *bitmap_path,
          HmmvIdleIo *(*make_idle_io)(gpointer data), gpointer data, gboolean quiet)
{
  g_autoptr(HmmvdReads) reads = g_new0(HmmvdReads, 1);
  g_autoptr(GString) why = g_string_new(NULL);
  g_autoptr(GError) error = NULL;
  const char *wanted = config->reads_source;

  reads->fs = fs != NULL ? hmmv_sysfs_ref(fs) : hmmv_sysfs_new_dir(HMMV_DAMON_ADMIN_DIR);
  reads->run_dir = g_strdup(config->reads_run_dir);
  reads->interval_ms = config->interval_ms;
  reads->bitmap_path = g_strdup(bitmap_path);
  reads->make_idle_io = make_idle_io;
  reads->data = data;
  if (strcmp(wanted, "none") == 0) {
    reads->source = g_strdup("none");
    reads->reason = g_strdup("[reads] source = none");
    if (!quiet)
      g_message("reads: not tracked ([reads] source = none): write-only tracking");
    return g_steal_pointer(&reads);
  }
  /* A killed hmmvd left its kdamonds running: take them back before choosing (only those
   * that still look exactly as hmmv set them up). */
  if (hmmv_sysfs_exists(reads->fs, "kdamonds/nr_kdamonds")) {
    guint cleaned = hmmv_damon_cleanup_stale(reads->fs, reads->run_dir, &error);

    if (error != NULL)
      g_warning("reads: cleaning up after a previous hmmvd: %s", error->message);
    else if (cleaned > 0)
      g_message("reads: turned off %u kdamond(s) a previous hmmvd left running", cleaned);
  }
  /* auto: DAMON vaddr first (measured in the testbed, needs no CAP_SYS_ADMIN, its cost is
   * per region, bounded by hmmv), then idle page tracking (exact per page scanned, but
   * every warm page costs an rmap walk each interval, and it needs the frames from
   * pagemap), then DAMON paddr (frames too; its recall is the lowest, BENCHMARKS.md). */
  if ((strcmp(wanted, "auto") == 0 || strcmp(wanted, "damon-vaddr") == 0) &&
      try_ops(reads, HMMV_DAMON_VADDR, why)) {
    reads->kind = SOURCE_DAMON;
    reads->ops = HMMV_DAMON_VADDR;
  } else if ((strcmp(wanted, "auto") == 0 || strcmp(wanted, "idle-page") == 0) &&
             try_idle(reads, why)) {
    reads->kind = SOURCE_IDLE;
  } else if ((strcmp(wanted, "auto") == 0 || strcmp(wanted, "damon-paddr") == 0) &&
             try_ops(reads, HMMV_DAMON_PADDR, why)) {
    reads->kind = SOURCE_DAMON;
    reads->ops = HMMV_DAMON_PADDR;
  }
  reads->enabled = reads->kind != SOURCE_NONE;
  if (reads->kind == SOURCE_IDLE) {
    reads->source = g_strdup("idle-page");
    reads->reason = why->len > 0 ? g_strdup(why->str) : NULL;
    if (!quiet)
      g_message("reads: tracked by idle page tracking (%s, cold pages scanned every 8th "
              "interval)%s%s", reads->bitmap_path != NULL ? reads->bitmap_path
                                                          : HMMV_IDLE_BITMAP_PATH,
              why->len > 0 ? "; not " : "", why->str);
  } else if (reads->enabled) {
    reads->source = g_strdup_printf("damon-%s", hmmv_damon_ops_name(reads->ops));
    reads->reason = why->len > 0 ? g_strdup(why->str) : NULL;
    if (!quiet)
      g_message("reads: tracked by DAMON %s (a free kdamond per VM, aggregation = the %u ms "
              "interval)%s%s", hmmv_damon_ops_name(reads->ops), reads->interval_ms,
              why->len > 0 ? "; not " : "", why->str);
  } else {
    reads->source = g_strdup("none");
    reads->reason = g_strdup(why->str);
    if (!quiet)
      g_message("reads: not tracked (%s): write-only tracking", why->str);
  }
  return g_steal_pointer(&reads);
}

void
hmmvd_reads_free(HmmvdReads *reads)
{
  if (reads == NULL)
    return;
  hmmv_sysfs_unref(reads->fs);
  g_free(reads->run_dir);
  g_free(reads->bitmap_path);
  g_free(reads->source);
  g_free(reads->reason);
  g_free(reads);
}

const char *
hmmvd_reads_get_source(const HmmvdReads *reads)
{
  return reads->source;
}

const char *
hmmvd_reads_get_reason(const HmmvdReads *reads)
{
  return reads->reason;
}

HmmvTracker *
hmmvd_reads_wrap(HmmvdReads *reads, HmmvTracker *writes)
{
  HmmvDamonOptions options = { 0 };
  g_autoptr(GError) error = NULL;
  HmmvTracker *damon;

  if (reads == NULL || !reads->enabled || writes == NULL)
    return writes;
  if (reads->kind == SOURCE_IDLE) {
    HmmvIdleOptions idle_options = { 0 };
    HmmvTracker *idle;

    idle_options.io = reads->make_idle_io != NULL
                        ? reads->make_idle_io(reads->data)
                        : hmmv_idle_io_new_files(reads->bitmap_path, NULL);
    idle = hmmv_idle_tracker_new(&idle_options, &error);
    if (idle == NULL) {
      g_warning("reads: %s: %s", reads->source, error->message);
      return writes;
    }
    return hmmv_combined_tracker_new(writes, idle);
  }
  options.ops = reads->ops;
  options.interval_ms = reads->interval_ms;
  options.fs = reads->fs;
  options.run_dir = reads->run_dir;
  damon = hmmv_damon_tracker_new(&options, &error);
  if (damon == NULL) {
    g_warning("reads: %s: %s", reads->source, error->message);
    return writes;
  }
  return hmmv_combined_tracker_new(writes, damon);
}
