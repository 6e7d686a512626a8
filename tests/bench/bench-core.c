/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-interval cost of the core's decisions: temperature update (with the huge units'
 * aggregate when units are on), bucket-sort hot cut and planning, in nanoseconds per guest
 * page, and the bytes the core holds per guest page. Moves are not included (their cost is
 * the mover's, measured on the testbed).
 *
 * Workload per interval: `touched` of the pages are accessed (80% of them written), drawn at
 * random from a working set four times that size, so pages warm up, stay warm and cool down
 * as they would under a real guest. The DRAM budget is half the VM; placement starts with
 * even pages (units on: even 2 MiB units) on DRAM and odd ones on the slow tier, so half of
 * any working set must be promoted. 8 warm-up intervals, then the mean of 16 measured ones.
 *
 * Units: "4k" is 4 KiB-backed RAM without THPs; "2M" has every 2 MiB block a THP, which is
 * what QEMU asks for (MADV_HUGEPAGE on all guest RAM) and what a host with free 2 MiB frames
 * gives: the units are decided whole (units.h), so the planner sees 512x fewer candidates
 * while the temperature pass still reads every 4 KiB page's key.
 *
 * The fleet case (issue 7): 20 VMs, 16 of 64 GiB and 4 of 256 GiB (2 TiB of guest RAM,
 * 512M pages; --quick: 1/1024 of that), units on, 1% touched per interval; the DRAM pool is
 * half of all guest RAM, lent by hmmv_balance() from the VMs' histograms. Decision work per
 * interval: temperatures of every VM, the balance, every VM's cut and plan. Run on 1 thread;
 * when that takes more than the goal (250 ms), again spread over the CPUs (VMs split by size
 * across threads, the balance between the two phases). multi_vm_ms_per_interval is the
 * interval's critical path in CPU time (the busiest thread in each phase, plus the balance):
 * its length on that many idle cores; wall time and all threads' CPU time are printed too.
 *
 * Times are CPU time (thread_cpu_ns), except the fleet's wall time, which is printed beside its
 * CPU time: the goal for it is stated for one core of a machine that is not shared.
 *
 * Output: a table for people, then one key=value line per figure for scripts;
 * `ns_per_page=` (one VM of 64M pages, 1% touched, units on, planner included) stays last but
 * one, before `pages=`.
 */
#include <hmmv/hmmv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WARMUP_INTERVALS 8
#define MEASURED_INTERVALS 16
#define UNIT_PAGES 512   /* 2 MiB in 4 KiB pages */

typedef struct {
  guint64 nr_pages;
  double touched;
  gboolean units;
  double ns_per_page;
  double temp_ns_per_page;
  double plan_ns_per_page;
  double bytes_per_page;
  double state_bytes_per_page;
  guint64 moves_planned;
  guint64 gated;          /* hot slow-tier pages the payback gate kept there, per interval */
} BenchResult;

/* One VM's decision state, as the core keeps it (CoreVm, without tracker and mover). */
typedef struct {
  HmmvVm *vm;
  HmmvAccess *acc;
  HmmvHistogram hist;
  HmmvHotCut cut;
  HmmvPlan plan;
  guint64 rng;
  guint64 budget;
  guint64 moves;          /* promotions + demotions planned, measured intervals */
} BenchVm;

static guint64
now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (guint64)ts.tv_sec * 1000000000u + (guint64)ts.tv_nsec;
}

/* CPU time of the calling thread: what the decisions cost, whatever else the shared machine
 * runs meanwhile (at load 15-20 on 2 cores, wall time was 3-5x the CPU time and varied as
 * much; cache contention still shows). */
static guint64
thread_cpu_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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

static void
bench_vm_clear(BenchVm *b)
{
  hmmv_plan_clear(&b->plan);
  g_clear_pointer(&b->acc, hmmv_access_free);
  g_clear_pointer(&b->vm, hmmv_vm_free);
}

/* A VM of nr_pages at host address 2 MiB-aligned (so its 2 MiB blocks are whole units), all
 * pages present, half on DRAM (see the top). */
