/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvctl's human tables (daemon/hmmvctl-print.c) from hmmvd's own JSON (the VM table on a
 * real core, the sim mover, fake trackers), with the figures a test cannot easily make real
 * (pages brought home, a node's note) set in that JSON. */
#include "hmmvctl.h"
#include "hmmvd-test.h"
#include "vms.h"

#include <string.h>

#define VM_PAGES 1024u

static HmmvdTestBed bed;

static void
setup(void)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  hmmvd_test_bed_init(&bed, 512u * HMMV_PAGE_SIZE, 16u * VM_PAGES * HMMV_PAGE_SIZE, &params);
}

static void
teardown(void)
{
  hmmvd_test_bed_clear(&bed);
}

static void
add_vm(const char *name)
{
  HmmvTracker *tracker = hmmvd_test_bed_add_vm(&bed, name, VM_PAGES, HMMVD_SOURCE_STANDALONE);

  hmmvd_test_write_pages(tracker, 0, 64);
}

/* The table as TAP comments. */
static void
show(const char *out)
{
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    if (lines[i][0] != '\0')
      printf("# %s\n", lines[i]);
}

/* The line of `out` that starts with prefix (a copy), else NULL. */
static char *
line_starting(const char *out, const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix(lines[i], prefix))
      return g_strdup(lines[i]);
  return NULL;
}

/* The whitespace-separated fields of a line. */
static GStrv
fields(const char *line)
{
  g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
  g_auto(GStrv) parts = g_strsplit_set(line, " ", -1);

  for (guint i = 0; parts[i] != NULL; i++)
    if (parts[i][0] != '\0')
      g_strv_builder_add(builder, parts[i]);
  return g_strv_builder_end(builder);
}

/* `hmmvctl vms` shows the pages brought home since the VM was listed (DRAM and slow tier
 * together) and the pages away from its nearest nodes now, beside the other move counts, as
 * hmmvctl vms --json has them (homed-dram-total + homed-slow-total, away-dram-pages +
 * away-slow-pages). Before, only the JSON and the metrics had them. */
START_TEST(test_vms_table_homed_away)
{
  g_autoptr(JsonNode) vms = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  g_autofree char *header = NULL, *row_a = NULL, *row_b = NULL;
  g_auto(GStrv) head = NULL, a = NULL, b = NULL;
  JsonObject *vm;
  guint homed = G_MAXUINT, away = G_MAXUINT;

  add_vm("alpha");
  add_vm("beta");
  hmmvd_vms_run_interval(bed.vms);
  vms = hmmvd_vms_to_json(bed.vms);
  vm = json_array_get_object_element(json_node_get_array(vms), 0);
  ck_assert_str_eq(json_object_get_string_member(vm, "name"), "alpha");
  for (guint i = 0; i < 4; i++) {
    static const char *const members[] = { "homed-dram-total", "homed-slow-total",
                                           "away-dram-pages", "away-slow-pages" };
    static const gint64 values[] = { 300, 45, 12, 7 };

    ck_assert_msg(json_object_has_member(vm, members[i]), "%s", members[i]);
    json_object_set_int_member(vm, members[i], values[i]);
  }
  hmmvctl_print_vms(out, json_node_get_array(vms));
  show(out->str);
  header = line_starting(out->str, "NAME");
  row_a = line_starting(out->str, "alpha");
  row_b = line_starting(out->str, "beta");
  ck_assert(header != NULL && row_a != NULL && row_b != NULL);
  head = fields(header);
  a = fields(row_a);
  b = fields(row_b);
  ck_assert_uint_eq(g_strv_length(head), g_strv_length(a));
  ck_assert_uint_eq(g_strv_length(head), g_strv_length(b));
  for (guint i = 0; head[i] != NULL; i++) {
    if (strcmp(head[i], "HOMED") == 0)
      homed = i;
    if (strcmp(head[i], "AWAY") == 0)
      away = i;
  }
  ck_assert_uint_ne(homed, G_MAXUINT);
  ck_assert_uint_ne(away, G_MAXUINT);
  ck_assert_str_eq(a[homed], "345");
  ck_assert_str_eq(a[away], "19");
  ck_assert_str_eq(b[homed], "0");
  ck_assert_str_eq(b[away], "0");
  ck_assert_str_eq(head[g_strv_length(head) - 1], "ERRORS");
  ck_assert_ptr_nonnull(strstr(out->str, "AWAY in pages now"));
}
END_TEST

/* issue 9: `hmmvctl vms` names a VM's excluded backends and what they hold; nothing for a VM
 * without. */
START_TEST(test_vms_excluded)
{
  g_autoptr(JsonNode) vms = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  JsonObject *vm;
  JsonArray *names = json_array_new();

  add_vm("alpha");
  add_vm("beta");
  vms = hmmvd_vms_to_json(bed.vms);
  vm = json_array_get_object_element(json_node_get_array(vms), 0);
  ck_assert(json_object_has_member(vm, "exclude") && json_object_has_member(vm, "excluded-pages"));
  json_array_add_string_element(names, "hugemem");
  json_array_add_string_element(names, "pinned0");
  json_object_set_array_member(vm, "exclude", names);
  json_object_set_int_member(vm, "excluded-pages", 1024 * 256);
  hmmvctl_print_vms(out, json_node_get_array(vms));
  show(out->str);
  ck_assert_ptr_nonnull(strstr(out->str, "  alpha: excluded (left alone: not tracked, not moved, "
                                         "not counted): hugemem, pinned0, 1024 MiB\n"));
  ck_assert_ptr_null(strstr(out->str, "beta: excluded"));
}
END_TEST

/* `hmmvctl status` shows the daemon's note of DRAM nodes whose nearest VMs' mins exceed them
 * (hmmvd_vms_get_node_mins_note, tested in test-vms), and nothing when there is none. */
START_TEST(test_status_node_mins)
{
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  g_autoptr(GString) again = g_string_new(NULL);
  g_autofree char *line = NULL;
  const char *note = "node 0 holds 4 MiB for VMs, but the dram-min-mib of the VMs nearest it "
                     "total 6 MiB (vm a 3 MiB, vm b 3 MiB): the rest of their mins is remote "
                     "DRAM from the next nodes";

  add_vm("alpha");
  hmmvd_vms_run_interval(bed.vms);
  status = hmmvd_status_to_json(bed.vms, bed.topo, "sim");
  ck_assert(json_object_has_member(json_node_get_object(status), "node-mins-note"));
  ck_assert(json_object_get_null_member(json_node_get_object(status), "node-mins-note"));
  hmmvctl_print_status(out, json_node_get_object(status));
  ck_assert_ptr_null(strstr(out->str, "node mins:"));
  json_object_set_string_member(json_node_get_object(status), "node-mins-note", note);
  hmmvctl_print_status(again, json_node_get_object(status));
  show(again->str);
  line = line_starting(again->str, "node mins:");
  ck_assert_ptr_nonnull(line);
  ck_assert_str_eq(line + strlen("node mins:   "), note);
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("hmmvctl-print");
  TCase *tc = tcase_create("print");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_vms_table_homed_away);
  tcase_add_test(tc, test_vms_excluded);
  tcase_add_test(tc, test_status_node_mins);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
