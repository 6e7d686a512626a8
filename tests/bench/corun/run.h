/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: one replay. Every policy runs side by side on the same traces, in lockstep:
 * each interval every VM's accesses are read once, each policy serves them and decides, and
 * the tier model turns each policy's co-run demand into each VM's time.
 */
#pragma once

#include "policy.h"

G_BEGIN_DECLS

typedef struct {
  const char *policy;
  double *runtime_ns;       /* per VM */
  guint64 *accesses;        /* LLC misses, per VM */
  guint64 *dram_accesses;   /* of which DRAM served */
  guint64 *moved;           /* pages migrated, per VM */
} CorunResult;

/* One interval of one policy (the plots). */
typedef struct {
  guint64 interval;
  guint policy;
  guint vm;
  double time_ns;
  guint64 accesses, dram_accesses, moved, dram_pages;
  guint64 promoted, demoted;
  gint64 start_slow_dram;   /* pages of the VM's start_slow range on DRAM; -1: not known */
  double rho_dram, rho_slow;
} CorunSample;

typedef struct {
  guint nr_policies;
  guint nr_vms;
  guint64 intervals;
  CorunResult *results;     /* per policy, in the order asked */
  GArray *samples;          /* CorunSample */
} CorunRun;

typedef void (*CorunProgressFunc)(guint64 interval, guint64 total, gpointer data);

/* policies: names (NULL-terminated); "all-dram" must be among them (the per-VM reference).
 * max_intervals: 0 = until the shortest trace ends. */
CorunRun *corun_run(const CorunSetup *setup, const char *const *policies, guint64 max_intervals,
                    CorunProgressFunc progress, gpointer data, GError **error);
void corun_run_free(CorunRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CorunRun, corun_run_free)

/* Index of a policy in run, or -1. */
int corun_run_find(const CorunRun *run, const char *policy);
double corun_result_total_ns(const CorunRun *run, guint policy);
double corun_result_dram_share(const CorunRun *run, guint policy, int vm /* -1: all */);
guint64 corun_result_moved(const CorunRun *run, guint policy, int vm);

G_END_DECLS
