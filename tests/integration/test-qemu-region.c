/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The patched QEMU against a hostile consumer of its shared region (issue 9): the daemon can
 * write anything into the region and do anything to the memfd, and QEMU must neither trust
 * it nor fault on it.
 *
 *   - descriptors rewritten (bitmap_offset 1 << 46, huge bitmap_words, header counters) and
 *     then hmmv-sync: QEMU survives, publishes where it laid the bitmaps out, and reports its
 *     own counters;
 *   - the memfd truncated or grown: refused by the seals QEMU set; its pages punched out:
 *     QEMU keeps publishing;
 *   - fds QEMU cannot seal (plain file, memfd without MFD_ALLOW_SEALING, write-sealed memfd)
 *     are refused with a reason;
 *   - fuzz: random bytes all over the region between publications (a QEMU timer publishing
 *     every 3 ms meanwhile), and each phase of guest writes still exported exactly.
 *
 * The test guest (tests/guest) writes a known set of pages per phase; pc.ram maps guest
 * page p at block page p below 3.5 GiB, so the bits of the test window are known.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <errno.h>
#include <fcntl.h>
#include <hmmv/shm-abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE_PFN 0x1000u    /* the guest's default window base, 16 MiB */
#define SPAN 2048u
#define SERIAL_TIMEOUT_MS 60000

static char *qemu_path;
static char *guest_path;

typedef struct {
  HmmvQemuProc *proc;
  HmmvQmp *qmp;
  int fd;
  guint8 *map;
  gsize size;
  /* The test's own copy of pc.ram's descriptor, read before any scribbling. */
  guint64 bitmap_offset;
  guint64 bitmap_words;
} Raw;

/* hmmv-start on fd (passed as fdname); NULL on success, else QEMU's error. */
static char *
try_start(Raw *raw, int fd, guint interval_ms)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;

  ck_assert_msg(hmmv_qmp_send_fd(raw->qmp, fd, "region", &error), "getfd: %s",
                error ? error->message : "");
  json_object_set_string_member(args, "fdname", "region");
  json_object_set_int_member(args, "interval-ms", interval_ms);
  ret = hmmv_qmp_execute(raw->qmp, "hmmv-start", args, &error);
  return ret != NULL ? NULL : g_strdup(error->message);
}

static void
raw_boot(Raw *raw, const char *append)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ready = NULL;

  memset(raw, 0, sizeof(*raw));
  raw->fd = -1;
  raw->proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128, append, NULL, &error);
  ck_assert_msg(raw->proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(raw->proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  raw->qmp = hmmv_qemu_proc_qmp(raw->proc, &error);
  ck_assert_msg(raw->qmp != NULL, "%s", error ? error->message : "");
}

/* Boot, export into a fresh sealable memfd, map it and note pc.ram's bitmap. */
static void
raw_start(Raw *raw, const char *append, guint interval_ms)
{
  g_autoptr(GError) error = NULL;
  const struct hmmv_shm_header *hdr;

  raw_boot(raw, append);
  ck_assert_msg(hmmv_harness_start_export_full(raw->qmp, "hmmv-test-region", interval_ms, NULL,
                                               &raw->fd, &raw->map, &raw->size, &error),
                "%s", error->message);
  hdr = (const struct hmmv_shm_header *)raw->map;
  ck_assert_uint_le(hdr->nr_blocks, HMMV_SHM_MAX_BLOCKS);
  for (guint i = 0; i < hdr->nr_blocks; i++) {
    const struct hmmv_shm_block *b =
      (const struct hmmv_shm_block *)(raw->map + HMMV_SHM_HEADER_SIZE) + i;

    if (strncmp(b->id, "pc.ram", sizeof(b->id)) == 0) {
      raw->bitmap_offset = b->bitmap_offset;
      raw->bitmap_words = b->bitmap_words;
    }
  }
  ck_assert_msg(raw->bitmap_offset != 0, "no pc.ram block in the region");
  ck_assert_uint_le(raw->bitmap_offset + raw->bitmap_words * 8, raw->size);
  ck_assert_uint_ge(raw->bitmap_words * 64, BASE_PFN + SPAN);
}

static void
raw_stop(Raw *raw)
{
  if (raw->map != NULL && raw->map != MAP_FAILED)
    munmap(raw->map, raw->size);
  if (raw->fd >= 0)
    close(raw->fd);
  g_clear_pointer(&raw->qmp, hmmv_qmp_free);
  g_clear_pointer(&raw->proc, hmmv_qemu_proc_free);
}

static guint64 *
window_words(Raw *raw)
{
  return (guint64 *)(raw->map + raw->bitmap_offset) + BASE_PFN / 64;
}

/* Drain the test window's bits as the daemon would (exchange with 0). */
static void
clear_window(Raw *raw)
{
  guint64 *w = window_words(raw);

  for (guint i = 0; i < SPAN / 64; i++)
    __atomic_exchange_n(&w[i], 0, __ATOMIC_ACQ_REL);
}

/* Run phase k (the guest waits for a byte) and add the pfns it says it wrote to expected. */
static void
run_phase(Raw *raw, guint k, GHashTable *expected)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_qemu_proc_run_phase(raw->proc, k, expected, SERIAL_TIMEOUT_MS, &error),
                "%s", error->message);
}

