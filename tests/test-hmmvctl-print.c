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

/* The status JSON's holds, as "name/pid:dram-pages:state" joined by ",", then its
 * held-dram-pages after "=". */
static char *
status_holds(JsonObject *status)
{
  JsonArray *holds = json_object_get_array_member(status, "holds");
  g_autoptr(GString) text = g_string_new(NULL);

  for (guint i = 0; i < json_array_get_length(holds); i++) {
    JsonObject *hold = json_array_get_object_element(holds, i);

    g_string_append_printf(text, "%s%s/%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT ":%s",
                           i > 0 ? "," : "", json_object_get_string_member(hold, "name"),
                           json_object_get_int_member(hold, "pid"),
                           json_object_get_int_member(hold, "dram-pages"),
                           json_object_get_string_member(hold, "state"));
  }
  g_string_append_printf(text, "=%" G_GINT64_FORMAT,
                         json_object_get_int_member(status, "held-dram-pages"));
  return g_string_free(g_steal_pointer(&text), FALSE);
}

/* The vms JSON row of VM name: its dram-held-pages, -1 when it has none. */
static gint64
vm_held(JsonNode *vms, const char *name)
{
  JsonArray *array = json_node_get_array(vms);

  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonObject *vm = json_array_get_object_element(array, i);

    if (g_strcmp0(json_object_get_string_member(vm, "name"), name) == 0)
      return json_object_get_int_member_with_default(vm, "dram-held-pages", -1);
  }
  ck_abort_msg("vm %s not in the vms JSON", name);
  return -2;
}

/* Status of the table now: the JSON and hmmvctl's text (shown). */
static JsonNode *
status_now(GString *out)
{
  JsonNode *status = hmmvd_status_to_json(bed.vms, bed.topo, "sim");

  g_string_truncate(out, 0);
  hmmvctl_print_status(out, json_node_get_object(status));
  show(out->str);
  return status;
}

/* issue 8, F9: the DRAM the core keeps counted for a VM removed while its QEMU lives
 * (standalone: its QMP connection broke) is shown: in `hmmvctl status` a "held:" line per
 * hold, with its MiB and why, and their total ("holds" and "held-dram-pages" in the JSON);
 * "dram-held-pages" in the VM's row of `hmmvctl vms --json` while it is listed with a hold
 * (listed unmanaged while it is retried, then back in the core reading its placement); gone
 * once the hold ends. Before, only held-outside-pages counted it, with no name. */
