/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The reader side of the QEMU write-export region; see shm.h for the trust model.
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <hmmv/error.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1 bit per 4 KiB page: 32 KiB of bitmap per GiB. 64 GiB of region describes 2 PiB of guest
 * RAM; anything larger is not a region QEMU wrote. */
#define HMMV_SHM_MAX_REGION (G_GUINT64_CONSTANT(64) << 30)

struct _HmmvShm {
  int fd;
  guint8 *base;
  gsize size;
  char *what;
  guint32 qemu_pid;
  GArray *blocks;           /* HmmvShmBlock: the snapshot checked at open */
};

static volatile struct hmmv_shm_header *
shm_header(HmmvShm *shm)
{
  return (volatile struct hmmv_shm_header *)shm->base;
}

void
hmmv_shm_free(HmmvShm *shm)
{
  if (shm == NULL)
    return;
  if (shm->base != NULL && shm->base != MAP_FAILED)
    munmap(shm->base, shm->size);
  if (shm->fd >= 0)
    close(shm->fd);
  g_clear_pointer(&shm->blocks, g_array_unref);
  g_free(shm->what);
  g_free(shm);
}

static gboolean
corrupt(GError **error, const HmmvShm *shm, const char *format, ...) G_GNUC_PRINTF(3, 4);

static gboolean
corrupt(GError **error, const HmmvShm *shm, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start(args, format);
  message = g_strdup_vprintf(format, args);
  va_end(args);
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "region %s: %s", shm->what, message);
  return FALSE;
}

static gboolean
check_block(HmmvShm *shm, guint index, const struct hmmv_shm_block *raw, HmmvShmBlock *block,
            GError **error)
{
  guint64 pages, words_needed, end;

  memcpy(block->id, raw->id, sizeof(block->id));
  block->id[sizeof(block->id) - 1] = '\0';
  block->host_addr = raw->host_addr;
  block->used_length = raw->used_length;
  block->max_length = raw->max_length;
  block->page_size = raw->page_size;
  block->bitmap_offset = raw->bitmap_offset;
  block->bitmap_words = raw->bitmap_words;
  block->flags = raw->flags;

  if (block->used_length > block->max_length)
    return corrupt(error, shm, "block %u (%s): used length %" G_GUINT64_FORMAT
                   " exceeds max length %" G_GUINT64_FORMAT, index, block->id,
                   block->used_length, block->max_length);
  pages = block->max_length >> HMMV_SHM_PAGE_SHIFT_4K;
  words_needed = (pages + 63) / 64;
  if (block->bitmap_words < words_needed)
    return corrupt(error, shm, "block %u (%s): %" G_GUINT64_FORMAT " bitmap words cannot "
                   "cover %" G_GUINT64_FORMAT " pages", index, block->id, block->bitmap_words,
                   pages);
  if (block->bitmap_offset % 8 != 0 || block->bitmap_offset < HMMV_SHM_BITMAPS_OFFSET ||
      block->bitmap_words > shm->size / 8 ||
      !g_uint64_checked_add(&end, block->bitmap_offset, block->bitmap_words * 8) ||
      end > shm->size)
    return corrupt(error, shm, "block %u (%s): bitmap at %" G_GUINT64_FORMAT " of %"
                   G_GUINT64_FORMAT " words lies outside the %" G_GSIZE_FORMAT "-byte region",
                   index, block->id, block->bitmap_offset, block->bitmap_words, shm->size);
  return TRUE;
}

