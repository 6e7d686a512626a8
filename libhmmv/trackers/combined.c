/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The combined tracker: one VM, writes from one source (qemu-dirty: exact, per page) and
 * reads from another (DAMON). Both harvest into the same HmmvAccess: the write source sets
 * write bits, the read source read bits. The write source paces the intervals (its count
 * is the harvest's), so a read source that is late or early shifts nothing; but while the
 * write source is paused (COARSE, 7 intervals in 8: tracker.h, HmmvPauseCycle) it publishes
 * nothing and counts 0, and a harvest whose read source brought something new counts one
 * interval of reads. Before (issue 8), the reads of paused intervals were dropped with the
 * interval: the temperature moved 1 interval in 8, and a read set that appeared on the
 * coarse watch climbed that slowly (the testbed, reads-hmmvd.py coarse: 786 of 1,024 late
 * pages on DRAM after 60 intervals, the watch coarse for 49 of them: its pages' keys stayed
 * between the payback gate and the room gate, which the watch counts as settled).
 *
 * A read source that fails is logged once and dropped: the VM goes on with writes only,
 * which is what it had before reads were tracked. A write source that fails fails the
 * harvest, as it did alone (the core knows GONE and LAYOUT_CHANGED).
 */
#include <hmmv/error.h>
#include <hmmv/reads.h>

typedef struct {
  HmmvTracker *writes;
  HmmvTracker *reads;
  char *name;
} Combined;

static gboolean
combined_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  Combined *c = tracker->priv;
  g_autoptr(GError) local_error = NULL;

  if (!hmmv_tracker_start(c->writes, vm, error))
    return FALSE;
  if (c->reads != NULL && !hmmv_tracker_start(c->reads, vm, &local_error)) {
    g_warning("vm %s: read tracking (%s) could not start, tracking writes only: %s",
              hmmv_vm_get_name(vm), hmmv_tracker_get_name(c->reads), local_error->message);
    g_clear_pointer(&c->reads, hmmv_tracker_free);
  }
  return TRUE;
}

static gboolean
combined_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  Combined *c = tracker->priv;
  g_autoptr(GError) local_error = NULL;
  /* whether the interval harvested was a paused one (the cycle moves on in the harvest) */
  gboolean paused = hmmv_tracker_is_paused(c->writes);
  guint64 intervals;

  if (!hmmv_tracker_harvest(c->writes, vm, acc, error))
    return FALSE;
  intervals = acc->intervals;
  acc->intervals = 0;
  if (c->reads != NULL && !hmmv_tracker_harvest(c->reads, vm, acc, &local_error)) {
    g_warning("vm %s: read tracking (%s) failed, tracking writes only: %s",
              hmmv_vm_get_name(vm), hmmv_tracker_get_name(c->reads), local_error->message);
    hmmv_tracker_stop(c->reads);
    g_clear_pointer(&c->reads, hmmv_tracker_free);
    acc->intervals = 0;
  }
  if (paused && intervals == 0 && acc->intervals > 0 && acc->has_reads)
    intervals = 1;
  acc->intervals = intervals;
  return TRUE;
}

static void
combined_stop(HmmvTracker *tracker)
{
  Combined *c = tracker->priv;

  if (c->reads != NULL)
    hmmv_tracker_stop(c->reads);
  hmmv_tracker_stop(c->writes);
}

/* Both sources hear it; the write source (qemu-dirty) has nothing to slow down. */
static void
combined_set_watch(HmmvTracker *tracker, HmmvWatch watch)
{
  Combined *c = tracker->priv;

  hmmv_tracker_set_watch(c->writes, watch);
  if (c->reads != NULL)
    hmmv_tracker_set_watch(c->reads, watch);
}

/* The write source's pause (reads are not paused; while writes are, the interval count is
 * theirs, 0: nothing cools, and what the reads saw meanwhile is not used). */
static gboolean
combined_is_paused(HmmvTracker *tracker)
{
  return hmmv_tracker_is_paused(((Combined *)tracker->priv)->writes);
}

static void
combined_destroy(HmmvTracker *tracker)
{
  Combined *c = tracker->priv;

  hmmv_tracker_free(c->reads);
  hmmv_tracker_free(c->writes);
  g_free(c->name);
  g_free(c);
}

static const struct hmmv_tracker_ops combined_ops = {
  .name = "combined",
  .start = combined_start,
  .harvest = combined_harvest,
  .stop = combined_stop,
  .set_watch = combined_set_watch,
  .is_paused = combined_is_paused,
  .destroy = combined_destroy,
};

HmmvTracker *
hmmv_combined_tracker_new(HmmvTracker *writes, HmmvTracker *reads)
{
  Combined *c = g_new0(Combined, 1);

  g_return_val_if_fail(writes != NULL, NULL);
  c->writes = writes;
  c->reads = reads;
  /* Cannot fail: the table is complete. */
  return hmmv_tracker_new(&combined_ops, c, NULL);
}

HmmvTracker *
hmmv_combined_tracker_get_writes(HmmvTracker *tracker)
{
  g_return_val_if_fail(tracker != NULL && tracker->ops == &combined_ops, NULL);
  return ((Combined *)tracker->priv)->writes;
}

HmmvTracker *
hmmv_combined_tracker_get_reads(HmmvTracker *tracker)
{
  g_return_val_if_fail(tracker != NULL && tracker->ops == &combined_ops, NULL);
  return ((Combined *)tracker->priv)->reads;
}
