/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Topology discovery on fake sysfs trees built in a temp dir, the parsers, and the real host. */
#include "hmmv-test.h"
#include "topology-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

#define MIB (G_GUINT64_CONSTANT(1) << 20)

/* A fake sysfs root, removed when freed. */
typedef struct {
  char *root;
} FakeSys;

static void
fake_sys_free(FakeSys *sys)
{
  hmmv_test_remove_tree(sys->root);
  g_free(sys->root);
  g_free(sys);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakeSys, fake_sys_free)

static FakeSys *
fake_sys_new(void)
{
  FakeSys *sys = g_new0(FakeSys, 1);
  g_autoptr(GError) error = NULL;

  sys->root = g_dir_make_tmp("hmmv-topo-XXXXXX", &error);
  ck_assert_msg(sys->root != NULL, "%s", error != NULL ? error->message : "?");
  return sys;
}

static void
fake_write(FakeSys *sys, const char *relpath, const char *text)
{
  g_autofree char *path = g_build_filename(sys->root, relpath, NULL);
  g_autofree char *dir = g_path_get_dirname(path);
  FILE *f;

  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  /* in place, as the kernel's attributes change: a file kept open reads the new text */
  f = g_fopen(path, "w");
  ck_assert_msg(f != NULL, "%s: %s", path, g_strerror(errno));
  ck_assert_int_ge(fputs(text, f), 0);
  ck_assert_int_eq(fclose(f), 0);
}

/* nodeN/cpulist and nodeN/meminfo (sizes in kB, as the kernel prints them). */
static void
fake_node(FakeSys *sys, guint id, const char *cpulist, guint64 total_kib, guint64 free_kib)
{
  g_autofree char *cpu_path = g_strdup_printf("devices/system/node/node%u/cpulist", id);
  g_autofree char *mem_path = g_strdup_printf("devices/system/node/node%u/meminfo", id);
  g_autofree char *meminfo = g_strdup_printf(
      "Node %u MemTotal:       %" G_GUINT64_FORMAT " kB\n"
      "Node %u MemFree:        %" G_GUINT64_FORMAT " kB\n"
      "Node %u MemUsed:        %" G_GUINT64_FORMAT " kB\n"
      "Node %u HugePages_Total:     0\n",
      id, total_kib, id, free_kib, id, total_kib - free_kib, id);

  fake_write(sys, cpu_path, cpulist);
  fake_write(sys, mem_path, meminfo);
}

static void
fake_online(FakeSys *sys, const char *list)
{
  fake_write(sys, "devices/system/node/online", list);
}

static void
fake_tier(FakeSys *sys, guint tier, const char *nodelist)
{
  g_autofree char *path = g_strdup_printf("devices/virtual/memory_tiering/memory_tier%u/nodelist",
                                          tier);

  fake_write(sys, path, nodelist);
}

static HmmvTopology *
discover_ok(FakeSys *sys)
{
  g_autoptr(GError) error = NULL;
  HmmvTopology *topo = hmmv_topology_new_from_host(sys->root, &error);

  ck_assert_msg(topo != NULL, "discovery failed: %s", error ? error->message : "?");
  return topo;
}

/* Discovery must fail with code and a message holding every needle. */
static void
discover_fails(FakeSys *sys, HmmvError code, const char *needle1, const char *needle2)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new_from_host(sys->root, &error);

  ck_assert_ptr_null(topo);
  ck_assert_ptr_nonnull(error);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, code), "code %d, want %d: %s", error->code,
                code, error->message);
  ck_assert_msg(strstr(error->message, needle1) != NULL, "no \"%s\" in: %s", needle1,
                error->message);
  ck_assert_msg(needle2 == NULL || strstr(error->message, needle2) != NULL,
                "no \"%s\" in: %s", needle2, error->message);
}

static void
assert_contains(const char *text, const char *needle)
{
  ck_assert_msg(strstr(text, needle) != NULL, "no \"%s\" in:\n%s", needle, text);
}

START_TEST(test_single_node)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autofree char *text = NULL;
  const HmmvNode *node;

  fake_online(sys, "0\n");
  fake_node(sys, 0, "0-1\n", 24567890, 1000000);
  topo = discover_ok(sys);
  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), 1);
  ck_assert(hmmv_topology_is_single_node(topo));
  node = hmmv_topology_get_node(topo, 0);
  ck_assert_int_eq(node->id, 0);
  ck_assert_uint_eq(node->total_bytes, G_GUINT64_CONSTANT(24567890) * 1024);
  ck_assert_uint_eq(node->free_bytes, G_GUINT64_CONSTANT(1000000) * 1024);
  ck_assert_uint_eq(node->nr_cpus, 2);
  ck_assert_str_eq(node->cpulist, "0-1");
  ck_assert_int_eq(node->kernel_tier, -1);
  ck_assert_int_eq(node->tier, HMMV_TIER_DRAM);
  ck_assert_int_eq(node->tier_source, HMMV_TIER_SOURCE_DEFAULT);
  ck_assert(!hmmv_topology_has_tier(topo, HMMV_TIER_SLOW));
  ck_assert_int_eq(hmmv_topology_first_node(topo, HMMV_TIER_SLOW), -1);
  ck_assert_uint_eq(hmmv_topology_tier_bytes(topo, HMMV_TIER_SLOW), 0);
  text = hmmv_topology_describe(topo);
  assert_contains(text, "1 NUMA node: this host has no slow tier");
  assert_contains(text, "node 0: 23992 MiB");
}
END_TEST

