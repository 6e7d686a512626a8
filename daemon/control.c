/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket (protocol in control.h). Everything is bounded: line length, clients at
 * once, idle time. Every request is answered, malformed ones with {"error": ...}; nothing a
 * client sends can take the daemon down.
 */
#include "control.h"
#include "host-tiering.h"
#include "quota.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <hmmv/json.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* sizeof(sockaddr_un.sun_path) on Linux, with its terminating NUL. */
#define UNIX_PATH_MAX 108u
#define READ_CHUNK 4096u

struct _HmmvdControl {
  HmmvdVms *vms;
  const HmmvTopology *topo;
  char *mover_name;
  char *path;
  GSocketService *service;
  GCancellable *cancellable;  /* cancelled on free: pending clients then only clean up */
  guint nr_clients;
  guint request_deadline_ms;
  char *tiering_root;         /* NULL: status has no "host-tiering" (hmmvd sets "/") */
  char *tiering_run_dir;
};

typedef struct {
  HmmvdControl *control;      /* not valid once cancellable is cancelled */
  GCancellable *cancellable;
  GSocketConnection *connection;
  GByteArray *pending;        /* bytes read and not yet answered */
  char chunk[READ_CHUNK];
  char *reply;
  gboolean close_after_reply;
  guint uid;
  int pid;
  guint deadline_source;      /* running while a request is awaited */
  guint request_deadline_ms;
  gboolean waiting;           /* its request waits for the running interval (placement) */
} ControlClient;

/* ---- requests ---- */

static gboolean
get_mib(JsonNode *node, const char *member, guint64 *pages, GError **error)
{
  gint64 mib;

  if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "quota %s must be a whole number of MiB", member);
    return FALSE;
  }
  mib = json_node_get_int(node);
  if (mib < 0 || (guint64)mib > HMMVD_QUOTA_MAX_MIB) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "quota %s = %" G_GINT64_FORMAT " is out of range 0..%" G_GUINT64_FORMAT, member,
                mib, HMMVD_QUOTA_MAX_MIB);
    return FALSE;
  }
  *pages = (guint64)mib * HMMVD_PAGES_PER_MIB;
  return TRUE;
}

static gboolean
get_quota_member(JsonNode *node, const char *member, HmmvQuota *quota, GError **error)
{
  if (strcmp(member, "dram-min-mib") == 0)
    return get_mib(node, member, &quota->min_pages, error);
  if (strcmp(member, "dram-max-mib") == 0)
    return get_mib(node, member, &quota->max_pages, error);
  if (strcmp(member, "weight") == 0) {
    gint64 weight = JSON_NODE_HOLDS_VALUE(node) &&
                    json_node_get_value_type(node) == G_TYPE_INT64 ? json_node_get_int(node)
                                                                   : -1;

    if (weight < 1 || weight > HMMVD_QUOTA_MAX_WEIGHT) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "quota weight must be a whole number in 1..%u", HMMVD_QUOTA_MAX_WEIGHT);
      return FALSE;
    }
    quota->weight = (guint)weight;
    return TRUE;
  }
  if (strcmp(member, "managed") == 0) {
    GType type = JSON_NODE_HOLDS_VALUE(node) ? json_node_get_value_type(node) : G_TYPE_NONE;
    const char *text = type == G_TYPE_STRING ? json_node_get_string(node) : NULL;

    if (type == G_TYPE_BOOLEAN)
      quota->managed = json_node_get_boolean(node);
    else if (g_strcmp0(text, "yes") == 0 || g_strcmp0(text, "no") == 0)
      quota->managed = text[0] == 'y';
    else {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "quota managed must be true, false, \"yes\" or \"no\"");
      return FALSE;
    }
    return TRUE;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
              "unknown quota member %s (known: dram-min-mib, dram-max-mib, weight, managed)",
              member);
  return FALSE;
}

static const char *
get_vm(JsonObject *request, GError **error)
{
  JsonNode *node = json_object_get_member(request, "vm");

  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_STRING) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "this command needs \"vm\": the VM's name");
    return NULL;
  }
  return json_node_get_string(node);
}

