/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: reading a recorded setup, and generating synthetic ones for tests. */
#include "setup.h"
#include "synth.h"

#include <glib/gstdio.h>
#include <hmmv/error.h>
#include <hmmv/json.h>
#include <hmmv/vm.h>
#include <string.h>

void
corun_setup_file_free(CorunSetupFile *sf)
{
  if (sf == NULL)
    return;
  for (guint v = 0; v < sf->setup.nr_vms; v++) {
    g_free(sf->setup.vms[v].name);
    g_free(sf->setup.vms[v].workload);
    g_free(sf->setup.vms[v].trace_path);
  }
  g_free(sf->setup.vms);
  g_free(sf->name);
  g_free(sf->dir);
  g_free(sf);
}

static gboolean
valid_name(const char *name)
{
  gsize len = strlen(name);

  if (len == 0 || len > 64)
    return FALSE;
  for (const char *c = name; *c; c++)
    if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_' && *c != '.')
      return FALSE;
  return TRUE;
}

static const char *
get_string(JsonObject *obj, const char *member, gboolean required, GError **error)
{
  JsonNode *node = json_object_get_member(obj, member);

  if (node == NULL && !required)
    return NULL;
  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_STRING) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "\"%s\" must be a string", member);
    return NULL;
  }
  return json_node_get_string(node);
}

static gboolean
get_int(JsonObject *obj, const char *member, gint64 min, gint64 max, gint64 def, gint64 *out,
        GError **error)
{
  JsonNode *node = json_object_get_member(obj, member);

  if (node == NULL && def >= 0) {
    *out = def;
    return TRUE;
  }
  if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
      json_node_get_value_type(node) != G_TYPE_INT64 ||
      json_node_get_int(node) < min || json_node_get_int(node) > max) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "\"%s\" must be an integer in %" G_GINT64_FORMAT "..%" G_GINT64_FORMAT, member,
                min, max);
    return FALSE;
  }
  *out = json_node_get_int(node);
  return TRUE;
}

/* "start_slow": [first, count], a range of the trace's pages (optional) */
static gboolean
get_start_slow(JsonObject *obj, CorunVmInfo *info, GError **error)
{
  JsonNode *node = json_object_get_member(obj, "start_slow");
  JsonArray *a = node != NULL && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
  gint64 v[2];

  if (node == NULL)
    return TRUE;
  if (a == NULL || json_array_get_length(a) != 2)
    goto bad;
  for (guint i = 0; i < 2; i++) {
    JsonNode *e = json_array_get_element(a, i);

    if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_INT64 ||
        json_node_get_int(e) < 0 || (guint64)json_node_get_int(e) > info->nr_pages)
      goto bad;
    v[i] = json_node_get_int(e);
  }
  if ((guint64)v[0] + (guint64)v[1] > info->nr_pages)
    goto bad;
  info->start_slow_first = (guint64)v[0];
  info->start_slow_pages = (guint64)v[1];
  return TRUE;
bad:
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
              "\"start_slow\" must be [first, count], a range of the trace's %" G_GUINT64_FORMAT
              " pages", info->nr_pages);
  return FALSE;
}