START_TEST(test_cpuless_is_slow)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autofree char *text = NULL;
  const HmmvNode *slow;

  fake_online(sys, "0-1\n");
  fake_node(sys, 0, "0-3,8,10-11\n", 8 * 1024 * 1024, 4 * 1024 * 1024);
  fake_node(sys, 1, "\n", 16 * 1024 * 1024, 16 * 1024 * 1024);
  topo = discover_ok(sys);
  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), 2);
  ck_assert(!hmmv_topology_is_single_node(topo));
  ck_assert_uint_eq(hmmv_topology_get_node(topo, 0)->nr_cpus, 7);
  ck_assert_int_eq(hmmv_topology_get_node(topo, 0)->tier, HMMV_TIER_DRAM);
  slow = hmmv_topology_lookup(topo, 1);
  ck_assert_ptr_nonnull(slow);
  ck_assert_uint_eq(slow->nr_cpus, 0);
  ck_assert_str_eq(slow->cpulist, "");
  ck_assert_int_eq(slow->tier, HMMV_TIER_SLOW);
  ck_assert_int_eq(slow->tier_source, HMMV_TIER_SOURCE_CPULESS);
  ck_assert_uint_eq(hmmv_topology_tier_bytes(topo, HMMV_TIER_DRAM), 8 * 1024 * MIB);
  ck_assert_uint_eq(hmmv_topology_tier_bytes(topo, HMMV_TIER_SLOW), 16 * 1024 * MIB);
  ck_assert_int_eq(hmmv_topology_first_node(topo, HMMV_TIER_DRAM), 0);
  ck_assert_int_eq(hmmv_topology_first_node(topo, HMMV_TIER_SLOW), 1);
  ck_assert_ptr_null(hmmv_topology_lookup(topo, 2));
  text = hmmv_topology_describe(topo);
  assert_contains(text, "2 NUMA nodes: 8192 MiB DRAM on 1 node(s), 16384 MiB slow on 1 node(s)");
  assert_contains(text, "node 1: 16384 MiB");
  assert_contains(text, "CPU-less");
}
END_TEST

START_TEST(test_kernel_tiers)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autofree char *text = NULL;
  const HmmvNode *node;

  /* node2 has CPUs but sits in a lower tier: the kernel's word wins over the CPU rule. */
  fake_online(sys, "0-2\n");
  fake_node(sys, 0, "0-1\n", 4 * 1024 * 1024, 1024);
  fake_node(sys, 1, "\n", 8 * 1024 * 1024, 1024);
  fake_node(sys, 2, "2\n", 2 * 1024 * 1024, 1024);
  fake_tier(sys, 4, "0\n");
  fake_tier(sys, 129, "1-2\n");
  fake_write(sys, "devices/virtual/memory_tiering/uevent", "");
  topo = discover_ok(sys);
  node = hmmv_topology_lookup(topo, 0);
  ck_assert_int_eq(node->kernel_tier, 4);
  ck_assert_int_eq(node->tier, HMMV_TIER_DRAM);
  ck_assert_int_eq(node->tier_source, HMMV_TIER_SOURCE_KERNEL);
  for (int id = 1; id <= 2; id++) {
    node = hmmv_topology_lookup(topo, id);
    ck_assert_int_eq(node->kernel_tier, 129);
    ck_assert_int_eq(node->tier, HMMV_TIER_SLOW);
    ck_assert_int_eq(node->tier_source, HMMV_TIER_SOURCE_KERNEL);
  }
  ck_assert_uint_eq(hmmv_topology_tier_bytes(topo, HMMV_TIER_SLOW), 10 * 1024 * MIB);
  text = hmmv_topology_describe(topo);
  assert_contains(text, "memory_tier129, below the fastest tier memory_tier4");
}
END_TEST

