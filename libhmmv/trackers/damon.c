/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The DAMON read tracker (see reads.h). One kdamond per VM, one context, one target, one
 * "stat" scheme whose access pattern takes the regions with nr_accesses >= 1: after
 * "update_schemes_tried_regions" its tried_regions directory lists exactly the regions DAMON
 * saw accessed in the last aggregation interval (Documentation/admin-guide/mm/damon/
 * usage.rst). That command blocks in the kernel until the kdamond has applied the scheme
 * once (up to two aggregation intervals), so a thread of the tracker issues it, reads the
 * regions and ORs their pages into a pending bitmap; harvest() only takes the bitmap. One
 * snapshot, which regions count as read and vaddr against paddr: damon-snapshot.c.
 *
 * Sizes, from the VM and the interval:
 *   aggr_us   = interval / 2: a snapshot (update_schemes_tried_regions) is handed over at
 *               the kdamond's next aggregation and so takes one to two of them; at half
 *               the interval every interval gets a fresh one (at a full interval, a third
 *               of the testbed's intervals got none);
 *   sample_us = interval / 20, at least 1 ms: a region's nr_accesses counts up to 10
 *               samples, and a page read throughout the interval is seen with certainty;
 *   max_nr_regions = pages / 16, 100 .. 10,000: DAMON's cost is per region per sample
 *               (one page-table walk), so this bounds the kdamond's CPU; 16 pages (64 KiB)
 *               a region when all are used is the finest hot set it can draw;
 *   min_nr_regions = max / 4, at least 10: DAMON merges regions of similar access counts,
 *               and a floor keeps it splitting and so finding the hot set's edges;
 *   read      = which accessed regions count as read: damon-snapshot.c.
 *
 * Pacing. The snapshots are most of the tracker's cost: every update_schemes_tried_regions
 * makes the kdamond build a sysfs directory per accessed region, and the thread reads three
 * files from each (the race of issue 8, testbed, 2026-12-02: the thread 49 CPU s and the
 * kdamonds 51 s in 150 s, most of hmmvd's cost, when the thread took one snapshot after
 * another whether or not a harvest came for it). Now the thread takes a snapshot only when
 * harvests want it: after one is taken by a harvest it waits for the next harvest while the
 * read set changes, and for 2, 4, then up to DAMON_EVERY_MAX harvests while consecutive
 * snapshots agree (differ in at most 1/DAMON_ALIKE_SHARE of the pages either marks); one
 * that differs more brings it back to every harvest. The harvests it skips on purpose get
 * the last snapshot again as a new interval's reads (the read set held still), counted in
 * rested_harvests. A changed read set is thus seen up to DAMON_EVERY_MAX intervals late.
 *
 * Watch. The kdamond's own sampling is the other half of the cost (the same race: the
 * kdamonds 51 CPU s in 150 s, unchanged by the pacing): one page-table walk per region per
 * sample. While the core says the VM is settled (HMMV_WATCH_COARSE, tracker.h: every hot page
 * that pays on DRAM, room to spare), the thread writes sample_us and aggr_us
 * HMMV_DAMON_COARSE_FACTOR times longer and "commit"s them to the running kdamond: the same
 * 10 samples an aggregation, a quarter as many a second; a snapshot then waits for an
 * aggregation of 4 intervals (2 s at 500 ms), so a read set that appears on the slow tier is
 * seen a few intervals later, and promoted into the room the VM has. FINE (anything waits, the
 * room ran short) gives the kdamond its own intervals back before the next snapshot, waking
 * a thread that rests for the pacing. Commit keeps the monitoring results (the regions and
 * their counts) where the monitored ranges stay.
 *
 * Quiet. DAMON sees a page written as accessed too, so on a VM whose reads fall on the pages
 * it writes (or that does nothing) the snapshots tell the core nothing the write source has
 * not told it already, and the kdamond and the thread cost the guests for nothing (the race
 * of issue 8, three write-only guests, 2026-12-03: the threads 37 CPU s and the kdamonds 50 s
 * in 150 s, the guests' QEMUs 0.68-0.91 user CPU s a second against 1.23-1.79 without
 * them). Each harvest ORs the VM's writes (the write source harvests first into the same
 * HmmvAccess, tracker.h's combined tracker) into a window of DAMON_QUIET_WINDOW harvests,
 * and checks a fresh snapshot against that window and the one before: the pages it marks
 * read that were not written count as beyond the writes. After DAMON_QUIET_AFTER fresh
 * snapshots in a row with at most 1/DAMON_ALIKE_SHARE of their pages beyond the writes,
 * the thread hands the kdamond intervals HMMV_DAMON_QUIET_FACTOR times its own (whatever
 * the watch) and lets the pacing rest up to DAMON_EVERY_QUIET_MAX harvests. One fresh
 * snapshot with more reads beyond the writes ends it: its own intervals back before the next
 * snapshot, a snapshot every harvest. A read set that appears on a quiet VM is thus seen up to
 * DAMON_EVERY_QUIET_MAX harvests and up to two quiet aggregations (4 intervals each) late; a
 * guest whose reads go beyond its writes never goes quiet.
 *
 * Quiet regions. Both what a quiet kdamond still costs and a snapshot's cost are per region
 * (a page-table walk a region a sample; a sysfs directory a region that the kdamond makes and
 * the thread reads three files from): the race of issue 8, 2026-12-04, quiet kdamonds 4-7
 * CPU s a VM in 150 s and 0.1-0.2 CPU s a snapshot with up to 1,024 regions a 64 MiB VM.
 * So the commit that makes a kdamond quiet also hands it HMMV_DAMON_QUIET_REGIONS_SHARE
 * times fewer regions (nr_regions max and min: 128 and 32 for 64 MiB, at least 10 and 3),
 * and the one that ends quiet its own limits back. What 6.12 does with them (mm/damon/
 * core.c): a commit keeps DAMON's regions but cuts them at the edges of the monitored
 * ranges hmmv wrote (damon_set_regions(): min_nr_regions pieces at setup), and the next
 * aggregation merges adjacent regions of similar access counts, raising its threshold until
 * no more than max are left (kdamond_merge_regions(), regions no larger than the space /
 * min); it splits them again only while at most max / 2 are left. Going quiet thus takes an
 * aggregation (4 intervals) to come down to the quiet max; ending it gives the regions back
 * at the edges of the monitored ranges at once (256 for 64 MiB), and DAMON splits them
 * further in the next aggregations. While quiet a region spans 8 times the pages (512 KiB
 * for 64 MiB when all 128 are used): a read set beyond the writes is still seen as its
 * regions' accesses, which then count for all their pages, so the first snapshot after it
 * appears marks it coarsely (more pages than read, the 1/8 tolerance ends quiet sooner, not
 * later); a read set much smaller than a quiet region (a few pages in 128) may be caught in
 * too few samples to count, and stay unseen until quiet ends for another reason (at the
 * kdamond's own limits the same holds for a few pages in 16-64).
 */
#include "../vm-private.h"
#include "damon-tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <hmmv/error.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Empty snapshots in a row after one with pages that are taken for races, not idleness. */
#define DAMON_EMPTY_RACES 2u
/* Pacing (above): at most this many harvests per snapshot, and snapshots that differ in at
 * most 1/DAMON_ALIKE_SHARE of the pages either marks count as the same read set. */
#define DAMON_EVERY_MAX 8u
#define DAMON_ALIKE_SHARE 8u
/* Quiet (above): fresh snapshots in a row that add nothing to the writes before it, the
 * harvests of one window of writes, and the pacing's rest while quiet. */
#define DAMON_QUIET_AFTER 4u
#define DAMON_QUIET_WINDOW 16u
#define DAMON_EVERY_QUIET_MAX 16u

/* Whether two snapshots mark the same read set but for a few pages (two empty ones do). */
static gboolean
snapshots_alike(const guint64 *a, const guint64 *b, gsize nr_words)
{
  guint64 differ = 0, either = 0;

  for (gsize w = 0; w < nr_words; w++) {
    differ += (guint64)__builtin_popcountll(a[w] ^ b[w]);
    either += (guint64)__builtin_popcountll(a[w] | b[w]);
  }
  return differ * DAMON_ALIKE_SHARE <= either;
}

static guint64
thread_cpu_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (guint64)ts.tv_sec * G_GUINT64_CONSTANT(1000000000) + (guint64)ts.tv_nsec;
}

