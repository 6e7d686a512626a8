/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The DAMON read tracker's state, shared by damon.c (start, stop, harvest and the thread's
 * pacing), damon-snapshot.c (one snapshot, on that thread) and damon-setup.c (taking and
 * configuring a kdamond, on that thread). */
#pragma once

#include "damon-private.h"

#include <gio/gio.h>

G_BEGIN_DECLS

#define PAGEMAP_PFN_MASK ((G_GUINT64_CONSTANT(1) << 55) - 1)
#define PAGEMAP_PRESENT (G_GUINT64_CONSTANT(1) << 63)

typedef struct {
  guint64 hva;
  guint64 nr_pages;
  guint64 first_page;
} HvaRange;

typedef struct {
  guint64 pfn;
  guint64 page;
} PfnPage;

typedef struct {
  guint64 start, end, nr_accesses;
} RegionSeen;

/* Which regions of a snapshot count as read (damon-snapshot.c): read[i] for regions[i], the
 * regions in address order as DAMON lists them. */
void hmmv_damon_regions_read(const RegionSeen *regions, guint nr, guint64 min_accesses,
                             gboolean *read);

/* One run of the tracker, start() to the end of its thread: shared by the tracker (until
 * stop()) and the thread (until it has given the kdamond back), so it is counted. */
typedef struct {
  gint ref_count;
  HmmvSysfs *fs;
  HmmvDamonOptions options;
  guint patience_ms;        /* a write's wait for DAMON's lock once set up */
  guint setup_patience_ms;  /* the same while setting up and giving back */
  char *run_dir;
  char *proc_dir;
  gboolean acquired;
  guint index;
  int target_pid;
  GArray *ranges;           /* HvaRange by hva */
  guint64 nr_pages;
  gsize nr_words;
  GArray *pfns;             /* PfnPage by pfn (paddr; thread only) */
  GArray *spans;            /* paddr: the monitored physical ranges, [start, end) pairs of
                               guint64, sorted (thread only once started) */
  GArray *seen;             /* RegionSeen of the snapshot being read (thread only) */

  GThread *thread;
  GCancellable *cancel;     /* stop(): a setup waiting out DAMON's lock gives up */
  GMutex lock;
  GCond cond;               /* the setup ended (setting_up cleared), gave up on EBUSY once
                               (busy_error), or stop() was called */
  gboolean setting_up;      /* under lock: the thread is still taking and configuring the
                               kdamond */
  gboolean stopping;        /* under lock */
  guint64 *pending;         /* under lock */
  guint64 *last;            /* under lock: the last snapshot */
  guint64 pending_snapshots;
  guint64 last_marked;      /* under lock: pages read in the last snapshot */
  guint empty_run;          /* under lock: empty snapshots dropped since the last one kept */
  guint64 harvests;         /* under lock: harvest() calls so far */
  guint64 next_harvest;     /* under lock: the thread takes its next snapshot once harvests
                               reaches this (damon.c, "Pacing") */
  guint every;              /* under lock: harvests per snapshot, 1 .. DAMON_EVERY_MAX */
  gboolean resting;         /* under lock: the thread waits for next_harvest by choice */
  guint64 *written;         /* under lock: pages the harvests of this window saw written
                               (damon.c, "Quiet") */
  guint64 *written_before;  /* under lock: the same for the window before */
  guint written_harvests;   /* under lock: harvests into written so far */
  guint quiet_votes;        /* under lock: fresh snapshots in a row that added no read page
                               to the VM's writes */
  gboolean quiet_wanted;    /* under lock: the harvests found the reads add nothing */
  gboolean quiet_applied;   /* thread only: the kdamond samples at the quiet intervals */
  HmmvWatch watch_wanted;   /* under lock: what the core asked for last (set_watch) */
  HmmvWatch watch_applied;  /* thread only: what the kdamond's intervals are set for */
  gboolean watch_refused;   /* thread only: the kernel refused a change (not EBUSY): the
                               kdamond stays as it runs, the watch is not tried again */
  guint fine_sample_us;     /* the sizes hmmv_damon_choose_sizes() chose, for FINE */
  guint fine_aggr_us;
  guint fine_min_nr_regions;
  guint fine_max_nr_regions;
  guint64 listed_regions;   /* under lock: regions the kept snapshots listed, in all */
  GError *thread_error;     /* under lock: the thread ended */
  GError *busy_error;       /* under lock: why the setup is being tried again */
  HmmvDamonStats stats;     /* under lock */
} HmmvDamonTracker;

/* The thread's writes under kdamonds/INDEX/: they wait out DAMON's sysfs lock (60 s a write
 * while setting up, 5 s after) unless stop() cancelled the tracker. */
gboolean hmmv_damon_write_attr(HmmvDamonTracker *damon, const char *rest, const char *value,
                               GError **error);
/* paddr: guest pages -> frames (damon->pfns), sorted by frame; pages not present left out. */
gboolean hmmv_damon_read_pfns(HmmvDamonTracker *damon, GError **error);
/* paddr: VM frames outside the monitored ranges. */
guint64 hmmv_damon_frames_outside(HmmvDamonTracker *damon);
/* The monitored space, written to the kdamond's target regions. */
gboolean hmmv_damon_write_regions(HmmvDamonTracker *damon, GError **error);
/* The kdamond's sizes into damon->stats, from the options and the VM's size. */
void hmmv_damon_choose_sizes(HmmvDamonTracker *damon);
/* While the core asks for HMMV_WATCH_COARSE the kdamond samples and aggregates this many
 * times less often (damon.c, "Watch"). */
#define HMMV_DAMON_COARSE_FACTOR 4u
/* While the VM's reads add nothing to its writes (damon.c, "Quiet") this many times less
 * often, whatever the watch. */
#define HMMV_DAMON_QUIET_FACTOR 8u
/* ... and DAMON keeps this many times fewer regions: both the kdamond's sampling (a page-table
 * walk a region a sample) and a snapshot (a sysfs directory a region, three files read from
 * each) cost per region. */
#define HMMV_DAMON_QUIET_REGIONS_SHARE 8u
/* The nr_regions limits a quiet kdamond runs with (damon.c, "Quiet"), from its own. */
void hmmv_damon_quiet_nr_regions(guint min_nr_regions, guint max_nr_regions, guint *quiet_min,
                                 guint *quiet_max);
/* One snapshot (the thread): asks the kdamond for the regions of its last aggregation, marks
 * in bitmap (damon->nr_words) the pages of those that count as read; *nr_regions: the regions
 * DAMON listed, *nr_marked: the pages marked. */
gboolean hmmv_damon_snapshot(HmmvDamonTracker *damon, guint64 *bitmap, guint64 *nr_regions,
                             guint64 *nr_marked, GError **error);
/* Takes a kdamond, configures it and turns it on (the thread, before its first snapshot).
 * FALSE with damon->acquired set: a kdamond was taken, and the caller gives it back. */
gboolean hmmv_damon_setup(HmmvDamonTracker *damon, GError **error);

G_END_DECLS