/* A CPU-less node without HMAT figures shares DRAM's memory_tier4: the CPU rule decides. */
START_TEST(test_one_kernel_tier_falls_back)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;

  fake_online(sys, "0-1\n");
  fake_node(sys, 0, "0-1\n", 4 * 1024 * 1024, 1024);
  fake_node(sys, 1, "\n", 8 * 1024 * 1024, 1024);
  fake_tier(sys, 4, "0-1\n");
  topo = discover_ok(sys);
  ck_assert_int_eq(hmmv_topology_lookup(topo, 0)->tier, HMMV_TIER_DRAM);
  ck_assert_int_eq(hmmv_topology_lookup(topo, 1)->tier, HMMV_TIER_SLOW);
  ck_assert_int_eq(hmmv_topology_lookup(topo, 1)->tier_source, HMMV_TIER_SOURCE_CPULESS);
  ck_assert_int_eq(hmmv_topology_lookup(topo, 1)->kernel_tier, 4);
}
END_TEST

START_TEST(test_override)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;

  fake_online(sys, "0-1\n");
  fake_node(sys, 0, "0\n", 1024 * 1024, 1024);
  fake_node(sys, 1, "\n", 2 * 1024 * 1024, 1024);
  topo = discover_ok(sys);
  ck_assert(hmmv_topology_set_tier(topo, 1, HMMV_TIER_DRAM, &error));
  ck_assert_int_eq(hmmv_topology_lookup(topo, 1)->tier, HMMV_TIER_DRAM);
  ck_assert_int_eq(hmmv_topology_lookup(topo, 1)->tier_source, HMMV_TIER_SOURCE_OVERRIDE);
  ck_assert(!hmmv_topology_has_tier(topo, HMMV_TIER_SLOW));
  ck_assert_uint_eq(hmmv_topology_tier_bytes(topo, HMMV_TIER_DRAM), 3 * 1024 * MIB);
  ck_assert(hmmv_topology_set_tier(topo, 0, HMMV_TIER_SLOW, &error));
  ck_assert_int_eq(hmmv_topology_first_node(topo, HMMV_TIER_DRAM), 1);
  ck_assert_int_eq(hmmv_topology_first_node(topo, HMMV_TIER_SLOW), 0);
  text = hmmv_topology_describe(topo);
  assert_contains(text, "set by configuration");

  ck_assert(!hmmv_topology_set_tier(topo, 7, HMMV_TIER_SLOW, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND));
  assert_contains(error->message, "node 7");
  g_clear_error(&error);
  ck_assert(!hmmv_topology_set_tier(topo, 0, (HmmvTier)5, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
}
END_TEST

static const char *const bad_cpulists[] = {
  "0-\n", "3-1\n", "abc\n", "0,,1\n", "1,0\n", "-1\n", "0 - 3\n", "0-3,2\n", "1,\n",
  "99999999999\n", "0x1\n", "+1\n",
};

START_TEST(test_bad_cpulist)
{
  g_autoptr(FakeSys) sys = fake_sys_new();

  fake_online(sys, "0\n");
  fake_node(sys, 0, bad_cpulists[_i], 1024, 1024);
  discover_fails(sys, HMMV_ERROR_CORRUPT, "node0/cpulist", "cannot parse");
}
END_TEST

static const char *const bad_meminfos[] = {
  "Node 0 MemTotal: 1024 kB\n",                                   /* no MemFree */
  "Node 0 MemTotal: abc kB\nNode 0 MemFree: 1 kB\n",
  "Node 0 MemTotal: -5 kB\nNode 0 MemFree: 1 kB\n",
  "Node 1 MemTotal: 1024 kB\nNode 1 MemFree: 1 kB\n",             /* another node's */
  "Node 0 MemTotal: 1024 MB\nNode 0 MemFree: 1 kB\n",
  "Node 0 MemTotal: 99999999999999999999 kB\nNode 0 MemFree: 1 kB\n",
  "Node 0 MemTotal: 18014398509481984 kB\nNode 0 MemFree: 1 kB\n", /* 2^54 kB: 2^64 bytes */
  "Node 0 MemTotal: 1024 kB\nNode 0 MemFree: 2048 kB\n",          /* free above total */
  "Node 0 MemTotal: 1024 kB extra\nNode 0 MemFree: 1 kB\n",
  "",
};

START_TEST(test_bad_meminfo)
{
  g_autoptr(FakeSys) sys = fake_sys_new();

  fake_online(sys, "0\n");
  fake_write(sys, "devices/system/node/node0/cpulist", "0\n");
  fake_write(sys, "devices/system/node/node0/meminfo", bad_meminfos[_i]);
  discover_fails(sys, HMMV_ERROR_CORRUPT, "node0/meminfo", NULL);
}
END_TEST

START_TEST(test_missing_paths)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autofree char *node_dir = g_build_filename(sys->root, "devices", "system", "node", NULL);

  /* No node directory at all. */
  discover_fails(sys, HMMV_ERROR_NOT_FOUND, node_dir, NULL);
  /* online lists node1, which has no directory. */
  fake_online(sys, "0-1\n");
  fake_node(sys, 0, "0\n", 1024, 1024);
  discover_fails(sys, HMMV_ERROR_NOT_FOUND, "node1", "missing");
  /* node1 exists but has no meminfo. */
  fake_write(sys, "devices/system/node/node1/cpulist", "\n");
  discover_fails(sys, HMMV_ERROR_NOT_FOUND, "node1/meminfo", NULL);
  /* ... and no cpulist. */
  fake_node(sys, 2, "\n", 1024, 1024);
  fake_online(sys, "0,2-3\n");
  fake_write(sys, "devices/system/node/node3/meminfo", "Node 3 MemTotal: 1 kB\n");
  discover_fails(sys, HMMV_ERROR_NOT_FOUND, "node3/cpulist", NULL);
  /* A malformed node list names the list. */
  fake_online(sys, "zero\n");
  discover_fails(sys, HMMV_ERROR_CORRUPT, "node/online", NULL);
  /* A malformed tier nodelist names it. */
  fake_online(sys, "0\n");
  fake_tier(sys, 4, "0-x\n");
  discover_fails(sys, HMMV_ERROR_CORRUPT, "memory_tier4/nodelist", NULL);
  fake_tier(sys, 4, "0\n");
  fake_tier(sys, 22, "0\n");
  discover_fails(sys, HMMV_ERROR_CORRUPT, "node 0 is in both", NULL);
}
END_TEST

