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
