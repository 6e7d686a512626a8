/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Linux's own tiering on the host (daemon/host-tiering.c), on fake /proc and /sys trees laid
 * out as the kernel lays them out, read only. */
#include "hmmv-test.h"
#include "host-tiering.h"

#include <glib/gstdio.h>
#include <string.h>

#define ADMIN "sys/kernel/mm/damon/admin/kdamonds"

typedef struct {
  char *root;
  char *run_dir;
} FakeHost;

static void
fake_host_free(FakeHost *host)
{
  hmmv_test_remove_tree(host->root);
  g_free(host->root);
  g_free(host->run_dir);
  g_free(host);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakeHost, fake_host_free)

static void
put(FakeHost *host, const char *rel, const char *value)
{
  g_autofree char *path = g_build_filename(host->root, rel, NULL);
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *text = g_strconcat(value, "\n", NULL);  /* sysfs ends values with one */

  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

static void
putf(FakeHost *host, const char *value, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
putf(FakeHost *host, const char *value, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *rel = NULL;

  va_start(ap, fmt);
  rel = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  put(host, rel, value);
}

/* This machine's own state at the time of writing (Debian 12's 6.1 kernel with a host
 * kdamond): balancing 0, demotion false, DAMON sysfs with no kdamond. */
static FakeHost *
fake_host_new(void)
{
  FakeHost *host = g_new0(FakeHost, 1);

  host->root = g_dir_make_tmp("hmmv-tiering-XXXXXX", NULL);
  ck_assert_ptr_nonnull(host->root);
  host->run_dir = g_build_filename(host->root, "run/hmmv/damon", NULL);
  ck_assert_int_eq(g_mkdir_with_parents(host->run_dir, 0700), 0);
  put(host, "proc/sys/kernel/numa_balancing", "0");
  put(host, "sys/kernel/mm/numa/demotion_enabled", "false");
  put(host, ADMIN "/nr_kdamonds", "0");
  return host;
}

/* A kdamond with one context of `ops` and these scheme actions; target_nid as the kernel
 * shows it (-1 until set). */
static void
fake_kdamond(FakeHost *host, guint k, const char *state, const char *ops,
             const char *const *actions, const char *const *nids)
{
  guint n = g_strv_length((char **)actions);

  putf(host, state, ADMIN "/%u/state", k);
  putf(host, "1", ADMIN "/%u/contexts/nr_contexts", k);
  putf(host, ops, ADMIN "/%u/contexts/0/operations", k);
  putf(host, "paddr\nvaddr\nfvaddr", ADMIN "/%u/contexts/0/avail_operations", k);
  {
    g_autofree char *nr = g_strdup_printf("%u", n);

    putf(host, nr, ADMIN "/%u/contexts/0/schemes/nr_schemes", k);
  }
  for (guint s = 0; s < n; s++) {
    putf(host, actions[s], ADMIN "/%u/contexts/0/schemes/%u/action", k, s);
    putf(host, nids[s], ADMIN "/%u/contexts/0/schemes/%u/target_nid", k, s);
  }
}

static void
set_nr_kdamonds(FakeHost *host, guint nr)
{
  g_autofree char *text = g_strdup_printf("%u", nr);

  put(host, ADMIN "/nr_kdamonds", text);
}

static int
compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file under dir with its contents, sorted: detection must leave it as it was. */
static void
snapshot_into(const char *dir, GString *out)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *name;

  ck_assert_ptr_nonnull(d);
  while ((name = g_dir_read_name(d)) != NULL)
    g_ptr_array_add(names, g_strdup(name));
  g_ptr_array_sort(names, compare_names);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *path = g_build_filename(dir, g_ptr_array_index(names, i), NULL);
    g_autofree char *text = NULL;

    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
      snapshot_into(path, out);
      continue;
    }
    ck_assert(g_file_get_contents(path, &text, NULL, NULL));
    g_string_append_printf(out, "%s=%s;", path, text);
  }
}