START_TEST(test_unusable_nodes)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autofree char *text = NULL;

  /* node 40 cannot fit the 5-bit slot; node 3 has CPUs but no memory. */
  fake_online(sys, "0,3,40\n");
  fake_node(sys, 0, "0\n", 1024 * 1024, 1024);
  fake_node(sys, 3, "1\n", 0, 0);
  fake_node(sys, 40, "\n", 1024 * 1024, 1024);
  topo = discover_ok(sys);
  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), 1);
  ck_assert_ptr_null(hmmv_topology_lookup(topo, 40));
  ck_assert_ptr_null(hmmv_topology_lookup(topo, 3));
  text = hmmv_topology_describe(topo);
  assert_contains(text, "node 40: not used");
  assert_contains(text, "0..30");
  assert_contains(text, "node 3: not used: it has no memory");

  /* Only unusable nodes: an error that says so. */
  fake_online(sys, "3,40\n");
  discover_fails(sys, HMMV_ERROR_NOT_SUPPORTED, "no NUMA node with memory", NULL);
}
END_TEST

/* Without online/has_memory, the nodeN directories are the list. */
START_TEST(test_dir_scan)
{
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;

  fake_node(sys, 2, "\n", 1024 * 1024, 1024);
  fake_node(sys, 10, "0\n", 1024 * 1024, 1024);
  fake_write(sys, "devices/system/node/nodex/cpulist", "\n");
  fake_write(sys, "devices/system/node/possible", "0-11\n");
  topo = discover_ok(sys);
  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), 2);
  ck_assert_int_eq(hmmv_topology_get_node(topo, 0)->id, 2);
  ck_assert_int_eq(hmmv_topology_get_node(topo, 1)->id, 10);
  ck_assert_int_eq(hmmv_topology_get_node(topo, 0)->tier, HMMV_TIER_SLOW);
}
END_TEST

/* The list parser against a brute-force membership reference on random well-formed lists. */
START_TEST(test_parse_list_random)
{
  GRand *rand = g_rand_new_with_seed(42);

  for (guint round = 0; round < 500; round++) {
    gboolean member[200] = { FALSE };
    g_autoptr(GString) text = g_string_new(NULL);
    g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(HmmvIdRange));
    g_autoptr(GError) error = NULL;
    gboolean parsed[200] = { FALSE };
    guint id = g_rand_int_range(rand, 0, 5);

    while (id < 190) {
      guint last = id + g_rand_int_range(rand, 0, 4);

      g_string_append_printf(text, "%s%u", text->len ? "," : "", id);
      if (last > id || g_rand_boolean(rand)) {
        g_string_append_printf(text, "-%u", last);
      }
      for (guint k = id; k <= last; k++)
        member[k] = TRUE;
      id = last + 1 + g_rand_int_range(rand, 1, 20);
    }
    g_string_append_c(text, '\n');
    ck_assert_msg(hmmv_topology_parse_list(text->str, 199, ranges, &error), "%s: %s", text->str,
                  error ? error->message : "");
    for (guint r = 0; r < ranges->len; r++) {
      const HmmvIdRange *range = &g_array_index(ranges, HmmvIdRange, r);

      for (guint k = range->first; k <= range->last; k++)
        parsed[k] = TRUE;
    }
    ck_assert_msg(memcmp(member, parsed, sizeof(member)) == 0, "%s", text->str);
  }
  g_rand_free(rand);
}
END_TEST

