/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: a patched QEMU as a source of guest writes (the qemu-dirty tracker).
 *
 * hmmv_qemu_query_layout() asks QEMU (query-hmmv-ramblocks) where guest RAM is: every
 * guest-physical range of every RAM block that backs guest RAM (a block owned by a memory
 * backend, or QEMU's default "pc.ram"); of a block that a RamDiscardManager manages (a
 * virtio-mem device's backend), only the populated parts QEMU reports. hmmv_qemu_vm_new()
 * turns that into an HmmvVm, one region per range. The tracker starts the export (hmmv-start) into a memfd it creates
 * (MFD_ALLOW_SEALING) and passes in an fd set (add-fd; with getfd to a QEMU whose hmmv-start
 * takes no fd set), seals the size QEMU gave it (a QEMU that could
 * shrink it would make hmmvd's harvest die of SIGBUS), and harvests by draining the region's
 * bitmaps. A transport that cannot pass fds cannot track.
 */
#pragma once

#include <glib.h>
#include <hmmv/qmp.h>
#include <hmmv/tracker.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct {
  char *block;              /* RAM block id */
  char *memdev;             /* owning memory backend id, or NULL */
  guint64 offset;           /* in the block */
  guint64 gpa;
  guint64 size;
  guint64 hva;              /* host address of the range in QEMU */
  guint64 page_size;        /* backing page size */
} HmmvQemuRange;

/* Ranges sorted by gpa. all_blocks: also ROM, VGA memory and other non-RAM blocks. */
GPtrArray *hmmv_qemu_query_layout(HmmvQmp *qmp, gboolean all_blocks, GError **error);
/* Every range must lie in memory the QEMU process (pid) maps writable (/proc/PID/maps), and
 * their sum must not pass max_ram_bytes (0: no bound; the daemon passes libvirt's view of
 * the domain's memory); else HMMV_ERROR_PROTOCOL, before anything is allocated. pid <= 0
 * cannot be checked and fails with HMMV_ERROR_NOT_SUPPORTED. */
HmmvVm *hmmv_qemu_vm_new_bounded(HmmvQmp *qmp, const char *name, int pid,
                                 guint64 max_ram_bytes, GError **error);
/* hmmv_qemu_vm_new_bounded() with the transport's peer pid and no size bound. */
HmmvVm *hmmv_qemu_vm_new(HmmvQmp *qmp, const char *name, GError **error);
/* Is the range in a memory backend (id) or RAM block (name) that exclude names? exclude is
 * NULL-ended; NULL: nothing is excluded. */
gboolean hmmv_qemu_range_excluded(const HmmvQemuRange *range, const char *const *exclude);
/* hmmv_qemu_vm_new_bounded() without the ranges of the backends exclude names: the VM has no
 * region there, so nothing tracks, moves or counts those pages (an operator's hugetlbfs or
 * pinned backends; hmmv leaves them where they are). Every name must name a memory backend or
 * RAM block of this VM's guest RAM that is mapped now, and something must be left, else
 * HMMV_ERROR_INVALID_ARGUMENT naming it. excluded_bytes, when not NULL: the RAM left out. */
HmmvVm *hmmv_qemu_vm_new_excluding(HmmvQmp *qmp, const char *name, int pid,
                                   guint64 max_ram_bytes, const char *const *exclude,
                                   guint64 *excluded_bytes, GError **error);

typedef struct {
  guint interval_ms;        /* QEMU publishes every interval_ms; 0: each harvest asks
                               QEMU to publish first (hmmv-sync) */
  /* Memory backends (ids) or RAM blocks (names) not to export (hmmv-start's exclude: no
   * dirty logging there, so KVM keeps huge mappings); NULL-ended, copied; NULL or empty: all
   * guest RAM. The VM should be built without them (hmmv_qemu_vm_new_excluding); a VM that
   * has their ranges keeps them, never seen written. A QEMU without exclude exports all,
   * saying so once in the log; the tracker still marks nothing there. */
  const char *const *exclude;
  /* Pause QEMU's export while the core says COARSE (tracker.h, HmmvPauseCycle: one interval
   * in 8 tracked). A QEMU without hmmv-pause keeps tracking, saying so once in the log. */
  gboolean pause_when_coarse;
} HmmvQemuDirtyOptions;

/* Takes ownership of qmp. */
HmmvTracker *hmmv_qemu_dirty_tracker_new(HmmvQmp *qmp, const HmmvQemuDirtyOptions *options,
                                         GError **error);
HmmvQmp *hmmv_qemu_dirty_tracker_get_qmp(HmmvTracker *tracker);
/* Start now, on the caller's thread (a worker: the QMP round trips of a start block), for vm;
 * the core's start of the same tracker is then a no-op. The tracker and vm must be handed to
 * the core (on its thread) afterwards, or stopped. */
gboolean hmmv_qemu_dirty_tracker_prestart(HmmvTracker *tracker, HmmvVm *vm, GError **error);

typedef struct {
  guint64 generation;       /* QEMU's last publication */
  guint64 harvests;
  guint64 syncs;            /* hmmv-sync commands sent (daemon-paced: each harvest) */
  guint64 pages_harvested;
  guint64 last_harvest_ns;  /* time the last harvest took draining the region (without the
                               hmmv-sync round trip of daemon-paced mode) */
  guint64 last_publish_ns;  /* QEMU's last publication took */
  const char *source;       /* "tcg", "kvm-dirty-ring", "kvm-dirty-log" or "unknown" */
  gboolean paused;          /* the export is paused (hmmv-pause) */
  guint64 pauses;           /* times it was paused */
  gboolean excluding;       /* hmmv-start excluded the options' backends */
  guint64 blocks_rechecked; /* blocks whose own layout changed, re-read and still the VM's */
  guint64 mid_publication;  /* harvests that drained bits QEMU was still publishing (counted
                               as an interval; see qemu_dirty_harvest) */
  const char *region_passed; /* how the region reached QEMU at the last start: "add-fd" (an fd
                               set), "getfd" (a QEMU whose hmmv-start takes no fd set), or NULL */
  guint64 pause_resyncs;    /* times QEMU said its export's pause was not what the tracker
                               knew (a pause or resume done after its deadline) */
} HmmvQemuDirtyStats;

gboolean hmmv_qemu_dirty_tracker_get_stats(HmmvTracker *tracker, HmmvQemuDirtyStats *stats);

void hmmv_qemu_range_free(HmmvQemuRange *range);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvQemuRange, hmmv_qemu_range_free)

G_END_DECLS
