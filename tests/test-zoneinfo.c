/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The /proc/zoneinfo parser (libhmmv/topology-zoneinfo.c): real texts captured from the
 * testbed's 6.12 and 6.1 kernels (2node layout, after THP off, as the race runs them) and
 * from this project's build host (6.18, one node), in tests/zoneinfo/; the same texts cut at
 * every byte (a read so far, or a file cut short: never a wrong figure); and malformed ones
 * (a clear error); and the real host's, read by refresh_free.
 */
#include "hmmv-test.h"
#include "topology-private.h"

#include <hmmv/error.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  const char *file;
  guint nr_nodes;
  guint64 free[2], usable[2];
} RealText;

/* Expected figures worked out by hand from each file's "pages free", "min" and the Movable
 * entry of "protection" (e.g. testbed 6.12 node 0: DMA 3776 - 10 - 947 = 2819, DMA32
 * 232244 - 668 - 0 = 231576, the empty Normal, Movable and Device zones 0: 234395). */
static const RealText real_texts[] = {
  { "testbed-6.12-2node.txt", 2, { 236020, 251955 }, { 234395, 251249 } },
  { "testbed-6.1-2node.txt", 2, { 232764, 255900 }, { 231150, 255193 } },
  { "host-6.18-1node.txt", 1, { 1789013, 0 }, { 1761776, 0 } },
};

static char *
load(const char *name, gsize *len)
{
  g_autofree char *path = g_build_filename(HMMV_SOURCE_ROOT, "tests", "zoneinfo", name, NULL);
  g_autoptr(GError) error = NULL;
  char *text = NULL;

  ck_assert_msg(g_file_get_contents(path, &text, len, &error), "%s",
                error != NULL ? error->message : "?");
  return text;
}

static HmmvZoneinfoNode *
parse_ok(const char *text, gsize len, gboolean whole)
{
  HmmvZoneinfoNode *nodes = g_new0(HmmvZoneinfoNode, HMMV_MAX_NODE_ID + 1);
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_zoneinfo_parse(text, len, whole, nodes, &error), "%s",
                error != NULL ? error->message : "?");
  return nodes;
}

START_TEST(test_real_texts)
{
  const RealText *real = &real_texts[_i];
  gsize len;
  g_autofree char *text = load(real->file, &len);
  g_autofree HmmvZoneinfoNode *nodes = parse_ok(text, len, TRUE);

  for (guint id = 0; id <= HMMV_MAX_NODE_ID; id++) {
    if (id >= real->nr_nodes) {
      ck_assert_msg(!nodes[id].complete, "%s: node %u", real->file, id);
      continue;
    }
    ck_assert_msg(nodes[id].complete && nodes[id].nr_zones == 5, "%s node %u", real->file, id);
    ck_assert_uint_eq(nodes[id].free_pages, real->free[id]);
    ck_assert_uint_eq(nodes[id].usable_pages, real->usable[id]);
    ck_assert_uint_eq(nodes[id].kept_pages, real->free[id] - real->usable[id]);
  }
}
END_TEST

/* Every prefix of a real text: as a read so far it parses, each node complete or not, and a
 * complete node has exactly the whole text's figures; as a whole file it fails clearly
 * unless the cut falls between two nodes (then the missing node is simply absent, which
 * refresh_free reports). A cut never yields a wrong figure. */
START_TEST(test_every_cut)
{
  const RealText *real = &real_texts[_i];
  gsize len;
  g_autofree char *text = load(real->file, &len);
  g_autofree HmmvZoneinfoNode *full = parse_ok(text, len, TRUE);
  gsize complete_at[2];
  guint whole_ok = 0;

  for (guint id = 0; id < real->nr_nodes; id++) {
    g_autofree char *next = g_strdup_printf("Node %u, zone", id + 1);
    const char *end = strstr(text, next);
    const char *last = g_strrstr_len(text, end != NULL ? end - text : (gssize)len,
                                     "protection:");

    complete_at[id] = (gsize)(strchr(last, '\n') + 1 - text);
  }

  for (gsize cut = 0; cut < len; cut++) {
    g_autofree HmmvZoneinfoNode *part = parse_ok(text, cut, FALSE);
    HmmvZoneinfoNode whole[HMMV_MAX_NODE_ID + 1];
    g_autoptr(GError) error = NULL;

    for (guint id = 0; id < real->nr_nodes; id++) {
      if (part[id].complete) {
        ck_assert_uint_eq(part[id].usable_pages, full[id].usable_pages);
        ck_assert_uint_eq(part[id].free_pages, full[id].free_pages);
      }
    }
    /* a node completes with its last zone's protection line, not before */
    for (guint id = 0; id < real->nr_nodes; id++)
      ck_assert_msg(part[id].complete == (cut >= complete_at[id]), "%s cut %zu node %u",
                    real->file, cut, id);
    if (hmmv_zoneinfo_parse(text, cut, TRUE, whole, &error)) {
      whole_ok++;
      ck_assert(cut == 0 ? FALSE : text[cut - 1] == '\n');
      ck_assert(g_str_has_prefix(text + cut, "Node "));
      for (guint id = 0; id < real->nr_nodes; id++)
        ck_assert(!whole[id].complete || whole[id].usable_pages == full[id].usable_pages);
    } else {
      ck_assert_int_eq(error->code, HMMV_ERROR_CORRUPT);
      ck_assert_ptr_nonnull(strstr(error->message, "zoneinfo"));
    }
  }
  /* between the nodes: at every "Node N, zone" header of a new node, no other cut */
  ck_assert_uint_eq(whole_ok, real->nr_nodes - 1);
}
END_TEST

