/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Linux's own tiering on the host, read only: see host-tiering.h. */
#include "host-tiering.h"

#include <errno.h>
#include <gio/gio.h>
#include <hmmv/reads.h>
#include <string.h>

#define NUMA_BALANCING_PATH "proc/sys/kernel/numa_balancing"
#define DEMOTION_PATH "sys/kernel/mm/numa/demotion_enabled"
#define DAMON_RECLAIM_PATH "sys/module/damon_reclaim/parameters/enabled"
/* numa_balancing's bits (kernel/sched/fair.c, include/linux/sched/sysctl.h) */
#define NUMA_BALANCING_NORMAL 0x1
#define NUMA_BALANCING_MEMORY_TIERING 0x2

static void
scheme_free(gpointer data)
{
  HmmvdDamosScheme *scheme = data;

  g_free(scheme->operations);
  g_free(scheme->action);
  g_free(scheme);
}

void
hmmvd_host_tiering_free(HmmvdHostTiering *tiering)
{
  if (tiering == NULL)
    return;
  g_ptr_array_unref(tiering->schemes);
  g_ptr_array_unref(tiering->errors);
  g_free(tiering);
}

/* Reads one attribute (trailing blanks cut). FALSE with *missing when there is no such file,
 * FALSE with an entry in ->errors when it exists but cannot be read. */
static gboolean
read_attr(HmmvdHostTiering *tiering, HmmvSysfs *fs, const char *path, char **value,
          gboolean *missing)
{
  g_autoptr(GError) error = NULL;

  *missing = FALSE;
  if (hmmv_sysfs_read(fs, path, value, &error))
    return TRUE;
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    *missing = TRUE;
  else
    g_ptr_array_add(tiering->errors, g_strdup(error->message));
  return FALSE;
}

static gboolean
parse_uint(HmmvdHostTiering *tiering, const char *path, const char *text, guint64 max,
           guint64 *value)
{
  if (g_ascii_string_to_unsigned(text, 10, 0, max, value, NULL))
    return TRUE;
  g_ptr_array_add(tiering->errors, g_strdup_printf("%s: \"%s\" is not a number up to %"
                                                   G_GUINT64_FORMAT, path, text, max));
  return FALSE;
}

static void
read_numa_balancing(HmmvdHostTiering *tiering, HmmvSysfs *fs)
{
  g_autofree char *text = NULL;
  gboolean missing;
  guint64 mask;

  tiering->numa_balancing = -1;
  /* 0..3 today; more bits may come, and any set bit moves pages */
  if (read_attr(tiering, fs, NUMA_BALANCING_PATH, &text, &missing) &&
      parse_uint(tiering, NUMA_BALANCING_PATH, text, G_MAXINT, &mask))
    tiering->numa_balancing = (int)mask;
}

static void
read_demotion(HmmvdHostTiering *tiering, HmmvSysfs *fs)
{
  g_autofree char *text = NULL;
  gboolean missing;

  tiering->demotion_enabled = -1;
  if (!read_attr(tiering, fs, DEMOTION_PATH, &text, &missing))
    return;
  /* the kernel prints "true"/"false" and takes kstrtobool's spellings */
  if (g_strcmp0(text, "true") == 0 || g_strcmp0(text, "1") == 0 || g_strcmp0(text, "y") == 0)
    tiering->demotion_enabled = 1;
  else if (g_strcmp0(text, "false") == 0 || g_strcmp0(text, "0") == 0 ||
           g_strcmp0(text, "n") == 0)
    tiering->demotion_enabled = 0;
  else
    g_ptr_array_add(tiering->errors, g_strdup_printf("%s: \"%s\" is neither true nor false",
                                                     DEMOTION_PATH, text));
}

static void
read_damon_reclaim(HmmvdHostTiering *tiering, HmmvSysfs *fs)
{
  g_autofree char *text = NULL;
  gboolean missing;

  /* a bool module parameter prints Y or N */
  tiering->damon_reclaim = read_attr(tiering, fs, DAMON_RECLAIM_PATH, &text, &missing) &&
                           g_strcmp0(text, "Y") == 0;
}

static gboolean
moving_action(const char *action)
{
  return g_strcmp0(action, "migrate_hot") == 0 || g_strcmp0(action, "migrate_cold") == 0 ||
         g_strcmp0(action, "pageout") == 0;
}