START_TEST(test_parse_list_limits)
{
  g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(HmmvIdRange));
  g_autoptr(GError) error = NULL;

  ck_assert(hmmv_topology_parse_list("", 10, ranges, &error));
  ck_assert(hmmv_topology_parse_list(" \n", 10, ranges, &error));
  ck_assert_uint_eq(ranges->len, 0);
  ck_assert(hmmv_topology_parse_list("10", 10, ranges, &error));
  ck_assert(!hmmv_topology_parse_list("11", 10, ranges, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_CORRUPT));
  assert_contains(error->message, "\"11\"");
}
END_TEST

static void
add_ok(HmmvTopology *topo, int id, guint64 bytes, guint cpus, HmmvTier tier)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_topology_add_node(topo, id, bytes, cpus, tier, &error), "%s",
                error ? error->message : "");
}

static void
add_fails(HmmvTopology *topo, int id, guint64 bytes, const char *needle)
{
  g_autoptr(GError) error = NULL;

  ck_assert(!hmmv_topology_add_node(topo, id, bytes, 1, HMMV_TIER_DRAM, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  assert_contains(error->message, needle);
}

START_TEST(test_add_node)
{
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  g_autofree char *text = NULL;

  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), 0);
  add_ok(topo, 30, 3 * MIB, 0, HMMV_TIER_SLOW);
  add_ok(topo, 2, 2 * MIB, 4, HMMV_TIER_DRAM);
  add_ok(topo, 7, 5 * MIB, 0, HMMV_TIER_SLOW);
  add_fails(topo, 31, MIB, "0..30");
  add_fails(topo, 63, MIB, "0..30");
  add_fails(topo, -1, MIB, "0..30");
  add_fails(topo, 2, MIB, "already");
  add_fails(topo, 3, 0, "no memory");
  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), 3);
  /* Ascending ids whatever the insertion order. */
  ck_assert_int_eq(hmmv_topology_get_node(topo, 0)->id, 2);
  ck_assert_int_eq(hmmv_topology_get_node(topo, 1)->id, 7);
  ck_assert_int_eq(hmmv_topology_get_node(topo, 2)->id, 30);
  ck_assert_int_eq(hmmv_topology_first_node(topo, HMMV_TIER_SLOW), 7);
  ck_assert_uint_eq(hmmv_topology_tier_bytes(topo, HMMV_TIER_SLOW), 8 * MIB);
  ck_assert_str_eq(hmmv_tier_to_string(HMMV_TIER_DRAM), "dram");
  ck_assert_str_eq(hmmv_tier_to_string(HMMV_TIER_SLOW), "slow");
  text = hmmv_topology_describe(topo);
  assert_contains(text, "3 NUMA nodes");
  assert_contains(text, "node 30: 3 MiB");
}
END_TEST

/* Nodes the kernel shows with memory and an id hmmv can use. Deliberately a different parser
 * (sscanf) from the library's. */
static guint
count_host_nodes(const char *node_dir)
{
  g_autoptr(GDir) dir = g_dir_open(node_dir, 0, NULL);
  const char *name;
  guint count = 0;

  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    g_autofree char *path = NULL;
    g_autofree char *text = NULL;
    unsigned id, node;
    unsigned long long kib = 0;
    char tail;

    if (sscanf(name, "node%u%c", &id, &tail) != 1 || id > HMMV_PLACE_MAX_NODE_ID)
      continue;
    path = g_strdup_printf("%s/%s/meminfo", node_dir, name);
    if (g_file_get_contents(path, &text, NULL, NULL) &&
        sscanf(text, "Node %u MemTotal: %llu kB", &node, &kib) == 2 && kib > 0)
      count++;
  }
  return count;
}

START_TEST(test_real_host)
{
  const char *node_dir = "/sys/devices/system/node";
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = NULL;
  g_autofree char *text = NULL;
  guint expected = count_host_nodes(node_dir);

  if (expected == 0) {
    fprintf(stderr, "# %s shows no node with memory: nothing to compare\n", node_dir);
    return;
  }
  topo = hmmv_topology_new_from_host(NULL, &error);
  ck_assert_msg(topo != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(hmmv_topology_get_nr_nodes(topo), expected);
  ck_assert_uint_gt(hmmv_topology_tier_bytes(topo, HMMV_TIER_DRAM) +
                    hmmv_topology_tier_bytes(topo, HMMV_TIER_SLOW), 0);
  ck_assert(hmmv_topology_has_tier(topo, HMMV_TIER_DRAM));
  for (guint i = 0; i < expected; i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);

    ck_assert_uint_gt(node->total_bytes, 0);
    ck_assert_uint_le(node->free_bytes, node->total_bytes);
  }
  text = hmmv_topology_describe(topo);
  if (expected == 1)
    assert_contains(text, "1 NUMA node: this host has no slow tier");
}
END_TEST