static gboolean
shm_check(HmmvShm *shm, GError **error)
{
  const struct hmmv_shm_header *hdr = (const struct hmmv_shm_header *)shm->base;
  guint32 nr_blocks;

  if (hdr->magic != HMMV_SHM_MAGIC)
    return corrupt(error, shm, "bad magic 0x%016" G_GINT64_MODIFIER "x", hdr->magic);
  if (hdr->abi_version != HMMV_SHM_ABI_VERSION)
    return corrupt(error, shm, "ABI version %u, this hmmv reads version %u",
                   hdr->abi_version, HMMV_SHM_ABI_VERSION);
  if (hdr->header_size != HMMV_SHM_HEADER_SIZE || hdr->desc_size != HMMV_SHM_BLOCK_DESC_SIZE ||
      hdr->desc_offset != HMMV_SHM_HEADER_SIZE)
    return corrupt(error, shm, "header size %u, descriptor size %u at %" G_GUINT64_FORMAT
                   " do not match the ABI", hdr->header_size, hdr->desc_size,
                   hdr->desc_offset);
  if (hdr->page_shift != HMMV_SHM_PAGE_SHIFT_4K)
    return corrupt(error, shm, "page shift %u, hmmv tracks 4 KiB pages", hdr->page_shift);
  if (hdr->region_size != shm->size)
    return corrupt(error, shm, "header says %" G_GUINT64_FORMAT " bytes, the file has %"
                   G_GSIZE_FORMAT, hdr->region_size, shm->size);
  nr_blocks = hdr->nr_blocks;
  if (hdr->max_blocks > HMMV_SHM_MAX_BLOCKS || nr_blocks > hdr->max_blocks)
    return corrupt(error, shm, "%u blocks in %u slots (at most %u)", nr_blocks,
                   hdr->max_blocks, HMMV_SHM_MAX_BLOCKS);
  shm->qemu_pid = hdr->qemu_pid;
  g_array_set_size(shm->blocks, nr_blocks);
  for (guint i = 0; i < nr_blocks; i++) {
    const struct hmmv_shm_block *raw =
      (const struct hmmv_shm_block *)(shm->base + HMMV_SHM_HEADER_SIZE +
                                      (gsize)i * HMMV_SHM_BLOCK_DESC_SIZE);

    if (!check_block(shm, i, raw, &g_array_index(shm->blocks, HmmvShmBlock, i), error))
      return FALSE;
  }
  return TRUE;
}

/* QEMU holds the same memfd: were it to ftruncate the file below what hmmvd mapped, the next
 * harvest would die of SIGBUS (seen: ~3 s after QEMU shrank it to 0). Seal the size before
 * mapping, and check the seals are there; a region that cannot be sealed is refused. */
static gboolean
shm_seal(HmmvShm *shm, GError **error)
{
  const int wanted = F_SEAL_SHRINK | F_SEAL_GROW;
  int seals;

  /* EPERM: someone (QEMU) sealed the seals first; what matters is whether ours are in. */
  if (fcntl(shm->fd, F_ADD_SEALS, wanted | F_SEAL_SEAL) < 0 && errno != EPERM) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "region %s: cannot be sealed (%s): only a memfd created with "
                "MFD_ALLOW_SEALING is accepted", shm->what, g_strerror(errno));
    return FALSE;
  }
  seals = fcntl(shm->fd, F_GET_SEALS);
  if (seals < 0 || (seals & wanted) != wanted) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "region %s: not sealed against shrinking and growing (seals 0x%x): only a "
                "memfd created with MFD_ALLOW_SEALING is accepted", shm->what,
                seals < 0 ? 0 : (guint)seals);
    return FALSE;
  }
  return TRUE;
}

HmmvShm *
hmmv_shm_open_fd(int fd, const char *what, GError **error)
{
  g_autoptr(HmmvShm) shm = g_new0(HmmvShm, 1);
  struct stat st;

  shm->what = g_strdup(what);
  shm->blocks = g_array_new(FALSE, TRUE, sizeof(HmmvShmBlock));
  shm->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (shm->fd < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "region %s: %s", what, g_strerror(errno));
    return NULL;
  }
  /* Sealed first, sized after: the size read below can no longer change. */
  if (!shm_seal(shm, error))
    return NULL;
  if (fstat(shm->fd, &st) < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "region %s: %s", what, g_strerror(errno));
    return NULL;
  }
  if (!S_ISREG(st.st_mode))
    return corrupt(error, shm, "not a regular file"), NULL;
  if ((guint64)st.st_size < HMMV_SHM_BITMAPS_OFFSET ||
      (guint64)st.st_size > HMMV_SHM_MAX_REGION)
    return corrupt(error, shm, "size %" G_GINT64_FORMAT " is outside [%" G_GUINT64_FORMAT
                   ", %" G_GUINT64_FORMAT "]", (gint64)st.st_size,
                   (guint64)HMMV_SHM_BITMAPS_OFFSET, HMMV_SHM_MAX_REGION), NULL;
  shm->size = (gsize)st.st_size;
  shm->base = mmap(NULL, shm->size, PROT_READ | PROT_WRITE, MAP_SHARED, shm->fd, 0);
  if (shm->base == MAP_FAILED) {
    shm->base = NULL;
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "region %s: mmap: %s", what,
                g_strerror(errno));
    return NULL;
  }
  if (!shm_check(shm, error))
    return NULL;
  return g_steal_pointer(&shm);
}

guint
hmmv_shm_get_nr_blocks(const HmmvShm *shm)
{
  return shm->blocks->len;
}

const HmmvShmBlock *
hmmv_shm_get_block(const HmmvShm *shm, guint index)
{
  g_return_val_if_fail(index < shm->blocks->len, NULL);
  return &g_array_index(shm->blocks, HmmvShmBlock, index);
}

