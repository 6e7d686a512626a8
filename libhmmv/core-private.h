/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The core's state, shared by the interval (loop.c), its table of VMs (loop-vms.c), what it
 * learns of where pages are (loop-place.c), its plans (loop-plan.c) and moves (loop-move.c),
 * its caps (loop-cap.c) and the worker that runs it off the caller's thread (loop-async.c).
 *
 * Threads: an interval runs on one thread at a time (the caller's, or a worker's through
 * hmmv_core_run_interval_async); its decisions stay single-threaded and deterministic. While
 * one runs, other threads may only use the calls core.h marks as safe then (pause, quota,
 * pool usage, is_running): they meet the interval under `lock`, through the control fields
 * below, never through the VMs' page state.
 */
#pragma once

#include <hmmv/core.h>

#include "nodes-private.h"

/* A VM's pages away from their home node of a tier, as the last full scan found them
 * (loop-home.c): later intervals look at these, not at all the VM's pages. */
typedef struct {
  GArray *pages;            /* guint64: a page, or a huge unit's first page; NULL: no scan yet */
  int home;                 /* the home node the scan was for */
  gboolean capped;          /* the scan kept only the hottest HMMV_CORE_AWAY_LIST_MAX pages */
  guint64 built;            /* the interval index of the scan */
} HmmvAwayList;

/* At most this many entries (pages, or huge units) listed per VM and tier (512 KiB of list):
 * a VM with more away has its hottest listed, rescanned every HMMV_CORE_AWAY_RESCAN intervals or when none
 * of those can move. */
#define HMMV_CORE_AWAY_LIST_MAX 65536u
#define HMMV_CORE_AWAY_RESCAN 32u

/* One interval's calls move the learnt speed at most this factor either way (loop-batch.c). */
#define HMMV_CORE_SPEED_STEP 4u
/* A node the kernel found full is left alone for at most this many intervals (loop-batch.c). */
#define HMMV_CORE_FULL_BACKOFF_MAX 16u

/* Whether the VM's pages can be ranked (loop-rank.c; core.h, HMMV_RANK_FLAT_*). */
typedef struct {
  gboolean sampled;         /* this interval's harvest was one interval: accessed, warm hold */
  guint64 accessed;         /* pages accessed in the last sampled interval */
  guint64 warm;             /* pages with a temperature above 0 after it */
  gboolean reads;           /* accessed counts reads (the tracker sees them), not only writes */
  guint16 history;          /* bit a: the sampled interval a intervals back was flat */
  guint8 percent[HMMV_RANK_FLAT_WINDOW]; /* accessed x 100 / warm of each, a ring */
  guint64 ring_accessed[HMMV_RANK_FLAT_WINDOW]; /* and its accessed, warm and budget, so that */
  guint64 ring_warm[HMMV_RANK_FLAT_WINDOW];     /* what is shown covers the same intervals as */
  guint64 ring_budget[HMMV_RANK_FLAT_WINDOW];   /* the verdict (review 18, F3) */
  guint head;               /* the newest slot of the rings */
  guint seen;               /* sampled intervals, at most HMMV_RANK_FLAT_WINDOW */
  gboolean flat;
} HmmvRankFlat;

