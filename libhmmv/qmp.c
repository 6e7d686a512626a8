/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP: command building and reply parsing (json-glib), and the Unix socket transport (GIO).
 *
 * QEMU writes one JSON object per line. Between a command and its reply it may write events
 * ({"event": ...}); they are skipped. Each exchange (command out, events skipped, reply in)
 * has one deadline, however QEMU trickles its bytes (a QEMU sending an event a second used to
 * hold the caller forever), the caller's GCancellable ends any wait at once, and a line longer
 * than HMMV_QMP_MAX_LINE is refused: a hung or hostile QEMU costs a bounded wait and bounded
 * memory.
 *
 * A missed deadline (HMMV_ERROR_TIMED_OUT) leaves the command's reply due: QEMU answers it
 * whenever it runs again. So that a late reply is never taken for a later command's, every
 * command on the socket carries an "id" (QEMU echoes it in its reply), a reply with another
 * id is a late one and is dropped, and while a reply is due nothing more is sent: an
 * exchange then fails at once with HMMV_ERROR_TIMED_OUT, without waiting, unless what QEMU
 * sent meanwhile (read without waiting) holds every due reply. hmmv_qmp_catch_up() reads so
 * on its own, for a caller that wants to know when QEMU answers again.
 */
#include <hmmv/error.h>
#include <hmmv/json.h>
#include <hmmv/qmp.h>

#include <gio/gio.h>
#include <gio/gunixfdmessage.h>
#include <gio/gunixsocketaddress.h>
#include <string.h>

/* query-hmmv-ramblocks of a VM with many hot-plugged DIMMs stays well under 1 MiB. */
#define HMMV_QMP_MAX_LINE (16u << 20)

HmmvQmp *
hmmv_qmp_new(const struct hmmv_qmp_ops *ops, gpointer priv, GError **error)
{
  HmmvQmp *qmp;

  if (ops == NULL || ops->name == NULL || ops->transact == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "QMP transport %s lacks a name or a transact hook",
                ops && ops->name ? ops->name : "(unnamed)");
    return NULL;
  }
  qmp = g_new0(HmmvQmp, 1);
  qmp->ops = ops;
  qmp->priv = priv;
  return qmp;
}

void
hmmv_qmp_free(HmmvQmp *qmp)
{
  if (qmp == NULL)
    return;
  if (qmp->ops->destroy != NULL)
    qmp->ops->destroy(qmp);
  g_free(qmp);
}

const char *
hmmv_qmp_get_name(const HmmvQmp *qmp)
{
  return qmp->ops->name;
}

char *
hmmv_qmp_build_command(const char *command, JsonObject *arguments)
{
  g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
  g_autoptr(JsonObject) object = json_object_new();

  json_object_set_string_member(object, "execute", command);
  if (arguments != NULL)
    json_object_set_object_member(object, "arguments", json_object_ref(arguments));
  json_node_set_object(root, object);
  return json_to_string(root, FALSE);
}

JsonNode *
hmmv_qmp_parse_reply(const char *text, GError **error)
{
  g_autoptr(JsonNode) root = hmmv_json_parse(text, strlen(text), error);
  JsonObject *object;

  if (root == NULL) {
    g_prefix_error(error, "QMP reply is not JSON: ");
    return NULL;
  }
  if (!JSON_NODE_HOLDS_OBJECT(root)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "QMP reply is not a JSON object");
    return NULL;
  }
  object = json_node_get_object(root);
  if (json_object_has_member(object, "error")) {
    JsonNode *err = json_object_get_member(object, "error");
    JsonObject *err_object = JSON_NODE_HOLDS_OBJECT(err) ? json_node_get_object(err) : NULL;
    const char *klass = err_object ? json_object_get_string_member_with_default(
                                       err_object, "class", "GenericError")
                                   : "GenericError";
    const char *desc = err_object ? json_object_get_string_member_with_default(
                                      err_object, "desc", "(no description)")
                                  : "(malformed error)";

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "QEMU: %s: %s", klass, desc);
    return NULL;
  }
  if (!json_object_has_member(object, "return")) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "QMP reply has neither \"return\" nor \"error\"");
    return NULL;
  }
  return json_node_copy(json_object_get_member(object, "return"));
}

