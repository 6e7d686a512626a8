/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP: command building and reply parsing (json-glib), and what every transport shares. The
 * Unix socket transport is qmp-socket.c.
 */
#include <hmmv/error.h>
#include <hmmv/json.h>
#include <hmmv/qmp.h>

#include <string.h>

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
hmmv_qmp_get_commands_sent(HmmvQmp *qmp, guint64 *sent)
{
  return qmp->ops->commands_sent != NULL && qmp->ops->commands_sent(qmp, sent);
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
