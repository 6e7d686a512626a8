/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The per-VM quota in libvirt domain metadata:
 *
 *   <memory xmlns="https://hmmv.dev/ns/quota/1" dram-min-mib="256" dram-max-mib="1024"
 *           weight="100" managed="yes">
 *     <exclude backend="ram-node1"/>
 *   </memory>
 *
 * Each <exclude> names a memory backend (id) or RAM block that hmmv leaves alone: not
 * tracked, not moved, not counted (hmmv_qemu_vm_new_excluding; README "Excluded backends").
 *
 * libvirt hands the element back with its namespace either as a default namespace or bound to
 * a prefix (<hmmv:memory xmlns:hmmv="...">), so only the local name is compared. Parsed with
 * GMarkup; anything else in the document (children, text, unknown attributes, a foreign
 * namespace) is an error that says what was wrong.
 */
#include "quota.h"

#include <string.h>

/* A quota element is ~150 bytes; anything near this bound is not ours. */
#define QUOTA_MAX_XML_BYTES (64u * 1024u)

typedef struct {
  HmmvQuota quota;
  guint depth;
  guint roots;
  GPtrArray *exclude;           /* char *, NULL-ended at the end */
  gboolean exclude_only;        /* <memory>'s quota attributes are not looked at */
} QuotaParse;

gboolean
hmmvd_quota_parse_mib(const char *text, guint64 *pages, GError **error)
{
  guint64 mib;

  if (text == NULL || *text == '\0') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "empty value, expected MiB");
    return FALSE;
  }
  if (*text == '-') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "\"%s\" is negative", text);
    return FALSE;
  }
  for (const char *c = text; *c != '\0'; c++) {
    if (!g_ascii_isdigit(*c)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "\"%s\" is not a whole number of MiB", text);
      return FALSE;
    }
  }
  if (!g_ascii_string_to_unsigned(text, 10, 0, HMMVD_QUOTA_MAX_MIB, &mib, NULL)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%s MiB is too large (at most %" G_GUINT64_FORMAT " MiB)", text,
                HMMVD_QUOTA_MAX_MIB);
    return FALSE;
  }
  *pages = mib * HMMVD_PAGES_PER_MIB;
  return TRUE;
}

static gboolean
parse_weight(const char *text, guint *weight, GError **error)
{
  guint64 value;

  for (const char *c = text; *c != '\0'; c++) {
    if (!g_ascii_isdigit(*c)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "weight \"%s\" is not a whole number in 1..%u", text, HMMVD_QUOTA_MAX_WEIGHT);
      return FALSE;
    }
  }
  if (!g_ascii_string_to_unsigned(text, 10, 1, HMMVD_QUOTA_MAX_WEIGHT, &value, NULL)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "weight \"%s\" is out of range 1..%u", text, HMMVD_QUOTA_MAX_WEIGHT);
    return FALSE;
  }
  *weight = (guint)value;
  return TRUE;
}

static gboolean
parse_attribute(QuotaParse *qp, const char *name, const char *value, GError **error)
{
  if (strcmp(name, "dram-min-mib") == 0 || strcmp(name, "dram-max-mib") == 0) {
    guint64 *pages = strcmp(name, "dram-min-mib") == 0 ? &qp->quota.min_pages
                                                       : &qp->quota.max_pages;

    if (!hmmvd_quota_parse_mib(value, pages, error)) {
      g_prefix_error(error, "%s: ", name);
      return FALSE;
    }
    return TRUE;
  }
  if (strcmp(name, "weight") == 0)
    return parse_weight(value, &qp->quota.weight, error);
  if (strcmp(name, "managed") == 0) {
    if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "managed=\"%s\": expected yes or no", value);
      return FALSE;
    }
    qp->quota.managed = value[0] == 'y';
    return TRUE;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
              "unknown attribute %s (known: dram-min-mib, dram-max-mib, weight, managed)", name);
  return FALSE;
}

/* xmlns="..." or xmlns:P="..." binding the element's own prefix must be hmmv's namespace;
 * other namespace declarations are ignored. Returns TRUE when name was a declaration. */
static gboolean
check_namespace(const char *element, const char *name, const char *value, GError **error)
{
  const char *colon = strchr(element, ':');
  g_autofree char *prefix = colon ? g_strndup(element, (gsize)(colon - element)) : NULL;
  gboolean binds_element;

  if (strcmp(name, "xmlns") == 0)
    binds_element = prefix == NULL;
  else if (g_str_has_prefix(name, "xmlns:"))
    binds_element = prefix != NULL && strcmp(name + 6, prefix) == 0;
  else
    return FALSE;
  if (binds_element && strcmp(value, HMMVD_METADATA_URI) != 0)
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "element <%s> is in namespace %s, not hmmv's %s", element, value,
                HMMVD_METADATA_URI);
  return TRUE;
}

