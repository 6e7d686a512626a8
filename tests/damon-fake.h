/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A fake DAMON sysfs tree (kdamonds/...) behind the HmmvSysfs seam, for the unit tests. It
 * follows mm/damon/sysfs.c where hmmv depends on it:
 *   - nr_kdamonds removes and re-creates every kdamond directory, and fails with EBUSY while
 *     any kdamond runs; nr_contexts takes 0 or 1 (EINVAL otherwise); nr_targets,
 *     nr_regions, nr_schemes re-create their children with default values;
 *   - state takes on, off, commit, update_schemes_tried_regions, clear_schemes_tried_regions
 *     (EINVAL otherwise): "on" fails with EBUSY when on, EINVAL without exactly one context,
 *     with operations not in avail_operations, with nr_regions min < 3 or min > max, or with
 *     a vaddr target whose pid is not alive (as the fake says); the commands that need a
 *     running kdamond fail with EINVAL when it is off;
 *   - update_schemes_tried_regions fills scheme 0's tried_regions with the regions of the
 *     target's monitored ranges whose access count is within the scheme's nr_accesses
 *     range: the ranges the test marked accessed (count 10) and the gaps between them
 *     (count 0), as DAMON would after its regions converged.
 */
#pragma once

#include <hmmv/reads.h>

typedef struct _DamonFake DamonFake;

/* nr_kdamonds starts at 0; avail is the contexts' avail_operations. */
HmmvSysfs *damon_fake_new(const char *avail, DamonFake **fake);
/* Sets up kdamond index like another user would (a paddr context), on or off. */
void damon_fake_add_foreign(DamonFake *fake, gboolean running);
/* Address ranges the next update_schemes_tried_regions reports accessed (in 10 samples). */
void damon_fake_set_accessed(DamonFake *fake, const guint64 *ranges, guint nr_ranges);
/* The same with each range's own nr_accesses. */
void damon_fake_set_accessed_counts(DamonFake *fake, const guint64 *ranges,
                                    const guint64 *counts, guint nr_ranges);
void damon_fake_set_pid_alive(DamonFake *fake, int pid, gboolean alive);
/* Another holder of damon_sysfs_lock (mm/damon/sysfs.c takes it with mutex_trylock in
 * state_store and the nr_* stores): the next nr_writes writes of those fail with EBUSY. */
void damon_fake_busy(DamonFake *fake, guint nr_writes);
/* The same lock held until released (held FALSE): every such write fails meanwhile. */
void damon_fake_hold_lock(DamonFake *fake, gboolean held);
/* The lock held across the next nr_reads reads of a kdamond's state only (6.12's
 * state_show takes it with mutex_trylock): they fail with EBUSY, later ones do not. */
void damon_fake_busy_state_reads(DamonFake *fake, guint nr_reads);
/* Another user writes nr_kdamonds (the same count) right after the next successful write
 * to a path ending in path_end: every kdamond directory is removed and made again, empty
 * and off, as mm/damon/sysfs.c does whenever no kdamond runs (one that is being set up is
 * off until its setup's last write). */
void damon_fake_recreate_after(DamonFake *fake, const char *path_end);
/* Writes refused with EBUSY since creation. */
guint damon_fake_busy_refused(DamonFake *fake);
/* Counts the writes thread tries from now on, refused or not (a thread that must write
 * nothing: hmmvd's main loop). */
void damon_fake_watch_thread(DamonFake *fake, GThread *thread);
guint damon_fake_watched_attempts(DamonFake *fake);
/* The kernel's race (6.12): the next nr_empty update_schemes_tried_regions commands list no
 * region at all, and the one after them waits until damon_fake_release(). */
void damon_fake_race(DamonFake *fake, guint nr_empty);
/* Until that command waits (at most 60 s; FALSE if it never came). */
gboolean damon_fake_wait_held(DamonFake *fake);
/* Whether that command waits now (does not block). */
gboolean damon_fake_is_held(DamonFake *fake);
void damon_fake_release(DamonFake *fake);
/* The kdamond ends as the kernel's does when its target exits. */
void damon_fake_end_kdamond(DamonFake *fake, guint index);
/* Writes done under kdamonds/INDEX/ since creation. */
guint damon_fake_writes_under(DamonFake *fake, guint index);
guint damon_fake_nr_writes(DamonFake *fake, const char *path);
/* The sampling and aggregation intervals kdamond index runs with: those written when it was
 * turned on, or at its last "commit". FALSE: never turned on. */
gboolean damon_fake_running_intervals(DamonFake *fake, guint index, guint64 *sample_us,
                                      guint64 *aggr_us);
/* The same for its nr_regions min and max. */
gboolean damon_fake_running_nr_regions(DamonFake *fake, guint index, guint64 *min,
                                       guint64 *max);
/* Every "commit" from now on fails with EINVAL (a kernel that refuses the inputs). */
void damon_fake_refuse_commit(DamonFake *fake);
/* A value, or NULL (owned by the fake, valid until the next call). */
const char *damon_fake_get(DamonFake *fake, const char *path);
