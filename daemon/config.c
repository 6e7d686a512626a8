/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd.conf: a GKeyFile read through a table of every key (group, name, type, field). An
 * unknown group or key, or a bad value, is an error "FILE:LINE: [group] key: why". GKeyFile
 * keeps no line numbers, so the line is found afterwards by a plain scan of the file text for
 * the group header and the key (locating only; GKeyFile did the parsing).
 *
 * Loading is all or nothing: the file is applied to a copy that replaces *config only when
 * every key was good.
 */
#include "config.h"
#include "metrics.h"
#include "quota.h"

#include <stddef.h>
#include <string.h>

/* A configuration file is a few KiB; refuse anything absurd before reading it. */
#define CONFIG_MAX_BYTES (1u << 20)

typedef enum {
  KEY_UINT,         /* guint in [min, max] */
  KEY_MIB,          /* guint64 MiB, stored as is */
  KEY_MIB_PAGES,    /* guint64 MiB, stored as 4 KiB pages */
  KEY_BOOL,         /* gboolean: true/false, yes/no, 1/0 */
  KEY_PATH,         /* absolute path */
  KEY_PATH_OR_EMPTY,/* absolute path or "" (off) */
  KEY_STRING,       /* any non-empty string */
  KEY_ENUM,         /* one of choices */
  KEY_NODES,        /* list of node ids 0..HMMV_MAX_NODE_ID */
  KEY_NODE_MIB,     /* list of NODE:MIB, stored as 4 KiB pages per node id (0 = unset) */
  KEY_LISTEN,       /* HOST:PORT on loopback, or "" (off) */
} KeyType;

typedef struct {
  const char *group;
  const char *key;
  KeyType type;
  gsize offset;
  guint min, max;             /* KEY_UINT */
  const char *const *choices; /* KEY_ENUM */
  gboolean policy;            /* check the whole HmmvParams after setting it */
} KeySpec;

static const char *const log_levels[] = { "error", "critical", "warning", "message", "info",
                                          "debug", NULL };
static const char *const movers[] = { "auto", "numa", "sim", NULL };
static const char *const read_sources[] = { "auto", "damon-vaddr", "idle-page", "damon-paddr",
                                            "none", NULL };

#define FIELD(f) offsetof(HmmvdConfig, f)
#define POLICY(name, f) \
  { "policy", name, KEY_UINT, FIELD(params.f), 0, G_MAXUINT, NULL, TRUE }

