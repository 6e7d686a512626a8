/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The reader of QEMU's write-export region: well-formed regions harvest exactly the bits set,
 * and every malformed one (truncated, wrong magic or version, sizes pointing outside the
 * file) is refused with HMMV_ERROR_CORRUPT, never a crash.
 */
#include "hmmv-test.h"
#include "shm.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
  guint8 *data;
  gsize size;
} Region;

/* A valid region: blocks of the given page counts, bitmaps right after the descriptors. */
static Region
region_build(const guint64 *block_pages, guint nr_blocks)
{
  Region r = { 0 };
  guint64 offset = HMMV_SHM_BITMAPS_OFFSET;
  guint64 offsets[8];
  struct hmmv_shm_header *hdr;

  g_assert(nr_blocks <= G_N_ELEMENTS(offsets));
  for (guint i = 0; i < nr_blocks; i++) {
    offsets[i] = offset;
    offset += ((block_pages[i] + 63) / 64 * 8 + 4095) / 4096 * 4096;
  }
  r.size = offset;
  r.data = g_malloc0(r.size);
  hdr = (struct hmmv_shm_header *)r.data;
  hdr->magic = HMMV_SHM_MAGIC;
  hdr->abi_version = HMMV_SHM_ABI_VERSION;
  hdr->header_size = HMMV_SHM_HEADER_SIZE;
  hdr->region_size = r.size;
  hdr->page_shift = 12;
  hdr->desc_size = HMMV_SHM_BLOCK_DESC_SIZE;
  hdr->desc_offset = HMMV_SHM_HEADER_SIZE;
  hdr->nr_blocks = nr_blocks;
  hdr->max_blocks = HMMV_SHM_MAX_BLOCKS;
  hdr->qemu_pid = (guint32)getpid();
  hdr->generation = 5;
  hdr->flags = HMMV_SHM_F_ACTIVE | HMMV_SHM_F_SOURCE_TCG;
  for (guint i = 0; i < nr_blocks; i++) {
    struct hmmv_shm_block *blk =
      (struct hmmv_shm_block *)(r.data + HMMV_SHM_HEADER_SIZE + i * HMMV_SHM_BLOCK_DESC_SIZE);

    g_snprintf(blk->id, sizeof(blk->id), "block%u", i);
    blk->used_length = block_pages[i] << 12;
    blk->max_length = block_pages[i] << 12;
    blk->page_size = 4096;
    blk->bitmap_offset = offsets[i];
    blk->bitmap_words = (block_pages[i] + 63) / 64;
  }
  return r;
}

static struct hmmv_shm_block *
region_block(Region *r, guint i)
{
  return (struct hmmv_shm_block *)(r->data + HMMV_SHM_HEADER_SIZE +
                                   i * HMMV_SHM_BLOCK_DESC_SIZE);
}

/* A memfd as hmmvd creates it (sealable), holding the first size bytes of r; QEMU's side. */
static int
region_write(const Region *r, gsize size)
{
  int fd = memfd_create("hmmv-test-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pwrite(fd, r->data, size, 0), (gssize)size);
  return fd;
}

static HmmvShm *
region_open(const Region *r, gsize size, GError **error)
{
  int fd = region_write(r, size);
  HmmvShm *shm = hmmv_shm_open_fd(fd, "test", error);

  close(fd);
  return shm;
}

static void
expect_corrupt(Region *r, gsize size, const char *fragment)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvShm) shm = region_open(r, size, &error);

  ck_assert_msg(shm == NULL, "a bad region (%s) was accepted", fragment);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT), "%s", error->message);
  ck_assert_msg(strstr(error->message, fragment) != NULL, "'%s' lacks '%s'", error->message,
                fragment);
}

static void
collect(guint64 page, gpointer user_data)
{
  g_array_append_val((GArray *)user_data, page);
}