/* Threads of runs that have not ended yet: each gives its kdamond back before it ends, and
 * a process that exits waits for them (hmmv_damon_wait_released()). */
static GMutex threads_lock;
static GCond threads_cond;
static guint threads_live;

/* After a write waited out its whole patience for DAMON's lock, the thread pauses this long
 * (or until stop()) before it tries again. */
#define DAMON_RETRY_PAUSE_MS 200u

static void
run_unref(HmmvDamonTracker *damon)
{
  if (!g_atomic_int_dec_and_test(&damon->ref_count))
    return;
  g_array_unref(damon->ranges);
  g_array_unref(damon->pfns);
  g_array_unref(damon->seen);
  g_array_unref(damon->spans);
  g_clear_object(&damon->cancel);
  hmmv_sysfs_unref(damon->fs);
  g_mutex_clear(&damon->lock);
  g_cond_clear(&damon->cond);
  g_free(damon->pending);
  g_free(damon->last);
  g_free(damon->written);
  g_free(damon->written_before);
  g_clear_error(&damon->thread_error);
  g_clear_error(&damon->busy_error);
  g_free(damon->run_dir);
  g_free(damon->proc_dir);
  g_free(damon);
}

/* Under damon->lock: waits DAMON_RETRY_PAUSE_MS or until stop(); TRUE unless stopping. */
static gboolean
pause_unless_stopping(HmmvDamonTracker *damon)
{
  gint64 until = g_get_monotonic_time() + DAMON_RETRY_PAUSE_MS * G_TIME_SPAN_MILLISECOND;

  while (!damon->stopping && g_cond_wait_until(&damon->cond, &damon->lock, until))
    ;
  return !damon->stopping;
}

