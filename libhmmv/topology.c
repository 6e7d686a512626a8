/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host NUMA topology: which nodes hold memory, how big they are, and which tier each is.
 *
 * Discovery reads sysfs (node list, cpulist, meminfo, memory_tiering) under a root that tests
 * point at a fake tree; sizes come from libnuma on the real host. Tier rule, in order:
 *   1. the kernel's memory tiers, when they tell the nodes apart: the lowest memory_tierN
 *      holding one of our nodes is DRAM, every higher N is slow (N grows with abstract
 *      distance: DRAM sits in memory_tier4, Optane/CXL with HMAT data in e.g. memory_tier129);
 *   2. otherwise nodes with CPUs are DRAM and CPU-less nodes are slow (how KMEM-DAX Optane and
 *      CXL expanders appear when the kernel puts every node in one tier);
 *   3. a single node is DRAM.
 * Nodes above HMMV_PLACE_MAX_NODE_ID (the 5-bit node slot of vm.h) or without memory are not
 * added; describe() says so.
 */
#include "topology-private.h"

#include <hmmv/error.h>
#include <hmmv/vm.h>
#include <numa.h>
#include <string.h>

/* Node ids the kernel can print (MAX_NUMNODES is at most 1 << 10). */
#define TOPO_MAX_KERNEL_NODE 1023u
/* CPU ids: NR_CPUS is at most 8192 on x86-64; allow headroom for other arches. */
#define TOPO_MAX_CPU_ID 65535u
/* sysfs attributes fit in one 4 KiB page; anything much larger is not sysfs. */
#define TOPO_MAX_FILE_BYTES (64u * 1024u)

static void
node_entry_clear(gpointer data)
{
  NodeEntry *entry = data;

  g_free(entry->node.cpulist);
  g_free(entry->why);
  g_clear_pointer(&entry->cpus, g_array_unref);
}

HmmvTopology *
hmmv_topology_new(void)
{
  HmmvTopology *topo = g_new0(HmmvTopology, 1);

  topo->nodes = g_array_new(FALSE, TRUE, sizeof(NodeEntry));
  g_array_set_clear_func(topo->nodes, node_entry_clear);
  topo->notes = g_ptr_array_new_with_free_func(g_free);
  return topo;
}

void
hmmv_topology_free(HmmvTopology *topo)
{
  if (topo == NULL)
    return;
  hmmv_topology_close_free_files(topo);
  g_array_unref(topo->nodes);
  g_ptr_array_unref(topo->notes);
  g_free(topo->sysfs_root);
  g_free(topo);
}

#define entry_at hmmv_topology_entry_at
#define lookup_entry hmmv_topology_lookup_entry

NodeEntry *
hmmv_topology_entry_at(const HmmvTopology *topo, guint index)
{
  return &g_array_index(topo->nodes, NodeEntry, index);
}

NodeEntry *
hmmv_topology_lookup_entry(const HmmvTopology *topo, int node_id)
{
  for (guint i = 0; i < topo->nodes->len; i++) {
    if (entry_at(topo, i)->node.id == node_id)
      return entry_at(topo, i);
  }
  return NULL;
}

static gboolean
check_tier(HmmvTier tier, GError **error)
{
  if (tier != HMMV_TIER_DRAM && tier != HMMV_TIER_SLOW) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "unknown tier %d", (int)tier);
    return FALSE;
  }
  return TRUE;
}

static gboolean
check_new_node(const HmmvTopology *topo, int id, guint64 total_bytes, GError **error)
{
  if (id < 0 || id > HMMV_PLACE_MAX_NODE_ID || id > HMMV_MAX_NODE_ID) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "node %d: hmmv records a page's node in 5 bits, so only node ids 0..%d can "
                "hold guest pages", id, MIN(HMMV_PLACE_MAX_NODE_ID, HMMV_MAX_NODE_ID));
    return FALSE;
  }
  if (total_bytes == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "node %d: has no memory", id);
    return FALSE;
  }
  if (lookup_entry(topo, id) != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "node %d: already in the topology", id);
    return FALSE;
  }
  return TRUE;
}

