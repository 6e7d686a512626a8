/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The patched QEMU's per-backend export and its pause (issue 9, "Cost": 10.0's 0012, 7.2's
 * 0006), under TCG with the test guest on two memory backends: m0 maps guest-physical
 * 0-64 MiB, m1 64-128 MiB (one NUMA node each), and the guest writes random pages in a
 * window across both (16-112 MiB).
 *
 *   exclude   hmmv-start with exclude=[m1] (by backend id, then by RAM block name): the
 *             region describes m0 only, query-hmmv-ramblocks says m1 is not tracked, and
 *             the window's bits are exactly the guest's writes in m0: its writes in m1
 *             never show
 *   refusals  an unknown name, a block that is not guest RAM (the BIOS ROM) and excluding
 *             every backend are refused, naming the reason; a plain start works after
 *   pause     writes A, hmmv-pause (it publishes A), writes B while paused, hmmv-sync says
 *             paused and publishes nothing (generation unchanged, the bits still exactly A),
 *             hmmv-resume, writes C, hmmv-sync: the bits are exactly A and C: nothing
 *             written while paused shows, no earlier bit is lost, and the writes after the
 *             resume show again
 *   tracker   libhmmv's qemu-dirty tracker as hmmvd runs it: exclude=[m1] (m1's writes never
 *             marked), paused 7 harvests in 8 while COARSE (they count no interval), resumed
 *             at once on FINE
 *   stopped   a QEMU stopped (SIGSTOP) while paused fails the next harvest (its hmmv-sync
 *             misses the deadline), and a resume it does not answer fails the harvest
 *             after it: as a missed hmmv-sync does; once it runs again (SIGCONT) and its
 *             late reply came, the tracker goes on with QEMU's real pause state
 *   missed    a hmmv-pause that misses its deadline (QEMU stopped right before it) is done
 *             by QEMU once it runs again, unknown to the tracker: the next harvest takes
 *             hmmv-sync's word (paused), so FINE resumes QEMU and the writes after show
 *
 * The consumer is the test itself (a memfd it maps, as test-qemu-region.c does), so it reads
 * exactly what QEMU put in the region. Skips (77) on a QEMU whose BUILD-INFO lists neither
 * patch.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <hmmv/qemu.h>
#include <hmmv/shm-abi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SERIAL_TIMEOUT_MS 60000
#define RAM_MIB 128
#define BASE_PFN 0x1000u    /* 16 MiB */
#define SPAN 24576u         /* 96 MiB: 16-112 MiB, across m0 and m1 */
#define M1_FIRST_PFN 0x4000u /* 64 MiB */

static char *qemu_path;
static char *guest_path;

static const char *const two_backends[] = {
  "-object", "memory-backend-ram,id=m0,size=64M",
  "-object", "memory-backend-ram,id=m1,size=64M",
  "-numa", "node,nodeid=0,memdev=m0",
  "-numa", "node,nodeid=1,memdev=m1",
  NULL,
};

typedef struct {
  HmmvQemuProc *proc;
  HmmvQmp *qmp;
  int fd;
  guint8 *map;
  gsize size;
} Pause;

/* command's error message (the command must fail). */
static char *
qmp_fails(Pause *p, const char *command, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = hmmv_qmp_execute(p->qmp, command, args, &error);

  ck_assert_msg(ret == NULL, "%s succeeded", command);
  return g_strdup(error->message);
}

static void
boot(Pause *p, const char *append)
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

static void
unmap_region(Pause *p)
{
  if (p->map != NULL && p->map != MAP_FAILED)
    munmap(p->map, p->size);
  p->map = NULL;
  if (p->fd >= 0)
    close(p->fd);
  p->fd = -1;
}

static void
shutdown_guest(Pause *p)
{
  unmap_region(p);
  g_clear_pointer(&p->qmp, hmmv_qmp_free);
  g_clear_pointer(&p->proc, hmmv_qemu_proc_free);
}

/* hmmv-start on a fresh sealable memfd, excluding the NULL-ended names; NULL on success
 * (the region mapped), else QEMU's error. */