static const KeySpec key_specs[] = {
  { "daemon", "interval-ms", KEY_UINT, FIELD(interval_ms), 0, G_MAXUINT, NULL, TRUE },
  { "daemon", "control-socket", KEY_PATH, FIELD(control_socket), 0, 0, NULL, FALSE },
  { "daemon", "log-level", KEY_ENUM, FIELD(log_level), 0, 0, log_levels, FALSE },
  { "libvirt", "enabled", KEY_BOOL, FIELD(libvirt_enabled), 0, 0, NULL, FALSE },
  { "libvirt", "uri", KEY_STRING, FIELD(libvirt_uri), 0, 0, NULL, FALSE },
  /* 100 ms: faster retries only load a libvirtd that is starting; 1 h: surely a typo. */
  { "libvirt", "reconnect-ms", KEY_UINT, FIELD(reconnect_ms), 100, 3600 * 1000, NULL, FALSE },
  { "libvirt", "run-dir", KEY_PATH, FIELD(libvirt_run_dir), 0, 0, NULL, FALSE },
  /* 1: one at a time; 256: beyond libvirtd's own workers (max_workers 20) many times over */
  { "libvirt", "qmp-connections", KEY_UINT, FIELD(qmp_connections), 1, 256, NULL, FALSE },
  { "memory", "dram-pool-mib", KEY_MIB, FIELD(dram_pool_mib), 0, 0, NULL, FALSE },
  { "memory", "mover", KEY_ENUM, FIELD(mover), 0, 0, movers, FALSE },
  { "memory", "slow-nodes", KEY_NODES, FIELD(slow_nodes), 0, 0, NULL, FALSE },
  { "memory", "dram-nodes", KEY_NODES, FIELD(dram_nodes), 0, 0, NULL, FALSE },
  { "memory", "sim-dram-mib", KEY_MIB, FIELD(sim_dram_mib), 0, 0, NULL, FALSE },
  { "memory", "node-pool-mib", KEY_NODE_MIB, FIELD(node_pool_pages), 0, 0, NULL, FALSE },
  { "memory", "node-reserve-mib", KEY_MIB_PAGES, FIELD(node_reserve_pages), 0, 0, NULL, FALSE },
  { "memory", "sim-slow-mib", KEY_MIB, FIELD(sim_slow_mib), 0, 0, NULL, FALSE },
  POLICY("write-weight", write_weight),
  POLICY("read-weight", read_weight),
  POLICY("hysteresis-keys", hysteresis_keys),
  POLICY("cooldown-intervals", cooldown_intervals),
  POLICY("promote-min-key", promote_min_key),
  POLICY("migrate-mbps", migrate_mbps),
  POLICY("host-migrate-mbps", host_migrate_mbps),
  POLICY("move-cost-ns", move_cost_ns),
  POLICY("touch-saving-ns", touch_saving_ns),
  POLICY("move-share-percent", move_share_percent),
  { "defaults", "dram-min-mib", KEY_MIB_PAGES, FIELD(default_quota.min_pages), 0, 0, NULL,
    FALSE },
  { "defaults", "dram-max-mib", KEY_MIB_PAGES, FIELD(default_quota.max_pages), 0, 0, NULL,
    FALSE },
  { "defaults", "weight", KEY_UINT, FIELD(default_quota.weight), 1, HMMVD_QUOTA_MAX_WEIGHT,
    NULL, FALSE },
  { "defaults", "managed", KEY_BOOL, FIELD(default_quota.managed), 0, 0, NULL, FALSE },
  { "reads", "source", KEY_ENUM, FIELD(reads_source), 0, 0, read_sources, FALSE },
  { "reads", "run-dir", KEY_PATH, FIELD(reads_run_dir), 0, 0, NULL, FALSE },
  { "metrics", "listen", KEY_LISTEN, FIELD(metrics_listen), 0, 0, NULL, FALSE },
  { "metrics", "textfile", KEY_PATH_OR_EMPTY, FIELD(metrics_textfile), 0, 0, NULL, FALSE },
};

void
hmmvd_config_init(HmmvdConfig *config)
{
  *config = (HmmvdConfig){ 0 };
  hmmv_params_init(&config->params);
  config->interval_ms = config->params.interval_ms;
  config->control_socket = g_strdup("/run/hmmv/hmmvd.sock");
  config->log_level = g_strdup("message");
  config->libvirt_enabled = TRUE;
  config->libvirt_uri = g_strdup("qemu:///system");
  config->reconnect_ms = 2000;
  config->libvirt_run_dir = g_strdup("/run/libvirt/qemu");
  /* 8 calls at once at most: under half of libvirtd's 20 workers (max_workers), the rest left
   * to everyone else (BENCHMARKS.md, "Many libvirt domains") */
  config->qmp_connections = 8;
  config->dram_pool_mib = 0;
  /* Free memory each node keeps for the host (page cache, QEMU itself, other processes):
   * 256 MiB, about what the kernel's own high watermarks and a few QEMU processes need on a
   * 64-256 GiB socket; hmmv never fills a node below it. */
  config->node_reserve_pages = 256 * HMMVD_PAGES_PER_MIB;
  config->mover = g_strdup("auto");
  config->slow_nodes = g_new0(char *, 1);
  config->dram_nodes = g_new0(char *, 1);
  config->default_quota = (HmmvQuota){ .weight = 100, .managed = TRUE };
  /* Metrics are off until the operator picks where they go: an open port is a choice. */
  config->reads_source = g_strdup("auto");
  config->reads_run_dir = g_strdup(HMMV_DAMON_RUN_DIR);
  config->metrics_listen = g_strdup("");
  config->metrics_textfile = g_strdup("");
  config->vm_exclude = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                             (GDestroyNotify)g_strfreev);
}

