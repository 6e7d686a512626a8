/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-interval cost of the core's decisions for one VM: temperature update, bucket-sort hot
 * cut and planning, in nanoseconds per guest page, and the bytes the core holds per guest
 * page. Moves are not included (their cost is the mover's, measured on the testbed).
 *
 * Workload per interval: `touched` of the pages are accessed (80% of them written), drawn at
 * random from a working set four times that size, so pages warm up, stay warm and cool down
 * as they would under a real guest. The DRAM budget is half the VM; placement starts with
 * even pages on DRAM and odd pages on the slow tier, so half of any working set must be
 * promoted. 8 warm-up intervals, then the mean of 16 measured ones.
 *
 * Output: a table for people, then one key=value line per figure for scripts.
 */
#include <hmmv/hmmv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WARMUP_INTERVALS 8
#define MEASURED_INTERVALS 16

typedef struct {
  guint64 nr_pages;
  double touched;
  double ns_per_page;
  double temp_ns_per_page;
  double plan_ns_per_page;
  double bytes_per_page;
  double state_bytes_per_page;
  guint64 moves_planned;
} BenchResult;

static guint64
now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (guint64)ts.tv_sec * 1000000000u + (guint64)ts.tv_nsec;
}

/* xorshift64*: the workload must not depend on libc's rand and must be the same every run. */
static guint64
rng_next(guint64 *state)
{
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * G_GUINT64_CONSTANT(2685821657736338717);
}

static void
fill_access(HmmvAccess *acc, guint64 nr_pages, double touched, guint64 interval,
            guint64 *rng)
{
  guint64 nr_touch = (guint64)(touched * (double)nr_pages);
  guint64 set_pages = MIN(nr_pages, nr_touch * 4);
  /* The working set drifts by 1/8 of its size per interval. */
  guint64 base = (interval * (set_pages / 8)) % nr_pages;

  hmmv_access_clear(acc);
  acc->intervals = 1;
  for (guint64 i = 0; i < nr_touch; i++) {
    guint64 page = (base + rng_next(rng) % set_pages) % nr_pages;

    if (rng_next(rng) % 10 < 8)
      hmmv_access_mark_write(acc, page);
    else
      hmmv_access_mark_read(acc, page);
  }
}

static gboolean
bench_one(guint64 nr_pages, double touched, BenchResult *res, GError **error)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("bench");
  g_autoptr(HmmvAccess) acc = NULL;
  HmmvParams params;
  HmmvTempTables tables;
  HmmvHistogram hist;
  HmmvHotCut cut;
  HmmvPlan plan;
  guint64 rng = 0x9e3779b97f4a7c15u ^ nr_pages;
  guint64 temp_ns = 0, plan_ns = 0, moves = 0;

  if (!hmmv_vm_add_region(vm, "ram", 0, 0x7f0000000000u, nr_pages * HMMV_PAGE_SIZE,
                          HMMV_PAGE_SIZE, error) ||
      !hmmv_vm_finalize_layout(vm, error))
    return FALSE;
  acc = hmmv_access_new(nr_pages, error);
  if (acc == NULL)
    return FALSE;
  /* Interleaved, so that half of any working set starts on the slow tier. */
  for (guint64 page = 0; page < nr_pages; page++)
    hmmv_vm_set_page_node(vm, page, (int)(page & 1), (page & 1) ? HMMV_TIER_SLOW : HMMV_TIER_DRAM);
  hmmv_params_init(&params);
  hmmv_temp_tables_init(&tables, &params);
  hmmv_plan_init(&plan);

  for (guint64 interval = 0; interval < WARMUP_INTERVALS + MEASURED_INTERVALS; interval++) {
    guint64 t0, t1, t2;

    fill_access(acc, nr_pages, touched, interval, &rng);
    t0 = now_ns();
    hmmv_temperature_update(vm, &tables, acc, &hist);
    t1 = now_ns();
    hmmv_classify(&hist, nr_pages / 2, params.promote_min_key, &cut);
    hmmv_plan_build(vm, &cut, nr_pages / 2, hmmv_params_cap_pages(&params), &params, &plan);
    t2 = now_ns();
    if (interval >= WARMUP_INTERVALS) {
      temp_ns += t1 - t0;
      plan_ns += t2 - t1;
      moves += plan.promote->len + plan.demote->len;
    }
  }
  hmmv_plan_clear(&plan);

  res->nr_pages = nr_pages;
  res->touched = touched;
  res->temp_ns_per_page = (double)temp_ns / MEASURED_INTERVALS / (double)nr_pages;
  res->plan_ns_per_page = (double)plan_ns / MEASURED_INTERVALS / (double)nr_pages;
  res->ns_per_page = res->temp_ns_per_page + res->plan_ns_per_page;
  res->state_bytes_per_page = hmmv_vm_bytes_per_page(vm);
  /* The core also keeps one harvest (write and read bitmaps) per VM. */
  res->bytes_per_page = res->state_bytes_per_page +
                        (double)(2 * acc->nr_words * sizeof(guint64)) / (double)nr_pages;
  res->moves_planned = moves / MEASURED_INTERVALS;
  return TRUE;
}