static char *
try_start(Pause *p, const char *const *exclude)
{
  g_autoptr(GError) error = NULL;

  unmap_region(p);
  if (!hmmv_harness_start_export_full(p->qmp, "hmmv-test-pause", 0, exclude, &p->fd, &p->map,
                                      &p->size, &error))
    return g_strdup(error->message);
  return NULL;
}

static void
start(Pause *p, const char *const *exclude)
{
  g_autofree char *err = try_start(p, exclude);

  ck_assert_msg(err == NULL, "hmmv-start: %s", err);
}

static void
run_phase(Pause *p, guint k, GHashTable *wrote)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_qemu_proc_run_phase(p->proc, k, wrote, SERIAL_TIMEOUT_MS, &error), "%s",
                error->message);
}

/* hmmv-sync's result object (a new reference). */
static JsonObject *
sync_export(Pause *p)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(p->qmp, "hmmv-sync", NULL);

  return json_object_ref(json_node_get_object(ret));
}

static gboolean
query_paused(Pause *p)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(p->qmp, "query-hmmv", NULL);
  JsonObject *info = json_node_get_object(ret);

  ck_assert(json_object_get_boolean_member(info, "active"));
  ck_assert(json_object_has_member(info, "paused"));
  return json_object_get_boolean_member(info, "paused");
}

/* query-hmmv-ramblocks' entry for memory backend memdev (a new reference). */
static JsonObject *
block_of_memdev(Pause *p, const char *memdev)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(p->qmp, "query-hmmv-ramblocks", NULL);
  JsonArray *blocks = json_node_get_array(ret);

  for (guint i = 0; i < json_array_get_length(blocks); i++) {
    JsonObject *b = json_array_get_object_element(blocks, i);

    if (g_strcmp0(json_object_get_string_member_with_default(b, "memdev", ""), memdev) == 0)
      return json_object_ref(b);
  }
  ck_abort_msg("query-hmmv-ramblocks lists no block of memory backend %s", memdev);
  return NULL;
}

/* Is pfn's bit set in the region? Through the guest-physical ranges of every tracked block
 * (query-hmmv-ramblocks) and its descriptor (by name); blocks is that query's array. */
static gboolean
pfn_set(Pause *p, JsonArray *blocks, guint64 pfn)
{
  const struct hmmv_shm_header *hdr = (const struct hmmv_shm_header *)p->map;
  guint64 gpa = pfn << 12;

  for (guint i = 0; i < json_array_get_length(blocks); i++) {
    JsonObject *b = json_array_get_object_element(blocks, i);
    JsonArray *ranges = json_object_get_array_member(b, "ranges");
    const struct hmmv_shm_block *desc;
    guint64 index, page;
    const guint64 *bitmap;

    if (!json_object_get_boolean_member(b, "tracked"))
      continue;
    index = json_object_get_int_member(b, "index");
    ck_assert_uint_lt(index, hdr->nr_blocks);
    desc = (const struct hmmv_shm_block *)(p->map + HMMV_SHM_HEADER_SIZE) + index;
    ck_assert_str_eq(desc->id, json_object_get_string_member(b, "name"));
    for (guint r = 0; r < json_array_get_length(ranges); r++) {
      JsonObject *range = json_array_get_object_element(ranges, r);
      guint64 start = json_object_get_int_member(range, "gpa");
      guint64 size = json_object_get_int_member(range, "size");

      if (gpa < start || gpa >= start + size)
        continue;
      page = (json_object_get_int_member(range, "offset") + gpa - start) >> 12;
      ck_assert_uint_lt(page, desc->bitmap_words * 64);
      ck_assert_uint_le(desc->bitmap_offset + desc->bitmap_words * 8, p->size);
      bitmap = (const guint64 *)(p->map + desc->bitmap_offset);
      return (__atomic_load_n(&bitmap[page / 64], __ATOMIC_ACQUIRE) >> (page % 64)) & 1;
    }
  }
  return FALSE;
}

