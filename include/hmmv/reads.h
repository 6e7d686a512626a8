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
  guint patience_ms;        /* how long a write waits out DAMON's sysfs lock (EBUSY) once
                               set up; 0: 5 s (tests shorten it) */
  guint setup_patience_ms;  /* the same while setting up and giving back; 0: 60 s */
} HmmvDamonOptions;

/* Whether this kernel's DAMON offers ops, deciding without writing anything: the
 * avail_operations of an existing context, else the kernel's symbols (kallsyms_path, NULL:
 * /proc/kallsyms). FALSE with HMMV_ERROR_NOT_SUPPORTED and the reason. */
gboolean hmmv_damon_probe(HmmvSysfs *fs, HmmvDamonOps ops, const char *kallsyms_path,
                          GError **error);

/* Whether a kdamond could be had right now without touching anyone else's: a free one
 * (off, no context, not recorded by hmmv), or no kdamond at all, so that some can be added.
 * Reads only: the states of the kdamonds without a context or record, waiting out DAMON's
 * lock 5 s in all (G_IO_ERROR_BUSY when some stayed hidden behind it that long). */
gboolean hmmv_damon_can_acquire(HmmvSysfs *fs, const char *run_dir, GError **error);

/* Turns off and frees the kdamonds that an hmmvd which is no longer running recorded under
 * run_dir, each only after checking it still looks as hmmv left it (context, operations,
 * target); a record whose kdamond changed hands is dropped without touching the kdamond.
 * Returns the number of kdamonds cleaned. */
guint hmmv_damon_cleanup_stale(HmmvSysfs *fs, const char *run_dir, GError **error);

/* A read tracker on DAMON. start() checks the VM (pid, host addresses) and starts the
 * tracker's thread, which takes a kdamond, configures one context with one target (the
 * VM's QEMU pid, from hmmv_vm_get_pid()) over guest RAM, turns it on and then snapshots the
 * regions DAMON saw accessed when harvests want one (each harvest while the read set
 * changes, every 2, 4, up to 8 harvests while it holds still): start() never blocks on the
 * kernel (the setup's writes may wait out DAMON's sysfs lock, up to 60 s each), and a setup
 * that fails is reported by the next harvest(). DAMON's lock held longer than a write's
 * patience (EBUSY: another VM's command, another tool) is not a failure: the setup, or the
 * snapshots, are tried again until it is free (counted in busy_retries) and the VM keeps its
 * reads. harvest() ORs the snapshots since the last harvest into acc's read bitmap (it never
 * blocks on the kernel either). stop() does not block either: it cancels a setup in
 * progress and leaves the rest to the thread, which finishes the snapshot in progress (up
 * to two aggregation intervals: DAMON hangs an "off" written while an update command
 * waits), then turns the kdamond off and gives it back, waiting out DAMON's lock; a kdamond
 * it could not turn off keeps its record, and the next hmmvd's cleanup takes it back.
 * hmmv_damon_wait_released() waits for those threads (a process that exits). While the core
 * asks for HMMV_WATCH_COARSE (tracker.h: the VM is settled) the thread hands the kdamond
 * sampling and aggregation intervals 4 times as long ("commit"), a quarter of its sampling
 * cost; FINE gives it its own back before the next snapshot. */
HmmvTracker *hmmv_damon_tracker_new(const HmmvDamonOptions *options, GError **error);

/* Waits until the setup start() handed to the thread is done: TRUE when the kdamond runs,
 * FALSE with the setup's error (or the thread's, if it ended since), or with the EBUSY of a
 * first attempt that waited out its patience (the thread goes on trying). For callers that
 * may block and want the error at once (hmmvctl track, tests). A tracker that is not a
 * DAMON one: TRUE at once. */
gboolean hmmv_damon_tracker_wait_setup(HmmvTracker *tracker, GError **error);

/* Waits until every stopped DAMON tracker's thread has given its kdamond back (or found it
 * could not, and kept its record), at most timeout_ms: TRUE when none is left. Call it after
 * stopping every DAMON tracker, before the process exits: a thread still turning its kdamond
 * off when the process ends leaves the kdamond running. */
gboolean hmmv_damon_wait_released(guint timeout_ms);

typedef struct {
  guint kdamond;            /* index of the kdamond in use */
  guint64 snapshots;        /* aggregation snapshots taken */
  guint64 accessed_regions; /* regions accessed in the last snapshot */
  guint64 empty_snapshots;  /* dropped: empty right after a full one */
  guint64 last_snapshot_ns; /* time the last snapshot's reads took */
  guint64 thread_cpu_ns;    /* CPU time of the snapshot thread */
  int kdamond_pid;          /* the kernel thread, for its CPU time */
  guint64 recommits;        /* paddr: monitored ranges handed again (frames moved) */
  guint64 busy_retries;     /* setups and snapshots tried again after DAMON's lock stayed
                               held for a write's whole patience */
  guint64 rested_harvests;  /* harvests given the last snapshot again because the read set
                               held still and the thread did not look (see damon.c) */
  guint every;              /* harvests per snapshot now: 1 while the read set changes, up to
                               8 while it holds still */
  guint monitored_ranges;   /* paddr: ranges of frames monitored */
  gboolean coarse;          /* the kdamond samples HMMV_WATCH_COARSE's slower intervals now
                               (sample_us and aggr_us below are those in effect) */
  guint64 watch_changes;    /* times its intervals were changed for the core's watch */
  gboolean quiet;           /* the reads added nothing to the VM's writes in the last
                               snapshots: the kdamond samples HMMV_DAMON_QUIET_FACTOR times
                               less often and snapshots come up to 16 harvests apart (see
                               damon.c, "Quiet"; sample_us and aggr_us are those in effect) */
  guint64 quiet_changes;    /* times the kdamond went quiet or back */
  guint64 quiet_harvests;   /* harvests while it was quiet */
  guint64 beyond_writes;    /* pages the last fresh snapshot marked read that the VM had not
                               written in the last 16-32 harvests */
  guint min_nr_regions, max_nr_regions, sample_us, aggr_us, min_accesses;
} HmmvDamonStats;

