/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP Unix socket transport's two halves: the stream (qmp-socket.c) and how a transport
 * freed with a post unanswered waits for QEMU to answer it before it closes (qmp-linger.c). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* One connection to QEMU's monitor. */
typedef struct _SocketQmp SocketQmp;
struct _SocketQmp {
  GMutex lock;              /* one exchange, post or catch-up at a time */
  GSocket *socket;
  GString *buffer;          /* bytes read but not yet consumed */
  gsize scanned;            /* bytes of buffer known to hold no line end */
  char *path;
  guint timeout_ms;         /* per exchange */
  gint64 deadline_us;       /* of the exchange under way (monotonic) */
  GCancellable *cancellable;
  guint64 events_skipped;
  guint64 next_id;          /* the id of the last command sent */
  guint64 answered_id;      /* QEMU answered every command up to this id */
  guint64 owed_id;          /* the last command an exchange sent and did not read the reply of */
  guint64 posted_id;        /* the last command posted that went out */
  guint64 late_replies;     /* replies read after their deadline (or posted), dropped */
  guint sent;               /* commands that went out (atomic: hmmv_qmp_get_commands_sent) */
  int broken_code;          /* HMMV_ERROR_PROTOCOL or _GONE, set before broken */
  char *broken;             /* why no exchange can succeed any more (atomic, set once) */
};

/* qmp-socket.c */
/* With no reply wanted, wait (until sq->deadline_us) for the next line QEMU sends and drop it
 * (an event, or a late reply: answered_id moves on; what does not parse is skipped). FALSE
 * when the socket failed, the deadline passed, or a line grew past what a late reply can be. */
gboolean hmmv_qmp_socket_drop_line(SocketQmp *sq);
/* Close the socket and free everything. */
void hmmv_qmp_socket_close(SocketQmp *sq);

/* qmp-linger.c */
/* Free sq, its connection closed once QEMU answered its last post (the linger). */
void hmmv_qmp_linger_close(SocketQmp *sq);

G_END_DECLS