static gboolean
bench_vm_init(BenchVm *b, const char *name, guint64 nr_pages, gboolean units, GError **error)
{
  memset(b, 0, sizeof(*b));
  b->vm = hmmv_vm_new(name);
  hmmv_plan_init(&b->plan);
  b->rng = 0x9e3779b97f4a7c15u ^ nr_pages ^ g_str_hash(name);
  b->budget = nr_pages / 2;
  if (!hmmv_vm_add_region(b->vm, "ram", 0, 0x7f0000000000u, nr_pages * HMMV_PAGE_SIZE,
                          HMMV_PAGE_SIZE, error) ||
      !hmmv_vm_finalize_layout(b->vm, error))
    return FALSE;
  b->acc = hmmv_access_new(nr_pages, error);
  if (b->acc == NULL)
    return FALSE;
  for (guint64 block = 0; units && block < hmmv_vm_get_nr_thp_blocks(b->vm); block++)
    if (!hmmv_vm_set_thp(b->vm, block, TRUE)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "block %" G_GUINT64_FORMAT
                  " cannot be a THP", block);
      return FALSE;
    }
  /* Interleaved, so that half of any working set starts on the slow tier; a huge unit is
   * on one node, as the kernel keeps it. */
  for (guint64 page = 0; page < nr_pages; page++) {
    guint64 odd = units ? (page / UNIT_PAGES) & 1 : page & 1;

    hmmv_vm_set_page_node(b->vm, page, (int)odd, odd ? HMMV_TIER_SLOW : HMMV_TIER_DRAM);
  }
  return TRUE;
}

/* The harvest's share of the decisions: temperatures, then the units' mean keys. */
static void
bench_vm_temperature(BenchVm *b, const HmmvTempTables *tables)
{
  hmmv_temperature_update(b->vm, tables, b->acc, &b->hist);
  hmmv_units_aggregate(b->vm, &b->hist);
}

static void
bench_vm_plan(BenchVm *b, const HmmvParams *params)
{
  hmmv_classify(&b->hist, b->budget, params->promote_min_key, &b->cut);
  hmmv_plan_build(b->vm, &b->cut, b->budget, hmmv_params_cap_pages(params), params, &b->plan);
}

static gboolean
bench_one(guint64 nr_pages, double touched, gboolean units, BenchResult *res, GError **error)
{
  BenchVm b;
  HmmvParams params;
  HmmvTempTables tables;
  guint64 temp_ns = 0, plan_ns = 0, moves = 0, gated = 0;
  gboolean ok = bench_vm_init(&b, "bench", nr_pages, units, error);

  if (!ok) {
    bench_vm_clear(&b);
    return FALSE;
  }
  hmmv_params_init(&params);
  hmmv_temp_tables_init(&tables, &params);

  for (guint64 interval = 0; interval < WARMUP_INTERVALS + MEASURED_INTERVALS; interval++) {
    guint64 t0, t1, t2;

    fill_access(b.acc, nr_pages, touched, interval, &b.rng);
    t0 = thread_cpu_ns();
    bench_vm_temperature(&b, &tables);
    t1 = thread_cpu_ns();
    bench_vm_plan(&b, &params);
    t2 = thread_cpu_ns();
    if (interval >= WARMUP_INTERVALS) {
      temp_ns += t1 - t0;
      plan_ns += t2 - t1;
      moves += b.plan.promote->len + b.plan.demote->len;
      gated += b.plan.promote_gated;
    }
  }

  res->nr_pages = nr_pages;
  res->touched = touched;
  res->units = units;
  res->temp_ns_per_page = (double)temp_ns / MEASURED_INTERVALS / (double)nr_pages;
  res->plan_ns_per_page = (double)plan_ns / MEASURED_INTERVALS / (double)nr_pages;
  res->ns_per_page = res->temp_ns_per_page + res->plan_ns_per_page;
  res->state_bytes_per_page = hmmv_vm_bytes_per_page(b.vm);
  /* The core also keeps one harvest (write and read bitmaps) per VM. */
  res->bytes_per_page = res->state_bytes_per_page +
                        (double)(2 * b.acc->nr_words * sizeof(guint64)) / (double)nr_pages;
  res->moves_planned = moves / MEASURED_INTERVALS;
  res->gated = gated / MEASURED_INTERVALS;
  bench_vm_clear(&b);
  return TRUE;
}

