/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source: what it reads from XML and files (nodesets, numatune, QEMU's pid).
 * No libvirt calls here, so tests can feed it text.
 */
#include "libvirt.h"

#include <string.h>

static void
replace_str(char **slot, const char *value)
{
  char *old = *slot;

  *slot = g_strdup(value);
  g_free(old);
}

static gboolean
parse_node_id(char *text, guint64 *id, GError **error)
{
  /* 65535: far above any kernel's MAX_NUMNODES (1024), still a bound on what a file says. */
  if (!g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, 65535, id, error)) {
    g_prefix_error(error, "nodeset: ");
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmvd_libvirt_parse_nodeset(const char *nodeset, guint64 *mask, GError **error)
{
  g_auto(GStrv) items = g_strsplit(nodeset, ",", -1);
  guint64 set = 0, clear = 0;

  if (nodeset[0] == '\0') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "nodeset: empty");
    return FALSE;
  }

  for (char **item = items; *item != NULL; item++) {
    gboolean negate = FALSE;
    guint64 lo, hi;
    g_autofree char *text = g_strdup(g_strstrip(*item));
    char *dash;

    if (text[0] == '^') {
      negate = TRUE;
      memmove(text, text + 1, strlen(text));
    }
    dash = strchr(text, '-');
    if (dash != NULL)
      *dash = '\0';
    if (!parse_node_id(text, &lo, error))
      return FALSE;
    hi = lo;
    if (dash != NULL && (negate || !parse_node_id(dash + 1, &hi, error) || hi < lo)) {
      if (error != NULL && *error == NULL)
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                    "nodeset: bad range in \"%s\"", nodeset);
      return FALSE;
    }
    for (guint64 id = lo; id <= hi && id < 64; id++) {
      if (negate)
        clear |= G_GUINT64_CONSTANT(1) << id;
      else
        set |= G_GUINT64_CONSTANT(1) << id;
    }
  }
  *mask = set & ~clear;
  return TRUE;
}

typedef struct {
  GSList *stack;                /* element names, innermost first (not owned) */
  char *mode;
  char *nodeset;
  char *status_pid;
} XmlScan;

static void
xml_scan_start(GMarkupParseContext *context, const char *element, const char **names,
               const char **values, gpointer user_data, GError **error)
{
  XmlScan *scan = user_data;
  const char *parent = scan->stack != NULL ? scan->stack->data : NULL;
  const char *grandparent = parent != NULL && scan->stack->next != NULL
                                ? scan->stack->next->data : NULL;

  if (g_strcmp0(element, "memory") == 0 && g_strcmp0(parent, "numatune") == 0 &&
      g_strcmp0(grandparent, "domain") == 0) {
    for (guint i = 0; names[i] != NULL; i++) {
      if (strcmp(names[i], "mode") == 0)
        replace_str(&scan->mode, values[i]);
      else if (strcmp(names[i], "nodeset") == 0)
        replace_str(&scan->nodeset, values[i]);
    }
  }
  if (g_strcmp0(element, "domstatus") == 0 && parent == NULL) {
    for (guint i = 0; names[i] != NULL; i++)
      if (strcmp(names[i], "pid") == 0)
        replace_str(&scan->status_pid, values[i]);
  }
  scan->stack = g_slist_prepend(scan->stack, (gpointer)g_markup_parse_context_get_element(context));
}

static void
xml_scan_end(GMarkupParseContext *context, const char *element, gpointer user_data,
             GError **error)
{
  XmlScan *scan = user_data;

  scan->stack = g_slist_delete_link(scan->stack, scan->stack);
}

