/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvd.conf: defaults, the shipped file, every key, and located errors. */
#include "config.h"
#include "hmmv-test.h"

#include <glib/gstdio.h>
#include <string.h>

#define SHIPPED_CONF HMMV_SOURCE_ROOT "/configs/hmmvd.conf"
/* [daemon] 3 + [libvirt] 4 + [memory] 8 + [policy] 9 + [defaults] 4 + [reads] 2 + [metrics] 2 */
#define NR_KEYS 34

static char *tmpdir;

static void
setup(void)
{
  tmpdir = g_dir_make_tmp("hmmv-test-config-XXXXXX", NULL);
  ck_assert(tmpdir != NULL);
}

static void
teardown(void)
{
  hmmv_test_remove_tree(tmpdir);
  g_clear_pointer(&tmpdir, g_free);
}

static char *
write_conf(const char *text)
{
  char *path = g_build_filename(tmpdir, "hmmvd.conf", NULL);

  ck_assert(g_file_set_contents(path, text, -1, NULL));
  return path;
}

static void
assert_config_equal(const HmmvdConfig *a, const HmmvdConfig *b)
{
  ck_assert_uint_eq(a->interval_ms, b->interval_ms);
  ck_assert_str_eq(a->control_socket, b->control_socket);
  ck_assert_str_eq(a->log_level, b->log_level);
  ck_assert_int_eq(!!a->libvirt_enabled, !!b->libvirt_enabled);
  ck_assert_str_eq(a->libvirt_uri, b->libvirt_uri);
  ck_assert_uint_eq(a->reconnect_ms, b->reconnect_ms);
  ck_assert_str_eq(a->libvirt_run_dir, b->libvirt_run_dir);
  ck_assert_uint_eq(a->qmp_connections, b->qmp_connections);
  ck_assert_uint_eq(a->dram_pool_mib, b->dram_pool_mib);
  ck_assert_str_eq(a->mover, b->mover);
  ck_assert_str_eq(a->reads_source, b->reads_source);
  ck_assert_str_eq(a->reads_run_dir, b->reads_run_dir);
  ck_assert(g_strv_equal((const char *const *)a->slow_nodes,
                         (const char *const *)b->slow_nodes));
  ck_assert(g_strv_equal((const char *const *)a->dram_nodes,
                         (const char *const *)b->dram_nodes));
  ck_assert_uint_eq(a->sim_dram_mib, b->sim_dram_mib);
  ck_assert_uint_eq(a->sim_slow_mib, b->sim_slow_mib);
  ck_assert_mem_eq(&a->params, &b->params, sizeof(a->params));
  ck_assert_mem_eq(&a->default_quota, &b->default_quota, sizeof(a->default_quota));
  ck_assert_str_eq(a->metrics_listen, b->metrics_listen);
  ck_assert_str_eq(a->metrics_textfile, b->metrics_textfile);
}

START_TEST(test_defaults)
{
  g_auto(HmmvdConfig) config = { 0 };
  HmmvParams params;

  hmmvd_config_init(&config);
  hmmv_params_init(&params);
  ck_assert_mem_eq(&config.params, &params, sizeof(params));
  ck_assert_uint_eq(config.interval_ms, 1000);
  ck_assert_str_eq(config.control_socket, "/run/hmmv/hmmvd.sock");
  ck_assert_str_eq(config.libvirt_uri, "qemu:///system");
  ck_assert(config.libvirt_enabled);
  ck_assert_uint_eq(config.default_quota.weight, 100);
  ck_assert(config.default_quota.managed);
  ck_assert_str_eq(config.metrics_listen, "");
  ck_assert(hmmv_params_validate(&config.params, NULL));
}
END_TEST

/* move-share-percent is on by default at 50 (issue 7): without the key, the moves of an interval
 * are sized to half of it at the mover's learnt speed; 0 still turns the sizing off. */
