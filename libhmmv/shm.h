/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading the region the patched QEMU publishes guest writes into (layout: hmmv/shm-abi.h).
 *
 * QEMU is on the other side of this memory and is not trusted: the file is sealed against
 * size changes before it is mapped, every size is checked once at open against the file's
 * real size, and a snapshot of the checked descriptors is kept; the harvest never follows a
 * size read from the region afterwards. Header fields that can
 * legitimately change (seq, generation, flags) are read with atomic loads, and a header whose
 * magic or version changes later is reported as corrupt.
 */
#pragma once

#include <glib.h>
#include <hmmv/shm-abi.h>

G_BEGIN_DECLS

/* hmmv tracks 4 KiB pages; a region with another page shift is refused. */
#define HMMV_SHM_PAGE_SHIFT_4K 12u

typedef struct {
  char id[HMMV_SHM_ID_LEN];
  guint64 host_addr;
  guint64 used_length;
  guint64 max_length;
  guint64 page_size;
  guint64 bitmap_offset;
  guint64 bitmap_words;
  guint32 flags;
} HmmvShmBlock;

typedef struct _HmmvShm HmmvShm;

/* Seals the region (a memfd created with MFD_ALLOW_SEALING; the fd is duplicated, the caller
 * keeps its own) against shrinking and growing, then maps it read-write (the harvest clears
 * words). A file that cannot be sealed is refused with HMMV_ERROR_CORRUPT: QEMU, holding the
 * same file, could otherwise truncate it under the mapping and hmmvd would die of SIGBUS. */
HmmvShm *hmmv_shm_open_fd(int fd, const char *what, GError **error);
void hmmv_shm_free(HmmvShm *shm);

guint hmmv_shm_get_nr_blocks(const HmmvShm *shm);
const HmmvShmBlock *hmmv_shm_get_block(const HmmvShm *shm, guint index);
guint32 hmmv_shm_get_qemu_pid(const HmmvShm *shm);
guint64 hmmv_shm_get_size(const HmmvShm *shm);

typedef struct {
  guint64 seq;
  guint64 generation;
  guint64 flags;
  guint64 layout_generation;
  guint64 last_publish_ns;
  guint64 last_duration_ns;
  guint64 last_dirty_pages;
  guint64 pages_published;
  guint32 interval_ms;
} HmmvShmState;

/* The header's changing fields; FALSE with HMMV_ERROR_CORRUPT when magic or version changed. */
gboolean hmmv_shm_read_state(HmmvShm *shm, HmmvShmState *state, GError **error);
/* A block's own layout generation and flags, read from its descriptor now (atomic loads):
 * QEMU bumps the generation when that block alone changed (mapped elsewhere in
 * guest-physical memory, removed, resized), 0 from a QEMU without per-block layout. The
 * snapshot taken at open (sizes, offsets) is never replaced by what is read here. FALSE
 * for an index out of range. */
gboolean hmmv_shm_read_block_layout(HmmvShm *shm, guint index, guint32 *layout_generation,
                                    guint32 *flags);
/* Wait (spinning, at most max_wait_us) until QEMU is not in the middle of a publication. */
void hmmv_shm_wait_stable(HmmvShm *shm, guint max_wait_us);

/* Exchange every non-zero word of block index's bitmap with 0 and call fn for each set bit
 * (page index within the block, below used_length). Returns the bits found. */
typedef void (*HmmvShmBitFunc)(guint64 block_page, gpointer user_data);
guint64 hmmv_shm_harvest_block(HmmvShm *shm, guint index, HmmvShmBitFunc fn,
                               gpointer user_data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvShm, hmmv_shm_free)

G_END_DECLS