static gboolean
load_vm(CorunSetupFile *sf, CorunVmInfo *info, JsonNode *node, GError **error)
{
  JsonObject *obj = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
  const char *name, *trace, *workload;
  g_autoptr(HmmvTraceReader) reader = NULL;
  const HmmvTraceInfo *ti;
  JsonNode *halted;
  gint64 weight, min_mib, max_mib;

  if (obj == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "a VM must be an object");
    return FALSE;
  }
  name = get_string(obj, "name", TRUE, error);
  if (name == NULL)
    return FALSE;
  if (!valid_name(name)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "VM name '%s' is not 1-64 characters of [A-Za-z0-9._-]", name);
    return FALSE;
  }
  info->name = g_strdup(name);
  trace = get_string(obj, "trace", TRUE, error);
  /* the bounds of virsh metadata's weight; MiB up to 1 TiB */
  if (trace == NULL || !get_int(obj, "weight", 1, 10000, 100, &weight, error) ||
      !get_int(obj, "dram_min_mib", 0, 1 << 20, 0, &min_mib, error) ||
      !get_int(obj, "dram_max_mib", 0, 1 << 20, 0, &max_mib, error)) {
    g_prefix_error(error, "vm %s: ", name);
    return FALSE;
  }
  halted = json_object_get_member(obj, "halted");
  if (halted != NULL && (!JSON_NODE_HOLDS_VALUE(halted) ||
                         json_node_get_value_type(halted) != G_TYPE_BOOLEAN)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "vm %s: \"halted\" must be true or false",
                name);
    return FALSE;
  }
  info->halted = halted != NULL && json_node_get_boolean(halted);
  workload = get_string(obj, "workload", FALSE, NULL);
  info->workload = g_strdup(workload ? workload : "");
  info->weight = (guint)weight;
  if (max_mib != 0 && min_mib > max_mib) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "vm %s: dram_min_mib %" G_GINT64_FORMAT " is above dram_max_mib %"
                G_GINT64_FORMAT, name, min_mib, max_mib);
    return FALSE;
  }
  info->dram_min_pages = (guint64)min_mib << (20 - HMMV_PAGE_SHIFT);
  info->dram_max_pages = (guint64)max_mib << (20 - HMMV_PAGE_SHIFT);
  info->trace_path = g_path_is_absolute(trace) ? g_strdup(trace)
                                               : g_build_filename(sf->dir, trace, NULL);
  reader = hmmv_trace_reader_new(info->trace_path, error);
  if (reader == NULL) {
    g_prefix_error(error, "vm %s: ", name);
    return FALSE;
  }
  ti = hmmv_trace_reader_get_info(reader);
  if ((ti->flags & HMMV_TRACE_HAS_READS) == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "vm %s: %s has no read counts (HMMV_TRACE_HAS_READS): the model needs every "
                "LLC miss", name, info->trace_path);
    return FALSE;
  }
  if (ti->nr_pages == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "vm %s: the trace covers no pages", name);
    return FALSE;
  }
  info->nr_pages = ti->nr_pages;
  if (!get_start_slow(obj, info, error)) {
    g_prefix_error(error, "vm %s: ", name);
    return FALSE;
  }
  sf->total_pages += ti->nr_pages;
  return TRUE;
}

/* "numa_balancing": {"scan_period_ms": N, "high_wmark_pages": N, "promo_wmark_pages": N,
 * "hint_fault_us": N}, each optional (0 or absent: the policy's default) */
static gboolean
get_nb_state(JsonObject *obj, CorunNumaBalancingState *nb, GError **error)
{
  JsonNode *node = json_object_get_member(obj, "numa_balancing");
  JsonObject *o;
  gint64 period, high, promo, fault_us;

  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT(node)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "\"numa_balancing\" must be an object");
    return FALSE;
  }
  o = json_node_get_object(node);
  /* the kernel's bounds: scan_period_max_ms 60000 by default; watermarks up to 1 TiB */
  if (!get_int(o, "scan_period_ms", 0, 3600 * 1000, 0, &period, error) ||
      !get_int(o, "high_wmark_pages", 0, 1ll << 28, 0, &high, error) ||
      !get_int(o, "promo_wmark_pages", 0, 1ll << 28, 0, &promo, error) ||
      !get_int(o, "hint_fault_us", 0, 1000000, 0, &fault_us, error)) {
    g_prefix_error(error, "numa_balancing: ");
    return FALSE;
  }
  if (promo != 0 && promo < high) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "numa_balancing: promo_wmark_pages %" G_GINT64_FORMAT " is below high_wmark_pages %"
                G_GINT64_FORMAT, promo, high);
    return FALSE;
  }
  nb->scan_period_ms = (guint)period;
  nb->high_wmark_pages = (guint64)high;
  nb->promo_wmark_pages = (guint64)promo;
  nb->hint_fault_us = (guint)fault_us;
  return TRUE;
}