gboolean hmmv_damon_tracker_get_stats(HmmvTracker *tracker, HmmvDamonStats *stats);

/*
 * Idle page tracking (CONFIG_IDLE_PAGE_TRACKING: /sys/kernel/mm/page_idle/bitmap, one bit
 * per frame in 64-bit words, with /proc/PID/pagemap for the frames of guest RAM). A page is
 * marked idle when scanned and counts as read at its next scan when its bit is clear again
 * (the kernel clears it when a page-table accessed bit, or KVM's through the MMU notifier,
 * says the frame was used). Scans follow the temperature's multi-level queue: level >= 1
 * every interval, the warm tail of level 0 every 2nd, cold pages (key 0) every cold_period-th
 * interval, staggered so each interval takes its share.
 *
 * The kernel-facing part goes through HmmvIdleIo so the unit tests run the same code on a
 * fake that behaves like mm/page_idle.c and fs/proc/task_mmu.c: offsets and sizes that are
 * not multiples of 8 fail with EINVAL, reads past the last frame return 0 bytes, writes
 * there fail with ENXIO, and pagemap shows frame 0 without CAP_SYS_ADMIN.
 */
typedef struct _HmmvIdleIo HmmvIdleIo;

struct hmmv_idle_io_ops {
  const char *name;
  /* pread(2)/pwrite(2) semantics: bytes done, or -errno */
  gssize (*read_bitmap)(HmmvIdleIo *io, guint64 *words, gsize bytes, guint64 offset);
  gssize (*write_bitmap)(HmmvIdleIo *io, const guint64 *words, gsize bytes, guint64 offset);
  gssize (*read_pagemap)(HmmvIdleIo *io, int pid, guint64 *entries, gsize bytes,
                         guint64 offset);
  void (*destroy)(HmmvIdleIo *io);
};

struct _HmmvIdleIo {
  const struct hmmv_idle_io_ops *ops;
  gpointer priv;
};

#define HMMV_IDLE_BITMAP_PATH "/sys/kernel/mm/page_idle/bitmap"

/* The real files: bitmap_path (NULL: HMMV_IDLE_BITMAP_PATH) and proc_dir/PID/pagemap (NULL:
 * /proc). Files are opened when first used. */
HmmvIdleIo *hmmv_idle_io_new_files(const char *bitmap_path, const char *proc_dir);
HmmvIdleIo *hmmv_idle_io_new(const struct hmmv_idle_io_ops *ops, gpointer priv);
void hmmv_idle_io_free(HmmvIdleIo *io);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvIdleIo, hmmv_idle_io_free)

/* Whether this kernel has idle page tracking that hmmv can use (the bitmap exists and opens
 * for reading and writing). FALSE with HMMV_ERROR_NOT_SUPPORTED and the reason. */
gboolean hmmv_idle_probe(const char *bitmap_path, GError **error);

typedef struct {
  guint cold_period;        /* scan key-0 pages every this many intervals; 0: 8 */
  HmmvIdleIo *io;           /* NULL: the real files; taken (freed with the tracker) */
} HmmvIdleOptions;

/* start() reads the VM's frames (the QEMU pid: hmmv_vm_get_pid()) and marks them all idle;
 * each harvest scans the pages due (see above) and marks them idle again. Frames are re-read
 * from pagemap at every scan (hmmv itself moves pages; the kernel carries the idle flag
 * across a migration). A page not present is skipped. */
HmmvTracker *hmmv_idle_tracker_new(const HmmvIdleOptions *options, GError **error);

typedef struct {
  guint64 harvests;
  guint64 last_scanned;     /* pages scanned by the last harvest */
  guint64 last_read;        /* of them, read */
  guint64 last_words;       /* bitmap words read (and written) by the last harvest */
  guint64 scanned;          /* all harvests */
  guint64 unknown;          /* frames in a last, partial bitmap word (never readable) */
  guint64 cpu_ns;           /* CPU time of the harvests (the kernel's rmap walks included) */
} HmmvIdleStats;

gboolean hmmv_idle_tracker_get_stats(HmmvTracker *tracker, HmmvIdleStats *stats);

/* The tracker of a VM with two sources: writes from writes (exact, per page: qemu-dirty),
 * reads from reads. Takes both. A failing read source is reported once and dropped (the VM
 * goes on with writes only); a failing write source fails the harvest as before. */
HmmvTracker *hmmv_combined_tracker_new(HmmvTracker *writes, HmmvTracker *reads);
HmmvTracker *hmmv_combined_tracker_get_writes(HmmvTracker *tracker);
/* NULL once the read source was dropped. */
HmmvTracker *hmmv_combined_tracker_get_reads(HmmvTracker *tracker);

G_END_DECLS