/* The window's set bits, read without harvesting, are exactly want (pfns); what says when. */
static void
assert_window(Pause *p, const char *what, GHashTable *want)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(p->qmp, "query-hmmv-ramblocks", NULL);
  JsonArray *blocks = json_node_get_array(ret);
  guint found = 0, extra = 0;

  for (guint64 pfn = BASE_PFN; pfn < BASE_PFN + SPAN; pfn++) {
    if (pfn_set(p, blocks, pfn)) {
      found++;
      extra += !g_hash_table_contains(want, GSIZE_TO_POINTER(pfn));
    }
  }
  printf("# %s: %u pages expected, %u bits set in the window, %u of them not expected\n",
         what, g_hash_table_size(want), found, extra);
  ck_assert_uint_gt(g_hash_table_size(want), 0);
  ck_assert_uint_eq(extra, 0);
  ck_assert_uint_eq(found, g_hash_table_size(want));
}

/* The pfns of set that lie in m0 (below 64 MiB) or in m1. */
static GHashTable *
split(GHashTable *set, gboolean m1)
{
  GHashTable *out = g_hash_table_new(g_direct_hash, g_direct_equal);
  GHashTableIter it;
  gpointer pfn;

  g_hash_table_iter_init(&it, set);
  while (g_hash_table_iter_next(&it, &pfn, NULL))
    if ((GPOINTER_TO_SIZE(pfn) >= M1_FIRST_PFN) == m1)
      g_hash_table_add(out, pfn);
  return out;
}

static void
assert_only_m0(Pause *p)
{
  const struct hmmv_shm_header *hdr = (const struct hmmv_shm_header *)p->map;
  g_autoptr(JsonObject) m0 = block_of_memdev(p, "m0");
  g_autoptr(JsonObject) m1 = block_of_memdev(p, "m1");
  const struct hmmv_shm_block *desc =
    (const struct hmmv_shm_block *)(p->map + HMMV_SHM_HEADER_SIZE);

  ck_assert_uint_eq(hdr->nr_blocks, 1);
  ck_assert_str_eq(desc->id, json_object_get_string_member(m0, "name"));
  ck_assert(json_object_get_boolean_member(m0, "tracked"));
  ck_assert(!json_object_get_boolean_member(m1, "tracked"));
  ck_assert(!json_object_has_member(m1, "index"));
}

/* exclude=[m1]: only m0 is described, and the guest's writes in m1 never show. */
START_TEST(test_exclude)
{
  g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) in_m0 = NULL;
  g_autoptr(GHashTable) in_m1 = NULL;
  g_autoptr(JsonObject) res = NULL;
  g_autoptr(JsonObject) m1 = NULL;
  const char *by_memdev[] = { "m1", NULL };
  const char *by_block[] = { NULL, NULL };
  g_autofree char *append =
    g_strdup_printf("phases=2 pages=400 pattern=random base=16M span=%u seed=31 wait=1", SPAN);
  guint64 dirty;
  Pause p;

  boot(&p, append);
  start(&p, by_memdev);
  assert_only_m0(&p);
  run_phase(&p, 0, wrote);
  res = sync_export(&p);
  dirty = json_object_get_int_member(res, "dirty-pages");
  in_m0 = split(wrote, FALSE);
  in_m1 = split(wrote, TRUE);
  printf("# exclude=[m1]: the guest wrote %u pages in m0 and %u in m1; the publication "
         "found %" G_GUINT64_FORMAT " pages written\n", g_hash_table_size(in_m0),
         g_hash_table_size(in_m1), dirty);
  ck_assert_uint_gt(g_hash_table_size(in_m1), 100);
  /* All of m0's, and fewer than m1's on top (what the guest's own stack and data add). */
  ck_assert_uint_ge(dirty, g_hash_table_size(in_m0));
  ck_assert_uint_lt(dirty, g_hash_table_size(in_m0) + g_hash_table_size(in_m1));
  assert_window(&p, "exclude=[m1], phase 0", in_m0);

  /* The same by RAM block name. */
  hmmv_test_qmp_ok(p.qmp, "hmmv-stop", NULL);
  m1 = block_of_memdev(&p, "m1");
  by_block[0] = json_object_get_string_member(m1, "name");
  start(&p, by_block);
  assert_only_m0(&p);
  g_hash_table_remove_all(wrote);
  run_phase(&p, 1, wrote);
  g_clear_pointer(&res, json_object_unref);
  res = sync_export(&p);
  g_clear_pointer(&in_m0, g_hash_table_unref);
  in_m0 = split(wrote, FALSE);
  assert_window(&p, "exclude=[m1's block name], phase 1", in_m0);
  shutdown_guest(&p);
}
END_TEST

