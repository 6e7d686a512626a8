/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's VM table when a VM's QEMU misses a QMP deadline (issue 8; vms-interval.c,
 * handle_timed_out): the VM is frozen in the core, not dropped from it. Real core, sim mover,
 * fake trackers whose harvest fails HMMV_ERROR_TIMED_OUT as the libvirt transport's does;
 * counted in intervals.
 *
 * Before, the VM left the core (status "not answering, retried") and its DRAM was counted
 * against nobody until its source added it again from scratch: the other VM's budget took it.
 * Checked: the frozen VM stays in the core, status "not answering (frozen, N MiB on DRAM kept
 * counted): ...", its DRAM in the status JSON (frozen-dram-pages, held-outside-pages) and the
 * other VM's budget within the pool less it, for as many intervals as it stays frozen; thawed
 * (its source saw QEMU answer), it is "managed" and run again; removed (its domain stopped) it
 * leaves the core and its DRAM is the other VM's to take.
 */
#include "hmmvd-test.h"
#include "vms.h"

#include <string.h>

#define VM_PAGES 2048u
#define DRAM 1536u            /* the DRAM node: 6 MiB */
#define HELD 1024u            /* a's guest wrote 4 MiB on DRAM before b came */
#define FROZEN 10u

static HmmvdTestBed bed;

static void
setup(void)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  hmmvd_test_bed_init(&bed, (guint64)DRAM * HMMV_PAGE_SIZE,
                      (guint64)8 * VM_PAGES * HMMV_PAGE_SIZE, &params);
}

static void
teardown(void)
{
  hmmvd_test_bed_clear(&bed);
}

static guint64
status_uint(const char *member)
{
  g_autoptr(JsonNode) root = hmmvd_status_to_json(bed.vms, bed.topo, "sim");

  return (guint64)json_object_get_int_member(json_node_get_object(root), member);
}

/* The vms JSON's member of VM name. */
static JsonNode *
vm_member(const char *name, const char *member)
{
  g_autoptr(JsonNode) root = hmmvd_vms_to_json(bed.vms);
  JsonArray *array = json_node_get_array(root);

  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonObject *vm = json_array_get_object_element(array, i);

    if (g_strcmp0(json_object_get_string_member(vm, "name"), name) == 0)
      return json_node_copy(json_object_get_member(vm, member));
  }
  ck_abort_msg("vm %s not in the vms JSON", name);
  return NULL;
}

/* a holds HELD pages of DRAM; b comes, hot, wanting all of it; a's QEMU stops answering. */
static HmmvTracker *
freeze_a(HmmvTracker **b_out)
{
  HmmvTracker *a = hmmvd_test_bed_add_vm(&bed, "a", VM_PAGES, HMMVD_SOURCE_LIBVIRT);
  HmmvTracker *b = hmmvd_test_bed_add_vm(&bed, "b", VM_PAGES, HMMVD_SOURCE_LIBVIRT);
  const HmmvdVmInfo *info;

  for (guint i = 0; i < 3; i++) {
    hmmvd_test_write_pages(a, 0, HELD);
    hmmvd_vms_run_interval(bed.vms);
  }
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.dram_pages, HELD);
  hmmv_fake_tracker_fail_next(a, HMMV_ERROR_TIMED_OUT);
  hmmvd_test_write_pages(b, 0, VM_PAGES);
  hmmvd_vms_run_interval(bed.vms);
  info = hmmvd_vms_lookup(bed.vms, "a");
  ck_assert(info->frozen);
  ck_assert(info->in_core);
  ck_assert(!info->dropped);
  ck_assert_uint_eq(info->freezes, 1);
  ck_assert_msg(g_str_has_prefix(info->status, "not answering (frozen, 4 MiB on DRAM kept "
                                 "counted): "), "%s", info->status);
  *b_out = b;
  return a;
}

