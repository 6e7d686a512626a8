/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * reads-check: runs hmmv's DAMON read tracker on a live QEMU whose guest is the test guest
 * in mode=reads, feeds the harvests through hmmv's temperatures and hot-set selection, and
 * scores the pages classified hot against the sets the guest says it reads and writes.
 * Used by test-reads.sh inside the testbed (kernel 6.12: DAMON vaddr and paddr).
 *
 *   reads-check --pid PID --backing PATH --serial FILE --ops vaddr|paddr
 *               [--interval-ms 1000] [--intervals 8] [--run-dir DIR]
 *               [--min-precision P --min-recall R] [--abandon]
 *   reads-check --cleanup [--run-dir DIR]
 *   reads-check --pid PID --backing PATH --serial FILE --ops OPS --budget-pages N [--no-reads]
 *
 * Guest RAM is the QEMU process's mapping of the memory-backend-file PATH (guest-physical 0
 * at offset 0). Hot = hmmv_classify() with no DRAM pressure (budget = all pages): the pages
 * hmmv would want in DRAM. Scored inside the guest's test window only (its code and stack
 * lie below it). Prints `reads: source=NAME precision=0.NNN recall=0.NNN` and the cost.
 * --abandon starts tracking and exits without stopping, as a killed hmmvd would.
 *
 * --budget-pages N runs hmmv's core (numa mover, a DRAM pool of N pages) on the VM instead,
 * on a host with a slow node, then reads back where the guest's read set is: with reads
 * tracked it stays on DRAM. --no-reads runs the same core without the read source; the
 * guest writes nothing, so a write tracker reports nothing, which the core is given as an
 * empty fake tracker (the patched QEMU's qemu-dirty would report the same).
 */
#include <hmmv/hmmv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  guint64 base_pfn, read_pages, read_chunk, read_stride, write_first_pfn, write_pages;
  guint64 window_pages;
} GuestSets;

static gboolean
parse_kv(const char *line, const char *key, guint64 *value)
{
  g_autofree char *needle = g_strdup_printf(" %s=", key);
  const char *p = strstr(line, needle);

  if (p == NULL)
    return FALSE;
  *value = g_ascii_strtoull(p + strlen(needle), NULL, 0);
  return TRUE;
}

/* Waits (up to 300 s: the nested guest boots under TCG in TCG, and at load 15-19 one boot
 * took over 120 s, the deadline before) for HMMV-READS-BEGIN. */
static gboolean
read_sets(const char *serial, GuestSets *sets, GError **error)
{
  for (guint i = 0; i < 3000; i++) {
    g_autofree char *text = NULL;
    const char *line;

    if (g_file_get_contents(serial, &text, NULL, NULL) &&
        (line = strstr(text, "HMMV-READS-BEGIN")) != NULL && strchr(line, '\n') != NULL) {
      g_autofree char *one = g_strndup(line, (gsize)(strchr(line, '\n') - line));

      if (parse_kv(one, "base_pfn", &sets->base_pfn) &&
          parse_kv(one, "read_pages", &sets->read_pages) &&
          parse_kv(one, "read_chunk", &sets->read_chunk) &&
          parse_kv(one, "read_stride", &sets->read_stride) &&
          parse_kv(one, "write_first_pfn", &sets->write_first_pfn) &&
          parse_kv(one, "write_pages", &sets->write_pages) &&
          parse_kv(one, "window_pages", &sets->window_pages) && sets->read_chunk > 0)
        return TRUE;
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "bad guest line: %s", one);
      return FALSE;
    }
    g_usleep(100000);
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "%s: no HMMV-READS-BEGIN in 300 s",
              serial);
  return FALSE;
}

static gboolean
find_mapping(int pid, const char *backing, guint64 *hva, guint64 *size, GError **error)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/maps", pid);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents(path, &text, NULL, error))
    return FALSE;
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    guint64 start, end;

    if (!g_str_has_suffix(lines[i], backing) ||
        sscanf(lines[i], "%" G_GINT64_MODIFIER "x-%" G_GINT64_MODIFIER "x", &start, &end) != 2)
      continue;
    *hva = start;
    *size = end - start;
    return TRUE;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "no mapping of %s in %s", backing,
              path);
  return FALSE;
}