START_TEST(test_status_holds)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(JsonNode) vms = NULL;
  g_autofree char *holds = NULL, *expect = NULL, *line = NULL;
  HmmvTracker *alpha = hmmvd_test_bed_add_vm(&bed, "alpha", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  guint64 held;

  add_vm("beta");
  for (guint i = 0; i < 2; i++) {
    hmmvd_test_write_pages(alpha, 0, 512);
    hmmvd_vms_run_interval(bed.vms);
  }
  held = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(bed.core, "alpha"));
  printf("# alpha holds %" G_GUINT64_FORMAT " pages of DRAM\n", held);
  ck_assert_uint_ge(held, HMMVD_PAGES_PER_MIB);
  status = status_now(out);
  holds = status_holds(json_node_get_object(status));
  ck_assert_str_eq(holds, "=0");
  ck_assert_ptr_null(strstr(out->str, "held:"));
  vms = hmmvd_vms_to_json(bed.vms);
  ck_assert_int_eq(vm_held(vms, "alpha"), -1);

  /* its QMP connection broke while QEMU lives: held, removed (as standalone.c does) */
  ck_assert(hmmv_core_hold_dram(bed.core, "alpha", &error));
  hmmvd_vms_remove(bed.vms, "alpha");
  g_clear_pointer(&status, json_node_unref);
  g_clear_pointer(&holds, g_free);
  status = status_now(out);
  holds = status_holds(json_node_get_object(status));
  expect = g_strdup_printf("alpha/4242:%" G_GUINT64_FORMAT ":reconnecting=%" G_GUINT64_FORMAT,
                           held, held);
  ck_assert_str_eq(holds, expect);
  ck_assert_uint_ge(hmmvctl_member_uint(json_node_get_object(status), "held-outside-pages"),
                    held);
  line = line_starting(out->str, "held:        vm ");
  g_free(expect);
  expect = g_strdup_printf("held:        vm alpha %" G_GUINT64_FORMAT " MiB (QEMU pid 4242 "
                           "lives, reconnecting)", held / HMMVD_PAGES_PER_MIB);
  ck_assert_pstr_eq(line, expect);
  g_free(expect);
  expect = g_strdup_printf("held:        %" G_GUINT64_FORMAT " MiB of the pool in all, 1 hold "
                           "(VMs out of the core, or back and reading their placement)\n",
                           held / HMMVD_PAGES_PER_MIB);
  ck_assert_ptr_nonnull(strstr(out->str, expect));
  g_free(expect);
  expect = g_strdup_printf(" MiB (%" G_GUINT64_FORMAT " MiB held outside the balance: ",
                           hmmvctl_member_uint(json_node_get_object(status),
                                               "held-outside-pages") / HMMVD_PAGES_PER_MIB);
  ck_assert_ptr_nonnull(strstr(out->str, expect));

  /* retried, listed unmanaged meanwhile: its row says what is held for it, beta's nothing */
  hmmvd_vms_add_unmanaged(bed.vms, "alpha", HMMVD_SOURCE_STANDALONE, "not reachable");
  g_clear_pointer(&vms, json_node_unref);
  vms = hmmvd_vms_to_json(bed.vms);
  ck_assert_int_eq(vm_held(vms, "alpha"), (gint64)held);
  ck_assert_int_eq(vm_held(vms, "beta"), -1);
  g_string_truncate(out, 0);
  hmmvctl_print_vms(out, json_node_get_array(vms));
  show(out->str);
  g_free(expect);
  expect = g_strdup_printf("  alpha: %" G_GUINT64_FORMAT " MiB of DRAM held for it beyond its "
                           "own pages", held / HMMVD_PAGES_PER_MIB);
  ck_assert_ptr_nonnull(strstr(out->str, expect));
  ck_assert_ptr_null(strstr(out->str, "beta: 0 MiB of DRAM held"));

  /* connected again: in the core, its placement not read yet (no interval since) */
  hmmvd_vms_remove(bed.vms, "alpha");
  alpha = hmmvd_test_bed_add_vm(&bed, "alpha", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  g_clear_pointer(&status, json_node_unref);
  g_clear_pointer(&holds, g_free);
  status = status_now(out);
  holds = status_holds(json_node_get_object(status));
  g_free(expect);
  expect = g_strdup_printf("alpha/4242:%" G_GUINT64_FORMAT ":reading-placement=%"
                           G_GUINT64_FORMAT,
                           held, held);
  ck_assert_str_eq(holds, expect);
  g_free(expect);
  expect = g_strdup_printf("held:        vm alpha %" G_GUINT64_FORMAT " MiB (QEMU pid 4242 "
                           "connected again, reading its placement)\n",
                           held / HMMVD_PAGES_PER_MIB);
  ck_assert_ptr_nonnull(strstr(out->str, expect));
  g_clear_pointer(&vms, json_node_unref);
  vms = hmmvd_vms_to_json(bed.vms);
  ck_assert_int_eq(vm_held(vms, "alpha"), (gint64)held);

  /* its placement read whole in the next interval, the hold ended at the start of the one
   * after (libhmmv/loop-hold.c, hmmv_core_holds_settle): nothing shown */
  hmmvd_vms_run_interval(bed.vms);
  hmmvd_vms_run_interval(bed.vms);
  g_clear_pointer(&status, json_node_unref);
  g_clear_pointer(&holds, g_free);
  status = status_now(out);
  holds = status_holds(json_node_get_object(status));
  ck_assert_str_eq(holds, "=0");
  ck_assert_ptr_null(strstr(out->str, "held:"));
  g_clear_pointer(&vms, json_node_unref);
  vms = hmmvd_vms_to_json(bed.vms);
  ck_assert_int_eq(vm_held(vms, "alpha"), -1);
}
END_TEST

/* A hold under 1 MiB prints in pages and KiB, not "0 MiB" (review 19, finding 3); two
 * QEMUs' holds under one name are two entries, each with its pid and state, and the VM row
 * counts only its own QEMU's (review 19, finding 4). */