static JsonNode *
empty_object(void)
{
  JsonNode *node = json_node_new(JSON_NODE_OBJECT);

  json_node_take_object(node, json_object_new());
  return node;
}

static JsonNode *
set_quota(HmmvdVms *vms, JsonObject *request, GError **error)
{
  const char *name = get_vm(request, error);
  JsonNode *node = json_object_get_member(request, "quota");
  const HmmvdVmInfo *info;
  g_autoptr(GList) members = NULL;
  HmmvQuota quota;

  if (name == NULL)
    return NULL;
  if (node == NULL || !JSON_NODE_HOLDS_OBJECT(node)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "set-quota needs a \"quota\" object");
    return NULL;
  }
  info = hmmvd_vms_lookup(vms, name);
  if (info == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "no VM named %s", name);
    return NULL;
  }
  quota = info->quota;
  members = json_object_get_members(json_node_get_object(node));
  for (GList *m = members; m != NULL; m = m->next) {
    if (!get_quota_member(json_object_get_member(json_node_get_object(node), m->data),
                          m->data, &quota, error))
      return NULL;
  }
  if (!hmmvd_vms_request_quota(vms, name, &quota, error))
    return NULL;
  g_message("control: set-quota %s", name);
  return empty_object();
}

/* wait (when not NULL): a command that needs the VMs' page state while an interval runs
 * returns NULL with *wait set, to be asked again when it is done (hmmvd_vms_when_idle). */
/* status, with Linux's own tiering read at the time of the request when control is given
 * and has a root (a few sysfs files, bounded: host-tiering.h) */
static JsonNode *
status_to_json(HmmvdControl *control, HmmvdVms *vms, const HmmvTopology *topo, const char *mover)
{
  JsonNode *node = hmmvd_status_to_json(vms, topo, mover);

  if (control != NULL && control->tiering_root != NULL) {
    g_autoptr(HmmvdHostTiering) tiering =
      hmmvd_host_tiering_detect(control->tiering_root, control->tiering_run_dir);

    json_object_set_member(json_node_get_object(node), "host-tiering",
                           hmmvd_host_tiering_to_json(tiering));
  }
  return node;
}

static JsonNode *
dispatch(HmmvdControl *control, HmmvdVms *vms, const HmmvTopology *topo, const char *mover,
         JsonObject *request, gboolean *wait, GError **error)
{
  static const char *const known[] = { "command", "vm", "quota", NULL };
  JsonNode *node = json_object_get_member(request, "command");
  g_autoptr(GList) members = json_object_get_members(request);
  const char *command;

  for (GList *m = members; m != NULL; m = m->next) {
    if (!g_strv_contains(known, m->data)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "unknown request member \"%s\"", (const char *)m->data);
      return NULL;
    }
  }
  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_STRING) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "missing \"command\" (status, vms, set-quota, pause, resume, placement)");
    return NULL;
  }
  command = json_node_get_string(node);
  if (strcmp(command, "status") == 0)
    return status_to_json(control, vms, topo, mover);
  if (strcmp(command, "vms") == 0)
    return hmmvd_vms_to_json(vms);
  if (strcmp(command, "set-quota") == 0)
    return set_quota(vms, request, error);
  if (strcmp(command, "pause") == 0 || strcmp(command, "resume") == 0) {
    const char *name = get_vm(request, error);

    if (name == NULL || !hmmvd_vms_set_paused(vms, name, command[0] == 'p', error))
      return NULL;
    return empty_object();
  }
  if (strcmp(command, "placement") == 0) {
    const char *name = get_vm(request, error);

    if (name != NULL && wait != NULL && hmmvd_vms_interval_running(vms)) {
      *wait = TRUE;
      return NULL;
    }
    return name != NULL ? hmmvd_vm_placement_to_json(vms, name, error) : NULL;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
              "unknown command \"%s\" (status, vms, set-quota, pause, resume, placement)", command);
  return NULL;
}

static char *
reply_line(const char *member, JsonNode *value)
{
  g_autoptr(JsonNode) root = json_node_new(JSON_NODE_OBJECT);
  JsonObject *object = json_object_new();

  json_object_set_member(object, member, value);
  json_node_take_object(root, object);
  return json_to_string(root, FALSE);
}