/* A zone below its min mark plus protection gives nothing; the rest is summed. */
START_TEST(test_rule)
{
  static const char text[] =
      "Node 0, zone      DMA\n"
      "  pages free     900\n"
      "        boost    0\n"
      "        min      10\n"
      "        low      13\n"
      "        protection: (0, 947, 947, 947)\n"
      "Node 0, zone    DMA32\n"
      "  pages free     5000\n"
      "        boost    100\n"
      "        min      768\n"
      "        low      900\n"
      "        protection: (0, 0, 200, 200)\n"
      "  pagesets\n"
      "    cpu: 0\n"
      "              count: 400\n"
      "              high:  900\n"
      "Node 0, zone   Normal\n"
      "  pages free     0\n"
      "        min      0\n"
      "        protection: (0, 0, 0, 0)\n"
      "Node 0, zone  Movable\n"
      "  pages free     7\n"
      "        min      32\n"
      "        protection: (0, 0, 0, 0)\n"
      "Node 1, zone   Normal\n"
      "  pages free     100\n"
      "        min      20\n"
      "        protection: (0, 0, 0, 0)\n";
  g_autofree HmmvZoneinfoNode *nodes = parse_ok(text, sizeof(text) - 1, FALSE);
  HmmvZoneinfoNode whole[HMMV_MAX_NODE_ID + 1];
  g_autoptr(GError) error = NULL;

  /* DMA 900 <= 10 + 947: 0; DMA32 5000 - 768 - 200 = 4032; Movable 7 < 32: 0 */
  ck_assert(nodes[0].complete);
  ck_assert_uint_eq(nodes[0].free_pages, 5907);
  ck_assert_uint_eq(nodes[0].usable_pages, 4032);
  ck_assert_uint_eq(nodes[0].kept_pages, 5907 - 4032);
  /* node 1 lists one zone against protection arrays of 4: cut short; as a whole file, an
   * error that names it */
  ck_assert(!nodes[1].complete);
  ck_assert(!hmmv_zoneinfo_parse(text, sizeof(text) - 1, TRUE, whole, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "node 1"));
}
END_TEST

/* Texts the kernel does not print: a CORRUPT error that says where. */
static const struct {
  const char *from, *to, *says;
} bad_edits[] = {
  { "pages free     3776", "pages free     lots", "line 50" },
  { "pages free     3776", "pages free     -3776", "line 50" },
  { "pages free     3776", "pages free     99999999999999999999", "line 50" },
  { "min      10\n", "min      ten\n", "line 52" },
  { "protection: (0, 947, 947, 947, 947)", "protection: (0, 947, x, 947, 947)", "line 60" },
  { "protection: (0, 947, 947, 947, 947)", "protection: 0, 947, 947, 947, 947", "line 60" },
  { "protection: (0, 947, 947, 947, 947)", "protection: (0, 947, 947, 947)", "entries" },
  { "protection: (0, 947, 947, 947, 947)", "protection: (0, 1, 2, 3, 4, 5, 6, 7, 8)",
    "more than 8" },
  { "Node 0, zone      DMA", "Node zero, zone      DMA", "line 1" },
  { "Node 0, zone      DMA", "Node 0 zone      DMA", "line 1" },
  { "Node 1, zone      DMA", "Node 0, zone      DMA", "lists 6 zones" },
  { "zone  Movable", "zone  Moveable", "no Movable zone" },
  { "  pages free     3776\n", "", "pages free" },
  { "        min      10\n", "", "\"min\"" },
  { "        protection: (0, 947, 947, 947, 947)", "        protectio", "protection" },
  { "Node 0, zone      DMA", "junk\nNode 0, zone      DMA", "before the first" },
  { "Node 0, zone    DMA32", "Node 0, zone    DMA32-and-then-some", "longer than 15" },
};

