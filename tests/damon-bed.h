/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The DAMON suites' bed (test-damon.c, test-damon-pacing.c, test-damon-kdamonds.c,
 * test-damon-lock.c): a fake DAMON sysfs tree (damon-fake.c), a run directory and a VM of
 * NR_PAGES pages at HVA; trackers on it, started, harvested and stopped.
 */
#pragma once

#include "damon-fake.h"
#include "hmmv-test.h"

#define HVA 0x7f0000000000ull
#define NR_PAGES 4096u

typedef struct {
  HmmvSysfs *fs;
  DamonFake *fake;
  char *run_dir;
  HmmvVm *vm;
} Fixture;

/* A fake tree offering avail (e.g. "vaddr fvaddr paddr"), a fresh run directory, the VM. */
void fixture_init(Fixture *f, const char *avail);
/* Waits until every tracker's thread has given its kdamond back (liveness bound: 60 s),
 * then frees the bed and removes the run directory. */
void fixture_clear(Fixture *f);
/* A DAMON tracker of ops at 10 ms intervals on the bed (proc_dir: paddr's /proc, or NULL). */
HmmvTracker *new_tracker(Fixture *f, HmmvDamonOps ops, const char *proc_dir);
/* Stops the tracker and waits until its thread has given the kdamond back (stop() does not
 * wait: the writes are the thread's). */
void stop_tracker(HmmvTracker *tracker);
/* Starts the tracker and waits for its kdamond's setup (done on the tracker's thread). */
gboolean start_tracker(HmmvTracker *tracker, HmmvVm *vm, GError **error);
/* Harvests until the read source has at least one snapshot (a liveness bound: 60 s). */
void harvest_snapshot(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc);
/* The steady reader most cases start from: the bed on a tree offering "vaddr fvaddr paddr",
 * pages 16..31 read, a vaddr tracker started and past its first snapshot (those 16 pages in
 * acc). */
HmmvTracker *start_steady_reader(Fixture *f, HmmvAccess *acc);
/* TRUE when the run directory holds hmmv's record of kdamond index. */
gboolean record_exists(Fixture *f, guint index);
