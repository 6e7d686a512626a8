/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How near the nodes are to each other, and which node a CPU belongs to: what decides where a
 * VM's pages go on a host with several sockets.
 *
 * Two sources, both from firmware through sysfs:
 *   - SLIT distances, nodeN/distance: one number per online node, 10 = local. A two-socket
 *     Optane host prints e.g. 10 21 17 28 for socket 0's DRAM (its own DRAM, the other DRAM,
 *     its own Optane, the other Optane): relative, and coarse.
 *   - HMAT access attributes, nodeN/access0/initiators/ (Linux 5.2+): for a memory node, the
 *     initiator nodes nearest to it (symlinks nodeX) and its read latency from them in ns.
 *     These name a CPU-less node's own socket outright, so they rank first where present.
 * Ranking: initiator per HMAT, then distance, then HMAT latency, then node id (a host with
 * neither, e.g. a one-socket box, keeps today's lowest-id-first order).
 */
#include "topology-private.h"

#include <hmmv/error.h>
#include <string.h>

/* What the kernel's node_distance() prints when firmware gives no SLIT. */
#define LOCAL_DISTANCE 10u
#define REMOTE_DISTANCE 20u
/* ACPI SLIT: 10 is local, 255 unreachable; 0..9 are reserved. */
#define MAX_DISTANCE 254u
/* An HMAT latency above 1 s is not memory. */
#define MAX_LATENCY_NS 1000000000u

static gboolean
node_ok(const HmmvTopology *topo, int id)
{
  return id >= 0 && id <= HMMV_MAX_NODE_ID && hmmv_topology_lookup_entry(topo, id) != NULL;
}

guint
hmmv_topology_get_distance(const HmmvTopology *topo, int from, int to)
{
  if (from >= 0 && from <= HMMV_MAX_NODE_ID && to >= 0 && to <= HMMV_MAX_NODE_ID &&
      topo->distance[from][to] != 0)
    return topo->distance[from][to];
  return from == to ? LOCAL_DISTANCE : REMOTE_DISTANCE;
}

gboolean
hmmv_topology_set_distance(HmmvTopology *topo, int from, int to, guint distance,
                           GError **error)
{
  if (!node_ok(topo, from) || !node_ok(topo, to) || distance < LOCAL_DISTANCE ||
      distance > MAX_DISTANCE) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "distance %u from node %d to node %d: both nodes must be in the topology and "
                "the distance %u..%u", distance, from, to, LOCAL_DISTANCE, MAX_DISTANCE);
    return FALSE;
  }
  topo->distance[from][to] = (guint8)distance;
  return TRUE;
}

gboolean
hmmv_topology_set_hmat(HmmvTopology *topo, int target, guint32 initiators,
                       guint read_latency_ns, GError **error)
{
  NodeEntry *entry = hmmv_topology_lookup_entry(topo, target);

  if (entry == NULL || read_latency_ns > MAX_LATENCY_NS) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "HMAT of node %d: not in the topology, or latency %u ns above 1 s", target,
                read_latency_ns);
    return FALSE;
  }
  entry->hmat_initiators = initiators;
  entry->hmat_read_latency_ns = read_latency_ns;
  return TRUE;
}

typedef struct {
  int id;
  guint local;        /* 0: `from` is one of its HMAT initiators */
  guint distance;
  guint latency;
} Ranked;

static int
compare_ranked(gconstpointer pa, gconstpointer pb)
{
  const Ranked *a = pa, *b = pb;

  if (a->local != b->local)
    return a->local < b->local ? -1 : 1;
  if (a->distance != b->distance)
    return a->distance < b->distance ? -1 : 1;
  if (a->latency != b->latency)
    return a->latency < b->latency ? -1 : 1;
  return (a->id > b->id) - (a->id < b->id);
}

guint
hmmv_topology_rank(const HmmvTopology *topo, int from, HmmvTier tier, int *out, guint max)
{
  Ranked ranked[HMMV_MAX_NODE_ID + 1];
  guint n = 0;

  for (guint i = 0; i < topo->nodes->len && n < G_N_ELEMENTS(ranked); i++) {
    const NodeEntry *entry = hmmv_topology_entry_at(topo, i);

    if (entry->node.tier != tier)
      continue;
    ranked[n++] = (Ranked){
      .id = entry->node.id,
      .local = !(from >= 0 && from <= HMMV_MAX_NODE_ID &&
                 (entry->hmat_initiators & (1u << from)) != 0),
      .distance = hmmv_topology_get_distance(topo, from, entry->node.id),
      .latency = entry->hmat_read_latency_ns != 0 ? entry->hmat_read_latency_ns : G_MAXUINT,
    };
  }
  qsort(ranked, n, sizeof(Ranked), compare_ranked);
  for (guint i = 0; i < MIN(n, max); i++)
    out[i] = ranked[i].id;
  return MIN(n, max);
}

