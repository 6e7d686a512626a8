/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: the tier model. A profile (configs/tier-profiles/NAME.conf, every figure with its
 * source there) and the runtime model that turns one interval's last-level-cache misses of
 * co-running VMs, split by the tier that served them, into each VM's time, with bandwidth
 * contention: all VMs share each tier's bandwidth, and a tier's latency grows with its
 * utilization (Colloid, SOSP'24: loaded DRAM latency can exceed the slow tier's).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Bytes of one 4 KiB page a migration copies: read on the source tier, written on the target. */
#define CORUN_PAGE_BYTES 4096.0

typedef struct {
  double read_ns;           /* idle latency of an LLC-missing load */
  double write_ns;          /* idle latency of an LLC-missing store (the read for ownership) */
  double read_gbps;         /* peak read bandwidth of the tier for the whole host, GB/s */
  double write_gbps;        /* peak write bandwidth, GB/s */
} CorunTier;

typedef struct {
  char *name;
  CorunTier dram;
  CorunTier slow;
  double line_bytes;        /* one LLC miss moves one line; a written line is written back */
  double mlp;               /* misses a vCPU keeps in flight: stall time = latency sum / mlp */
  double move_ns_per_page;  /* CPU time of one 4 KiB page migration, charged to its VM */
  double alpha;             /* loaded latency = idle x (1 + alpha x rho / (1 - rho)) */
  double rho_max;           /* utilization is capped here (a saturated tier queues, but the
                             * model has no feedback of queueing on demand) */
} CorunProfile;

/* What one VM asked of the memory in one interval, and where it was served. */
typedef struct {
  guint64 compute_ns;       /* the trace's non-memory time */
  guint64 dram_reads, dram_writes;   /* LLC misses served by DRAM */
  guint64 slow_reads, slow_writes;   /* LLC misses served by the slow tier */
  guint64 promoted, demoted;         /* 4 KiB pages migrated (charged to this VM) */
  /* traffic that is not the guest's misses (Memory Mode's DRAM-cache fills and dirty
   * evictions), bytes */
  double extra_dram_read_bytes, extra_dram_write_bytes;
  double extra_slow_read_bytes, extra_slow_write_bytes;
  guint64 fault_ns;         /* policy overhead charged to the VM (hint faults), ns */
} CorunDemand;

/* What the model found for one interval. */
typedef struct {
  double rho_dram, rho_slow;         /* utilization (after the cap) */
  double dram_read_ns, dram_write_ns, slow_read_ns, slow_write_ns; /* loaded latencies */
  double idle_interval_ns;           /* the longest VM's time at idle latencies */
} CorunModelStats;

CorunProfile *corun_profile_load(const char *path, GError **error);
/* The profile's file from its name (optane, cxl) in dir, or a path. */
CorunProfile *corun_profile_load_named(const char *dir, const char *name, GError **error);
gboolean corun_profile_validate(const CorunProfile *profile, GError **error);
void corun_profile_free(CorunProfile *profile);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(CorunProfile, corun_profile_free)

/* time_ns[v] = VM v's time in this interval, for nr_vms co-running VMs. */
void corun_model_interval(const CorunProfile *profile, const CorunDemand *demand, guint nr_vms,
                          double *time_ns, CorunModelStats *stats);

G_END_DECLS