/* hmmv-sync; returns the generation QEMU reports. */
static guint64
sync_export(Raw *raw)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(raw->qmp, "hmmv-sync", NULL);

  return json_object_get_int_member(json_node_get_object(ret), "generation");
}

/* The window's bits are exactly the pages the guest wrote. */
static void
assert_window_exact(Raw *raw, const char *what, GHashTable *expected)
{
  const guint64 *w = window_words(raw);
  guint found = 0, wrong = 0;

  for (guint p = 0; p < SPAN; p++) {
    gboolean set = (__atomic_load_n(&w[p / 64], __ATOMIC_ACQUIRE) >> (p % 64)) & 1;

    if (set) {
      found++;
      wrong += !g_hash_table_contains(expected, GSIZE_TO_POINTER(BASE_PFN + p));
    }
  }
  printf("# %s: guest wrote %u pages, the export has %u bits set in the window, %u not "
         "written\n", what, g_hash_table_size(expected), found, wrong);
  ck_assert_uint_gt(g_hash_table_size(expected), 0);
  ck_assert_uint_eq(wrong, 0);
  ck_assert_uint_eq(found, g_hash_table_size(expected));
}

static guint64
query_generation(Raw *raw)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(raw->qmp, "query-hmmv", NULL);
  JsonObject *info = json_node_get_object(ret);

  ck_assert(json_object_get_boolean_member(info, "active"));
  return json_object_get_int_member(info, "generation");
}

/* The review's crash: pc.ram's bitmap_offset set to 1 << 46, then hmmv-sync, killed QEMU
 * with SIGSEGV. Every descriptor and the header's counters are rewritten here. */
