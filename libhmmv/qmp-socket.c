/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP over QEMU's own Unix socket (GIO): hmmv_qmp_connect_unix and what only it does.
 *
 * QEMU writes one JSON object per line. Between a command and its reply it may write events
 * ({"event": ...}); they are skipped. Each exchange (command out, events skipped, reply in)
 * has one deadline, however QEMU trickles its bytes (a QEMU sending an event a second used to
 * hold the caller forever), the caller's GCancellable ends any wait at once, and a line longer
 * than HMMV_QMP_MAX_LINE is refused: a hung or hostile QEMU costs a bounded wait and bounded
 * memory.
 *
 * Every command carries an "id" (QEMU echoes it in its reply) and QEMU answers in order, so a
 * reply names every command up to its id answered. A missed deadline (HMMV_ERROR_TIMED_OUT)
 * leaves the command's reply owed: QEMU answers it whenever it runs again. Its reply is then
 * a late one, dropped by its id; and so that a reply without an id is never taken for a later
 * command's, nothing is sent by an exchange while a reply is owed: an exchange then fails at
 * once with HMMV_ERROR_TIMED_OUT, unless what QEMU sent meanwhile (read without waiting, within
 * a budget) holds it. hmmv_qmp_catch_up() reads so on its own, for a caller that wants to know
 * when QEMU answers again. A posted command (hmmv-stop) goes out even then, without waiting
 * for anything: its reply is dropped by its id like a late one, and is owed by nobody.
 *
 * A message that is not QMP (too long, too deep), or a command cut short (QEMU read part of it
 * by the deadline: the next one would run into it), leaves the stream out of step for good, and
 * a closed connection is closed for good: the transport says so (hmmv_qmp_is_broken) and fails
 * every later exchange at once, so its owner connects again. A transport freed with a post
 * unanswered waits for QEMU to answer it before it closes: qmp-linger.c.
 */
#include "qmp-socket-private.h"

#include <hmmv/error.h>
#include <hmmv/json.h>
#include <hmmv/qmp.h>

#include <gio/gio.h>
#include <gio/gunixfdmessage.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

/* query-hmmv-ramblocks of a VM with many hot-plugged DIMMs stays well under 1 MiB. */
#define HMMV_QMP_MAX_LINE (16u << 20)
/* What one catch-up may read and spend, besides HMMV_QMP_CATCH_UP_LINES lines (qmp.h): a QEMU
 * that owes a reply and writes events as fast as they are parsed holds no caller longer. */
#define CATCH_UP_BYTES (1u << 20)
#define CATCH_UP_US 5000
/* A posted command whose first bytes went out gets this long for the rest (a few dozen bytes
 * into a socket buffer that just took some): past it the stream is cut mid-command. */
#define POST_REST_US 100000

static const struct hmmv_qmp_ops socket_qmp_ops;

void
hmmv_qmp_socket_close(SocketQmp *sq)
{
  if (sq->socket != NULL)
    g_socket_close(sq->socket, NULL);
  g_clear_object(&sq->socket);
  g_clear_object(&sq->cancellable);
  g_string_free(sq->buffer, TRUE);
  g_free(sq->path);
  g_free(sq->broken);
  g_mutex_clear(&sq->lock);
  g_free(sq);
}

/* Under the lock: a stream out of step (PROTOCOL) or closed (GONE) stays so; the first reason
 * is kept. Other errors (a missed deadline, a cancelled wait) leave it usable. */
static void
note_broken(SocketQmp *sq, const GError *error)
{
  char *reason;

  if (error == NULL || g_atomic_pointer_get(&sq->broken) != NULL ||
      (!g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL) &&
       !g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE)))
    return;
  sq->broken_code = error->code;
  reason = g_strdup(error->message);
  g_atomic_pointer_set(&sq->broken, reason);
}