typedef struct {
  HmmvVm *vm;
  HmmvTracker *tracker;
  HmmvAccess *acc;
  HmmvHistogram hist;
  HmmvPlan plan;
  gboolean paused;          /* the interval's copy of ctl_paused */
  gboolean frozen;          /* the interval's copy of ctl_frozen (hmmv_core_set_frozen) */
  guint64 rescan_next;      /* first page of the next placement refresh window */
  guint rescan_gap;         /* intervals between its refresh windows: 1 up to
                               HMMV_CORE_RESCAN_GAP_MAX, doubled by a window with no drift */
  guint64 rescan_due;       /* interval index of its next refresh window */
  guint64 place_next;       /* first page whose placement the core has not read since the VM
                               was added (nr_pages: all read); see HMMV_CORE_ADD_SLICE_PAGES */
  guint64 place_thp_next;   /* first THP block not read with it */
  guint64 thp_next;         /* first block of the next THP state refresh window */
  guint64 first_seen;       /* vm->first_seen at the last balance */
  gboolean outside;         /* left out of the last balance (paused, frozen, unmanaged or
                               failing) */
  const char *left_alone;   /* this interval: why its allowed nodes leave nothing to move
                               between (hmmv_nodes_left_alone), else NULL */
  guint64 min_granted;      /* its min in the last balance (scaled when the mins did not fit) */
  HmmvNodeRequest promote_to; /* DRAM nodes nearest its vCPUs first (nodes.c) */
  HmmvNodeRequest demote_to;  /* slow nodes nearest its first DRAM node first */
  guint64 cap_tokens;       /* its migration cap's bucket, 4 KiB pages (loop-cap.c) */
  guint64 host_saved;       /* the host cap's share saved for it: its unit did not fit */
  HmmvAwayList away[2];     /* its pages away from home, DRAM tier [0], slow [1] (loop-home.c) */
  guint settled_run;        /* intervals in a row it was settled (loop-watch.c) */
  HmmvRankFlat rank;        /* whether its pages can be ranked (loop-rank.c) */
  gboolean plan_empty;      /* its last plan listed no move (loop-plan.c, core_plan_unchanged) */
  guint64 plan_budget;      /* the budget its last plan was built for */
  guint64 plan_hot_pages;   /* and that plan's hot pages */
  guint64 swap_room[HMMV_NR_NODE_SLOTS]; /* pages its moves freed on node n while the kernel
                               found n full, not refilled by its moves since (loop-batch.c) */

  /* Under HmmvCore.lock: what other threads set and see while an interval runs. */
  gboolean ctl_paused;
  gboolean ctl_frozen;
  gboolean ctl_quota_set;   /* ctl_quota waits for the next interval */
  gboolean ctl_hold;        /* its removal leaves its DRAM held (hmmv_core_hold_dram) */
  HmmvQuota ctl_quota;
  gboolean seen_outside;    /* outside, at the end of the last interval */
  guint64 seen_dram_pages;  /* the VM's DRAM pages at the end of the last interval */
} CoreVm;

struct _HmmvCore {
  const HmmvTopology *topo;
  HmmvMover *mover;
  HmmvParams params;
  HmmvTempTables tables;
  guint64 pool_pages;       /* this interval's: the DRAM nodes' capacities, at most pool_limit */
  guint64 pool_limit;       /* set by the caller; 0 = none */
  HmmvNodeState nodes[HMMV_NR_NODE_SLOTS];
  GPtrArray *vms;           /* CoreVm; changed only while no interval runs */
  guint64 interval_index;
  GArray *scratch_pages;    /* guint64, reused for queries */
  guint64 headroom_pages;   /* DRAM kept free for first touches (see core_headroom) */
  guint64 host_cap_tokens;  /* the host-wide cap's bucket, 4 KiB pages (loop-cap.c) */
  guint64 mover_ns_per_page_x16; /* the mover's learnt speed, ns a 4 KiB page x 16; 0 = not
                               measured yet (loop-batch.c) */
  guint64 batch_limit_pages; /* this interval's moves at the learnt speed (G_MAXUINT64: none) */
  guint64 moved_ns;         /* this interval: the mover's clock over the move calls */
  guint64 moved_pages;      /* and the 4 KiB pages those calls were given */
  guint64 learn_ns;         /* this interval: the mover's clock over the calls that moved */
  guint64 learn_pages;      /* and the 4 KiB pages those calls moved (what the speed learns) */
  guint64 full_until[HMMV_NR_NODE_SLOTS];  /* the node was full (ENOMEM): no calls into it
                               through this interval index (loop-batch.c) */
  guint full_backoff[HMMV_NR_NODE_SLOTS];  /* intervals of the last such pause, 0: none */
  gboolean swap_refused[HMMV_NR_NODE_SLOTS]; /* in this pause calls into the room the VMs'
                               moves freed there moved nothing (ENOMEM): no swaps into it */
  gboolean swap_taken[HMMV_NR_NODE_SLOTS];   /* in this pause such a call moved pages */
  guint64 home_visits;      /* pages loop-home.c has looked at, since the core started: its
                               cost, counted (tests) */
  GMutex lock;              /* the ctl_ and seen_ fields of every CoreVm, and these: */
  guint64 pool_seen;        /* pool_pages as last published */
  HmmvNodePool pools_seen[HMMV_NR_NODE_SLOTS];
  guint nr_pools_seen;
  GPtrArray *holds;         /* DRAM kept counted for VMs removed while their QEMU lives
                               (loop-hold.c) */
  gint running;             /* atomic: an interval runs (on whichever thread) */
  GCancellable *cancellable; /* of the running interval, NULL when none: moves stop early */
};

