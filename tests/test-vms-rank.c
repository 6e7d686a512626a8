/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the daemon shows of a VM whose pages cannot be ranked (issue 8; the core's side is
 * tests/test-rank.c): hmmvctl vms --json ("ranking", "ranking-note" and the figures), hmmvctl
 * status (JSON and text), the metric hmmv_vm_rank_flat, and one log line when the VM becomes
 * flat and one when it is ranked again, not one an interval. On a real core: fake trackers,
 * the sim mover, no QEMU (as test-vms.c).
 */
#include "hmmvctl.h"
#include "hmmvd-test.h"
#include "metrics.h"
#include "vms.h"

#include <string.h>

#define VM_PAGES 1024u

static HmmvdTestBed bed;

/* The daemon's log lines about ranking, counted by kind (the writer is set once, in main). */
static guint flat_warnings, ranked_messages;

static GLogWriterOutput
count_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  for (gsize i = 0; i < n_fields; i++) {
    const char *message;

    if (strcmp(fields[i].key, "MESSAGE") != 0)
      continue;
    message = fields[i].value;
    if (strstr(message, "vm alpha: ranking flat, ") != NULL &&
        (level & G_LOG_LEVEL_WARNING) != 0)
      flat_warnings++;
    if (strstr(message, "vm alpha: ranking no longer flat") != NULL &&
        (level & G_LOG_LEVEL_MESSAGE) != 0)
      ranked_messages++;
    if (strstr(message, "ranking") != NULL)
      printf("# log: %s\n", message);
  }
  return G_LOG_WRITER_HANDLED;
}

static void
setup(void)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  /* 2 MiB of DRAM (512 pages), room for everything on the slow node. */
  hmmvd_test_bed_init(&bed, 512u * HMMV_PAGE_SIZE, 16u * VM_PAGES * HMMV_PAGE_SIZE, &params);
  flat_warnings = 0;
  ranked_messages = 0;
}

static void
teardown(void)
{
  hmmvd_test_bed_clear(&bed);
}

static JsonObject *
vm_json(JsonNode *vms, const char *name)
{
  JsonArray *array = json_node_get_array(vms);

  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonObject *vm = json_array_get_object_element(array, i);

    if (g_strcmp0(json_object_get_string_member(vm, "name"), name) == 0)
      return vm;
  }
  ck_abort_msg("vm %s not in the table", name);
  return NULL;
}

/* alpha writes all of its 1,024 pages every interval, twice its DRAM; beta writes 64 of its
 * 1,024 (they fit). alpha is flat from its 8th interval, shown everywhere and logged once;
 * beta never. Then alpha writes 64 pages an interval: ranked again after 5 such intervals,
 * logged once. */
