/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What hmmvd reads from libvirt's XML and files (nodesets, numatune, QEMU's pid), and the
 * --qmp NAME=SOCKET spec. No libvirtd needed: the integration suite covers the rest. */
#include "hmmv-test.h"
#include "libvirt.h"
#include "standalone.h"

#include <glib/gstdio.h>
#include <string.h>

/* Brute-force reference: membership of each node 0..63 in a nodeset built from random items. */
START_TEST(test_nodeset_random_vs_reference)
{
  GRand *rand = g_rand_new_with_seed(42);

  for (int round = 0; round < 2000; round++) {
    g_autoptr(GString) text = g_string_new(NULL);
    gboolean member[64] = { FALSE };
    gboolean removed[64] = { FALSE };
    g_autoptr(GError) error = NULL;
    guint64 mask = 0, expected = 0;
    int items = g_rand_int_range(rand, 1, 6);

    for (int i = 0; i < items; i++) {
      int lo = g_rand_int_range(rand, 0, 70), hi = lo + g_rand_int_range(rand, 0, 5);
      gboolean negate = i > 0 && g_rand_boolean(rand);

      if (i > 0)
        g_string_append_c(text, ',');
      if (negate) {
        g_string_append_printf(text, "^%d", lo);
        if (lo < 64)
          removed[lo] = TRUE;
        continue;
      }
      if (hi > lo)
        g_string_append_printf(text, "%d-%d", lo, hi);
      else
        g_string_append_printf(text, "%d", lo);
      for (int n = lo; n <= hi && n < 64; n++)
        member[n] = TRUE;
    }
    for (int n = 0; n < 64; n++)
      if (member[n] && !removed[n])
        expected |= G_GUINT64_CONSTANT(1) << n;
    ck_assert_msg(hmmvd_libvirt_parse_nodeset(text->str, &mask, &error), "%s: %s", text->str,
                  error ? error->message : "");
    ck_assert_msg(mask == expected, "%s: %" G_GINT64_MODIFIER "x != %" G_GINT64_MODIFIER "x",
                  text->str, mask, expected);
  }
  g_rand_free(rand);
}
END_TEST

START_TEST(test_nodeset_errors)
{
  static const char *const bad[] = { "", "a", "1-", "-1", "3-1", "^1-2", "1,,2", "99999",
                                     "1 2", "0x1" };

  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    guint64 mask = 0;

    ck_assert_msg(!hmmvd_libvirt_parse_nodeset(bad[i], &mask, &error), "accepted \"%s\"",
                  bad[i]);
    ck_assert(error != NULL);
  }
}
END_TEST

static char *
domain_with(const char *numatune)
{
  return g_strdup_printf("<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/"
                         "qemu/1.0'><name>d</name><memory unit='KiB'>1024</memory>%s"
                         "<devices><memory model='dimm'><target><node>1</node></target>"
                         "</memory></devices></domain>", numatune);
}