/* Names that cannot be excluded are refused, with the reason; QEMU stays usable. */
START_TEST(test_exclude_refused)
{
  const char *unknown[] = { "no-such-backend", NULL };
  const char *rom[] = { "pc.bios", NULL };
  const char *all[] = { "m0", "m1", NULL };
  g_autofree char *err_unknown = NULL;
  g_autofree char *err_rom = NULL;
  g_autofree char *err_all = NULL;
  Pause p;

  boot(&p, "phases=1 pages=10 wait=1");
  err_unknown = try_start(&p, unknown);
  err_rom = try_start(&p, rom);
  err_all = try_start(&p, all);
  printf("# exclude=[no-such-backend]: %s\n# exclude=[pc.bios]: %s\n# exclude=[m0, m1]: %s\n",
         err_unknown, err_rom, err_all);
  ck_assert_msg(err_unknown != NULL && strstr(err_unknown, "no-such-backend") != NULL,
                "unknown name: %s", err_unknown);
  ck_assert_msg(err_rom != NULL && strstr(err_rom, "not guest RAM") != NULL, "ROM: %s",
                err_rom);
  ck_assert_msg(err_all != NULL && strstr(err_all, "every guest RAM block") != NULL,
                "all: %s", err_all);
  start(&p, NULL);
  ck_assert_uint_eq(((const struct hmmv_shm_header *)p.map)->nr_blocks, 2);
  shutdown_guest(&p);
}
END_TEST

/* A, pause, B, a paused sync, resume, C: the region ends with exactly A and C. */
START_TEST(test_pause_resume)
{
  g_autoptr(GHashTable) a = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) b = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) c = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) a_c = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(JsonObject) res = NULL;
  g_autoptr(JsonObject) res2 = NULL;
  g_autofree char *append =
    g_strdup_printf("phases=3 pages=300 pattern=random base=16M span=%u seed=32 wait=1", SPAN);
  g_autofree char *err_pause = NULL;
  g_autofree char *err_resume = NULL;
  GHashTableIter it;
  gpointer pfn;
  guint64 gen, b_only = 0;
  Pause p;

  boot(&p, append);
  start(&p, NULL);
  ck_assert(!query_paused(&p));
  res = sync_export(&p);
  ck_assert(!json_object_get_boolean_member(res, "paused"));
  run_phase(&p, 0, a);

  /* The pause publishes A and keeps it. */
  hmmv_test_qmp_ok(p.qmp, "hmmv-pause", NULL);
  ck_assert(query_paused(&p));
  gen = ((const struct hmmv_shm_header *)p.map)->generation;
  assert_window(&p, "after hmmv-pause (A published)", a);

  /* B while paused: a sync publishes nothing and says paused. */
  run_phase(&p, 1, b);
  g_clear_pointer(&res, json_object_unref);
  res = sync_export(&p);
  ck_assert(json_object_get_boolean_member(res, "paused"));
  ck_assert_uint_eq(json_object_get_int_member(res, "dirty-pages"), 0);
  ck_assert_uint_eq(json_object_get_int_member(res, "generation"), gen);
  ck_assert_uint_eq(((const struct hmmv_shm_header *)p.map)->generation, gen);
  ck_assert_uint_eq(((const struct hmmv_shm_header *)p.map)->seq % 2, 0);
  hmmv_test_qmp_ok(p.qmp, "hmmv-pause", NULL);    /* pausing a paused export does nothing */
  assert_window(&p, "B written while paused, then hmmv-sync (paused)", a);

  /* Resume, C: exactly A and C, none of B's own pages. */
  hmmv_test_qmp_ok(p.qmp, "hmmv-resume", NULL);
  ck_assert(!query_paused(&p));
  hmmv_test_qmp_ok(p.qmp, "hmmv-resume", NULL);   /* resuming a running export does nothing */
  run_phase(&p, 2, c);
  res2 = sync_export(&p);
  ck_assert(!json_object_get_boolean_member(res2, "paused"));
  ck_assert_uint_eq(json_object_get_int_member(res2, "generation"), gen + 1);
  g_hash_table_iter_init(&it, a);
  while (g_hash_table_iter_next(&it, &pfn, NULL))
    g_hash_table_add(a_c, pfn);
  g_hash_table_iter_init(&it, c);
  while (g_hash_table_iter_next(&it, &pfn, NULL))
    g_hash_table_add(a_c, pfn);
  g_hash_table_iter_init(&it, b);
  while (g_hash_table_iter_next(&it, &pfn, NULL))
    b_only += !g_hash_table_contains(a_c, pfn);
  printf("# A %u, B %u (%" G_GUINT64_FORMAT " of them in neither A nor C), C %u pages\n",
         g_hash_table_size(a), g_hash_table_size(b), b_only, g_hash_table_size(c));
  ck_assert_uint_gt(b_only, 100);
  assert_window(&p, "after hmmv-resume and C", a_c);

  /* Paused at the stop: hmmv-stop works; both commands want an active export. */
  hmmv_test_qmp_ok(p.qmp, "hmmv-pause", NULL);
  hmmv_test_qmp_ok(p.qmp, "hmmv-stop", NULL);
  err_pause = qmp_fails(&p, "hmmv-pause", NULL);
  err_resume = qmp_fails(&p, "hmmv-resume", NULL);
  printf("# hmmv-pause after hmmv-stop: %s\n", err_pause);
  ck_assert(strstr(err_pause, "not active") != NULL);
  ck_assert(strstr(err_resume, "not active") != NULL);
  shutdown_guest(&p);
}
END_TEST