static char *
snapshot(FakeHost *host)
{
  GString *out = g_string_new(NULL);

  snapshot_into(host->root, out);
  return g_string_free(out, FALSE);
}

static gboolean
has_line(GStrv lines, const char *a, const char *b)
{
  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr(lines[i], a) != NULL && (b == NULL || strstr(lines[i], b) != NULL))
      return TRUE;
  return FALSE;
}

/* The state of this machine: nothing fights hmmvd, nothing to say. A kdamond that is
 * configured with migrate_cold but off does nothing now. */
START_TEST(test_quiet_host)
{
  g_autoptr(FakeHost) host = fake_host_new();
  g_autoptr(HmmvdHostTiering) tiering = NULL;
  g_auto(GStrv) lines = NULL;
  const char *const actions[] = { "migrate_cold", NULL };
  const char *const nids[] = { "2", NULL };

  fake_kdamond(host, 0, "off", "paddr", actions, nids);
  set_nr_kdamonds(host, 1);
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  lines = hmmvd_host_tiering_describe(tiering);
  ck_assert_int_eq(tiering->numa_balancing, 0);
  ck_assert_int_eq(tiering->demotion_enabled, 0);
  ck_assert_uint_eq(tiering->schemes->len, 0);
  ck_assert_uint_eq(tiering->errors->len, 0);
  ck_assert(!hmmvd_host_tiering_active(tiering));
  ck_assert_uint_eq(g_strv_length(lines), 0);
  ck_assert_uint_eq(hmmvd_host_tiering_warn(tiering), 0);
}
END_TEST

/* NUMA balancing in each mode (1 normal, 2 tiering, 3 both) and demotion: each found, each
 * said with how to turn it off. */
START_TEST(test_balancing_and_demotion)
{
  static const char *const modes[] = { "1", "2", "3" };
  static const char *const does[] = { "node of the CPU", "promotes hot pages", "and promotes" };
  g_autoptr(FakeHost) host = fake_host_new();

  for (guint m = 0; m < G_N_ELEMENTS(modes); m++) {
    g_autoptr(HmmvdHostTiering) tiering = NULL;
    g_auto(GStrv) lines = NULL;

    put(host, "proc/sys/kernel/numa_balancing", modes[m]);
    put(host, "sys/kernel/mm/numa/demotion_enabled", m == 1 ? "true" : "false");
    tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
    lines = hmmvd_host_tiering_describe(tiering);
    ck_assert_int_eq(tiering->numa_balancing, (int)m + 1);
    ck_assert(hmmvd_host_tiering_active(tiering));
    ck_assert_msg(has_line(lines, "sysctl kernel.numa_balancing=0", does[m]), "mode %s: %s",
                  modes[m], lines[0]);
    ck_assert_int_eq(tiering->demotion_enabled, m == 1 ? 1 : 0);
    ck_assert(has_line(lines, "echo false > /sys/kernel/mm/numa/demotion_enabled", NULL) ==
              (m == 1));
    ck_assert_uint_eq(g_strv_length(lines), m == 1 ? 2 : 1);
    ck_assert_uint_eq(hmmvd_host_tiering_warn(tiering), g_strv_length(lines));
  }
}
END_TEST

/* Running kdamonds of others with pageout, migrate_hot and migrate_cold are found, their
 * stat schemes and hmmv's own kdamond (a record in run_dir) are not; nothing is written. */
