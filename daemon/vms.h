/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The table of VMs hmmvd knows, managed or not, on top of the libhmmv core.
 */
#pragma once

#include <hmmv/hmmv.h>

#include "config.h"
#include "reads.h"

G_BEGIN_DECLS

typedef struct _HmmvdVms HmmvdVms;

/* Where a VM came from, for status output and for writing quotas back. */
typedef enum {
  HMMVD_SOURCE_STANDALONE,
  HMMVD_SOURCE_LIBVIRT,
} HmmvdSource;

typedef struct {
  char *name;
  HmmvdSource source;
  int pid;
  char *uuid;                   /* libvirt only */
  HmmvQuota quota;              /* last good quota */
  char *quota_error;            /* last rejected metadata, NULL when fine */
  char *quota_pending;          /* a set-quota not written to libvirt yet, and why (libvirt
                                   source: libvirt-writes.c); NULL when none waits */
  char **exclude;               /* memory backends / RAM blocks hmmv leaves alone (libvirt
                                   metadata, hmmvd.conf [vm NAME]): not tracked, moved or
                                   counted; NULL or empty: none */
  guint64 excluded_pages;       /* RAM they hold, left out of the managed VM (0 until
                                   tracking started) */
  /* When the current quota was accepted, the index of the next interval to start; and the
   * index of the first interval that ran with it (G_MAXUINT64 until one has). Tests count
   * intervals with these instead of timing how soon a quota shows. */
  guint64 quota_accepted_interval;
  guint64 quota_effective_interval;
  char *status;                 /* "managed", or why hmmv does not manage it */
  char *last_error;             /* last interval's error, NULL when fine */
  guint64 errors;               /* intervals that failed */
  guint64 last_good_interval;   /* index of the last interval that ran it without error,
                                   G_MAXUINT64 until one has: tests see that a VM is still
                                   run (not just listed) by counting intervals, not time */
  HmmvVmReport last;            /* last interval's figures (error member not used) */
  gboolean in_core;             /* tracked and moved by the core */
  gboolean dropped;             /* left the core because its layout changed, or its start-up
                                   missed a QMP deadline: the source tries it again */
  gboolean paused;              /* hmmvctl pause: tracked, nothing moves */
  gboolean frozen;              /* its QEMU missed a QMP deadline: kept in the core with its
                                   last placement, its DRAM held and counted, nothing tracked
                                   or moved until its source sees QEMU answer again
                                   (hmmvd_vms_thaw) or it goes */
  guint64 freezes;              /* since listed: times it was frozen */
  int held_pid;                 /* > 0: it left the core found gone by an interval while
                                   this QEMU may live (standalone only), its DRAM held by
                                   the core (hmmv_core_hold_dram) for that pid; its source
                                   adopts the hold (and sets this to 0) or, when the entry
                                   is removed or replaced first, the table releases it */
  HmmvMoveStats moves;          /* mover outcomes since the VM was listed (all tracking runs) */
  HmmvUnmovable unmovable;      /* pages backed off after failed moves, by cause (now) */
  int cpu_node;                 /* node whose CPUs run it (affinity.c), -1 unknown */
  const char *cpu_node_source;  /* static: "cpu-affinity", "mems-allowed" or "pages" */
  guint64 fallback_promoted;    /* since listed: pages promoted to a farther DRAM node because
                                   the nearest was full */
  guint64 fallback_demoted;     /* the same for demotions and slow nodes */
  guint64 homed_dram;           /* since listed: pages brought home from a farther DRAM node to
                                   the nearest once it had room */
  guint64 homed_slow;           /* the same for slow pages and slow nodes */
  guint64 moved_first;          /* since listed: promotions and demotions that were the page's
                                   first move (first placement; core.h, README "Churn") */
  guint64 moved_again;          /* ... and those of pages that had moved before (the churn) */
  guint64 hot_entered;          /* since listed: pages that entered the VM's hot set */
  guint64 hot_left;             /* ... and that left it */
  guint64 plans_kept;           /* since listed: intervals its last plan stood, not built again
                                   (coarse, paused writes, nothing learnt: loop.c) */
  guint64 harvests_late;        /* since listed: intervals its harvest had nothing yet (its
                                   QEMU had not answered hmmv-sync in time): balanced and
                                   moved on what hmmvd knew, not failed (core.h) */
  guint32 bound_nodes;          /* the source's binding (libvirt numatune), bit per node;
                                   0 = none */
  guint32 allowed_nodes;        /* the nodes its pages may go to, as the core was told: its
                                   QEMU's Mems_allowed_list and bound_nodes, within the
                                   topology; 0 = every node */
} HmmvdVmInfo;