/* Takes ownership of node->cpulist, why and cpus (NULL: none). Keeps the array sorted by
 * id. */
static void
insert_entry(HmmvTopology *topo, const HmmvNode *node, char *why, GArray *cpus)
{
  NodeEntry entry = { .node = *node, .why = why, .cpus = cpus };
  guint pos = 0;

  while (pos < topo->nodes->len && entry_at(topo, pos)->node.id < node->id)
    pos++;
  g_array_insert_val(topo->nodes, pos, entry);
}

gboolean
hmmv_topology_add_node(HmmvTopology *topo, int id, guint64 total_bytes, guint nr_cpus,
                       HmmvTier tier, GError **error)
{
  HmmvNode node = {
    .id = id,
    .total_bytes = total_bytes,
    .free_bytes = total_bytes,
    .nr_cpus = nr_cpus,
    .kernel_tier = -1,
    .tier = tier,
    .tier_source = HMMV_TIER_SOURCE_DEFAULT,
  };

  g_return_val_if_fail(topo != NULL, FALSE);
  if (!check_tier(tier, error) || !check_new_node(topo, id, total_bytes, error))
    return FALSE;
  node.cpulist = g_strdup("");
  insert_entry(topo, &node, g_strdup("as given by the caller"), NULL);
  return TRUE;
}

guint
hmmv_topology_get_nr_nodes(const HmmvTopology *topo)
{
  return topo->nodes->len;
}

const HmmvNode *
hmmv_topology_get_node(const HmmvTopology *topo, guint index)
{
  g_return_val_if_fail(index < topo->nodes->len, NULL);
  return &entry_at(topo, index)->node;
}

const HmmvNode *
hmmv_topology_lookup(const HmmvTopology *topo, int node_id)
{
  NodeEntry *entry = lookup_entry(topo, node_id);

  return entry != NULL ? &entry->node : NULL;
}

gboolean
hmmv_topology_set_tier(HmmvTopology *topo, int node_id, HmmvTier tier, GError **error)
{
  NodeEntry *entry = lookup_entry(topo, node_id);

  if (!check_tier(tier, error))
    return FALSE;
  if (entry == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND,
                "node %d: not in the topology, cannot set its tier to %s", node_id,
                hmmv_tier_to_string(tier));
    return FALSE;
  }
  entry->node.tier = tier;
  entry->node.tier_source = HMMV_TIER_SOURCE_OVERRIDE;
  g_free(entry->why);
  entry->why = g_strdup("set by configuration");
  return TRUE;
}

gboolean
hmmv_topology_is_single_node(const HmmvTopology *topo)
{
  return topo->nodes->len == 1;
}

gboolean
hmmv_topology_has_tier(const HmmvTopology *topo, HmmvTier tier)
{
  return hmmv_topology_first_node(topo, tier) >= 0;
}

guint64
hmmv_topology_tier_bytes(const HmmvTopology *topo, HmmvTier tier)
{
  guint64 total = 0;

  for (guint i = 0; i < topo->nodes->len; i++) {
    if (entry_at(topo, i)->node.tier == tier)
      total += entry_at(topo, i)->node.total_bytes;
  }
  return total;
}

int
hmmv_topology_first_node(const HmmvTopology *topo, HmmvTier tier)
{
  for (guint i = 0; i < topo->nodes->len; i++) {
    if (entry_at(topo, i)->node.tier == tier)
      return entry_at(topo, i)->node.id;
  }
  return -1;
}

const char *
hmmv_tier_to_string(HmmvTier tier)
{
  switch (tier) {
  case HMMV_TIER_DRAM:
    return "dram";
  case HMMV_TIER_SLOW:
    return "slow";
  default:
    return "unknown";
  }
}

static guint
tier_node_count(const HmmvTopology *topo, HmmvTier tier)
{
  guint count = 0;

  for (guint i = 0; i < topo->nodes->len; i++)
    count += entry_at(topo, i)->node.tier == tier;
  return count;
}

