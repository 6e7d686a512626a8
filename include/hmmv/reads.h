/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: read trackers, and the tracker that combines them with a write tracker.
 *
 * The dirty ring and PML see writes only. Reads come from the host kernel:
 *
 *   DAMON (mm/damon, its sysfs interface under /sys/kernel/mm/damon/admin): "vaddr" monitors
 *   the QEMU process's guest RAM mappings, "paddr" the physical pages that back them (found
 *   through /proc/PID/pagemap). One kdamond per VM, taken only when it is free: hmmv never
 *   touches a kdamond it did not set up, marks its own with a record under run_dir, and
 *   cleans up records left by an hmmvd that died (hmmv_damon_cleanup_stale()).
 *
 * The kernel-facing part goes through HmmvSysfs, a small filesystem seam, so the unit tests
 * run the same code on a fake tree that behaves like the kernel's.
 */
#pragma once

#include <glib.h>
#include <hmmv/tracker.h>

G_BEGIN_DECLS

typedef struct _HmmvSysfs HmmvSysfs;

/* Paths are relative to the seam's root (for DAMON: "kdamonds/0/state"). A failed write
 * keeps the kernel's errno in a G_IO_ERROR (g_io_error_from_errno), so EBUSY is EBUSY. */
struct hmmv_sysfs_ops {
  const char *name;
  /* contents without the trailing newline */
  gboolean (*read)(HmmvSysfs *fs, const char *path, char **contents, GError **error);
  gboolean (*write)(HmmvSysfs *fs, const char *path, const char *value, GError **error);
  gboolean (*exists)(HmmvSysfs *fs, const char *path);
  void (*destroy)(HmmvSysfs *fs);
};

struct _HmmvSysfs {
  const struct hmmv_sysfs_ops *ops;
  gpointer priv;
  gint ref_count;
};

/* The real files under root (e.g. "/sys/kernel/mm/damon/admin"). */
HmmvSysfs *hmmv_sysfs_new_dir(const char *root);
HmmvSysfs *hmmv_sysfs_new(const struct hmmv_sysfs_ops *ops, gpointer priv);
HmmvSysfs *hmmv_sysfs_ref(HmmvSysfs *fs);
void hmmv_sysfs_unref(HmmvSysfs *fs);
gboolean hmmv_sysfs_read(HmmvSysfs *fs, const char *path, char **contents, GError **error);
gboolean hmmv_sysfs_read_u64(HmmvSysfs *fs, const char *path, guint64 *value, GError **error);
gboolean hmmv_sysfs_write(HmmvSysfs *fs, const char *path, const char *value, GError **error);
gboolean hmmv_sysfs_write_u64(HmmvSysfs *fs, const char *path, guint64 value, GError **error);
gboolean hmmv_sysfs_exists(HmmvSysfs *fs, const char *path);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvSysfs, hmmv_sysfs_unref)

#define HMMV_DAMON_ADMIN_DIR "/sys/kernel/mm/damon/admin"
#define HMMV_DAMON_RUN_DIR "/run/hmmv/damon"

typedef enum {
  HMMV_DAMON_VADDR,         /* the QEMU process's guest RAM mappings */
  HMMV_DAMON_PADDR,         /* the physical pages backing them */
} HmmvDamonOps;

const char *hmmv_damon_ops_name(HmmvDamonOps ops);

typedef struct {
  HmmvDamonOps ops;
  guint interval_ms;        /* hmmv's interval: DAMON's aggregation interval */
  guint sample_us;          /* 0: interval / 20 (see damon.c) */
  guint max_nr_regions;     /* 0: from the VM's size (see damon.c) */
  guint min_accesses;       /* a region's pages count as read when it was seen accessed in
                               half as many samples as the snapshot's most accessed region,
                               and at least this many; 0: 1 (see damon.c) */
  HmmvSysfs *fs;            /* NULL: the real HMMV_DAMON_ADMIN_DIR; borrowed (ref taken) */
  const char *run_dir;      /* ownership records; NULL: HMMV_DAMON_RUN_DIR */
  const char *proc_dir;     /* NULL: /proc (paddr reads PID/pagemap there) */
} HmmvDamonOptions;

/* Whether this kernel's DAMON offers ops, deciding without writing anything: the
 * avail_operations of an existing context, else the kernel's symbols (kallsyms_path, NULL:
 * /proc/kallsyms). FALSE with HMMV_ERROR_NOT_SUPPORTED and the reason. */
gboolean hmmv_damon_probe(HmmvSysfs *fs, HmmvDamonOps ops, const char *kallsyms_path,
                          GError **error);

/* Whether a kdamond could be had right now without touching anyone else's: a free one
 * (off, no context, not recorded by hmmv), or none running and every existing one free, so
 * that one can be added. Reads only. */
gboolean hmmv_damon_can_acquire(HmmvSysfs *fs, const char *run_dir, GError **error);

/* Turns off and frees the kdamonds that an hmmvd which is no longer running recorded under
 * run_dir, each only after checking it still looks as hmmv left it (context, operations,
 * target); a record whose kdamond changed hands is dropped without touching the kdamond.
 * Returns the number of kdamonds cleaned. */
guint hmmv_damon_cleanup_stale(HmmvSysfs *fs, const char *run_dir, GError **error);

/* A read tracker on DAMON. start() takes a kdamond, configures one context with one target
 * (the VM's QEMU pid, from hmmv_vm_get_pid()) over guest RAM and turns it on; a thread
 * snapshots the regions DAMON saw accessed every aggregation interval; harvest() ORs the
 * snapshots since the last harvest into acc's read bitmap (it never blocks on the kernel);
 * stop() waits for the snapshot in progress (up to two aggregation intervals: DAMON hangs an
 * "off" written while an update command waits), then turns the kdamond off and gives it
 * back. */
HmmvTracker *hmmv_damon_tracker_new(const HmmvDamonOptions *options, GError **error);

typedef struct {
  guint kdamond;            /* index of the kdamond in use */
  guint64 snapshots;        /* aggregation snapshots taken */
  guint64 accessed_regions; /* regions accessed in the last snapshot */
  guint64 empty_snapshots;  /* dropped: empty right after a full one */
  guint64 last_snapshot_ns; /* time the last snapshot's reads took */
  guint64 thread_cpu_ns;    /* CPU time of the snapshot thread */
  int kdamond_pid;          /* the kernel thread, for its CPU time */
  guint min_nr_regions, max_nr_regions, sample_us, aggr_us, min_accesses;
} HmmvDamonStats;

gboolean hmmv_damon_tracker_get_stats(HmmvTracker *tracker, HmmvDamonStats *stats);

/* The tracker of a VM with two sources: writes from writes (exact, per page: qemu-dirty),
 * reads from reads. Takes both. A failing read source is reported once and dropped (the VM
 * goes on with writes only); a failing write source fails the harvest as before. */
HmmvTracker *hmmv_combined_tracker_new(HmmvTracker *writes, HmmvTracker *reads);
HmmvTracker *hmmv_combined_tracker_get_writes(HmmvTracker *tracker);
/* NULL once the read source was dropped. */
HmmvTracker *hmmv_combined_tracker_get_reads(HmmvTracker *tracker);

G_END_DECLS
