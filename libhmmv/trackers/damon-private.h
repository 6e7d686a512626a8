/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Kdamond ownership, shared by the DAMON tracker and hmmv_damon_cleanup_stale(). */
#pragma once

#include <gio/gio.h>
#include <hmmv/reads.h>

G_BEGIN_DECLS

/* "kdamonds/N/REST" */
char *hmmv_damon_path(guint index, const char *rest);

/* Writes a DAMON sysfs attribute, trying again while it fails with EBUSY: mm/damon/sysfs.c
 * takes damon_sysfs_lock with mutex_trylock in state_store and every nr_* store, and a
 * kdamond holds it while it answers a command (update_schemes_tried_regions keeps it across
 * aggregations), so another VM's tracker, or another tool, makes a write fail for a while. */
gboolean hmmv_damon_write(HmmvSysfs *fs, const char *path, const char *value, GError **error);
/* hmmv_damon_write()'s wait: a command holds the lock until its kdamond's next aggregation
 * (hmmv's aggregation interval is at most its 1 s interval; nested TCG in the testbed
 * stretches that), 5 s. */
#define HMMV_DAMON_PATIENCE_MS 5000u
/* A tracker's setup, on its own thread (damon.c), waits longer: 60 s a write. The lock's
 * holder may be another tool's kdamond with aggregations of seconds (damo, DAMON_RECLAIM),
 * and giving up leaves the VM tracked for writes only; nobody waits for the setup. */
#define HMMV_DAMON_SETUP_PATIENCE_MS 60000u
/* The same with its own patience, giving up (G_IO_ERROR_CANCELLED) between tries once
 * cancellable is cancelled: a tracker being stopped does not wait out the lock to finish a
 * setup it will undo. */
gboolean hmmv_damon_write_full(HmmvSysfs *fs, const char *path, const char *value,
                               guint patience_ms, GCancellable *cancellable, GError **error);

/* Takes the free kdamond of one look at the table, or adds kdamonds when there is none at
 * all, and records it as hmmv's (owner: this process) before configuring anything in it.
 * The look reads each kdamond's record and context first (no DAMON lock), and the states of
 * the others only; the whole look and the add wait out DAMON's lock for patience_ms in all
 * (G_IO_ERROR_BUSY when states stayed hidden that long), until cancellable is cancelled. */
gboolean hmmv_damon_acquire(HmmvSysfs *fs, const char *run_dir, HmmvDamonOps ops,
                            int target_pid, guint patience_ms, GCancellable *cancellable,
                            guint *index, GError **error);
/* (Re)writes the record of kdamond index: ops is what hmmv wrote to operations. */
gboolean hmmv_damon_write_record(const char *run_dir, guint index, const char *ops,
                                 int target_pid, GError **error);
/* Turns it off, drops its context, removes the record; takes back a kdamond hmmv added when
 * that leaves everything as it was. Nothing, when the record no longer names this process
 * (a cleanup took the kdamond back). All of it waits out DAMON's lock for patience_ms. A
 * kdamond that could not be turned off, or whose context could not be dropped, keeps its
 * record (FALSE and why): not taken again by this process, and cleaned up by the next hmmvd
 * (hmmv_damon_cleanup_stale()). */
gboolean hmmv_damon_release(HmmvSysfs *fs, const char *run_dir, guint index,
                            guint patience_ms, GError **error);

G_END_DECLS
