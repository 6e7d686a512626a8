/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: the Markdown table and the CSV files of a replay. */
#include "output.h"

#include <errno.h>
#include <hmmv/error.h>
#include <stdio.h>

static double
all_dram_ns(const CorunRun *run, int vm)
{
  int ref = corun_run_find(run, "all-dram");

  if (vm >= 0)
    return run->results[ref].runtime_ns[vm];
  return corun_result_total_ns(run, (guint)ref);
}

static double
runtime_ns(const CorunRun *run, guint p, int vm)
{
  return vm >= 0 ? run->results[p].runtime_ns[vm] : corun_result_total_ns(run, p);
}

double
corun_worst_slowdown(const CorunRun *run, guint p)
{
  double worst = 0;

  for (guint v = 0; v < run->nr_vms; v++)
    worst = MAX(worst, runtime_ns(run, p, (int)v) / all_dram_ns(run, (int)v));
  return worst;
}

void
corun_print_table(FILE *out, const CorunRun *run, const CorunSetup *setup)
{
  fprintf(out, "| policy |");
  for (guint v = 0; v < run->nr_vms; v++)
    fprintf(out, " %s |", setup->vms[v].name);
  fprintf(out, " all | DRAM-served | pages moved | worst VM |\n|---|");
  for (guint v = 0; v <= run->nr_vms; v++)
    fprintf(out, "---:|");
  fprintf(out, "---:|---:|---:|\n");
  for (guint p = 0; p < run->nr_policies; p++) {
    fprintf(out, "| %s |", run->results[p].policy);
    for (guint v = 0; v < run->nr_vms; v++)
      fprintf(out, " %.3f |", runtime_ns(run, p, (int)v) / all_dram_ns(run, (int)v));
    fprintf(out, " %.3f | %.3f | %" G_GUINT64_FORMAT " | %.3f |\n",
            runtime_ns(run, p, -1) / all_dram_ns(run, -1), corun_result_dram_share(run, p, -1),
            corun_result_moved(run, p, -1), corun_worst_slowdown(run, p));
  }
}

gboolean
corun_write_csv(const char *path, const CorunRun *run, const CorunSetup *setup,
                const char *setup_name, const char *profile, double dram_fraction,
                GError **error)
{
  g_autoptr(GString) csv = g_string_new("setup,profile,dram_fraction,policy,vm,runtime_ns,"
                                        "all_dram_ns,dram_served_share,pages_moved,slowdown\n");

  for (guint p = 0; p < run->nr_policies; p++)
    for (int v = 0; v <= (int)run->nr_vms; v++) {
      int vm = v < (int)run->nr_vms ? v : -1;

      g_string_append_printf(csv, "%s,%s,%.4f,%s,%s,%.0f,%.0f,%.6f,%" G_GUINT64_FORMAT ",%.6f\n",
                             setup_name, profile, dram_fraction, run->results[p].policy,
                             vm >= 0 ? setup->vms[vm].name : "all", runtime_ns(run, p, vm),
                             all_dram_ns(run, vm), corun_result_dram_share(run, p, vm),
                             corun_result_moved(run, p, vm),
                             runtime_ns(run, p, vm) / all_dram_ns(run, vm));
    }
  if (!g_file_set_contents(path, csv->str, (gssize)csv->len, error)) {
    g_prefix_error(error, "csv: ");
    return FALSE;
  }
  return TRUE;
}

gboolean
corun_write_intervals_csv(const char *path, const CorunRun *run, const CorunSetup *setup,
                          GError **error)
{
  g_autoptr(GString) csv = g_string_new("interval,policy,vm,time_ns,accesses,dram_accesses,"
                                        "pages_moved,dram_pages,rho_dram,rho_slow,promoted,demoted,"
                                        "start_slow_dram\n");

  for (guint i = 0; i < run->samples->len; i++) {
    const CorunSample *s = &g_array_index(run->samples, CorunSample, i);

    g_string_append_printf(csv, "%" G_GUINT64_FORMAT ",%s,%s,%.0f,%" G_GUINT64_FORMAT ",%"
                           G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT
                           ",%.4f,%.4f,%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT ",%"
                           G_GINT64_FORMAT "\n",
                           s->interval, run->results[s->policy].policy, setup->vms[s->vm].name,
                           s->time_ns, s->accesses, s->dram_accesses, s->moved, s->dram_pages,
                           s->rho_dram, s->rho_slow, s->promoted, s->demoted,
                           s->start_slow_dram);
  }
  if (!g_file_set_contents(path, csv->str, (gssize)csv->len, error)) {
    g_prefix_error(error, "intervals csv: ");
    return FALSE;
  }
  return TRUE;
}
