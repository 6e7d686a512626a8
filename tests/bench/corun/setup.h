/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: a recorded setup (a directory with setup.json and one trace per VM, written by
 * tests/corun/corun-live; see /work/notes/corun-interface.md) and the synthetic setups that
 * tests generate (never a BENCHMARKS figure).
 */
#pragma once

#include "policy.h"

G_BEGIN_DECLS

#define CORUN_MAX_VMS 64u
#define CORUN_MAX_MANIFEST_BYTES (1u << 20)

typedef struct {
  char *name;               /* setup.json's "setup" */
  char *dir;
  CorunSetup setup;         /* dram_pages and profile left to the caller */
  guint64 total_pages;
} CorunSetupFile;

/* Reads dir/setup.json and every trace's header, checking each field. */
CorunSetupFile *corun_setup_load(const char *dir, GError **error);
void corun_setup_file_free(CorunSetupFile *sf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CorunSetupFile, corun_setup_file_free)

/* *touched = the pages the VMs' traces touch (a miss or more) in their first max_intervals
 * intervals (0: all), summed over the VMs: the footprint a replay's DRAM can be a share of
 * when the VMs' RAM is mostly idle (hmmv-corun replay --dram-of touched). */
gboolean corun_setup_touched_pages(const CorunSetup *setup, guint64 max_intervals,
                                   guint64 *touched, GError **error);

/* A synthetic setup in dir (created): nr_vms VMs of nr_pages pages each, intervals intervals,
 * a hot set per VM that drifts (different sizes and write shares per VM), for tests. */
gboolean corun_setup_generate(const char *dir, guint nr_vms, guint64 nr_pages,
                              guint intervals, guint64 seed, GError **error);

G_END_DECLS