char *
hmmv_qmp_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  if (qmp->ops->transact_fd == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "QMP transport %s cannot pass file descriptors", qmp->ops->name);
    return NULL;
  }
  return qmp->ops->transact_fd(qmp, command_json, fd, error);
}

/* One exchange, with fd passed alongside when fd >= 0. */
static JsonNode *
execute(HmmvQmp *qmp, const char *command, JsonObject *arguments, int fd, GError **error)
{
  g_autofree char *text = hmmv_qmp_build_command(command, arguments);
  g_autofree char *reply = fd >= 0 ? hmmv_qmp_transact_fd(qmp, text, fd, error)
                                   : qmp->ops->transact(qmp, text, error);
  JsonNode *ret;

  if (reply == NULL) {
    g_prefix_error(error, "%s: ", command);
    return NULL;
  }
  ret = hmmv_qmp_parse_reply(reply, error);
  if (ret == NULL)
    g_prefix_error(error, "%s: ", command);
  return ret;
}

JsonNode *
hmmv_qmp_execute(HmmvQmp *qmp, const char *command, JsonObject *arguments, GError **error)
{
  return execute(qmp, command, arguments, -1, error);
}

JsonNode *
hmmv_qmp_execute_with_fd(HmmvQmp *qmp, const char *command, JsonObject *arguments, int fd,
                         GError **error)
{
  if (fd < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "%s: no fd to pass", command);
    return NULL;
  }
  return execute(qmp, command, arguments, fd, error);
}

void
hmmv_qmp_post(HmmvQmp *qmp, const char *command, JsonObject *arguments)
{
  g_autofree char *text = hmmv_qmp_build_command(command, arguments);
  g_autofree char *reply = NULL;

  if (qmp->ops->post != NULL) {
    qmp->ops->post(qmp, text);
    return;
  }
  reply = qmp->ops->transact(qmp, text, NULL);
}

gboolean
hmmv_qmp_send_fd(HmmvQmp *qmp, int fd, const char *fdname, GError **error)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_string_member(args, "fdname", fdname);
  ret = hmmv_qmp_execute_with_fd(qmp, "getfd", args, fd, error);
  return ret != NULL;
}

gboolean
hmmv_json_get_uint(JsonObject *object, const char *member, guint64 *value, GError **error)
{
  JsonNode *node = json_object_get_member(object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_INT64 || json_node_get_int(node) < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "QMP member \"%s\" is missing or not a non-negative integer", member);
    return FALSE;
  }
  *value = (guint64)json_node_get_int(node);
  return TRUE;
}

gboolean
hmmv_json_get_string(JsonObject *object, const char *member, const char **value,
                     GError **error)
{
  JsonNode *node = json_object_get_member(object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_STRING) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "QMP member \"%s\" is missing or not a string", member);
    return FALSE;
  }
  *value = json_node_get_string(node);
  return TRUE;
}

/* The Unix socket transport. */

typedef struct {
  GMutex lock;              /* one exchange or catch-up at a time */
  GSocket *socket;
  GString *buffer;          /* bytes read but not yet consumed */
  gsize scanned;            /* bytes of buffer known to hold no line end */
  char *path;
  guint timeout_ms;         /* per exchange */
  gint64 deadline_us;       /* of the exchange under way (monotonic) */
  GCancellable *cancellable;
  guint64 events_skipped;
  guint64 next_id;          /* the id of the last command sent */
  guint due;                /* commands sent whose replies were not read: missed deadlines */
  guint64 late_replies;     /* replies read after their deadline, dropped */
  gboolean broken;          /* a malformed message left the stream out of step for good */
} SocketQmp;

