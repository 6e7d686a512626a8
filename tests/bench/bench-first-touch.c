/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the first use of fresh anonymous memory costs on this host (issue 9: why the first
 * publication after hmmv-start is slow on a paravirtual VM). 32 MiB, the export bitmaps of
 * 1 TiB of guest RAM, as 128 blocks of 256 KiB (QEMU's DIRTY_MEMORY_BLOCK_SIZE bitmap) or one
 * 2 MiB-aligned mapping with MADV_HUGEPAGE, made usable several ways, then read twice by this
 * thread, a word every 8 bytes, as a publication's harvest does:
 *
 *   lazy                    mapped, nothing touched
 *   MAP_POPULATE            QEMU 10.0's 0015 at hmmv-start: the kernel allocates and zeroes
 *   MAP_POPULATE, 1 word/page  the same, but the first read loads one word per 4 KiB page:
 *                           if it costs as much as reading every word, the cost is per page
 *   populated by a thread   lazy; another thread of the process populates
 *                           (MADV_POPULATE_WRITE) and reads one word per page, and is joined
 *                           before this thread's first read (what hmmv-start's worker does)
 *   written by a thread     lazy; another thread ORs 0 into one word per page (a write fault
 *                           from user space that changes nothing), joined before the reads
 *   MADV_HUGEPAGE           populated (MADV_POPULATE_WRITE) or lazy
 *
 * For each: wall time of the preparation and of both reads, and this thread's minor page
 * faults (getrusage RUSAGE_THREAD) during each read: a slow read without faults is a cost the
 * guest kernel does not see (on a PVM guest, the host filling its shadow page table).
 * A figure, not a test: prints, asserts nothing.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>

#define TOTAL ((size_t)32 << 20)
#define BLOCK ((size_t)256 << 10)
#define HUGE ((size_t)2 << 20)
#define PAGE ((size_t)4096)
#define NBLOCKS (TOTAL / BLOCK)

typedef enum { PREP_LAZY, PREP_POPULATE, PREP_THREAD_POPULATE, PREP_THREAD_WRITE } Prep;

static double
now_ms(void)
{
  return (double)g_get_monotonic_time() / 1000;
}

static long
thread_minflt(void)
{
  struct rusage ru;

  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

static uint64_t
read_all(char *const *blocks, size_t step)
{
  volatile uint64_t sum = 0;

  for (size_t i = 0; i < NBLOCKS; i++)
    for (size_t off = 0; off < BLOCK; off += step)
      sum += *(const uint64_t *)(blocks[i] + off);
  return sum;
}

typedef struct {
  char **blocks;
  Prep prep;
  double ms;
} Worker;

static gpointer
worker_run(gpointer data)
{
  Worker *w = data;
  double t0 = now_ms();

  for (size_t i = 0; i < NBLOCKS; i++) {
    if (w->prep == PREP_THREAD_POPULATE) {
#ifdef MADV_POPULATE_WRITE
      madvise(w->blocks[i], BLOCK, MADV_POPULATE_WRITE);
#endif
      for (size_t off = 0; off < BLOCK; off += PAGE)
        (void)*(volatile uint64_t *)(w->blocks[i] + off);
    } else {
      for (size_t off = 0; off < BLOCK; off += PAGE)
        __atomic_fetch_or((uint64_t *)(w->blocks[i] + off), 0, __ATOMIC_RELAXED);
    }
  }
  w->ms = now_ms() - t0;
  return NULL;
}

static void
run(const char *what, Prep prep, gboolean huge, size_t first_step)
{
  char *blocks[NBLOCKS];
  char *base = NULL;
  size_t len = 0;
  Worker w = { blocks, prep, 0 };
  double t0 = now_ms(), t1, t2, t3;
  long f1, f2, f3;

  if (huge) {
    len = TOTAL + HUGE;
    base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_assert(base != MAP_FAILED);
    char *aligned = (char *)(((uintptr_t)base + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
    madvise(aligned, TOTAL, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
    if (prep == PREP_POPULATE)
      madvise(aligned, TOTAL, MADV_POPULATE_WRITE);
#endif
    for (size_t i = 0; i < NBLOCKS; i++)
      blocks[i] = aligned + i * BLOCK;
  } else {
    for (size_t i = 0; i < NBLOCKS; i++) {
      blocks[i] = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS |
                         (prep == PREP_POPULATE ? MAP_POPULATE : 0),
                       -1, 0);
      g_assert(blocks[i] != MAP_FAILED);
    }
  }
  if (prep == PREP_THREAD_POPULATE || prep == PREP_THREAD_WRITE)
    g_thread_join(g_thread_new("touch", worker_run, &w));
  t1 = now_ms();
  f1 = thread_minflt();
  read_all(blocks, first_step);
  t2 = now_ms();
  f2 = thread_minflt();
  read_all(blocks, 8);
  t3 = now_ms();
  f3 = thread_minflt();
  printf("%-40s prepare %6.1f ms (thread %6.1f), first read %6.1f ms (%5ld faults), "
         "second %5.1f ms (%ld faults)\n",
         what, t1 - t0, w.ms, t2 - t1, f2 - f1, t3 - t2, f3 - f2);
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
  run("128 x 256 KiB, lazy", PREP_LAZY, FALSE, 8);
  run("128 x 256 KiB, MAP_POPULATE", PREP_POPULATE, FALSE, 8);
  run("128 x 256 KiB, MAP_POPULATE, 1 word/page", PREP_POPULATE, FALSE, PAGE);
  run("128 x 256 KiB, populated by a thread", PREP_THREAD_POPULATE, FALSE, 8);
  run("128 x 256 KiB, written by a thread", PREP_THREAD_WRITE, FALSE, 8);
  run("32 MiB MADV_HUGEPAGE, populated", PREP_POPULATE, TRUE, 8);
  run("32 MiB MADV_HUGEPAGE, lazy", PREP_LAZY, TRUE, 8);
  return 0;
}