static char *
error_line(const char *message)
{
  JsonNode *value = json_node_new(JSON_NODE_VALUE);

  json_node_set_string(value, message);
  return reply_line("error", value);
}

static char *
handle_request(HmmvdControl *control, HmmvdVms *vms, const HmmvTopology *topo,
               const char *mover_name, const char *line, gsize len, gboolean *wait)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *message = NULL;
  JsonNode *result;

  if (len == 0 || memchr(line, '\0', len) != NULL || !g_utf8_validate(line, (gssize)len, NULL))
    return error_line("malformed request: expected one JSON object per line (UTF-8)");
  /* Bounded nesting and nothing after the object: hmmv_json_parse() checks both first. */
  root = hmmv_json_parse(line, len, &error);
  if (root == NULL) {
    message = g_strdup_printf("malformed request: %s", error->message);
    return error_line(message);
  }
  if (!JSON_NODE_HOLDS_OBJECT(root))
    return error_line("malformed request: expected a JSON object");
  result = dispatch(control, vms, topo, mover_name, json_node_get_object(root), wait, &error);
  if (result == NULL && wait != NULL && *wait)
    return NULL;
  if (result == NULL)
    return error_line(error->message);
  return reply_line("return", result);
}

char *
hmmvd_control_handle_request(HmmvdVms *vms, const HmmvTopology *topo, const char *mover_name,
                             const char *line, gsize len)
{
  return handle_request(NULL, vms, topo, mover_name, line, len, NULL);
}

/* ---- connections ---- */

static void
client_free(ControlClient *client)
{
  if (client->deadline_source != 0)
    g_source_remove(client->deadline_source);
  if (!g_cancellable_is_cancelled(client->cancellable))
    client->control->nr_clients--;
  g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
  g_object_unref(client->connection);
  g_object_unref(client->cancellable);
  g_byte_array_unref(client->pending);
  g_free(client->reply);
  g_free(client);
}

static void client_next(ControlClient *client);

/* The interval a request waited for is done (or hmmvd is stopping: then only clean up). */
static gboolean
client_resume(gpointer user_data)
{
  ControlClient *client = user_data;

  client->waiting = FALSE;
  if (g_cancellable_is_cancelled(client->cancellable))
    client_free(client);
  else
    client_next(client);
  return G_SOURCE_REMOVE;
}

static void
client_written(GObject *source, GAsyncResult *result, gpointer user_data)
{
  ControlClient *client = user_data;
  gboolean ok = g_output_stream_write_all_finish(G_OUTPUT_STREAM(source), result, NULL, NULL);

  g_clear_pointer(&client->reply, g_free);
  if (!ok || client->close_after_reply || g_cancellable_is_cancelled(client->cancellable))
    client_free(client);
  else
    client_next(client);
}

/* Takes line (no newline); sends it with one. */
static void
client_send(ControlClient *client, char *line, gboolean close_after)
{
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(client->connection));

  client->reply = g_strconcat(line, "\n", NULL);
  g_free(line);
  client->close_after_reply = close_after;
  g_output_stream_write_all_async(out, client->reply, strlen(client->reply), G_PRIORITY_DEFAULT,
                                  client->cancellable, client_written, client);
}

static void
client_read(GObject *source, GAsyncResult *result, gpointer user_data)
{
  ControlClient *client = user_data;
  gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), result, NULL);

  if (g_cancellable_is_cancelled(client->cancellable) || n <= 0) {
    client_free(client);   /* closed, timed out, or hmmvd is stopping */
    return;
  }
  g_byte_array_append(client->pending, (const guint8 *)client->chunk, (guint)n);
  client_next(client);
}

/* The request took too long: shut the socket down, so the pending read ends (EOF) and the
 * client is freed there. */
static gboolean
client_deadline(gpointer user_data)
{
  ControlClient *client = user_data;

  client->deadline_source = 0;
  g_message("control: dropped a client (pid %d) whose request did not arrive within %u ms",
            client->pid, client->request_deadline_ms);
  g_socket_shutdown(g_socket_connection_get_socket(client->connection), TRUE, TRUE, NULL);
  return G_SOURCE_REMOVE;
}