void
hmmvd_config_clear(HmmvdConfig *config)
{
  g_clear_pointer(&config->control_socket, g_free);
  g_clear_pointer(&config->record_dir, g_free);
  g_clear_pointer(&config->log_level, g_free);
  g_clear_pointer(&config->libvirt_uri, g_free);
  g_clear_pointer(&config->libvirt_run_dir, g_free);
  g_clear_pointer(&config->mover, g_free);
  g_clear_pointer(&config->reads_source, g_free);
  g_clear_pointer(&config->reads_run_dir, g_free);
  g_clear_pointer(&config->slow_nodes, g_strfreev);
  g_clear_pointer(&config->dram_nodes, g_strfreev);
  g_clear_pointer(&config->vm_exclude, g_hash_table_unref);
  g_clear_pointer(&config->metrics_listen, g_free);
  g_clear_pointer(&config->metrics_textfile, g_free);
}

static void
config_copy(HmmvdConfig *dst, const HmmvdConfig *src)
{
  *dst = *src;
  dst->control_socket = g_strdup(src->control_socket);
  dst->log_level = g_strdup(src->log_level);
  dst->libvirt_uri = g_strdup(src->libvirt_uri);
  dst->libvirt_run_dir = g_strdup(src->libvirt_run_dir);
  dst->mover = g_strdup(src->mover);
  dst->reads_source = g_strdup(src->reads_source);
  dst->reads_run_dir = g_strdup(src->reads_run_dir);
  dst->slow_nodes = g_strdupv(src->slow_nodes);
  dst->dram_nodes = g_strdupv(src->dram_nodes);
  dst->metrics_listen = g_strdup(src->metrics_listen);
  dst->metrics_textfile = g_strdup(src->metrics_textfile);
  dst->vm_exclude = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify)g_strfreev);
  if (src->vm_exclude != NULL) {
    GHashTableIter iter;
    gpointer key, value;

    g_hash_table_iter_init(&iter, src->vm_exclude);
    while (g_hash_table_iter_next(&iter, &key, &value))
      g_hash_table_insert(dst->vm_exclude, g_strdup(key), g_strdupv(value));
  }
}

const char *const *
hmmvd_config_get_exclude(const HmmvdConfig *config, const char *vm_name)
{
  return config->vm_exclude != NULL ? g_hash_table_lookup(config->vm_exclude, vm_name) : NULL;
}

/* The line of "[group]" (key NULL) or of the last "key =" inside it; 0 when not found. */
static guint
find_line(const char *text, const char *group, const char *key)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  gboolean in_group = FALSE;
  guint found = 0;

  for (guint i = 0; lines[i] != NULL; i++) {
    const char *line = lines[i];
    gsize key_len = key != NULL ? strlen(key) : 0;

    while (g_ascii_isspace(*line))
      line++;
    if (*line == '[') {
      const char *end = strchr(line, ']');

      in_group = end != NULL && (gsize)(end - line - 1) == strlen(group) &&
                 strncmp(line + 1, group, strlen(group)) == 0;
      if (in_group && key == NULL)
        return i + 1;
      continue;
    }
    if (in_group && key != NULL && strncmp(line, key, key_len) == 0) {
      const char *rest = line + key_len;

      while (*rest == ' ' || *rest == '\t')
        rest++;
      if (*rest == '=')
        found = i + 1;
    }
  }
  return found;
}

/* Rewrites error as "FILE:LINE: [group] key: message". */
static void
locate_error(GError **error, const char *path, const char *text, const char *group,
             const char *key)
{
  guint line = find_line(text, group, key);
  g_autofree char *where = line > 0 ? g_strdup_printf("%s:%u", path, line) : g_strdup(path);
  GError *located;

  if (error == NULL || *error == NULL)
    return;
  located = g_error_new(HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "%s: [%s]%s%s: %s", where,
                        group, key != NULL ? " " : "", key != NULL ? key : "",
                        (*error)->message);
  g_clear_error(error);
  g_propagate_error(error, located);
}

