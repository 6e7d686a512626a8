/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fake tracker, for tests: a harvest reports exactly the pages queued since the previous
 * harvest, then forgets them.
 */
#include <hmmv/error.h>
#include <hmmv/tracker.h>

typedef struct {
  GArray *writes;           /* guint64 page indices */
  GArray *reads;
  gboolean fail_pending;
  HmmvError fail_code;
  HmmvWatch watch;
  guint watch_changes;
  gboolean pausable;
  HmmvPauseCycle cycle;
} FakeTracker;

static gboolean
mark_queue(GArray *queue, HmmvAccess *acc, gboolean is_write, GError **error)
{
  for (guint i = 0; i < queue->len; i++) {
    guint64 page = g_array_index(queue, guint64, i);

    if (page >= acc->nr_pages) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "queued page %" G_GUINT64_FORMAT " is past the VM's %" G_GUINT64_FORMAT
                  " pages", page, acc->nr_pages);
      return FALSE;
    }
    if (is_write)
      hmmv_access_mark_write(acc, page);
    else
      hmmv_access_mark_read(acc, page);
  }
  return TRUE;
}

static gboolean
fake_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  FakeTracker *fake = tracker->priv;
  gboolean ok;

  /* A failed harvest keeps the queue: the pages show up once the source "recovers". */
  if (fake->fail_pending) {
    fake->fail_pending = FALSE;
    g_set_error(error, HMMV_ERROR, fake->fail_code, "fake failure (code %d)", fake->fail_code);
    return FALSE;
  }
  /* Paused: nothing was tracked, nothing is published (as QEMU's hmmv-sync while paused). */
  if (fake->pausable && fake->cycle.paused) {
    g_array_set_size(fake->writes, 0);
    g_array_set_size(fake->reads, 0);
    acc->intervals = 0;
    hmmv_pause_cycle_after_harvest(&fake->cycle);
    return TRUE;
  }
  ok = mark_queue(fake->writes, acc, TRUE, error) && mark_queue(fake->reads, acc, FALSE, error);
  g_array_set_size(fake->writes, 0);
  g_array_set_size(fake->reads, 0);
  if (ok)
    acc->intervals = 1;
  if (ok && fake->pausable)
    hmmv_pause_cycle_after_harvest(&fake->cycle);
  return ok;
}

static void
fake_set_watch(HmmvTracker *tracker, HmmvWatch watch)
{
  FakeTracker *fake = tracker->priv;

  fake->watch_changes += fake->watch != watch;
  fake->watch = watch;
  if (fake->pausable)
    hmmv_pause_cycle_set_watch(&fake->cycle, watch);
}

static gboolean
fake_is_paused(HmmvTracker *tracker)
{
  FakeTracker *fake = tracker->priv;

  return fake->pausable && fake->cycle.paused;
}

static void
fake_destroy(HmmvTracker *tracker)
{
  FakeTracker *fake = tracker->priv;

  g_array_unref(fake->writes);
  g_array_unref(fake->reads);
  g_free(fake);
}

static const struct hmmv_tracker_ops fake_ops = {
  .name = "fake",
  .harvest = fake_harvest,
  .set_watch = fake_set_watch,
  .is_paused = fake_is_paused,
  .destroy = fake_destroy,
};

HmmvTracker *
hmmv_fake_tracker_new(void)
{
  FakeTracker *fake = g_new0(FakeTracker, 1);

  fake->writes = g_array_new(FALSE, FALSE, sizeof(guint64));
  fake->reads = g_array_new(FALSE, FALSE, sizeof(guint64));
  /* Cannot fail: the table is complete. */
  return hmmv_tracker_new(&fake_ops, fake, NULL);
}

void
hmmv_fake_tracker_queue_write(HmmvTracker *tracker, guint64 page)
{
  FakeTracker *fake;

  g_return_if_fail(tracker != NULL && tracker->ops == &fake_ops);
  fake = tracker->priv;
  g_array_append_val(fake->writes, page);
}

void
hmmv_fake_tracker_queue_read(HmmvTracker *tracker, guint64 page)
{
  FakeTracker *fake;

  g_return_if_fail(tracker != NULL && tracker->ops == &fake_ops);
  fake = tracker->priv;
  g_array_append_val(fake->reads, page);
}

void
hmmv_fake_tracker_fail_next(HmmvTracker *tracker, HmmvError code)
{
  FakeTracker *fake;

  g_return_if_fail(tracker != NULL && tracker->ops == &fake_ops);
  fake = tracker->priv;
  fake->fail_pending = TRUE;
  fake->fail_code = code;
}

HmmvWatch
hmmv_fake_tracker_get_watch(HmmvTracker *tracker, guint *changes)
{
  FakeTracker *fake;

  g_return_val_if_fail(tracker != NULL && tracker->ops == &fake_ops, HMMV_WATCH_FINE);
  fake = tracker->priv;
  if (changes != NULL)
    *changes = fake->watch_changes;
  return fake->watch;
}

void
hmmv_fake_tracker_set_pausable(HmmvTracker *tracker, gboolean pausable)
{
  FakeTracker *fake;

  g_return_if_fail(tracker != NULL && tracker->ops == &fake_ops);
  fake = tracker->priv;
  fake->pausable = pausable;
  if (!pausable)
    fake->cycle.paused = FALSE;
}

guint64
hmmv_fake_tracker_get_pauses(HmmvTracker *tracker)
{
  g_return_val_if_fail(tracker != NULL && tracker->ops == &fake_ops, 0);
  return ((FakeTracker *)tracker->priv)->cycle.pauses;
}
