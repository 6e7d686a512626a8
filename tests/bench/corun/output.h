/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: what a replay prints and writes. */
#pragma once

#include <stdio.h>

#include "run.h"

G_BEGIN_DECLS

/* The worst VM's runtime over its own all-DRAM runtime (fairness). */
double corun_worst_slowdown(const CorunRun *run, guint policy);
/* Runtime normalised to all-DRAM per policy and VM, DRAM-served share, moves. */
void corun_print_table(FILE *out, const CorunRun *run, const CorunSetup *setup);
/* One row per policy and VM plus vm "all". */
gboolean corun_write_csv(const char *path, const CorunRun *run, const CorunSetup *setup,
                         const char *setup_name, const char *profile, double dram_fraction,
                         GError **error);
/* One row per interval, policy and VM (what the plots draw). */
gboolean corun_write_intervals_csv(const char *path, const CorunRun *run,
                                   const CorunSetup *setup, GError **error);

G_END_DECLS