/* Gives back the kdamond the run took, on the thread: it may wait out DAMON's lock. */
static void
give_back(HmmvDamonTracker *damon)
{
  g_autoptr(GError) error = NULL;

  if (!damon->acquired)
    return;
  if (!hmmv_damon_release(damon->fs, damon->run_dir, damon->index, damon->setup_patience_ms,
                          &error))
    g_warning("reads: %s (its record stays under %s: the next hmmvd turns it off)",
              error->message, damon->run_dir);
  damon->acquired = FALSE;
}

/* Sets the kdamond up; a setup that waited out its patience for DAMON's lock gives back
 * what it took and is tried again (the race modes of the testbed, 2026-12-02: "kdamonds/1/
 * state: Device or resource busy" while another VM's command held the lock, and that VM was
 * tracked for writes only for the rest of its life). */
static gboolean
setup_until_done(HmmvDamonTracker *damon, GError **error)
{
  for (;;) {
    g_autoptr(GError) local_error = NULL;
    gboolean again;

    if (hmmv_damon_setup(damon, &local_error))
      return TRUE;
    give_back(damon);
    if (!g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_BUSY)) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return FALSE;
    }
    g_mutex_lock(&damon->lock);
    if (damon->stats.busy_retries++ == 0)
      g_message("reads: DAMON's sysfs lock stayed held by someone else for %u ms (%s): the "
                "kdamond's setup is tried again until it is free",
                damon->setup_patience_ms, local_error->message);
    g_clear_error(&damon->busy_error);
    damon->busy_error = g_error_copy(local_error);
    g_cond_broadcast(&damon->cond);
    again = pause_unless_stopping(damon);
    g_mutex_unlock(&damon->lock);
    if (!again) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "stopped while setting up");
      return FALSE;
    }
  }
}

/* Hands the kdamond the intervals of watch, or the quiet ones and the quiet limits on its
 * regions (see "Watch" and "Quiet"): FALSE as a write fails. */