START_TEST(test_foreign_damos_schemes)
{
  g_autoptr(FakeHost) host = fake_host_new();
  g_autoptr(HmmvdHostTiering) tiering = NULL;
  g_auto(GStrv) lines = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *record = NULL;
  const char *const host_actions[] = { "pageout", NULL };
  const char *const host_nids[] = { "-1", NULL };
  const char *const tier_actions[] = { "stat", "migrate_hot", "migrate_cold", NULL };
  const char *const tier_nids[] = { "-1", "0", "2", NULL };
  const char *const hmmv_actions[] = { "migrate_cold", NULL };
  const char *const hmmv_nids[] = { "3", NULL };
  const HmmvdDamosScheme *scheme;

  fake_kdamond(host, 0, "on", "paddr", host_actions, host_nids);
  fake_kdamond(host, 1, "on", "vaddr", tier_actions, tier_nids);
  fake_kdamond(host, 2, "on", "vaddr", hmmv_actions, hmmv_nids);
  set_nr_kdamonds(host, 3);
  record = g_build_filename(host->run_dir, "kdamond-2", NULL);
  ck_assert(g_file_set_contents(record, "pid 1\ntarget 2\nops vaddr\n", -1, NULL));
  before = snapshot(host);
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  after = snapshot(host);
  ck_assert_msg(strcmp(before, after) == 0, "the fake tree changed");
  ck_assert_uint_eq(tiering->errors->len, 0);
  ck_assert_uint_eq(tiering->schemes->len, 3);
  scheme = g_ptr_array_index(tiering->schemes, 0);
  ck_assert_uint_eq(scheme->kdamond, 0);
  ck_assert_str_eq(scheme->action, "pageout");
  ck_assert_str_eq(scheme->operations, "paddr");
  ck_assert_int_eq(scheme->target_nid, -1);
  scheme = g_ptr_array_index(tiering->schemes, 1);
  ck_assert_uint_eq(scheme->kdamond, 1);
  ck_assert_uint_eq(scheme->scheme, 1);
  ck_assert_str_eq(scheme->action, "migrate_hot");
  ck_assert_int_eq(scheme->target_nid, 0);
  scheme = g_ptr_array_index(tiering->schemes, 2);
  ck_assert_uint_eq(scheme->scheme, 2);
  ck_assert_str_eq(scheme->action, "migrate_cold");
  ck_assert_int_eq(scheme->target_nid, 2);
  ck_assert(hmmvd_host_tiering_active(tiering));
  lines = hmmvd_host_tiering_describe(tiering);
  ck_assert_uint_eq(g_strv_length(lines), 3);
  ck_assert(has_line(lines, "kdamond 0", "echo off > /sys/kernel/mm/damon/admin/kdamonds/0/state"));
  ck_assert(has_line(lines, "migrate_hot to node 0", "promotes"));
  ck_assert(has_line(lines, "migrate_cold to node 2", "demotes"));
  ck_assert(!has_line(lines, "kdamond 2", NULL));
  /* without the record, kdamond 2 is someone else's */
  ck_assert_int_eq(g_unlink(record), 0);
  hmmvd_host_tiering_free(g_steal_pointer(&tiering));
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  ck_assert_uint_eq(tiering->schemes->len, 4);
}
END_TEST

/* DAMON_RECLAIM runs pageout without a sysfs kdamond. */
START_TEST(test_damon_reclaim)
{
  g_autoptr(FakeHost) host = fake_host_new();
  g_autoptr(HmmvdHostTiering) tiering = NULL;
  g_auto(GStrv) lines = NULL;

  put(host, "sys/module/damon_reclaim/parameters/enabled", "N");
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  ck_assert(!hmmvd_host_tiering_active(tiering));
  hmmvd_host_tiering_free(g_steal_pointer(&tiering));
  put(host, "sys/module/damon_reclaim/parameters/enabled", "Y");
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  lines = hmmvd_host_tiering_describe(tiering);
  ck_assert(tiering->damon_reclaim);
  ck_assert(hmmvd_host_tiering_active(tiering));
  ck_assert(has_line(lines, "DAMON_RECLAIM", "echo N >"));
}
END_TEST

/* A kernel without any of it (no files): nothing active, nothing unreadable. Malformed files
 * are named in errors, and the DAMON walk is bounded. */
