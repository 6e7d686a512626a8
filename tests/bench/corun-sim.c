/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun-sim: several VMs' synthetic access streams through the real libhmmv core on the
 * sim mover (a modelled DRAM + slow-tier host), side by side in one run with the unmanaged
 * baseline (first touch, nothing moves) and all-DRAM. Prints what the core decided each
 * interval and a summary with modelled memory time.
 *
 * The slow tier is MODELLED (tests/bench/tier-model.md has the parameters and their sources):
 * latency per memory access DRAM 80 ns read / 80 ns write, Optane-like slow tier 305 ns read
 * / 915 ns write (Izraelevitz et al. 2019: 305 ns random read; write bandwidth 13.9 vs read
 * 39.4 GB/s, taken as 3x the read cost under load); each migrated page costs 3.9 us (Zi Yan's
 * 512-page move_pages batch), charged to the VM's time.
 *
 * What hmmv sees: by default only the writes (--tracking writes), as the shipped qemu-dirty
 * tracker does on a host without a read source (DAMON, idle page tracking): reads still cost
 * time in the model but are hidden from the core. --tracking reads-writes shows the core every
 * access, as a read tracker would.
 *
 * Workload of VM i: size_mib of RAM; a hot set (hot_pct of the pages) that takes 90% of the
 * touches and drifts by 1/16 of itself per interval; hot pages see 32 memory accesses per
 * interval, cold touched pages 1; write_pct of touched pages are written.
 */
#include <hmmv/hmmv.h>

#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAT_DRAM_READ_NS 80.0
#define LAT_DRAM_WRITE_NS 80.0
#define LAT_SLOW_READ_NS 305.0
#define LAT_SLOW_WRITE_NS 915.0
#define MOVE_NS_PER_PAGE 3900.0
#define HOT_ACCESSES 32
#define COLD_ACCESSES 1

typedef struct {
  const char *name;
  guint size_mib;
  guint hot_pct;
  guint touch_pct;          /* pages touched per interval, % of the VM */
  guint write_pct;
  guint weight;
} VmSpec;

static const VmSpec default_specs[] = {
  { "vm-web", 96, 10, 4, 30, 100 },
  { "vm-db", 128, 20, 6, 60, 100 },
  { "vm-batch", 64, 40, 12, 80, 100 },
  { "vm-idle", 64, 5, 1, 20, 100 },
};

typedef struct {
  const VmSpec *spec;
  guint64 nr_pages;
  guint64 rng;
  HmmvVm *base_vm;          /* unmanaged baseline: placement only */
  HmmvAccess *acc;
  guint64 *touch_count;     /* accesses of each page this interval (model input) */
  double time_hmmv_ns;
  double time_base_ns;
  double time_dram_ns;
  gboolean reads_visible;   /* the core sees reads too (a read tracker), else writes only */
} SimVm;

static void
sim_touch(gpointer data, guint64 page, gboolean hot, gboolean write)
{
  SimVm *svm = data;

  svm->touch_count[page] += hot ? HOT_ACCESSES : COLD_ACCESSES;
  if (write)
    hmmv_access_mark_write(svm->acc, page);
  else
    hmmv_access_mark_read(svm->acc, page);
}

/* The workload (shared with hmmv-corun gen: tests/bench/corun/synth.c). */
static void
gen_interval(SimVm *svm, guint64 interval)
{
  CorunSynthSpec spec = { svm->spec->hot_pct, svm->spec->touch_pct, svm->spec->write_pct };

  memset(svm->touch_count, 0, svm->nr_pages * sizeof(guint64));
  hmmv_access_clear(svm->acc);
  svm->acc->intervals = 1;
  corun_synth_interval(&spec, svm->nr_pages, interval, &svm->rng, sim_touch, svm);
}

