/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VM table's state, shared by the table itself (vms.c) and the hand-off of each interval
 * to the core's worker and back (vms-interval.c).
 */
#pragma once

#include "vms.h"

#define STARTING_STATUS "starting: tracking starts on a worker thread"

typedef struct {
  HmmvdVmInfo info;           /* first: entries are handed out as HmmvdVmInfo */
  HmmvQmp *qmp;               /* owned; NULL for VMs added with a ready tracker */
  HmmvMoveStats moves_base;   /* mover outcomes of earlier tracking runs */
  guint64 nr_pages;           /* the VM's size once its layout was known, else 0 */
  guint64 max_ram_bytes;      /* the source's view of the VM's RAM (libvirt), 0 unknown */
  gboolean retry_layout;      /* tracking could not start because the RAM layout moved
                                 under it (a guest still in firmware): retried each interval */
  gboolean nodes_stale;       /* its allowed nodes must be read before the next interval */
  gboolean restart_exclude;   /* its exclusion changed while an interval ran: restart then */
  const char *left_alone;     /* the core's reason last logged (static), NULL */
  char *frozen_reason;        /* the missed deadline that froze it (info.frozen) */
  HmmvVm *pending_vm;         /* built while an interval ran: tracked when it is done */
  HmmvTracker *pending_tracker;
} VmEntry;

typedef struct {
  GSourceFunc func;
  gpointer data;
} IdleWaiter;

struct _HmmvdVms {
  HmmvCore *core;
  const HmmvdConfig *config;
  HmmvMover *mover;
  HmmvdReads *reads;          /* borrowed; NULL: writes only */
  GHashTable *entries;        /* name -> VmEntry */
  GPtrArray *list;            /* sorted view handed out by hmmvd_vms_list() */
  HmmvIntervalReport report;
  gboolean have_report;
  guint64 intervals_started;  /* the index of the next interval */
  char *balance_error;        /* last one logged: a persisting error is logged once */
  char *balance_note;         /* the same for the note of scaled mins */
  char *fallback_note;        /* the same for pages sent past a full node */
  char *node_mins_note;       /* the same for DRAM nodes whose VMs' mins exceed them */
  HmmvdQuotaWriter writer;
  gpointer writer_data;
  HmmvdVmRebuildFunc rebuild;
  gpointer rebuild_data;
  HmmvdVmGoneFunc gone;
  gpointer gone_data;
  /* The interval in flight on the worker, if any. */
  gboolean running;
  HmmvIntervalReport run_report;  /* the worker's until it is done, then swapped in */
  GCancellable *cancellable;
  HmmvdIntervalDone done;
  gpointer done_data;
  GPtrArray *doomed;          /* VmEntry removed or replaced meanwhile: untracked after it */
  GArray *waiters;            /* IdleWaiter: called when it is done */
  guint64 intervals_skipped;  /* ticks that found an interval still running */
  HmmvdVmRestartFunc restart;   /* for VMs of restart_source */
  HmmvdSource restart_source;
  gpointer restart_data;
};

void hmmvd_vm_entry_free(gpointer data);
void hmmvd_vm_entry_set_status(VmEntry *entry, const char *status);
/* the entry's mover outcomes: earlier tracking runs' plus the core VM's */
void hmmvd_vms_update_moves(HmmvdVms *vms, VmEntry *entry);
gboolean hmmvd_vms_mover_is_sim(const HmmvMover *mover);
/* out of the core (no-op when not in it); the entry stays */
void hmmvd_vms_untrack(HmmvdVms *vms, VmEntry *entry);
/* a VM and its qemu-dirty tracker from the entry's QMP transport */
gboolean hmmvd_vms_build_from_qmp(HmmvdVms *vms, VmEntry *entry, HmmvVm **vm_out,
                                  HmmvTracker **tracker_out, GError **error);
/* into the core, or pending until the running interval is done; status and log say which */
gboolean hmmvd_vms_track(HmmvdVms *vms, VmEntry *entry, HmmvVm *vm, HmmvTracker *tracker,
                         GError **error);