static void
socket_qmp_destroy(HmmvQmp *qmp)
{
  SocketQmp *sq = qmp->priv;

  if (sq == NULL)
    return;
  if (sq->socket != NULL)
    g_socket_close(sq->socket, NULL);
  g_clear_object(&sq->socket);
  g_clear_object(&sq->cancellable);
  g_string_free(sq->buffer, TRUE);
  g_free(sq->path);
  g_mutex_clear(&sq->lock);
  g_free(sq);
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
  LINE_LATE,      /* the reply to a command whose deadline passed: dropped */
  LINE_REPLY,     /* the reply to the command under way (its id, or none) */
} LineKind;

/* What a line QEMU sent is, for the command under way with id want (0: none under way, so any
 * reply is a late one). A line that names an event or an id is parsed to be sure (a reply
 * whose payload mentions "event" is not dropped); an event is bounded like a reply: a hostile
 * one is an error, not skipped. A reply without an id (a QEMU that does not echo it, or one
 * whose parser failed before the id) is taken for the command under way when there is one. */
static gboolean
classify_line(SocketQmp *sq, const char *line, guint64 want, LineKind *kind, GError **error)
{
  g_autoptr(JsonNode) root = NULL;
  JsonObject *object;
  JsonNode *id;

  *kind = LINE_REPLY;
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
  id = json_object_get_member(object, "id");
  if (id != NULL && (want == 0 || !JSON_NODE_HOLDS_VALUE(id) ||
                     json_node_get_value_type(id) != G_TYPE_INT64 ||
                     (guint64)json_node_get_int(id) != want))
    *kind = LINE_LATE;
  return TRUE;
}

/* The reply to the command with id want, events skipped. Nothing else is due when a command
 * is sent (exchange_ready), so a reply with another id is not one QEMU owes: dropped, as a
 * late one. */
static char *
socket_read_reply(SocketQmp *sq, guint64 want, GError **error)
{
  for (;;) {
    g_autofree char *line = socket_read_line(sq, error);
    LineKind kind;

    if (line == NULL || !classify_line(sq, line, want, &kind, error))
      return NULL;
    if (kind == LINE_SKIP) {
      if (line[0] != '\0')
        sq->events_skipped++;
      continue;
    }
    if (kind == LINE_LATE) {
      sq->late_replies++;
      continue;
    }
    sq->due = 0;
    return g_steal_pointer(&line);
  }
}

/* Under the lock: read what QEMU sent without waiting, dropping late replies and events.
 * TRUE when no reply is due any more. */
static gboolean
catch_up_locked(SocketQmp *sq, GError **error)
{
  while (sq->due > 0) {
    g_autofree char *line = take_line(sq);
    LineKind kind;

    if (line == NULL) {
      g_autoptr(GError) local_error = NULL;

      if (socket_fill(sq, FALSE, &local_error))
        continue;
      if (local_error == NULL)
        return FALSE;   /* nothing more yet */
      if (g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_PROTOCOL))
        sq->broken = TRUE;   /* a line too long */
      g_propagate_error(error, g_steal_pointer(&local_error));
      return FALSE;
    }
    if (!classify_line(sq, line, 0, &kind, error)) {
      sq->broken = TRUE;   /* not QMP: where the replies end is unknown */
      return FALSE;
    }
    if (kind != LINE_SKIP) {
      sq->late_replies++;
      sq->due--;
    }
  }
  return TRUE;
}

static gboolean
socket_write_all(SocketQmp *sq, const char *data, gsize len, GError **error)
{
  while (len > 0) {
    g_autoptr(GError) local_error = NULL;
    gssize n = socket_wait(sq, G_IO_OUT, &local_error)
                 ? g_socket_send(sq->socket, data, len, NULL, &local_error) : -1;

    if (n < 0)
      return map_io_error(sq, local_error, error);
    data += n;
    len -= (gsize)n;
  }
  return TRUE;
}

/* Under the lock: may a command go now? Not while a reply is due that what QEMU sent
 * meanwhile does not hold (it would be read as this command's). */