gboolean
hmmvd_quota_check_backend(const char *name, GError **error)
{
  gsize len = strlen(name);

  if (len == 0 || len > HMMVD_EXCLUDE_MAX_NAME) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "exclude: a backend name is 1..%u characters, not %" G_GSIZE_FORMAT,
                HMMVD_EXCLUDE_MAX_NAME, len);
    return FALSE;
  }
  /* QEMU's ids are letters, digits, '-', '.', '_'; RAM block names add '/' and ':'
   * (0000:00:03.0/vmem0) */
  for (const char *c = name; *c != '\0'; c++) {
    if (!g_ascii_isalnum(*c) && strchr("-._/:[]", *c) == NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "exclude: backend name \"%s\" holds '%c' (a memory backend's id or a RAM "
                  "block's name: letters, digits, - . _ / : [ ])", name, *c);
      return FALSE;
    }
  }
  return TRUE;
}

/* <exclude backend="NAME"/>: one name each, no repeats. */
static void
parse_exclude(QuotaParse *qp, const char *element, const char **names, const char **values,
              GError **error)
{
  const char *backend = NULL;

  for (guint i = 0; names[i] != NULL; i++) {
    GError *ns_error = NULL;

    if (check_namespace(element, names[i], values[i], &ns_error)) {
      if (ns_error != NULL) {
        g_propagate_error(error, ns_error);
        return;
      }
      continue;
    }
    if (strcmp(names[i], "backend") != 0 || backend != NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "<exclude>: %s attribute %s (known: backend, once)",
                  backend != NULL && strcmp(names[i], "backend") == 0 ? "repeated" : "unknown",
                  names[i]);
      return;
    }
    backend = values[i];
  }
  if (backend == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "<exclude> without backend=\"NAME\"");
    return;
  }
  if (!hmmvd_quota_check_backend(backend, error))
    return;
  for (guint i = 0; i < qp->exclude->len; i++) {
    if (strcmp(g_ptr_array_index(qp->exclude, i), backend) == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "exclude: backend %s is named twice", backend);
      return;
    }
  }
  if (qp->exclude->len >= HMMVD_EXCLUDE_MAX) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "exclude: more than %u backends", HMMVD_EXCLUDE_MAX);
    return;
  }
  g_ptr_array_add(qp->exclude, g_strdup(backend));
}

static void
quota_start_element(GMarkupParseContext *context, const char *element, const char **names,
                    const char **values, gpointer user_data, GError **error)
{
  QuotaParse *qp = user_data;
  const char *colon = strchr(element, ':');
  const char *local = colon != NULL ? colon + 1 : element;

  if (qp->depth == 1 && strcmp(local, "exclude") == 0) {
    qp->depth++;
    parse_exclude(qp, element, names, values, error);
    return;
  }
  if (qp->depth++ > 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "unexpected element <%s> inside <%s> (known: <exclude backend=\"NAME\"/> "
                "inside <memory>)", element, qp->depth > 2 ? "exclude" : "memory");
    return;
  }
  if (qp->roots++ > 0 || strcmp(local, "memory") != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "unexpected element <%s>: expected one <memory> element", element);
    return;
  }
  for (guint i = 0; names[i] != NULL; i++) {
    GError *ns_error = NULL;

    for (guint j = 0; j < i && !qp->exclude_only; j++) {
      if (strcmp(names[i], names[j]) == 0) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                    "attribute %s is given twice", names[i]);
        return;
      }
    }

    if (check_namespace(element, names[i], values[i], &ns_error)) {
      if (ns_error != NULL) {
        g_propagate_error(error, ns_error);
        return;
      }
      continue;
    }
    if (!qp->exclude_only && !parse_attribute(qp, names[i], values[i], error))
      return;
  }
}

static void
quota_end_element(GMarkupParseContext *context, const char *element, gpointer user_data,
                  GError **error)
{
  ((QuotaParse *)user_data)->depth--;
}

static void
quota_text(GMarkupParseContext *context, const char *text, gsize len, gpointer user_data,
           GError **error)
{
  for (gsize i = 0; i < len; i++) {
    if (!g_ascii_isspace(text[i])) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "unexpected text in the hmmv metadata element");
      return;
    }
  }
}

static const GMarkupParser quota_parser = {
  .start_element = quota_start_element,
  .end_element = quota_end_element,
  .text = quota_text,
};