/* A count file of the DAMON tree, bounded; FALSE (with an error) when unreadable. */
static gboolean
read_count(HmmvdHostTiering *tiering, HmmvSysfs *fs, const char *path, guint bound,
           guint *count)
{
  g_autofree char *text = NULL;
  gboolean missing;
  guint64 value;

  if (!read_attr(tiering, fs, path, &text, &missing)) {
    if (missing)
      g_ptr_array_add(tiering->errors, g_strdup_printf("%s: missing", path));
    return FALSE;
  }
  /* the kernel allows more; hmmvd reads the first `bound` and says it stopped there */
  if (!parse_uint(tiering, path, text, G_MAXUINT, &value))
    return FALSE;
  if (value > bound) {
    tiering->truncated = TRUE;
    value = bound;
  }
  *count = (guint)value;
  return TRUE;
}

static void
read_schemes(HmmvdHostTiering *tiering, HmmvSysfs *fs, guint kdamond, guint context,
             const char *operations)
{
  g_autofree char *nr_path = g_strdup_printf("kdamonds/%u/contexts/%u/schemes/nr_schemes",
                                             kdamond, context);
  guint nr;

  if (!read_count(tiering, fs, nr_path, HMMVD_TIERING_MAX_SCHEMES, &nr))
    return;
  for (guint s = 0; s < nr; s++) {
    g_autofree char *dir = g_strdup_printf("kdamonds/%u/contexts/%u/schemes/%u", kdamond,
                                           context, s);
    g_autofree char *action_path = g_strconcat(dir, "/action", NULL);
    g_autofree char *nid_path = g_strconcat(dir, "/target_nid", NULL);
    g_autofree char *action = NULL;
    g_autofree char *nid_text = NULL;
    HmmvdDamosScheme *scheme;
    gboolean missing;
    gint64 nid;

    if (!read_attr(tiering, fs, action_path, &action, &missing) || !moving_action(action))
      continue;
    scheme = g_new0(HmmvdDamosScheme, 1);
    scheme->kdamond = kdamond;
    scheme->context = context;
    scheme->scheme = s;
    scheme->operations = g_strdup(operations);
    scheme->action = g_steal_pointer(&action);
    scheme->target_nid = -1;
    /* target_nid exists from 6.11 on and reads -1 (NUMA_NO_NODE) until set; pageout has
     * no target */
    if (g_strcmp0(scheme->action, "pageout") != 0 &&
        read_attr(tiering, fs, nid_path, &nid_text, &missing)) {
      if (g_ascii_string_to_signed(nid_text, 10, -1, G_MAXINT, &nid, NULL))
        scheme->target_nid = (int)nid;
      else
        g_ptr_array_add(tiering->errors, g_strdup_printf("%s: \"%s\" is not a node",
                                                         nid_path, nid_text));
    }
    g_ptr_array_add(tiering->schemes, scheme);
  }
}

/* A kdamond hmmv set up has a record run_dir/kdamond-N (trackers/damon-admin.c); its schemes
 * are "stat" anyway, this only keeps hmmv's own out of the report for sure. */
static gboolean
hmmv_owns(const char *run_dir, guint kdamond)
{
  g_autofree char *record = NULL;

  if (run_dir == NULL)
    return FALSE;
  record = g_strdup_printf("%s/kdamond-%u", run_dir, kdamond);
  return g_file_test(record, G_FILE_TEST_EXISTS);
}