static void
xml_scan_clear(XmlScan *scan)
{
  g_slist_free(scan->stack);
  g_free(scan->mode);
  g_free(scan->nodeset);
  g_free(scan->status_pid);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(XmlScan, xml_scan_clear)

static gboolean
xml_scan(const char *xml, XmlScan *scan, GError **error)
{
  static const GMarkupParser parser = {
    .start_element = xml_scan_start,
    .end_element = xml_scan_end,
  };
  g_autoptr(GMarkupParseContext) context =
    g_markup_parse_context_new(&parser, G_MARKUP_IGNORE_QUALIFIED, scan, NULL);

  return g_markup_parse_context_parse(context, xml, -1, error) &&
         g_markup_parse_context_end_parse(context, error);
}

char *
hmmvd_libvirt_numatune_conflict(const char *domain_xml, const HmmvTopology *topo)
{
  g_auto(XmlScan) scan = { 0 };
  g_autoptr(GError) local_error = NULL;
  const char *mode;
  guint64 mask, dram = 0, slow = 0;

  /* With several sockets a domain bound to one socket's nodes (e.g. 1 and 3) is managed: its
   * pages go to that socket's DRAM and slow node. Only a nodeset without any DRAM node or
   * without any slow node leaves hmmv nothing to move its pages between. */
  for (guint i = 0; i < hmmv_topology_get_nr_nodes(topo); i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);

    if (node->tier == HMMV_TIER_DRAM)
      dram |= G_GUINT64_CONSTANT(1) << node->id;
    else
      slow |= G_GUINT64_CONSTANT(1) << node->id;
  }

  if (!xml_scan(domain_xml, &scan, &local_error))
    return g_strdup_printf("cannot read the domain XML: %s", local_error->message);
  if (scan.nodeset == NULL)
    return NULL;                          /* no numatune, or placement='auto' with no set */
  /* libvirt's default mode is strict. preferred only states a first choice. */
  mode = scan.mode != NULL ? scan.mode : "strict";
  if (strcmp(mode, "preferred") == 0)
    return NULL;
  if (!hmmvd_libvirt_parse_nodeset(scan.nodeset, &mask, &local_error))
    return g_strdup_printf("numatune: %s", local_error->message);
  if (slow != 0 && (mask & slow) == 0)
    return g_strdup_printf("numatune mode=%s nodeset=%s forbids every slow node: "
                           "hmmv does not move this VM's pages", mode, scan.nodeset);
  if (dram != 0 && (mask & dram) == 0)
    return g_strdup_printf("numatune mode=%s nodeset=%s forbids every DRAM node: "
                           "hmmv does not move this VM's pages", mode, scan.nodeset);
  return NULL;
}

guint64
hmmvd_libvirt_numatune_nodes(const char *domain_xml)
{
  g_auto(XmlScan) scan = { 0 };
  guint64 mask = 0;

  if (!xml_scan(domain_xml, &scan, NULL) || scan.nodeset == NULL)
    return 0;
  if (scan.mode != NULL && strcmp(scan.mode, "preferred") == 0)
    return 0;
  return hmmvd_libvirt_parse_nodeset(scan.nodeset, &mask, NULL) ? mask : 0;
}

static gboolean
parse_pid(const char *text, const char *path, int *pid, GError **error)
{
  g_autofree char *copy = g_strstrip(g_strdup(text));
  guint64 value;

  if (!g_ascii_string_to_unsigned(copy, 10, 1, G_MAXINT, &value, error)) {
    g_prefix_error(error, "%s: ", path);
    return FALSE;
  }
  *pid = (int)value;
  return TRUE;
}

gboolean
hmmvd_libvirt_read_pid(const char *run_dir, const char *name, int *pid, GError **error)
{
  g_autofree char *pid_name = g_strconcat(name, ".pid", NULL);
  g_autofree char *xml_name = g_strconcat(name, ".xml", NULL);
  g_autofree char *pid_path = g_build_filename(run_dir, pid_name, NULL);
  g_autofree char *xml_path = g_build_filename(run_dir, xml_name, NULL);
  g_autofree char *text = NULL;
  g_auto(XmlScan) scan = { 0 };

  if (strchr(name, '/') != NULL || strcmp(name, "..") == 0 || strcmp(name, ".") == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "domain name \"%s\" is not a file name", name);
    return FALSE;
  }
  if (g_file_get_contents(pid_path, &text, NULL, NULL))
    return parse_pid(text, pid_path, pid, error);
  if (!g_file_get_contents(xml_path, &text, NULL, error)) {
    g_prefix_error(error, "no %s, and: ", pid_path);
    return FALSE;
  }
  if (!xml_scan(text, &scan, error)) {
    g_prefix_error(error, "%s: ", xml_path);
    return FALSE;
  }
  if (scan.status_pid == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "%s: no <domstatus pid=...>",
                xml_path);
    return FALSE;
  }
  return parse_pid(scan.status_pid, xml_path, pid, error);
}
