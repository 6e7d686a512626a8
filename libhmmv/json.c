/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Bounded JSON parsing of peer text (see hmmv/json.h).
 */
#include <hmmv/error.h>
#include <hmmv/json.h>

#include <string.h>

static gboolean
is_scalar_byte(char c)
{
  /* Numbers and the literals true, false, null; json-glib reports anything else wrong. */
  return g_ascii_isalnum(c) || c == '-' || c == '+' || c == '.';
}

gboolean
hmmv_json_check_text(const char *text, gsize len, guint max_depth, GError **error)
{
  gboolean in_string = FALSE, escaped = FALSE, in_scalar = FALSE, seen_value = FALSE;
  guint depth = 0;

  if (memchr(text, '\0', len) != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "JSON text holds a NUL byte");
    return FALSE;
  }
  for (gsize i = 0; i < len; i++) {
    char c = text[i];

    if (in_string) {
      if (escaped)
        escaped = FALSE;
      else if (c == '\\')
        escaped = TRUE;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      in_scalar = FALSE;
      continue;
    }
    if (c != '{' && c != '}' && c != '[' && c != ']' && c != ':' && c != ',' && c != '"' &&
        !is_scalar_byte(c)) {
      /* A comment or a single-quoted string could hide brackets from this count. */
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                  "JSON text has an unexpected byte 0x%02x at offset %" G_GSIZE_FORMAT,
                  (guint)(guchar)c, i);
      return FALSE;
    }
    if (depth == 0 && !(in_scalar && is_scalar_byte(c))) {
      if (seen_value) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                    "trailing data after the JSON value at offset %" G_GSIZE_FORMAT, i);
        return FALSE;
      }
      seen_value = TRUE;
    }
    in_scalar = FALSE;
    switch (c) {
    case '"':
      in_string = TRUE;
      break;
    case '{':
    case '[':
      if (++depth > max_depth) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                    "JSON nested deeper than %u levels at offset %" G_GSIZE_FORMAT, max_depth,
                    i);
        return FALSE;
      }
      break;
    case '}':
    case ']':
      if (depth > 0)
        depth--;
      break;
    default:
      in_scalar = depth == 0 && is_scalar_byte(c);
      break;
    }
  }
  return TRUE;
}

JsonNode *
hmmv_json_parse(const char *text, gsize len, GError **error)
{
  g_autoptr(JsonParser) parser = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonNode *root;

  if (!hmmv_json_check_text(text, len, HMMV_JSON_MAX_DEPTH, error))
    return NULL;
  parser = json_parser_new();
  if (!json_parser_load_from_data(parser, text, (gssize)len, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "%s", local_error->message);
    return NULL;
  }
  root = json_parser_steal_root(parser);
  if (root == NULL)
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "empty JSON text");
  return root;
}
