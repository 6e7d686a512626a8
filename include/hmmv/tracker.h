/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: trackers, where access information comes from.
 *
 * A backend fills a const struct hmmv_tracker_ops with designated initializers and hands it to
 * hmmv_tracker_new(), which rejects a table without the required hooks. The core only calls
 * the hooks through the hmmv_tracker_* wrappers below.
 *
 * Backends: fake (tests: the test sets the pages), replay (a trace file, see trace.h),
 * qemu-dirty (the patched QEMU's shared-memory write bitmaps).
 */
#pragma once

#include <glib.h>
#include <hmmv/access.h>
#include <hmmv/error.h>
#include <hmmv/trace.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct _HmmvTracker HmmvTracker;

/* How closely the core needs a VM's accesses watched (hmmv_tracker_set_watch). FINE (the
 * default): what the tracker sees may change a decision now. COARSE: the VM is settled
 * (every hot page that pays is on DRAM, its budget has room to spare, nothing waits:
 * libhmmv/loop-watch.c), so what a tracker sees can only add pages to promote into that
 * room, and a slower, cheaper look finds them a few intervals later. A tracker whose cost
 * does not depend on it ignores it (the write trackers: their cost is the guest's). */
typedef enum {
  HMMV_WATCH_FINE,
  HMMV_WATCH_COARSE,
} HmmvWatch;

/* A write source that can pause (qemu-dirty: hmmv-pause, so KVM may map the guest with huge
 * pages again) follows the watch with a duty cycle: FINE tracks every interval; COARSE tracks
 * one interval in HMMV_PAUSE_CYCLE and is paused for the others, so the slower look that
 * COARSE promises still happens. A paused source publishes nothing: its harvests report
 * acc->intervals = 0, so nothing cools while it is paused. FINE while paused resumes at once.
 * The source keeps one HmmvPauseCycle per VM and asks it what to do. */
#define HMMV_PAUSE_CYCLE 8u
typedef struct {
  HmmvWatch watch;          /* the last watch the core gave */
  gboolean paused;          /* the source is (to be) paused for the next interval */
  guint paused_left;        /* paused harvests left before the next tracked interval */
  guint64 pauses;           /* times it paused */
} HmmvPauseCycle;
/* After a harvest: TRUE when the source must be paused for the next interval. */
gboolean hmmv_pause_cycle_after_harvest(HmmvPauseCycle *cycle);
/* When the core sets the watch: TRUE when the source must resume now (FINE while paused). */
gboolean hmmv_pause_cycle_set_watch(HmmvPauseCycle *cycle, HmmvWatch watch);

struct hmmv_tracker_ops {
  const char *name;
  /* optional: begin tracking this VM */
  gboolean (*start)(HmmvTracker *tracker, HmmvVm *vm, GError **error);
  /* required: OR the accesses seen since the last harvest into acc (sized for vm). Return
   * FALSE with HMMV_ERROR_GONE when the source died, HMMV_ERROR_LAYOUT_CHANGED when the VM's
   * RAM layout changed, HMMV_ERROR_BUSY when the source has not answered for this interval
   * yet (taken as 0 intervals, what it kept comes with the next harvest); TRUE with
   * acc->intervals = 0 when nothing new was published yet. */
  gboolean (*harvest)(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error);
  /* optional: stop tracking (must be safe when the source is gone) */
  void (*stop)(HmmvTracker *tracker);
  /* optional: how closely to watch from now on (HmmvWatch); called by the core after each
   * interval, on the interval's thread; must not block on the kernel */
  void (*set_watch)(HmmvTracker *tracker, HmmvWatch watch);
  /* optional: TRUE while the write source is paused (HmmvPauseCycle) */
  gboolean (*is_paused)(HmmvTracker *tracker);
  /* optional: free priv */
  void (*destroy)(HmmvTracker *tracker);
};

struct _HmmvTracker {
  const struct hmmv_tracker_ops *ops;
  gpointer priv;
};

/* Takes ownership of priv (freed by ops->destroy). */
HmmvTracker *hmmv_tracker_new(const struct hmmv_tracker_ops *ops, gpointer priv, GError **error);
void hmmv_tracker_free(HmmvTracker *tracker);
const char *hmmv_tracker_get_name(const HmmvTracker *tracker);
gboolean hmmv_tracker_start(HmmvTracker *tracker, HmmvVm *vm, GError **error);
gboolean hmmv_tracker_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc,
                              GError **error);
void hmmv_tracker_stop(HmmvTracker *tracker);
/* Nothing when the backend has no set_watch. */
void hmmv_tracker_set_watch(HmmvTracker *tracker, HmmvWatch watch);
/* FALSE when the backend has no is_paused. */
gboolean hmmv_tracker_is_paused(HmmvTracker *tracker);

/* The fake tracker: the next harvest reports exactly the pages queued since the last one. */
HmmvTracker *hmmv_fake_tracker_new(void);
void hmmv_fake_tracker_queue_write(HmmvTracker *tracker, guint64 page);
void hmmv_fake_tracker_queue_read(HmmvTracker *tracker, guint64 page);
/* Make the next harvest fail with this error code (HMMV_ERROR_GONE to simulate a dead VM). */
void hmmv_fake_tracker_fail_next(HmmvTracker *tracker, HmmvError code);
/* The watch the core last asked for (HMMV_WATCH_FINE before any), and how many times it
 * changed. */
HmmvWatch hmmv_fake_tracker_get_watch(HmmvTracker *tracker, guint *changes);
/* Make the fake tracker pause as qemu-dirty does (HmmvPauseCycle): while paused, a harvest
 * drops what was queued and reports acc->intervals = 0. */
void hmmv_fake_tracker_set_pausable(HmmvTracker *tracker, gboolean pausable);
/* Times it paused so far (pausable only). */
guint64 hmmv_fake_tracker_get_pauses(HmmvTracker *tracker);

/* The replay tracker: one trace interval per harvest; at the end of the trace it starts over
 * when loop is TRUE, else reports nothing more. Fails when the trace's page count differs
 * from the VM's. */
HmmvTracker *hmmv_replay_tracker_new(const char *path, gboolean loop, GError **error);
/* The interval the last harvest replayed, with its per-page counts (for the benchmark's tier
 * model): entries are owned by the tracker and valid until its next harvest. FALSE when the
 * last harvest replayed nothing (none yet, end of trace without loop, or an error). */
gboolean hmmv_replay_tracker_last_interval(HmmvTracker *tracker, const HmmvTraceEntry **entries,
                                           gsize *nr_entries, guint64 *compute_ns);

/* The recording tracker: harvests through inner (it takes it) and appends each harvest that
 * had something published to a trace at path (truncated when first written): one interval
 * per harvest, 1 write per page seen written, 1 read per page seen read (reads: the inner
 * tracker has a read source), compute_ns the wall time since the previous one. What the
 * daemon really saw, for the co-run harness's tracking accuracy (hmmvd --record-dir). A
 * trace that cannot be written is logged once and recording stops; tracking goes on. */
HmmvTracker *hmmv_recording_tracker_new(HmmvTracker *inner, const char *path, guint interval_ms,
                                        gboolean reads);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvTracker, hmmv_tracker_free)

G_END_DECLS