START_TEST(test_move_share_default)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_auto(HmmvdConfig) config = { 0 };
  g_auto(HmmvdConfig) off = { 0 };
  HmmvParams params;

  hmmv_params_init(&params);
  ck_assert_uint_eq(params.move_share_percent, 50);
  path = write_conf("[policy]\nmigrate-mbps = 100\n");
  hmmvd_config_init(&config);
  ck_assert_msg(hmmvd_config_load(&config, path, &error), "%s", error ? error->message : "");
  ck_assert_uint_eq(config.params.move_share_percent, 50);
  g_free(path);
  path = write_conf("[policy]\nmove-share-percent = 0\n");
  hmmvd_config_init(&off);
  ck_assert_msg(hmmvd_config_load(&off, path, &error), "%s", error ? error->message : "");
  ck_assert_uint_eq(off.params.move_share_percent, 0);
  ck_assert(hmmv_params_validate(&off.params, NULL));
}
END_TEST

/* The shipped file documents the defaults: loading it changes nothing. */
START_TEST(test_shipped_file_is_the_defaults)
{
  g_autoptr(GError) error = NULL;
  g_auto(HmmvdConfig) defaults = { 0 };
  g_auto(HmmvdConfig) config = { 0 };

  hmmvd_config_init(&defaults);
  hmmvd_config_init(&config);
  ck_assert_msg(hmmvd_config_load(&config, SHIPPED_CONF, &error), "%s", error->message);
  assert_config_equal(&config, &defaults);
}
END_TEST

/* Uncommenting every "# key = value" line still parses, to the same defaults: the documented
 * defaults are the code's, and every key is documented. */
START_TEST(test_shipped_file_uncommented)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GRegex) key_line = g_regex_new("^# ([a-z][a-z0-9-]*) =( |$)", 0, 0, NULL);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GString) out = g_string_new(NULL);
  g_autofree char *path = NULL;
  g_auto(HmmvdConfig) defaults = { 0 };
  g_auto(HmmvdConfig) config = { 0 };
  guint uncommented = 0;

  ck_assert(g_file_get_contents(SHIPPED_CONF, &text, NULL, NULL));
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    gboolean is_key = g_regex_match(key_line, lines[i], 0, NULL);

    g_string_append_printf(out, "%s\n", is_key ? lines[i] + 2 : lines[i]);
    uncommented += is_key ? 1 : 0;
  }
  ck_assert_uint_eq(uncommented, NR_KEYS);
  path = write_conf(out->str);
  hmmvd_config_init(&defaults);
  hmmvd_config_init(&config);
  ck_assert_msg(hmmvd_config_load(&config, path, &error), "%s", error ? error->message : "");
  assert_config_equal(&config, &defaults);
}
END_TEST

