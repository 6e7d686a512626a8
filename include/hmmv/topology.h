/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: host NUMA topology and memory tiers.
 *
 * A topology is a list of NUMA nodes, each with its memory, its CPUs and the tier hmmv treats
 * it as. hmmv_topology_new_from_host() reads the kernel's view (libnuma for sizes, sysfs for
 * CPU lists and /sys/devices/virtual/memory_tiering/ for memory tiers); CPU-less nodes and
 * nodes in a lower kernel memory tier count as slow, and the caller can override any node.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Kernel node ids hmmv can place pages on: 0 .. HMMV_MAX_NODE_ID. */
#define HMMV_MAX_NODE_ID 30   /* = HMMV_PLACE_MAX_NODE_ID: 5 bits of node slot per page */

typedef enum {
  HMMV_TIER_DRAM = 0,
  HMMV_TIER_SLOW = 1,
} HmmvTier;

typedef enum {
  HMMV_TIER_SOURCE_DEFAULT,     /* the only node, or a node with CPUs and no tier info */
  HMMV_TIER_SOURCE_CPULESS,     /* CPU-less node taken as slow */
  HMMV_TIER_SOURCE_KERNEL,      /* from the kernel's memory_tiering sysfs */
  HMMV_TIER_SOURCE_OVERRIDE,    /* set by configuration */
} HmmvTierSource;

typedef struct {
  int id;                  /* kernel node id */
  guint64 total_bytes;
  guint64 free_bytes;      /* MemFree at discovery; refresh_free: what a migration can take */
  guint nr_cpus;
  char *cpulist;           /* as the kernel prints it, e.g. "0-3"; "" when CPU-less */
  int kernel_tier;         /* N of memory_tierN, or -1 when the kernel has no tiers */
  HmmvTier tier;
  HmmvTierSource tier_source;
} HmmvNode;

typedef struct _HmmvTopology HmmvTopology;

/* sysfs_root: NULL for "/sys"; tests pass a directory that mimics it. With a non-NULL root,
 * node sizes come from nodeN/meminfo instead of libnuma, and refresh_free reads the root's
 * proc/zoneinfo for /proc/zoneinfo. */
HmmvTopology *hmmv_topology_new_from_host(const char *sysfs_root, GError **error);
HmmvTopology *hmmv_topology_new(void);
gboolean hmmv_topology_add_node(HmmvTopology *topo, int id, guint64 total_bytes, guint nr_cpus,
                                HmmvTier tier, GError **error);
void hmmv_topology_free(HmmvTopology *topo);

guint hmmv_topology_get_nr_nodes(const HmmvTopology *topo);
/* index 0 .. nr_nodes-1, in ascending node id order */
const HmmvNode *hmmv_topology_get_node(const HmmvTopology *topo, guint index);
const HmmvNode *hmmv_topology_lookup(const HmmvTopology *topo, int node_id);
gboolean hmmv_topology_set_tier(HmmvTopology *topo, int node_id, HmmvTier tier, GError **error);

gboolean hmmv_topology_is_single_node(const HmmvTopology *topo);
gboolean hmmv_topology_has_tier(const HmmvTopology *topo, HmmvTier tier);
guint64 hmmv_topology_tier_bytes(const HmmvTopology *topo, HmmvTier tier);
/* lowest node id of the tier, or -1 */
int hmmv_topology_first_node(const HmmvTopology *topo, HmmvTier tier);
/* ---- distances, CPUs and free memory (topology-distance.c) ----
 * Where a VM's pages go: promoted to the DRAM node nearest its vCPUs, demoted to the slow node
 * nearest that DRAM node, each falling back to the next in rank when full. */

/* SLIT distance between two nodes as nodeN/distance prints it (10 = local); when the kernel
 * gave none, 10 from a node to itself and 20 otherwise (its LOCAL/REMOTE_DISTANCE). */
guint hmmv_topology_get_distance(const HmmvTopology *topo, int from, int to);
/* 10..254, as ACPI SLIT allows; both nodes must be in the topology. */
gboolean hmmv_topology_set_distance(HmmvTopology *topo, int from, int to, guint distance,
                                    GError **error);
/* ACPI HMAT access attributes of a memory node (nodeN/access0/initiators/): its nearest
 * initiators (bit i = node i) and the read latency from them (0 = unknown). */
gboolean hmmv_topology_set_hmat(HmmvTopology *topo, int target, guint32 initiators,
                                guint read_latency_ns, GError **error);
/* The nodes of `tier`, nearest to node `from` first: a node whose HMAT initiators include
 * `from`, then by SLIT distance, then by HMAT read latency, then by id. `from` need not be in
 * the topology (a node with CPUs and no memory). Writes at most max ids; returns how many. */
guint hmmv_topology_rank(const HmmvTopology *topo, int from, HmmvTier tier, int *out,
                         guint max);
/* The CPUs of a node, as a kernel id list ("0-3,8"); for nodes added by the caller (tests,
 * the sim mover's modelled host). */
gboolean hmmv_topology_set_cpus(HmmvTopology *topo, int node_id, const char *cpulist,
                                GError **error);
/* The node whose CPU list holds cpu, or -1. */
int hmmv_topology_cpu_node(const HmmvTopology *topo, guint cpu);
/* Free memory: re-read for every node of a discovered topology, as what a page migration can
 * take there (not MemFree: /proc/zoneinfo's free pages above each zone's min watermark and
 * lowmem protection; libhmmv/topology-free.c; the file kept open from the first call: one read
 * a node at most), so the per-node pools follow what the host can give;
 * does nothing for a topology built by the caller, whose free memory set_free sets. */
gboolean hmmv_topology_refresh_free(HmmvTopology *topo, GError **error);
gboolean hmmv_topology_set_free(HmmvTopology *topo, int node_id, guint64 free_bytes,
                                GError **error);

/* A few human lines; says plainly when the host has a single node. */
char *hmmv_topology_describe(const HmmvTopology *topo);

const char *hmmv_tier_to_string(HmmvTier tier);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvTopology, hmmv_topology_free)

G_END_DECLS