START_TEST(test_numatune)
{
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(1 << 30, 4ull << 30);
  static const struct {
    const char *numatune;
    const char *conflict;       /* substring of the reason, NULL: allowed */
  } cases[] = {
    { "", NULL },
    { "<numatune><memory mode='strict' nodeset='0-1'/></numatune>", NULL },
    { "<numatune><memory mode='strict' nodeset='0'/></numatune>", "forbids every slow node" },
    { "<numatune><memory nodeset='0'/></numatune>", "mode=strict" },   /* default mode */
    { "<numatune><memory mode='restrictive' nodeset='1'/></numatune>",
      "forbids every DRAM node" },
    { "<numatune><memory mode='interleave' nodeset='0,^1'/></numatune>", "every slow node" },
    { "<numatune><memory mode='preferred' nodeset='0'/></numatune>", NULL },
    { "<numatune><memory mode='strict' placement='auto'/></numatune>", NULL },
    /* memnode elements and a <memory> elsewhere do not count */
    { "<numatune><memnode cellid='0' mode='strict' nodeset='0'/></numatune>", NULL },
    { "<numatune><memory mode='strict' nodeset='x'/></numatune>", "numatune: nodeset" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *xml = domain_with(cases[i].numatune);
    g_autofree char *conflict = hmmvd_libvirt_numatune_conflict(xml, topo);

    if (cases[i].conflict == NULL)
      ck_assert_msg(conflict == NULL, "case %zu: %s", i, conflict);
    else
      ck_assert_msg(conflict != NULL && strstr(conflict, cases[i].conflict) != NULL,
                    "case %zu: %s", i, conflict ? conflict : "(allowed)");
  }
  {
    g_autofree char *conflict = hmmvd_libvirt_numatune_conflict("<domain><oops", topo);

    ck_assert(conflict != NULL && strstr(conflict, "domain XML") != NULL);
  }
  {
    /* two sockets: bound to socket 1's DRAM and slow node is managed (it was refused for
     * lacking node 0 and node 2, the lowest-numbered ones) */
    g_autoptr(HmmvTopology) two = hmmv_topology_new();
    g_autofree char *xml = domain_with("<numatune><memory mode='strict' nodeset='1,3'/>"
                                       "</numatune>");
    g_autofree char *xml_dram = domain_with("<numatune><memory mode='strict' nodeset='0-1'/>"
                                            "</numatune>");
    g_autofree char *conflict = NULL;
    g_autofree char *conflict_dram = NULL;

    for (int id = 0; id < 4; id++)
      ck_assert(hmmv_topology_add_node(two, id, 1 << 30, id < 2 ? 2 : 0,
                                       id < 2 ? HMMV_TIER_DRAM : HMMV_TIER_SLOW, NULL));
    conflict = hmmvd_libvirt_numatune_conflict(xml, two);
    ck_assert_msg(conflict == NULL, "%s", conflict);
    conflict_dram = hmmvd_libvirt_numatune_conflict(xml_dram, two);
    ck_assert(conflict_dram != NULL && strstr(conflict_dram, "every slow node") != NULL);
  }
}
END_TEST

/* The nodes numatune binds the domain's memory to: hmmv's pages go to no other node. */
START_TEST(test_numatune_nodes)
{
  static const struct {
    const char *numatune;
    guint64 mask;
  } cases[] = {
    { "", 0 },
    { "<numatune><memory mode='strict' nodeset='1,3'/></numatune>", 0xa },
    { "<numatune><memory nodeset='0-2,^1'/></numatune>", 0x5 },     /* default mode: strict */
    { "<numatune><memory mode='restrictive' nodeset='2'/></numatune>", 0x4 },
    { "<numatune><memory mode='interleave' nodeset='0-3'/></numatune>", 0xf },
    { "<numatune><memory mode='preferred' nodeset='1'/></numatune>", 0 },
    { "<numatune><memory mode='strict' placement='auto'/></numatune>", 0 },
    { "<numatune><memnode cellid='0' mode='strict' nodeset='0'/></numatune>", 0 },
    { "<numatune><memory mode='strict' nodeset='x'/></numatune>", 0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *xml = domain_with(cases[i].numatune);

    ck_assert_msg(hmmvd_libvirt_numatune_nodes(xml) == cases[i].mask, "case %zu: %#" G_GINT64_MODIFIER
                  "x", i, hmmvd_libvirt_numatune_nodes(xml));
  }
  ck_assert_uint_eq(hmmvd_libvirt_numatune_nodes("<domain><oops"), 0);
}
END_TEST

static void
write_file(const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename(dir, name, NULL);

  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

START_TEST(test_read_pid)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-libvirt-XXXXXX", NULL);
  g_autoptr(GError) error = NULL;
  int pid = 0;

  ck_assert(dir != NULL);
  write_file(dir, "a.pid", "1234\n");
  ck_assert(hmmvd_libvirt_read_pid(dir, "a", &pid, &error));
  ck_assert_int_eq(pid, 1234);
  /* No pid file: the <domstatus pid=...> of the status XML. */
  write_file(dir, "b.xml", "<domstatus state='running' reason='booted' pid='4321'>"
                           "<domain type='qemu'><name>b</name></domain></domstatus>");
  ck_assert(hmmvd_libvirt_read_pid(dir, "b", &pid, &error));
  ck_assert_int_eq(pid, 4321);
  /* Bad contents, missing files and names that are not file names are errors. */
  write_file(dir, "c.pid", "-5");
  write_file(dir, "d.pid", "99999999999");
  write_file(dir, "e.xml", "<domstatus state='running'/>");
  write_file(dir, "f.pid", "");
  for (const char *const *name = (const char *const[]){ "c", "d", "e", "f", "missing",
                                                         "../a", "..", NULL };
       *name != NULL; name++) {
    g_autoptr(GError) local_error = NULL;

    ck_assert_msg(!hmmvd_libvirt_read_pid(dir, *name, &pid, &local_error), "%s", *name);
    ck_assert(local_error != NULL);
  }
  for (const char *const *name = (const char *const[]){ "a.pid", "b.xml", "c.pid", "d.pid",
                                                         "e.xml", "f.pid", NULL };
       *name != NULL; name++) {
    g_autofree char *path = g_build_filename(dir, *name, NULL);

    g_unlink(path);
  }
  g_rmdir(dir);
}
END_TEST

START_TEST(test_qmp_spec)
{
  static const char *const bad[] = { "", "vm", "=/s", "vm=", "a/b=/s", "a b=/s" };
  g_autofree char *name = NULL;
  g_autofree char *path = NULL;

  ck_assert(hmmvd_standalone_parse_spec("vm1=/run/q=1.sock", &name, &path, NULL));
  ck_assert_str_eq(name, "vm1");
  ck_assert_str_eq(path, "/run/q=1.sock");
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    char *n = NULL, *p = NULL;

    ck_assert_msg(!hmmvd_standalone_parse_spec(bad[i], &n, &p, &error), "%s", bad[i]);
    ck_assert(error != NULL && n == NULL && p == NULL);
  }
}
END_TEST

static Suite *
libvirt_suite(void)
{
  Suite *suite = suite_create("libvirt");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_nodeset_random_vs_reference);
  tcase_add_test(tc, test_nodeset_errors);
  tcase_add_test(tc, test_numatune);
  tcase_add_test(tc, test_numatune_nodes);
  tcase_add_test(tc, test_read_pid);
  tcase_add_test(tc, test_qmp_spec);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(libvirt_suite());
}