/* Guest pfns in the window that the harvest marked written. */
static GHashTable *
harvested(HmmvVm *vm, HmmvAccess *acc)
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

static gboolean
same_set(GHashTable *a, GHashTable *b)
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

/* hmmvd's side, libhmmv's qemu-dirty tracker as hmmvd builds it (exclude, pause while the
 * core says COARSE): the VM keeps m1's pages but they are never marked written; COARSE
 * pauses QEMU's export after the next harvest for HMMV_PAUSE_CYCLE - 1 harvests that count
 * no interval and mark nothing (the guest writing all along), then one tracked interval;
 * FINE resumes it at once. */
START_TEST(test_tracker)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *append =
    g_strdup_printf("phases=%u pages=300 pattern=random base=16M span=%u seed=33 wait=1",
                    HMMV_PAUSE_CYCLE + 4, SPAN);
  const char *const exclude[] = { "m1", NULL };
  HmmvQemuDirtyOptions options = { .interval_ms = 0, .exclude = exclude,
                                   .pause_when_coarse = TRUE };
  HmmvQemuDirtyStats stats;
  guint k = 0;
  Pause p;

  boot(&p, append);
  vm = hmmv_qemu_vm_new(p.qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(g_steal_pointer(&p.qmp), &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  p.qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);   /* borrowed from here on */
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats) && stats.excluding);
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);

  /* FINE: every interval tracked, m1's writes never marked */
  for (; k < 2; k++) {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) in_m0 = NULL;
    g_autoptr(GHashTable) got = NULL;

    run_phase(&p, k, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    in_m0 = split(wrote, FALSE);
    got = harvested(vm, acc);
    printf("# tracker, exclude=[m1], phase %u: %u written in m0, %u in m1; %u marked\n", k,
           g_hash_table_size(in_m0), g_hash_table_size(wrote) - g_hash_table_size(in_m0),
           g_hash_table_size(got));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(same_set(got, in_m0));
    ck_assert(!hmmv_tracker_is_paused(tracker));
  }

  /* daemon-paced: one hmmv-sync a harvest while tracking */
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.syncs, 2);
  /* COARSE: the next harvest is whole, then paused for HMMV_PAUSE_CYCLE - 1 harvests, which
   * still send hmmv-sync (it publishes nothing, but it is the liveness check: test_stopped) */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  for (guint h = 0; h < HMMV_PAUSE_CYCLE + 1; h++, k++) {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;
    g_autoptr(GHashTable) in_m0 = NULL;
    gboolean was_paused = hmmv_tracker_is_paused(tracker);

    run_phase(&p, k, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
    got = harvested(vm, acc);
    in_m0 = split(wrote, FALSE);
    printf("# tracker, coarse harvest %u: %s before, %" G_GUINT64_FORMAT " intervals, %u "
           "marked of %u written in m0; %s after\n", h, was_paused ? "paused" : "tracking",
           (guint64)acc->intervals, g_hash_table_size(got), g_hash_table_size(in_m0),
           hmmv_tracker_is_paused(tracker) ? "paused" : "tracking");
    ck_assert_int_eq(was_paused, h >= 1 && h < HMMV_PAUSE_CYCLE);
    if (was_paused) {
      ck_assert_uint_eq(acc->intervals, 0);
    } else {
      ck_assert_uint_eq(acc->intervals, 1);
      ck_assert(same_set(got, in_m0));
    }
    ck_assert_int_eq(query_paused(&p), hmmv_tracker_is_paused(tracker));
  }
  ck_assert(hmmv_tracker_is_paused(tracker));
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  printf("# tracker: %" G_GUINT64_FORMAT " hmmv-sync for %" G_GUINT64_FORMAT " harvests (%u "
         "paused)\n", stats.syncs, stats.harvests, HMMV_PAUSE_CYCLE - 1);
  ck_assert_uint_eq(stats.harvests, 2 + HMMV_PAUSE_CYCLE + 1);
  ck_assert_uint_eq(stats.syncs, stats.harvests);

  /* FINE while paused: resumed at once, and the next interval is tracked whole */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  ck_assert(!hmmv_tracker_is_paused(tracker));
  ck_assert(!query_paused(&p));
  {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;
    g_autoptr(GHashTable) in_m0 = NULL;

    run_phase(&p, k, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    got = harvested(vm, acc);
    in_m0 = split(wrote, FALSE);
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(same_set(got, in_m0));
  }
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.pauses, 2);
  hmmv_tracker_stop(tracker);
  p.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  shutdown_guest(&p);
}
END_TEST