/* core and config are borrowed. Free the table before the core: it takes its VMs out of the
 * core first (their trackers talk through transports the table owns). */
HmmvdVms *hmmvd_vms_new(HmmvCore *core, const HmmvdConfig *config);
void hmmvd_vms_free(HmmvdVms *vms);
HmmvCore *hmmvd_vms_get_core(HmmvdVms *vms);
const HmmvdConfig *hmmvd_vms_get_config(HmmvdVms *vms);

/* Start tracking a VM through its QMP transport (taken). On failure the VM is still listed,
 * with status saying why (an unpatched QEMU, for example), so operators see it. The RAM
 * QEMU reports must lie in QEMU's (pid) writable mappings and sum to at most max_ram_bytes
 * (the source's view of the VM, 0 when it has none). */
gboolean hmmvd_vms_add(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                       const char *uuid, HmmvQmp *qmp, guint64 max_ram_bytes, GError **error);
/* hmmvd_vms_add in two halves, for sources that keep QMP round trips off the main loop. On a
 * worker thread: build the VM from QEMU's layout (bounded as above) and start its tracker;
 * touches no table. Then on the main thread: add it (everything taken; on failure listed with
 * the reason, as with hmmvd_vms_add). */
/* exclude: the backends left alone (hmmv_qemu_vm_new_excluding), excluded_bytes what they
 * hold; given again to hmmvd_vms_add_started for status. */
gboolean hmmvd_vm_build_started(const char *name, HmmvQmp *qmp, int pid, guint64 max_ram_bytes,
                                guint interval_ms, const char *const *exclude,
                                guint64 *excluded_bytes, HmmvVm **vm, HmmvTracker **tracker,
                                GError **error);
gboolean hmmvd_vms_add_started(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                               const char *uuid, HmmvQmp *qmp, guint64 max_ram_bytes,
                               const char *const *exclude, guint64 excluded_bytes,
                               HmmvVm *vm, HmmvTracker *tracker, GError **error);
/* The source's exclusion changed (virsh metadata on a running domain): tracking restarts
 * (hmmv-stop, then hmmv-start without those backends, the VM built again) once no interval
 * runs, through the source's restart function. FALSE when it is the same list (nothing to
 * do) or no such VM. */
gboolean hmmvd_vms_change_exclude(HmmvdVms *vms, const char *name, const char *const *exclude);
/* For sources that start tracking on a worker thread: list the VM as starting meanwhile, and
 * record a start-up that failed (status and log as hmmvd_vms_add; a missed deadline marks it
 * dropped, to be retried). */
void hmmvd_vms_add_starting(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                            const char *uuid);
void hmmvd_vms_fail_start(HmmvdVms *vms, const char *name, const GError *error);
/* Set, a source restarts its VMs' tracking itself (off the main thread) when their RAM layout
 * changed: the VM leaves the core, is marked dropped, and func is told its name. */
typedef void (*HmmvdVmRestartFunc)(const char *name, gpointer user_data);
void hmmvd_vms_set_restart_func(HmmvdVms *vms, HmmvdSource source, HmmvdVmRestartFunc func,
                                gpointer user_data);
/* The part of hmmvd_vms_add after the VM and its tracker are built (both taken); also the
 * entry point of the unit tests (fake tracker, sim mover). A VM added this way has no QMP
 * transport: when its RAM layout changes, tracking restarts through the rebuild function
 * (below) if one is set, else the VM leaves the core with a status saying so. Adding a name
 * that is already listed replaces that entry (a domain that was restarted). */
