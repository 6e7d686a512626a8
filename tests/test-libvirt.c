/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What hmmvd reads from libvirt's XML and files (nodesets, numatune, QEMU's pid), the
 * --qmp NAME=SOCKET spec, and what a domain discovered (again) starts with from its hmmv
 * metadata: alone, and through libvirt's in-process test driver. No libvirtd needed: the
 * integration suite covers the rest. */
#include "hmmvd-test.h"
#include "libvirt-metadata.h"
#include "libvirt.h"
#include "standalone.h"

#include <glib/gstdio.h>
#include <libvirt/virterror.h>
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

static const HmmvQuota defaults = { .min_pages = 256, .max_pages = 0, .weight = 100,
                                    .managed = TRUE };

static void
assert_exclude(char **exclude, const char *expected)
{
  g_autofree char *joined = g_strjoinv(";", exclude);

  ck_assert_str_eq(joined, expected);
}

/* issue 9 (C3a): what a domain discovered, or discovered again, starts with. */
START_TEST(test_metadata_verdicts)
{
  HmmvdMetadataMemory *mem = hmmvd_metadata_memory_new();
  const char *const m1[] = { "m1", NULL };
  HmmvQuota quota, good = defaults;
  g_auto(GStrv) exclude = NULL;
  GError *error = NULL;

  /* no element: the defaults, nothing excluded */
  ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u1", NULL, &defaults, &quota, &exclude,
                                               &error), HMMVD_METADATA_ACCEPTED);
  ck_assert(error == NULL);
  ck_assert_mem_eq(&quota, &defaults, sizeof(quota));
  assert_exclude(exclude, "");
  g_clear_pointer(&exclude, g_strfreev);
  /* a good one: its quota and exclusion */
  ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u1", "<memory dram-max-mib=\"2\">"
                                               "<exclude backend=\"m1\"/></memory>", &defaults,
                                               &quota, &exclude, &error),
                   HMMVD_METADATA_ACCEPTED);
  ck_assert_uint_eq(quota.max_pages, 2 * HMMVD_PAGES_PER_MIB);
  assert_exclude(exclude, "m1");
  g_clear_pointer(&exclude, g_strfreev);
  /* never accepted, malformed quota, good exclusion: the default quota and that exclusion */
  ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u1", "<memory dram-max-mib=\"lots\">"
                                               "<exclude backend=\"m2\"/></memory>", &defaults,
                                               &quota, &exclude, &error),
                   HMMVD_METADATA_QUOTA_REJECTED);
  ck_assert_msg(error != NULL && strstr(error->message, "lots") != NULL, "%s",
                error ? error->message : "");
  g_clear_error(&error);
  ck_assert_mem_eq(&quota, &defaults, sizeof(quota));
  assert_exclude(exclude, "m2");
  g_clear_pointer(&exclude, g_strfreev);
  /* never accepted, malformed exclusion: it waits, the error says why */
  ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u1", "<memory dram-max-mib=\"lots\">"
                                               "<exclude backend=\"a b\"/></memory>", &defaults,
                                               &quota, &exclude, &error), HMMVD_METADATA_WAIT);
  ck_assert_msg(error != NULL && strstr(error->message, "a b") != NULL, "%s",
                error ? error->message : "");
  g_clear_error(&error);
  ck_assert(exclude == NULL);
  /* accepted once (remembered): malformed later, whichever part, the last good ones */
  good.max_pages = 2 * HMMVD_PAGES_PER_MIB;
  hmmvd_metadata_memory_remember(mem, "u1", &good, m1);
  for (const char *const *xml = (const char *const[]){
         "<memory dram-max-mib=\"lots\"><exclude backend=\"m2\"/></memory>",
         "<memory><exclude backend=\"a b\"/></memory>", "<memory><exlude/></memory>", NULL };
       *xml != NULL; xml++) {
    ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u1", *xml, &defaults, &quota, &exclude,
                                                 &error), HMMVD_METADATA_LAST_GOOD);
    ck_assert(error != NULL);
    g_clear_error(&error);
    ck_assert_mem_eq(&quota, &good, sizeof(quota));
    assert_exclude(exclude, "m1");
    g_clear_pointer(&exclude, g_strfreev);
  }
  /* by UUID: another domain is not helped by u1's */
  ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u2", "<memory><exlude/></memory>",
                                               &defaults, &quota, &exclude, &error),
                   HMMVD_METADATA_WAIT);
  g_clear_error(&error);
  /* a good element wins over the memory */
  ck_assert_int_eq(hmmvd_metadata_at_discovery(mem, "u1", "<memory/>", &defaults, &quota,
                                               &exclude, &error), HMMVD_METADATA_ACCEPTED);
  assert_exclude(exclude, "");
  hmmvd_metadata_memory_free(mem);
}
END_TEST