static gboolean
parse_uint(const char *text, guint64 min, guint64 max, guint64 *value, GError **error)
{
  gboolean hex = g_str_has_prefix(text, "0x") || g_str_has_prefix(text, "0X");
  const char *digits = hex ? text + 2 : text;

  if (*text == '\0') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "empty value, expected a number");
    return FALSE;
  }
  if (*text == '-') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "\"%s\" is negative", text);
    return FALSE;
  }
  for (const char *c = digits; *c != '\0'; c++) {
    if (hex ? !g_ascii_isxdigit(*c) : !g_ascii_isdigit(*c)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "\"%s\" is not a whole number", text);
      return FALSE;
    }
  }
  if (*digits == '\0' || !g_ascii_string_to_unsigned(digits, hex ? 16 : 10, min, max, value,
                                                      NULL)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%s is out of range [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT "]", text, min,
                max);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_bool(const char *text, gboolean *value, GError **error)
{
  if (g_strv_contains((const char *const[]){ "true", "yes", "1", NULL }, text)) {
    *value = TRUE;
  } else if (g_strv_contains((const char *const[]){ "false", "no", "0", NULL }, text)) {
    *value = FALSE;
  } else {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "\"%s\" is not a boolean (true/false, yes/no, 1/0)", text);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_nodes(const char *text, char ***out, GError **error)
{
  g_auto(GStrv) items = g_strsplit_set(text, ",;", -1);
  g_autoptr(GPtrArray) nodes = g_ptr_array_new_with_free_func(g_free);

  for (guint i = 0; items[i] != NULL; i++) {
    char *item = g_strstrip(items[i]);
    guint64 id;

    if (*item == '\0')
      continue;
    if (!parse_uint(item, 0, HMMV_MAX_NODE_ID, &id, error)) {
      g_prefix_error(error, "node id: ");
      return FALSE;
    }
    g_ptr_array_add(nodes, g_strdup_printf("%" G_GUINT64_FORMAT, id));
  }
  g_ptr_array_add(nodes, NULL);
  g_strfreev(*out);
  *out = (char **)g_ptr_array_free(g_steal_pointer(&nodes), FALSE);
  return TRUE;
}

/* "0:8192, 1:4096": a pool per node id; nodes not named keep 0 (what the host can give). */
static gboolean
parse_node_mib(const char *text, guint64 *pages, GError **error)
{
  g_auto(GStrv) items = g_strsplit_set(text, ",;", -1);
  guint64 parsed[HMMV_MAX_NODE_ID + 1] = { 0 };

  for (guint i = 0; items[i] != NULL; i++) {
    char *item = g_strstrip(items[i]);
    g_auto(GStrv) pair = NULL;
    guint64 id, value;

    if (*item == '\0')
      continue;
    pair = g_strsplit(item, ":", 2);
    if (pair[1] == NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "\"%s\" is not NODE:MIB (like 0:8192)", item);
      return FALSE;
    }
    if (!parse_uint(g_strstrip(pair[0]), 0, HMMV_MAX_NODE_ID, &id, error)) {
      g_prefix_error(error, "node id: ");
      return FALSE;
    }
    if (!hmmvd_quota_parse_mib(g_strstrip(pair[1]), &value, error)) {
      g_prefix_error(error, "node %" G_GUINT64_FORMAT ": ", id);
      return FALSE;
    }
    if (parsed[id] != 0 || value == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "node %" G_GUINT64_FORMAT ": %s", id,
                  value == 0 ? "a pool of 0 MiB (leave the node out instead)" : "named twice");
      return FALSE;
    }
    parsed[id] = value;
  }
  memcpy(pages, parsed, sizeof(parsed));
  return TRUE;
}

static gboolean
parse_string_key(const KeySpec *spec, const char *text, char **field, GError **error)
{
  gboolean empty_ok = spec->type == KEY_PATH_OR_EMPTY || spec->type == KEY_LISTEN;

  if (*text == '\0' && !empty_ok) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "empty value");
    return FALSE;
  }
  if ((spec->type == KEY_PATH || spec->type == KEY_PATH_OR_EMPTY) && *text != '\0' &&
      !g_path_is_absolute(text)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "\"%s\" is not an absolute path", text);
    return FALSE;
  }
  if (spec->type == KEY_ENUM && !g_strv_contains(spec->choices, text)) {
    g_autofree char *choices = g_strjoinv(", ", (char **)spec->choices);

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "\"%s\" is not one of %s",
                text, choices);
    return FALSE;
  }
  if (spec->type == KEY_LISTEN && *text != '\0') {
    g_autoptr(GSocketAddress) address = NULL;

    if (!hmmvd_metrics_parse_listen(text, &address, error))
      return FALSE;
  }
  g_free(*field);
  *field = g_strdup(text);
  return TRUE;
}