gboolean
hmmv_topology_set_cpus(HmmvTopology *topo, int node_id, const char *cpulist, GError **error)
{
  NodeEntry *entry = hmmv_topology_lookup_entry(topo, node_id);
  g_autoptr(GArray) cpus = g_array_new(FALSE, FALSE, sizeof(HmmvIdRange));
  guint count = 0;

  if (entry == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "node %d: not in the topology",
                node_id);
    return FALSE;
  }
  if (!hmmv_topology_parse_list(cpulist, G_MAXUINT16, cpus, error))
    return FALSE;
  for (guint i = 0; i < cpus->len; i++)
    count += g_array_index(cpus, HmmvIdRange, i).last - g_array_index(cpus, HmmvIdRange, i).first
             + 1;
  g_clear_pointer(&entry->cpus, g_array_unref);
  entry->cpus = g_steal_pointer(&cpus);
  entry->node.nr_cpus = count;
  g_free(entry->node.cpulist);
  entry->node.cpulist = g_strstrip(g_strdup(cpulist));
  return TRUE;
}

int
hmmv_topology_cpu_node(const HmmvTopology *topo, guint cpu)
{
  for (guint i = 0; i < topo->nodes->len; i++) {
    const NodeEntry *entry = hmmv_topology_entry_at(topo, i);

    for (guint r = 0; entry->cpus != NULL && r < entry->cpus->len; r++) {
      const HmmvIdRange *range = &g_array_index(entry->cpus, HmmvIdRange, r);

      if (cpu >= range->first && cpu <= range->last)
        return entry->node.id;
    }
  }
  return -1;
}

/* ---- discovery ---------------------------------------------------------------------------- */

/* nodeN/distance: one column per online node, in the order of ids. */
static gboolean
read_distance_row(HmmvTopology *topo, const char *node_dir, int id, const GArray *ids,
                  GError **error)
{
  g_autofree char *path = g_strdup_printf("%s/node%d/distance", node_dir, id);
  g_autofree char *text = NULL;
  g_auto(GStrv) words = NULL;
  guint column = 0;

  if (!g_file_test(path, G_FILE_TEST_EXISTS))
    return TRUE;      /* defaults: local 10, remote 20 */
  text = hmmv_topology_read_sysfs(path, error);
  if (text == NULL)
    return FALSE;
  words = g_strsplit_set(g_strstrip(text), " \t", -1);
  for (guint w = 0; words[w] != NULL; w++) {
    guint64 value;
    guint to;

    if (words[w][0] == '\0')
      continue;
    if (column >= ids->len || !g_ascii_isdigit(words[w][0]) ||
        !g_ascii_string_to_unsigned(words[w], 10, 0, 255, &value, NULL))
      goto bad;
    to = g_array_index(ids, guint, column++);
    if (to <= HMMV_MAX_NODE_ID && value >= LOCAL_DISTANCE && value <= MAX_DISTANCE)
      topo->distance[id][to] = (guint8)value;
  }
  if (column == ids->len)
    return TRUE;
bad:
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
              "%s: \"%s\" is not one distance 0..255 per online node (%u nodes)", path, text,
              ids->len);
  return FALSE;
}

/* nodeN/access0/initiators/: symlinks nodeX and read_latency (ns). */
static gboolean
read_hmat(NodeEntry *entry, const char *node_dir, GError **error)
{
  g_autofree char *dir_path = g_strdup_printf("%s/node%d/access0/initiators", node_dir,
                                              entry->node.id);
  g_autofree char *latency_path = g_build_filename(dir_path, "read_latency", NULL);
  g_autoptr(GDir) dir = g_dir_open(dir_path, 0, NULL);
  const char *name;
  guint32 initiators = 0;
  guint64 latency = 0;

  if (dir == NULL)
    return TRUE;      /* no HMAT for this node */
  while ((name = g_dir_read_name(dir)) != NULL) {
    guint64 id;

    if (g_str_has_prefix(name, "node") && g_ascii_isdigit(name[4]) &&
        g_ascii_string_to_unsigned(name + 4, 10, 0, 1023, &id, NULL) && id <= HMMV_MAX_NODE_ID)
      initiators |= 1u << id;
  }
  if (g_file_test(latency_path, G_FILE_TEST_EXISTS)) {
    g_autofree char *text = hmmv_topology_read_sysfs(latency_path, error);

    if (text == NULL)
      return FALSE;
    if (!g_ascii_string_to_unsigned(g_strstrip(text), 10, 0, MAX_LATENCY_NS, &latency,
                                    NULL)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                  "%s: \"%s\" is not a latency in ns (0..%u)", latency_path, text,
                  MAX_LATENCY_NS);
      return FALSE;
    }
  }
  entry->hmat_initiators = initiators;
  entry->hmat_read_latency_ns = (guint)latency;
  return TRUE;
}

gboolean
hmmv_topology_read_distances(HmmvTopology *topo, const char *node_dir, const GArray *ids,
                             GError **error)
{
  for (guint i = 0; i < topo->nodes->len; i++) {
    NodeEntry *entry = hmmv_topology_entry_at(topo, i);

    if (!read_distance_row(topo, node_dir, entry->node.id, ids, error) ||
        !read_hmat(entry, node_dir, error))
      return FALSE;
  }
  return TRUE;
}
