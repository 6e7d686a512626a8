/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The sysfs parsers of topology.c, exposed for the unit tests. */
#pragma once

#include <hmmv/topology.h>

typedef struct {
  guint first;
  guint last;               /* inclusive */
} HmmvIdRange;

/* Parse a kernel id list ("0-3,8,10-11", "" for none, trailing newline allowed) into ranges
 * appended to an array of HmmvIdRange. Ranges must ascend and not overlap, ids <= max_id. */
gboolean hmmv_topology_parse_list(const char *text, guint max_id, GArray *ranges,
                                  GError **error);

/* MemTotal and MemFree of a nodeN/meminfo text ("Node 0 MemTotal:  24567890 kB"). */
gboolean hmmv_topology_parse_meminfo(const char *text, guint node_id, guint64 *total_bytes,
                                     guint64 *free_bytes, GError **error);

typedef struct {
  HmmvNode node;
  char *why;                /* one phrase: why the node is in its tier */
  GArray *cpus;             /* HmmvIdRange of its CPUs; NULL when added by the caller */
  guint32 hmat_initiators;  /* HMAT (access0): bit i = node i is one of its nearest
                               initiators; 0 when the firmware gives no HMAT */
  guint hmat_read_latency_ns; /* from those initiators; 0 when unknown */
} NodeEntry;

struct _HmmvTopology {
  GArray *nodes;            /* NodeEntry, ascending id */
  GPtrArray *notes;         /* char *: nodes seen but not used, and why */
  /* SLIT distances (nodeN/distance) between nodes 0..HMMV_MAX_NODE_ID, 0 = unknown */
  guint8 distance[HMMV_MAX_NODE_ID + 1][HMMV_MAX_NODE_ID + 1];
  gboolean from_host;       /* discovered: refresh_free() re-reads the nodes' free memory */
  char *sysfs_root;         /* NULL: the real host, through libnuma */
  GArray *free_files;       /* int: each node's nodeN/meminfo, open for refresh_free()
                               (topology-free.c), in the order of nodes; NULL until then */
  guint64 free_opens;       /* those files opened, and read, by refresh_free(): counted for */
  guint64 free_reads;       /* the tests (one open a node, one read a node and refresh) */
};

/* Closes the files refresh_free() keeps open (topology-free.c); hmmv_topology_free does. */
void hmmv_topology_close_free_files(HmmvTopology *topo);
NodeEntry *hmmv_topology_entry_at(const HmmvTopology *topo, guint index);
NodeEntry *hmmv_topology_lookup_entry(const HmmvTopology *topo, int node_id);
/* A whole sysfs attribute (bounded; errors name the file). */
char *hmmv_topology_read_sysfs(const char *path, GError **error);
/* Distances (nodeN/distance, one column per node of `ids`, the online list) and HMAT access
 * attributes (nodeN/access0/initiators/) of the nodes in topo (topology-distance.c). A node
 * without them keeps the defaults; only a malformed file is an error. */
gboolean hmmv_topology_read_distances(HmmvTopology *topo, const char *node_dir,
                                      const GArray *ids, GError **error);