START_TEST(test_harvest_exact)
{
  const guint64 pages[] = { 1000, 130 };
  Region r = region_build(pages, 2);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvShm) shm = NULL;
  g_autoptr(GArray) got = g_array_new(FALSE, FALSE, sizeof(guint64));
  const guint64 set0[] = { 0, 63, 64, 500, 999 };
  guint64 *words;
  HmmvShmState state;

  words = (guint64 *)(r.data + region_block(&r, 0)->bitmap_offset);
  for (guint i = 0; i < G_N_ELEMENTS(set0); i++)
    words[set0[i] / 64] |= G_GUINT64_CONSTANT(1) << (set0[i] % 64);
  /* A bit beyond used_length is cleared but never reported. */
  region_block(&r, 1)->used_length = 100 << 12;
  words = (guint64 *)(r.data + region_block(&r, 1)->bitmap_offset);
  words[1] = G_GUINT64_CONSTANT(1) << 40 | G_GUINT64_CONSTANT(1) << 1;   /* pages 104, 65 */

  shm = region_open(&r, r.size, &error);
  ck_assert_msg(shm != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(hmmv_shm_get_nr_blocks(shm), 2);
  ck_assert_str_eq(hmmv_shm_get_block(shm, 1)->id, "block1");
  ck_assert(hmmv_shm_read_state(shm, &state, &error));
  ck_assert_uint_eq(state.generation, 5);

  ck_assert_uint_eq(hmmv_shm_harvest_block(shm, 0, collect, got), G_N_ELEMENTS(set0));
  ck_assert_uint_eq(got->len, G_N_ELEMENTS(set0));
  for (guint i = 0; i < got->len; i++)
    ck_assert_uint_eq(g_array_index(got, guint64, i), set0[i]);
  /* Exchanged with zero: a second harvest finds nothing. */
  g_array_set_size(got, 0);
  ck_assert_uint_eq(hmmv_shm_harvest_block(shm, 0, collect, got), 0);
  ck_assert_uint_eq(hmmv_shm_harvest_block(shm, 1, collect, got), 1);
  ck_assert_uint_eq(g_array_index(got, guint64, 0), 65);
  g_free(r.data);
}
END_TEST

/* A block's own layout generation and flags are read live from its descriptor (QEMU bumps
 * them when only that block changed); the snapshot's sizes stay those checked at open. */
START_TEST(test_block_layout_live)
{
  const guint64 pages[] = { 256, 512 };
  Region r = region_build(pages, 2);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvShm) shm = NULL;
  int fd = region_write(&r, r.size);
  const gsize desc1 = HMMV_SHM_HEADER_SIZE + HMMV_SHM_BLOCK_DESC_SIZE;
  guint32 generation = 7, flags = 7, value;
  guint64 used = G_GUINT64_CONSTANT(1) << 40;

  shm = hmmv_shm_open_fd(fd, "test", &error);
  ck_assert_msg(shm != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_shm_read_block_layout(shm, 1, &generation, &flags));
  ck_assert_uint_eq(generation, 0);
  ck_assert_uint_eq(flags, 0);
  /* QEMU's side: block 1 mapped elsewhere, twice; it also scribbles a size (never used). */
  value = 2;
  ck_assert_int_eq(pwrite(fd, &value, 4, desc1 + offsetof(struct hmmv_shm_block,
                                                          layout_generation)), 4);
  value = HMMV_SHM_BLOCK_F_REMAPPED;
  ck_assert_int_eq(pwrite(fd, &value, 4, desc1 + offsetof(struct hmmv_shm_block, flags)), 4);
  ck_assert_int_eq(pwrite(fd, &used, 8, desc1 + offsetof(struct hmmv_shm_block, used_length)),
                   8);
  ck_assert(hmmv_shm_read_block_layout(shm, 1, &generation, &flags));
  ck_assert_uint_eq(generation, 2);
  ck_assert_uint_eq(flags, HMMV_SHM_BLOCK_F_REMAPPED);
  ck_assert(hmmv_shm_read_block_layout(shm, 0, &generation, &flags));
  ck_assert_uint_eq(generation, 0);
  ck_assert_uint_eq(hmmv_shm_get_block(shm, 1)->used_length, 512 << 12);
  ck_assert(!hmmv_shm_read_block_layout(shm, 2, &generation, &flags));
  close(fd);
  g_free(r.data);
}
END_TEST