/* Until the socket transport has every reply due (the late one of a command that missed its
 * deadline), read without waiting; 60 s at most (liveness). */
static void
catch_up(HmmvQmp *qmp)
{
  g_autoptr(GError) error = NULL;
  guint polls = 0;

  while (!hmmv_qmp_catch_up(qmp, &error)) {
    ck_assert_msg(error == NULL, "%s", error->message);
    ck_assert_msg(++polls < 3000, "QEMU never answered the late command");
    g_usleep(20 * 1000);
  }
  printf("# caught up after %u polls\n", polls);
}

/* A QEMU that stops answering (SIGSTOP) while its export is paused: the tracker must find it
 * on the next harvest, as it does an unpaused one (its hmmv-sync misses the deadline), and a
 * resume it does not answer (set_watch FINE) must fail the harvest after it the same way.
 * Before, a paused harvest only checked kill(pid, 0), which a stopped QEMU passes, and a
 * missed hmmv-resume was only a warning: the VM was never reported not answering. Counted in
 * harvests: each of the two must fail. */
START_TEST(test_stopped)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *append =
    g_strdup_printf("phases=4 pages=300 pattern=random base=16M span=%u seed=34 wait=1", SPAN);
  HmmvQemuDirtyOptions options = { .interval_ms = 0, .pause_when_coarse = TRUE };
  gboolean ok;
  int pid;
  Pause p;

  boot(&p, append);
  pid = hmmv_qemu_proc_get_pid(p.proc);
  ck_assert_int_gt(pid, 1);
  vm = hmmv_qemu_vm_new(p.qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(g_steal_pointer(&p.qmp), &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  p.qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);   /* borrowed from here on */
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);

  /* COARSE: one whole harvest, then the export is paused */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
  ck_assert(hmmv_tracker_is_paused(tracker));
  ck_assert(query_paused(&p));

  /* Stopped while paused: the very next harvest fails, on hmmv-sync's deadline. */
  ck_assert_int_eq(kill(pid, SIGSTOP), 0);
  hmmv_access_clear(acc);
  ok = hmmv_tracker_harvest(tracker, vm, acc, &error);
  printf("# stopped while paused, harvest 1: %s\n", ok ? "succeeded" : error->message);
  ck_assert_msg(!ok, "a harvest of a stopped, paused QEMU succeeded");
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO) ||
            g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(strstr(error->message, "hmmv-sync") != NULL);
  g_clear_error(&error);

  /* FINE while stopped: the resume misses its deadline, and the next harvest fails with it
   * (before any other exchange). */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  ck_assert(hmmv_tracker_is_paused(tracker));   /* QEMU was never told otherwise */
  hmmv_access_clear(acc);
  ok = hmmv_tracker_harvest(tracker, vm, acc, &error);
  printf("# stopped, resume on FINE, harvest 2: %s\n", ok ? "succeeded" : error->message);
  ck_assert_msg(!ok, "the harvest after a resume QEMU did not answer succeeded");
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO) ||
            g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(strstr(error->message, "hmmv-resume") != NULL);
  g_clear_error(&error);

  ck_assert_int_eq(kill(pid, SIGCONT), 0);
  /* Running again: the late hmmv-sync reply comes (the resume was never sent: nothing goes
   * while a reply is due), then the tracker works on: QEMU still paused as the tracker knows,
   * resumed at the end of the next harvest (FINE), the writes after it all seen. */
  catch_up(p.qmp);
  ck_assert(query_paused(&p));
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
  ck_assert(!hmmv_tracker_is_paused(tracker));
  ck_assert(!query_paused(&p));
  {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;

    run_phase(&p, 0, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    got = harvested(vm, acc);
    printf("# running again: %" G_GUINT64_FORMAT " interval(s), %u of %u written pages seen\n",
           (guint64)acc->intervals, g_hash_table_size(got), g_hash_table_size(wrote));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(same_set(got, wrote));
  }
  hmmv_tracker_stop(tracker);
  p.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  shutdown_guest(&p);
}
END_TEST