START_TEST(test_flat_shown_and_logged_once)
{
  HmmvTracker *alpha = hmmvd_test_bed_add_vm(&bed, "alpha", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  HmmvTracker *beta = hmmvd_test_bed_add_vm(&bed, "beta", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  g_autoptr(JsonNode) vms = NULL;
  g_autoptr(JsonNode) status = NULL;
  g_autoptr(JsonNode) after = NULL;
  g_autoptr(GString) text = g_string_new(NULL);
  g_autoptr(GString) table = g_string_new(NULL);
  g_autofree char *metrics = NULL;
  g_autofree char *metrics_after = NULL;
  JsonObject *vm;
  JsonArray *flat;
  const char *note;

  for (guint i = 0; i < 12; i++) {
    hmmvd_test_write_pages(alpha, 0, VM_PAGES);
    hmmvd_test_write_pages(beta, 0, 64);
    hmmvd_vms_run_interval(bed.vms);
    /* flat from the 8th: once warned, in that interval */
    ck_assert_uint_eq(flat_warnings, i + 1 >= HMMV_RANK_FLAT_ENTER ? 1 : 0);
  }
  vms = hmmvd_vms_to_json(bed.vms);
  vm = vm_json(vms, "alpha");
  ck_assert_str_eq(json_object_get_string_member(vm, "ranking"), "flat");
  ck_assert_int_eq(json_object_get_int_member(vm, "rank-window"), HMMV_RANK_FLAT_WINDOW);
  ck_assert_int_eq(json_object_get_int_member(vm, "rank-flat-intervals"),
                   HMMV_RANK_FLAT_WINDOW);
  ck_assert_int_eq(json_object_get_int_member(vm, "rank-flat-percent"), 100);
  ck_assert_int_eq(json_object_get_int_member(vm, "rank-warm-pages"), VM_PAGES);
  note = json_object_get_string_member(vm, "ranking-note");
  ck_assert_ptr_nonnull(note);
  printf("# note: %s\n", note);
  ck_assert_ptr_nonnull(strstr(note, "in 10 of the last 10 sampled intervals it wrote all of "
                                     "the 1024 pages it touched lately, more than its DRAM "
                                     "budget in each (in those intervals: 1024 pages written, "
                                     "budget "));
  ck_assert_ptr_nonnull(strstr(note, "try a shorter interval-ms"));
  vm = vm_json(vms, "beta");
  ck_assert_str_eq(json_object_get_string_member(vm, "ranking"), "ranked");
  ck_assert(json_object_get_null_member(vm, "ranking-note"));

  /* hmmvctl vms and hmmvctl status: the note, for alpha only */
  hmmvctl_print_vms(table, json_node_get_array(vms));
  ck_assert_ptr_nonnull(strstr(table->str, "  alpha: ranking: flat, in 10 of the last 10 "));
  ck_assert_ptr_null(strstr(table->str, "beta: ranking"));
  status = hmmvd_status_to_json(bed.vms, bed.topo, "sim");
  flat = json_object_get_array_member(json_node_get_object(status), "vms-rank-flat");
  ck_assert_uint_eq(json_array_get_length(flat), 1);
  ck_assert_str_eq(json_object_get_string_member(json_array_get_object_element(flat, 0),
                                                 "name"), "alpha");
  ck_assert_str_eq(json_object_get_string_member(json_array_get_object_element(flat, 0),
                                                 "note"), note);
  hmmvctl_print_status(text, json_node_get_object(status));
  {
    g_autofree char *line = g_strndup(strstr(text->str, "ranking:"),
                                      strcspn(strstr(text->str, "ranking:"), "\n"));

    printf("# %s\n", line);
  }
  ck_assert_ptr_nonnull(strstr(text->str,
                               "\nranking:     vm alpha flat, in 10 of the last 10 "));
  ck_assert_ptr_null(strstr(text->str, "vm beta flat"));

  /* the metric */
  metrics = hmmvd_metrics_format(bed.vms, bed.topo);
  ck_assert_ptr_nonnull(strstr(metrics, "# TYPE hmmv_vm_rank_flat gauge\n"));
  ck_assert_ptr_nonnull(strstr(metrics, "hmmv_vm_rank_flat{vm=\"alpha\"} 1\n"));
  ck_assert_ptr_nonnull(strstr(metrics, "hmmv_vm_rank_flat{vm=\"beta\"} 0\n"));

  /* alpha's writes now fit: ranked again once 5 or fewer of the last 10 were flat */
  for (guint i = 0; i < 20; i++) {
    hmmvd_test_write_pages(alpha, 0, 64);
    hmmvd_test_write_pages(beta, 0, 64);
    hmmvd_vms_run_interval(bed.vms);
    ck_assert_uint_eq(ranked_messages,
                      i + 1 >= HMMV_RANK_FLAT_WINDOW - HMMV_RANK_FLAT_LEAVE ? 1 : 0);
  }
  ck_assert_uint_eq(flat_warnings, 1);
  after = hmmvd_vms_to_json(bed.vms);
  ck_assert_str_eq(json_object_get_string_member(vm_json(after, "alpha"), "ranking"), "ranked");
  metrics_after = hmmvd_metrics_format(bed.vms, bed.topo);
  ck_assert_ptr_nonnull(strstr(metrics_after, "hmmv_vm_rank_flat{vm=\"alpha\"} 0\n"));
}
END_TEST

/* Review 18, F3: the note's figures cover the intervals of the verdict. alpha is flat (all of
 * its 1,024 pages written an interval, twice the DRAM), then its max drops to 1 MiB for one
 * more such interval, then it writes 64 pages in two: still flat (8 of the last 10), but the
 * budget of the interval now is neither what it had in most of the flat intervals nor one it
 * wrote more than. The note gives the range of the flat intervals' budgets and written pages,
 * as recorded interval by interval here; before, it said "more than its DRAM budget of B
 * pages" with B this interval's budget. */
START_TEST(test_note_covers_window)
{
  HmmvTracker *alpha = hmmvd_test_bed_add_vm(&bed, "alpha", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  HmmvTracker *beta = hmmvd_test_bed_add_vm(&bed, "beta", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  HmmvQuota max1 = { .min_pages = 0, .max_pages = HMMVD_PAGES_PER_MIB, .weight = 100,
                     .managed = TRUE };
  g_autoptr(GError) error = NULL;
  g_autofree char *note = NULL, *expect = NULL, *budgets = NULL;
  guint64 budget[16], written[16], least = G_MAXUINT64, most = 0;
  const HmmvdVmInfo *info;
  guint n = 0;

  for (guint i = 0; i < 15; i++) {
    if (i == 12)
      ck_assert(hmmvd_vms_set_quota(bed.vms, "alpha", &max1, &error));
    hmmvd_test_write_pages(alpha, 0, i < 13 ? VM_PAGES : 64);
    hmmvd_test_write_pages(beta, 0, 64);
    hmmvd_vms_run_interval(bed.vms);
    info = hmmvd_vms_lookup(bed.vms, "alpha");
    budget[n] = info->last.budget_pages;
    written[n++] = info->last.written;
    printf("# interval %u: alpha wrote %" G_GUINT64_FORMAT ", budget %" G_GUINT64_FORMAT
           ", %s, %u of the last %u flat\n", i, info->last.written, info->last.budget_pages,
           info->last.rank_flat ? "flat" : "ranked", info->last.rank_flat_intervals,
           info->last.rank_window);
  }
  /* the last 10 intervals: those alpha wrote all of its pages in, more than its budget, are
   * the flat ones */
  for (guint i = n - HMMV_RANK_FLAT_WINDOW; i < n; i++) {
    if (written[i] != VM_PAGES)
      continue;
    ck_assert_uint_gt(written[i], budget[i]);
    least = MIN(least, budget[i]);
    most = MAX(most, budget[i]);
  }
  info = hmmvd_vms_lookup(bed.vms, "alpha");
  ck_assert(info->last.rank_flat);
  ck_assert_uint_eq(info->last.rank_flat_intervals, 8);
  ck_assert_uint_eq(info->last.written, 64);
  ck_assert_uint_lt(least, most);   /* budgets differed over the window: a range to show */
  budgets = g_strdup_printf("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, least, most);
  note = hmmvd_rank_flat_note(&info->last);
  printf("# note: %s\n", note);
  expect = g_strdup_printf("in 8 of the last 10 sampled intervals it wrote all of the 1024 "
                           "pages it touched lately, more than its DRAM budget in each (in "
                           "those intervals: 1024 pages written, budget %s pages): with one "
                           "dirty bit a page and interval its hot pages look like the rest and "
                           "are not found; try a shorter interval-ms", budgets);
  ck_assert_str_eq(note, expect);
}
END_TEST

int
main(void)
{
  Suite *s = suite_create("vms-rank");
  TCase *tc = tcase_create("rank");

  g_log_set_writer_func(count_writer, NULL, NULL);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_flat_shown_and_logged_once);
  tcase_add_test(tc, test_note_covers_window);
  suite_add_tcase(s, tc);
  return hmmv_test_run(s);
}