/* Answer the first complete line, or read more. */
static void
client_next(ControlClient *client)
{
  HmmvdControl *control = client->control;
  guint8 *newline = client->pending->len > 0
                      ? memchr(client->pending->data, '\n', client->pending->len) : NULL;
  gboolean wait = FALSE;
  gsize len;
  char *reply;

  if (newline == NULL || (gsize)(newline - client->pending->data) > HMMVD_CONTROL_MAX_LINE) {
    if (client->pending->len > HMMVD_CONTROL_MAX_LINE) {
      g_warning("control: dropped a client (pid %d) that sent a line over %u bytes",
                client->pid, HMMVD_CONTROL_MAX_LINE);
      client_send(client, g_strdup_printf("{\"error\":\"request line longer than %u bytes\"}",
                                          HMMVD_CONTROL_MAX_LINE), TRUE);
      return;
    }
    if (client->deadline_source == 0)
      client->deadline_source = g_timeout_add(client->request_deadline_ms, client_deadline,
                                              client);
    g_input_stream_read_async(g_io_stream_get_input_stream(G_IO_STREAM(client->connection)),
                              client->chunk, sizeof(client->chunk), G_PRIORITY_DEFAULT,
                              client->cancellable, client_read, client);
    return;
  }
  if (client->deadline_source != 0) {
    g_source_remove(client->deadline_source);
    client->deadline_source = 0;
  }
  len = (gsize)(newline - client->pending->data);
  if (len > 0 && client->pending->data[len - 1] == '\r')
    len--;
  reply = handle_request(control, control->vms, control->topo, control->mover_name,
                         (const char *)client->pending->data, len, &wait);
  if (reply == NULL) {
    /* asked again, line and all, once the running interval is done */
    client->waiting = TRUE;
    if (!hmmvd_vms_when_idle(control->vms, client_resume, client))
      client_resume(client);
    return;
  }
  g_byte_array_remove_range(client->pending, 0, (guint)(newline - client->pending->data) + 1);
  client_send(client, reply, FALSE);
}

static gboolean
peer_is_root(ControlClient *client, char **why)
{
  GSocket *socket = g_socket_connection_get_socket(client->connection);
  g_autoptr(GError) error = NULL;
  g_autoptr(GCredentials) credentials = g_socket_get_credentials(socket, &error);
  uid_t uid;

  if (credentials == NULL) {
    *why = g_strdup_printf("cannot read the peer's credentials: %s", error->message);
    return FALSE;
  }
  uid = g_credentials_get_unix_user(credentials, NULL);
  client->uid = (guint)uid;
  client->pid = g_credentials_get_unix_pid(credentials, NULL);
  if (uid != 0) {
    *why = g_strdup_printf("hmmvd's control socket is for root only (peer uid %u)", (guint)uid);
    return FALSE;
  }
  return TRUE;
}

static gboolean
control_incoming(GSocketService *service, GSocketConnection *connection,
                 GObject *source_object, gpointer user_data)
{
  HmmvdControl *control = user_data;
  ControlClient *client = g_new0(ControlClient, 1);
  g_autofree char *why = NULL;

  control->nr_clients++;
  client->control = control;
  client->cancellable = g_object_ref(control->cancellable);
  client->connection = g_object_ref(connection);
  client->pending = g_byte_array_new();
  client->pid = -1;
  client->request_deadline_ms = control->request_deadline_ms;
  g_socket_set_timeout(g_socket_connection_get_socket(connection), HMMVD_CONTROL_TIMEOUT_S);
  if (!peer_is_root(client, &why)) {
    g_autofree char *message = g_strdup_printf("permission denied: %s", why);

    g_warning("control: refused a client (uid %u, pid %d): %s", client->uid, client->pid, why);
    client_send(client, error_line(message), TRUE);
  } else if (control->nr_clients > HMMVD_CONTROL_MAX_CLIENTS) {
    g_warning("control: refused a client: %u clients already connected",
              HMMVD_CONTROL_MAX_CLIENTS);
    client_send(client, error_line("too many clients connected; try again"), TRUE);
  } else {
    client_next(client);
  }
  return TRUE;
}

/* ---- the socket ---- */