static gboolean
map_io_error(SocketQmp *sq, GError *local_error, GError **error)
{
  if (g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                "QMP %s: QEMU did not answer in time (%u ms; %" G_GUINT64_FORMAT
                " events skipped)", sq->path, sq->timeout_ms, sq->events_skipped);
  else if (g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "QMP %s: cancelled", sq->path);
  else if (g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE) ||
           g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED))
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "QMP %s: QEMU closed the connection",
                sq->path);
  else
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "QMP %s: %s", sq->path,
                local_error->message);
  return FALSE;
}

/* Wait until the socket is ready for condition, at most until the exchange's deadline. */
static gboolean
socket_wait(SocketQmp *sq, GIOCondition condition, GError **error)
{
  gint64 left_us = sq->deadline_us - g_get_monotonic_time();

  if (left_us <= 0) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "timed out");
    return FALSE;
  }
  return g_socket_condition_timed_wait(sq->socket, condition, left_us, sq->cancellable, error);
}

/* GSocket timeouts are whole seconds, and they cap g_socket_condition_timed_wait's own timeout:
 * round up so 1..999 ms still bounds the wait, without wrapping near G_MAXUINT ms (+999 made
 * a 49-day deadline a 1 s one). */
static guint
timeout_seconds(guint timeout_ms)
{
  return MAX(timeout_ms / 1000 + (timeout_ms % 1000 != 0), 1);
}

static void
exchange_begin(SocketQmp *sq)
{
  sq->deadline_us = g_get_monotonic_time() + (gint64)sq->timeout_ms * 1000;
  sq->events_skipped = 0;
}

/* The next whole line in the buffer, without its line end, or NULL. Each byte is searched
 * for the line end once: rescanning the whole buffer at every read made one 16 MiB line cost
 * 2.5-4 s. */
static char *
take_line(SocketQmp *sq)
{
  char *nl = memchr(sq->buffer->str + sq->scanned, '\n', sq->buffer->len - sq->scanned);
  gsize len;
  char *line;

  if (nl == NULL) {
    sq->scanned = sq->buffer->len;
    return NULL;
  }
  len = (gsize)(nl - sq->buffer->str);
  line = g_strndup(sq->buffer->str, len);
  g_string_erase(sq->buffer, 0, (gssize)len + 1);
  sq->scanned = 0;
  g_strchomp(line);
  return line;
}

/* Bytes QEMU sent into the buffer: what is there now without waiting (wait FALSE: FALSE
 * with no error when nothing is), or at most until the exchange's deadline. */
static gboolean
socket_fill(SocketQmp *sq, gboolean wait, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  char chunk[65536];
  gssize n;

  if (sq->buffer->len > HMMV_QMP_MAX_LINE) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "QMP %s: a message longer than %u bytes", sq->path, HMMV_QMP_MAX_LINE);
    return FALSE;
  }
  if (wait && !socket_wait(sq, G_IO_IN, &local_error))
    return map_io_error(sq, local_error, error);
  n = g_socket_receive_with_blocking(sq->socket, chunk, sizeof(chunk), wait, NULL,
                                     &local_error);
  if (n < 0 && !wait && g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return FALSE;
  if (n < 0)
    return map_io_error(sq, local_error, error);
  if (n == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "QMP %s: QEMU closed the connection",
                sq->path);
    return FALSE;
  }
  g_string_append_len(sq->buffer, chunk, n);
  return TRUE;
}

/* Next line QEMU wrote, without its line end. */
static char *
socket_read_line(SocketQmp *sq, GError **error)
{
  for (;;) {
    char *line = take_line(sq);

    if (line != NULL)
      return line;
    if (!socket_fill(sq, TRUE, error))
      return NULL;
  }
}

typedef enum {
  LINE_SKIP,      /* an event, or an empty line */
  LINE_LATE,      /* the reply to a command whose deadline passed (or a posted one): dropped */
  LINE_REPLY,     /* the reply to the command under way (its id, or none) */
} LineKind;