START_TEST(test_rewritten_descriptors)
{
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  struct hmmv_shm_header *hdr;
  guint64 gen0, gen;
  Raw raw;

  raw_start(&raw, "phases=1 pages=200 pattern=random span=2048 seed=21 wait=1", 0);
  hdr = (struct hmmv_shm_header *)raw.map;
  gen0 = sync_export(&raw);
  for (guint i = 0; i < hdr->nr_blocks; i++) {
    struct hmmv_shm_block *b = (struct hmmv_shm_block *)(raw.map + HMMV_SHM_HEADER_SIZE) + i;

    b->bitmap_offset = G_GUINT64_CONSTANT(1) << 46;
    b->bitmap_words = G_MAXUINT64 / 8;
    b->used_length = G_GUINT64_CONSTANT(1) << 50;
    b->pages_published = G_GUINT64_CONSTANT(1) << 62;
  }
  hdr->nr_blocks = HMMV_SHM_MAX_BLOCKS * 1000;
  hdr->seq = 12345;
  hdr->generation = G_GUINT64_CONSTANT(1) << 60;
  hdr->publications = G_GUINT64_CONSTANT(1) << 60;
  hdr->pages_published = G_GUINT64_CONSTANT(1) << 60;
  clear_window(&raw);
  run_phase(&raw, 0, expected);
  gen = sync_export(&raw);
  /* QEMU is alive, counts its own generations and published where it laid out the bitmap. */
  ck_assert_uint_eq(gen, gen0 + 1);
  ck_assert_uint_eq(query_generation(&raw), gen0 + 1);
  ck_assert_uint_eq(hdr->generation, gen0 + 1);
  ck_assert_uint_eq(hdr->seq % 2, 0);
  ck_assert_uint_eq(hmmv_qemu_proc_wait(raw.proc, 0), -1);   /* still running */
  assert_window_exact(&raw, "after descriptors were rewritten to 1<<46", expected);
  raw_stop(&raw);
}
END_TEST

/* Truncating or growing the region is refused by the seals QEMU set; punching its pages out
 * (allowed: the region is not write-sealed) does not make QEMU fault. */
START_TEST(test_truncate_refused)
{
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  struct stat st;
  int seals;
  Raw raw;

  raw_start(&raw, "phases=1 pages=100 pattern=random span=2048 seed=22 wait=1", 0);
  seals = fcntl(raw.fd, F_GET_SEALS);
  ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
  errno = 0;
  ck_assert_int_eq(ftruncate(raw.fd, 4096), -1);
  ck_assert_int_eq(errno, EPERM);
  ck_assert_int_eq(ftruncate(raw.fd, 0), -1);
  ck_assert_int_eq(ftruncate(raw.fd, (off_t)raw.size * 2), -1);
  ck_assert_int_eq(fstat(raw.fd, &st), 0);
  ck_assert_uint_eq(st.st_size, raw.size);
  printf("# ftruncate to 4096, 0 and twice the size: refused (EPERM), %zu bytes stay\n",
         raw.size);
  sync_export(&raw);
  ck_assert_int_eq(fallocate(raw.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                             (off_t)raw.size), 0);
  run_phase(&raw, 0, expected);
  sync_export(&raw);
  ck_assert_uint_eq(hmmv_qemu_proc_wait(raw.proc, 0), -1);
  assert_window_exact(&raw, "after every page of the region was punched out", expected);
  raw_stop(&raw);
}
END_TEST

/* Regions QEMU cannot seal (or must not write) are refused with a reason, and QEMU stays
 * usable: a proper memfd works afterwards. */