static gboolean
apply_intervals(HmmvDamonTracker *damon, HmmvWatch watch, gboolean quiet, GError **error)
{
  guint factor = quiet                         ? HMMV_DAMON_QUIET_FACTOR
                 : watch == HMMV_WATCH_COARSE ? HMMV_DAMON_COARSE_FACTOR
                                               : 1u;
  guint64 sample_us = (guint64)damon->fine_sample_us * factor;
  guint64 aggr_us = (guint64)damon->fine_aggr_us * factor;
  guint min_regions = damon->fine_min_nr_regions, max_regions = damon->fine_max_nr_regions;
  char sample[32], aggr[32], update[32], min[16], max[16];

  if (quiet)
    hmmv_damon_quiet_nr_regions(damon->fine_min_nr_regions, damon->fine_max_nr_regions,
                                &min_regions, &max_regions);
  g_snprintf(sample, sizeof(sample), "%" G_GUINT64_FORMAT, sample_us);
  g_snprintf(aggr, sizeof(aggr), "%" G_GUINT64_FORMAT, aggr_us);
  g_snprintf(update, sizeof(update), "%" G_GUINT64_FORMAT, MAX(aggr_us, 1000000u));
  g_snprintf(min, sizeof(min), "%u", min_regions);
  g_snprintf(max, sizeof(max), "%u", max_regions);
  /* aggr_us first: DAMON checks sample_us <= aggr_us only at commit, but a shorter
   * aggregation with the old, longer sample would be wrong for a moment either way (the
   * region limits, too, are checked, min <= max, only at commit) */
  if (!hmmv_damon_write_attr(damon, "contexts/0/monitoring_attrs/intervals/aggr_us", aggr,
                             error) ||
      !hmmv_damon_write_attr(damon, "contexts/0/monitoring_attrs/intervals/sample_us", sample,
                             error) ||
      !hmmv_damon_write_attr(damon, "contexts/0/monitoring_attrs/intervals/update_us", update,
                             error) ||
      !hmmv_damon_write_attr(damon, "contexts/0/monitoring_attrs/nr_regions/max", max,
                             error) ||
      !hmmv_damon_write_attr(damon, "contexts/0/monitoring_attrs/nr_regions/min", min,
                             error) ||
      !hmmv_damon_write_attr(damon, "state", "commit", error))
    return FALSE;
  g_mutex_lock(&damon->lock);
  damon->stats.sample_us = (guint)sample_us;
  damon->stats.aggr_us = (guint)aggr_us;
  damon->stats.coarse = watch == HMMV_WATCH_COARSE;
  damon->stats.quiet = quiet;
  damon->stats.watch_changes += watch != damon->watch_applied;
  damon->stats.quiet_changes += quiet != damon->quiet_applied;
  g_mutex_unlock(&damon->lock);
  damon->watch_applied = watch;
  damon->quiet_applied = quiet;
  return TRUE;
}