START_TEST(test_every_key)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = write_conf(
    "[daemon]\ninterval-ms = 500\ncontrol-socket = /tmp/x/ctl.sock\n"
    "log-level = debug\n"
    "[libvirt]\nenabled = no\nuri = qemu+ssh://h/system\nreconnect-ms = 5000\n"
    "run-dir = /var/run/lv\nqmp-connections = 3\n"
    "[memory]\ndram-pool-mib = 4096\nmover = sim\nslow-nodes = 2;3\ndram-nodes = 0, 1\n"
    "sim-dram-mib = 1024\nsim-slow-mib = 8192\nnode-pool-mib = 0:2048; 1 : 1024\n"
    "node-reserve-mib = 64\n"
    "[policy]\nwrite-weight = 3\nread-weight = 0\n"
    "hysteresis-keys = 32\ncooldown-intervals = 3\npromote-min-key = 0x20\n"
    "migrate-mbps = 0\nhost-migrate-mbps = 2500\nmove-cost-ns = 0\ntouch-saving-ns = 100\n"
    "move-share-percent = 80\n"
    "[defaults]\ndram-min-mib = 128\ndram-max-mib = 512\nweight = 7\nmanaged = false\n"
    "[metrics]\nlisten = [::1]:9000\ntextfile = /var/lib/hmmv.prom\n");
  g_auto(HmmvdConfig) config = { 0 };

  hmmvd_config_init(&config);
  ck_assert_msg(hmmvd_config_load(&config, path, &error), "%s", error ? error->message : "");
  ck_assert_uint_eq(config.interval_ms, 500);
  ck_assert_uint_eq(config.params.interval_ms, 500);
  ck_assert_str_eq(config.control_socket, "/tmp/x/ctl.sock");
  ck_assert_str_eq(config.log_level, "debug");
  ck_assert(!config.libvirt_enabled);
  ck_assert_str_eq(config.libvirt_uri, "qemu+ssh://h/system");
  ck_assert_uint_eq(config.reconnect_ms, 5000);
  ck_assert_str_eq(config.libvirt_run_dir, "/var/run/lv");
  ck_assert_uint_eq(config.qmp_connections, 3);
  ck_assert_uint_eq(config.dram_pool_mib, 4096);
  ck_assert_str_eq(config.mover, "sim");
  ck_assert(g_strv_equal((const char *const *)config.slow_nodes,
                         (const char *const[]){ "2", "3", NULL }));
  ck_assert(g_strv_equal((const char *const *)config.dram_nodes,
                         (const char *const[]){ "0", "1", NULL }));
  ck_assert_uint_eq(config.sim_dram_mib, 1024);
  ck_assert_uint_eq(config.sim_slow_mib, 8192);
  ck_assert_uint_eq(config.node_pool_pages[0], 2048 * 256);
  ck_assert_uint_eq(config.node_pool_pages[1], 1024 * 256);
  ck_assert_uint_eq(config.node_pool_pages[2], 0);
  ck_assert_uint_eq(config.node_reserve_pages, 64 * 256);
  ck_assert_uint_eq(config.params.write_weight, 3);
  ck_assert_uint_eq(config.params.read_weight, 0);
  ck_assert_uint_eq(config.params.hysteresis_keys, 32);
  ck_assert_uint_eq(config.params.cooldown_intervals, 3);
  ck_assert_uint_eq(config.params.promote_min_key, 0x20);
  ck_assert_uint_eq(config.params.migrate_mbps, 0);
  ck_assert_uint_eq(config.params.host_migrate_mbps, 2500);
  ck_assert_uint_eq(config.params.move_cost_ns, 0);
  ck_assert_uint_eq(config.params.touch_saving_ns, 100);
  ck_assert_uint_eq(config.params.move_share_percent, 80);
  ck_assert_uint_eq(config.default_quota.min_pages, 128 * 256);
  ck_assert_uint_eq(config.default_quota.max_pages, 512 * 256);
  ck_assert_uint_eq(config.default_quota.weight, 7);
  ck_assert(!config.default_quota.managed);
  ck_assert_str_eq(config.metrics_listen, "[::1]:9000");
  ck_assert_str_eq(config.metrics_textfile, "/var/lib/hmmv.prom");
}
END_TEST