/* What a line QEMU sent is, for the command under way with id want (0: none under way, so any
 * reply is a late one); *id: the id a reply names (0: none, or not one of ours). A line that
 * names an event or an id is parsed to be sure (a reply whose payload mentions "event" is not
 * dropped); an event is bounded like a reply: a hostile one is an error, not skipped. A reply
 * without an id (a QEMU that does not echo it, or one whose parser failed before the id) is
 * taken for the command under way when there is one. */
static gboolean
classify_line(SocketQmp *sq, const char *line, guint64 want, LineKind *kind, guint64 *id,
              GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  JsonObject *object;
  JsonNode *member;

  *kind = LINE_REPLY;
  *id = 0;
  if (line[0] == '\0') {
    *kind = LINE_SKIP;
    return TRUE;
  }
  if (strstr(line, "\"event\"") == NULL && strstr(line, "\"id\"") == NULL)
    return TRUE;
  root = hmmv_json_parse(line, strlen(line), error);
  if (root == NULL) {
    g_prefix_error(error, "QMP %s: ", sq->path);
    return FALSE;
  }
  if (!JSON_NODE_HOLDS_OBJECT(root))
    return TRUE;   /* the caller's parse says what is wrong with it */
  object = json_node_get_object(root);
  if (json_object_has_member(object, "event")) {
    *kind = LINE_SKIP;
    return TRUE;
  }
  member = json_object_get_member(object, "id");
  if (member == NULL)
    return TRUE;
  if (JSON_NODE_HOLDS_VALUE(member) && json_node_get_value_type(member) == G_TYPE_INT64 &&
      json_node_get_int(member) > 0 && (guint64)json_node_get_int(member) <= sq->next_id)
    *id = (guint64)json_node_get_int(member);
  if (want == 0 || *id != want)
    *kind = LINE_LATE;
  return TRUE;
}

/* A reply to a command other than the one under way was read and dropped: QEMU answers in
 * order, so every command up to its id is answered; one without a usable id counts for the
 * oldest command not answered. */
static void
note_late(SocketQmp *sq, guint64 id)
{
  sq->late_replies++;
  if (id != 0)
    sq->answered_id = MAX(sq->answered_id, id);
  else if (sq->answered_id < sq->next_id)
    sq->answered_id++;
}

/* The reply to the command with id want, events skipped. A reply with another id is one of
 * an earlier command (late, or posted): dropped. */
static char *
socket_read_reply(SocketQmp *sq, guint64 want, GError **error)
{
  for (;;) {
    g_autofree char *line = socket_read_line(sq, error);
    LineKind kind;
    guint64 id;

    if (line == NULL || !classify_line(sq, line, want, &kind, &id, error))
      return NULL;
    if (kind == LINE_SKIP) {
      if (line[0] != '\0')
        sq->events_skipped++;
      continue;
    }
    if (kind == LINE_LATE) {
      note_late(sq, id);
      continue;
    }
    sq->answered_id = MAX(sq->answered_id, want);
    return g_steal_pointer(&line);
  }
}

/* With no reply wanted (a catch-up, a linger) only events and late replies come, well under
 * CATCH_UP_BYTES each: a longer line (complete or not) is not parsed, not even kept whole; the
 * stream is out of step and its owner connects again. */
static void
set_too_long(SocketQmp *sq, GError **error)
{
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "QMP %s: a message longer than %u bytes "
              "while no reply was wanted", sq->path, CATCH_UP_BYTES);
}

/* Under the lock: read what QEMU sent without waiting, dropping late replies and events, at
 * most HMMV_QMP_CATCH_UP_LINES lines, CATCH_UP_BYTES read and until deadline_us. TRUE when no
 * reply is owed any more; FALSE with no error when one still is, or the budget ran out. */