/* Bounded: the oldest remembered goes first; remembering again updates in place. */
START_TEST(test_metadata_memory_bounded)
{
  HmmvdMetadataMemory *mem = hmmvd_metadata_memory_new();
  const char *const m1[] = { "m1", NULL };
  g_auto(GStrv) exclude = NULL;
  HmmvQuota quota = defaults;

  for (guint i = 0; i < HMMVD_METADATA_MEMORY_MAX + 10; i++) {
    g_autofree char *uuid = g_strdup_printf("uuid-%u", i);

    quota.weight = 1 + i % 100;
    hmmvd_metadata_memory_remember(mem, uuid, &quota, i == 10 ? m1 : NULL);
    if (i == 0)
      hmmvd_metadata_memory_remember(mem, uuid, &quota, NULL);   /* the same again */
  }
  ck_assert_uint_eq(hmmvd_metadata_memory_size(mem), HMMVD_METADATA_MEMORY_MAX);
  for (guint i = 0; i < 10; i++) {
    g_autofree char *uuid = g_strdup_printf("uuid-%u", i);

    ck_assert(!hmmvd_metadata_memory_recall(mem, uuid, NULL, NULL));
  }
  ck_assert(hmmvd_metadata_memory_recall(mem, "uuid-10", &quota, &exclude));
  ck_assert_uint_eq(quota.weight, 11);
  assert_exclude(exclude, "m1");
  g_clear_pointer(&exclude, g_strfreev);
  quota.weight = 77;
  hmmvd_metadata_memory_remember(mem, "uuid-10", &quota, NULL);
  ck_assert_uint_eq(hmmvd_metadata_memory_size(mem), HMMVD_METADATA_MEMORY_MAX);
  ck_assert(hmmvd_metadata_memory_recall(mem, "uuid-10", &quota, &exclude));
  ck_assert_uint_eq(quota.weight, 77);
  assert_exclude(exclude, "");
  ck_assert(!hmmvd_metadata_memory_recall(mem, NULL, NULL, NULL));
  hmmvd_metadata_memory_free(mem);
}
END_TEST

/* libvirt's in-process test driver (as in test-control-served.c): its domains' events reach
 * hmmvd's callbacks on the default main context; it has no QEMU monitor, so a start-up that
 * goes ahead fails at its first QMP exchange ("tracking failed"), one that waits for its
 * metadata never gets there. */
#define TEST_URI "test:///default"
#define HMMV_NS "xmlns:hmmv='" HMMVD_METADATA_URI "'"

static virDomainPtr
create_domain(virConnectPtr conn, const char *name, const char *uuid, const char *metadata)
{
  g_autofree char *xml = g_strdup_printf("<domain type='test'><name>%s</name><uuid>%s</uuid>"
                                         "<memory unit='KiB'>4096</memory><os><type>hvm"
                                         "</type></os><metadata>%s</metadata></domain>", name,
                                         uuid, metadata);
  virDomainPtr dom = virDomainCreateXML(conn, xml, 0);

  ck_assert_msg(dom != NULL, "%s", virGetLastErrorMessage());
  return dom;
}

