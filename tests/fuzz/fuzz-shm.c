/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The shared-memory region reader: open (seal, size and descriptor checks), state, harvest.
 * The input is the region's start, in a file of a fixed 100 KiB (the fixed part is 36 KiB),
 * as QEMU would write it. */
#include "fuzz-common.h"
#include "shm.h"

#define REGION_BYTES (HMMV_SHM_BITMAPS_OFFSET + 64 * 1024)

static void
count(guint64 page, gpointer user_data)
{
  (void)page;
  (*(guint64 *)user_data)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  int fd = fuzz_memfd(data, MIN(size, REGION_BYTES));
  HmmvShm *shm;
  HmmvShmState state;
  guint64 found = 0;

  if (fd < 0 || ftruncate(fd, REGION_BYTES) < 0)
    return fd < 0 ? 0 : (close(fd), 0);
  shm = hmmv_shm_open_fd(fd, "fuzz", NULL);
  close(fd);
  if (shm == NULL)
    return 0;
  if (hmmv_shm_read_state(shm, &state, NULL)) {
    for (guint b = 0; b < hmmv_shm_get_nr_blocks(shm); b++)
      hmmv_shm_harvest_block(shm, b, count, &found);
  }
  hmmv_shm_free(shm);
  return 0;
}
