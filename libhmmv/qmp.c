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
  GSocket *socket;
  GString *buffer;          /* bytes read but not yet consumed */
  gsize scanned;            /* bytes of buffer known to hold no line end */
  char *path;
  guint timeout_ms;         /* per exchange */
  gint64 deadline_us;       /* of the exchange under way (monotonic) */
  GCancellable *cancellable;
  guint64 events_skipped;
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
  g_free(sq);
}

static gboolean
map_io_error(SocketQmp *sq, GError *local_error, GError **error)
{
  if (g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO,
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

/* Next line QEMU wrote, without its line end. Each byte is searched for the line end once:
 * rescanning the whole buffer at every read made one 16 MiB line cost 2.5-4 s. */
static char *
socket_read_line(SocketQmp *sq, GError **error)
{
  for (;;) {
    char *nl = memchr(sq->buffer->str + sq->scanned, '\n', sq->buffer->len - sq->scanned);
    g_autoptr(GError) local_error = NULL;
    char chunk[65536];
    gssize n;

    if (nl != NULL) {
      gsize len = (gsize)(nl - sq->buffer->str);
      char *line = g_strndup(sq->buffer->str, len);

      g_string_erase(sq->buffer, 0, (gssize)len + 1);
      sq->scanned = 0;
      g_strchomp(line);
      return line;
    }
    sq->scanned = sq->buffer->len;
    if (sq->buffer->len > HMMV_QMP_MAX_LINE) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                  "QMP %s: a message longer than %u bytes", sq->path, HMMV_QMP_MAX_LINE);
      return NULL;
    }
    if (!socket_wait(sq, G_IO_IN, &local_error)) {
      map_io_error(sq, local_error, error);
      return NULL;
    }
    n = g_socket_receive(sq->socket, chunk, sizeof(chunk), NULL, &local_error);
    if (n < 0) {
      map_io_error(sq, local_error, error);
      return NULL;
    }
    if (n == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "QMP %s: QEMU closed the connection",
                  sq->path);
      return NULL;
    }
    g_string_append_len(sq->buffer, chunk, n);
  }
}

/* The next line that is not an event. */
static char *
socket_read_reply(SocketQmp *sq, GError **error)
{
  for (;;) {
    g_autofree char *line = socket_read_line(sq, error);

    if (line == NULL)
      return NULL;
    if (line[0] == '\0' || strstr(line, "\"event\"") != NULL) {
      /* An event, or an empty line: a real reply never has an "event" member. Confirm by
       * parsing, so a reply whose payload mentions "event" is not dropped. An event is
       * bounded like a reply: a hostile one is an error, not skipped. */
      g_autoptr(JsonNode) root = NULL;

      if (line[0] == '\0')
        continue;
      root = hmmv_json_parse(line, strlen(line), error);
      if (root == NULL) {
        g_prefix_error(error, "QMP %s: ", sq->path);
        return NULL;
      }
      if (JSON_NODE_HOLDS_OBJECT(root) &&
          json_object_has_member(json_node_get_object(root), "event")) {
        sq->events_skipped++;
        continue;
      }
    }
    return g_steal_pointer(&line);
  }
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

static char *
socket_qmp_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  SocketQmp *sq = qmp->priv;
  g_autofree char *line = g_strconcat(command_json, "\n", NULL);

  exchange_begin(sq);
  if (!socket_write_all(sq, line, strlen(line), error))
    return NULL;
  return socket_read_reply(sq, error);
}

static char *
socket_qmp_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  SocketQmp *sq = qmp->priv;
  g_autofree char *line = g_strconcat(command_json, "\n", NULL);
  g_autoptr(GSocketControlMessage) message = g_unix_fd_message_new();
  g_autoptr(GError) local_error = NULL;
  GOutputVector vector;
  gssize n;

  exchange_begin(sq);
  if (!g_unix_fd_message_append_fd(G_UNIX_FD_MESSAGE(message), fd, &local_error)) {
    map_io_error(sq, local_error, error);
    return NULL;
  }
  /* The fd travels with the command's first byte; the rest follows plainly. */
  vector.buffer = line;
  vector.size = 1;
  n = g_socket_send_message(sq->socket, NULL, &vector, 1, &message, 1, 0, NULL, &local_error);
  if (n < 0) {
    map_io_error(sq, local_error, error);
    return NULL;
  }
  if (!socket_write_all(sq, line + 1, strlen(line) - 1, error))
    return NULL;
  return socket_read_reply(sq, error);
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
