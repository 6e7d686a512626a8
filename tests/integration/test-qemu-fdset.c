/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How the qemu-dirty tracker hands its region to a real patched QEMU (issue 9, "one fd passed
 * with add-fd"): in an fd set (add-fd, hmmv-start's fdset-id, then remove-fd at once) where
 * the QEMU's hmmv-start takes one (10.0's patch 0013, 0012 before the export core split), else
 * with getfd (the 7.2 series, 10.0 before add-fd). Under TCG, one QEMU running the test guest:
 *
 *   - the way the tracker says it took is the one this QEMU supports (build.sh's BUILD-INFO
 *     beside the binary lists the series; a QEMU built some other way must take fd sets);
 *   - query-hmmv names the fd set (and no fdname), or the getfd name;
 *   - with an fd set: query-fdsets shows only that set, holding no fd (the tracker removed
 *     its own; QEMU's duplicate keeps the set), and after hmmv-stop no set at all;
 *   - the guest's writes of one phase are harvested exactly through that region;
 *   - started a second time on the same QEMU (a restart of hmmvd), the same again: no fd set
 *     is left over from the first start.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <stdio.h>
#include <string.h>

#define BASE_PFN 0x1000u    /* the guest's default window base, 16 MiB */
#define SPAN 2048u
#define SERIAL_TIMEOUT_MS 60000

static char *qemu_path;
static char *guest_path;

/* Whether this QEMU's hmmv-start takes an fd set: build.sh's BUILD-INFO lists 10.0's add-fd
 * patch (0012; 0013 since the export core and its QMP commands are two patches, see
 * qemu-patches/10.0/series); a QEMU built some other way is expected to. */
static gboolean
qemu_takes_fdsets(const char *qemu)
{
  static const char *const patches[] = {
    "0012-hmmv-take-the-region-from-an-fd-set-add-fd.patch",
    "0013-hmmv-take-the-region-from-an-fd-set-add-fd.patch",
  };
  g_autofree char *why = NULL;

  return hmmv_harness_built_with(qemu, patches, G_N_ELEMENTS(patches), "add-fd", &why);
}

static JsonNode *
qmp_ok(HmmvQmp *qmp, const char *command)
{
  g_autoptr(GError) error = NULL;
  JsonNode *ret = hmmv_qmp_execute(qmp, command, NULL, &error);

  ck_assert_msg(ret != NULL, "%s: %s", command, error ? error->message : "");
  return ret;
}

/* query-fdsets: the number of sets; *fds the fds of the one with id (-1: none such). */
static guint
fdsets(HmmvQmp *qmp, gint64 id, gint *fds)
{
  g_autoptr(JsonNode) ret = qmp_ok(qmp, "query-fdsets");
  JsonArray *sets;

  ck_assert(JSON_NODE_HOLDS_ARRAY(ret));
  sets = json_node_get_array(ret);
  *fds = -1;
  for (guint i = 0; i < json_array_get_length(sets); i++) {
    JsonObject *set = json_array_get_object_element(sets, i);

    ck_assert(set != NULL && json_object_has_member(set, "fdset-id"));
    if (json_object_get_int_member(set, "fdset-id") == id)
      *fds = (gint)json_array_get_length(json_object_get_array_member(set, "fds"));
  }
  return json_array_get_length(sets);
}

/* One start of the tracker on qmp, its checks, one exact phase k, hmmv-stop. */
static void
start_and_check(HmmvTracker *tracker, HmmvVm *vm, HmmvQemuProc *proc, guint k,
                gboolean want_fdset)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), NULL);
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(JsonNode) info_node = NULL;
  HmmvQmp *qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  HmmvQemuDirtyStats stats;
  JsonObject *info;
  guint found = 0, elsewhere = 0;
  gint fds;

  ck_assert(acc != NULL);
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  printf("# start %u: region passed with %s\n", k, stats.region_passed);
  ck_assert_str_eq(stats.region_passed, want_fdset ? "add-fd" : "getfd");

  info_node = qmp_ok(qmp, "query-hmmv");
  ck_assert(JSON_NODE_HOLDS_OBJECT(info_node));
  info = json_node_get_object(info_node);
  ck_assert(json_object_get_boolean_member(info, "active"));
  if (want_fdset) {
    gint64 id;

    ck_assert_msg(json_object_has_member(info, "fdset-id"), "query-hmmv names no fd set");
    ck_assert(!json_object_has_member(info, "fdname"));
    id = json_object_get_int_member(info, "fdset-id");
    /* Only the tracker's set, and its fd already removed: QEMU's duplicate holds it. */
    ck_assert_uint_eq(fdsets(qmp, id, &fds), 1);
    printf("# start %u: fd set %" G_GINT64_FORMAT ", %d fd(s) left in it\n", k, id, fds);
    ck_assert_int_eq(fds, 0);
  } else {
    ck_assert_str_eq(json_object_get_string_member(info, "fdname"), "hmmv-region");
  }

  /* The region works: the harvest of phase k holds exactly the pages the guest wrote. */
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));   /* what came before */
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_qemu_proc_run_phase(proc, k, expected, SERIAL_TIMEOUT_MS, &error), "%s",
                error ? error->message : "");
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                error ? error->message : "");
  for (guint64 page = 0; page < acc->nr_pages; page++) {
    guint64 pfn;

    if (!hmmv_bitmap_test(acc->writes, page))
      continue;
    pfn = hmmv_vm_page_to_gpa(vm, page) >> HMMV_PAGE_SHIFT;
    if (pfn < BASE_PFN || pfn >= BASE_PFN + SPAN)
      continue;   /* the guest's stack and image, not its test window */
    if (g_hash_table_contains(expected, GSIZE_TO_POINTER(pfn)))
      found++;
    else
      elsewhere++;
  }
  printf("# start %u: guest wrote %u pages, harvest found %u of them and %u others\n", k,
         g_hash_table_size(expected), found, elsewhere);
  ck_assert_uint_gt(g_hash_table_size(expected), 0);
  ck_assert_uint_eq(found, g_hash_table_size(expected));
  ck_assert_uint_eq(elsewhere, 0);

  hmmv_tracker_stop(tracker);   /* hmmv-stop: QEMU closes its duplicate */
  g_clear_pointer(&info_node, json_node_unref);
  info_node = qmp_ok(qmp, "query-hmmv");
  ck_assert(!json_object_get_boolean_member(json_node_get_object(info_node), "active"));
  /* Whichever way it went, nothing is left in an fd set. */
  ck_assert_uint_eq(fdsets(qmp, -1, &fds), 0);
}

START_TEST(test_region_handover)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ready = NULL;
  g_autofree char *append = g_strdup_printf("phases=2 pages=200 pattern=random span=%u "
                                            "seed=5 wait=1", SPAN);
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  gboolean want_fdset = qemu_takes_fdsets(qemu_path);
  HmmvQmp *qmp;

  printf("# %s: hmmv-start %s (BUILD-INFO)\n", qemu_path,
         want_fdset ? "takes an fd set" : "takes no fd set: getfd");
  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128, append, NULL, &error);
  ck_assert_msg(proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  start_and_check(tracker, vm, proc, 0, want_fdset);
  start_and_check(tracker, vm, proc, 1, want_fdset);
}
END_TEST

static Suite *
qemu_fdset_suite(void)
{
  Suite *suite = suite_create("qemu-fdset");
  TCase *tc = tcase_create("tcg");

  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_region_handover);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare("needs root: the tracker maps regions QEMU created", &qemu_path,
                            &guest_path, &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(qemu_fdset_suite());
}