/* ---- the fleet case ---- */

#define FLEET_VMS 20
#define FLEET_GOAL_MS 250.0

typedef enum {
  PHASE_TEMPERATURE,
  PHASE_PLAN,
} FleetPhase;

typedef struct {
  BenchVm **vms;          /* this thread's VMs */
  guint nr_vms;
  FleetPhase phase;
  const HmmvTempTables *tables;
  const HmmvParams *params;
  guint64 cpu_ns;         /* the thread's CPU time in the phase */
} FleetWorker;

static gpointer
fleet_worker_run(gpointer data)
{
  FleetWorker *w = data;
  guint64 cpu0 = thread_cpu_ns();

  for (guint i = 0; i < w->nr_vms; i++) {
    if (w->phase == PHASE_TEMPERATURE)
      bench_vm_temperature(w->vms[i], w->tables);
    else
      bench_vm_plan(w->vms[i], w->params);
  }
  w->cpu_ns = thread_cpu_ns() - cpu0;
  return NULL;
}

/* One phase over every VM on nr_threads threads (the caller's is the first); returns the CPU
 * time all of them spent, and in *busiest that of the busiest thread. */
static guint64
fleet_phase(FleetWorker *workers, guint nr_threads, FleetPhase phase, guint64 *busiest)
{
  GThread *threads[64];
  guint64 cpu = 0;

  for (guint t = 0; t < nr_threads; t++)
    workers[t].phase = phase;
  for (guint t = 1; t < nr_threads; t++)
    threads[t] = g_thread_new("bench-core", fleet_worker_run, &workers[t]);
  fleet_worker_run(&workers[0]);
  for (guint t = 1; t < nr_threads; t++)
    g_thread_join(threads[t]);
  *busiest = 0;
  for (guint t = 0; t < nr_threads; t++) {
    cpu += workers[t].cpu_ns;
    *busiest = MAX(*busiest, workers[t].cpu_ns);
  }
  return cpu;
}

typedef struct {
  guint64 nr_pages;
  guint nr_threads;
  double ms;              /* per interval: the busiest thread's CPU time in each phase plus the
                             balance's, what the interval takes on nr_threads idle cores */
  double wall_ms;         /* per interval, on this machine as loaded as it was */
  double cpu_ms;          /* all threads' CPU time per interval */
  double balance_ms;
  guint64 moves_planned;  /* all VMs, per interval */
  guint64 gated;          /* all VMs, per interval: kept on the slow tier by the gate */
} FleetResult;

static void
fleet_vm_pages(guint i, gboolean quick, guint64 *nr_pages)
{
  /* 16 x 64 GiB + 4 x 256 GiB = 2 TiB; quick: 16 x 64 MiB + 4 x 256 MiB */
  guint64 gib_pages = quick ? (G_GUINT64_CONSTANT(1) << 20) / HMMV_PAGE_SIZE
                            : (G_GUINT64_CONSTANT(1) << 30) / HMMV_PAGE_SIZE;

  *nr_pages = (i % 5 == 4 ? 256 : 64) * gib_pages;
}