START_TEST(test_frozen_keeps_its_dram_counted)
{
  HmmvTracker *b, *a = freeze_a(&b);
  g_autoptr(JsonNode) frozen = vm_member("a", "frozen");
  g_autoptr(JsonNode) in_core = vm_member("a", "in-core");
  guint64 b_budget_max = 0;

  ck_assert(json_node_get_boolean(frozen));
  ck_assert(json_node_get_boolean(in_core));
  for (guint i = 0; i < FROZEN; i++) {
    const HmmvdVmInfo *ia, *ib;

    hmmvd_test_write_pages(b, 0, VM_PAGES);
    hmmvd_test_write_pages(a, HELD, 64);   /* queued: not harvested while frozen */
    hmmvd_vms_run_interval(bed.vms);
    ia = hmmvd_vms_lookup(bed.vms, "a");
    ib = hmmvd_vms_lookup(bed.vms, "b");
    ck_assert(ia->frozen && ia->in_core && ia->last.frozen);
    ck_assert_uint_eq(ia->last.dram_pages, HELD);
    ck_assert_uint_eq(ia->last.written, 0);
    ck_assert_uint_eq(ia->errors, 0);   /* frozen intervals are not failed ones */
    ck_assert_uint_le(ib->last.budget_pages, DRAM - HELD);
    ck_assert_uint_le(ia->last.dram_pages + ib->last.dram_pages, DRAM);
    ck_assert_uint_eq(status_uint("vms-frozen"), 1);
    ck_assert_uint_eq(status_uint("frozen-dram-pages"), HELD);
    ck_assert_uint_eq(status_uint("held-outside-pages"), HELD);
    ck_assert_uint_eq(status_uint("vms-managed"), 2);
    b_budget_max = MAX(b_budget_max, ib->last.budget_pages);
  }
  printf("# a frozen %u intervals holding %u pages: b's budget at most %" G_GUINT64_FORMAT
         " of a %u-page DRAM node; a: %s\n", FROZEN, HELD, b_budget_max, DRAM,
         hmmvd_vms_lookup(bed.vms, "a")->status);

  /* its source saw QEMU answer: thawed, run again (what was queued is harvested) */
  ck_assert(hmmvd_vms_thaw(bed.vms, "a"));
  ck_assert(!hmmvd_vms_thaw(bed.vms, "a"));   /* not frozen any more */
  ck_assert(!hmmvd_vms_thaw(bed.vms, "nosuch"));
  ck_assert_str_eq(hmmvd_vms_lookup(bed.vms, "a")->status, "managed");
  hmmvd_vms_run_interval(bed.vms);
  ck_assert(!hmmvd_vms_lookup(bed.vms, "a")->frozen);
  ck_assert(!hmmvd_vms_lookup(bed.vms, "a")->last.frozen);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.written, 64);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.placement_unread, 0);
  ck_assert_str_eq(hmmvd_vms_lookup(bed.vms, "a")->status, "managed");
  ck_assert_uint_eq(status_uint("vms-frozen"), 0);
  ck_assert_uint_eq(status_uint("held-outside-pages"), 0);
  (void)a;
}
END_TEST

/* Frozen again after a thaw: counted; and removed while frozen (its domain stopped), it
 * leaves the core and b may take its DRAM. */
START_TEST(test_frozen_removed)
{
  HmmvTracker *b, *a = freeze_a(&b);
  guint64 budget = 0;

  ck_assert(hmmvd_vms_thaw(bed.vms, "a"));
  hmmv_fake_tracker_fail_next(a, HMMV_ERROR_TIMED_OUT);
  hmmvd_vms_run_interval(bed.vms);
  ck_assert(hmmvd_vms_lookup(bed.vms, "a")->frozen);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->freezes, 2);
  hmmvd_vms_remove(bed.vms, "a");
  ck_assert(hmmvd_vms_lookup(bed.vms, "a") == NULL);
  ck_assert_uint_eq(hmmv_core_get_nr_vms(bed.core), 1);
  for (guint i = 0; i < 3; i++) {
    hmmvd_test_write_pages(b, 0, VM_PAGES);
    hmmvd_vms_run_interval(bed.vms);
    budget = hmmvd_vms_lookup(bed.vms, "b")->last.budget_pages;
  }
  ck_assert_uint_gt(budget, DRAM - HELD);
  ck_assert_uint_eq(status_uint("held-outside-pages"), 0);
}
END_TEST

int
main(void)
{
  Suite *suite = suite_create("vms-frozen");
  TCase *tc = tcase_create("frozen");

  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_frozen_keeps_its_dram_counted);
  tcase_add_test(tc, test_frozen_removed);
  suite_add_tcase(suite, tc);
  return hmmv_test_run(suite);
}
