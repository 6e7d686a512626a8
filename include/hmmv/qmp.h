/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: talking QMP to a QEMU.
 *
 * A transport executes one command and hands back the reply's "return" member. Two exist:
 * a Unix socket of QEMU's own (hmmv_qmp_connect_unix: greeting, qmp_capabilities, events
 * skipped, a timeout on every read), and, in the daemon, libvirt's
 * virDomainQemuMonitorCommand (libvirt owns the monitor of the domains it runs). The library
 * never links libvirt: the daemon fills the vtable.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _HmmvQmp HmmvQmp;

struct hmmv_qmp_ops {
  const char *name;
  /* required: the full command text ({"execute": ...}) -> the full reply text */
  char *(*transact)(HmmvQmp *qmp, const char *command_json, GError **error);
  /* optional: as transact, with fd passed to QEMU alongside the command (a command that takes
   * one: getfd, add-fd); without it, hmmv_qmp_transact_fd fails with NOT_SUPPORTED */
  char *(*transact_fd)(HmmvQmp *qmp, const char *command_json, int fd, GError **error);
  /* optional: send the command, in order with the others, without waiting for its reply
   * (hmmv_qmp_post); without it, post runs transact and drops the reply */
  void (*post)(HmmvQmp *qmp, const char *command_json);
  /* optional: how many commands went out so far (hmmv_qmp_get_commands_sent); FALSE when
   * the transport does not count them (one that wraps another may not) */
  gboolean (*commands_sent)(HmmvQmp *qmp, guint64 *sent);
  /* optional */
  void (*destroy)(HmmvQmp *qmp);
};

struct _HmmvQmp {
  const struct hmmv_qmp_ops *ops;
  gpointer priv;
};

/* Takes ownership of priv. */
HmmvQmp *hmmv_qmp_new(const struct hmmv_qmp_ops *ops, gpointer priv, GError **error);
void hmmv_qmp_free(HmmvQmp *qmp);
const char *hmmv_qmp_get_name(const HmmvQmp *qmp);

/* Connect to QEMU's QMP Unix socket and negotiate capabilities. timeout_ms bounds each
 * exchange as a whole (a QEMU that trickles events cannot hold the caller longer); when
 * cancellable is cancelled (from any thread) every wait ends at once. An exchange past its
 * deadline fails with HMMV_ERROR_TIMED_OUT and leaves its reply owed: each command carries an
 * "id", so a late reply is recognised and dropped, and until every owed reply came, later
 * exchanges fail at once with HMMV_ERROR_TIMED_OUT without sending anything (a post still
 * goes out). A command QEMU read none of by the deadline (its socket buffer full) was not
 * sent: TIMED_OUT, nothing owed. A message that is not QMP, a command QEMU read only part of by
 * the deadline (HMMV_ERROR_PROTOCOL: the next one would run into it), or QEMU closing the
 * connection, leaves the transport broken (hmmv_qmp_is_broken): later exchanges fail at once
 * with the same error code. */
HmmvQmp *hmmv_qmp_connect_unix(const char *path, guint timeout_ms, GError **error);
/* What a connect learned of the peer, also when it failed (hmmv_qmp_connect_unix_full). */
typedef struct {
  int pid;            /* SO_PEERCRED right after connect(), which a listening socket gives
                         before it accepts (a QEMU paused or still in its init): the listener's
                         pid; -1 when connect() failed or the kernel does not say */
  gboolean greeted;   /* a greeting line was read, QMP or not: the peer serves the socket */
} HmmvQmpPeer;
/* peer may be NULL. */
HmmvQmp *hmmv_qmp_connect_unix_full(const char *path, guint timeout_ms,
                                    GCancellable *cancellable, HmmvQmpPeer *peer,
                                    GError **error);
/* Unix socket transport: replace the cancellable (NULL: none). Other transports: nothing. */
void hmmv_qmp_set_cancellable(HmmvQmp *qmp, GCancellable *cancellable);
/* Unix socket transport: the deadline of each later exchange (as timeout_ms of the connect).
 * Other transports: nothing. */
void hmmv_qmp_set_timeout_ms(HmmvQmp *qmp, guint timeout_ms);
/* At most this many lines (events, late replies) are read by one hmmv_qmp_catch_up, or by
 * the catch-up an exchange does before it sends; also at most 1 MiB and about 5 ms. */
#define HMMV_QMP_CATCH_UP_LINES 1000
/* Unix socket transport: read what QEMU sent, without waiting, dropping the late replies and
 * events in it, within the budget above. TRUE when no reply is owed (QEMU answered every
 * command that missed its deadline: the transport sends again); FALSE while one still is, when
 * the budget ran out first (call again later), or while an exchange is under way on another
 * thread; FALSE with HMMV_ERROR_GONE when QEMU closed the connection, HMMV_ERROR_PROTOCOL
 * when what QEMU sent is not QMP (then the transport is broken). Other transports: TRUE. */
