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
 *
 * A QEMU that stops answering during the pause cycle is test-qemu-pause-stop.c's; the bed both
 * boot is pause-bed.c. The consumer is the test itself (a memfd it maps, as test-qemu-region.c does), so it reads
 * exactly what QEMU put in the region. Skips (77) on a QEMU whose BUILD-INFO lists neither
 * patch.
 */
#include "../hmmv-test.h"
#include "pause-bed.h"

#include <hmmv/qemu.h>
#include <hmmv/shm-abi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* command's error message (the command must fail). */
static char *
qmp_fails(Pause *p, const char *command, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = hmmv_qmp_execute(p->qmp, command, args, &error);

  ck_assert_msg(ret == NULL, "%s succeeded", command);
  return g_strdup(error->message);
}

/* hmmv-start on a fresh sealable memfd, excluding the NULL-ended names; NULL on success
 * (the region mapped), else QEMU's error. */
static char *
try_start(Pause *p, const char *const *exclude)
{
  g_autoptr(GError) error = NULL;

  pause_bed_unmap(p);
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

/* hmmv-sync's result object (a new reference). */
static JsonObject *
sync_export(Pause *p)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(p->qmp, "hmmv-sync", NULL);

  return json_object_ref(json_node_get_object(ret));
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

  pause_bed_boot(&p, append);
  start(&p, by_memdev);
  assert_only_m0(&p);
  pause_bed_run_phase(&p, 0, wrote);
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
  pause_bed_run_phase(&p, 1, wrote);
  g_clear_pointer(&res, json_object_unref);
  res = sync_export(&p);
  g_clear_pointer(&in_m0, g_hash_table_unref);
  in_m0 = split(wrote, FALSE);
  assert_window(&p, "exclude=[m1's block name], phase 1", in_m0);
  pause_bed_shutdown(&p);
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

  pause_bed_boot(&p, "phases=1 pages=10 wait=1");
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
  pause_bed_shutdown(&p);
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

  pause_bed_boot(&p, append);
  start(&p, NULL);
  ck_assert(!pause_bed_query_paused(&p));
  res = sync_export(&p);
  ck_assert(!json_object_get_boolean_member(res, "paused"));
  pause_bed_run_phase(&p, 0, a);

  /* The pause publishes A and keeps it. */
  hmmv_test_qmp_ok(p.qmp, "hmmv-pause", NULL);
  ck_assert(pause_bed_query_paused(&p));
  gen = ((const struct hmmv_shm_header *)p.map)->generation;
  assert_window(&p, "after hmmv-pause (A published)", a);

  /* B while paused: a sync publishes nothing and says paused. */
  pause_bed_run_phase(&p, 1, b);
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
  ck_assert(!pause_bed_query_paused(&p));
  hmmv_test_qmp_ok(p.qmp, "hmmv-resume", NULL);   /* resuming a running export does nothing */
  pause_bed_run_phase(&p, 2, c);
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
  pause_bed_shutdown(&p);
}
END_TEST

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

  pause_bed_boot(&p, append);
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

    pause_bed_run_phase(&p, k, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    in_m0 = split(wrote, FALSE);
    got = pause_bed_harvested(vm, acc);
    printf("# tracker, exclude=[m1], phase %u: %u written in m0, %u in m1; %u marked\n", k,
           g_hash_table_size(in_m0), g_hash_table_size(wrote) - g_hash_table_size(in_m0),
           g_hash_table_size(got));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(pause_bed_same_set(got, in_m0));
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

    pause_bed_run_phase(&p, k, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
    got = pause_bed_harvested(vm, acc);
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
      ck_assert(pause_bed_same_set(got, in_m0));
    }
    ck_assert_int_eq(pause_bed_query_paused(&p), hmmv_tracker_is_paused(tracker));
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
  ck_assert(!pause_bed_query_paused(&p));
  {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;
    g_autoptr(GHashTable) in_m0 = NULL;

    pause_bed_run_phase(&p, k, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    got = pause_bed_harvested(vm, acc);
    in_m0 = split(wrote, FALSE);
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(pause_bed_same_set(got, in_m0));
  }
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.pauses, 2);
  hmmv_tracker_stop(tracker);
  p.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  pause_bed_shutdown(&p);
}
END_TEST

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
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!pause_bed_prepare(&why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(pause_suite());
}