static gboolean
apply_key(HmmvdConfig *config, const KeySpec *spec, const char *raw, GError **error)
{
  gpointer field = (char *)config + spec->offset;
  g_autofree char *text = g_strstrip(g_strdup(raw));
  guint64 value;

  switch (spec->type) {
  case KEY_UINT:
    if (!parse_uint(text, spec->min, spec->max, &value, error))
      return FALSE;
    *(guint *)field = (guint)value;
    break;
  case KEY_MIB:
  case KEY_MIB_PAGES:
    if (!hmmvd_quota_parse_mib(text, &value, error))
      return FALSE;
    *(guint64 *)field = spec->type == KEY_MIB ? value / HMMVD_PAGES_PER_MIB : value;
    break;
  case KEY_BOOL:
    return parse_bool(text, (gboolean *)field, error);
  case KEY_NODES:
    return parse_nodes(text, (char ***)field, error);
  case KEY_NODE_MIB:
    return parse_node_mib(text, (guint64 *)field, error);
  default:
    return parse_string_key(spec, text, (char **)field, error);
  }
  if (spec->policy) {
    config->params.interval_ms = config->interval_ms;
    return hmmv_params_validate(&config->params, error);
  }
  return TRUE;
}

static const KeySpec *
find_spec(const char *group, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS(key_specs); i++) {
    if (strcmp(key_specs[i].group, group) == 0 && (key == NULL ||
                                                    strcmp(key_specs[i].key, key) == 0))
      return &key_specs[i];
  }
  return NULL;
}

/* [vm NAME]: settings of one VM */
#define VM_GROUP_PREFIX "vm "

/* [vm NAME] exclude = ram-node1;hugemem: backends that VM's hmmv leaves alone. */
static gboolean
apply_vm_group(HmmvdConfig *config, GKeyFile *file, const char *group, GError **error)
{
  const char *name = group + strlen(VM_GROUP_PREFIX);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  g_auto(GStrv) list = NULL;
  gsize n = 0;

  if (*name == '\0' || strcspn(name, "/ \t\n") != strlen(name)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "a VM name is not empty and holds no '/' or spaces (as --qmp NAME=SOCKET)");
    return FALSE;
  }
  if (!g_key_file_has_key(file, group, "exclude", NULL))
    return TRUE;
  list = g_key_file_get_string_list(file, group, "exclude", &n, error);
  if (list == NULL && n > 0)
    return FALSE;
  g_clear_error(error);
  for (gsize i = 0; list != NULL && list[i] != NULL; i++) {
    const char *backend = g_strstrip(list[i]);

    if (*backend == '\0')
      continue;
    if (!hmmvd_quota_check_backend(backend, error))
      return FALSE;
    for (guint j = 0; j < names->len; j++) {
      if (strcmp(g_ptr_array_index(names, j), backend) == 0) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                    "exclude: backend %s is named twice", backend);
        return FALSE;
      }
    }
    if (names->len >= HMMVD_EXCLUDE_MAX) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "exclude: more than %u backends", HMMVD_EXCLUDE_MAX);
      return FALSE;
    }
    g_ptr_array_add(names, g_strdup(backend));
  }
  g_ptr_array_add(names, NULL);
  g_hash_table_replace(config->vm_exclude, g_strdup(name), g_ptr_array_steal(names, NULL));
  return TRUE;
}