guint32
hmmv_shm_get_qemu_pid(const HmmvShm *shm)
{
  return shm->qemu_pid;
}

guint64
hmmv_shm_get_size(const HmmvShm *shm)
{
  return shm->size;
}

gboolean
hmmv_shm_read_state(HmmvShm *shm, HmmvShmState *state, GError **error)
{
  volatile struct hmmv_shm_header *hdr = shm_header(shm);

  if (__atomic_load_n(&hdr->magic, __ATOMIC_RELAXED) != HMMV_SHM_MAGIC ||
      __atomic_load_n(&hdr->abi_version, __ATOMIC_RELAXED) != HMMV_SHM_ABI_VERSION)
    return corrupt(error, shm, "magic or ABI version changed under hmmv");
  state->seq = __atomic_load_n(&hdr->seq, __ATOMIC_ACQUIRE);
  state->generation = __atomic_load_n(&hdr->generation, __ATOMIC_ACQUIRE);
  state->flags = __atomic_load_n(&hdr->flags, __ATOMIC_ACQUIRE);
  state->layout_generation = __atomic_load_n(&hdr->layout_generation, __ATOMIC_RELAXED);
  state->last_publish_ns = __atomic_load_n(&hdr->last_publish_ns, __ATOMIC_RELAXED);
  state->last_duration_ns = __atomic_load_n(&hdr->last_duration_ns, __ATOMIC_RELAXED);
  state->last_dirty_pages = __atomic_load_n(&hdr->last_dirty_pages, __ATOMIC_RELAXED);
  state->pages_published = __atomic_load_n(&hdr->pages_published, __ATOMIC_RELAXED);
  state->interval_ms = __atomic_load_n(&hdr->interval_ms, __ATOMIC_RELAXED);
  return TRUE;
}

gboolean
hmmv_shm_read_block_layout(HmmvShm *shm, guint index, guint32 *layout_generation,
                           guint32 *flags)
{
  volatile struct hmmv_shm_block *desc;

  if (index >= shm->blocks->len)
    return FALSE;
  /* Inside the region: open checked that every descriptor in use fits. */
  desc = (volatile struct hmmv_shm_block *)(shm->base + HMMV_SHM_HEADER_SIZE) + index;
  *layout_generation = __atomic_load_n(&desc->layout_generation, __ATOMIC_ACQUIRE);
  *flags = __atomic_load_n(&desc->flags, __ATOMIC_ACQUIRE);
  return TRUE;
}

void
hmmv_shm_wait_stable(HmmvShm *shm, guint max_wait_us)
{
  volatile struct hmmv_shm_header *hdr = shm_header(shm);
  gint64 deadline = g_get_monotonic_time() + max_wait_us;

  /* A publication takes tens of microseconds per GiB; a QEMU stopped mid-publication must
   * not hold the daemon: harvesting then is still safe, it just sees part of the interval. */
  while ((__atomic_load_n(&hdr->seq, __ATOMIC_ACQUIRE) & 1) != 0 &&
         g_get_monotonic_time() < deadline)
    g_usleep(10);
}

guint64
hmmv_shm_harvest_block(HmmvShm *shm, guint index, HmmvShmBitFunc fn, gpointer user_data)
{
  const HmmvShmBlock *block = hmmv_shm_get_block(shm, index);
  guint64 *words;
  guint64 used_pages, nr_words, found = 0;

  if (block == NULL || (block->flags & HMMV_SHM_BLOCK_F_GONE) != 0)
    return 0;
  words = (guint64 *)(shm->base + block->bitmap_offset);
  used_pages = block->used_length >> HMMV_SHM_PAGE_SHIFT_4K;
  /* Only the words of pages in use: QEMU never sets the others, and the bitmap's size is
   * QEMU's claim (a 1 GiB bitmap for a 128 MiB guest took 23 s to drain). */
  nr_words = MIN(block->bitmap_words, (used_pages + 63) / 64);
  for (guint64 w = 0; w < nr_words; w++) {
    guint64 bits;

    /* Most words are clean: a plain load costs far less than a locked exchange. */
    if (__atomic_load_n(&words[w], __ATOMIC_RELAXED) == 0)
      continue;
    bits = GUINT64_FROM_LE(__atomic_exchange_n(&words[w], 0, __ATOMIC_ACQ_REL));
    while (bits != 0) {
      guint64 page = w * 64 + (guint64)__builtin_ctzll(bits);

      bits &= bits - 1;
      if (page >= used_pages)
        continue;   /* a bit QEMU should not have set; cleared, ignored */
      found++;
      fn(page, user_data);
    }
  }
  return found;
}