/* Modelled memory time of this interval's accesses on a given placement. */
static double
model_time(const SimVm *svm, const HmmvVm *vm, gboolean all_dram)
{
  double ns = 0;

  for (guint64 page = 0; page < svm->nr_pages; page++) {
    guint64 count = svm->touch_count[page];
    gboolean written, slow;

    if (count == 0)
      continue;
    written = hmmv_bitmap_test(svm->acc->writes, page);
    slow = !all_dram && HMMV_PLACE_IS_SLOW(hmmv_vm_get_place(vm)[page]);
    if (slow)
      ns += (double)count * (written ? LAT_SLOW_WRITE_NS : LAT_SLOW_READ_NS);
    else
      ns += (double)count * (written ? LAT_DRAM_WRITE_NS : LAT_DRAM_READ_NS);
  }
  return ns;
}

/* A tracker that hands the core the interval's generated accesses. */
static gboolean
stream_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  const SimVm *svm = tracker->priv;

  memcpy(acc->writes, svm->acc->writes, acc->nr_words * sizeof(guint64));
  if (svm->reads_visible)
    memcpy(acc->reads, svm->acc->reads, acc->nr_words * sizeof(guint64));
  else
    memset(acc->reads, 0, acc->nr_words * sizeof(guint64));
  acc->has_reads = svm->reads_visible;
  acc->intervals = 1;
  return TRUE;
}

static const struct hmmv_tracker_ops stream_tracker_ops = {
  .name = "synthetic-stream",
  .harvest = stream_harvest,
};