static void
describe_summary(const HmmvTopology *topo, GString *out)
{
  guint nr = topo->nodes->len;
  guint64 dram_mib = hmmv_topology_tier_bytes(topo, HMMV_TIER_DRAM) >> 20;
  guint64 slow_mib = hmmv_topology_tier_bytes(topo, HMMV_TIER_SLOW) >> 20;

  if (nr == 0) {
    g_string_append(out, "no usable NUMA node\n");
  } else if (nr == 1) {
    g_string_append(out, "1 NUMA node: this host has no slow tier; hmmv can track page "
                    "temperatures but has nowhere slower to place cold pages (use the sim "
                    "mover to model one)\n");
  } else {
    g_string_append_printf(out, "%u NUMA nodes: %" G_GUINT64_FORMAT " MiB DRAM on %u node(s), %"
                           G_GUINT64_FORMAT " MiB slow on %u node(s)\n", nr, dram_mib,
                           tier_node_count(topo, HMMV_TIER_DRAM), slow_mib,
                           tier_node_count(topo, HMMV_TIER_SLOW));
    if (!hmmv_topology_has_tier(topo, HMMV_TIER_SLOW))
      g_string_append(out, "no node is slow: nothing to place cold pages on\n");
    if (!hmmv_topology_has_tier(topo, HMMV_TIER_DRAM))
      g_string_append(out, "no node is DRAM: nothing to keep hot pages on\n");
  }
}

char *
hmmv_topology_describe(const HmmvTopology *topo)
{
  GString *out = g_string_new(NULL);

  describe_summary(topo, out);
  for (guint i = 0; i < topo->nodes->len; i++) {
    const NodeEntry *entry = entry_at(topo, i);
    const HmmvNode *node = &entry->node;

    g_string_append_printf(out, "node %d: %" G_GUINT64_FORMAT " MiB (%" G_GUINT64_FORMAT
                           " MiB free), %u cpu(s)%s%s%s, %s: %s\n", node->id,
                           node->total_bytes >> 20, node->free_bytes >> 20, node->nr_cpus,
                           node->cpulist[0] != '\0' ? " [" : "", node->cpulist,
                           node->cpulist[0] != '\0' ? "]" : "", hmmv_tier_to_string(node->tier),
                           entry->why);
  }
  for (guint i = 0; i < topo->notes->len; i++)
    g_string_append_printf(out, "%s\n", (const char *)g_ptr_array_index(topo->notes, i));
  return g_string_free(out, FALSE);
}

/* ---- discovery ---------------------------------------------------------------------------- */

/* Digits only, no sign, no spaces; at most max. */
static gboolean
parse_uint(const char **cursor, guint max, guint *out)
{
  const char *p = *cursor;
  guint64 value = 0;

  if (!g_ascii_isdigit(*p))
    return FALSE;
  while (g_ascii_isdigit(*p)) {
    value = value * 10 + (guint)(*p - '0');
    if (value > max)
      return FALSE;
    p++;
  }
  *cursor = p;
  *out = (guint)value;
  return TRUE;
}

gboolean
hmmv_topology_parse_list(const char *text, guint max_id, GArray *ranges, GError **error)
{
  g_autofree char *copy = g_strstrip(g_strdup(text));
  const char *p = copy;
  gint64 prev_last = -1;

  while (*p != '\0') {
    HmmvIdRange range;

    if (!parse_uint(&p, max_id, &range.first))
      goto bad;
    range.last = range.first;
    if (*p == '-') {
      p++;
      if (!parse_uint(&p, max_id, &range.last) || range.last < range.first)
        goto bad;
    }
    /* The kernel prints ascending, disjoint ranges; anything else is not its output. */
    if ((gint64)range.first <= prev_last)
      goto bad;
    prev_last = range.last;
    g_array_append_val(ranges, range);
    if (*p == ',' && p[1] != '\0')
      p++;
    else if (*p != '\0')
      goto bad;
  }
  return TRUE;

bad:
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
              "cannot parse \"%s\" as a list of ids 0..%u (like \"0-3,8,10-11\"): bad at "
              "offset %d", copy, max_id, (int)(p - copy));
  return FALSE;
}