static gboolean
in_read_set(const GuestSets *s, guint64 pfn)
{
  guint64 off, chunk;

  if (pfn < s->base_pfn)
    return FALSE;
  off = pfn - s->base_pfn;
  chunk = off / s->read_stride;
  return chunk < s->read_pages / s->read_chunk && off % s->read_stride < s->read_chunk;
}

static gboolean
in_write_set(const GuestSets *s, guint64 pfn)
{
  return pfn >= s->write_first_pfn && pfn < s->write_first_pfn + s->write_pages;
}

/* utime + stime of a task, in ns */
static guint64
task_cpu_ns(int pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *text = NULL;
  const char *p;
  unsigned long utime = 0, stime = 0;

  if (pid <= 0 || !g_file_get_contents(path, &text, NULL, NULL) ||
      (p = strrchr(text, ')')) == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
    return 0;
  return (guint64)(utime + stime) * (1000000000ull / (guint64)sysconf(_SC_CLK_TCK));
}

/* Pages of the guest's read set on a DRAM node, read back from the kernel. */
static guint64
read_set_on_dram(HmmvMover *mover, const HmmvTopology *topo, HmmvVm *vm, const GuestSets *sets,
                 GError **error)
{
  g_autoptr(GArray) pages = g_array_new(FALSE, FALSE, sizeof(guint64));
  guint64 on_dram = 0;

  for (guint64 pfn = sets->base_pfn; pfn < sets->base_pfn + sets->window_pages; pfn++) {
    if (in_read_set(sets, pfn))
      g_array_append_val(pages, pfn);
  }
  if (!hmmv_mover_query(mover, vm, (const guint64 *)pages->data, pages->len, error))
    return G_MAXUINT64;
  for (guint i = 0; i < pages->len; i++) {
    int node = hmmv_vm_get_page_node(vm, g_array_index(pages, guint64, i));
    const HmmvNode *info = node >= 0 ? hmmv_topology_lookup(topo, node) : NULL;

    on_dram += info != NULL && info->tier == HMMV_TIER_DRAM;
  }
  return on_dram;
}

static int
run_budget(HmmvVm *vm_in, HmmvTracker *tracker, const GuestSets *sets, guint64 budget_pages,
           int interval_ms, int intervals, const char *label)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new_from_host(NULL, &error);
  g_autoptr(HmmvMover) mover = NULL;
  g_autoptr(HmmvCore) core = NULL;
  HmmvQuota quota = { .weight = 100, .managed = TRUE };
  HmmvParams params;
  HmmvVm *vm;
  guint64 before, after;
  const char *name = hmmv_vm_get_name(vm_in);

  if (topo == NULL || hmmv_topology_is_single_node(topo) ||
      !hmmv_topology_has_tier(topo, HMMV_TIER_SLOW)) {
    printf("reads-check: budget: needs a DRAM and a slow node (%s)\n",
           error != NULL ? error->message : "one node, or no slow tier");
    hmmv_tracker_free(tracker);
    (void)hmmv_damon_wait_released(150000);   /* its kdamond given back */
    hmmv_vm_free(vm_in);
    return 77;
  }
  mover = hmmv_numa_mover_new(topo, &error);
  hmmv_params_init(&params);
  params.interval_ms = (guint)interval_ms;
  params.migrate_mbps = 0;    /* no cap: a nested TCG guest's moves are slow enough */
  /* The payback gate on, at its default costs (issue 7's plan-gate.c): its noise model follows
   * the VM's access mix, so pages read steadily pass it (with every page taken for a
   * written one, none of the read set was promoted back in 30 intervals: testbed run 3). */
  core = mover != NULL ? hmmv_core_new(topo, mover, &params, budget_pages, &error) : NULL;
  if (core == NULL) {
    fprintf(stderr, "reads-check: budget: %s\n", error->message);
    hmmv_tracker_free(tracker);
    (void)hmmv_damon_wait_released(150000);   /* its kdamond given back */
    hmmv_vm_free(vm_in);
    return 1;
  }
  hmmv_vm_set_quota(vm_in, &quota);
  if (!hmmv_core_add_vm(core, vm_in, tracker, &error)) {   /* takes vm and tracker */
    fprintf(stderr, "reads-check: budget: %s\n", error->message);
    return 1;
  }
  vm = hmmv_core_lookup_vm(core, name);
  before = read_set_on_dram(mover, topo, vm, sets, &error);
  for (int i = 0; i < intervals; i++) {
    g_auto(HmmvIntervalReport) report;
    const HmmvVmReport *r;

    hmmv_interval_report_init(&report);
    g_usleep((gulong)interval_ms * 1000);
    if (!hmmv_core_run_interval(core, &report, &error)) {
      fprintf(stderr, "reads-check: budget: interval: %s\n", error->message);
      return 1;
    }
    r = &g_array_index(report.vms, HmmvVmReport, 0);
    printf("reads-check: %s interval %d: read %" G_GUINT64_FORMAT " written %" G_GUINT64_FORMAT
           " hot %" G_GUINT64_FORMAT " budget %" G_GUINT64_FORMAT " dram %" G_GUINT64_FORMAT
           " slow %" G_GUINT64_FORMAT " promoted %" G_GUINT64_FORMAT " demoted %"
           G_GUINT64_FORMAT "%s%s\n", label, i, r->read, r->written, r->hot_pages,
           r->budget_pages, r->dram_pages, r->slow_pages, r->promoted, r->demoted,
           r->error != NULL ? " error: " : "", r->error != NULL ? r->error->message : "");
    fflush(stdout);
  }
  after = read_set_on_dram(mover, topo, vm, sets, &error);
  if (after == G_MAXUINT64) {
    fprintf(stderr, "reads-check: budget: read back: %s\n", error->message);
    return 1;
  }
  printf("reads-budget: tracking=%s budget=%" G_GUINT64_FORMAT " pages read-set-on-dram=%"
         G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " (%.3f; %" G_GUINT64_FORMAT " before)\n",
         label, budget_pages, after, sets->read_pages, (double)after / (double)sets->read_pages,
         before);
  return 0;
}