static gboolean
catch_up_locked(SocketQmp *sq, gint64 deadline_us, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gsize bytes = 0, lines = 0;

  while (sq->answered_id < sq->owed_id) {
    g_autofree char *line = NULL;
    LineKind kind;
    guint64 id;

    /* not yet: the rest at the next call (each call gets somewhere, even late) */
    if (lines >= HMMV_QMP_CATCH_UP_LINES || bytes >= CATCH_UP_BYTES ||
        (lines + bytes > 0 && g_get_monotonic_time() >= deadline_us))
      return FALSE;
    line = take_line(sq);
    if (line == NULL) {
      gsize len = sq->buffer->len;

      if (len > CATCH_UP_BYTES) {
        set_too_long(sq, &local_error);
        break;
      }
      if (socket_fill(sq, FALSE, &local_error)) {
        bytes += sq->buffer->len - len;
        continue;
      }
      if (local_error == NULL)
        return FALSE;   /* nothing more yet */
      break;
    }
    lines++;
    if (strlen(line) > CATCH_UP_BYTES) {
      set_too_long(sq, &local_error);
      break;
    }
    if (!classify_line(sq, line, 0, &kind, &id, &local_error))
      break;   /* not QMP: where the replies end is unknown */
    if (kind == LINE_SKIP)
      sq->events_skipped++;
    else
      note_late(sq, id);
  }
  if (local_error == NULL)
    return TRUE;
  note_broken(sq, local_error);
  g_propagate_error(error, g_steal_pointer(&local_error));
  return FALSE;
}

/* All of data, at most until the exchange's deadline; *written: how much went out, also when
 * the rest did not. */
static gboolean
socket_write_all(SocketQmp *sq, const char *data, gsize len, gsize *written, GError **error)
{
  for (*written = 0; *written < len;) {
    g_autoptr(GError) local_error = NULL;
    gssize n = socket_wait(sq, G_IO_OUT, &local_error)
                 ? g_socket_send(sq->socket, data + *written, len - *written, NULL,
                                 &local_error)
                 : -1;

    if (n < 0)
      return map_io_error(sq, local_error, error);
    *written += (gsize)n;
  }
  return TRUE;
}

/* Under the lock: the stream is usable (not out of step, not closed). */
static gboolean
check_broken(SocketQmp *sq, GError **error)
{
  if (sq->broken == NULL)
    return TRUE;
  g_set_error(error, HMMV_ERROR, sq->broken_code, "QMP %s: unusable since: %s; nothing more "
              "is sent", sq->path, sq->broken);
  return FALSE;
}

/* Under the lock: may a command go now? Not while a reply is owed that what QEMU sent
 * meanwhile does not hold (it would be read as this command's). */
static gboolean
exchange_ready(SocketQmp *sq, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gint64 budget_us = g_get_monotonic_time() + CATCH_UP_US;

  if (!check_broken(sq, error))
    return FALSE;
  if (catch_up_locked(sq, MIN(budget_us, sq->deadline_us), &local_error))
    return TRUE;
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
              "QMP %s: QEMU has not answered %" G_GUINT64_FORMAT " earlier command(s) (one "
              "missed the %u ms deadline); nothing is sent until it does", sq->path,
              sq->next_id - sq->answered_id, sq->timeout_ms);
  return FALSE;
}

/* The command with the next id, and its line end. */
static char *
command_line(SocketQmp *sq, const char *command_json, guint64 *id, GError **error)
{
  g_autoptr(JsonNode) root = hmmv_json_parse(command_json, strlen(command_json), error);
  g_autofree char *text = NULL;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    if (root != NULL)
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "QMP %s: a command is a JSON object", sq->path);
    return NULL;
  }
  *id = ++sq->next_id;
  json_object_set_int_member(json_node_get_object(root), "id", (gint64)*id);
  text = json_to_string(root, FALSE);
  return g_strconcat(text, "\n", NULL);
}

/* Its first byte went out: QEMU may run it (once it has the rest). */
static void
command_sent(SocketQmp *sq)
{
  g_atomic_int_inc(&sq->sent);
}

/* A write failed (*error) after written of len bytes of a command went out: unless QEMU closed
 * the connection, it holds part of a command, the next one would run into it (QEMU would answer
 * a parse error without an id, and never this one): the stream is out of step (PROTOCOL). */