int
main(int argc, char **argv)
{
  static const guint64 sizes_full[] = { 1u << 20, 16u << 20, 64u << 20 };
  static const guint64 sizes_quick[] = { 1u << 20, 4u << 20 };
  static const double touched[] = { 0.01, 0.10 };
  gboolean quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  const guint64 *sizes = quick ? sizes_quick : sizes_full;
  guint nr_sizes = quick ? G_N_ELEMENTS(sizes_quick) : G_N_ELEMENTS(sizes_full);
  g_autoptr(GArray) results = g_array_new(FALSE, TRUE, sizeof(BenchResult));

  printf("%10s %8s %12s %12s %12s %10s %12s %12s\n", "pages", "touched", "ns/page",
         "temp ns/pg", "plan ns/pg", "B/page", "ms/interval", "moves/intv");
  for (guint s = 0; s < nr_sizes; s++) {
    for (guint t = 0; t < G_N_ELEMENTS(touched); t++) {
      g_autoptr(GError) error = NULL;
      BenchResult res = { 0 };

      if (!bench_one(sizes[s], touched[t], &res, &error)) {
        fprintf(stderr, "bench-core: %s\n", error->message);
        return EXIT_FAILURE;
      }
      printf("%10" G_GUINT64_FORMAT " %7.0f%% %12.3f %12.3f %12.3f %10.3f %12.2f %12"
             G_GUINT64_FORMAT "\n", res.nr_pages, res.touched * 100, res.ns_per_page,
             res.temp_ns_per_page, res.plan_ns_per_page, res.bytes_per_page,
             res.ns_per_page * (double)res.nr_pages / 1e6, res.moves_planned);
      fflush(stdout);
      g_array_append_val(results, res);
    }
  }
  /* 256 GiB of guest RAM = 64M pages: the figure the goal is stated for. */
  for (guint i = 0; i < results->len; i++) {
    const BenchResult *res = &g_array_index(results, BenchResult, i);
    g_autofree char *tag = g_strdup_printf("%" G_GUINT64_FORMAT "M_%.0fpct",
                                           res->nr_pages >> 20, res->touched * 100);

    printf("ns_per_page_%s=%.3f\n", tag, res->ns_per_page);
  }
  for (guint i = 0; i < results->len; i++) {
    const BenchResult *res = &g_array_index(results, BenchResult, i);

    if (i + 1 == results->len || (res->nr_pages == sizes[nr_sizes - 1] && res->touched == 0.01)) {
      printf("bytes_per_page=%.3f\n", res->bytes_per_page);
      printf("state_bytes_per_page=%.3f\n", res->state_bytes_per_page);
      printf("ns_per_page=%.3f\n", res->ns_per_page);
      printf("pages=%" G_GUINT64_FORMAT "\n", res->nr_pages);
      break;
    }
  }
  return EXIT_SUCCESS;
}