gboolean
hmmvd_quota_parse(const char *xml, const HmmvQuota *defaults, HmmvQuota *quota, GError **error)
{
  g_auto(GStrv) exclude = NULL;

  return hmmvd_metadata_parse(xml, defaults, quota, &exclude, error);
}

static gboolean
metadata_parse(const char *xml, const HmmvQuota *defaults, gboolean exclude_only,
               HmmvQuota *quota, char ***exclude, GError **error)
{
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  QuotaParse qp = { .quota = *defaults, .exclude = names, .exclude_only = exclude_only };
  g_autoptr(GMarkupParseContext) context = NULL;
  g_autoptr(GError) local_error = NULL;

  if (xml == NULL || strlen(xml) > QUOTA_MAX_XML_BYTES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "quota metadata is missing or longer than %u bytes", QUOTA_MAX_XML_BYTES);
    return FALSE;
  }
  context = g_markup_parse_context_new(&quota_parser, G_MARKUP_TREAT_CDATA_AS_TEXT, &qp, NULL);
  if (!g_markup_parse_context_parse(context, xml, -1, &local_error) ||
      !g_markup_parse_context_end_parse(context, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "quota metadata: %s",
                local_error->message);
    return FALSE;
  }
  if (qp.roots == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "quota metadata: no <memory> element");
    return FALSE;
  }
  *quota = qp.quota;
  g_ptr_array_add(names, NULL);
  *exclude = (char **)g_ptr_array_steal(names, NULL);
  return TRUE;
}

gboolean
hmmvd_metadata_parse(const char *xml, const HmmvQuota *defaults, HmmvQuota *quota,
                     char ***exclude, GError **error)
{
  return metadata_parse(xml, defaults, FALSE, quota, exclude, error);
}

gboolean
hmmvd_metadata_parse_exclude(const char *xml, char ***exclude, GError **error)
{
  HmmvQuota ignored = { 0 };

  return metadata_parse(xml, &ignored, TRUE, &ignored, exclude, error);
}

char *
hmmvd_quota_format(const HmmvQuota *quota, const char *const *exclude)
{
  g_autoptr(GString) xml = g_string_new(NULL);

  /* No xmlns: virsh metadata --uri/--key and virDomainSetMetadata put the element in hmmv's
   * namespace themselves. The exclusion goes with it: set-quota must not drop it. */
  g_string_append_printf(xml, "<memory dram-min-mib=\"%" G_GUINT64_FORMAT "\" dram-max-mib=\"%"
                         G_GUINT64_FORMAT "\" weight=\"%u\" managed=\"%s\"",
                         quota->min_pages / HMMVD_PAGES_PER_MIB,
                         quota->max_pages / HMMVD_PAGES_PER_MIB, quota->weight,
                         quota->managed ? "yes" : "no");
  if (exclude == NULL || exclude[0] == NULL) {
    g_string_append(xml, "/>");
    return g_string_free(g_steal_pointer(&xml), FALSE);
  }
  g_string_append(xml, ">");
  for (guint i = 0; exclude[i] != NULL; i++) {
    g_autofree char *escaped = g_markup_escape_text(exclude[i], -1);

    g_string_append_printf(xml, "<exclude backend=\"%s\"/>", escaped);
  }
  g_string_append(xml, "</memory>");
  return g_string_free(g_steal_pointer(&xml), FALSE);
}

gboolean
hmmvd_quota_validate(const HmmvQuota *quota, guint64 vm_pages, guint64 pool_pages,
                     GError **error)
{
  const guint64 ppm = HMMVD_PAGES_PER_MIB;

  if (quota->weight < 1 || quota->weight > HMMVD_QUOTA_MAX_WEIGHT) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "weight %u is out of range 1..%u", quota->weight, HMMVD_QUOTA_MAX_WEIGHT);
    return FALSE;
  }
  if (quota->max_pages != 0 && quota->min_pages > quota->max_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "dram-min-mib %" G_GUINT64_FORMAT " is above dram-max-mib %" G_GUINT64_FORMAT,
                quota->min_pages / ppm, quota->max_pages / ppm);
    return FALSE;
  }
  if (pool_pages != 0 && quota->min_pages > pool_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "dram-min-mib %" G_GUINT64_FORMAT " is above the DRAM pool of %"
                G_GUINT64_FORMAT " MiB", quota->min_pages / ppm, pool_pages / ppm);
    return FALSE;
  }
  if (vm_pages != 0 && quota->min_pages > vm_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "dram-min-mib %" G_GUINT64_FORMAT " is above the VM's RAM of %"
                G_GUINT64_FORMAT " MiB", quota->min_pages / ppm, vm_pages / ppm);
    return FALSE;
  }
  return TRUE;
}