char *
hmmv_topology_read_sysfs(const char *path, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *text = NULL;
  gsize length = 0;

  if (!g_file_get_contents(path, &text, &length, &local)) {
    g_set_error(error, HMMV_ERROR,
                g_error_matches(local, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? HMMV_ERROR_NOT_FOUND
                                                                         : HMMV_ERROR_IO,
                "%s", local->message);   /* glib's message names the file */
    return NULL;
  }
  if (length > TOPO_MAX_FILE_BYTES || strlen(text) != length) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "%s: %" G_GSIZE_FORMAT " bytes or embedded NUL: not a sysfs attribute", path,
                length);
    return NULL;
  }
  return g_steal_pointer(&text);
}

/* Ranges of a sysfs id list file; errors name the file. */
static GArray *
read_list(const char *path, guint max_id, GError **error)
{
  g_autofree char *text = hmmv_topology_read_sysfs(path, error);
  g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(HmmvIdRange));

  if (text == NULL)
    return NULL;
  if (!hmmv_topology_parse_list(text, max_id, ranges, error)) {
    g_prefix_error(error, "%s: ", path);
    return NULL;
  }
  return g_steal_pointer(&ranges);
}

static guint
count_ranges(const GArray *ranges)
{
  guint count = 0;

  for (guint i = 0; i < ranges->len; i++) {
    const HmmvIdRange *range = &g_array_index(ranges, HmmvIdRange, i);

    count += range->last - range->first + 1;
  }
  return count;
}

/* One "Node N Key: value kB" line; FALSE if it is malformed. */
static gboolean
parse_meminfo_line(char **tokens, guint node_id, guint64 *kib)
{
  g_autofree char *id_text = g_strdup_printf("%u", node_id);

  return g_strv_length(tokens) == 5 && strcmp(tokens[0], "Node") == 0 &&
         strcmp(tokens[1], id_text) == 0 && strcmp(tokens[4], "kB") == 0 &&
         g_ascii_isdigit(tokens[3][0]) &&
         g_ascii_string_to_unsigned(tokens[3], 10, 0, G_MAXUINT64 >> 10, kib, NULL);
}

gboolean
hmmv_topology_parse_meminfo(const char *text, guint node_id, guint64 *total_bytes,
                            guint64 *free_bytes, GError **error)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  gboolean have_total = FALSE, have_free = FALSE;
  guint64 total_kib = 0, free_kib = 0;

  for (guint i = 0; lines[i] != NULL; i++) {
    g_auto(GStrv) tokens = g_strsplit_set(g_strstrip(lines[i]), " \t", -1);
    g_autoptr(GPtrArray) words = g_ptr_array_new();
    gboolean is_total, is_free;

    for (guint t = 0; tokens[t] != NULL; t++) {
      if (tokens[t][0] != '\0')
        g_ptr_array_add(words, tokens[t]);
    }
    if (words->len < 3)
      continue;
    is_total = strcmp(g_ptr_array_index(words, 2), "MemTotal:") == 0;
    is_free = strcmp(g_ptr_array_index(words, 2), "MemFree:") == 0;
    if (!is_total && !is_free)
      continue;
    g_ptr_array_add(words, NULL);
    if (!parse_meminfo_line((char **)words->pdata, node_id, is_total ? &total_kib : &free_kib)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                  "line %u \"%s\" is not \"Node %u %s <number> kB\"", i + 1, lines[i], node_id,
                  is_total ? "MemTotal:" : "MemFree:");
      return FALSE;
    }
    have_total |= is_total;
    have_free |= is_free;
  }
  if (!have_total || !have_free || free_kib > total_kib) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "no MemTotal and MemFree lines for node %u, or MemFree above MemTotal", node_id);
    return FALSE;
  }
  *total_bytes = total_kib << 10;
  *free_bytes = free_kib << 10;
  return TRUE;
}