/* A two-socket Optane host as the kernel shows it: nodes 0 and 1 with CPUs and DRAM, 2 and 3
 * CPU-less Optane, node 2 on socket 0 and node 3 on socket 1 (SLIT 10 own DRAM, 21 the other
 * DRAM, 17 own Optane, 28 the other's). hmat: also the access0 initiators and latencies. */
static void
fake_two_socket(FakeSys *sys, gboolean slit, gboolean hmat)
{
  static const char *const rows[] = { "10 21 17 28\n", "21 10 28 17\n", "17 28 10 28\n",
                                      "28 17 28 10\n" };
  static const guint socket_of[] = { 0, 1, 0, 1 };
  static const char *const latency[] = { "80\n", "80\n", "300\n", "300\n" };

  fake_online(sys, "0-3\n");
  fake_node(sys, 0, "0-3\n", 8 * 1024 * 1024, 4 * 1024 * 1024);
  fake_node(sys, 1, "4-7\n", 8 * 1024 * 1024, 6 * 1024 * 1024);
  fake_node(sys, 2, "\n", 32 * 1024 * 1024, 30 * 1024 * 1024);
  fake_node(sys, 3, "\n", 32 * 1024 * 1024, 31 * 1024 * 1024);
  for (guint id = 0; id < 4; id++) {
    if (slit) {
      g_autofree char *path = g_strdup_printf("devices/system/node/node%u/distance", id);

      fake_write(sys, path, rows[id]);
    }
    if (hmat) {
      g_autofree char *link = g_strdup_printf("devices/system/node/node%u/access0/initiators/"
                                              "node%u/uevent", id, socket_of[id]);
      g_autofree char *lat = g_strdup_printf("devices/system/node/node%u/access0/initiators/"
                                             "read_latency", id);

      fake_write(sys, link, "");
      fake_write(sys, lat, latency[id]);
    }
  }
}

static void
assert_rank(const HmmvTopology *topo, int from, HmmvTier tier, int first, int second)
{
  int out[4] = { -1, -1, -1, -1 };
  guint n = hmmv_topology_rank(topo, from, tier, out, G_N_ELEMENTS(out));

  ck_assert_msg(n == 2 && out[0] == first && out[1] == second,
                "%s nodes from node %d: %u nodes %d, %d; want %d, %d",
                hmmv_tier_to_string(tier), from, n, out[0], out[1], first, second);
}

/* Each socket's own nodes first, from the distances alone, from HMAT alone, and from both.
 * Before: every promotion went to node 0 and every demotion to node 2 (first_node). */
START_TEST(test_two_socket_rank)
{
  static const gboolean sources[][2] = { { TRUE, FALSE }, { FALSE, TRUE }, { TRUE, TRUE } };

  for (guint s = 0; s < G_N_ELEMENTS(sources); s++) {
    g_autoptr(FakeSys) sys = fake_sys_new();
    g_autoptr(HmmvTopology) topo = NULL;

    fake_two_socket(sys, sources[s][0], sources[s][1]);
    topo = discover_ok(sys);
    ck_assert_uint_eq(hmmv_topology_lookup(topo, 2)->tier, HMMV_TIER_SLOW);
    ck_assert_uint_eq(hmmv_topology_get_distance(topo, 1, 3), sources[s][0] ? 17 : 20);
    ck_assert_uint_eq(hmmv_topology_get_distance(topo, 3, 3), 10);
    assert_rank(topo, 0, HMMV_TIER_DRAM, 0, 1);
    assert_rank(topo, 1, HMMV_TIER_DRAM, 1, 0);
    assert_rank(topo, 0, HMMV_TIER_SLOW, 2, 3);
    assert_rank(topo, 1, HMMV_TIER_SLOW, 3, 2);
    /* a CPU node's slow neighbour is ranked the same way from its DRAM node */
    ck_assert_int_eq(hmmv_topology_cpu_node(topo, 5), 1);
    ck_assert_int_eq(hmmv_topology_cpu_node(topo, 3), 0);
    ck_assert_int_eq(hmmv_topology_cpu_node(topo, 8), -1);
  }
}
END_TEST

/* The fake /proc/zoneinfo (the root's proc/zoneinfo) of nodes 0..nr-1, each with what a
 * migration can take there (usable_kib): a DMA zone its protection keeps whole (100 pages
 * free, min 10, 500 protected for Movable), a Normal zone with usable pages above its min of
 * 64, an empty Movable zone; pad lines of counters in node 0's DMA zone. */