static void
read_damon(HmmvdHostTiering *tiering, const char *root, const char *run_dir)
{
  g_autofree char *admin = g_build_filename(root, HMMV_DAMON_ADMIN_DIR, NULL);
  g_autoptr(HmmvSysfs) fs = hmmv_sysfs_new_dir(admin);
  guint nr;

  if (!hmmv_sysfs_exists(fs, "kdamonds/nr_kdamonds"))
    return;   /* no DAMON sysfs: nothing of it can fight */
  if (!read_count(tiering, fs, "kdamonds/nr_kdamonds", HMMVD_TIERING_MAX_KDAMONDS, &nr))
    return;
  for (guint k = 0; k < nr; k++) {
    g_autofree char *state_path = g_strdup_printf("kdamonds/%u/state", k);
    g_autofree char *contexts_path = g_strdup_printf("kdamonds/%u/contexts/nr_contexts", k);
    g_autofree char *state = NULL;
    gboolean missing;
    guint nr_contexts;

    /* a kdamond that is off does nothing now; `hmmvctl status` reads again each time */
    if (hmmv_owns(run_dir, k) || !read_attr(tiering, fs, state_path, &state, &missing) ||
        g_strcmp0(state, "on") != 0)
      continue;
    if (!read_count(tiering, fs, contexts_path, HMMVD_TIERING_MAX_CONTEXTS, &nr_contexts))
      continue;
    for (guint c = 0; c < nr_contexts; c++) {
      g_autofree char *ops_path = g_strdup_printf("kdamonds/%u/contexts/%u/operations", k, c);
      g_autofree char *ops = NULL;

      if (!read_attr(tiering, fs, ops_path, &ops, &missing))
        ops = g_strdup("?");
      read_schemes(tiering, fs, k, c, ops);
    }
  }
}

HmmvdHostTiering *
hmmvd_host_tiering_detect(const char *root, const char *damon_run_dir)
{
  HmmvdHostTiering *tiering = g_new0(HmmvdHostTiering, 1);
  g_autoptr(HmmvSysfs) fs = hmmv_sysfs_new_dir(root);

  tiering->schemes = g_ptr_array_new_with_free_func(scheme_free);
  tiering->errors = g_ptr_array_new_with_free_func(g_free);
  read_numa_balancing(tiering, fs);
  read_demotion(tiering, fs);
  read_damon_reclaim(tiering, fs);
  read_damon(tiering, root, damon_run_dir);
  return tiering;
}

gboolean
hmmvd_host_tiering_active(const HmmvdHostTiering *tiering)
{
  return tiering->numa_balancing > 0 || tiering->demotion_enabled == 1 ||
         tiering->damon_reclaim || tiering->schemes->len > 0;
}

static char *
describe_scheme(const HmmvdDamosScheme *scheme)
{
  g_autofree char *target = scheme->target_nid >= 0
                              ? g_strdup_printf(" to node %d", scheme->target_nid)
                              : g_strdup("");
  const char *what = g_strcmp0(scheme->action, "pageout") == 0
                       ? "swaps out pages hmmvd placed"
                       : g_strcmp0(scheme->action, "migrate_hot") == 0
                         ? "promotes pages hmmvd demoted"
                         : "demotes pages hmmvd promoted";

  return g_strdup_printf("DAMON kdamond %u (context %u, %s) runs DAMOS scheme %u, action %s%s:"
                         " it %s; turn it off with `echo off > %s/kdamonds/%u/state` (or ask "
                         "its owner, e.g. `damo stop`)", scheme->kdamond, scheme->context,
                         scheme->operations, scheme->scheme, scheme->action, target, what,
                         HMMV_DAMON_ADMIN_DIR, scheme->kdamond);
}

GStrv
hmmvd_host_tiering_describe(const HmmvdHostTiering *tiering)
{
  g_autoptr(GStrvBuilder) lines = g_strv_builder_new();

  if (tiering->numa_balancing > 0) {
    g_autofree char *line = NULL;
    int mask = tiering->numa_balancing;

    line = g_strdup_printf(
      "NUMA balancing is on (kernel.numa_balancing = %d%s%s): the kernel %s%s%s; turn it off "
      "with `sysctl kernel.numa_balancing=0`", mask,
      mask & NUMA_BALANCING_NORMAL ? ", normal" : "",
      mask & NUMA_BALANCING_MEMORY_TIERING ? ", memory tiering" : "",
      mask & NUMA_BALANCING_NORMAL ? "moves pages to the node of the CPU touching them" : "",
      (mask & NUMA_BALANCING_NORMAL) && (mask & NUMA_BALANCING_MEMORY_TIERING) ? " and " : "",
      mask & NUMA_BALANCING_MEMORY_TIERING ? "promotes hot pages off the slow nodes itself"
      : (mask & NUMA_BALANCING_NORMAL) ? "" : "moves pages on its own");
    g_strv_builder_add(lines, line);
  }
  if (tiering->demotion_enabled == 1)
    g_strv_builder_add(lines, "demotion in reclaim is on (/" DEMOTION_PATH " = true): kswapd "
                       "moves cold pages to the slow nodes under memory pressure; turn it off "
                       "with `echo false > /" DEMOTION_PATH "`");
  if (tiering->damon_reclaim)
    g_strv_builder_add(lines, "DAMON_RECLAIM is enabled (/" DAMON_RECLAIM_PATH " = Y): it "
                       "swaps out cold pages hmmvd placed; turn it off with `echo N > /"
                       DAMON_RECLAIM_PATH "`");
  for (guint i = 0; i < tiering->schemes->len; i++) {
    g_autofree char *line = describe_scheme(g_ptr_array_index(tiering->schemes, i));

    g_strv_builder_add(lines, line);
  }
  if (tiering->truncated)
    g_strv_builder_add(lines, "the DAMON sysfs tree is larger than hmmvd reads (64 kdamonds, "
                       "16 contexts, 64 schemes each): schemes past those were not checked");
  return g_strv_builder_end(lines);
}