static const struct {
  const char *text;
  const char *expect;   /* after "PATH" */
} bad_files[] = {
  { "[daemon]\n\n[bogus]\nx = 1\n", ":3: [bogus]: unknown group" },
  { "[daemon]\ninterval-ms = 100\n  colour = red\n", ":3: [daemon] colour: unknown key" },
  { "[daemon]\ninterval-ms = abc\n", ":2: [daemon] interval-ms: \"abc\" is not a whole number" },
  { "[daemon]\ninterval-ms = 5\n", ":2: [daemon] interval-ms: interval_ms = 5 is out of range" },
  { "[daemon]\ninterval-ms = -100\n", ":2: [daemon] interval-ms: \"-100\" is negative" },
  { "[daemon]\ninterval-ms = 99999999999\n", ":2: [daemon] interval-ms: 99999999999 is out" },
  { "[daemon]\ninterval-ms = 1000 # one second\n", ":2: [daemon] interval-ms: " },
  { "[daemon]\ninterval-ms =\n", ":2: [daemon] interval-ms: empty value" },
  { "[daemon]\nlog-level = loud\n", ":2: [daemon] log-level: \"loud\" is not one of error," },
  { "[daemon]\ncontrol-socket = run/x.sock\n", ":2: [daemon] control-socket: \"run/x.sock\" is "
                                               "not an absolute path" },
  { "[daemon]\ncontrol-socket =\n", ":2: [daemon] control-socket: empty value" },
  { "[libvirt]\nenabled = perhaps\n", ":2: [libvirt] enabled: \"perhaps\" is not a boolean" },
  { "[libvirt]\nreconnect-ms = 10\n", ":2: [libvirt] reconnect-ms: 10 is out of range [100," },
  { "[libvirt]\nqmp-connections = 0\n", ":2: [libvirt] qmp-connections: 0 is out of range [1," },
  { "[memory]\nmover = fast\n", ":2: [memory] mover: \"fast\" is not one of auto, numa, sim" },
  { "[reads]\nsource = idle\n",
    ":2: [reads] source: \"idle\" is not one of auto, damon-vaddr, idle-page, damon-paddr, none" },
  { "[memory]\nslow-nodes = 1;x\n", ":2: [memory] slow-nodes: node id: \"x\" is not" },
  { "[memory]\nslow-nodes = 31\n", ":2: [memory] slow-nodes: node id: 31 is out of range" },
  { "[memory]\nnode-pool-mib = 0\n", ":2: [memory] node-pool-mib: \"0\" is not NODE:MIB" },
  { "[memory]\nnode-pool-mib = 31:10\n", ":2: [memory] node-pool-mib: node id: 31 is out of" },
  { "[memory]\nnode-pool-mib = 0:1;0:2\n", ":2: [memory] node-pool-mib: node 0: named twice" },
  { "[memory]\nnode-pool-mib = 1:0\n", ":2: [memory] node-pool-mib: node 1: a pool of 0 MiB" },
  { "[memory]\nnode-pool-mib = 1:x\n", ":2: [memory] node-pool-mib: node 1: " },
  { "[memory]\nslow-nodes = 1\ndram-nodes = 0;1\n", ":2: [memory] slow-nodes: node 1 is also" },
  { "[memory]\ndram-pool-mib = 1099511627777\n", ":2: [memory] dram-pool-mib: 1099511627777 "
                                                 "MiB is too large" },
  { "[policy]\nwrite-weight = 16\n", ":2: [policy] write-weight: write_weight = 16 is out of" },
  { "[policy]\ncooldown-intervals = 4\n", ":2: [policy] cooldown-intervals: cooldown_intervals" },
  { "[policy]\nmove-share-percent = 101\n", ":2: [policy] move-share-percent: "
                                            "move_share_percent = 101 is out of range" },
  { "[policy]\npromote-min-key = 0xzz\n", ":2: [policy] promote-min-key: \"0xzz\" is not" },
  { "[policy]\npromote-min-key = 0x\n", ":2: [policy] promote-min-key: 0x is out of range" },
  { "[defaults]\nweight = 0\n", ":2: [defaults] weight: 0 is out of range [1, 10000]" },
  { "[defaults]\ndram-min-mib = 512\ndram-max-mib = 256\n",
    ":2: [defaults] dram-min-mib: 512 MiB is above dram-max-mib (256 MiB)" },
  { "[metrics]\nlisten = 0.0.0.0:9464\n", ":2: [metrics] listen: 0.0.0.0 is not a loopback" },
  { "[metrics]\nlisten = 127.0.0.1\n", ":2: [metrics] listen: \"127.0.0.1\": expected HOST:PORT" },
  { "[metrics]\ntextfile = hmmv.prom\n", ":2: [metrics] textfile: \"hmmv.prom\" is not an" },
  { "[daemon]\nthis line has no equals sign\n", ": " },
  { "interval-ms = 5\n", ": " },
  /* [vm NAME] exclude (issue 9, "Cost") */
  { "[vm guest]\nexclude = a b\n", ":2: [vm guest] exclude: exclude: backend name \"a b\"" },
  { "[vm guest]\nexclude = m1;m1\n", ":2: [vm guest] exclude: exclude: backend m1 is named " },
  { "[vm guest]\nquota = 1\n", ":2: [vm guest] quota: unknown key (known: exclude)" },
  { "[vm a/b]\nexclude = m1\n", ":2: [vm a/b] exclude: a VM name " },
};