/* loop-vms.c: a frozen VM thawed (ctl_frozen cleared), at the start of an interval: its
 * placement is read again from the first page, and its plan, away lists, rescan and watch
 * state start over (core.h, hmmv_core_set_frozen). */
void hmmv_core_thaw(HmmvCore *core, CoreVm *cvm);

/* loop-hold.c: the DRAM of VMs removed with hmmv_core_hold_dram, kept counted. init/clear
 * with the core; on_remove from hmmv_core_remove_vm; settle at an interval's start (a hold
 * ends once its VM is back with its placement read); count: per node (added to node_pages),
 * what the holds keep beyond their VMs' own pages, returning the DRAM part (interval thread or
 * idle); dram_locked: the DRAM part from what the last interval left (under the lock). */
void hmmv_core_holds_init(HmmvCore *core);
void hmmv_core_holds_clear(HmmvCore *core);
void hmmv_core_holds_on_remove(HmmvCore *core, CoreVm *cvm);
void hmmv_core_holds_settle(HmmvCore *core);
guint64 hmmv_core_holds_count(HmmvCore *core, guint64 *node_pages);
guint64 hmmv_core_holds_dram_locked(HmmvCore *core);
/* loop.c: hmmv_core_get_pool_usage's body, under the lock (also for list_held_dram). */
void hmmv_core_pool_usage_locked(HmmvCore *core, const char *name, const HmmvQuota *quota,
                                 HmmvPoolUsage *usage);

/* The body of an interval, on the calling thread; the caller set running (and cancellable). */
gboolean hmmv_core_run_locked(HmmvCore *core, HmmvIntervalReport *report, GError **error);

/* Shares the host-wide cap (params.host_migrate_mbps) among the VMs' plans: max-min fair
 * over what each plan wants; what a VM is not granted is cut from its lists and counted in its
 * report's deferred_cap (loop-cap.c). */
void hmmv_core_share_host_cap(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report);

/* The per-VM cap this interval's plan may use: the VM's bucket refilled by one interval's cap
 * (loop-cap.c says why a bucket, and how deep). */
guint64 hmmv_core_vm_cap_pages(HmmvCore *core, CoreVm *cvm);
/* After the moves: what each VM's plan sent to the mover is taken from its bucket and the
 * host's. */
void hmmv_core_spend_caps(HmmvCore *core, const HmmvIntervalReport *report);

/* loop-balance.c: every VM's budget for this interval. VMs that do not take part (unmanaged,
 * paused, left alone, failing, placement still being read) keep the DRAM they hold, out of
 * their nodes' pools; the others share the pools per DRAM node (hmmv_balance_nodes). Mins
 * that do not fit are scaled (*note says how, naming each VM). FALSE: invalid quotas, the
 * last budgets kept. */
gboolean hmmv_core_balance(HmmvCore *core, const gboolean *ok, char **note, GError **error);

/* grant[i] <= want[i], sum(grant) = min(cap, sum(want)), max-min fair (loop-cap.c). */
void hmmv_core_water_fill(const guint64 *want, guint64 *grant, guint n, guint64 cap);

/* loop-home.c: after the interval's demotions and promotions, before the caps are spent: pages
 * away from their VM's home node of their tier move home, within the room above the home
 * node's margin and what the caps left; fills every VM's homed_ and away_ figures. A VM
 * whose move fails gets the error and ok[i] FALSE. */
void hmmv_core_bring_home(HmmvCore *core, gboolean *ok, HmmvIntervalReport *report);

/* loop-batch.c: after the caps, cuts the VMs' plans so that their moves, at the mover's learnt
 * speed, finish within params.move_share_percent of the interval: shared max-min fairly among
 * the VMs, and within a VM promotions hottest first, each with the demotions that make its
 * room, before demotions nothing waits for. */
void hmmv_core_fit_batch(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report);
/* loop-batch.c: moves each VM's demotions beyond those that make room for its own
 * promotions (the coldest first, as fit_batch keeps them) to its entry of later (GArray of
 * guint64 per VM, emptied first): they run after the promotions. */