static void
snapshots(HmmvDamonTracker *damon, GError **error)
{
  g_autofree guint64 *bitmap = g_new0(guint64, damon->nr_words);

  for (;;) {
    g_autoptr(GError) local_error = NULL;
    guint64 regions = 0, marked = 0, t0, t1;
    gboolean ok, quiet, change;
    HmmvWatch watch;

    g_mutex_lock(&damon->lock);
    /* Pacing: no snapshot before a harvest wants it; a change of watch to FINE, or the end
     * of quiet, is made at once (COARSE, or quiet, can wait for the next snapshot) */
    damon->resting = damon->harvests < damon->next_harvest && damon->every > 1;
    while (!damon->stopping && damon->harvests < damon->next_harvest &&
           !(damon->watch_wanted == HMMV_WATCH_FINE &&
             damon->watch_applied != HMMV_WATCH_FINE && !damon->watch_refused) &&
           !(!damon->quiet_wanted && damon->quiet_applied && !damon->watch_refused))
      g_cond_wait(&damon->cond, &damon->lock);
    damon->resting = FALSE;
    if (damon->stopping) {
      g_mutex_unlock(&damon->lock);
      return;
    }
    watch = damon->watch_wanted;
    quiet = damon->quiet_wanted;
    change = (watch != damon->watch_applied || quiet != damon->quiet_applied) &&
             !damon->watch_refused;
    /* a new watch, or the end of quiet, starts the pacing over: the first snapshot at the
     * new intervals is taken now, and the next after the next harvest (going quiet keeps
     * the pacing where it is: the read set holds still) */
    if (change && (watch != damon->watch_applied || !quiet))
      damon->every = 1;
    g_mutex_unlock(&damon->lock);
    ok = !change || apply_intervals(damon, watch, quiet, &local_error);
    /* A kernel that refuses the change (not its lock: that is waited out below) keeps
     * the kdamond as it runs, and the VM its reads: the watch is not tried again. */
    if (!ok && !g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_BUSY) &&
        !g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
      g_warning("reads: kdamond %u: changing its intervals for the %s watch failed, it keeps "
                "sampling as it does: %s", damon->index,
                quiet ? "quiet" : watch == HMMV_WATCH_COARSE ? "coarse" : "fine",
                local_error->message);
      g_clear_error(&local_error);
      damon->watch_refused = TRUE;
      ok = TRUE;
    }
    t0 = (guint64)g_get_monotonic_time();
    ok = ok && hmmv_damon_snapshot(damon, bitmap, &regions, &marked, &local_error);
    t1 = (guint64)g_get_monotonic_time();
    g_mutex_lock(&damon->lock);
    damon->stats.thread_cpu_ns = thread_cpu_ns();
    /* DAMON's lock held for the write's whole patience: the kdamond runs on, and the next
     * snapshot is tried after a pause (before 2026-12-02 the thread ended, and the VM lost
     * its reads for good). The last snapshot stays what harvests get meanwhile. */
    if (!ok && g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_BUSY)) {
      gboolean again;

      damon->stats.busy_retries++;
      again = pause_unless_stopping(damon);
      g_mutex_unlock(&damon->lock);
      if (!again)
        return;
      continue;
    }
    if (!ok) {
      g_mutex_unlock(&damon->lock);
      g_propagate_error(error, g_steal_pointer(&local_error));
      return;
    }
    /* A snapshot with no page read right after one with pages is how a command that raced
     * the kdamond's refill of tried_regions looks (the testbed, kernel 6.12: 1 in 3
     * snapshots of a guest reading 2,048 pages steadily; 2 in a row seen on 2026-12-02);
     * up to DAMON_EMPTY_RACES in a row are dropped and leave the last snapshot in place
     * (an interval without a new one is given that one: overwriting it with the dropped
     * empty one gave 4 intervals of "nothing read" in a row, cooling a steady read set),
     * the next is believed (the VM went idle: seen 3 snapshots late). */
    if (marked == 0 && damon->last_marked > 0 && damon->empty_run < DAMON_EMPTY_RACES) {
      damon->empty_run++;
      damon->stats.empty_snapshots++;
      g_mutex_unlock(&damon->lock);
      continue;
    }
    damon->empty_run = 0;
    /* Pacing: the next snapshot after this one's harvest while the read set changes; up to
     * DAMON_EVERY_MAX harvests later while it holds still */
    if (damon->stats.snapshots > 0 && snapshots_alike(bitmap, damon->last, damon->nr_words))
      damon->every = MIN(damon->every * 2,
                         damon->quiet_applied ? DAMON_EVERY_QUIET_MAX : DAMON_EVERY_MAX);
    else
      damon->every = 1;
    damon->next_harvest = damon->harvests + damon->every;
    damon->stats.every = damon->every;
    for (gsize w = 0; w < damon->nr_words; w++)
      damon->pending[w] |= bitmap[w];
    memcpy(damon->last, bitmap, damon->nr_words * sizeof(guint64));
    damon->last_marked = marked;
    damon->pending_snapshots++;
    damon->stats.snapshots++;
    damon->stats.accessed_regions = regions;
    damon->listed_regions += regions;
    damon->stats.last_snapshot_ns = (t1 - t0) * 1000;
    g_mutex_unlock(&damon->lock);
  }
}

/* The run's thread: setup, snapshots until stop() or a failure, then the kdamond given back
 * (here, not on stop()'s caller: turning it off and dropping its context are DAMON writes
 * that may wait out its lock, and the caller is hmmvd's main loop when a VM leaves). */
static gpointer
damon_thread(gpointer data)
{
  HmmvDamonTracker *damon = data;
  g_autoptr(GError) error = NULL;

  if (setup_until_done(damon, &error)) {
    g_mutex_lock(&damon->lock);
    damon->setting_up = FALSE;
    g_clear_error(&damon->busy_error);
    g_cond_broadcast(&damon->cond);
    g_mutex_unlock(&damon->lock);
    snapshots(damon, &error);
  }
  /* given back before the error is told: whoever sees it finds the tree as it was */
  give_back(damon);
  g_mutex_lock(&damon->lock);
  /* a setup cancelled, or a snapshot cut short, by stop() is no error of the tracker's */
  if (error != NULL && !damon->stopping)
    damon->thread_error = g_steal_pointer(&error);
  damon->setting_up = FALSE;
  damon->stats.thread_cpu_ns = thread_cpu_ns();
  g_cond_broadcast(&damon->cond);
  g_mutex_unlock(&damon->lock);
  run_unref(damon);
  g_mutex_lock(&threads_lock);
  threads_live--;
  g_cond_broadcast(&threads_cond);
  g_mutex_unlock(&threads_lock);
  return NULL;
}