START_TEST(test_missing_and_malformed)
{
  g_autoptr(FakeHost) host = fake_host_new();
  g_autoptr(HmmvdHostTiering) tiering = NULL;
  g_autofree char *empty = g_dir_make_tmp("hmmv-tiering-empty-XXXXXX", NULL);

  tiering = hmmvd_host_tiering_detect(empty, NULL);
  ck_assert_int_eq(tiering->numa_balancing, -1);
  ck_assert_int_eq(tiering->demotion_enabled, -1);
  ck_assert_uint_eq(tiering->errors->len, 0);
  ck_assert(!hmmvd_host_tiering_active(tiering));
  hmmv_test_remove_tree(empty);
  hmmvd_host_tiering_free(g_steal_pointer(&tiering));

  put(host, "proc/sys/kernel/numa_balancing", "two");
  put(host, "sys/kernel/mm/numa/demotion_enabled", "maybe");
  put(host, ADMIN "/nr_kdamonds", "100000");
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  ck_assert_int_eq(tiering->numa_balancing, -1);
  ck_assert_int_eq(tiering->demotion_enabled, -1);
  ck_assert(tiering->truncated);
  /* the two malformed files; the 64 kdamond directories read of the 100,000 claimed are
   * missing, which is skipped quietly (kdamonds being re-created by a write of nr_kdamonds) */
  ck_assert_uint_eq(tiering->errors->len, 2);
  ck_assert(strstr(g_ptr_array_index(tiering->errors, 0), "numa_balancing") != NULL);
  ck_assert(strstr(g_ptr_array_index(tiering->errors, 1), "demotion_enabled") != NULL);
}
END_TEST

/* The JSON of `hmmvctl status --json`: every member, with nulls for what the kernel lacks. */
START_TEST(test_json)
{
  g_autoptr(FakeHost) host = fake_host_new();
  g_autoptr(HmmvdHostTiering) tiering = NULL;
  g_autoptr(JsonNode) node = NULL;
  const char *const actions[] = { "migrate_cold", NULL };
  const char *const nids[] = { "2", NULL };
  g_autofree char *demotion = NULL;
  JsonObject *object;
  JsonObject *scheme;

  put(host, "proc/sys/kernel/numa_balancing", "2");
  demotion = g_build_filename(host->root, "sys/kernel/mm/numa/demotion_enabled", NULL);
  ck_assert_int_eq(g_unlink(demotion), 0);   /* a kernel before 5.15 */
  fake_kdamond(host, 0, "on", "paddr", actions, nids);
  set_nr_kdamonds(host, 1);
  tiering = hmmvd_host_tiering_detect(host->root, host->run_dir);
  node = hmmvd_host_tiering_to_json(tiering);
  object = json_node_get_object(node);
  ck_assert(json_object_get_boolean_member(object, "active"));
  ck_assert_int_eq(json_object_get_int_member(object, "numa-balancing"), 2);
  ck_assert(json_object_get_null_member(object, "demotion-enabled"));
  ck_assert(!json_object_get_boolean_member(object, "damon-reclaim"));
  ck_assert(!json_object_get_boolean_member(object, "truncated"));
  ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(object, "warnings")), 2);
  ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(object, "errors")), 0);
  ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(object, "damos-schemes")),
                    1);
  scheme = json_array_get_object_element(json_object_get_array_member(object, "damos-schemes"),
                                         0);
  ck_assert_str_eq(json_object_get_string_member(scheme, "action"), "migrate_cold");
  ck_assert_str_eq(json_object_get_string_member(scheme, "operations"), "paddr");
  ck_assert_int_eq(json_object_get_int_member(scheme, "target-nid"), 2);
  ck_assert_int_eq(json_object_get_int_member(scheme, "kdamond"), 0);
}
END_TEST

static Suite *
host_tiering_suite(void)
{
  Suite *s = suite_create("host-tiering");
  TCase *tc = tcase_create("detect");

  tcase_add_test(tc, test_quiet_host);
  tcase_add_test(tc, test_balancing_and_demotion);
  tcase_add_test(tc, test_foreign_damos_schemes);
  tcase_add_test(tc, test_damon_reclaim);
  tcase_add_test(tc, test_missing_and_malformed);
  tcase_add_test(tc, test_json);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(host_tiering_suite());
}