void hmmv_core_split_demotions(HmmvCore *core, const gboolean *ok, GPtrArray *later);
/* loop-batch.c: one move call took ns on the mover's clock; it was given pages 4 KiB pages
 * and moved `moved` of them. */
void hmmv_core_time_move(HmmvCore *core, guint64 ns, guint64 pages, guint64 moved);
/* loop-batch.c: moves entries[0, count) to dest_node in the mover's batches, timed, until the
 * interval's moves have used their time: *done gets the entries handed to the mover (the
 * rest wait), *moved the pages that reached dest_node. FALSE as hmmv_mover_move. */
gboolean hmmv_core_move_timed(HmmvCore *core, HmmvVm *vm, const guint64 *entries, guint64 count,
                              int dest_node, guint64 *moved, guint64 *done, GError **error);
/* loop-batch.c: whether the kernel found the node full lately (a whole call failed with
 * ENOMEM): moves into it wait, promotions go to the next node of the tier. */
gboolean hmmv_core_node_full(const HmmvCore *core, int node);
/* loop-batch.c: whether every DRAM node the VM promotes to is found full: it has no room to
 * grow into now, whatever its budget and the nodes' free counts say, so each promotion needs
 * a demotion of its own first (a swap). */
gboolean hmmv_core_dram_full_for(const HmmvCore *core, const CoreVm *cvm);
/* loop-batch.c: while hmmv_core_dram_full_for, the room on those nodes the VM's own moves
 * freed and it may take back without demoting again (0 otherwise). */
guint64 hmmv_core_swap_room(const HmmvCore *core, const CoreVm *cvm);
/* loop-batch.c: the room every VM's moves freed on a node found full, not refilled since. */
guint64 hmmv_core_node_swap_room(const HmmvCore *core, int node);
/* loop-batch.c: whether every DRAM node the VM promotes to is found full and refused even the
 * room its moves freed there in this pause (another process takes it back at once): swaps
 * would only demote, so its plan keeps no promotion and only the demotions its budget
 * needs. */
gboolean hmmv_core_swaps_refused(const HmmvCore *core, const CoreVm *cvm);
/* loop-watch.c: a VM settled this long in a row (every hot page that pays on DRAM, room to
 * spare, nothing waiting) has its tracker told HMMV_WATCH_COARSE; room to spare is at least
 * 1/HMMV_WATCH_ROOM_DIVISOR of its hot set and HMMV_WATCH_ROOM_MIN_PAGES. */
#define HMMV_WATCH_SETTLE_INTERVALS 8u
#define HMMV_WATCH_ROOM_DIVISOR 8u
#define HMMV_WATCH_ROOM_MIN_PAGES 512u
/* loop-watch.c: at the end of the interval, each VM's watch (rep->watch), told to its
 * tracker. */
void hmmv_core_watch(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report);

/* loop-rank.c: after the temperature update, before huge units are aggregated: what this
 * harvest says of whether the VM's pages can be ranked (only a harvest of one interval). */
void hmmv_core_rank_sample(CoreVm *cvm, const HmmvAccess *acc, const HmmvHistogram *hist);
/* loop-rank.c: at the end of the interval, with the budgets known: each VM's rank_ figures. */
void hmmv_core_rank_flat(HmmvCore *core, HmmvIntervalReport *report);

/* loop-batch.c: after the moves, the interval's calls update the learnt speed. */
void hmmv_core_learn_speed(HmmvCore *core);

/* loop-place.c: the placement of a VM the core just took, HMMV_CORE_ADD_SLICE_PAGES an
 * interval, before the mover sees this interval's touches (not counted as first touches). */
gboolean hmmv_core_read_placement(HmmvCore *core, CoreVm *cvm, GError **error);
/* loop-place.c: after the harvest, the placement of pages first touched while unknown, a
 * rolling rescan window, and a rolling window of THP state. */
gboolean hmmv_core_refresh_placement(HmmvCore *core, CoreVm *cvm, HmmvVmReport *rep,
                                     GError **error);
/* loop-place.c: just before a move, drops the entries of `pages` whose unit changed since the
 * plan (a THP formed or split); they wait for the next plan. */
gboolean hmmv_core_fresh_units(HmmvCore *core, HmmvVm *vm, GArray *pages, GError **error);