gboolean
hmmv_damon_wait_released(guint timeout_ms)
{
  gint64 until = g_get_monotonic_time() + (gint64)timeout_ms * G_TIME_SPAN_MILLISECOND;
  gboolean done;

  g_mutex_lock(&threads_lock);
  while (threads_live > 0 && g_cond_wait_until(&threads_cond, &threads_lock, until))
    ;
  done = threads_live == 0;
  g_mutex_unlock(&threads_lock);
  return done;
}

/* The tracker: its options, and the run in progress between start() and stop(). */
typedef struct {
  HmmvDamonOptions options;   /* fs, run_dir, proc_dir: below */
  HmmvSysfs *fs;
  char *run_dir;
  char *proc_dir;
  HmmvDamonTracker *run;
  HmmvDamonStats last_stats;  /* of the last run, once stopped */
} Damon;

static void damon_stop(HmmvTracker *tracker);

/* Checks what it can without the kernel and hands the kdamond's setup to the thread
 * (hmmv_damon_setup()); a setup that fails is reported by the next harvest, as a snapshot
 * thread's failure is. */
static gboolean
damon_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  Damon *d = tracker->priv;
  HmmvDamonTracker *damon;

  /* started again (the VM's layout changed): start over with the new layout */
  damon_stop(tracker);
  if (hmmv_vm_get_pid(vm) <= 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "DAMON needs the QEMU process id of vm %s", hmmv_vm_get_name(vm));
    return FALSE;
  }
  for (guint r = 0; r < hmmv_vm_get_nr_regions(vm); r++) {
    const HmmvRegion *region = hmmv_vm_get_region(vm, r);

    if (region->hva == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "region %s of vm %s has no host address", region->name,
                  hmmv_vm_get_name(vm));
      return FALSE;
    }
  }
  damon = g_new0(HmmvDamonTracker, 1);
  damon->ref_count = 2;       /* the tracker's, the thread's */
  damon->options = d->options;
  damon->fs = hmmv_sysfs_ref(d->fs);
  damon->run_dir = g_strdup(d->run_dir);
  damon->proc_dir = g_strdup(d->proc_dir);
  damon->patience_ms = d->options.patience_ms != 0 ? d->options.patience_ms
                                                   : HMMV_DAMON_PATIENCE_MS;
  damon->setup_patience_ms = d->options.setup_patience_ms != 0 ? d->options.setup_patience_ms
                                                               : HMMV_DAMON_SETUP_PATIENCE_MS;
  damon->ranges = g_array_new(FALSE, FALSE, sizeof(HvaRange));
  damon->pfns = g_array_new(FALSE, FALSE, sizeof(PfnPage));
  damon->seen = g_array_new(FALSE, FALSE, sizeof(RegionSeen));
  damon->spans = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_mutex_init(&damon->lock);
  g_cond_init(&damon->cond);
  damon->target_pid = hmmv_vm_get_pid(vm);
  damon->nr_pages = hmmv_vm_get_nr_pages(vm);
  damon->nr_words = (damon->nr_pages + 63) / 64;
  for (guint r = 0; r < hmmv_vm_get_nr_regions(vm); r++) {
    const HmmvRegion *region = hmmv_vm_get_region(vm, r);
    HvaRange range = { region->hva, region->nr_pages, region->first_page };

    g_array_append_val(damon->ranges, range);
  }
  hmmv_damon_choose_sizes(damon);
  damon->pending = g_new0(guint64, damon->nr_words);
  damon->last = g_new0(guint64, damon->nr_words);
  damon->written = g_new0(guint64, damon->nr_words);
  damon->written_before = g_new0(guint64, damon->nr_words);
  damon->setting_up = TRUE;
  damon->every = 1;
  damon->stats.every = 1;
  damon->cancel = g_cancellable_new();
  g_mutex_lock(&threads_lock);
  threads_live++;
  g_mutex_unlock(&threads_lock);
  damon->thread = g_thread_new("hmmv-damon", damon_thread, damon);
  d->run = damon;
  return TRUE;
}

/* Under damon->lock, a harvest with a fresh snapshot that marked marked pages, beyond of
 * them not written in the window ("Quiet"). */