/* A QMP transport around QEMU's socket that stops QEMU (SIGSTOP, waited for) right before it
 * forwards the first command containing stop_before: that command then misses its deadline,
 * and QEMU does it once it runs again. */
typedef struct {
  HmmvQmp *inner;
  int pid;
  const char *stop_before;
} StopQmp;

static gboolean
process_stopped(int pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *stat = NULL;
  const char *paren;

  if (!g_file_get_contents(path, &stat, NULL, NULL) || (paren = strrchr(stat, ')')) == NULL)
    return FALSE;
  return paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

static char *
stop_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  StopQmp *sq = qmp->priv;

  if (sq->stop_before != NULL && strstr(command_json, sq->stop_before) != NULL) {
    sq->stop_before = NULL;
    ck_assert_int_eq(kill(sq->pid, SIGSTOP), 0);
    for (guint i = 0; !process_stopped(sq->pid); i++) {
      ck_assert_msg(i < 6000, "QEMU did not stop");   /* 60 s: liveness */
      g_usleep(10 * 1000);
    }
  }
  return sq->inner->ops->transact(sq->inner, command_json, error);
}

static char *
stop_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  return hmmv_qmp_transact_fd(((StopQmp *)qmp->priv)->inner, command_json, fd, error);
}

static void
stop_destroy(HmmvQmp *qmp)
{
  StopQmp *sq = qmp->priv;

  hmmv_qmp_free(sq->inner);
  g_free(sq);
}

static const struct hmmv_qmp_ops stop_ops = {
  .name = "stop-before",
  .transact = stop_transact,
  .transact_fd = stop_transact_fd,
  .destroy = stop_destroy,
};

/* issue 8: a hmmv-pause that missed its deadline (QEMU stopped as it was sent) is done by QEMU
 * once it runs again; the tracker, which took it as not done, thought QEMU tracking. FINE then
 * resumed nothing (the tracker resumes only what it knows paused): QEMU stayed paused, every
 * harvest counted 0 intervals and the guest's writes went unseen. Now the harvest after takes
 * QEMU's word (hmmv-sync: paused), the cycle resumes it, and the next phase's writes are all
 * seen. Counted in harvests. */
