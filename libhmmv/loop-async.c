/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An interval on a worker thread. The caller's thread (hmmvd's main loop: libvirt events, the
 * control socket, metrics) goes on serving while the worker harvests, decides and moves;
 * moves take seconds at the cap (~3.8 s an interval at 200 MB/s a VM) and a harvest waits
 * on QEMU. The worker runs the same single-threaded interval as hmmv_core_run_interval, so
 * decisions replay identically; what other threads may touch meanwhile is in core.h.
 */
#include "core-private.h"

#include <hmmv/error.h>

typedef struct {
  HmmvCore *core;
  HmmvIntervalReport *report;
} RunData;

static void
run_in_thread(GTask *task, gpointer source_object, gpointer task_data,
              GCancellable *cancellable)
{
  RunData *run = task_data;
  GError *error = NULL;
  gboolean ok;

  run->core->cancellable = cancellable;
  ok = hmmv_core_run_locked(run->core, run->report, &error);
  run->core->cancellable = NULL;
  /* Cleared here, before the callback is dispatched: from now on nothing of the core is
   * touched by this thread. */
  g_atomic_int_set(&run->core->running, 0);
  if (ok)
    g_task_return_boolean(task, TRUE);
  else
    g_task_return_error(task, error);
}

void
hmmv_core_run_interval_async(HmmvCore *core, HmmvIntervalReport *report,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data)
{
  g_autoptr(GTask) task = g_task_new(NULL, cancellable, callback, user_data);
  RunData *run = g_new0(RunData, 1);

  g_task_set_source_tag(task, hmmv_core_run_interval_async);
  g_task_set_name(task, "hmmv interval");
  /* Errors of the core itself only; a cancelled run still reports what it did. */
  g_task_set_check_cancellable(task, FALSE);
  run->core = core;
  run->report = report;
  g_task_set_task_data(task, run, g_free);
  if (!g_atomic_int_compare_and_exchange(&core->running, 0, 1)) {
    g_task_return_new_error(task, HMMV_ERROR, HMMV_ERROR_BUSY, "an interval is already running");
    return;
  }
  if (report->vms == NULL)
    hmmv_interval_report_init(report);
  g_task_run_in_thread(task, run_in_thread);
}

gboolean
hmmv_core_run_interval_finish(HmmvCore *core, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, NULL), FALSE);
  return g_task_propagate_boolean(G_TASK(result), error);
}
