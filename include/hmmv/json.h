/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: parsing JSON text that a peer sent (QEMU's QMP, hmmvctl's control requests).
 *
 * json-glib parses recursively and, in 1.6, accepts several top-level values, comments and
 * single-quoted strings. So before json-glib sees the text, one pass without allocation
 * checks what a peer must not be able to do: nest deeper than HMMV_JSON_MAX_DEPTH (json-glib
 * overflows the stack at ~75,000 levels), and write anything after the first value (json-glib
 * keeps the first value and leaks the rest: 2.3 MiB per such control request).
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* The deepest a QMP reply hmmv reads goes is 4 (return, block list, block, range list);
 * a control request 2. */
#define HMMV_JSON_MAX_DEPTH 32u

/* TRUE when text (len bytes, no NUL inside) is at most max_depth deep, holds one value and
 * nothing but whitespace after it, and uses no comments or single quotes outside strings.
 * Otherwise FALSE with HMMV_ERROR_PROTOCOL saying what and where. The JSON grammar proper is
 * left to json-glib. */
gboolean hmmv_json_check_text(const char *text, gsize len, guint max_depth, GError **error);

/* hmmv_json_check_text() with HMMV_JSON_MAX_DEPTH, then json-glib: the root node (owned by
 * the caller), or NULL with HMMV_ERROR_PROTOCOL. */
JsonNode *hmmv_json_parse(const char *text, gsize len, GError **error);

G_END_DECLS