static void
judge_quiet(HmmvDamonTracker *damon, guint64 beyond, guint64 marked)
{
  gboolean quiet;

  damon->stats.beyond_writes = beyond;
  if (beyond * DAMON_ALIKE_SHARE <= marked)
    damon->quiet_votes = MIN(damon->quiet_votes + 1, DAMON_QUIET_AFTER);
  else
    damon->quiet_votes = 0;
  quiet = damon->quiet_votes >= DAMON_QUIET_AFTER;
  if (quiet != damon->quiet_wanted) {
    damon->quiet_wanted = quiet;
    g_cond_broadcast(&damon->cond);
  }
}

static gboolean
damon_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  Damon *d = tracker->priv;
  HmmvDamonTracker *damon = d->run;
  guint64 any = 0, beyond = 0, marked = 0;

  (void)vm;
  if (damon == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "DAMON tracker not started");
    return FALSE;
  }
  g_mutex_lock(&damon->lock);
  if (damon->thread_error != NULL && damon->pending_snapshots == 0) {
    g_propagate_error(error, g_error_copy(damon->thread_error));
    g_mutex_unlock(&damon->lock);
    return FALSE;
  }
  /* DAMON's aggregations do not line up with hmmv's intervals: an interval that saw no
   * new snapshot gets the last one again (still the freshest view), not "nothing read".
   * The writes in acc (the write source harvested first) go into the window of writes,
   * and a fresh snapshot's pages are checked against it ("Quiet"). */
  for (gsize w = 0; w < MIN(damon->nr_words, acc->nr_words); w++) {
    guint64 word = damon->pending_snapshots > 0 ? damon->pending[w] : damon->last[w];

    damon->written[w] |= acc->writes[w];
    if (damon->pending_snapshots > 0) {
      beyond += (guint64)__builtin_popcountll(word & ~(damon->written[w] |
                                                       damon->written_before[w]));
      marked += (guint64)__builtin_popcountll(word);
    }
    acc->reads[w] |= word;
    any |= word;
    damon->pending[w] = 0;
  }
  if (damon->pending_snapshots > 0)
    judge_quiet(damon, beyond, marked);
  if (++damon->written_harvests >= DAMON_QUIET_WINDOW) {
    guint64 *older = damon->written_before;

    damon->written_before = damon->written;
    damon->written = older;
    memset(damon->written, 0, damon->nr_words * sizeof(guint64));
    damon->written_harvests = 0;
  }
  if (damon->stats.quiet)
    damon->stats.quiet_harvests++;
  if (any != 0)
    acc->has_reads = TRUE;
  acc->intervals = damon->pending_snapshots;
  /* the thread skips this harvest on purpose (the read set holds still): the last snapshot
   * is this interval's reads, not "nothing new" */
  if (damon->pending_snapshots == 0 && damon->resting) {
    acc->intervals = 1;
    damon->stats.rested_harvests++;
  }
  damon->pending_snapshots = 0;
  damon->harvests++;
  if (damon->harvests >= damon->next_harvest)
    g_cond_broadcast(&damon->cond);
  g_mutex_unlock(&damon->lock);
  return TRUE;
}

/* Never blocks: the thread makes the change before its next snapshot ("Watch"). */
static void
damon_set_watch(HmmvTracker *tracker, HmmvWatch watch)
{
  Damon *d = tracker->priv;
  HmmvDamonTracker *damon = d->run;

  if (damon == NULL)
    return;
  g_mutex_lock(&damon->lock);
  if (damon->watch_wanted != watch) {
    damon->watch_wanted = watch;
    g_cond_broadcast(&damon->cond);
  }
  g_mutex_unlock(&damon->lock);
}

/* Never blocks: the thread finishes its snapshot, turns the kdamond off and gives it back
 * (damon_thread()), and the run is freed by whichever of the two lets go last. */