static char *
edit(const char *text, const char *from, const char *to)
{
  const char *at = strstr(text, from);

  ck_assert_msg(at != NULL, "no \"%s\" in the text", from);
  return g_strdup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

START_TEST(test_bad)
{
  gsize len;
  g_autofree char *text = load("testbed-6.12-2node.txt", &len);
  g_autofree char *bad = edit(text, bad_edits[_i].from, bad_edits[_i].to);
  HmmvZoneinfoNode nodes[HMMV_MAX_NODE_ID + 1];
  g_autoptr(GError) error = NULL;

  ck_assert_msg(!hmmv_zoneinfo_parse(bad, strlen(bad), TRUE, nodes, &error), "edit %d", _i);
  ck_assert_int_eq(error->code, HMMV_ERROR_CORRUPT);
  ck_assert_msg(strstr(error->message, bad_edits[_i].says) != NULL, "edit %d: %s", _i,
                error->message);
}
END_TEST

/* A NUL byte, a last line without its newline, nothing at all, nodes out of order. */
START_TEST(test_bad_shapes)
{
  gsize len;
  g_autofree char *text = load("testbed-6.12-2node.txt", &len);
  g_autofree char *node1 = g_strdup(strstr(text, "Node 1, zone"));
  g_autofree char *swapped = g_strdup_printf("%s%.*s", node1,
                                             (int)(strstr(text, "Node 1, zone") - text), text);
  HmmvZoneinfoNode nodes[HMMV_MAX_NODE_ID + 1];
  g_autoptr(GError) error = NULL;
  char *copy = g_memdup2(text, len);

  copy[100] = '\0';
  ck_assert(!hmmv_zoneinfo_parse(copy, len, TRUE, nodes, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "NUL"));
  g_clear_error(&error);
  g_free(copy);
  ck_assert(!hmmv_zoneinfo_parse(text, len - 1, TRUE, nodes, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "middle of a line"));
  g_clear_error(&error);
  ck_assert(!hmmv_zoneinfo_parse("", 0, TRUE, nodes, &error));
  g_clear_error(&error);
  ck_assert(!hmmv_zoneinfo_parse(swapped, strlen(swapped), TRUE, nodes, &error));
  ck_assert_ptr_nonnull(strstr(error->message, "ascending"));
}
END_TEST

/* Node ids above HMMV_MAX_NODE_ID are checked but not counted. */
START_TEST(test_high_node)
{
  gsize len;
  g_autofree char *text = load("host-6.18-1node.txt", &len);
  g_autofree char *high = NULL;
  g_autofree HmmvZoneinfoNode *nodes = NULL;
  g_auto(GStrv) parts = g_strsplit(text, "Node 0,", -1);

  high = g_strjoinv("Node 40,", parts);
  nodes = parse_ok(high, strlen(high), TRUE);
  for (guint id = 0; id <= HMMV_MAX_NODE_ID; id++)
    ck_assert(!nodes[id].complete);
}
END_TEST

/* The real /proc/zoneinfo through refresh_free: the kernel's seq_file hands out whole nodes,
 * so a refresh takes at most one read a node up to the last one used, whatever the buffer;
 * the cost figure is printed (reads and wall time a refresh, over 1000), not asserted. */
START_TEST(test_real_host_refresh)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new_from_host(NULL, &error);
  guint nr;
  int last;
  gint64 wall_us;

  if (topo == NULL) {
    fprintf(stderr, "# no NUMA topology here (%s): nothing to read\n", error->message);
    return;
  }
  nr = hmmv_topology_get_nr_nodes(topo);
  last = hmmv_topology_get_node(topo, nr - 1)->id;
  wall_us = g_get_monotonic_time();
  for (guint r = 0; r < 1000; r++)
    ck_assert_msg(hmmv_topology_refresh_free(topo, &error), "%s", error->message);
  wall_us = g_get_monotonic_time() - wall_us;
  ck_assert_uint_eq(topo->free_opens, 1);
  ck_assert_uint_le(topo->free_reads, 1000 * (guint64)(last + 1));
  for (guint i = 0; i < nr; i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);

    ck_assert_uint_le(node->free_bytes, node->total_bytes);
  }
  fprintf(stderr, "# real zoneinfo: %u node(s) used, %.2f reads and %.1f us (wall) a "
          "refresh\n", nr, topo->free_reads / 1000.0, wall_us / 1000.0);
}
END_TEST

static Suite *
zoneinfo_suite(void)
{
  Suite *suite = suite_create("zoneinfo");
  TCase *tc = tcase_create("core");

  tcase_add_loop_test(tc, test_real_texts, 0, G_N_ELEMENTS(real_texts));
  tcase_add_loop_test(tc, test_every_cut, 0, G_N_ELEMENTS(real_texts));
  tcase_add_test(tc, test_rule);
  tcase_add_loop_test(tc, test_bad, 0, G_N_ELEMENTS(bad_edits));
  tcase_add_test(tc, test_bad_shapes);
  tcase_add_test(tc, test_high_node);
  tcase_add_test(tc, test_real_host_refresh);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(zoneinfo_suite());
}