static gboolean
node_sizes(const char *sysfs_root, const char *node_dir, guint id, HmmvNode *node,
           GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  long long free_bytes = 0;
  long long total;

  if (sysfs_root == NULL) {
    /* libnuma reads the same meminfo, but it is the library the mover uses too. */
    total = numa_node_size64((int)id, &free_bytes);
    if (total < 0 || free_bytes < 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "node %u: libnuma cannot size it", id);
      return FALSE;
    }
    node->total_bytes = (guint64)total;
    node->free_bytes = (guint64)free_bytes;
    return TRUE;
  }
  path = g_strdup_printf("%s/node%u/meminfo", node_dir, id);
  text = hmmv_topology_read_sysfs(path, error);
  if (text == NULL)
    return FALSE;
  if (!hmmv_topology_parse_meminfo(text, id, &node->total_bytes, &node->free_bytes, error)) {
    g_prefix_error(error, "%s: ", path);
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmv_topology_set_free(HmmvTopology *topo, int node_id, guint64 free_bytes, GError **error)
{
  NodeEntry *entry = lookup_entry(topo, node_id);

  if (entry == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "node %d: not in the topology",
                node_id);
    return FALSE;
  }
  entry->node.free_bytes = MIN(free_bytes, entry->node.total_bytes);
  return TRUE;
}

/* Fills node from nodeN/; the node has no tier yet. */
static gboolean
read_node(const char *sysfs_root, const char *node_dir, guint id, HmmvNode *node,
          GArray **cpus_out, GError **error)
{
  g_autofree char *dir = g_strdup_printf("%s/node%u", node_dir, id);
  g_autofree char *cpulist_path = g_build_filename(dir, "cpulist", NULL);
  g_autofree char *cpulist = NULL;
  g_autoptr(GArray) cpus = NULL;

  if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND,
                "%s: missing, although the node list names node %u", dir, id);
    return FALSE;
  }
  cpulist = hmmv_topology_read_sysfs(cpulist_path, error);
  if (cpulist == NULL)
    return FALSE;
  cpus = g_array_new(FALSE, FALSE, sizeof(HmmvIdRange));
  if (!hmmv_topology_parse_list(cpulist, TOPO_MAX_CPU_ID, cpus, error)) {
    g_prefix_error(error, "%s: ", cpulist_path);
    return FALSE;
  }
  *node = (HmmvNode){ .id = (int)id, .nr_cpus = count_ranges(cpus), .kernel_tier = -1 };
  if (!node_sizes(sysfs_root, node_dir, id, node, error))
    return FALSE;
  node->cpulist = g_strdup(g_strstrip(cpulist));
  *cpus_out = g_steal_pointer(&cpus);
  return TRUE;
}

static int
compare_uint(gconstpointer a, gconstpointer b)
{
  guint x = *(const guint *)a, y = *(const guint *)b;

  return (x > y) - (x < y);
}

/* The node ids to look at: `online`, else `has_memory`, else the nodeN directories. */
static GArray *
node_ids(const char *node_dir, GError **error)
{
  static const char *const lists[] = { "online", "has_memory" };
  g_autoptr(GArray) ids = g_array_new(FALSE, FALSE, sizeof(guint));
  g_autoptr(GDir) dir = NULL;
  const char *name;

  for (guint i = 0; i < G_N_ELEMENTS(lists); i++) {
    g_autofree char *path = g_build_filename(node_dir, lists[i], NULL);
    g_autoptr(GArray) ranges = NULL;

    if (!g_file_test(path, G_FILE_TEST_EXISTS))
      continue;
    ranges = read_list(path, TOPO_MAX_KERNEL_NODE, error);
    if (ranges == NULL)
      return NULL;
    for (guint r = 0; r < ranges->len; r++) {
      const HmmvIdRange *range = &g_array_index(ranges, HmmvIdRange, r);

      for (guint id = range->first; id <= range->last; id++)
        g_array_append_val(ids, id);
    }
    return g_steal_pointer(&ids);
  }
  dir = g_dir_open(node_dir, 0, NULL);
  if (dir == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND,
                "%s: missing: the kernel shows no NUMA nodes", node_dir);
    return NULL;
  }
  while ((name = g_dir_read_name(dir)) != NULL) {
    const char *p = name + 4;
    guint id;

    if (g_str_has_prefix(name, "node") && parse_uint(&p, TOPO_MAX_KERNEL_NODE, &id) && *p == 0)
      g_array_append_val(ids, id);
  }
  g_array_sort(ids, compare_uint);
  return g_steal_pointer(&ids);
}