START_TEST(test_bad_files)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = write_conf(bad_files[_i].text);
  g_autofree char *expect = g_strconcat(path, bad_files[_i].expect, NULL);
  g_auto(HmmvdConfig) config = { 0 };

  hmmvd_config_init(&config);
  ck_assert_msg(!hmmvd_config_load(&config, path, &error), "accepted %s", bad_files[_i].text);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_msg(g_str_has_prefix(error->message, expect), "got \"%s\", expected \"%s...\"",
                error->message, expect);
}
END_TEST

/* [vm NAME] exclude = a;b: the backends a standalone VM's hmmv leaves alone (issue 9). */
START_TEST(test_vm_exclude)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = write_conf("[vm guest]\nexclude = m1; hugemem ;\n[vm other]\n"
                                     "exclude =\n");
  g_auto(HmmvdConfig) config = { 0 };
  g_auto(HmmvdConfig) copy = { 0 };
  const char *const *exclude;

  hmmvd_config_init(&config);
  ck_assert_msg(hmmvd_config_load(&config, path, &error), "%s", error ? error->message : "");
  exclude = hmmvd_config_get_exclude(&config, "guest");
  ck_assert(exclude != NULL);
  ck_assert_uint_eq(g_strv_length((char **)exclude), 2);
  ck_assert_str_eq(exclude[0], "m1");
  ck_assert_str_eq(exclude[1], "hugemem");
  exclude = hmmvd_config_get_exclude(&config, "other");
  ck_assert(exclude == NULL || exclude[0] == NULL);
  ck_assert(hmmvd_config_get_exclude(&config, "nobody") == NULL);
  /* a second load over it: the table is copied, not shared */
  hmmvd_config_init(&copy);
  ck_assert(hmmvd_config_load(&copy, path, NULL));
  ck_assert(hmmvd_config_load(&copy, path, NULL));
  ck_assert_uint_eq(g_strv_length((char **)hmmvd_config_get_exclude(&copy, "guest")), 2);
}
END_TEST

/* All or nothing: a bad key leaves the configuration as it was. */
START_TEST(test_load_is_atomic)
{
  g_autofree char *path = write_conf("[daemon]\ninterval-ms = 250\n[memory]\nmover = nope\n");
  g_auto(HmmvdConfig) defaults = { 0 };
  g_auto(HmmvdConfig) config = { 0 };

  hmmvd_config_init(&defaults);
  hmmvd_config_init(&config);
  ck_assert(!hmmvd_config_load(&config, path, NULL));
  assert_config_equal(&config, &defaults);
}
END_TEST

START_TEST(test_missing_and_binary_files)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *missing = g_build_filename(tmpdir, "absent.conf", NULL);
  g_autofree char *binary = g_build_filename(tmpdir, "binary.conf", NULL);
  g_auto(HmmvdConfig) config = { 0 };

  hmmvd_config_init(&config);
  ck_assert(!hmmvd_config_load(&config, missing, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO));
  g_clear_error(&error);
  ck_assert(g_file_set_contents(binary, "[daemon]\0x", 10, NULL));
  ck_assert(!hmmvd_config_load(&config, binary, &error));
  ck_assert(strstr(error->message, "not a configuration file") != NULL);
  g_unlink(binary);
}
END_TEST

static Suite *
config_suite(void)
{
  Suite *s = suite_create("config");
  TCase *tc = tcase_create("config");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_vm_exclude);
  tcase_add_test(tc, test_move_share_default);
  tcase_add_test(tc, test_shipped_file_is_the_defaults);
  tcase_add_test(tc, test_shipped_file_uncommented);
  tcase_add_test(tc, test_every_key);
  tcase_add_loop_test(tc, test_bad_files, 0, G_N_ELEMENTS(bad_files));
  tcase_add_test(tc, test_load_is_atomic);
  tcase_add_test(tc, test_missing_and_binary_files);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(config_suite());
}
