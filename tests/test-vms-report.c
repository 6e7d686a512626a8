/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the daemon's VM table makes of an interval's report (issue 8): a late harvest is
 * counted, not an error, and the placement view names the pages whose last move failed. On a
 * real core: fake trackers, the sim mover, no QEMU (as test-vms.c). */
#include "hmmvd-test.h"
#include "vms.h"

#include <string.h>

#define VM_PAGES 1024u
#define MIB 256u   /* pages */

static HmmvdTestBed bed;

static void
setup(void)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  /* 2 MiB of DRAM (512 pages), room for everything on the slow node. */
  hmmvd_test_bed_init(&bed, 512u * HMMV_PAGE_SIZE, 16u * VM_PAGES * HMMV_PAGE_SIZE, &params);
}

static void
teardown(void)
{
  hmmvd_test_bed_clear(&bed);
}

static HmmvTracker *
add_vm(const char *name, guint64 nr_pages, HmmvdSource source)
{
  return hmmvd_test_bed_add_vm(&bed, name, nr_pages, source);
}

static void
write_pages(HmmvTracker *tracker, guint64 first, guint64 nr)
{
  hmmvd_test_write_pages(tracker, first, nr);
}

/* A late harvest (HMMV_ERROR_BUSY: through libvirt, a QEMU that had not answered hmmv-sync
 * in time) is not an error (issue 8): counted in harvests-late-total, and the VM keeps its
 * quota's budget and is moved to it in that interval. Before, it was counted as an error,
 * and its budget was the 512 pages it held while none of them moved. */
START_TEST(test_late_harvest_is_not_an_error)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) vms_json = NULL;
  HmmvQuota max1 = { .max_pages = MIB, .weight = 100, .managed = TRUE };
  HmmvTracker *a = add_vm("a", VM_PAGES, HMMVD_SOURCE_LIBVIRT);
  HmmvdVmInfo *info = hmmvd_vms_lookup(bed.vms, "a");

  write_pages(a, 0, 512);                 /* the 512 pages of DRAM */
  hmmvd_vms_run_interval(bed.vms);
  ck_assert_uint_eq(info->last.dram_pages, 512);
  ck_assert(hmmvd_vms_set_quota(bed.vms, "a", &max1, &error));
  write_pages(a, 0, 16);                  /* kept for the next harvest */
  hmmv_fake_tracker_fail_next(a, HMMV_ERROR_BUSY);
  hmmvd_vms_run_interval(bed.vms);
  ck_assert_uint_eq(info->errors, 0);
  ck_assert(info->last_error == NULL);
  ck_assert_uint_eq(info->last_good_interval, 1);
  ck_assert_uint_eq(info->harvests_late, 1);
  ck_assert_uint_eq(info->last.budget_pages, MIB);
  ck_assert_uint_eq(info->last.dram_pages, MIB);
  ck_assert_uint_eq(info->last.demoted, 512 - MIB);
  ck_assert_uint_eq(info->last.written, 0);
  hmmvd_vms_run_interval(bed.vms);     /* the writes kept come with the next harvest */
  ck_assert_uint_eq(info->last.written, 16);
  ck_assert_uint_eq(info->harvests_late, 1);
  vms_json = hmmvd_vms_to_json(bed.vms);
  ck_assert_int_eq(json_object_get_int_member(
                     json_array_get_object_element(json_node_get_array(vms_json), 0),
                     "harvests-late-total"), 1);
}
END_TEST

/* The placement view names the pages whose last move failed (issue 8: the testbed matches
 * each page the kernel places elsewhere to one of them): 8 pages that cannot be isolated
 * among the ones a dram-max of 1 MiB demotes. */
START_TEST(test_placement_names_failed_pages)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) view = NULL;
  HmmvQuota max1 = { .max_pages = MIB, .weight = 100, .managed = TRUE };
  HmmvTracker *a = add_vm("a", VM_PAGES, HMMVD_SOURCE_STANDALONE);
  JsonArray *failed;

  write_pages(a, 0, 512);
  hmmvd_vms_run_interval(bed.vms);
  ck_assert(hmmv_sim_mover_set_page_kind(bed.mover, hmmv_core_lookup_vm(bed.core, "a"),
                                         100, 8, HMMV_SIM_PAGE_BUSY, &error));
  ck_assert(hmmvd_vms_set_quota(bed.vms, "a", &max1, &error));
  hmmvd_vms_run_interval(bed.vms);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.move_failed, 8);
  view = hmmvd_vm_placement_to_json(bed.vms, "a", &error);
  failed = json_object_get_array_member(json_node_get_object(view), "move-failed-pages");
  ck_assert_uint_eq(json_array_get_length(failed), 8);
  for (guint i = 0; i < 8; i++)
    ck_assert_int_eq(json_array_get_int_element(failed, i), 100 + i);
}
END_TEST

static Suite *
vms_report_suite(void)
{
  Suite *s = suite_create("vms-report");
  TCase *tc = tcase_create("report");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_late_harvest_is_not_an_error);
  tcase_add_test(tc, test_placement_names_failed_pages);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(vms_report_suite());
}