static gboolean
prepare_directory(const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  struct stat st;

  if (g_mkdir_with_parents(dir, 0700) < 0 || lstat(dir, &st) < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "control socket directory %s: %s", dir,
                g_strerror(errno));
    return FALSE;
  }
  /* Whoever can write the directory can replace the socket under hmmvctl's feet. */
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PERMISSION,
                "control socket directory %s must be a directory owned by uid %u and "
                "writable by it only (mode 0700)", dir, (guint)geteuid());
    return FALSE;
  }
  return TRUE;
}

static gboolean
remove_stale_socket(const char *path, GError **error)
{
  g_autoptr(GSocketClient) client = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  struct stat st;

  if (lstat(path, &st) < 0)
    return TRUE;
  if (!S_ISSOCK(st.st_mode)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%s exists and is not a socket; not replacing it", path);
    return FALSE;
  }
  client = g_socket_client_new();
  address = g_unix_socket_address_new(path);
  connection = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address), NULL, NULL);
  if (connection != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "another hmmvd answers on %s", path);
    return FALSE;
  }
  if (unlink(path) < 0 && errno != ENOENT) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "removing the stale socket %s: %s", path,
                g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

static gboolean
control_listen(HmmvdControl *control, GError **error)
{
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(control->path);
  g_autoptr(GError) local_error = NULL;

  control->service = g_socket_service_new();
  /* Room for every allowed client to be queued at once (GIO's default backlog is 10). */
  g_socket_listener_set_backlog(G_SOCKET_LISTENER(control->service),
                                2 * HMMVD_CONTROL_MAX_CLIENTS);
  if (!g_socket_listener_add_address(G_SOCKET_LISTENER(control->service), address,
                                     G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, NULL, NULL,
                                     &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "control socket %s: %s", control->path,
                local_error->message);
    return FALSE;
  }
  if (chmod(control->path, 0600) < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "control socket %s: chmod: %s",
                control->path, g_strerror(errno));
    return FALSE;
  }
  g_signal_connect(control->service, "incoming", G_CALLBACK(control_incoming), control);
  g_socket_service_start(control->service);
  return TRUE;
}

HmmvdControl *
hmmvd_control_new(HmmvdVms *vms, const HmmvTopology *topo, const char *mover_name,
                  const char *path, GError **error)
{
  g_autoptr(HmmvdControl) control = g_new0(HmmvdControl, 1);

  control->vms = vms;
  control->topo = topo;
  control->mover_name = g_strdup(mover_name);
  control->cancellable = g_cancellable_new();
  control->request_deadline_ms = HMMVD_CONTROL_REQUEST_DEADLINE_MS;
  if (strlen(path) >= UNIX_PATH_MAX || !g_path_is_absolute(path)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "control socket path %s must be absolute and shorter than %u bytes", path,
                UNIX_PATH_MAX);
    return NULL;
  }
  if (!prepare_directory(path, error) || !remove_stale_socket(path, error))
    return NULL;
  control->path = g_strdup(path);
  if (!control_listen(control, error))
    return NULL;
  g_message("control: listening on %s (root only)", path);
  return g_steal_pointer(&control);
}

void
hmmvd_control_set_request_deadline_ms(HmmvdControl *control, guint deadline_ms)
{
  control->request_deadline_ms = deadline_ms;
}

void
hmmvd_control_set_host_tiering(HmmvdControl *control, const char *root, const char *run_dir)
{
  g_free(control->tiering_root);
  g_free(control->tiering_run_dir);
  control->tiering_root = g_strdup(root);
  control->tiering_run_dir = g_strdup(run_dir);
}

void
hmmvd_control_free(HmmvdControl *control)
{
  if (control == NULL)
    return;
  g_cancellable_cancel(control->cancellable);
  if (control->service != NULL) {
    g_socket_service_stop(control->service);
    g_socket_listener_close(G_SOCKET_LISTENER(control->service));
    g_signal_handlers_disconnect_by_data(control->service, control);
    g_object_unref(control->service);
  }
  if (control->path != NULL)
    unlink(control->path);
  g_object_unref(control->cancellable);
  g_free(control->mover_name);
  g_free(control->path);
  g_free(control->tiering_root);
  g_free(control->tiering_run_dir);
  g_free(control);
}