START_TEST(test_unsealable_refused)
{
  struct {
    const char *what;
    int fd;
  } bad[4];
  g_autofree char *ok = NULL;
  int fd;
  Raw raw;

  raw_boot(&raw, "phases=1 pages=10 wait=1");
  bad[0].what = "a regular file";
  bad[0].fd = open(g_get_tmp_dir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  bad[1].what = "a memfd without MFD_ALLOW_SEALING";
  bad[1].fd = memfd_create("hmmv-test-nosealing", MFD_CLOEXEC);
  bad[2].what = "a write-sealed memfd";
  bad[2].fd = memfd_create("hmmv-test-wseal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ck_assert_int_eq(fcntl(bad[2].fd, F_ADD_SEALS, F_SEAL_WRITE), 0);
  bad[3].what = "a memfd sealed at the wrong size";
  bad[3].fd = memfd_create("hmmv-test-size", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ck_assert_int_eq(ftruncate(bad[3].fd, 4096), 0);
  ck_assert_int_eq(fcntl(bad[3].fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *err = NULL;

    ck_assert_int_ge(bad[i].fd, 0);
    err = try_start(&raw, bad[i].fd, 0);
    ck_assert_msg(err != NULL, "hmmv-start accepted %s", bad[i].what);
    printf("# hmmv-start with %s: %s\n", bad[i].what, err);
    close(bad[i].fd);
  }
  fd = memfd_create("hmmv-test-good", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ok = try_start(&raw, fd, 0);
  ck_assert_msg(ok == NULL, "hmmv-start on a good memfd: %s", ok);
  close(fd);
  raw_stop(&raw);
}
END_TEST

#define FUZZ_ROUNDS 24

/* Random bytes all over the region (header, descriptors, bitmaps) between publications,
 * with QEMU's own timer publishing every 3 ms meanwhile: QEMU keeps running, and every
 * phase of guest writes is still exported exactly. */
START_TEST(test_fuzz_region)
{
  guint32 seed = g_random_int();
  g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
  g_autofree char *append = g_strdup_printf("phases=%u pages=64 pattern=random span=2048 "
                                            "seed=23 wait=1", FUZZ_ROUNDS);
  guint64 scribbled = 0, gen_before, gen_after;
  Raw raw;

  printf("# fuzz seed %u\n", seed);
  raw_start(&raw, append, 3);
  gen_before = query_generation(&raw);
  for (guint k = 0; k < FUZZ_ROUNDS; k++) {
    g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autofree char *what = g_strdup_printf("fuzz round %u", k);
    guint writes = g_rand_int_range(rand, 64, 4096);

    for (guint i = 0; i < writes; i++) {
      /* Mostly the header and descriptor pages, where QEMU's bookkeeping used to live. */
      gsize limit = g_rand_boolean(rand) ? HMMV_SHM_BITMAPS_OFFSET : raw.size;
      gsize at = (gsize)g_rand_double_range(rand, 0, (double)(limit / 8)) * 8;
      guint64 value = ((guint64)g_rand_int(rand) << 32) | g_rand_int(rand);

      if (g_rand_int_range(rand, 0, 4) == 0)
        value = G_GUINT64_CONSTANT(1) << g_rand_int_range(rand, 0, 64);
      __atomic_store_n((guint64 *)(raw.map + at), value, __ATOMIC_RELAXED);
      scribbled++;
    }
    clear_window(&raw);
    run_phase(&raw, k, expected);
    sync_export(&raw);
    ck_assert_uint_eq(hmmv_qemu_proc_wait(raw.proc, 0), -1);
    if (k % 8 == 0 || k + 1 == FUZZ_ROUNDS)
      assert_window_exact(&raw, what, expected);
    else {
      /* Same check, quietly. */
      const guint64 *w = window_words(&raw);
      guint found = 0;

      for (guint p = 0; p < SPAN; p++)
        if ((w[p / 64] >> (p % 64)) & 1) {
          found++;
          ck_assert_msg(g_hash_table_contains(expected, GSIZE_TO_POINTER(BASE_PFN + p)),
                        "round %u: page 0x%x exported but not written", k, BASE_PFN + p);
        }
      ck_assert_uint_eq(found, g_hash_table_size(expected));
    }
  }
  gen_after = query_generation(&raw);
  printf("# %u rounds, %" G_GUINT64_FORMAT " random 64-bit stores into the region, %"
         G_GUINT64_FORMAT " publications meanwhile; QEMU alive and exact throughout\n",
         FUZZ_ROUNDS, scribbled, gen_after - gen_before);
  ck_assert_uint_gt(gen_after, gen_before + FUZZ_ROUNDS);
  raw_stop(&raw);
}
END_TEST

static Suite *
region_suite(void)
{
  Suite *suite = suite_create("qemu-region");
  TCase *tc = tcase_create("hostile-consumer");

  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_rewritten_descriptors);
  tcase_add_test(tc, test_truncate_refused);
  tcase_add_test(tc, test_unsealable_refused);
  tcase_add_test(tc, test_fuzz_region);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare(NULL, &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(region_suite());
}