gboolean hmmvd_vms_add_with_tracker(HmmvdVms *vms, const char *name, HmmvdSource source,
                                    int pid, const char *uuid, HmmvVm *vm,
                                    HmmvTracker *tracker, GError **error);
typedef gboolean (*HmmvdVmRebuildFunc)(const char *name, gpointer user_data, HmmvVm **vm,
                                       HmmvTracker **tracker, GError **error);
void hmmvd_vms_set_rebuild_func(HmmvdVms *vms, HmmvdVmRebuildFunc func, gpointer user_data);
/* The core's mover (borrowed). Needed with the sim mover, which must forget a VM's modelled
 * pages when the VM leaves the core; its topology also sizes the DRAM pool for quota checks
 * when dram-pool-mib is 0. */
void hmmvd_vms_set_mover(HmmvdVms *vms, HmmvMover *mover);
/* The read source VMs added from QMP get beside their writes (borrowed; NULL: writes only). */
void hmmvd_vms_set_reads(HmmvdVms *vms, HmmvdReads *reads);
HmmvdReads *hmmvd_vms_get_reads(HmmvdVms *vms);
/* Told when a VM's QEMU went away (HMMV_ERROR_GONE in an interval): the VM has left the core
 * and stays listed as "gone: ..." until the source calls hmmvd_vms_remove(). A standalone
 * VM whose QEMU process may still live (it closed its QMP socket; with the sim mover, whose
 * VMs have no process, always) leaves with its DRAM held (info.held_pid), not one whose QEMU
 * exited while frozen. */
typedef void (*HmmvdVmGoneFunc)(const char *name, gpointer user_data);
void hmmvd_vms_set_gone_func(HmmvdVms *vms, HmmvdVmGoneFunc func, gpointer user_data);

/* The nodes a VM's source binds its memory to (libvirt's numatune; bit per node, 0 = none):
 * its pages go to no other node, from the next interval on. FALSE when no such VM. */
gboolean hmmvd_vms_set_bound_nodes(HmmvdVms *vms, const char *name, guint32 mask);

/* List a VM hmmv will not manage, with the reason. */
void hmmvd_vms_add_unmanaged(HmmvdVms *vms, const char *name, HmmvdSource source,
                             const char *reason);
void hmmvd_vms_remove(HmmvdVms *vms, const char *name);
/* A frozen VM's QEMU answers again (its source saw the exchange it missed complete): thawed
 * from the next interval on, its placement re-read (hmmv_core_set_frozen). FALSE when no
 * such VM or it is not frozen. */
gboolean hmmvd_vms_thaw(HmmvdVms *vms, const char *name);
/* Validates; a rejected quota keeps the last good one and is recorded in quota_error. */
gboolean hmmvd_vms_set_quota(HmmvdVms *vms, const char *name, const HmmvQuota *quota,
                             GError **error);
gboolean hmmvd_vms_set_paused(HmmvdVms *vms, const char *name, gboolean paused,
                              GError **error);
HmmvdVmInfo *hmmvd_vms_lookup(HmmvdVms *vms, const char *name);
/* The QMP transport a VM was added with (hmmvd_vms_add_started), or NULL: its trackers talk
 * through it, on the interval's worker, unless the VM is frozen. */
HmmvQmp *hmmvd_vms_get_qmp(HmmvdVms *vms, const char *name);
/* Sorted by name; the array and its elements belong to vms. */
GPtrArray *hmmvd_vms_list(HmmvdVms *vms);
/* Run one interval and record its report. A VM whose QEMU is gone leaves the core, stays
 * listed as "gone" and the gone function is told; one whose QEMU missed a QMP deadline
 * (HMMV_ERROR_TIMED_OUT) is frozen in the core (hmmv_core_set_frozen: its DRAM stays
 * counted, nothing of it is tracked or moved), status "not answering (frozen, ...)", until
 * its source thaws it (hmmvd_vms_thaw) or removes it; a frozen VM whose QEMU process is gone
 * (checked before each interval) is handled as gone; one whose
 * QEMU tampered with the shared region (HMMV_ERROR_CORRUPT) leaves it, refused; a changed
 * RAM layout restarts its tracking; other errors count in errors/last_error. */