/* node_tier[id] = N of the memory_tierN listing node id, or -1. FALSE on a corrupt tree. */
static gboolean
read_kernel_tiers(const char *sysfs_root, int *node_tier, GError **error)
{
  g_autofree char *tier_dir = g_build_filename(sysfs_root, "devices", "virtual",
                                               "memory_tiering", NULL);
  g_autoptr(GDir) dir = g_dir_open(tier_dir, 0, NULL);
  const char *name;

  if (dir == NULL)
    return TRUE;        /* a kernel before 6.1, or without tiering: no tier info */
  while ((name = g_dir_read_name(dir)) != NULL) {
    const char *p = name + strlen("memory_tier");
    g_autofree char *path = NULL;
    g_autoptr(GArray) ranges = NULL;
    guint tier;

    if (!g_str_has_prefix(name, "memory_tier") || !parse_uint(&p, G_MAXINT / 2, &tier) || *p)
      continue;
    path = g_build_filename(tier_dir, name, "nodelist", NULL);
    ranges = read_list(path, TOPO_MAX_KERNEL_NODE, error);
    if (ranges == NULL)
      return FALSE;
    for (guint r = 0; r < ranges->len; r++) {
      const HmmvIdRange *range = &g_array_index(ranges, HmmvIdRange, r);

      for (guint id = range->first; id <= range->last; id++) {
        if (node_tier[id] >= 0) {
          g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                      "%s: node %u is in both memory_tier%d and memory_tier%u", tier_dir, id,
                      node_tier[id], tier);
          return FALSE;
        }
        node_tier[id] = (int)tier;
      }
    }
  }
  return TRUE;
}

static void
set_tier(NodeEntry *entry, HmmvTier tier, HmmvTierSource source, char *why)
{
  entry->node.tier = tier;
  entry->node.tier_source = source;
  g_free(entry->why);
  entry->why = why;
}

/* Rule 2/3 of the file comment, for nodes the kernel tiers do not tell apart. */
static void
classify_by_cpus(HmmvTopology *topo, NodeEntry *entry, gboolean any_cpus, const char *context)
{
  if (topo->nodes->len == 1)
    set_tier(entry, HMMV_TIER_DRAM, HMMV_TIER_SOURCE_DEFAULT, g_strdup_printf("the only node "
                                                                              "(%s)", context));
  else if (entry->node.nr_cpus > 0 || !any_cpus)
    set_tier(entry, HMMV_TIER_DRAM, HMMV_TIER_SOURCE_DEFAULT,
             g_strdup_printf("%s (%s)", any_cpus ? "has CPUs" : "no node has CPUs", context));
  else
    set_tier(entry, HMMV_TIER_SLOW, HMMV_TIER_SOURCE_CPULESS,
             g_strdup_printf("CPU-less memory, like KMEM-DAX Optane or CXL (%s)", context));
}

