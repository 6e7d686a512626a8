/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qemu-dirty tracker's pause (qemu-dirty.c has the rest of the tracker).
 *
 * pause:    while the core says COARSE, hmmv-pause for 7 intervals in 8 (HmmvPauseCycle): a
 *           paused QEMU publishes nothing, so those harvests report 0 intervals. Pause and
 *           resume come at the end of a harvest (so the next harvest covers a whole tracked
 *           interval), or in set_watch for a resume on FINE.
 * liveness: every exchange with QEMU counts the same: a pause or resume that QEMU did not
 *           answer (the transport's deadline, HMMV_ERROR_TIMED_OUT through libvirt) or could
 *           not be sent fails the harvest with that error, as a missed hmmv-sync does (the
 *           harvest's own, or the next one for set_watch's); and a daemon-paced harvest
 *           sends hmmv-sync paused or not, so a QEMU that stops answering while paused is
 *           found at the same cadence (kill(pid, 0) succeeds on a stopped QEMU).
 * stale:    a pause or resume that missed its deadline may still be done by QEMU later (the
 *           socket transport drops its late reply; libvirt's waits for it): after it, what
 *           the tracker knows of QEMU's pause may be wrong either way. A QEMU left paused that
 *           the tracker thinks running was never resumed again (FINE made the tracker resume
 *           only what it knew paused): every harvest counted 0 intervals and the VM's writes
 *           went unseen. So QEMU's own word is taken whenever it comes: hmmv-sync's "paused"
 *           at each daemon-paced harvest, and query-hmmv's at the first harvest after a missed
 *           pause or resume when QEMU publishes on its own timer; the cycle then pauses or
 *           resumes from the truth.
 * A QEMU without hmmv-pause (a series before 10.0's 0012, 7.2's 0006) is tracked all the
 * time; the log says so once per VM.
 */
#include "qemu-dirty-private.h"

#include <hmmv/error.h>

/* An exchange that failed as an exchange (QEMU missed the deadline, the transport failed,
 * QEMU is gone), not QEMU refusing the command. */
static gboolean
exchange_failed(const GError *error)
{
  return g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT) ||
         g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO) ||
         g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE);
}

/* Tell QEMU to pause or resume the export; FALSE when it cannot (QEMU without hmmv-pause:
 * said once, and the tracker stops trying; the exchange failed (a missed deadline): kept in
 * qd->missed for the harvest to fail with, as a missed hmmv-sync fails it; QEMU refused:
 * logged, tried again later). */
static gboolean
set_paused(QemuDirty *qd, gboolean paused)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(JsonNode) ret = NULL;
  guint64 sent_before = 0, sent_after = 0;
  gboolean counted;
  HmmvShmState state;

  if (qd->no_pause || !qd->active || paused == qd->qemu_paused)
    return !qd->no_pause;
  counted = hmmv_qmp_get_commands_sent(qd->qmp, &sent_before);
  ret = hmmv_qmp_execute(qd->qmp, paused ? "hmmv-pause" : "hmmv-resume", NULL, &local_error);
  if (ret == NULL) {
    if (hmmv_qemu_dirty_lacks(local_error, NULL)) {
      g_message("vm %s: this QEMU cannot pause its write export (no hmmv-pause: its hmmv "
                "series predates qemu-patches/10.0/0012, \"export chosen memory backends and "
                "pause\"): writes stay tracked while the VM "
                "is settled", qd->vm_name);
      qd->no_pause = TRUE;
    } else if (exchange_failed(local_error)) {
      g_clear_error(&qd->missed);   /* the error names the command (hmmv_qmp_execute) */
      qd->missed = g_steal_pointer(&local_error);
      /* QEMU may still do it, unless the transport refused to send it (a reply still owed:
       * qmp.h) */
      if (!counted || !hmmv_qmp_get_commands_sent(qd->qmp, &sent_after) ||
          sent_after != sent_before)
        qd->pause_unsure = TRUE;
    } else {
      g_warning("vm %s: %s: %s", qd->vm_name, paused ? "hmmv-pause" : "hmmv-resume",
                local_error->message);
    }
    qd->cycle.paused = qd->qemu_paused;
    return FALSE;
  }
  qd->qemu_paused = paused;
  qd->stats.paused = paused;
  if (paused) {
    qd->stats.pauses++;
    /* hmmv-pause published what came after this harvest's sync (a moment's writes): fold
     * that publication into the interval just harvested, so the paused harvests that follow
     * count no interval, and its bits (drained by the next harvest) are not used. */
    if (qd->shm != NULL && hmmv_shm_read_state(qd->shm, &state, NULL))
      qd->last_generation = state.generation;
  }
  return TRUE;
}

/* QEMU says whether its export is paused (reply: hmmv-sync's or query-hmmv's return, its
 * "paused" member; a QEMU without hmmv-pause has none): taken over what the tracker knew. */
static void
pause_learnt(QemuDirty *qd, JsonNode *reply)
{
  JsonObject *object = reply != NULL && JSON_NODE_HOLDS_OBJECT(reply)
                         ? json_node_get_object(reply) : NULL;
  JsonNode *member = object != NULL ? json_object_get_member(object, "paused") : NULL;
  gboolean paused;

  if (member == NULL || !JSON_NODE_HOLDS_VALUE(member) ||
      json_node_get_value_type(member) != G_TYPE_BOOLEAN)
    return;
  qd->pause_unsure = FALSE;
  paused = json_node_get_boolean(member);
  if (paused == qd->qemu_paused)
    return;
  g_message("vm %s: QEMU's write export is %s, where hmmvd knew it %s (a hmmv-%s done after "
            "its deadline): taken as QEMU says", qd->vm_name, paused ? "paused" : "running",
            qd->qemu_paused ? "paused" : "running", paused ? "pause" : "resume");
  qd->qemu_paused = paused;
  qd->stats.paused = paused;
  qd->stats.pause_resyncs++;
}

void
hmmv_qemu_dirty_pause_from_sync(QemuDirty *qd, JsonNode *sync_return)
{
  if (!qd->no_pause)
    pause_learnt(qd, sync_return);
}

gboolean
hmmv_qemu_dirty_pause_check(QemuDirty *qd, GError **error)
{
  g_autoptr(JsonNode) ret = NULL;

  if (!qd->pause_unsure || qd->no_pause)
    return TRUE;
  ret = hmmv_qmp_execute(qd->qmp, "query-hmmv", NULL, error);
  if (ret == NULL)
    return FALSE;
  pause_learnt(qd, ret);
  qd->pause_unsure = FALSE;   /* a QEMU that does not say is not asked again */
  return TRUE;
}

gboolean
hmmv_qemu_dirty_pause_after_harvest(QemuDirty *qd, GError **error)
{
  if (qd->options.pause_when_coarse && !qd->no_pause &&
      !set_paused(qd, hmmv_pause_cycle_after_harvest(&qd->cycle)) && qd->missed != NULL) {
    g_propagate_error(error, g_steal_pointer(&qd->missed));
    return FALSE;
  }
  return TRUE;
}

void
hmmv_qemu_dirty_set_watch(HmmvTracker *tracker, HmmvWatch watch)
{
  QemuDirty *qd = tracker->priv;

  if (!qd->options.pause_when_coarse || qd->no_pause)
    return;
  /* FINE while paused: resume now, so the next interval is tracked whole. */
  if (hmmv_pause_cycle_set_watch(&qd->cycle, watch))
    set_paused(qd, FALSE);
}

gboolean
hmmv_qemu_dirty_is_paused(HmmvTracker *tracker)
{
  return ((QemuDirty *)tracker->priv)->qemu_paused;
}