static gboolean
bench_fleet(BenchVm *vms, guint nr_threads, double touched, FleetResult *res, GError **error)
{
  FleetWorker workers[64];
  guint64 thread_pages[64] = { 0 };
  g_autofree BenchVm **order = g_new(BenchVm *, FLEET_VMS);
  HmmvBalanceVm bvms[FLEET_VMS];
  HmmvParams params;
  HmmvTempTables tables;
  guint64 pool = 0, total = 0, wall = 0, cpu = 0, crit = 0, balance_ns = 0, moves = 0;
  guint64 gated = 0;

  g_assert(nr_threads >= 1 && nr_threads <= G_N_ELEMENTS(workers));
  hmmv_params_init(&params);
  hmmv_temp_tables_init(&tables, &params);
  memset(workers, 0, sizeof(workers));
  for (guint t = 0; t < nr_threads; t++) {
    workers[t].vms = g_new(BenchVm *, FLEET_VMS);
    workers[t].tables = &tables;
    workers[t].params = &params;
  }
  /* biggest VM first to the thread with the fewest pages so far */
  for (guint i = 0; i < FLEET_VMS; i++)
    order[i] = &vms[i];
  for (guint i = 0; i < FLEET_VMS; i++)
    for (guint j = i + 1; j < FLEET_VMS; j++)
      if (hmmv_vm_get_nr_pages(order[j]->vm) > hmmv_vm_get_nr_pages(order[i]->vm)) {
        BenchVm *swap = order[i];

        order[i] = order[j];
        order[j] = swap;
      }
  for (guint i = 0; i < FLEET_VMS; i++) {
    guint least = 0;

    for (guint t = 1; t < nr_threads; t++)
      if (thread_pages[t] < thread_pages[least])
        least = t;
    workers[least].vms[workers[least].nr_vms++] = order[i];
    thread_pages[least] += hmmv_vm_get_nr_pages(order[i]->vm);
  }
  for (guint i = 0; i < FLEET_VMS; i++)
    total += hmmv_vm_get_nr_pages(vms[i].vm);
  pool = total / 2;

  for (guint64 interval = 0; interval < WARMUP_INTERVALS + MEASURED_INTERVALS; interval++) {
    guint64 t0, t3, phase_cpu, balance_cpu, busiest_temp, busiest_plan;

    for (guint i = 0; i < FLEET_VMS; i++)
      fill_access(vms[i].acc, hmmv_vm_get_nr_pages(vms[i].vm), touched, interval, &vms[i].rng);
    t0 = now_ns();
    phase_cpu = fleet_phase(workers, nr_threads, PHASE_TEMPERATURE, &busiest_temp);
    balance_cpu = thread_cpu_ns();
    for (guint i = 0; i < FLEET_VMS; i++)
      bvms[i] = (HmmvBalanceVm){
        .hist = &vms[i].hist,
        .nr_pages = hmmv_vm_get_nr_pages(vms[i].vm),
        .weight = 1,
        .prev_budget = vms[i].budget,
        .held_pages = hmmv_vm_get_dram_pages(vms[i].vm),
      };
    if (!hmmv_balance(bvms, FLEET_VMS, pool, 0, error))
      goto out;
    for (guint i = 0; i < FLEET_VMS; i++)
      vms[i].budget = bvms[i].budget;
    balance_cpu = thread_cpu_ns() - balance_cpu;
    phase_cpu += fleet_phase(workers, nr_threads, PHASE_PLAN, &busiest_plan);
    t3 = now_ns();
    if (interval >= WARMUP_INTERVALS) {
      wall += t3 - t0;
      cpu += phase_cpu + balance_cpu;   /* the balance runs on this thread alone */
      balance_ns += balance_cpu;
      crit += busiest_temp + balance_cpu + busiest_plan;
      for (guint i = 0; i < FLEET_VMS; i++) {
        moves += vms[i].plan.promote->len + vms[i].plan.demote->len;
        gated += vms[i].plan.promote_gated;
      }
    }
  }
  res->nr_pages = total;
  res->nr_threads = nr_threads;
  res->ms = (double)crit / MEASURED_INTERVALS / 1e6;
  res->wall_ms = (double)wall / MEASURED_INTERVALS / 1e6;
  res->cpu_ms = (double)cpu / MEASURED_INTERVALS / 1e6;
  res->balance_ms = (double)balance_ns / MEASURED_INTERVALS / 1e6;
  res->moves_planned = moves / MEASURED_INTERVALS;
  res->gated = gated / MEASURED_INTERVALS;
out:
  for (guint t = 0; t < nr_threads; t++)
    g_free(workers[t].vms);
  return error == NULL || *error == NULL;
}

