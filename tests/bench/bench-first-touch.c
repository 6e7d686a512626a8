/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the first use of fresh anonymous memory costs on this host (issue 9: why the first
 * publication after hmmv-start is slow on a paravirtual VM). 32 MiB, the export bitmaps of
 * 1 TiB of guest RAM, made usable four ways: 128 lazily mapped blocks of 256 KiB (QEMU's
 * DIRTY_MEMORY_BLOCK_SIZE bitmap), the same with MAP_POPULATE (QEMU 10.0's 0015), and one
 * 2 MiB-aligned mapping with MADV_HUGEPAGE, populated (MADV_POPULATE_WRITE) or not. Each is
 * read twice, a word every 8 bytes, as a publication's harvest does. A figure, not a test:
 * prints milliseconds, asserts nothing.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

#define TOTAL ((size_t)32 << 20)
#define BLOCK ((size_t)256 << 10)
#define HUGE ((size_t)2 << 20)
#define NBLOCKS (TOTAL / BLOCK)

static double
now_ms(void)
{
  return (double)g_get_monotonic_time() / 1000;
}

static uint64_t
read_all(char *const *blocks)
{
  volatile uint64_t sum = 0;

  for (size_t i = 0; i < NBLOCKS; i++)
    for (size_t off = 0; off < BLOCK; off += 8)
      sum += *(const uint64_t *)(blocks[i] + off);
  return sum;
}

static void
run(const char *what, gboolean populate, gboolean huge)
{
  char *blocks[NBLOCKS];
  char *base = NULL;
  size_t len = 0;
  double t0 = now_ms();

  if (huge) {
    len = TOTAL + HUGE;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(base != MAP_FAILED);
    char *aligned = (char *)(((uintptr_t)base + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    madvise(aligned, TOTAL, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    if (populate)
      madvise(aligned, TOTAL, MADV_POPULATE_WRITE);
#endif
    for (size_t i = 0; i < NBLOCKS; i++)
      blocks[i] = aligned + i * BLOCK;
  } else {
    for (size_t i = 0; i < NBLOCKS; i++) {
      blocks[i] = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
      g_assert(blocks[i] != MAP_FAILED);
    }
  }
  double t1 = now_ms();
  read_all(blocks);
  double t2 = now_ms();
  read_all(blocks);
  double t3 = now_ms();
  printf("%-36s map %7.1f ms, first read %7.1f ms, second read %7.1f ms\n", what, t1 - t0,
         t2 - t1, t3 - t2);
  if (huge) {
    munmap(base, len);
  } else {
    for (size_t i = 0; i < NBLOCKS; i++)
      munmap(blocks[i], BLOCK);
  }
}

int
main(void)
{
  run("128 x 256 KiB, lazy", FALSE, FALSE);
  run("128 x 256 KiB, MAP_POPULATE", TRUE, FALSE);
  run("32 MiB MADV_HUGEPAGE, populated", TRUE, TRUE);
  run("32 MiB MADV_HUGEPAGE, lazy", FALSE, TRUE);
  return 0;
}