/* Every group and key must be known, in the file's order so the first mistake is reported. */
static gboolean
check_known(GKeyFile *file, const char *path, const char *text, GError **error)
{
  g_auto(GStrv) groups = g_key_file_get_groups(file, NULL);

  for (guint g = 0; groups[g] != NULL; g++) {
    g_auto(GStrv) keys = g_key_file_get_keys(file, groups[g], NULL, NULL);

    if (g_str_has_prefix(groups[g], VM_GROUP_PREFIX)) {
      for (guint k = 0; keys != NULL && keys[k] != NULL; k++) {
        if (strcmp(keys[k], "exclude") != 0) {
          g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                      "unknown key (known: exclude)");
          locate_error(error, path, text, groups[g], keys[k]);
          return FALSE;
        }
      }
      continue;
    }
    if (find_spec(groups[g], NULL) == NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "unknown group (known: daemon, libvirt, memory, policy, defaults, metrics, "
                  "vm NAME)");
      locate_error(error, path, text, groups[g], NULL);
      return FALSE;
    }
    for (guint k = 0; keys != NULL && keys[k] != NULL; k++) {
      if (find_spec(groups[g], keys[k]) == NULL) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "unknown key");
        locate_error(error, path, text, groups[g], keys[k]);
        return FALSE;
      }
    }
  }
  return TRUE;
}

static gboolean
check_consistent(HmmvdConfig *config, const char *path, const char *text, GError **error)
{
  const HmmvQuota *quota = &config->default_quota;

  for (guint i = 0; config->slow_nodes[i] != NULL; i++) {
    if (g_strv_contains((const char *const *)config->dram_nodes, config->slow_nodes[i])) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "node %s is also listed in dram-nodes", config->slow_nodes[i]);
      locate_error(error, path, text, "memory", "slow-nodes");
      return FALSE;
    }
  }
  if (quota->max_pages != 0 && quota->min_pages > quota->max_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%" G_GUINT64_FORMAT " MiB is above dram-max-mib (%" G_GUINT64_FORMAT " MiB)",
                quota->min_pages / HMMVD_PAGES_PER_MIB, quota->max_pages / HMMVD_PAGES_PER_MIB);
    locate_error(error, path, text, "defaults", "dram-min-mib");
    return FALSE;
  }
  return TRUE;
}

static gboolean
apply_file(HmmvdConfig *config, GKeyFile *file, const char *path, const char *text,
           GError **error)
{
  if (!check_known(file, path, text, error))
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS(key_specs); i++) {
    const KeySpec *spec = &key_specs[i];
    g_autofree char *raw = NULL;

    if (!g_key_file_has_key(file, spec->group, spec->key, NULL))
      continue;
    /* Strings with GKeyFile's escapes (\s, \t, ...) resolved; numbers need none. */
    raw = g_key_file_get_string(file, spec->group, spec->key, error);
    if (raw == NULL || !apply_key(config, spec, raw, error)) {
      locate_error(error, path, text, spec->group, spec->key);
      return FALSE;
    }
  }
  config->params.interval_ms = config->interval_ms;
  {
    g_auto(GStrv) groups = g_key_file_get_groups(file, NULL);

    for (guint g = 0; groups[g] != NULL; g++) {
      if (g_str_has_prefix(groups[g], VM_GROUP_PREFIX) &&
          !apply_vm_group(config, file, groups[g], error)) {
        locate_error(error, path, text, groups[g], "exclude");
        return FALSE;
      }
    }
  }
  return check_consistent(config, path, text, error);
}

gboolean
hmmvd_config_load(HmmvdConfig *config, const char *path, GError **error)
{
  g_autoptr(GKeyFile) file = g_key_file_new();
  g_autoptr(GError) local_error = NULL;
  g_autofree char *text = NULL;
  HmmvdConfig work;
  gsize len;

  if (!g_file_get_contents(path, &text, &len, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "%s", local_error->message);
    return FALSE;
  }
  if (len > CONFIG_MAX_BYTES || memchr(text, '\0', len) != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%s: not a configuration file (binary, or larger than %u bytes)", path,
                CONFIG_MAX_BYTES);
    return FALSE;
  }
  if (!g_key_file_load_from_data(file, text, len, G_KEY_FILE_NONE, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "%s: %s", path,
                local_error->message);
    return FALSE;
  }
  config_copy(&work, config);
  if (!apply_file(&work, file, path, text, error)) {
    hmmvd_config_clear(&work);
    return FALSE;
  }
  hmmvd_config_clear(config);
  *config = work;
  return TRUE;
}