static void
fake_zoneinfo(FakeSys *sys, guint nr, const guint64 *usable_kib, guint pad)
{
  g_autoptr(GString) text = g_string_new(NULL);

  for (guint id = 0; id < nr; id++) {
    g_string_append_printf(text, "Node %u, zone      DMA\n  per-node stats\n", id);
    for (guint i = 0; id == 0 && i < pad; i++)
      g_string_append_printf(text, "      nr_padding_%u %u\n", i, i);
    g_string_append_printf(text,
                           "  pages free     100\n        boost    0\n        min      10\n"
                           "        low      13\n        protection: (0, 500, 500)\n"
                           "Node %u, zone   Normal\n  pages free     %" G_GUINT64_FORMAT "\n"
                           "        min      64\n        protection: (0, 0, 0)\n"
                           "  pagesets\n    cpu: 0\n              count: 77\n"
                           "Node %u, zone  Movable\n  pages free     0\n        min      32\n"
                           "        protection: (0, 0, 0)\n",
                           id, usable_kib[id] / 4 + 64, id);
  }
  fake_write(sys, "proc/zoneinfo", text->str);
}

/* Free memory is re-read, as the per-node pools need: what a migration can take by
 * /proc/zoneinfo, not MemFree; a built topology keeps what it is set to. */
START_TEST(test_refresh_free)
{
  static const guint64 usable_kib[] = { 1024, 6 * 1024 * 1024, 30 * 1024 * 1024,
                                        31 * 1024 * 1024 };
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autoptr(HmmvTopology) built = hmmv_topology_new();
  g_autoptr(GError) error = NULL;

  fake_two_socket(sys, TRUE, FALSE);
  topo = discover_ok(sys);
  ck_assert_uint_eq(hmmv_topology_lookup(topo, 0)->free_bytes, 4 * 1024 * MIB);
  /* MemFree still says 4 GiB; the zones say 1 MiB (100 DMA pages and 64 Normal ones kept) */
  fake_zoneinfo(sys, 4, usable_kib, 0);
  ck_assert(hmmv_topology_refresh_free(topo, &error));
  ck_assert_uint_eq(hmmv_topology_lookup(topo, 0)->free_bytes, MIB);
  ck_assert_uint_eq(hmmv_topology_lookup(topo, 1)->free_bytes, 6 * 1024 * MIB);
  /* never more than the node: node 3 is 32 GiB */
  ck_assert_uint_eq(hmmv_topology_lookup(topo, 3)->free_bytes, 31 * 1024 * MIB);

  add_ok(built, 0, 8 * MIB, 2, HMMV_TIER_DRAM);
  ck_assert(hmmv_topology_refresh_free(built, &error));
  ck_assert_uint_eq(hmmv_topology_lookup(built, 0)->free_bytes, 8 * MIB);
  ck_assert(hmmv_topology_set_free(built, 0, 3 * MIB, &error));
  ck_assert_uint_eq(hmmv_topology_lookup(built, 0)->free_bytes, 3 * MIB);
  ck_assert(!hmmv_topology_set_free(built, 1, MIB, NULL));
  ck_assert(hmmv_topology_set_cpus(built, 0, "0-1,4", &error));
  ck_assert_int_eq(hmmv_topology_cpu_node(built, 4), 0);
  ck_assert_uint_eq(hmmv_topology_lookup(built, 0)->nr_cpus, 3);
  ck_assert(!hmmv_topology_set_distance(built, 0, 1, 20, NULL));
  ck_assert(!hmmv_topology_set_distance(built, 0, 0, 9, NULL));
}
END_TEST

static void
assert_free_mib(const HmmvTopology *topo, guint64 node0, guint64 node1)
{
  ck_assert_uint_eq(hmmv_topology_lookup(topo, 0)->free_bytes, node0 * MIB);
  ck_assert_uint_eq(hmmv_topology_lookup(topo, 1)->free_bytes, node1 * MIB);
}

/* Every refresh reads zoneinfo afresh from the file opened once (hmmvd refreshes before
 * every interval), one read while it fits the buffer. A text that is not the kernel's, a
 * node missing or the file gone fails the refresh and changes no figure (the caller keeps
 * the last ones); the next refresh opens the file again. */
