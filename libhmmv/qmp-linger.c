/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP socket transport's linger: QEMU drops the commands it queued but did not run yet
 * when its monitor connection closes, so a transport freed right after posting hmmv-stop (a
 * VM removed, hmmvd stopping) keeps its connection open until QEMU answered it. When QEMU owes
 * nothing else it answers at once: the caller waits at most one exchange deadline. A stopped
 * QEMU (it owes an exchange's reply) may run again much later: its connection waits on a thread
 * of its own, so the caller never waits for it, and such threads are capped process-wide (each
 * holds a thread, an fd and a buffer; a QEMU that never answers must not pile them up).
 */
#include "qmp-socket-private.h"

#include <hmmv/qmp.h>

/* How long a connection whose QEMU owed a reply (stopped) stays open for it to run the post. */
#define LINGER_OWED_US (60 * G_USEC_PER_SEC)
/* At most this many such connections linger at once, process-wide: past it, a transport is
 * closed at once. */
#define LINGER_MAX 4

/* Linger threads alive (atomic): hmmv_qmp_get_lingering. */
static gint lingering;
/* No linger waits past this (monotonic; 0: no bound): hmmv_qmp_set_linger_deadline. */
static gint64 linger_end_us;
G_LOCK_DEFINE_STATIC(linger_end);

/* wait_us from now, or the process-wide bound if that comes first. */
static gint64
linger_deadline(gint64 wait_us)
{
  gint64 deadline_us = g_get_monotonic_time() + wait_us;

  G_LOCK(linger_end);
  if (linger_end_us != 0)
    deadline_us = MIN(deadline_us, linger_end_us);
  G_UNLOCK(linger_end);
  return deadline_us;
}

/* Read (and drop) what QEMU sends until it answered the last post, the deadline passed or the
 * socket failed. */
static void
await_posts(SocketQmp *sq, gint64 deadline_us)
{
  g_socket_set_timeout(sq->socket, 0);   /* it would cap the wait (whole seconds) */
  sq->deadline_us = deadline_us;
  while (sq->answered_id < sq->posted_id && hmmv_qmp_socket_drop_line(sq))
    continue;
}

static gpointer
linger_thread(gpointer data)
{
  SocketQmp *sq = data;

  await_posts(sq, linger_deadline(LINGER_OWED_US));
  hmmv_qmp_socket_close(sq);
  g_atomic_int_dec_and_test(&lingering);
  return NULL;
}

/* Only a post not answered yet on a usable stream lingers. A broken stream (closed, or out of
 * step) is closed at once: its owner connects again, and the new connection's hmmv-start takes
 * the export over; QEMU's monitor serves one client at a time, so a lingering old connection
 * would hold the new one's greeting back. */
void
hmmv_qmp_linger_close(SocketQmp *sq)
{
  GThread *thread;

  if (g_atomic_pointer_get(&sq->broken) == NULL && sq->socket != NULL &&
      sq->answered_id < sq->posted_id) {
    if (sq->answered_id >= sq->owed_id) {
      await_posts(sq, linger_deadline((gint64)sq->timeout_ms * 1000));
    } else if (g_atomic_int_add(&lingering, 1) >= LINGER_MAX) {
      g_atomic_int_dec_and_test(&lingering);
      g_debug("QMP %s: closed at once, %d connections already wait for QEMU to answer",
              sq->path, LINGER_MAX);
    } else {
      thread = g_thread_try_new("hmmv-qmp-linger", linger_thread, sq, NULL);
      if (thread != NULL) {
        g_thread_unref(thread);
        return;
      }
      g_atomic_int_dec_and_test(&lingering);
    }
  }
  hmmv_qmp_socket_close(sq);
}

guint
hmmv_qmp_get_lingering(void)
{
  return (guint)g_atomic_int_get(&lingering);
}

void
hmmv_qmp_set_linger_deadline(gint64 deadline_us)
{
  G_LOCK(linger_end);
  linger_end_us = deadline_us;
  G_UNLOCK(linger_end);
}