static void
print_fleet(const FleetResult *res)
{
  printf("fleet: %u VMs, %" G_GUINT64_FORMAT " pages (%.0f GiB), units 2M, %u thread(s): "
         "%.1f ms/interval (busiest thread's CPU), %.1f ms CPU in all, %.1f ms wall (balance %.2f "
         "ms), %" G_GUINT64_FORMAT " moves planned/interval, %" G_GUINT64_FORMAT " gated\n",
         FLEET_VMS, res->nr_pages,
         (double)res->nr_pages * HMMV_PAGE_SIZE / (double)(1u << 30), res->nr_threads,
         res->ms, res->cpu_ms, res->wall_ms, res->balance_ms, res->moves_planned, res->gated);
  fflush(stdout);
}

static gboolean
run_fleet(gboolean quick, guint max_threads, GError **error)
{
  BenchVm vms[FLEET_VMS];
  FleetResult one = { 0 }, many = { 0 };
  gboolean ok = TRUE;
  guint init = 0;

  for (; init < FLEET_VMS && ok; init++) {
    g_autofree char *name = g_strdup_printf("vm%u", init);
    guint64 nr_pages;

    fleet_vm_pages(init, quick, &nr_pages);
    ok = bench_vm_init(&vms[init], name, nr_pages, TRUE, error);
  }
  if (ok)
    ok = bench_fleet(vms, 1, 0.01, &one, error);
  if (ok)
    print_fleet(&one);
  /* several threads only when one core is not enough for the goal (issue 7: 250 ms) */
  if (ok && max_threads > 1 && one.ms > FLEET_GOAL_MS) {
    ok = bench_fleet(vms, max_threads, 0.01, &many, error);
    if (ok)
      print_fleet(&many);
  } else {
    many = one;
  }
  for (guint i = 0; i < init; i++)
    bench_vm_clear(&vms[i]);
  if (!ok)
    return FALSE;
  printf("multi_vm_vms=%u\n", FLEET_VMS);
  printf("multi_vm_pages=%" G_GUINT64_FORMAT "\n", many.nr_pages);
  printf("multi_vm_ms_per_interval_1thread=%.1f\n", one.ms);
  printf("multi_vm_cpu_ms_per_interval=%.1f\n", many.cpu_ms);
  printf("multi_vm_wall_ms_per_interval=%.1f\n", many.wall_ms);
  printf("multi_vm_threads=%u\n", many.nr_threads);
  printf("multi_vm_ms_per_interval=%.1f\n", many.ms);
  return TRUE;
}

