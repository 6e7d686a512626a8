/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cost of asking the kernel where pages are (a move_pages(2) status query, through libhmmv's
 * hmmv_numa_move_addresses in batches of 512), per page: what the core's per-interval
 * placement rescan costs (HMMV_CORE_RESCAN_MAX_PAGES in core.h). 256K present pages of this
 * process, 5 rounds, the median printed, then query_ns_per_page= for scripts.
 */
#include <hmmv/hmmv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGES (256u * 1024u)
#define BATCH 512u
#define ROUNDS 5

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

int
main(void)
{
  g_autoptr(GError) error = NULL;
  g_autofree void **addresses = g_new(void *, PAGES);
  g_autofree int *status = g_new(int, PAGES);
  double ns[ROUNDS];
  guint8 *buffer = mmap(NULL, (size_t)PAGES * HMMV_PAGE_SIZE, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

  if (buffer == MAP_FAILED) {
    perror("bench-query: mmap");
    return EXIT_FAILURE;
  }
  memset(buffer, 1, (size_t)PAGES * HMMV_PAGE_SIZE);
  for (guint i = 0; i < PAGES; i++)
    addresses[i] = buffer + (size_t)i * HMMV_PAGE_SIZE;
  for (guint r = 0; r < ROUNDS; r++) {
    struct timespec t0, t1;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (guint i = 0; i < PAGES; i += BATCH)
      if (!hmmv_numa_move_addresses(getpid(), addresses + i, BATCH, -1, status + i, &error)) {
        fprintf(stderr, "bench-query: %s\n", error->message);
        return 77;
      }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ns[r] = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / PAGES;
  }
  qsort(ns, ROUNDS, sizeof(double), cmp_double);
  printf("move_pages status query, %u pages in batches of %u: %.1f ns/page (median of %d; "
         "min %.1f, max %.1f)\n", PAGES, BATCH, ns[ROUNDS / 2], ROUNDS, ns[0], ns[ROUNDS - 1]);
  printf("query_ns_per_page=%.1f\n", ns[ROUNDS / 2]);
  munmap(buffer, (size_t)PAGES * HMMV_PAGE_SIZE);
  return EXIT_SUCCESS;
}