static void
note_cut(SocketQmp *sq, GError **error, gsize written, gsize len)
{
  if (!g_error_matches(*error, HMMV_ERROR, HMMV_ERROR_GONE)) {
    g_autoptr(GError) raw = g_steal_pointer(error);

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "QMP %s: a command was cut short: %zu "
                "of %zu bytes went out (%s)", sq->path, written, len,
                g_error_matches(raw, HMMV_ERROR, HMMV_ERROR_TIMED_OUT) ? "QEMU read no more in "
                "time" : raw->message);
  }
  note_broken(sq, *error);
}

/* The command's line, fd (>= 0) with its first byte, within the exchange's deadline. Nothing
 * of it out: not sent (no reply owed); part of it: cut short (note_cut). */
static gboolean
send_command(SocketQmp *sq, const char *line, int fd, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  gsize len = strlen(line), written = 0, more = 0;

  if (fd >= 0) {
    g_autoptr(GSocketControlMessage) message = g_unix_fd_message_new();
    GOutputVector vector = { line, 1 };

    if (!g_unix_fd_message_append_fd(G_UNIX_FD_MESSAGE(message), fd, &local_error) ||
        g_socket_send_message(sq->socket, NULL, &vector, 1, &message, 1, 0, NULL,
                              &local_error) < 0) {
      g_autoptr(GError) raw = g_steal_pointer(&local_error);

      map_io_error(sq, raw, &local_error);
    } else {
      written = 1;
    }
  }
  if (local_error == NULL && socket_write_all(sq, line + written, len - written, &more,
                                              &local_error)) {
    command_sent(sq);
    return TRUE;
  }
  written += more;
  if (written == 0) {
    sq->next_id--;
    g_prefix_error(&local_error, "nothing went out: ");
    note_broken(sq, local_error);
  } else {
    command_sent(sq);
    note_cut(sq, &local_error, written, len);
  }
  g_propagate_error(error, g_steal_pointer(&local_error));
  return FALSE;
}

/* One exchange under the lock: fd (>= 0) travels with the command's first byte. */
static char *
socket_exchange(SocketQmp *sq, const char *command_json, int fd, GError **error)
{
  g_autofree char *line = NULL;
  g_autoptr(GError) local_error = NULL;
  guint64 id = 0;
  char *reply;

  exchange_begin(sq);
  if (!exchange_ready(sq, error))
    return NULL;
  line = command_line(sq, command_json, &id, error);
  if (line == NULL || !send_command(sq, line, fd, error))
    return NULL;
  sq->owed_id = id;   /* its reply is owed until read */
  reply = socket_read_reply(sq, id, &local_error);
  if (reply == NULL) {
    note_broken(sq, local_error);
    g_propagate_error(error, g_steal_pointer(&local_error));
  }
  return reply;
}

static char *
socket_qmp_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  SocketQmp *sq = qmp->priv;
  g_autoptr(GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new(&sq->lock);

  return socket_exchange(sq, command_json, -1, error);
}

static char *
socket_qmp_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  SocketQmp *sq = qmp->priv;
  g_autoptr(GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new(&sq->lock);

  return socket_exchange(sq, command_json, fd, error);
}

/* A command nobody waits for (hmmv-stop): sent with the next id even while a reply is owed
 * (a stopped QEMU still reads it when it runs again), without waiting for room in the socket:
 * a full socket buffer drops it. Its reply is dropped by its id when it comes. */
