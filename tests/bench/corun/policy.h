/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: placement policies, each behind a small const vtable, all run side by side on
 * the same recorded traces. Each interval a policy gets every VM's accesses (LLC misses per
 * page), says which tier served each (the placement it had when the interval began, pages
 * touched for the first time placed as the kernel's first touch would), and decides the
 * placement for the next interval, counting the pages it moved.
 */
#pragma once

#include <glib.h>
#include <hmmv/trace.h>

#include "model.h"

G_BEGIN_DECLS

typedef struct {
  char *name;
  char *workload;
  char *trace_path;
  guint64 nr_pages;
  /* setup.json's quota, as virsh metadata gives hmmvd one (dram-min-mib, dram-max-mib,
   * weight): only the hmmv policies honour it; the baselines know nothing of quotas. */
  guint weight;
  guint64 dram_min_pages;
  guint64 dram_max_pages;   /* 0: no limit */
  /* setup.json's "halted": the guest halted where its trace ends (no instruction, no miss
   * after it): the replay idles the VM from there while the others run on */
  gboolean halted;
  /* setup.json's "start_slow": [first, count]: these pages are first touched on the slow
   * tier whatever DRAM holds (a starting placement like the testbed's, where move_pages put
   * a hot set on the slow node before the mechanism starts); count 0: none. Honoured by the
   * policies that place pages through placement.c's first touch. */
  guint64 start_slow_first;
  guint64 start_slow_pages;
} CorunVmInfo;

/* setup.json's "numa_balancing": the kernel state the numa-balancing policy starts from, for
 * replaying a testbed run (tests/bench/corun/nb-kernel-check.py); 0 = the policy's default. */
typedef struct {
  guint scan_period_ms;     /* each VM's NUMA scan period at the start (a new task: 1000) */
  guint64 high_wmark_pages; /* the DRAM node's high and promo watermarks (/proc/zoneinfo) */
  guint64 promo_wmark_pages;
  guint hint_fault_us;      /* what one hint fault costs the VM (default 1.5 us): the faults of
                             * a pass come one after the other, so a page's fault comes no
                             * sooner than the pass plus the faults before it (the testbed's
                             * nested TCG: ~1 ms) */
} CorunNumaBalancingState;

typedef struct {
  guint nr_vms;
  CorunVmInfo *vms;
  guint64 dram_pages;       /* the host's DRAM for all the VMs together */
  guint interval_ms;        /* nominal guest time of one interval */
  /* hmmv's core interval (replay --hmmv-interval-ms), a multiple of interval_ms: the core
   * harvests, decides and moves once every hmmv_interval_ms / interval_ms trace intervals,
   * as hmmvd does at its own interval; 0: every trace interval */
  guint hmmv_interval_ms;
  /* hmmv's payback gate (params.h's touch_saving_ns, move_cost_ns), set by the replay at the
   * core's interval (gate.h); 0: hmmvd's defaults */
  guint hmmv_touch_saving_ns;
  guint hmmv_move_cost_ns;
  /* replay --hmmv-weights misses: each VM's balance weight follows its LLC misses per page
   * its tracker saw (so far, online: a per-VM miss counter over the tracker's page count),
   * relative to all the VMs', times its setup.json weight; FALSE: the setup's weights */
  gboolean hmmv_miss_weights;
  const CorunProfile *profile;
  CorunNumaBalancingState nb;
} CorunSetup;

/* One VM's accesses in one interval. */
typedef struct {
  const HmmvTraceEntry *entries;   /* page ascending */
  gsize nr_entries;
  guint64 compute_ns;
} CorunAccesses;

typedef struct _CorunPolicy CorunPolicy;
struct _CorunPlacement;

struct corun_policy_ops {
  const char *name;
  /* optional: allocate priv from policy->setup */
  gboolean (*init)(CorunPolicy *policy, GError **error);
  /* required: serve now[v] of every VM into demand[v] (zeroed by the caller, compute_ns set),
   * then place for the next interval. Only the oracle may use now[] before it serves (it is
   * the one policy that knows an interval in advance). */
  gboolean (*interval)(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
                       CorunDemand *demand, GError **error);
  /* optional: DRAM pages each VM holds now (for the lending plot); vm_dram has nr_vms */
  void (*dram_pages)(CorunPolicy *policy, guint64 *vm_dram);
  /* optional: the policy's page placement (placement.c), for per-page figures such as how
   * much of each VM's start_slow range is on DRAM now */
  const struct _CorunPlacement *(*placement)(CorunPolicy *policy);
  /* optional */
  void (*destroy)(CorunPolicy *policy);
};

struct _CorunPolicy {
  const struct corun_policy_ops *ops;
  const CorunSetup *setup;  /* not owned, outlives the policy */
  gpointer priv;
};

extern const struct corun_policy_ops corun_policy_all_dram;
extern const struct corun_policy_ops corun_policy_first_touch;
extern const struct corun_policy_ops corun_policy_interleave;
extern const struct corun_policy_ops corun_policy_memory_mode;
extern const struct corun_policy_ops corun_policy_numa_balancing;
extern const struct corun_policy_ops corun_policy_damos;
extern const struct corun_policy_ops corun_policy_memtierd;
extern const struct corun_policy_ops corun_policy_memtis;
extern const struct corun_policy_ops corun_policy_oracle;
extern const struct corun_policy_ops corun_policy_hmmv_writes;
extern const struct corun_policy_ops corun_policy_hmmv_reads_writes;
extern const struct corun_policy_ops corun_policy_hmmv_ideal;

/* Every policy, in the order of the table; NULL-terminated. */
extern const struct corun_policy_ops *const corun_policies[];
const struct corun_policy_ops *corun_policy_lookup(const char *name);

CorunPolicy *corun_policy_new(const struct corun_policy_ops *ops, const CorunSetup *setup,
                              GError **error);
void corun_policy_free(CorunPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CorunPolicy, corun_policy_free)

/* ---- shared by the page-placement policies (placement.c) ---- */

#define CORUN_UNTOUCHED 0u
#define CORUN_DRAM 1u
#define CORUN_SLOW 2u

typedef struct _CorunPlacement {
  guint nr_vms;
  guint64 *nr_pages;
  guint8 **place;           /* CORUN_* per page of each VM */
  guint64 *vm_dram;         /* DRAM pages each VM holds */
  guint64 dram_capacity;    /* G_MAXUINT64: all-DRAM */
  guint64 dram_used;
  guint64 *slow_first, *slow_end;  /* each VM's start_slow range [first, end) */
} CorunPlacement;

CorunPlacement *corun_placement_new(const CorunSetup *setup, guint64 dram_capacity);
void corun_placement_free(CorunPlacement *pl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CorunPlacement, corun_placement_free)
/* The kernel's first touch: DRAM while it has room, else the slow tier. */
guint8 corun_placement_first_touch(CorunPlacement *pl, guint vm, guint64 page);
/* Count acc's misses by the tier holding each page (first-touching new pages) into d. */
void corun_placement_serve(CorunPlacement *pl, guint vm, const CorunAccesses *acc,
                           CorunDemand *d);
/* Move a touched page; FALSE (nothing changes) when it is already there, untouched, or DRAM
 * is full. Counts promoted/demoted into d. */
gboolean corun_placement_move(CorunPlacement *pl, guint vm, guint64 page, guint8 to,
                              CorunDemand *d);
guint64 corun_placement_dram_free(const CorunPlacement *pl);
void corun_placement_vm_dram(const CorunPlacement *pl, guint64 *vm_dram);
/* Pages of vm's start_slow range on DRAM now. */
guint64 corun_placement_start_slow_dram(const CorunPlacement *pl, guint vm);

/* qsort of an array's elements (none or one: nothing to do; qsort(NULL, 0) is undefined). */
void corun_sort(GArray *array, int (*compare)(const void *, const void *));

/* Pages a migration bandwidth cap of mbps (10^6 B/s) allows in one interval; G_MAXUINT64
 * for 0 (no cap). */
guint64 corun_cap_pages(guint mbps, guint interval_ms);

G_END_DECLS