START_TEST(test_refresh_free_reads_kept_files)
{
  guint64 usable_kib[] = { 0, 2048, 3072, 4096 };
  g_autoptr(FakeSys) sys = fake_sys_new();
  g_autoptr(HmmvTopology) topo = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename(sys->root, "proc", "zoneinfo", NULL);
  g_autofree char *huge = NULL;
  g_autofree char *good = NULL;

  fake_two_socket(sys, TRUE, FALSE);
  topo = discover_ok(sys);
  for (guint i = 1; i <= 10; i++) {
    usable_kib[0] = 1024 * i;
    fake_zoneinfo(sys, 4, usable_kib, 0);
    ck_assert(hmmv_topology_refresh_free(topo, &error));
    assert_free_mib(topo, i, 2);
  }
  ck_assert_uint_eq(topo->free_opens, 1);
  ck_assert_uint_eq(topo->free_reads, 10);
  ck_assert(g_file_get_contents(path, &good, NULL, NULL));

  /* not the kernel's text: fails, closes the file, keeps every figure */
  fake_write(sys, "proc/zoneinfo", "Node 0, zone   Normal\n  pages free     lots\n");
  ck_assert(!hmmv_topology_refresh_free(topo, &error));
  ck_assert_int_eq(error->code, HMMV_ERROR_CORRUPT);
  ck_assert(!topo->zoneinfo_open);
  assert_free_mib(topo, 10, 2);
  g_clear_error(&error);
  /* a node missing (the text stops after node 2): says which, keeps every figure */
  fake_zoneinfo(sys, 3, (const guint64[]){ 5 * 1024, 5 * 1024, 5 * 1024 }, 0);
  ck_assert(!hmmv_topology_refresh_free(topo, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "node 3 is not in it"));
  assert_free_mib(topo, 10, 2);
  g_clear_error(&error);
  /* good again: opened anew, read fresh */
  ck_assert(g_file_set_contents(path, good, -1, NULL));
  ck_assert(hmmv_topology_refresh_free(topo, &error));
  assert_free_mib(topo, 10, 2);
  ck_assert_uint_eq(topo->free_opens, 3);        /* bad, missing, good: reopened */
  ck_assert_uint_eq(topo->free_reads, 14);   /* the missing node: read on to the end */

  /* bigger than the first buffer (64 KiB): read on, two reads, then one again */
  fake_zoneinfo(sys, 4, usable_kib, 4000);
  ck_assert(hmmv_topology_refresh_free(topo, &error));
  ck_assert_uint_eq(topo->free_reads, 16);
  ck_assert(hmmv_topology_refresh_free(topo, &error));
  ck_assert_uint_eq(topo->free_reads, 17);
  assert_free_mib(topo, 10, 2);
  /* more than 16 MiB is not zoneinfo */
  fake_zoneinfo(sys, 4, usable_kib, 800000);
  ck_assert(!hmmv_topology_refresh_free(topo, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "more than 16 MiB"));
  g_clear_error(&error);
  /* the file gone: the refresh says which */
  ck_assert_int_eq(g_unlink(path), 0);
  ck_assert(!hmmv_topology_refresh_free(topo, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "proc/zoneinfo"));
  assert_free_mib(topo, 10, 2);
}
END_TEST

/* Malformed distance and latency files are errors that name the file. */
START_TEST(test_bad_distance)
{
  static const char *const bad[][2] = {
    { "devices/system/node/node1/distance", "21 10 28\n" },
    { "devices/system/node/node1/distance", "21 10 28 17 10\n" },
    { "devices/system/node/node1/distance", "21 -10 28 17\n" },
    { "devices/system/node/node2/access0/initiators/read_latency", "fast\n" },
  };

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(FakeSys) sys = fake_sys_new();

    fake_two_socket(sys, TRUE, TRUE);
    fake_write(sys, bad[i][0], bad[i][1]);
    discover_fails(sys, HMMV_ERROR_CORRUPT, strrchr(bad[i][0], '/') + 1, NULL);
  }
}
END_TEST

static Suite *
topology_suite(void)
{
  Suite *suite = suite_create("topology");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_single_node);
  tcase_add_test(tc, test_cpuless_is_slow);
  tcase_add_test(tc, test_kernel_tiers);
  tcase_add_test(tc, test_one_kernel_tier_falls_back);
  tcase_add_test(tc, test_override);
  tcase_add_loop_test(tc, test_bad_cpulist, 0, G_N_ELEMENTS(bad_cpulists));
  tcase_add_loop_test(tc, test_bad_meminfo, 0, G_N_ELEMENTS(bad_meminfos));
  tcase_add_test(tc, test_missing_paths);
  tcase_add_test(tc, test_unusable_nodes);
  tcase_add_test(tc, test_dir_scan);
  tcase_add_test(tc, test_parse_list_random);
  tcase_add_test(tc, test_parse_list_limits);
  tcase_add_test(tc, test_add_node);
  tcase_add_test(tc, test_real_host);
  tcase_add_test(tc, test_two_socket_rank);
  tcase_add_test(tc, test_refresh_free);
  tcase_add_test(tc, test_refresh_free_reads_kept_files);
  tcase_add_test(tc, test_bad_distance);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(topology_suite());
}