static void
socket_qmp_post(HmmvQmp *qmp, const char *command_json)
{
  SocketQmp *sq = qmp->priv;
  g_autoptr(GMutexLocker) locker G_GNUC_UNUSED = g_mutex_locker_new(&sq->lock);
  g_autoptr(GError) local_error = NULL;
  g_autofree char *line = NULL;
  guint64 id;
  gssize n;
  gsize len;

  if (sq->broken != NULL && sq->broken_code == HMMV_ERROR_GONE) {
    g_debug("QMP %s: %s not sent: %s", sq->path, command_json, sq->broken);
    return;
  }
  line = command_line(sq, command_json, &id, &local_error);
  if (line == NULL) {
    g_debug("QMP %s: %s not sent: %s", sq->path, command_json, local_error->message);
    return;
  }
  len = strlen(line);
  n = g_socket_send_with_blocking(sq->socket, line, len, FALSE, NULL, &local_error);
  if (n <= 0) {
    sq->next_id--;   /* nothing went out */
    if (n == 0 || g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_debug("QMP %s: %s dropped: QEMU's socket buffer is full", sq->path, command_json);
      return;
    }
    {
      g_autoptr(GError) mapped = NULL;

      map_io_error(sq, local_error, &mapped);
      g_debug("QMP %s: %s not sent: %s", sq->path, command_json, mapped->message);
      note_broken(sq, mapped);
    }
    return;
  }
  command_sent(sq);
  sq->posted_id = id;
  if ((gsize)n < len) {   /* a moment for the rest, else the stream is out of step */
    g_autoptr(GError) rest_error = NULL;
    gsize written;

    sq->deadline_us = g_get_monotonic_time() + POST_REST_US;
    if (!socket_write_all(sq, line + n, len - (gsize)n, &written, &rest_error)) {
      note_cut(sq, &rest_error, (gsize)n + written, len);
      g_debug("%s", rest_error->message);
    }
  }
}

/* For the linger (qmp-linger.c). On a stream out of step, what does not parse is skipped (a
 * reply names its id); a line past CATCH_UP_BYTES is not read whole. */
gboolean
hmmv_qmp_socket_drop_line(SocketQmp *sq)
{
  g_autofree char *line = NULL;
  LineKind kind;
  guint64 id;

  while ((line = take_line(sq)) == NULL) {
    if (sq->buffer->len > CATCH_UP_BYTES || !socket_fill(sq, TRUE, NULL))
      return FALSE;
  }
  if (strlen(line) > CATCH_UP_BYTES)
    return FALSE;
  if (classify_line(sq, line, 0, &kind, &id, NULL) && kind != LINE_SKIP)
    note_late(sq, id);
  return TRUE;
}

static void
socket_qmp_destroy(HmmvQmp *qmp)
{
  if (qmp->priv != NULL)
    hmmv_qmp_linger_close(qmp->priv);
}

static gboolean
socket_qmp_commands_sent(HmmvQmp *qmp, guint64 *sent)
{
  SocketQmp *sq = qmp->priv;

  *sent = (guint)g_atomic_int_get(&sq->sent);
  return TRUE;
}

static const struct hmmv_qmp_ops socket_qmp_ops = {
  .name = "unix-socket",
  .transact = socket_qmp_transact,
  .transact_fd = socket_qmp_transact_fd,
  .post = socket_qmp_post,
  .commands_sent = socket_qmp_commands_sent,
  .destroy = socket_qmp_destroy,
};

HmmvQmp *
hmmv_qmp_connect_unix(const char *path, guint timeout_ms, GError **error)
{
  return hmmv_qmp_connect_unix_full(path, timeout_ms, NULL, NULL, error);
}

/* SO_PEERCRED of a connected Unix socket: the pid of the process that created the listening
 * socket (QEMU itself), known right after connect(), before the peer accepts; -1 unknown. */
static int
socket_peer_pid(GSocket *socket)
{
  g_autoptr(GCredentials) credentials = g_socket_get_credentials(socket, NULL);
  pid_t pid;

  if (credentials == NULL)
    return -1;
  pid = g_credentials_get_unix_pid(credentials, NULL);
  return pid > 0 ? (int)pid : -1;
}