static void
classify_nodes(HmmvTopology *topo)
{
  int fastest = G_MAXINT, slowest = -1;
  gboolean any_cpus = FALSE;
  g_autofree char *context = NULL;

  for (guint i = 0; i < topo->nodes->len; i++) {
    const HmmvNode *node = &entry_at(topo, i)->node;

    any_cpus |= node->nr_cpus > 0;
    if (node->kernel_tier >= 0) {
      fastest = MIN(fastest, node->kernel_tier);
      slowest = MAX(slowest, node->kernel_tier);
    }
  }
  /* One kernel tier for every node (a CPU-less node without HMAT figures lands in DRAM's
   * memory_tier4) says nothing: fall back to CPUs then. */
  context = slowest < 0 ? g_strdup("no kernel memory tiers")
            : g_strdup_printf("the kernel puts every node in memory_tier%d", fastest);
  for (guint i = 0; i < topo->nodes->len; i++) {
    NodeEntry *entry = entry_at(topo, i);
    int kernel_tier = entry->node.kernel_tier;

    if (fastest == slowest || kernel_tier < 0)
      classify_by_cpus(topo, entry, any_cpus, context);
    else if (kernel_tier == fastest)
      set_tier(entry, HMMV_TIER_DRAM, HMMV_TIER_SOURCE_KERNEL,
               g_strdup_printf("in memory_tier%d, the kernel's fastest tier here", kernel_tier));
    else
      set_tier(entry, HMMV_TIER_SLOW, HMMV_TIER_SOURCE_KERNEL,
               g_strdup_printf("in memory_tier%d, below the fastest tier memory_tier%d",
                               kernel_tier, fastest));
  }
}

/* Reads one listed node and adds it, or notes why it cannot be used. */
static gboolean
discover_node(HmmvTopology *topo, const char *sysfs_root, const char *node_dir, guint id,
              const int *node_tier, GError **error)
{
  HmmvNode node;
  GArray *cpus = NULL;

  if (id > HMMV_PLACE_MAX_NODE_ID) {
    g_ptr_array_add(topo->notes,
                    g_strdup_printf("node %u: not used: hmmv records a page's node in 5 bits, "
                                    "so only node ids 0..%d can hold guest pages", id,
                                    HMMV_PLACE_MAX_NODE_ID));
    return TRUE;
  }
  if (!read_node(sysfs_root, node_dir, id, &node, &cpus, error))
    return FALSE;
  if (node.total_bytes == 0) {
    g_ptr_array_add(topo->notes, g_strdup_printf("node %u: not used: it has no memory", id));
    g_free(node.cpulist);
    g_array_unref(cpus);
    return TRUE;
  }
  node.kernel_tier = node_tier[id];
  insert_entry(topo, &node, NULL, cpus);
  return TRUE;
}

HmmvTopology *
hmmv_topology_new_from_host(const char *sysfs_root, GError **error)
{
  const char *root = sysfs_root != NULL ? sysfs_root : "/sys";
  g_autofree char *node_dir = g_build_filename(root, "devices", "system", "node", NULL);
  g_autofree int *node_tier = g_new(int, TOPO_MAX_KERNEL_NODE + 1);
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  g_autoptr(GArray) ids = NULL;

  if (sysfs_root == NULL && numa_available() < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "libnuma: this kernel has no NUMA support (numa_available() < 0)");
    return NULL;
  }
  for (guint i = 0; i <= TOPO_MAX_KERNEL_NODE; i++)
    node_tier[i] = -1;
  ids = node_ids(node_dir, error);
  if (ids == NULL || !read_kernel_tiers(root, node_tier, error))
    return NULL;
  for (guint i = 0; i < ids->len; i++) {
    if (!discover_node(topo, sysfs_root, node_dir, g_array_index(ids, guint, i), node_tier,
                       error))
      return NULL;
  }
  if (topo->nodes->len == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "%s: no NUMA node with memory and an id in 0..%d", node_dir,
                HMMV_PLACE_MAX_NODE_ID);
    return NULL;
  }
  classify_nodes(topo);
  topo->from_host = TRUE;
  topo->sysfs_root = g_strdup(sysfs_root);
  if (!hmmv_topology_read_distances(topo, node_dir, ids, error))
    return NULL;
  return g_steal_pointer(&topo);
}