guint
hmmvd_host_tiering_warn(const HmmvdHostTiering *tiering)
{
  g_auto(GStrv) lines = hmmvd_host_tiering_describe(tiering);
  guint n = g_strv_length(lines);

  for (guint i = 0; i < n; i++)
    g_warning("host tiering fights hmmvd: %s", lines[i]);
  for (guint i = 0; i < tiering->errors->len; i++)
    g_message("host tiering: cannot read %s", (char *)g_ptr_array_index(tiering->errors, i));
  return n;
}

static void
add_int_or_null(JsonBuilder *builder, const char *member, int value)
{
  json_builder_set_member_name(builder, member);
  if (value >= 0)
    json_builder_add_int_value(builder, value);
  else
    json_builder_add_null_value(builder);
}

JsonNode *
hmmvd_host_tiering_to_json(const HmmvdHostTiering *tiering)
{
  g_autoptr(JsonBuilder) builder = json_builder_new();
  g_auto(GStrv) lines = hmmvd_host_tiering_describe(tiering);

  json_builder_begin_object(builder);
  json_builder_set_member_name(builder, "active");
  json_builder_add_boolean_value(builder, hmmvd_host_tiering_active(tiering));
  add_int_or_null(builder, "numa-balancing", tiering->numa_balancing);
  json_builder_set_member_name(builder, "demotion-enabled");
  if (tiering->demotion_enabled >= 0)
    json_builder_add_boolean_value(builder, tiering->demotion_enabled == 1);
  else
    json_builder_add_null_value(builder);
  json_builder_set_member_name(builder, "damon-reclaim");
  json_builder_add_boolean_value(builder, tiering->damon_reclaim);
  json_builder_set_member_name(builder, "damos-schemes");
  json_builder_begin_array(builder);
  for (guint i = 0; i < tiering->schemes->len; i++) {
    const HmmvdDamosScheme *scheme = g_ptr_array_index(tiering->schemes, i);

    json_builder_begin_object(builder);
    json_builder_set_member_name(builder, "kdamond");
    json_builder_add_int_value(builder, scheme->kdamond);
    json_builder_set_member_name(builder, "context");
    json_builder_add_int_value(builder, scheme->context);
    json_builder_set_member_name(builder, "scheme");
    json_builder_add_int_value(builder, scheme->scheme);
    json_builder_set_member_name(builder, "operations");
    json_builder_add_string_value(builder, scheme->operations);
    json_builder_set_member_name(builder, "action");
    json_builder_add_string_value(builder, scheme->action);
    add_int_or_null(builder, "target-nid", scheme->target_nid);
    json_builder_end_object(builder);
  }
  json_builder_end_array(builder);
  json_builder_set_member_name(builder, "truncated");
  json_builder_add_boolean_value(builder, tiering->truncated);
  json_builder_set_member_name(builder, "warnings");
  json_builder_begin_array(builder);
  for (guint i = 0; lines[i] != NULL; i++)
    json_builder_add_string_value(builder, lines[i]);
  json_builder_end_array(builder);
  json_builder_set_member_name(builder, "errors");
  json_builder_begin_array(builder);
  for (guint i = 0; i < tiering->errors->len; i++)
    json_builder_add_string_value(builder, g_ptr_array_index(tiering->errors, i));
  json_builder_end_array(builder);
  json_builder_end_object(builder);
  return json_builder_get_root(builder);
}
