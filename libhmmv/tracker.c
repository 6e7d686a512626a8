/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The tracker vtable: registration and the wrappers the core calls. Optional hooks are called
 * only when a backend sets them (as mm/damon's core does with its operations).
 */
#include <hmmv/error.h>
#include <hmmv/tracker.h>

HmmvTracker *
hmmv_tracker_new(const struct hmmv_tracker_ops *ops, gpointer priv, GError **error)
{
  HmmvTracker *tracker;

  if (ops == NULL || ops->name == NULL || ops->harvest == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "tracker %s: an ops table needs a name and a harvest hook",
                ops != NULL && ops->name != NULL ? ops->name : "(unnamed)");
    /* Ownership of priv was handed over: release it even though registration failed. */
    if (ops != NULL && ops->destroy != NULL) {
      HmmvTracker doomed = { .ops = ops, .priv = priv };

      ops->destroy(&doomed);
    }
    return NULL;
  }
  tracker = g_new0(HmmvTracker, 1);
  tracker->ops = ops;
  tracker->priv = priv;
  return tracker;
}

/* Frees priv through ops->destroy; does not call stop (the owner stops a started tracker). */
void
hmmv_tracker_free(HmmvTracker *tracker)
{
  if (tracker == NULL)
    return;
  if (tracker->ops->destroy != NULL)
    tracker->ops->destroy(tracker);
  g_free(tracker);
}

const char *
hmmv_tracker_get_name(const HmmvTracker *tracker)
{
  return tracker->ops->name;
}

gboolean
hmmv_tracker_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  if (tracker->ops->start == NULL)
    return TRUE;
  return tracker->ops->start(tracker, vm, error);
}

/*
 * The wrapper leaves acc exactly as the backend filled it: it does not clear the bitmaps
 * first (the caller does, or merges several harvests on purpose) and it does not touch
 * acc->intervals, which the backend sets (0 when nothing new was published). Backend errors
 * pass through unprefixed: the caller adds "tracker NAME: " with the VM's context.
 */
gboolean
hmmv_tracker_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  if (acc->nr_pages != hmmv_vm_get_nr_pages(vm)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "tracker %s: access bitmaps of %" G_GUINT64_FORMAT " pages for a VM of %"
                G_GUINT64_FORMAT, tracker->ops->name, acc->nr_pages, hmmv_vm_get_nr_pages(vm));
    return FALSE;
  }
  return tracker->ops->harvest(tracker, vm, acc, error);
}

void
hmmv_tracker_stop(HmmvTracker *tracker)
{
  if (tracker->ops->stop != NULL)
    tracker->ops->stop(tracker);
}

void
hmmv_tracker_set_watch(HmmvTracker *tracker, HmmvWatch watch)
{
  if (tracker->ops->set_watch != NULL)
    tracker->ops->set_watch(tracker, watch);
}

gboolean
hmmv_tracker_is_paused(HmmvTracker *tracker)
{
  return tracker->ops->is_paused != NULL && tracker->ops->is_paused(tracker);
}

/* One tracked interval in HMMV_PAUSE_CYCLE while COARSE: paused at the end of the harvest of
 * a tracked interval, for HMMV_PAUSE_CYCLE - 1 harvests, then resumed at the end of the last
 * of them, so that the next harvest covers a whole tracked interval. */
gboolean
hmmv_pause_cycle_after_harvest(HmmvPauseCycle *cycle)
{
  if (cycle->watch != HMMV_WATCH_COARSE) {
    cycle->paused = FALSE;
  } else if (!cycle->paused) {
    cycle->paused = TRUE;
    cycle->paused_left = HMMV_PAUSE_CYCLE - 1;
    cycle->pauses++;
  } else if (--cycle->paused_left == 0) {
    cycle->paused = FALSE;
  }
  return cycle->paused;
}

gboolean
hmmv_pause_cycle_set_watch(HmmvPauseCycle *cycle, HmmvWatch watch)
{
  gboolean resume = watch == HMMV_WATCH_FINE && cycle->paused;

  cycle->watch = watch;
  if (resume)
    cycle->paused = FALSE;
  return resume;
}