CorunSetupFile *
corun_setup_load(const char *dir, GError **error)
{
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *text = NULL;
  g_autoptr(CorunSetupFile) sf = g_new0(CorunSetupFile, 1);
  g_autoptr(JsonNode) root = NULL;
  JsonObject *obj;
  JsonNode *vms;
  JsonArray *array;
  const char *name;
  GStatBuf st;
  gsize len;
  gint64 interval_ms;

  sf->dir = g_strdup(dir);
  if (g_stat(path, &st) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "%s: %s", path, g_strerror(errno));
    return NULL;
  }
  if (st.st_size > CORUN_MAX_MANIFEST_BYTES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "%s: larger than %u bytes", path,
                CORUN_MAX_MANIFEST_BYTES);
    return NULL;
  }
  if (!g_file_get_contents(path, &text, &len, error))
    return NULL;
  root = hmmv_json_parse(text, len, error);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    if (root != NULL)
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "not a JSON object");
    g_prefix_error(error, "%s: ", path);
    return NULL;
  }
  obj = json_node_get_object(root);
  name = get_string(obj, "setup", TRUE, error);
  if (name == NULL || !get_int(obj, "interval_ms", 1, 3600 * 1000, -1, &interval_ms, error)) {
    g_prefix_error(error, "%s: ", path);
    return NULL;
  }
  sf->name = g_strdup(name);
  sf->setup.interval_ms = (guint)interval_ms;
  if (!get_nb_state(obj, &sf->setup.nb, error)) {
    g_prefix_error(error, "%s: ", path);
    return NULL;
  }
  vms = json_object_get_member(obj, "vms");
  if (vms == NULL || !JSON_NODE_HOLDS_ARRAY(vms) ||
      json_array_get_length(json_node_get_array(vms)) == 0 ||
      json_array_get_length(json_node_get_array(vms)) > CORUN_MAX_VMS) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "%s: \"vms\" must be an array of 1-%u",
                path, CORUN_MAX_VMS);
    return NULL;
  }
  array = json_node_get_array(vms);
  sf->setup.vms = g_new0(CorunVmInfo, json_array_get_length(array));
  for (guint v = 0; v < json_array_get_length(array); v++) {
    sf->setup.nr_vms = v + 1;
    if (!load_vm(sf, &sf->setup.vms[v], json_array_get_element(array, v), error)) {
      g_prefix_error(error, "%s: ", path);
      return NULL;
    }
    for (guint w = 0; w < v; w++)
      if (g_strcmp0(sf->setup.vms[w].name, sf->setup.vms[v].name) == 0) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "%s: two VMs named %s", path,
                    sf->setup.vms[v].name);
        return NULL;
      }
  }
  return g_steal_pointer(&sf);
}

gboolean
corun_setup_touched_pages(const CorunSetup *setup, guint64 max_intervals, guint64 *touched,
                          GError **error)
{
  *touched = 0;
  for (guint v = 0; v < setup->nr_vms; v++) {
    g_autoptr(HmmvTraceReader) r = hmmv_trace_reader_new(setup->vms[v].trace_path, error);
    g_autofree guint8 *seen = NULL;
    const HmmvTraceEntry *e;
    gsize n;
    guint64 c, k = 0;

    if (r == NULL)
      return FALSE;
    seen = g_new0(guint8, setup->vms[v].nr_pages);
    while ((max_intervals == 0 || k < max_intervals) && hmmv_trace_reader_next(r, &e, &n, &c,
                                                                                error)) {
      for (gsize i = 0; i < n; i++) {
        /* the reader checked page < nr_pages */
        *touched += seen[e[i].page] == 0;
        seen[e[i].page] = 1;
      }
      k++;
    }
    if (error != NULL && *error != NULL) {
      g_prefix_error(error, "vm %s: ", setup->vms[v].name);
      return FALSE;
    }
  }
  return TRUE;
}