START_TEST(test_status_small_and_twin_holds)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(JsonNode) vms = NULL;
  g_autofree char *holds = NULL, *expect = NULL, *size = NULL;
  HmmvTracker *small = hmmvd_test_bed_add_vm(&bed, "small", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  HmmvTracker *twin = hmmvd_test_bed_add_vm(&bed, "twin", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  HmmvTracker *other = hmmv_fake_tracker_new();
  guint64 held_small, held_twin, held_other;

  add_vm("beta");
  for (guint i = 0; i < 2; i++) {
    hmmvd_test_write_pages(small, 0, 8);
    hmmvd_test_write_pages(twin, 0, 512);
    hmmvd_vms_run_interval(bed.vms);
  }
  held_small = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(bed.core, "small"));
  held_twin = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(bed.core, "twin"));
  printf("# small holds %" G_GUINT64_FORMAT " pages of DRAM, twin (pid 4242) %" G_GUINT64_FORMAT
         "\n", held_small, held_twin);
  ck_assert_uint_gt(held_small, 0);
  ck_assert_uint_lt(held_small, HMMVD_PAGES_PER_MIB);
  ck_assert_uint_gt(held_twin, 0);

  ck_assert(hmmv_core_hold_dram(bed.core, "small", &error));
  hmmvd_vms_remove(bed.vms, "small");
  status = status_now(out);
  size = g_strdup_printf("%" G_GUINT64_FORMAT " pages (%" G_GUINT64_FORMAT " KiB)", held_small,
                         held_small * 4);
  expect = g_strdup_printf("held:        vm small %s (QEMU pid 4242 lives, reconnecting)\n",
                           size);
  ck_assert_msg(strstr(out->str, expect) != NULL, "no %s", expect);
  g_free(expect);
  expect = g_strdup_printf("held:        %s of the pool in all, 1 hold ", size);
  ck_assert_msg(strstr(out->str, expect) != NULL, "no %s", expect);
  ck_assert_ptr_null(strstr(out->str, " 0 MiB"));
  hmmvd_vms_add_unmanaged(bed.vms, "small", HMMVD_SOURCE_STANDALONE, "not reachable");
  vms = hmmvd_vms_to_json(bed.vms);
  g_string_truncate(out, 0);
  hmmvctl_print_vms(out, json_node_get_array(vms));
  show(out->str);
  g_free(expect);
  expect = g_strdup_printf("  small: %s of DRAM held for it beyond its own pages", size);
  ck_assert_msg(strstr(out->str, expect) != NULL, "no %s", expect);
  hmmvd_vms_remove(bed.vms, "small");
  hmmv_core_release_dram(bed.core, "small", 4242);

  /* twin's QEMU 4242 leaves with a hold; another QEMU (5151) under the name runs, leaves
   * with a hold too, and comes back, its placement not read yet */
  ck_assert(hmmv_core_hold_dram(bed.core, "twin", &error));
  hmmvd_vms_remove(bed.vms, "twin");
  ck_assert(hmmvd_vms_add_with_tracker(bed.vms, "twin", HMMVD_SOURCE_STANDALONE, 5151, NULL,
                                       hmmv_test_vm_new("twin", VM_PAGES), other, &error));
  for (guint i = 0; i < 2; i++) {
    hmmvd_test_write_pages(other, 0, 300);
    hmmvd_vms_run_interval(bed.vms);
  }
  held_other = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(bed.core, "twin"));
  ck_assert_uint_gt(held_other, 0);
  ck_assert(hmmv_core_hold_dram(bed.core, "twin", &error));
  hmmvd_vms_remove(bed.vms, "twin");
  other = hmmv_fake_tracker_new();
  ck_assert(hmmvd_vms_add_with_tracker(bed.vms, "twin", HMMVD_SOURCE_STANDALONE, 5151, NULL,
                                       hmmv_test_vm_new("twin", VM_PAGES), other, &error));
  g_clear_pointer(&status, json_node_unref);
  status = status_now(out);
  holds = status_holds(json_node_get_object(status));
  g_free(expect);
  expect = g_strdup_printf("twin/4242:%" G_GUINT64_FORMAT ":reconnecting,twin/5151:%"
                           G_GUINT64_FORMAT ":reading-placement=%" G_GUINT64_FORMAT, held_twin,
                           held_other, held_twin + held_other);
  ck_assert_str_eq(holds, expect);
  ck_assert_ptr_nonnull(strstr(out->str, "held:        vm twin "));
  ck_assert_ptr_nonnull(strstr(out->str, " (QEMU pid 4242 lives, reconnecting)\n"));
  ck_assert_ptr_nonnull(strstr(out->str, " (QEMU pid 5151 connected again, reading its "
                                         "placement)\n"));
  ck_assert_ptr_nonnull(strstr(out->str, " of the pool in all, 2 holds "));
  g_clear_pointer(&vms, json_node_unref);
  vms = hmmvd_vms_to_json(bed.vms);
  ck_assert_msg(vm_held(vms, "twin") == (gint64)held_other, "twin (pid 5151) row: %"
                G_GINT64_FORMAT " pages held, its own hold %" G_GUINT64_FORMAT, vm_held(vms,
                "twin"), held_other);
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
  tcase_add_test(tc, test_status_holds);
  tcase_add_test(tc, test_status_small_and_twin_holds);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