START_TEST(test_bad_regions)
{
  const guint64 pages[] = { 4096 };
  Region r = region_build(pages, 1);
  Region copy;

  copy.size = r.size;
  copy.data = g_memdup2(r.data, r.size);
  /* truncated: below the fixed part, and shorter than the header says */
  expect_corrupt(&copy, 100, "size");
  expect_corrupt(&copy, copy.size - 4096, "bytes");
  ((struct hmmv_shm_header *)copy.data)->magic ^= 1;
  expect_corrupt(&copy, copy.size, "magic");
  memcpy(copy.data, r.data, r.size);
  ((struct hmmv_shm_header *)copy.data)->abi_version = 2;
  expect_corrupt(&copy, copy.size, "version");
  memcpy(copy.data, r.data, r.size);
  ((struct hmmv_shm_header *)copy.data)->page_shift = 21;
  expect_corrupt(&copy, copy.size, "page shift");
  memcpy(copy.data, r.data, r.size);
  ((struct hmmv_shm_header *)copy.data)->nr_blocks = HMMV_SHM_MAX_BLOCKS + 1;
  expect_corrupt(&copy, copy.size, "blocks");
  memcpy(copy.data, r.data, r.size);
  region_block(&copy, 0)->bitmap_offset = copy.size - 8;
  expect_corrupt(&copy, copy.size, "outside");
  memcpy(copy.data, r.data, r.size);
  region_block(&copy, 0)->bitmap_offset = G_MAXUINT64 - 7;
  expect_corrupt(&copy, copy.size, "outside");
  memcpy(copy.data, r.data, r.size);
  region_block(&copy, 0)->bitmap_words = G_MAXUINT64 / 4;
  expect_corrupt(&copy, copy.size, "outside");
  memcpy(copy.data, r.data, r.size);
  region_block(&copy, 0)->bitmap_words = 1;
  expect_corrupt(&copy, copy.size, "cannot cover");
  memcpy(copy.data, r.data, r.size);
  region_block(&copy, 0)->used_length = G_MAXUINT64;
  expect_corrupt(&copy, copy.size, "exceeds");
  memcpy(copy.data, r.data, r.size);
  region_block(&copy, 0)->bitmap_offset = 8;
  expect_corrupt(&copy, copy.size, "outside");
  g_free(copy.data);
  g_free(r.data);
}
END_TEST

/* Random damage anywhere in the fixed part: open either fails cleanly or yields a region
 * whose harvest stays inside the file (valgrind/ASan watch the accesses). */
START_TEST(test_random_damage)
{
  const guint64 pages[] = { 2048, 300 };
  Region r = region_build(pages, 2);
  GRand *rand = g_rand_new_with_seed(7);

  for (guint round = 0; round < 300; round++) {
    g_autofree guint8 *data = g_memdup2(r.data, r.size);
    Region damaged = { data, r.size };
    g_autoptr(GError) error = NULL;
    g_autoptr(HmmvShm) shm = NULL;
    g_autoptr(GArray) got = g_array_new(FALSE, FALSE, sizeof(guint64));
    guint flips = g_rand_int_range(rand, 1, 6);

    for (guint f = 0; f < flips; f++)
      data[g_rand_int_range(rand, 0, HMMV_SHM_BITMAPS_OFFSET)] ^=
        (guint8)(1u << g_rand_int_range(rand, 0, 8));
    shm = region_open(&damaged, r.size, &error);
    if (shm == NULL) {
      ck_assert(error != NULL);
      continue;
    }
    for (guint b = 0; b < hmmv_shm_get_nr_blocks(shm); b++)
      hmmv_shm_harvest_block(shm, b, collect, got);
  }
  g_rand_free(rand);
  g_free(r.data);
}
END_TEST

/* issue 10: a region that cannot be sealed (a file QEMU could truncate under the mapping) is
 * refused, whatever its content. */
