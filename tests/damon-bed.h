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

/* A seam over fs (the bed's fake) that counts the reads of kdamonds' state through it, refused
 * or not: per kdamond, and in passes over the table, a pass starting with each read of a
 * kdamond not after the one read before it. A reader that waits on one kdamond's state before
 * it reads the next makes a pass of every read; one that reads each kdamond still in question
 * once and then pauses makes a pass a pause. *counts lives as long as the seam. */
typedef struct _StateReads StateReads;
HmmvSysfs *state_reads_new(HmmvSysfs *fs, StateReads **counts);
/* Of kdamond index; G_MAXUINT: of every kdamond. */
guint state_reads_of(StateReads *counts, guint index);
guint state_reads_passes(StateReads *counts);