int
main(int argc, char **argv)
{
  int pid = 0, interval_ms = 1000, intervals = 8;
  g_autofree char *backing = NULL, *serial = NULL, *ops_name = NULL, *run_dir = NULL;
  gboolean abandon = FALSE, cleanup = FALSE, no_reads = FALSE, verbose = FALSE;
  gint64 budget_pages = 0;
  int min_accesses = 0;
  double min_precision = 0, min_recall = 0;
  GOptionEntry entries[] = {
    { "pid", 0, 0, G_OPTION_ARG_INT, &pid, "QEMU pid", "PID" },
    { "backing", 0, 0, G_OPTION_ARG_FILENAME, &backing, "guest RAM backing file", "PATH" },
    { "serial", 0, 0, G_OPTION_ARG_FILENAME, &serial, "the guest's serial log", "FILE" },
    { "ops", 0, 0, G_OPTION_ARG_STRING, &ops_name, "vaddr or paddr", "OPS" },
    { "interval-ms", 0, 0, G_OPTION_ARG_INT, &interval_ms, "interval", "MS" },
    { "intervals", 0, 0, G_OPTION_ARG_INT, &intervals, "DAMON snapshots to score over (harvests: up to 10x)", "N" },
    { "run-dir", 0, 0, G_OPTION_ARG_FILENAME, &run_dir, "ownership records", "DIR" },
    { "min-precision", 0, 0, G_OPTION_ARG_DOUBLE, &min_precision, "fail below", "P" },
    { "min-recall", 0, 0, G_OPTION_ARG_DOUBLE, &min_recall, "fail below", "R" },
    { "abandon", 0, 0, G_OPTION_ARG_NONE, &abandon, "exit without stopping", NULL },
    { "cleanup", 0, 0, G_OPTION_ARG_NONE, &cleanup, "clean stale hmmv kdamonds", NULL },
    { "budget-pages", 0, 0, G_OPTION_ARG_INT64, &budget_pages, "run the core, DRAM pool", "N" },
    { "min-accesses", 0, 0, G_OPTION_ARG_INT, &min_accesses,
      "samples a region must be seen accessed in (0: the tracker's default)", "N" },
    { "verbose", 0, 0, G_OPTION_ARG_NONE, &verbose, "print DAMON's regions", NULL },
    { "no-reads", 0, 0, G_OPTION_ARG_NONE, &no_reads, "budget: without the read source", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new("- score hmmv's read tracking");
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(HmmvSysfs) fs = hmmv_sysfs_new_dir(HMMV_DAMON_ADMIN_DIR);
  HmmvDamonOptions options = { 0 };
  HmmvTracker *tracker;
  HmmvParams params;
  HmmvTempTables tables;
  HmmvHistogram hist;
  HmmvHotCut cut;
  HmmvDamonStats stats;
  GuestSets sets;
  guint64 hva, size, nr_pages, tp = 0, fp = 0, fn = 0, kdamond_cpu0, snapshots = 0;
  int harvests;
  g_autofree guint64 *hot = NULL;
  double precision, recall, gib;

  g_option_context_add_main_entries(context, entries, NULL);
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    fprintf(stderr, "reads-check: %s\n", error->message);
    return 2;
  }
  if (cleanup) {
    guint cleaned = hmmv_damon_cleanup_stale(fs, run_dir, &error);

    if (error != NULL) {
      fprintf(stderr, "reads-check: cleanup: %s\n", error->message);
      return 1;
    }
    printf("reads-check: cleaned %u stale hmmv kdamond(s)\n", cleaned);
    return 0;
  }
  if (pid <= 0 || backing == NULL || serial == NULL || ops_name == NULL) {
    fprintf(stderr, "reads-check: --pid, --backing, --serial and --ops are needed\n");
    return 2;
  }
  if (!read_sets(serial, &sets, &error) || !find_mapping(pid, backing, &hva, &size, &error)) {
    fprintf(stderr, "reads-check: %s\n", error->message);
    return 1;
  }
  vm = hmmv_vm_new("reads");
  if (!hmmv_vm_add_region(vm, "ram", 0, hva, size, 4096, &error) ||
      !hmmv_vm_finalize_layout(vm, &error)) {
    fprintf(stderr, "reads-check: %s\n", error->message);
    return 1;
  }
  hmmv_vm_set_pid(vm, pid);
  nr_pages = hmmv_vm_get_nr_pages(vm);
  acc = hmmv_access_new(nr_pages, NULL);
  options.ops = g_strcmp0(ops_name, "paddr") == 0 ? HMMV_DAMON_PADDR : HMMV_DAMON_VADDR;
  options.min_accesses = (guint)MAX(min_accesses, 0);
  if (budget_pages > 0) {
    HmmvTracker *writes = hmmv_fake_tracker_new();
    g_autofree char *label = NULL;

    options.interval_ms = (guint)interval_ms;
    options.fs = fs;
    options.run_dir = run_dir;
    tracker = no_reads ? NULL : hmmv_damon_tracker_new(&options, &error);
    label = g_strdup_printf(no_reads ? "writes-only" : "reads+writes(damon-%s)",
                            hmmv_damon_ops_name(options.ops));
    return run_budget(g_steal_pointer(&vm), no_reads ? writes
                                                     : hmmv_combined_tracker_new(writes, tracker),
                      &sets, (guint64)budget_pages, interval_ms, intervals, label);
  }
  options.interval_ms = (guint)interval_ms;
  options.fs = fs;
  options.run_dir = run_dir;
  tracker = hmmv_damon_tracker_new(&options, &error);
  if (tracker == NULL || !hmmv_tracker_start(tracker, vm, &error) ||
      !hmmv_damon_tracker_wait_setup(tracker, &error)) {
    printf("reads-check: damon-%s unavailable: %s\n", hmmv_damon_ops_name(options.ops),
           error->message);
    hmmv_tracker_free(tracker);
    (void)hmmv_damon_wait_released(150000);   /* its kdamond given back */
    return 77;
  }
  (void)hmmv_damon_tracker_get_stats(tracker, &stats);
  printf("reads-check: %s on kdamond %u (pid %d): %" G_GUINT64_FORMAT " MiB at 0x%"
         G_GINT64_MODIFIER "x, regions %u..%u, sample %u us, aggregation %u us, read from %u "
         "samples\n", hmmv_tracker_get_name(tracker), stats.kdamond, stats.kdamond_pid,
         size >> 20, hva, stats.min_nr_regions, stats.max_nr_regions, stats.sample_us,
         stats.aggr_us, stats.min_accesses);
  if (options.ops == HMMV_DAMON_PADDR)
    printf("reads-check: damon-paddr watches %u ranges of the VM's frames\n",
           stats.monitored_ranges);
  fflush(stdout);
  if (abandon)
    _exit(0);   /* as kill -9: no stop, the kdamond and the record stay */
  hmmv_params_init(&params);
  params.interval_ms = (guint)interval_ms;
  hmmv_temp_tables_init(&tables, &params);
  kdamond_cpu0 = task_cpu_ns(stats.kdamond_pid);
  /* Scored after --intervals DAMON snapshots, not after as many wall-clock intervals: under
   * load the kdamond delivers fewer (2-19 in 30 intervals at load 30-47), and a harvest with
   * none changes no temperature. Harvests are capped at 10x (liveness only). */
  for (harvests = 0; snapshots < (guint64)intervals && harvests < 10 * intervals; harvests++) {
    int i = harvests;

    g_usleep((gulong)interval_ms * 1000);
    hmmv_access_clear(acc);
    if (!hmmv_tracker_harvest(tracker, vm, acc, &error)) {
      fprintf(stderr, "reads-check: harvest: %s\n", error->message);
      hmmv_tracker_stop(tracker);
      hmmv_tracker_free(tracker);
      (void)hmmv_damon_wait_released(150000);   /* its kdamond given back */
      return 1;
    }
    snapshots += acc->intervals;
    hmmv_temperature_update(vm, &tables, acc, &hist);
    {
      guint64 in_set = 0, marked = 0;

      for (guint64 pfn = sets.base_pfn; pfn < sets.base_pfn + sets.window_pages; pfn++) {
        if (pfn < nr_pages && hmmv_bitmap_test(acc->reads, pfn)) {
          marked++;
          in_set += in_read_set(&sets, pfn) || in_write_set(&sets, pfn);
        }
      }
      printf("reads-check: interval %d: %" G_GUINT64_FORMAT " snapshot(s), %" G_GUINT64_FORMAT
             " pages read; in the window %" G_GUINT64_FORMAT " marked, %" G_GUINT64_FORMAT
             " of them accessed by the guest\n", i, acc->intervals,
             hmmv_bitmap_count(acc->reads, acc->nr_words), marked, in_set);
    }
    for (guint r = 0; verbose && r < 4000; r++) {
      g_autofree char *dir = g_strdup_printf("kdamonds/%u/contexts/0/schemes/0/tried_regions/%u",
                                             stats.kdamond, r);
      g_autofree char *p1 = g_strconcat(dir, "/start", NULL);
      g_autofree char *p2 = g_strconcat(dir, "/end", NULL);
      g_autofree char *p3 = g_strconcat(dir, "/nr_accesses", NULL);
      guint64 a, b, n;

      if (!hmmv_sysfs_read_u64(fs, p1, &a, NULL) || !hmmv_sysfs_read_u64(fs, p2, &b, NULL) ||
          !hmmv_sysfs_read_u64(fs, p3, &n, NULL))
        break;
      printf("  region %u: pages %" G_GINT64_MODIFIER "d-%" G_GINT64_MODIFIER "d nr_accesses %"
             G_GUINT64_FORMAT "\n", r, (gint64)(a - hva) / 4096, (gint64)(b - hva) / 4096, n);
    }
  }
  (void)hmmv_damon_tracker_get_stats(tracker, &stats);
  {
    guint64 kdamond_ns = task_cpu_ns(stats.kdamond_pid) - kdamond_cpu0;

    hmmv_tracker_stop(tracker);
    hmmv_tracker_free(tracker);
    (void)hmmv_damon_wait_released(150000);   /* its kdamond given back */
    hmmv_classify(&hist, nr_pages, params.promote_min_key, &cut);
    hot = g_new0(guint64, (nr_pages + 63) / 64);
    hmmv_classify_bitmap(vm, &cut, hot);
    for (guint64 pfn = sets.base_pfn; pfn < sets.base_pfn + sets.window_pages; pfn++) {
      gboolean truth = in_read_set(&sets, pfn) || in_write_set(&sets, pfn);
      gboolean is_hot = pfn < nr_pages && hmmv_bitmap_test(hot, pfn);

      tp += truth && is_hot;
      fp += !truth && is_hot;
      fn += truth && !is_hot;
    }
    /* the pages the guest accessed but hmmv did not call hot, as runs (the first 16): which
     * of the guest's sets, where in the window, a chunk at a time or a page here and there */
    for (guint64 pfn = sets.base_pfn, runs = 0; pfn < sets.base_pfn + sets.window_pages;) {
      guint64 end = pfn;

      while (end < sets.base_pfn + sets.window_pages &&
             (in_read_set(&sets, end) || in_write_set(&sets, end)) &&
             !(end < nr_pages && hmmv_bitmap_test(hot, end)) &&
             in_write_set(&sets, end) == in_write_set(&sets, pfn))
        end++;
      if (end == pfn) {
        pfn++;
        continue;
      }
      if (runs++ < 16)
        printf("reads-check: not hot: %s set pages %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT
               " (window offset %" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT " pages)\n",
               in_write_set(&sets, pfn) ? "write" : "read", pfn, end - 1,
               pfn - sets.base_pfn, end - pfn);
      pfn = end;
    }
    precision = tp + fp > 0 ? (double)tp / (double)(tp + fp) : 0;
    recall = tp + fn > 0 ? (double)tp / (double)(tp + fn) : 0;
    gib = (double)size / (double)(1ull << 30);
    printf("reads: source=damon-%s precision=%.3f recall=%.3f\n", hmmv_damon_ops_name(options.ops),
           precision, recall);
    printf("reads-check: damon-%s: %" G_GUINT64_FORMAT " hot of %" G_GUINT64_FORMAT
           " accessed pages (%" G_GUINT64_FORMAT " read, %" G_GUINT64_FORMAT
           " written) in a %" G_GUINT64_FORMAT "-page window; %" G_GUINT64_FORMAT
           " snapshots in %d intervals of %d ms (%" G_GUINT64_FORMAT " empty ones dropped)\n",
           hmmv_damon_ops_name(options.ops), tp + fp, tp + fn, sets.read_pages,
           sets.write_pages, sets.window_pages, snapshots, harvests, interval_ms,
           stats.empty_snapshots);
    if (options.ops == HMMV_DAMON_PADDR)
      printf("reads-check: damon-paddr: ranges handed again after frames moved: %"
             G_GUINT64_FORMAT "\n", stats.recommits);
    printf("reads-check: cost damon-%s: tracker thread %.2f ms/interval, kdamond %.2f "
           "ms/interval, for %.3f GiB: %.2f + %.2f ms per GiB per interval\n",
           hmmv_damon_ops_name(options.ops), stats.thread_cpu_ns / 1e6 / harvests,
           kdamond_ns / 1e6 / harvests, gib, stats.thread_cpu_ns / 1e6 / harvests / gib,
           kdamond_ns / 1e6 / harvests / gib);
  }
  if (snapshots < (guint64)intervals)
    printf("reads-check: only %" G_GUINT64_FORMAT " of %d snapshots in %d harvests\n",
           snapshots, intervals, harvests);
  if (precision < min_precision || recall < min_recall) {
    printf("reads-check: FAIL: below precision %.3f / recall %.3f\n", min_precision,
           min_recall);
    return 1;
  }
  return 0;
}