START_TEST(test_unsealable_refused)
{
  const guint64 pages[] = { 64 };
  Region r = region_build(pages, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvShm) shm = NULL;
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp("hmmv-shm-XXXXXX", &path, &error);

  ck_assert_int_ge(fd, 0);
  g_unlink(path);
  ck_assert_int_eq(pwrite(fd, r.data, r.size, 0), (gssize)r.size);
  shm = hmmv_shm_open_fd(fd, "tmpfile", &error);
  close(fd);
  ck_assert(shm == NULL);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT) &&
                  strstr(error->message, "sealed") != NULL, "%s", error->message);
  g_clear_error(&error);
  /* A memfd without MFD_ALLOW_SEALING (the daemon's memfd before issue 10). */
  fd = memfd_create("hmmv-unsealable", MFD_CLOEXEC);
  ck_assert_int_eq(pwrite(fd, r.data, r.size, 0), (gssize)r.size);
  shm = hmmv_shm_open_fd(fd, "memfd", &error);
  close(fd);
  ck_assert(shm == NULL);
  ck_assert_msg(strstr(error->message, "sealed") != NULL, "%s", error->message);
  g_clear_error(&error);
  /* QEMU sealing the seals first, without the size seals. */
  fd = region_write(&r, r.size);
  ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL), 0);
  shm = hmmv_shm_open_fd(fd, "pre-sealed", &error);
  close(fd);
  ck_assert(shm == NULL);
  ck_assert_msg(strstr(error->message, "not sealed") != NULL, "%s", error->message);
  g_free(r.data);
}
END_TEST

/* issue 10: QEMU truncating the region to 0 killed hmmvd with SIGBUS at the next harvest.
 * Once open, the file cannot shrink or grow, and the harvest goes on. */
START_TEST(test_truncate_refused)
{
  const guint64 pages[] = { 4096 };
  Region r = region_build(pages, 1);
  int fd = region_write(&r, r.size);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvShm) shm = hmmv_shm_open_fd(fd, "sealed", &error);
  g_autoptr(GArray) got = g_array_new(FALSE, FALSE, sizeof(guint64));
  guint64 last_word = ~G_GUINT64_CONSTANT(0);

  ck_assert_msg(shm != NULL, "%s", error ? error->message : "");
  ck_assert_int_eq(ftruncate(fd, 0), -1);
  ck_assert_int_eq(errno, EPERM);
  ck_assert_int_eq(ftruncate(fd, (off_t)r.size * 2), -1);
  ck_assert_int_eq(errno, EPERM);
  ck_assert_int_eq(fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                   F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  /* QEMU's side sets the last bitmap word (pages 4032..4095) through its own fd. */
  ck_assert_int_eq(pwrite(fd, &last_word, 8, (off_t)(HMMV_SHM_BITMAPS_OFFSET + 63 * 8)), 8);
  ck_assert_uint_eq(hmmv_shm_harvest_block(shm, 0, collect, got), 64);
  close(fd);
  g_free(r.data);
}
END_TEST

/* The region's magic or version changing after open is reported, not trusted. */
START_TEST(test_state_detects_overwrite)
{
  const guint64 pages[] = { 64 };
  Region r = region_build(pages, 1);
  int fd = region_write(&r, r.size);
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvShm) shm = hmmv_shm_open_fd(fd, "test", &error);
  HmmvShmState state;
  guint64 zero = 0;

  ck_assert(shm != NULL);
  ck_assert_int_eq(pwrite(fd, &zero, sizeof(zero), 0), sizeof(zero));
  close(fd);
  ck_assert(!hmmv_shm_read_state(shm, &state, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  g_free(r.data);
}
END_TEST

static Suite *
shm_suite(void)
{
  Suite *suite = suite_create("shm");
  TCase *tc = tcase_create("region");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_harvest_exact);
  tcase_add_test(tc, test_block_layout_live);
  tcase_add_test(tc, test_bad_regions);
  tcase_add_test(tc, test_random_damage);
  tcase_add_test(tc, test_unsealable_refused);
  tcase_add_test(tc, test_truncate_refused);
  tcase_add_test(tc, test_state_detects_overwrite);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(shm_suite());
}