START_TEST(test_missed_pause)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *append =
    g_strdup_printf("phases=4 pages=300 pattern=random base=16M span=%u seed=35 wait=1", SPAN);
  HmmvQemuDirtyOptions options = { .interval_ms = 0, .pause_when_coarse = TRUE };
  HmmvQemuDirtyStats stats;
  StopQmp *sq = g_new0(StopQmp, 1);
  HmmvQmp *socket_qmp;
  HmmvQmp *wrapped;
  gboolean ok;
  Pause p;

  boot(&p, append);
  sq->pid = hmmv_qemu_proc_get_pid(p.proc);
  ck_assert_int_gt(sq->pid, 1);
  vm = hmmv_qemu_vm_new(p.qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  hmmv_vm_set_pid(vm, sq->pid);   /* the wrapper has no peer credentials */
  socket_qmp = sq->inner = g_steal_pointer(&p.qmp);
  wrapped = hmmv_qmp_new(&stop_ops, sq, &error);
  ck_assert(wrapped != NULL);
  tracker = hmmv_qemu_dirty_tracker_new(wrapped, &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  p.qmp = wrapped;   /* borrowed from here on */
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);

  /* COARSE: a whole harvest, then hmmv-pause, which QEMU, stopped, does not answer */
  hmmv_qmp_set_timeout_ms(socket_qmp, 1000);
  sq->stop_before = "\"hmmv-pause\"";
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  ok = hmmv_tracker_harvest(tracker, vm, acc, &error);
  printf("# hmmv-pause sent to a stopped QEMU: %s\n", ok ? "succeeded" : error->message);
  ck_assert_msg(!ok && sq->stop_before == NULL, "the pause was not missed");
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(strstr(error->message, "hmmv-pause") != NULL);
  g_clear_error(&error);
  ck_assert(!hmmv_tracker_is_paused(tracker));   /* as far as the tracker knows */

  /* Running again: QEMU does the pause late; its reply is dropped. */
  ck_assert_int_eq(kill(sq->pid, SIGCONT), 0);
  hmmv_qmp_set_timeout_ms(socket_qmp, 5000);
  catch_up(socket_qmp);
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(socket_qmp), 1);
  ck_assert(query_paused(&p));

  /* FINE (a thawed VM's placement is read again; the core may watch it closely): the next
   * harvest learns QEMU is paused and resumes it at its end */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  printf("# the harvest after: %" G_GUINT64_FORMAT " pause resync(s); QEMU %s, the tracker "
         "says %s\n", stats.pause_resyncs, query_paused(&p) ? "paused" : "tracking",
         hmmv_tracker_is_paused(tracker) ? "paused" : "tracking");
  ck_assert_uint_eq(stats.pause_resyncs, 1);
  ck_assert(!query_paused(&p));
  ck_assert(!hmmv_tracker_is_paused(tracker));
  {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;

    run_phase(&p, 0, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    got = harvested(vm, acc);
    printf("# after the resync: %" G_GUINT64_FORMAT " interval(s), %u of %u written pages "
           "seen\n", (guint64)acc->intervals, g_hash_table_size(got), g_hash_table_size(wrote));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(g_hash_table_size(wrote) > 0 && same_set(got, wrote));
  }
  hmmv_tracker_stop(tracker);
  p.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  shutdown_guest(&p);
}
END_TEST

static const char *const patches[] = {
  "0006-hmmv-export-chosen-memory-backends-and-pause-without.patch", /* 7.2 */
  "0011-hmmv-export-chosen-memory-backends-and-pause-without.patch", /* 10.0 */
  "0012-hmmv-export-chosen-memory-backends-and-pause-without.patch", /* 10.0, core split */
};

static Suite *
pause_suite(void)
{
  Suite *suite = suite_create("qemu-pause");
  TCase *tc = tcase_create("tcg");

  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_exclude);
  tcase_add_test(tc, test_exclude_refused);
  tcase_add_test(tc, test_pause_resume);
  tcase_add_test(tc, test_tracker);
  tcase_add_test(tc, test_stopped);
  tcase_add_test(tc, test_missed_pause);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare("needs root: the tracker case maps regions QEMU created",
                             &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (!hmmv_harness_built_with(qemu_path, patches, G_N_ELEMENTS(patches),
                               "per-backend export and pause (7.2: 0006; 10.0: 0012)", &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(pause_suite());
}
