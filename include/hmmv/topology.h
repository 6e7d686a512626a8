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
  guint64 free_bytes;      /* at discovery time */
  guint nr_cpus;
  char *cpulist;           /* as the kernel prints it, e.g. "0-3"; "" when CPU-less */
  int kernel_tier;         /* N of memory_tierN, or -1 when the kernel has no tiers */
  HmmvTier tier;
  HmmvTierSource tier_source;
} HmmvNode;

typedef struct _HmmvTopology HmmvTopology;

/* sysfs_root: NULL for "/sys"; tests pass a directory that mimics it. With a non-NULL root,
 * node sizes come from nodeN/meminfo instead of libnuma. */
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
/* A few human lines; says plainly when the host has a single node. */
char *hmmv_topology_describe(const HmmvTopology *topo);

const char *hmmv_tier_to_string(HmmvTier tier);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvTopology, hmmv_topology_free)

G_END_DECLS