void hmmvd_vms_run_interval(HmmvdVms *vms);
/* The same interval on the core's worker thread (the main loop goes on serving); done, when
 * not NULL, is called on this thread once its report is read. FALSE (and counted as skipped)
 * when one is still running: the next tick tries again. While it runs: hmmvd_vms_run_interval
 * above runs one to the end (tests), and a VM added or removed joins or leaves the core when
 * it is done. */
typedef void (*HmmvdIntervalDone)(gpointer user_data);
gboolean hmmvd_vms_start_interval(HmmvdVms *vms, HmmvdIntervalDone done, gpointer user_data);
gboolean hmmvd_vms_interval_running(HmmvdVms *vms);
guint64 hmmvd_vms_get_intervals_skipped(HmmvdVms *vms);
/* While an interval runs: func(user_data) is called when it is done, and TRUE is returned;
 * FALSE when none runs (call it yourself). For work that needs the VMs' page state. */
gboolean hmmvd_vms_when_idle(HmmvdVms *vms, GSourceFunc func, gpointer user_data);
/* Cancels the running interval's remaining moves and waits for it (iterating this thread's
 * default context); before tearing down. */
void hmmvd_vms_wait_idle(HmmvdVms *vms);
const HmmvIntervalReport *hmmvd_vms_get_last_report(HmmvdVms *vms);

/* Asked to write a quota to wherever the VM's quota lives (libvirt metadata). */
typedef gboolean (*HmmvdQuotaWriter)(const char *name, const HmmvQuota *quota,
                                     gpointer user_data, GError **error);
void hmmvd_vms_set_quota_writer(HmmvdVms *vms, HmmvdQuotaWriter writer, gpointer user_data);
/* set-quota from hmmvctl: validated, then written through the writer when the VM comes from
 * libvirt (the metadata event then applies it), else applied at once. */
gboolean hmmvd_vms_request_quota(HmmvdVms *vms, const char *name, const HmmvQuota *quota,
                                 GError **error);

/* DRAM pages the pool lends (config, else the mover's DRAM, else the last interval's). */
guint64 hmmvd_vms_get_pool_pages(HmmvdVms *vms);
/* The balance error of the last interval, NULL when the quotas fit. */
/* The last interval's note of mins scaled down to fit, naming each VM; NULL when they fit. */
const char *hmmvd_vms_get_balance_note(HmmvdVms *vms);
const char *hmmvd_vms_get_balance_error(HmmvdVms *vms);
/* The last interval's DRAM nodes whose nearest VMs' mins exceed what the node can hold,
 * naming each node and VM (the quota check is host-wide); NULL when every node holds them. */
const char *hmmvd_vms_get_node_mins_note(HmmvdVms *vms);

/* JSON views shared by the control socket and hmmvctl --json (vms-json.c). */
JsonNode *hmmvd_vms_to_json(HmmvdVms *vms);
/* What a VM whose pages cannot be ranked (rank_flat) shows and logs: how flat, and what to
 * do; NULL when it is ranked. */
char *hmmvd_rank_flat_note(const HmmvVmReport *last);
/* A managed VM's pages as hmmvd believes them placed (control command "placement"), between
 * two intervals (HMMV_ERROR_BUSY while one runs: the control socket waits for it). */
#define HMMVD_PLACEMENT_MAX_PAGES (4u << 20)   /* 16 GiB: a 4 MiB reply */
JsonNode *hmmvd_vm_placement_to_json(HmmvdVms *vms, const char *name, GError **error);
/* The core's VM of a managed entry, NULL (error set) when the name is unknown or unmanaged. */
const HmmvVm *hmmvd_vms_lookup_core_vm(HmmvdVms *vms, const char *name, GError **error);
JsonNode *hmmvd_status_to_json(HmmvdVms *vms, const HmmvTopology *topo, const char *mover);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdVms, hmmvd_vms_free)


G_END_DECLS