/* VM i of a synthetic setup: corun-sim's four VMs (hot %, touched %, written %). */
static const CorunSynthSpec gen_specs[] = {
  { 10, 4, 30 }, { 20, 6, 60 }, { 40, 12, 80 }, { 5, 1, 20 },
};

typedef struct {
  guint32 *reads, *writes;
} GenCounts;

/* A hot touch is 2048 LLC misses, a cold one 64. */
static void
gen_touch(gpointer data, guint64 page, gboolean hot, gboolean write)
{
  GenCounts *c = data;
  guint32 n = hot ? 2048 : 64;

  if (write)
    c->writes[page] += n;
  else
    c->reads[page] += n;
}

static gboolean
generate_vm(const char *path, guint index, guint64 nr_pages, guint intervals, guint64 seed,
            GError **error)
{
  HmmvTraceInfo info = { .nr_pages = nr_pages, .interval_ms = 10,
                         .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(HmmvTraceWriter) writer = hmmv_trace_writer_new(path, &info, error);
  const CorunSynthSpec *spec = &gen_specs[index % G_N_ELEMENTS(gen_specs)];
  g_autofree guint32 *reads = g_new0(guint32, nr_pages);
  g_autofree guint32 *writes = g_new0(guint32, nr_pages);
  g_autoptr(GArray) entries = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
  guint64 rng = seed * 0x9e3779b97f4a7c15u + index + 1;
  GenCounts counts = { reads, writes };

  if (writer == NULL)
    return FALSE;
  for (guint k = 0; k < intervals; k++) {
    guint64 misses = 0;

    memset(reads, 0, nr_pages * sizeof(guint32));
    memset(writes, 0, nr_pages * sizeof(guint32));
    corun_synth_interval(spec, nr_pages, k, &rng, gen_touch, &counts);
    g_array_set_size(entries, 0);
    for (guint64 p = 0; p < nr_pages; p++)
      if (reads[p] != 0 || writes[p] != 0) {
        HmmvTraceEntry e = { p, reads[p], writes[p], 0 };

        g_array_append_val(entries, e);
        misses += reads[p] + writes[p];
      }
    /* 20 ns of other work per miss: a memory-bound guest (about as much compute as stall on
     * all-DRAM at mlp 4); ~300k misses an interval for VM 0 of 4096 pages */
    if (!hmmv_trace_writer_add_interval(writer, misses * 20, (HmmvTraceEntry *)entries->data,
                                        entries->len, error))
      return FALSE;
  }
  return hmmv_trace_writer_close(writer, error);
}

gboolean
corun_setup_generate(const char *dir, guint nr_vms, guint64 nr_pages, guint intervals,
                     guint64 seed, GError **error)
{
  g_autoptr(GString) json = g_string_new("{\"setup\": \"synthetic\", \"interval_ms\": 10, "
                                         "\"vms\": [");
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);

  if (nr_vms == 0 || nr_vms > CORUN_MAX_VMS || nr_pages == 0 || intervals == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "a synthetic setup needs 1-%u VMs, pages and intervals", CORUN_MAX_VMS);
    return FALSE;
  }
  if (g_mkdir_with_parents(dir, 0755) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "%s: %s", dir, g_strerror(errno));
    return FALSE;
  }
  for (guint v = 0; v < nr_vms; v++) {
    g_autofree char *file = g_strdup_printf("vm%u.trace", v);
    g_autofree char *trace = g_build_filename(dir, file, NULL);

    if (!generate_vm(trace, v, nr_pages, intervals, seed, error))
      return FALSE;
    g_string_append_printf(json, "%s{\"name\": \"vm%u\", \"workload\": \"synthetic-%u\", "
                           "\"trace\": \"%s\", \"ram_mib\": %" G_GUINT64_FORMAT "}",
                           v ? ", " : "", v, v % (guint)G_N_ELEMENTS(gen_specs), file,
                           nr_pages >> 8);
  }
  g_string_append(json, "]}\n");
  return g_file_set_contents(path, json->str, (gssize)json->len, error);
}