/* Its entry once no start-up is under way, or NULL at the deadline (60 s: liveness only). */
static HmmvdVmInfo *
wait_settled(HmmvdVms *vms, const char *name)
{
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
  HmmvdVmInfo *info;

  while (((info = hmmvd_vms_lookup(vms, name)) == NULL ||
          g_str_has_prefix(info->status, "starting")) && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  return info != NULL && !g_str_has_prefix(info->status, "starting") ? info : NULL;
}

static void
wait_gone(HmmvdVms *vms, const char *name)
{
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  while (hmmvd_vms_lookup(vms, name) != NULL && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_ptr_null(hmmvd_vms_lookup(vms, name));
}

static void
assert_info_exclude(const HmmvdVmInfo *info, const char *expected)
{
  g_autofree char *joined = info->exclude != NULL ? g_strjoinv(";", info->exclude)
                                                  : g_strdup("");

  ck_assert_msg(strcmp(joined, expected) == 0, "vm %s excludes [%s], expected [%s]",
                info->name, joined, expected);
}

/* issue 9 (C3a), what broke the libvirt integration test: a domain hmmvd accepted metadata of,
 * dropped and discovered again while its metadata is malformed keeps its last good quota and
 * exclusion (it was left unmanaged); a domain never seen with a malformed <exclude> waits,
 * unmanaged, saying why, and is discovered when it is fixed; a never-seen domain with a
 * malformed quota alone goes ahead with the default quota and its exclusion. */
START_TEST(test_rediscovered_keeps_last_good)
{
  static const char *const names[] = { "hmmv-lg-a", "hmmv-lg-b", "hmmv-lg-c" };
  static const char ua[] = "6a1c3e52-6f53-4a0e-8d21-000000000a01";
  static const char ub[] = "6a1c3e52-6f53-4a0e-8d21-000000000b02";
  static const char uc[] = "6a1c3e52-6f53-4a0e-8d21-000000000c03";
  g_autofree char *run_dir = g_dir_make_tmp("hmmv-test-libvirt-lg-XXXXXX", NULL);
  g_autofree char *fixed = NULL;
  g_autoptr(GError) error = NULL;
  HmmvdTestBed bed;
  HmmvdLibvirt *lv;
  virConnectPtr peer;
  virDomainPtr a, b, c;
  HmmvdVmInfo *info;
  HmmvQuota good;

  ck_assert(run_dir != NULL);
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *file = g_strdup_printf("%s.pid", names[i]);
    g_autofree char *pid = g_strdup_printf("%d\n", (int)getpid());

    write_file(run_dir, file, pid);
  }
  hmmvd_test_bed_init(&bed, 64ull << 20, 256ull << 20, NULL);
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_strdup(TEST_URI);
  g_free(bed.config.libvirt_run_dir);
  bed.config.libvirt_run_dir = g_strdup(run_dir);
  lv = hmmvd_libvirt_new(bed.vms, &bed.config, bed.topo, &error);
  ck_assert_msg(lv != NULL, "%s", error ? error->message : "");
  /* connected on libvirt's calls thread, the result applied on this one (60 s: liveness) */
  {
    gint64 until = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while (!hmmvd_libvirt_is_connected(lv) && g_get_monotonic_time() < until)
      g_main_context_iteration(NULL, TRUE);
  }
  ck_assert(hmmvd_libvirt_is_connected(lv));
  peer = virConnectOpen(TEST_URI);
  ck_assert_ptr_nonnull(peer);

  /* A: accepted at its discovery (quota and exclusion), so remembered */
  a = create_domain(peer, names[0], ua, "<hmmv:memory " HMMV_NS " dram-max-mib='2'>"
                    "<hmmv:exclude backend='m1'/></hmmv:memory>");
  info = wait_settled(bed.vms, names[0]);
  ck_assert_ptr_nonnull(info);
  ck_assert_msg(g_str_has_prefix(info->status, "tracking failed"), "%s", info->status);
  ck_assert_uint_eq(info->quota.max_pages, 2 * HMMVD_PAGES_PER_MIB);
  ck_assert_ptr_null(info->quota_error);
  assert_info_exclude(info, "m1");
  good = info->quota;
  /* its QEMU goes, and comes back (same UUID) with a malformed element: last good kept */
  ck_assert_int_eq(virDomainDestroy(a), 0);
  virDomainFree(a);
  wait_gone(bed.vms, names[0]);
  a = create_domain(peer, names[0], ua, "<hmmv:memory " HMMV_NS " dram-max-mib='lots'>"
                    "<hmmv:exclude backend='m2'/></hmmv:memory>");
  info = wait_settled(bed.vms, names[0]);
  ck_assert_ptr_nonnull(info);
  ck_assert_msg(g_str_has_prefix(info->status, "tracking failed"), "went ahead: %s",
                info->status);
  ck_assert_mem_eq(&info->quota, &good, sizeof(good));
  assert_info_exclude(info, "m1");
  ck_assert_msg(info->quota_error != NULL && strstr(info->quota_error, "lots") != NULL, "%s",
                info->quota_error ? info->quota_error : "(none)");

  /* B: never seen, a malformed <exclude>: waits, unmanaged, saying why */
  b = create_domain(peer, names[1], ub, "<hmmv:memory " HMMV_NS " dram-max-mib='lots'>"
                    "<hmmv:exclude backend='a b'/></hmmv:memory>");
  info = wait_settled(bed.vms, names[1]);
  ck_assert_ptr_nonnull(info);
  ck_assert_msg(g_str_has_prefix(info->status, HMMVD_METADATA_REJECTED) &&
                strstr(info->status, "\"a b\"") != NULL &&
                strstr(info->status, "not managed until it is fixed") != NULL, "%s",
                info->status);
  ck_assert(!info->in_core);

  /* C: never seen, a malformed quota alone: the default quota and its exclusion */
  c = create_domain(peer, names[2], uc, "<hmmv:memory " HMMV_NS " dram-max-mib='lots'>"
                    "<hmmv:exclude backend='m1'/></hmmv:memory>");
  info = wait_settled(bed.vms, names[2]);
  ck_assert_ptr_nonnull(info);
  ck_assert_msg(g_str_has_prefix(info->status, "tracking failed"), "%s", info->status);
  ck_assert_mem_eq(&info->quota, &bed.config.default_quota, sizeof(HmmvQuota));
  assert_info_exclude(info, "m1");
  ck_assert(info->quota_error != NULL && strstr(info->quota_error, "lots") != NULL);

  /* B's element fixed (virsh metadata): the metadata event discovers it again */
  fixed = g_strdup("<memory dram-max-mib='3'><exclude backend='m3'/></memory>");
  ck_assert_int_eq(virDomainSetMetadata(b, VIR_DOMAIN_METADATA_ELEMENT, fixed,
                                        HMMVD_METADATA_KEY, HMMVD_METADATA_URI,
                                        VIR_DOMAIN_AFFECT_LIVE), 0);
  {
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while (((info = hmmvd_vms_lookup(bed.vms, names[1])) == NULL ||
            !g_str_has_prefix(info->status, "tracking failed")) &&
           g_get_monotonic_time() < deadline)
      g_main_context_iteration(NULL, TRUE);
  }
  ck_assert_ptr_nonnull(info);
  ck_assert_msg(g_str_has_prefix(info->status, "tracking failed"), "%s", info->status);
  ck_assert_uint_eq(info->quota.max_pages, 3 * HMMVD_PAGES_PER_MIB);
  assert_info_exclude(info, "m3");
  ck_assert_ptr_null(info->quota_error);

  for (virDomainPtr *dom = (virDomainPtr[]){ a, b, c, NULL }; *dom != NULL; dom++) {
    ck_assert_int_eq(virDomainDestroy(*dom), 0);
    virDomainFree(*dom);
  }
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *path = g_strdup_printf("%s/%s.pid", run_dir, names[i]);

    wait_gone(bed.vms, names[i]);
    ck_assert_int_eq(g_unlink(path), 0);
  }
  hmmvd_libvirt_free(lv);
  virConnectClose(peer);
  hmmvd_test_bed_clear(&bed);
  ck_assert_int_eq(g_rmdir(run_dir), 0);
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
  tcase_add_test(tc, test_metadata_verdicts);
  tcase_add_test(tc, test_metadata_memory_bounded);
  tcase_add_test(tc, test_rediscovered_keeps_last_good);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(libvirt_suite());
}