static gboolean
exchange_ready(SocketQmp *sq, GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (sq->broken) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "QMP %s: out of step with QEMU since a malformed message; nothing more is sent",
                sq->path);
    return FALSE;
  }
  if (catch_up_locked(sq, &local_error))
    return TRUE;
  if (local_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
              "QMP %s: QEMU has not answered %u earlier command(s) (missed the %u ms deadline); "
              "nothing is sent until it does", sq->path, sq->due, sq->timeout_ms);
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

/* One exchange under the lock: fd (>= 0) travels with the command's first byte. */
static char *
socket_exchange(SocketQmp *sq, const char *command_json, int fd, GError **error)
{
  g_autofree char *line = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *rest;
  guint64 id = 0;
  char *reply;

  exchange_begin(sq);
  if (!exchange_ready(sq, error))
    return NULL;
  line = command_line(sq, command_json, &id, error);
  if (line == NULL)
    return NULL;
  rest = line;
  if (fd >= 0) {
    g_autoptr(GSocketControlMessage) message = g_unix_fd_message_new();
    GOutputVector vector = { line, 1 };

    if (!g_unix_fd_message_append_fd(G_UNIX_FD_MESSAGE(message), fd, &local_error) ||
        g_socket_send_message(sq->socket, NULL, &vector, 1, &message, 1, 0, NULL,
                              &local_error) < 0) {
      map_io_error(sq, local_error, error);
      return NULL;
    }
    rest = line + 1;
  }
  /* From its first byte on, the command may be answered: its reply is due. */
  sq->due++;
  if (!socket_write_all(sq, rest, strlen(rest), error))
    return NULL;
  reply = socket_read_reply(sq, id, &local_error);
  /* A message that is not QMP (too long, too deep): where its reply ends is unknown. */
  if (reply == NULL && g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_PROTOCOL))
    sq->broken = TRUE;
  if (reply == NULL)
    g_propagate_error(error, g_steal_pointer(&local_error));
  return reply;
}

static char *
socket_qmp_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  SocketQmp *sq = qmp->priv;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sq->lock);

  return socket_exchange(sq, command_json, -1, error);
}

static char *
socket_qmp_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  SocketQmp *sq = qmp->priv;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new(&sq->lock);

  return socket_exchange(sq, command_json, fd, error);
}

static const struct hmmv_qmp_ops socket_qmp_ops = {
  .name = "unix-socket",
  .transact = socket_qmp_transact,
  .transact_fd = socket_qmp_transact_fd,
  .destroy = socket_qmp_destroy,
};

HmmvQmp *
hmmv_qmp_connect_unix(const char *path, guint timeout_ms, GError **error)
{
  return hmmv_qmp_connect_unix_full(path, timeout_ms, NULL, error);
}

HmmvQmp *
hmmv_qmp_connect_unix_full(const char *path, guint timeout_ms, GCancellable *cancellable,
                           GError **error)
{
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(path);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(HmmvQmp) qmp = NULL;
  g_autoptr(JsonNode) ret = NULL;
  g_autofree char *greeting = NULL;
  SocketQmp *sq = g_new0(SocketQmp, 1);

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
  exchange_begin(sq);   /* the greeting; qmp_capabilities is an exchange of its own */
  greeting = socket_read_line(sq, error);
  if (greeting == NULL)
    return NULL;
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
  if (sq->broken)
    caught_up = (g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                             "QMP %s: out of step with QEMU since a malformed message",
                             sq->path), FALSE);
  else
    caught_up = catch_up_locked(sq, error);
  g_mutex_unlock(&sq->lock);
  return caught_up;
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
  g_autoptr(GCredentials) credentials = NULL;
  SocketQmp *sq;
  pid_t pid;

  if (qmp == NULL || qmp->ops != &socket_qmp_ops)
    return -1;
  sq = qmp->priv;
  /* SO_PEERCRED: the pid of the process that created the listening socket, QEMU itself. */
  credentials = g_socket_get_credentials(sq->socket, NULL);
  if (credentials == NULL)
    return -1;
  pid = g_credentials_get_unix_pid(credentials, NULL);
  return pid > 0 ? (int)pid : -1;
}
