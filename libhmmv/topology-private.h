/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The sysfs and /proc/zoneinfo parsers of topology.c and topology-zoneinfo.c, exposed for the
 * unit tests. */
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

/* One node of /proc/zoneinfo (topology-zoneinfo.c), in pages. */
typedef struct {
  guint64 free_pages;       /* "pages free", summed over its zones (= its MemFree) */
  guint64 usable_pages;     /* what a page migration to the node can take: per zone,
                               max(0, free - min - protection[Movable]) (topology-free.c) */
  guint64 kept_pages;       /* the rest of free_pages, which the kernel keeps back */
  guint nr_zones;
  gboolean complete;        /* all its zones read; the other fields are 0 until then */
} HmmvZoneinfoNode;

/* Parses /proc/zoneinfo text (len bytes, not NUL-terminated) into nodes[id] for every node
 * id 0..HMMV_MAX_NODE_ID it lists (higher ids are checked and skipped). whole: the text is
 * the whole file, and every node in it must be complete; otherwise it may stop anywhere
 * (a read so far) and a node cut short is left !complete. FALSE with a CORRUPT error naming
 * the line or the node for anything else the kernel does not print. */
gboolean hmmv_zoneinfo_parse(const char *text, gsize len, gboolean whole,
                             HmmvZoneinfoNode nodes[HMMV_MAX_NODE_ID + 1], GError **error);

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
  char *sysfs_root;         /* NULL: the real host, through libnuma; a fake root's
                               proc/zoneinfo stands for /proc/zoneinfo */
  gboolean zoneinfo_open;   /* zoneinfo_fd is /proc/zoneinfo, open for refresh_free() */
  int zoneinfo_fd;          /* (topology-free.c) from its first call on */
  char *zoneinfo_buf;       /* its text, grown as needed up to a bound */
  gsize zoneinfo_size;
  guint64 free_opens;       /* zoneinfo opened, and read, by refresh_free(): counted for */
  guint64 free_reads;       /* the tests and the cost figure */
};

/* Closes the file refresh_free() keeps open (topology-free.c); hmmv_topology_free does. */
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