gboolean hmmv_qmp_catch_up(HmmvQmp *qmp, GError **error);
/* Unix socket transport: TRUE once no exchange can succeed any more (QEMU closed the
 * connection, or sent a message that is not QMP and left the stream out of step): a new
 * connection is needed. *reason (may be NULL) then says why, valid while qmp lives. Never
 * waits (any thread). Other transports: FALSE. */
gboolean hmmv_qmp_is_broken(HmmvQmp *qmp, const char **reason);
/* Unix socket transport: replies dropped because they came after their deadline, named no
 * command under way, or answered a post; 0 for other transports. Takes the transport's lock:
 * waits for an exchange under way on another thread (at most its deadline). For tests. */
guint64 hmmv_qmp_get_late_replies(HmmvQmp *qmp);
/* Unix socket transports freed with a post unanswered while QEMU owed a reply, whose
 * connection is still open on a thread of its own for QEMU to answer it (process-wide, at
 * most 4; a broken transport never lingers). For tests. */
guint hmmv_qmp_get_lingering(void);
/* Unix socket transports, process-wide: from now on no transport freed with a post unanswered
 * keeps its connection open past deadline_us (g_get_monotonic_time; 0: no bound, as before),
 * however many are freed. A daemon stopping with N VMs whose QEMU does not answer at once gives
 * their hmmv-stop one shared wait instead of N exchange deadlines in turn. */
void hmmv_qmp_set_linger_deadline(gint64 deadline_us);
/* How many commands the transport sent so far (their first byte went out), in *sent; FALSE
 * when the transport does not count them (no commands_sent hook). An exchange that failed
 * with this unchanged sent nothing: QEMU cannot carry it out. */
gboolean hmmv_qmp_get_commands_sent(HmmvQmp *qmp, guint64 *sent);
/* The pid of the process at the other end of a Unix socket transport (SO_PEERCRED: QEMU's
 * pid), or -1 for other transports or when the kernel does not say. */
int hmmv_qmp_get_peer_pid(HmmvQmp *qmp);

/* Execute a command; arguments may be NULL. Returns the "return" member (an empty object
 * when QEMU returned {}), or NULL with HMMV_ERROR_PROTOCOL carrying QEMU's error class and
 * description, HMMV_ERROR_GONE when QEMU closed the connection. */
JsonNode *hmmv_qmp_execute(HmmvQmp *qmp, const char *command, JsonObject *arguments,
                           GError **error);
/* As hmmv_qmp_execute, passing fd to QEMU with the command (the transport's transact_fd:
 * SCM_RIGHTS on a socket, virDomainQemuMonitorCommandWithFiles through libvirt); the caller
 * keeps fd. HMMV_ERROR_NOT_SUPPORTED when the transport cannot pass file descriptors. */
JsonNode *hmmv_qmp_execute_with_fd(HmmvQmp *qmp, const char *command, JsonObject *arguments,
                                   int fd, GError **error);
/* The transport's transact_fd, or NOT_SUPPORTED without one (for transports that wrap
 * another). */
char *hmmv_qmp_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error);
/* getfd: QEMU keeps a duplicate of fd under fdname. */
gboolean hmmv_qmp_send_fd(HmmvQmp *qmp, int fd, const char *fdname, GError **error);
/* Execute a command whose reply nobody reads (hmmv-stop): a transport with a post hook
 * queues it behind the commands before it and returns at once. The Unix socket transport
 * sends it even while a reply is owed, never waits for room in the socket (a full socket
 * buffer drops it, with a debug line) nor for the reply (dropped by its id when it comes);
 * it waits only for an exchange under way on another thread. */
void hmmv_qmp_post(HmmvQmp *qmp, const char *command, JsonObject *arguments);

/* Helpers shared by transports and tests. */
char *hmmv_qmp_build_command(const char *command, JsonObject *arguments);
/* Parse one reply: the "return" member, or QEMU's error as HMMV_ERROR_PROTOCOL. */
JsonNode *hmmv_qmp_parse_reply(const char *text, GError **error);

/* Typed getters for reply objects: FALSE with HMMV_ERROR_PROTOCOL naming the member when it is
 * missing or of the wrong type. */
gboolean hmmv_json_get_uint(JsonObject *object, const char *member, guint64 *value,
                            GError **error);
gboolean hmmv_json_get_string(JsonObject *object, const char *member, const char **value,
                              GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvQmp, hmmv_qmp_free)

G_END_DECLS