static void
damon_stop(HmmvTracker *tracker)
{
  Damon *d = tracker->priv;
  HmmvDamonTracker *damon = g_steal_pointer(&d->run);

  if (damon == NULL)
    return;
  g_mutex_lock(&damon->lock);
  damon->stopping = TRUE;
  d->last_stats = damon->stats;
  /* what the run cost and saved, for the log (the race's breakdown of hmmvd's CPU) */
  if (damon->harvests > 0)
    g_message("reads: kdamond %u (pid %d): %" G_GUINT64_FORMAT " harvests, %" G_GUINT64_FORMAT
              " snapshots (%" G_GUINT64_FORMAT " harvests rested), quiet for %" G_GUINT64_FORMAT
              " harvests (%" G_GUINT64_FORMAT " changes), snapshot thread %.2f CPU s, %.0f "
              "regions listed a snapshot",
              damon->stats.kdamond, damon->stats.kdamond_pid, damon->harvests,
              damon->stats.snapshots, damon->stats.rested_harvests, damon->stats.quiet_harvests,
              damon->stats.quiet_changes, damon->stats.thread_cpu_ns / 1e9,
              damon->stats.snapshots > 0
                ? (double)damon->listed_regions / (double)damon->stats.snapshots : 0.0);
  g_cond_broadcast(&damon->cond);
  g_mutex_unlock(&damon->lock);
  /* a setup, or a snapshot's command, waiting out DAMON's lock gives up */
  g_cancellable_cancel(damon->cancel);
  g_thread_unref(damon->thread);
  run_unref(damon);
}

static void
damon_destroy(HmmvTracker *tracker)
{
  Damon *d = tracker->priv;

  damon_stop(tracker);
  hmmv_sysfs_unref(d->fs);
  g_free(d->run_dir);
  g_free(d->proc_dir);
  g_free(d);
}

static const struct hmmv_tracker_ops damon_vaddr_ops = {
  .name = "damon-vaddr",
  .start = damon_start,
  .harvest = damon_harvest,
  .stop = damon_stop,
  .set_watch = damon_set_watch,
  .destroy = damon_destroy,
};

static const struct hmmv_tracker_ops damon_paddr_ops = {
  .name = "damon-paddr",
  .start = damon_start,
  .harvest = damon_harvest,
  .stop = damon_stop,
  .set_watch = damon_set_watch,
  .destroy = damon_destroy,
};

HmmvTracker *
hmmv_damon_tracker_new(const HmmvDamonOptions *options, GError **error)
{
  Damon *d = g_new0(Damon, 1);

  d->options = *options;
  d->fs = options->fs != NULL ? hmmv_sysfs_ref(options->fs)
                              : hmmv_sysfs_new_dir(HMMV_DAMON_ADMIN_DIR);
  d->run_dir = g_strdup(options->run_dir != NULL ? options->run_dir : HMMV_DAMON_RUN_DIR);
  d->proc_dir = g_strdup(options->proc_dir != NULL ? options->proc_dir : "/proc");
  d->options.fs = NULL;
  d->options.run_dir = NULL;
  d->options.proc_dir = NULL;
  return hmmv_tracker_new(options->ops == HMMV_DAMON_PADDR ? &damon_paddr_ops
                                                           : &damon_vaddr_ops,
                          d, error);
}

static Damon *
damon_of(HmmvTracker *tracker)
{
  if (tracker == NULL ||
      (tracker->ops != &damon_vaddr_ops && tracker->ops != &damon_paddr_ops))
    return NULL;
  return tracker->priv;
}

gboolean
hmmv_damon_tracker_get_stats(HmmvTracker *tracker, HmmvDamonStats *stats)
{
  Damon *d = damon_of(tracker);

  if (d == NULL)
    return FALSE;
  if (d->run == NULL) {
    *stats = d->last_stats;
    return TRUE;
  }
  g_mutex_lock(&d->run->lock);
  *stats = d->run->stats;
  g_mutex_unlock(&d->run->lock);
  return TRUE;
}

gboolean
hmmv_damon_tracker_wait_setup(HmmvTracker *tracker, GError **error)
{
  Damon *d = damon_of(tracker);
  HmmvDamonTracker *damon;
  gboolean ok;

  if (d == NULL)
    return TRUE;
  damon = d->run;
  if (damon == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "DAMON tracker not started");
    return FALSE;
  }
  g_mutex_lock(&damon->lock);
  while (damon->setting_up && damon->busy_error == NULL)
    g_cond_wait(&damon->cond, &damon->lock);
  ok = !damon->setting_up && damon->thread_error == NULL && !damon->stopping;
  if (damon->thread_error != NULL)
    g_propagate_error(error, g_error_copy(damon->thread_error));
  else if (damon->setting_up)
    g_propagate_prefixed_error(error, g_error_copy(damon->busy_error),
                               "still trying (DAMON's lock is held): ");
  g_mutex_unlock(&damon->lock);
  return ok;
}
