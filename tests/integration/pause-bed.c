/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bed of the pause suites (see pause-bed.h).
 */
#include "pause-bed.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Set once by pause_bed_prepare, before any test. */
static char *qemu_path;
static char *guest_path;

static const char *const two_backends[] = {
  "-object", "memory-backend-ram,id=m0,size=64M",
  "-object", "memory-backend-ram,id=m1,size=64M",
  "-numa", "node,nodeid=0,memdev=m0",
  "-numa", "node,nodeid=1,memdev=m1",
  NULL,
};

static const char *const patches[] = {
  "0006-hmmv-export-chosen-memory-backends-and-pause-without.patch", /* 7.2 */
  "0011-hmmv-export-chosen-memory-backends-and-pause-without.patch", /* 10.0 */
  "0012-hmmv-export-chosen-memory-backends-and-pause-without.patch", /* 10.0, core split */
};

gboolean
pause_bed_prepare(char **why)
{
  return hmmv_harness_prepare("needs root: the tracker case maps regions QEMU created",
                              &qemu_path, &guest_path, why) &&
         hmmv_harness_built_with(qemu_path, patches, G_N_ELEMENTS(patches),
                                 "per-backend export and pause (7.2: 0006; 10.0: 0012)", why);
}

void
pause_bed_boot(Pause *p, const char *append)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ready = NULL;

  memset(p, 0, sizeof(*p));
  p->fd = -1;
  p->proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", RAM_MIB, append, two_backends,
                                 &error);
  ck_assert_msg(p->proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(p->proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  p->qmp = hmmv_qemu_proc_qmp(p->proc, &error);
  ck_assert_msg(p->qmp != NULL, "%s", error ? error->message : "");
}

void
pause_bed_unmap(Pause *p)
{
  if (p->map != NULL && p->map != MAP_FAILED)
    munmap(p->map, p->size);
  p->map = NULL;
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

void
pause_bed_shutdown(Pause *p)
{
  pause_bed_unmap(p);
  g_clear_pointer(&p->qmp, hmmv_qmp_free);
  g_clear_pointer(&p->proc, hmmv_qemu_proc_free);
}

void
pause_bed_run_phase(Pause *p, guint k, GHashTable *wrote)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_qemu_proc_run_phase(p->proc, k, wrote, SERIAL_TIMEOUT_MS, &error), "%s",
                error->message);
}

gboolean
pause_bed_query_paused(Pause *p)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(p->qmp, "query-hmmv", NULL);
  JsonObject *info = json_node_get_object(ret);

  ck_assert(json_object_get_boolean_member(info, "active"));
  ck_assert(json_object_has_member(info, "paused"));
  return json_object_get_boolean_member(info, "paused");
}

/* Guest pfns in the window that the harvest marked written. */
GHashTable *
pause_bed_harvested(HmmvVm *vm, HmmvAccess *acc)
{
  GHashTable *set = g_hash_table_new(g_direct_hash, g_direct_equal);

  for (guint64 page = 0; page < acc->nr_pages; page++) {
    guint64 pfn;

    if (!hmmv_bitmap_test(acc->writes, page))
      continue;
    pfn = hmmv_vm_page_to_gpa(vm, page) >> HMMV_PAGE_SHIFT;
    if (pfn >= BASE_PFN && pfn < BASE_PFN + SPAN)
      g_hash_table_add(set, GSIZE_TO_POINTER(pfn));
  }
  return set;
}

gboolean
pause_bed_same_set(GHashTable *a, GHashTable *b)
{
  GHashTableIter it;
  gpointer key;

  if (g_hash_table_size(a) != g_hash_table_size(b))
    return FALSE;
  g_hash_table_iter_init(&it, a);
  while (g_hash_table_iter_next(&it, &key, NULL))
    if (!g_hash_table_contains(b, key))
      return FALSE;
  return TRUE;
}