static HmmvVm *
make_vm(const SimVm *svm, GError **error)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new(svm->spec->name);

  if (!hmmv_vm_add_region(vm, "pc.ram", 0, 0, (guint64)svm->spec->size_mib << 20,
                          HMMV_PAGE_SIZE, error) ||
      !hmmv_vm_finalize_layout(vm, error))
    return NULL;
  return g_steal_pointer(&vm);
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  guint intervals = 40;
  guint dram_pct = 50;
  gboolean quiet = FALSE;
  gboolean markdown = FALSE;
  g_autofree char *tracking = NULL;
  gboolean reads_visible;
  GOptionEntry entries[] = {
    { "intervals", 'n', 0, G_OPTION_ARG_INT, &intervals, "Intervals to run (40)", "N" },
    { "dram-pct", 'd', 0, G_OPTION_ARG_INT, &dram_pct,
      "Modelled DRAM as % of the VMs' total RAM (50)", "PCT" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "Only the summary", NULL },
    { "tracking", 't', 0, G_OPTION_ARG_STRING, &tracking,
      "What the core sees: writes (the shipped tracker, default) or reads-writes", "KIND" },
    { "markdown", 'm', 0, G_OPTION_ARG_NONE, &markdown,
      "The summary as a Markdown table (what BENCHMARKS.md holds)", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- hmmv co-run on a modelled tier");
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  g_autoptr(HmmvMover) mover = NULL;
  g_autoptr(HmmvMover) base_mover = NULL;
  g_autoptr(HmmvCore) core = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvParams params;
  guint nr_vms = G_N_ELEMENTS(default_specs);
  SimVm svms[G_N_ELEMENTS(default_specs)] = { 0 };
  guint64 total_pages = 0, dram_pages;
  double sum_hmmv = 0, sum_base = 0, sum_dram = 0;

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || intervals == 0 || dram_pct == 0 ||
      dram_pct > 100) {
    fprintf(stderr, "hmmv-corun-sim: %s\n",
            error ? error->message : "intervals and dram-pct (1..100) must be positive");
    return EXIT_FAILURE;
  }
  if (tracking == NULL || g_strcmp0(tracking, "writes") == 0) {
    reads_visible = FALSE;
  } else if (g_strcmp0(tracking, "reads-writes") == 0) {
    reads_visible = TRUE;
  } else {
    fprintf(stderr, "hmmv-corun-sim: --tracking is writes or reads-writes, not '%s'\n", tracking);
    return EXIT_FAILURE;
  }
  for (guint i = 0; i < nr_vms; i++)
    total_pages += ((guint64)default_specs[i].size_mib << 20) >> HMMV_PAGE_SHIFT;
  dram_pages = total_pages * dram_pct / 100;
  if (!hmmv_topology_add_node(topo, 0, dram_pages * HMMV_PAGE_SIZE, 2, HMMV_TIER_DRAM, &error) ||
      !hmmv_topology_add_node(topo, 1, total_pages * HMMV_PAGE_SIZE, 0, HMMV_TIER_SLOW, &error))
    goto fail;
  mover = hmmv_sim_mover_new(topo, &error);
  base_mover = mover ? hmmv_sim_mover_new(topo, &error) : NULL;
  if (base_mover == NULL)
    goto fail;
  hmmv_params_init(&params);
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  if (core == NULL)
    goto fail;

  printf("hmmv co-run on a MODELLED slow tier (sim mover; no page really moves):\n"
         "  %u VMs, %" G_GUINT64_FORMAT " MiB in all, modelled DRAM %" G_GUINT64_FORMAT
         " MiB (%u%%), slow tier %" G_GUINT64_FORMAT " MiB\n"
         "  latency model: DRAM %.0f/%.0f ns, slow %.0f/%.0f ns (read/write), move %.1f us/page\n"
         "  tracking: %s\n",
         nr_vms, total_pages >> 8, dram_pages >> 8, dram_pct, total_pages >> 8,
         LAT_DRAM_READ_NS, LAT_DRAM_WRITE_NS, LAT_SLOW_READ_NS, LAT_SLOW_WRITE_NS,
         MOVE_NS_PER_PAGE / 1000,
         reads_visible ? "reads and writes (as with a read tracker)"
                       : "writes only (the qemu-dirty tracker; reads cost time but hmmv does "
                         "not see them)");

  for (guint i = 0; i < nr_vms; i++) {
    SimVm *svm = &svms[i];
    HmmvVm *vm;
    HmmvTracker *tracker;

    svm->spec = &default_specs[i];
    svm->nr_pages = ((guint64)svm->spec->size_mib << 20) >> HMMV_PAGE_SHIFT;
    svm->rng = 0x2545f4914f6cdd1du + i;
    svm->reads_visible = reads_visible;
    svm->touch_count = g_new0(guint64, svm->nr_pages);
    svm->acc = hmmv_access_new(svm->nr_pages, &error);
    svm->base_vm = svm->acc ? make_vm(svm, &error) : NULL;
    vm = svm->base_vm ? make_vm(svm, &error) : NULL;
    if (vm == NULL)
      goto fail;
    tracker = hmmv_tracker_new(&stream_tracker_ops, svm, &error);
    if (tracker == NULL) {
      hmmv_vm_free(vm);
      goto fail;
    }
    if (!hmmv_core_add_vm(core, vm, tracker, &error))
      goto fail;
  }

  hmmv_interval_report_init(&report);
  for (guint64 interval = 0; interval < intervals; interval++) {
    /* Generate, then let the core and the baseline see the same accesses. The model charges
     * this interval's accesses at the placement they found (before this interval's moves). */
    for (guint i = 0; i < nr_vms; i++) {
      SimVm *svm = &svms[i];
      HmmvVm *vm = hmmv_core_get_vm(core, i);
      g_autoptr(GArray) touched = g_array_new(FALSE, FALSE, sizeof(guint64));

      gen_interval(svm, interval);
      /* First touch happens when the guest touches: place before charging. */
      hmmv_mover_touch(mover, vm, svm->acc);
      hmmv_mover_touch(base_mover, svm->base_vm, svm->acc);
      for (guint64 page = 0; page < svm->nr_pages; page++)
        if (svm->touch_count[page] != 0)
          g_array_append_val(touched, page);
      if (!hmmv_mover_query(mover, vm, (guint64 *)touched->data, touched->len, &error) ||
          !hmmv_mover_query(base_mover, svm->base_vm, (guint64 *)touched->data, touched->len,
                            &error))
        goto fail;
      svm->time_hmmv_ns += model_time(svm, vm, FALSE);
      svm->time_base_ns += model_time(svm, svm->base_vm, FALSE);
      svm->time_dram_ns += model_time(svm, vm, TRUE);
    }
    if (!hmmv_core_run_interval(core, &report, &error))
      goto fail;
    if (report.balance_error != NULL)
      printf("  interval %3" G_GUINT64_FORMAT ": %s\n", report.index,
             report.balance_error->message);
    for (guint i = 0; i < report.vms->len; i++) {
      const HmmvVmReport *rep = &g_array_index(report.vms, HmmvVmReport, i);

      svms[i].time_hmmv_ns += (double)(rep->promoted + rep->demoted) * MOVE_NS_PER_PAGE;
      if (rep->error != NULL)
        printf("  interval %3" G_GUINT64_FORMAT " %-9s error: %s\n", report.index, rep->name,
               rep->error->message);
      else if (!quiet)
        printf("  interval %3" G_GUINT64_FORMAT " %-9s touched %6" G_GUINT64_FORMAT
               " budget %6" G_GUINT64_FORMAT " hot %6" G_GUINT64_FORMAT " dram %6"
               G_GUINT64_FORMAT " slow %6" G_GUINT64_FORMAT " +%-5" G_GUINT64_FORMAT
               " -%-5" G_GUINT64_FORMAT "\n",
               report.index, rep->name, rep->written + rep->read, rep->budget_pages,
               rep->hot_pages, rep->dram_pages, rep->slow_pages, rep->promoted, rep->demoted);
    }
  }

  if (markdown) {
    printf("\n| vm | all-DRAM ms | unmanaged ms | hmmv ms | unmanaged / DRAM | hmmv / DRAM |\n"
           "|---|---:|---:|---:|---:|---:|\n");
  } else {
    printf("\nsummary: modelled memory time over %u intervals (lower is better)\n", intervals);
    printf("  %-9s %12s %12s %12s %10s %10s\n", "vm", "all-DRAM ms", "unmanaged ms", "hmmv ms",
           "unmgd/DRAM", "hmmv/DRAM");
  }
  for (guint i = 0; i <= nr_vms; i++) {
    const char *name = i < nr_vms ? svms[i].spec->name : "all";
    double dram = i < nr_vms ? svms[i].time_dram_ns : sum_dram;
    double base = i < nr_vms ? svms[i].time_base_ns : sum_base;
    double hmmv = i < nr_vms ? svms[i].time_hmmv_ns : sum_hmmv;

    if (markdown)
      printf("| %s | %.2f | %.2f | %.2f | %.3f | %.3f |\n", name, dram / 1e6, base / 1e6,
             hmmv / 1e6, base / dram, hmmv / dram);
    else
      printf("  %-9s %12.2f %12.2f %12.2f %10.3f %10.3f\n", name, dram / 1e6, base / 1e6,
             hmmv / 1e6, base / dram, hmmv / dram);
    if (i < nr_vms) {
      sum_dram += dram;
      sum_base += base;
      sum_hmmv += hmmv;
    }
  }
  if (markdown)
    printf("\n");
  printf("slowdown_unmanaged=%.3f\nslowdown_hmmv=%.3f\nhmmv_speedup_vs_unmanaged=%.3f\n",
         sum_base / sum_dram, sum_hmmv / sum_dram, sum_base / sum_hmmv);
  for (guint i = 0; i < nr_vms; i++) {
    g_free(svms[i].touch_count);
    hmmv_access_free(svms[i].acc);
    hmmv_vm_free(svms[i].base_vm);
  }
  return EXIT_SUCCESS;

fail:
  fprintf(stderr, "hmmv-corun-sim: %s\n", error ? error->message : "failed");
  for (guint i = 0; i < nr_vms; i++) {
    g_free(svms[i].touch_count);
    hmmv_access_free(svms[i].acc);
    hmmv_vm_free(svms[i].base_vm);
  }
  return EXIT_FAILURE;
}
