/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the core owns the interval loop (libhmmv/loop.c). One interval, for all VMs:
 * harvest -> temperatures -> balance the DRAM pool -> hot cut per VM -> plan -> move ->
 * account. A VM whose tracker or mover fails is marked with its error for that interval and
 * the others go on; the caller decides whether to drop it.
 *
 * Threads: an interval may run on a worker (hmmv_core_run_interval_async) while the caller's
 * thread goes on serving: moves take seconds at the cap (3.9 us a page) and hold the VM
 * process's mmap_lock, and a harvest may wait on QEMU. While an interval runs, the caller may
 * only call hmmv_core_is_running, hmmv_core_set_paused, hmmv_core_set_quota,
 * hmmv_core_hold_dram / release_dram / get_held_dram_pages / list_held_dram,
 * hmmv_core_get_pool_usage, hmmv_core_lookup_vm / get_vm / get_nr_vms (the pointer, not
 * the VM's page state) and hmmv_core_get_pool_pages; adding or removing a VM fails with
 * HMMV_ERROR_BUSY, and the VMs' page state, move stats and the report belong to the interval
 * until it is finished. The decisions themselves stay on one thread, in a fixed order, so a
 * run replays the same way on either path.
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <hmmv/classify.h>
#include <hmmv/mover.h>
#include <hmmv/params.h>
#include <hmmv/plan.h>
#include <hmmv/temperature.h>
#include <hmmv/topology.h>
#include <hmmv/tracker.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct _HmmvCore HmmvCore;

/* What one interval did for one VM. */
typedef struct {
  const char *name;
  guint64 nr_pages;
  guint64 written;          /* pages seen written this interval */
  guint64 read;             /* pages seen read (0 when the tracker sees no reads) */
  guint64 intervals_merged;
  guint64 budget_pages;
  guint64 min_granted_pages; /* its min this interval: below the quota's when the mins did not
                                fit and were scaled (0 when outside the balance) */
  guint64 hot_pages;
  guint64 dram_pages;
  guint64 slow_pages;
  guint64 promoted;         /* pages that really moved this interval */
  guint64 demoted;
  guint64 move_failed;      /* pages the mover reported failures for this interval */
  /* Churn (issue 7, item 11; README "Churn"): of the pages promoted and demoted this interval,
   * those moving for the first time since hmmv learnt their node (first placement: mostly
   * pages the guest first touched on DRAM, demoted for want of room) and those that had
   * moved before (re-moves: the churn). Pages brought home within a tier are in neither. */
  guint64 moved_first;
  guint64 moved_again;
  guint64 hot_entered;      /* pages that entered the hot set since the last plan */
  guint64 hot_left;         /* pages that left it */
  guint64 deferred_cap;
  guint64 deferred_room;    /* promotions held back this interval because the pool's DRAM is
                               still held by other VMs' deferred demotions */
  guint64 deferred_unit;    /* pages not moved because a huge unit did not fit whole */
  guint64 moved_max_pages;  /* the cap's count: 4 KiB pages of every unit the plan moved,
                               promotions + demotions (<= the cap's bucket: one interval's
                               cap, more only when a huge unit is larger; loop-cap.c) */
  guint64 thp_pages;        /* pages in transparent huge pages, as last learnt */
  guint64 hugetlb_pages;    /* pages on hugetlbfs pages */
  int dram_node;            /* its promotions' first choice: the DRAM node nearest its vCPUs */
  int slow_node;            /* its demotions' first choice: the slow node nearest dram_node */
  guint64 promoted_fallback;/* pages promoted to another DRAM node (dram_node was full) */
  guint64 demoted_fallback; /* pages demoted to another slow node (slow_node was full) */
  guint64 homed_dram;       /* pages brought home this interval: moved from a farther DRAM
                               node to dram_node once it had room (loop-home.c) */
  guint64 homed_slow;       /* the same for slow pages and slow_node */
  guint64 away_dram;        /* at the interval's end: pages on a DRAM node other than
                               dram_node (fell back, or were there before) */
  guint64 away_slow;        /* the same for slow pages and slow_node */
  guint64 deferred_host_cap; /* moves the host-wide cap held back (also in deferred_cap) */
  guint64 deferred_batch;   /* moves held back so that the interval's moves finish within
                               params.move_share_percent of it at the mover's learnt speed
                               (also in deferred_cap) */
  guint64 placement_unread; /* pages whose placement the core has not read yet since the VM
                               was added: until 0, the VM keeps its DRAM and nothing moves */
  guint64 rescanned;        /* pages of the rolling rescan queried this interval (0 while
                               it waits out its gap, HMMV_CORE_RESCAN_GAP_MAX) */
  guint64 rescan_drift;     /* of those, pages found elsewhere than recorded, plus THP blocks
                               whose state changed: what speeds the rescan up again */
  guint rescan_gap;         /* intervals from this window to the VM's next one */
  gboolean paused;
  gboolean frozen;          /* its QEMU stopped answering (hmmv_core_set_frozen): kept with its
                               last placement, its DRAM held and counted, nothing of it tracked,
                               planned or moved */
  HmmvWatch watch;          /* how closely its tracker was told to watch after this interval:
                               COARSE once it has been settled a while (loop-watch.c) */
  gboolean writes_paused;   /* its write source is paused for the next interval (tracker.h,
                               HmmvPauseCycle: COARSE tracks one interval in 8) */
  gboolean plan_kept;       /* not planned this interval: COARSE, and its harvest brought
                               nothing its last (empty) plan did not know
                               (loop-plan.c, core_plan_unchanged) */
  gboolean harvest_late;    /* its tracker had nothing for this interval yet (HMMV_ERROR_BUSY:
                               a QEMU that has not answered the interval's hmmv-sync): a
                               harvest of 0 intervals, the VM balanced, planned and moved on
                               what the core knew (loop.c, core_harvest) */
  const char *left_alone;   /* static: why the VM's allowed nodes (strict numatune, cpuset)
                               leave nothing to move its pages between, so nothing of it
                               moves and it keeps its DRAM; NULL when they do not */
  /* Whether its pages can be ranked (HMMV_RANK_FLAT_*, libhmmv/loop-rank.c): flat when in
   * most recent intervals it accessed nearly all of its warm pages, more than its budget, so
   * that one access bit per page and interval cannot tell its hot pages from the rest. */
  gboolean rank_flat;
  gboolean rank_flat_changed; /* rank_flat changed this interval (entered or left) */
  guint rank_window;        /* sampled intervals looked at: HMMV_RANK_FLAT_WINDOW once it has
                               had that many (late and merged harvests are not sampled) */
  guint rank_flat_intervals; /* of those, the flat ones */
  guint rank_flat_percent;  /* the least share (%) of its warm pages accessed in one of the
                               flat ones; 0 when none */
  /* Over the flat ones of the window (0 when none), the least and the most of: its pages
   * accessed in one, its warm pages after it, and its DRAM budget in it. The note shows
   * these, not this interval's figures: the verdict is the window's (review 18, F3). */
  guint64 rank_flat_accessed_min, rank_flat_accessed_max;
  guint64 rank_flat_warm_min, rank_flat_warm_max;
  guint64 rank_flat_budget_min, rank_flat_budget_max;
  guint64 rank_warm_pages;  /* its warm pages (temperature above 0) at the last sampled one */
  gboolean rank_reads;      /* the tracker sees reads: "accessed", else "written" */
  GError *error;            /* owned by the report; NULL when the interval went well */
} HmmvVmReport;

typedef struct {
  guint64 index;            /* interval number, from 0 */
  guint64 pool_pages;
  guint64 elapsed_ns;       /* wall time of the interval in the core, moves included */
  guint64 mover_ns_per_page; /* the mover's speed this interval's moves were sized by: learnt
                               from the moves so far (ns a 4 KiB page on the mover's clock),
                               params.move_cost_ns before any */
  guint64 batch_pages;      /* the moves that fit in params.move_share_percent of an interval
                               at that speed (G_MAXUINT64: no limit) */
  guint64 moved_ns;         /* the mover's clock over this interval's move calls */
  GArray *vms;              /* HmmvVmReport */
  GError *balance_error;    /* invalid quotas (weight 0, min > max): last good budgets kept;
                               owned */
  char *balance_note;       /* the mins did not all fit and were scaled down in proportion:
                               says how, naming every VM; NULL otherwise; owned */
  char *fallback_note;      /* pages went to a farther node because the nearest was full:
                               which VMs, from which node to which (no counts, so a caller
                               can log it when it changes); NULL otherwise; owned */
} HmmvIntervalReport;

/* One node's share of the pool (hmmv_core_get_node_pools). */
typedef struct {
  int id;
  HmmvTier tier;
  guint64 total_pages;      /* the node's memory */
  guint64 free_pages;       /* free at the last look (the topology's free_bytes) */
  guint64 configured_pages; /* the operator's pool for the node, 0 = none */
  guint64 reserve_pages;    /* free memory left to the host */
  guint64 capacity_pages;   /* what the VMs may hold there: their pages + free - reserve, at
                               most the node and the configured pool */
  guint64 used_pages;       /* what the VMs hold there */
  guint64 fallback_in_pages;/* since start: pages placed there because a nearer node was full */
  gboolean full;            /* last interval: pages wanted room there and found none */
} HmmvNodePool;

/* The pool as the balance sees it; the daemon checks quotas against the same figures. */
typedef struct {
  guint64 pool_pages;          /* DRAM the core lends */
  guint64 held_outside_pages;  /* DRAM of VMs outside the balance (paused, unmanaged, or
                                  failing in the last interval): the pool shrinks by it */
  guint64 min_pages;           /* the mins of the VMs in the balance, each capped at its size */
} HmmvPoolUsage;

/* A VM's pages cannot be ranked (HmmvVmReport.rank_flat) when, in at least
 * HMMV_RANK_FLAT_ENTER of its last HMMV_RANK_FLAT_WINDOW sampled intervals, the pages it
 * wrote were at least HMMV_RANK_FLAT_PERCENT of its warm pages and more than its DRAM
 * budget; it is ranked again once HMMV_RANK_FLAT_LEAVE or fewer of them are (hysteresis).
 * 75%: the case of issue 8 was 97% (a cold page written in 97% of intervals); in the model of
 * tests/test-rank.c (90% of writes on 1,024 of 16,384 pages, budget 2,048) the hot set is
 * lost from ~80% on (82%: 29 of 1,024 hot pages on DRAM, 87%: none) while 65% still finds all
 * of it; a skewed workload's is far below (~22%, libhmmv/loop-rank.c). 8 of 10: a few busy
 * intervals (a guest booting, a burst) do not make a VM flat, and it shows within 8. */
#define HMMV_RANK_FLAT_WINDOW 10u
#define HMMV_RANK_FLAT_PERCENT 75u
#define HMMV_RANK_FLAT_ENTER 8u
#define HMMV_RANK_FLAT_LEAVE 5u

/* Pages of each VM whose placement is re-read per interval, so that moves the kernel makes
 * on its own (NUMA balancing, compaction, reclaim) are noticed: 1/32 of the VM (a full pass
 * every 32 intervals), at least 4096 pages, at most 65536. A move_pages(2) status query costs
 * ~75-140 ns a page here (tests/bench/bench-query), so the cap holds the rescan to ~5-9 ms per
 * VM per interval; without it a 256 GiB VM would spend ~150-280 ms an interval re-reading
 * placement, more than all of the core's decisions. Such a VM then takes ~1000 intervals for a
 * full pass. */
#define HMMV_CORE_RESCAN_DIVISOR 32
#define HMMV_CORE_RESCAN_MIN_PAGES 4096
#define HMMV_CORE_RESCAN_MAX_PAGES 65536
/* The rescan follows what it finds (loop-place.c): a window that finds every page where the
 * core's record has it (and every THP block as recorded) doubles the intervals to the VM's
 * next window, up to this many; a window that finds one page or block otherwise reads the
 * next window in the next interval again. So a VM whose pages nothing but hmmv moves (NUMA
 * balancing and demotion off, hmmvd's own moves recorded from their statuses) is re-read at
 * 1/8 of the rate: in the tiering race (issue 8, testbed, 2026-12-03) the rescan's status
 * queries were 18% of hmmvd's CPU and found nothing. A kernel that starts moving pages is
 * noticed within HMMV_CORE_RESCAN_GAP_MAX intervals of the window that covers them. */
#define HMMV_CORE_RESCAN_GAP_MAX 8
/* 2 MiB blocks whose THP state is re-read per interval, so that THPs khugepaged forms and
 * the kernel splits are followed: 1/32 of the VM's blocks, at least 64, at most 4096 (three
 * small reads a block through pagemap and kpageflags, ~1 us: ~4 ms at most). The blocks a
 * plan is about to move are re-read just before the move as well. */
#define HMMV_CORE_THP_RESCAN_MIN_BLOCKS 64
#define HMMV_CORE_THP_RESCAN_MAX_BLOCKS 4096

/* Pages away from their VM's home node (fell back because it was full) come home only into
 * the room above 1/16 of the home node's capacity: pages fall back at 0 room and come home
 * above the margin, a hysteresis that keeps a node hovering at full from pulling pages home
 * that the next promotions would have to step around (loop-home.c says why 1/16). */
#define HMMV_CORE_HOME_MARGIN_DIVISOR 16

/* A VM the core takes has its pages somewhere already; the core reads where in slices of this
 * many pages, one slice per interval (on the interval's thread), instead of all at once
 * when the VM is added: all at once took ~5 s for 256 GiB (64M pages at ~75 ns) on the
 * thread that serves libvirt and the control socket. 1M pages (4 GiB) is ~75-140 ms a
 * slice; a 256 GiB VM is read in 64 intervals, and until then it keeps what it holds and
 * nothing of it moves (placement_unread in the report). */
#define HMMV_CORE_ADD_SLICE_PAGES (1u << 20)

/* topo and mover are not owned and must outlive the core. pool_pages: DRAM the core may
 * lend to VMs in all (0 = no limit but the nodes' capacities). The pool is the sum of the DRAM
 * nodes' capacities (each: the VMs' pages there + the node's free memory - its reserve, at
 * most the node and its configured pool), re-computed at every interval from the topology's
 * free memory, which the caller refreshes (hmmv_topology_refresh_free); at most pool_pages. */
HmmvCore *hmmv_core_new(const HmmvTopology *topo, HmmvMover *mover, const HmmvParams *params,
                        guint64 pool_pages, GError **error);
void hmmv_core_free(HmmvCore *core);

/* Takes ownership of vm and tracker. The VM's layout must be finalized. Starts the tracker;
 * the intervals read the current placement of its pages (HMMV_CORE_ADD_SLICE_PAGES). Adding
 * and removing fail with HMMV_ERROR_BUSY while an interval runs. */
gboolean hmmv_core_add_vm(HmmvCore *core, HmmvVm *vm, HmmvTracker *tracker, GError **error);
gboolean hmmv_core_remove_vm(HmmvCore *core, const char *name, GError **error);
HmmvVm *hmmv_core_lookup_vm(HmmvCore *core, const char *name);
guint hmmv_core_get_nr_vms(const HmmvCore *core);
HmmvVm *hmmv_core_get_vm(HmmvCore *core, guint index);

/* Paused VMs keep their tracking and temperatures but nothing moves. From the next interval
 * on; safe while one runs. */
gboolean hmmv_core_set_paused(HmmvCore *core, const char *name, gboolean paused,
                              GError **error);
/* A VM whose QEMU stopped answering (a missed QMP deadline: SIGSTOP, a stalled main loop, a
 * host at load 20-30) is frozen rather than removed: it stays in the core with its last
 * placement, outside the balance holding the DRAM it has (its nodes' pools and the pool
 * usage count it as held, as a paused VM's), and nothing of it is tracked, planned or moved:
 * its tracker is not called at all (no harvest, no watch), since its guest does not run
 * either. Thawed, it is harvested again with the same tracker (its first harvest takes what
 * QEMU published meanwhile) and its placement is re-read from the kernel from the first
 * page, as for a VM just added (HMMV_CORE_ADD_SLICE_PAGES an interval; until read it keeps
 * what it holds): pages may have moved while it was frozen. Removing a frozen VM is
 * hmmv_core_remove_vm, as for any. From the next interval on; safe while one runs. */
gboolean hmmv_core_set_frozen(HmmvCore *core, const char *name, gboolean frozen,
                              GError **error);
/* A VM about to leave the core while its QEMU lives on (standalone hmmvd removes a VM whose
 * QMP connection broke, or that its interval found gone while its QEMU process lives, and
 * connects it again, up to 60 s later): its removal (now, or hmmvd's once the running
 * interval is done) leaves a hold of its pages per node, as last read, that stays counted as
 * a frozen VM's DRAM is (out of its nodes' pools, in their used pages and in the pool usage's
 * held_outside_pages). The hold is keyed by the VM's name and its QEMU's pid when it left
 * (hmmv_vm_get_pid); it ends when a VM of that name and pid is added again and its placement
 * read whole (meanwhile the hold counts what that read has not found yet), when that VM is
 * removed again without this mark, or at hmmv_core_release_dram(). Another VM of the same
 * name with another pid (a libvirt domain beside a standalone VM) neither ends nor absorbs
 * it. A pid <= 0 (unknown), on the hold or on the VM, falls back to the name alone.
 * Safe while an interval runs, as is the release. */
gboolean hmmv_core_hold_dram(HmmvCore *core, const char *name, GError **error);
/* That QEMU is gone (or will not be managed): the hold of name and pid ends, and a VM of
 * that name and pid still in the core (its removal deferred) is unmarked. pid <= 0: every
 * hold of the name, and the VM of the name. */
void hmmv_core_release_dram(HmmvCore *core, const char *name, int pid);
/* The DRAM pages the holds keep counted now (status, tests). */
guint64 hmmv_core_get_held_dram_pages(HmmvCore *core);
/* One hold, as hmmv_core_list_held_dram gives it. */
typedef struct {
  char *name;               /* the VM's */
  int pid;                  /* its QEMU's when it left the core, <= 0 unknown */
  guint64 dram_pages;       /* DRAM it keeps counted beyond what its VM (that name and QEMU)
                               counts itself (as of the last interval) */
  gboolean in_core;         /* its VM (that name and QEMU) is back in the core, its placement
                               still being read; else it is out, its QEMU being connected
                               again */
} HmmvHeldDram;
/* Every hold now, in the order they were made (a GArray of HmmvHeldDram, which frees their
 * names), one entry per hold: two QEMUs' holds under one name are two entries, each with its
 * pid and state; their dram_pages sum to hmmv_core_get_held_dram_pages(). usage, when not
 * NULL, is filled as by hmmv_core_get_pool_usage(core, NULL, NULL, usage) under the same
 * lock, so the holds are the part of its held_outside_pages they say they are. Safe while an
 * interval runs (status, metrics). */
GArray *hmmv_core_list_held_dram(HmmvCore *core, HmmvPoolUsage *usage);
/* The VM's quota from the next interval on (hmmv_vm_set_quota, but safe while an interval
 * runs; the pool usage sees it at once). */
gboolean hmmv_core_set_quota(HmmvCore *core, const char *name, const HmmvQuota *quota,
                             GError **error);
gboolean hmmv_core_set_params(HmmvCore *core, const HmmvParams *params, GError **error);
const HmmvParams *hmmv_core_get_params(const HmmvCore *core);
void hmmv_core_set_pool_pages(HmmvCore *core, guint64 pool_pages);
/* The pool now (the last computed: see hmmv_core_new). */
guint64 hmmv_core_get_pool_pages(const HmmvCore *core);
/* A node's pool: configured_pages (0 = what the host can give) and the free memory kept for
 * the host (reserve_pages; 0 by default). Any node of the topology, DRAM or slow. */
gboolean hmmv_core_set_node_pool(HmmvCore *core, int node_id, guint64 configured_pages,
                                 guint64 reserve_pages, GError **error);
/* Re-computes every node's capacity and the pool now (also done at each interval). */
void hmmv_core_update_pools(HmmvCore *core);
/* Every node of the topology, ascending id; returns how many (at most max). */
guint hmmv_core_get_node_pools(const HmmvCore *core, HmmvNodePool *out, guint max);
/* The pool now, as if VM name (when not NULL) had quota instead of its own. Mins above
 * pool_pages - held_outside_pages are scaled down in proportion at the next interval. */
void hmmv_core_get_pool_usage(HmmvCore *core, const char *name, const HmmvQuota *quota,
                              HmmvPoolUsage *usage);

/* Run one interval. Only fails for errors of the core itself (invalid quotas are reported in
 * balance_error and the last good budgets kept; mins that do not fit are scaled, with a
 * balance_note). */
gboolean hmmv_core_run_interval(HmmvCore *core, HmmvIntervalReport *report, GError **error);
/* The same interval on a worker thread (a GTask); callback runs in the caller's thread-default
 * main context, where _finish gives the result. The report is the interval's until then.
 * Cancelling stops before the next VM's moves (the plan's moves left are counted in
 * deferred_cap); the interval still finishes and reports. One at a time: starting a second
 * while one runs fails with HMMV_ERROR_BUSY at _finish. */
void hmmv_core_run_interval_async(HmmvCore *core, HmmvIntervalReport *report,
                                  GCancellable *cancellable, GAsyncReadyCallback callback,
                                  gpointer user_data);
gboolean hmmv_core_run_interval_finish(HmmvCore *core, GAsyncResult *result, GError **error);
/* TRUE from the start of an interval (either path) until its work is done. */
gboolean hmmv_core_is_running(const HmmvCore *core);

/* init before the first run_interval; the report is reused by every interval; clear frees. */
void hmmv_interval_report_init(HmmvIntervalReport *report);
void hmmv_interval_report_clear(HmmvIntervalReport *report);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(HmmvIntervalReport, hmmv_interval_report_clear)

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvCore, hmmv_core_free)

G_END_DECLS