int
main(int argc, char **argv)
{
  static const guint64 sizes_full[] = { 1u << 20, 16u << 20, 64u << 20 };
  static const guint64 sizes_quick[] = { 1u << 20, 4u << 20 };
  static const double touched[] = { 0.01, 0.10 };
  gboolean quick = FALSE, fleet_only = FALSE;
  BenchResult one_case = { 0 };
  guint max_threads = (guint)CLAMP(sysconf(_SC_NPROCESSORS_ONLN), 1, 64);
  const guint64 *sizes;
  guint nr_sizes;
  g_autoptr(GArray) results = g_array_new(FALSE, TRUE, sizeof(BenchResult));
  g_autoptr(GError) error = NULL;
  const BenchResult *last, *last_4k;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      quick = TRUE;
    } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
      /* one row only, e.g. --case 4194304,1,2M: for callgrind's instruction counts */
      g_auto(GStrv) parts = g_strsplit(argv[++i], ",", 3);

      if (g_strv_length(parts) != 3 || g_ascii_strtoull(parts[0], NULL, 10) == 0) {
        fprintf(stderr, "bench-core: --case PAGES,PERCENT,4k|2M\n");
        return EXIT_FAILURE;
      }
      one_case.nr_pages = g_ascii_strtoull(parts[0], NULL, 10);
      one_case.touched = g_ascii_strtod(parts[1], NULL) / 100.0;
      one_case.units = strcmp(parts[2], "2M") == 0;
    } else if (strcmp(argv[i], "--fleet-only") == 0) {
      fleet_only = TRUE;
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      guint64 threads = g_ascii_strtoull(argv[++i], NULL, 10);   /* CLAMP evaluates twice */

      max_threads = (guint)CLAMP(threads, 1, 64);
    } else {
      fprintf(stderr, "usage: bench-core [--quick] [--threads N] [--fleet-only | --case "
              "PAGES,PERCENT,4k|2M]\n");
      return EXIT_FAILURE;
    }
  }
  sizes = quick ? sizes_quick : sizes_full;
  nr_sizes = quick ? G_N_ELEMENTS(sizes_quick) : G_N_ELEMENTS(sizes_full);
  if (one_case.nr_pages > 0) {
    BenchResult res = { 0 };

    if (!bench_one(one_case.nr_pages, one_case.touched, one_case.units, &res, &error)) {
      fprintf(stderr, "bench-core: %s\n", error->message);
      return EXIT_FAILURE;
    }
    printf("temp_ns_per_page=%.3f\nplan_ns_per_page=%.3f\nmoves_planned=%" G_GUINT64_FORMAT
           "\nns_per_page=%.3f\n", res.temp_ns_per_page, res.plan_ns_per_page,
           res.moves_planned, res.ns_per_page);
    return EXIT_SUCCESS;
  }
  if (fleet_only) {
    if (!run_fleet(quick, max_threads, &error)) {
      fprintf(stderr, "bench-core: fleet: %s\n", error->message);
      return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
  }

  printf("%10s %8s %6s %12s %12s %12s %10s %12s %12s %12s\n", "pages", "touched", "units",
         "ns/page", "temp ns/pg", "plan ns/pg", "B/page", "ms/interval", "moves/intv",
         "gated/intv");
  for (guint s = 0; s < nr_sizes; s++) {
    for (guint t = 0; t < G_N_ELEMENTS(touched); t++) {
      for (int units = 0; units <= 1; units++) {
        BenchResult res = { 0 };

        if (!bench_one(sizes[s], touched[t], units, &res, &error)) {
          fprintf(stderr, "bench-core: %s\n", error->message);
          return EXIT_FAILURE;
        }
        printf("%10" G_GUINT64_FORMAT " %7.0f%% %6s %12.3f %12.3f %12.3f %10.3f %12.2f %12"
               G_GUINT64_FORMAT " %12" G_GUINT64_FORMAT "\n", res.nr_pages,
               res.touched * 100, units ? "2M" : "4k", res.ns_per_page,
               res.temp_ns_per_page, res.plan_ns_per_page, res.bytes_per_page,
               res.ns_per_page * (double)res.nr_pages / 1e6, res.moves_planned, res.gated);
        fflush(stdout);
        g_array_append_val(results, res);
      }
    }
  }
  if (!run_fleet(quick, max_threads, &error)) {
    fprintf(stderr, "bench-core: fleet: %s\n", error->message);
    return EXIT_FAILURE;
  }
  for (guint i = 0; i < results->len; i++) {
    const BenchResult *res = &g_array_index(results, BenchResult, i);
    g_autofree char *tag = g_strdup_printf("%" G_GUINT64_FORMAT "M_%.0fpct%s",
                                           res->nr_pages >> 20, res->touched * 100,
                                           res->units ? "_2M" : "");

    printf("ns_per_page_%s=%.3f\n", tag, res->ns_per_page);
  }
  /* 256 GiB of guest RAM = 64M pages, 1% (the first touched figure): the goal's figure */
  last_4k = &g_array_index(results, BenchResult, (nr_sizes - 1) * 2 * G_N_ELEMENTS(touched));
  last = last_4k + 1;
  printf("bytes_per_page=%.3f\n", last->bytes_per_page);
  printf("state_bytes_per_page=%.3f\n", last->state_bytes_per_page);
  printf("ns_per_page_4k=%.3f\n", last_4k->ns_per_page);
  printf("ns_per_page=%.3f\n", last->ns_per_page);
  printf("pages=%" G_GUINT64_FORMAT "\n", last->nr_pages);
  return EXIT_SUCCESS;
}