HmmvQmp *
hmmv_qmp_connect_unix_full(const char *path, guint timeout_ms, GCancellable *cancellable,
                           HmmvQmpPeer *peer, GError **error)
{
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(HmmvQmp) qmp = NULL;
  g_autoptr(JsonNode) ret = NULL;
  g_autofree char *greeting = NULL;
  SocketQmp *sq = g_new0(SocketQmp, 1);
  HmmvQmpPeer unused;

  if (peer == NULL)
    peer = &unused;
  peer->pid = -1;
  peer->greeted = FALSE;
  g_mutex_init(&sq->lock);
  sq->buffer = g_string_new(NULL);
  sq->path = g_strdup(path);
  sq->timeout_ms = MAX(timeout_ms, 1);
  sq->cancellable = cancellable != NULL ? g_object_ref(cancellable) : NULL;
  qmp = hmmv_qmp_new(&socket_qmp_ops, sq, error);
  sq->socket = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                            G_SOCKET_PROTOCOL_DEFAULT, &local_error);
  if (sq->socket == NULL) {
    map_io_error(sq, local_error, error);
    return NULL;
  }
  g_socket_set_timeout(sq->socket, timeout_seconds(sq->timeout_ms));
  if (!g_socket_connect(sq->socket, address, NULL, &local_error)) {
    g_set_error(error, HMMV_ERROR,
                g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
                        g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)
                    ? HMMV_ERROR_GONE
                    : HMMV_ERROR_IO,
                "QMP %s: cannot connect: %s", path, local_error->message);
    return NULL;
  }
  peer->pid = socket_peer_pid(sq->socket);
  exchange_begin(sq);   /* the greeting; qmp_capabilities is an exchange of its own */
  greeting = socket_read_line(sq, error);
  if (greeting == NULL)
    return NULL;
  peer->greeted = TRUE;
  if (strstr(greeting, "\"QMP\"") == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "QMP %s: no QMP greeting", path);
    return NULL;
  }
  ret = hmmv_qmp_execute(qmp, "qmp_capabilities", NULL, error);
  if (ret == NULL)
    return NULL;
  return g_steal_pointer(&qmp);
}

void
hmmv_qmp_set_cancellable(HmmvQmp *qmp, GCancellable *cancellable)
{
  SocketQmp *sq;

  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return;
  sq = qmp->priv;
  g_clear_object(&sq->cancellable);
  sq->cancellable = cancellable != NULL ? g_object_ref(cancellable) : NULL;
}

void
hmmv_qmp_set_timeout_ms(HmmvQmp *qmp, guint timeout_ms)
{
  SocketQmp *sq;

  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return;
  sq = qmp->priv;
  sq->timeout_ms = MAX(timeout_ms, 1);
  g_socket_set_timeout(sq->socket, timeout_seconds(sq->timeout_ms));
}

gboolean
hmmv_qmp_catch_up(HmmvQmp *qmp, GError **error)
{
  SocketQmp *sq;
  gboolean caught_up;

  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return TRUE;
  sq = qmp->priv;
  if (!g_mutex_trylock(&sq->lock))
    return FALSE;   /* an exchange is under way on another thread */
  caught_up = check_broken(sq, error) &&
              catch_up_locked(sq, g_get_monotonic_time() + CATCH_UP_US, error);
  g_mutex_unlock(&sq->lock);
  return caught_up;
}

gboolean
hmmv_qmp_is_broken(HmmvQmp *qmp, const char **reason)
{
  const char *why;

  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return FALSE;
  why = g_atomic_pointer_get(&((SocketQmp *)qmp->priv)->broken);
  if (why != NULL && reason != NULL)
    *reason = why;
  return why != NULL;
}

guint64
hmmv_qmp_get_late_replies(HmmvQmp *qmp)
{
  SocketQmp *sq;
  guint64 late;

  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return 0;
  sq = qmp->priv;
  g_mutex_lock(&sq->lock);
  late = sq->late_replies;
  g_mutex_unlock(&sq->lock);
  return late;
}

int
hmmv_qmp_get_peer_pid(HmmvQmp *qmp)
{
  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return -1;
  return socket_peer_pid(((SocketQmp *)qmp->priv)->socket);
}
