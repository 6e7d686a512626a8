/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Prometheus text: formatting (golden strings, escaping), the loopback HTTP endpoint, the
 * textfile. */
#include "config.h"
#include "hmmvd-test.h"
#include "metrics.h"
#include "vms.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  HmmvdTestBed bed;
  char *tmpdir;
} Fixture;

static Fixture fx;

static void
setup(void)
{
  memset(&fx, 0, sizeof(fx));
  hmmvd_test_bed_init(&fx.bed, 2u << 20, 64u << 20, NULL);
  fx.tmpdir = g_dir_make_tmp("hmmv-test-metrics-XXXXXX", NULL);
}

static void
teardown(void)
{
  hmmv_test_remove_tree(fx.tmpdir);
  g_free(fx.tmpdir);
  hmmvd_test_bed_clear(&fx.bed);
}

START_TEST(test_escape_label)
{
  g_autofree char *plain = hmmvd_metrics_escape_label("web-01");
  g_autofree char *odd = hmmvd_metrics_escape_label("a\"b\\c\nd");

  ck_assert_str_eq(plain, "web-01");
  ck_assert_str_eq(odd, "a\\\"b\\\\c\\nd");
}
END_TEST

START_TEST(test_append_golden)
{
  g_autoptr(GString) out = g_string_new(NULL);
  const char *labels[] = { "vm", "x\"y", "kind", "busy", NULL };

  hmmvd_metrics_append_family(out, "hmmv_x_total", "counter", "Things\\stuff\nmore.");
  hmmvd_metrics_append_sample(out, "hmmv_x_total", labels, 5);
  hmmvd_metrics_append_sample(out, "hmmv_y", NULL, G_MAXUINT64);
  ck_assert_str_eq(out->str, "# HELP hmmv_x_total Things\\\\stuff\\nmore.\n"
                             "# TYPE hmmv_x_total counter\n"
                             "hmmv_x_total{vm=\"x\\\"y\",kind=\"busy\"} 5\n"
                             "hmmv_y 18446744073709551615\n");
}
END_TEST

/* Every line is a HELP, a TYPE, or a sample of the family last declared; each family is
 * declared once with HELP before TYPE. */
static void
assert_well_formed(const char *text)
{
  g_autoptr(GRegex) sample = g_regex_new("^([a-z_]+)(\\{([a-z]+=\"([^\"\\\\\\n]|\\\\.)*\",?)*\\})?"
                                         " [0-9.]+$", 0, 0, NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autofree char *family = NULL;

  ck_assert(g_str_has_suffix(text, "\n"));
  for (guint i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++) {
    const char *line = lines[i];

    if (g_str_has_prefix(line, "# HELP ")) {
      g_auto(GStrv) words = g_strsplit(line + 7, " ", 2);

      ck_assert_msg(g_hash_table_add(seen, g_strdup(words[0])), "twice: %s", words[0]);
      g_free(family);
      family = g_strdup(words[0]);
      ck_assert(g_str_has_prefix(lines[i + 1], "# TYPE "));
      ck_assert(g_str_has_prefix(lines[i + 1] + 7, family));
      i++;
      continue;
    }
    ck_assert_msg(g_regex_match(sample, line, 0, NULL), "bad line: %s", line);
    ck_assert_msg(family != NULL && g_str_has_prefix(line, family), "stray: %s", line);
  }
}

START_TEST(test_format_without_vms)
{
  g_autofree char *text = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);

  assert_well_formed(text);
  ck_assert(strstr(text, "# HELP hmmv_node_total_bytes Memory of the NUMA node, with the tier "
                         "hmmv treats it as.\n# TYPE hmmv_node_total_bytes gauge\n"
                         "hmmv_node_total_bytes{node=\"0\",tier=\"dram\"} 2097152\n"
                         "hmmv_node_total_bytes{node=\"1\",tier=\"slow\"} 67108864\n"
                         "# HELP hmmv_interval_seconds Wall time of the last interval in the "
                         "core, moves included.\n# TYPE hmmv_interval_seconds gauge\n"
                         "hmmv_interval_seconds 0.000000\n"
                         "# HELP hmmv_intervals_total Intervals run.\n"
                         "# TYPE hmmv_intervals_total counter\nhmmv_intervals_total 0\n") != NULL);
  /* each node's share of the pool: a built topology's node is all free, no reserve */
  ck_assert_ptr_nonnull(strstr(text, "hmmv_node_capacity_pages{node=\"0\",tier=\"dram\"} 512\n"));
  ck_assert_ptr_nonnull(strstr(text, "hmmv_node_used_pages{node=\"1\",tier=\"slow\"} 0\n"));
  ck_assert_ptr_nonnull(strstr(text, "# TYPE hmmv_node_fallback_pages_total counter\n"));
  ck_assert(strstr(text, "{vm=") == NULL);
}
END_TEST

START_TEST(test_format_with_vms)
{
  g_autoptr(GError) error = NULL;
  const char *odd = "we\"ird\\vm\nx";
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  g_autofree char *text = NULL;

  ck_assert(hmmvd_vms_add_with_tracker(fx.bed.vms, odd, HMMVD_SOURCE_STANDALONE, 1, NULL,
                                       hmmv_test_vm_new(odd, 1024), tracker, &error));
  hmmvd_vms_add_unmanaged(fx.bed.vms, "plain", HMMVD_SOURCE_LIBVIRT, "no patches");
  for (guint p = 0; p < 700; p++)
    hmmv_fake_tracker_queue_write(tracker, p);
  hmmvd_vms_run_interval(fx.bed.vms);
  /* two pages whose moves failed: backed off, and counted by cause */
  hmmv_vm_note_move_failed(hmmv_core_lookup_vm(fx.bed.core, odd), 900, HMMV_UNMOVABLE_PINNED);
  hmmv_vm_note_move_failed(hmmv_core_lookup_vm(fx.bed.core, odd), 901, HMMV_UNMOVABLE_PINNED);
  hmmvd_vms_run_interval(fx.bed.vms);
  text = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  ck_assert(strstr(text, "hmmv_vm_unmovable_pages{vm=\"we\\\"ird\\\\vm\\nx\",cause=\"pinned\"} 2\n") !=
            NULL);
  ck_assert(strstr(text, "hmmv_vm_unmovable_pages{vm=\"plain\",cause=\"shared\"} 0\n") != NULL);
  assert_well_formed(text);
  ck_assert(strstr(text, "hmmv_vm_managed{vm=\"we\\\"ird\\\\vm\\nx\"} 1\n"
                         "hmmv_vm_managed{vm=\"plain\"} 0\n") == NULL);  /* sorted by name */
  ck_assert(strstr(text, "hmmv_vm_managed{vm=\"plain\"} 0\n"
                         "hmmv_vm_managed{vm=\"we\\\"ird\\\\vm\\nx\"} 1\n") != NULL);
  ck_assert(strstr(text, "hmmv_vm_dram_pages{vm=\"we\\\"ird\\\\vm\\nx\"} 512\n") != NULL);
  ck_assert(strstr(text, "hmmv_vm_slow_pages{vm=\"we\\\"ird\\\\vm\\nx\"} 188\n") != NULL);
  ck_assert(strstr(text, "hmmv_vm_pages_written{vm=\"we\\\"ird\\\\vm\\nx\"} 0\n") != NULL);
  ck_assert(strstr(text, "hmmv_vm_move_failures_total{vm=\"plain\",kind=\"no-memory\"} 0\n") !=
            NULL);
  ck_assert(strstr(text, "hmmv_intervals_total 2\n") != NULL);
  /* pages brought home to the nearest node, and away from it: none on one socket */
  ck_assert(strstr(text, "# TYPE hmmv_vm_homed_dram_pages_total counter\n") != NULL);
  ck_assert(strstr(text, "hmmv_vm_homed_slow_pages_total{vm=\"plain\"} 0\n") != NULL);
  ck_assert(strstr(text, "hmmv_vm_away_dram_pages{vm=\"we\\\"ird\\\\vm\\nx\"} 0\n") != NULL);
  ck_assert(strstr(text, "# TYPE hmmv_vm_away_slow_pages gauge\n") != NULL);
}
END_TEST

/* issue 8, F9: the DRAM the core keeps counted for a VM removed while its QEMU lives
 * (standalone: its QMP connection broke) is a metric, in all (hmmv_pool_held_dram_pages) and
 * per VM (hmmv_vm_dram_held_pages, one sample per VM name, its QEMUs' holds summed: the VM
 * is not in the table while it is out); 0 and no sample once released. Before, no metric
 * showed it. */
START_TEST(test_format_holds)
{
  g_autoptr(GError) error = NULL;
  HmmvTracker *tracker = hmmvd_test_bed_add_vm(&fx.bed, "we\"b", 1024, HMMVD_SOURCE_STANDALONE);
  g_autofree char *before = NULL, *held_text = NULL, *after = NULL;
  g_autofree char *pool = NULL, *vm = NULL, *twin_text = NULL;
  const char *first;
  guint64 held, held2;

  (void)hmmvd_test_bed_add_vm(&fx.bed, "other", 1024, HMMVD_SOURCE_STANDALONE);
  hmmvd_test_write_pages(tracker, 0, 300);
  hmmvd_vms_run_interval(fx.bed.vms);
  held = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(fx.bed.core, "we\"b"));
  ck_assert_uint_gt(held, 0);
  before = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  assert_well_formed(before);
  ck_assert_ptr_nonnull(strstr(before, "# TYPE hmmv_pool_held_dram_pages gauge\n"
                                       "hmmv_pool_held_dram_pages 0\n"));
  ck_assert_ptr_nonnull(strstr(before, "# TYPE hmmv_vm_dram_held_pages gauge\n"));
  ck_assert_ptr_null(strstr(before, "hmmv_vm_dram_held_pages{"));

  ck_assert(hmmv_core_hold_dram(fx.bed.core, "we\"b", &error));
  hmmvd_vms_remove(fx.bed.vms, "we\"b");
  held_text = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  assert_well_formed(held_text);
  pool = g_strdup_printf("\nhmmv_pool_held_dram_pages %" G_GUINT64_FORMAT "\n", held);
  vm = g_strdup_printf("\nhmmv_vm_dram_held_pages{vm=\"we\\\"b\"} %" G_GUINT64_FORMAT "\n",
                       held);
  ck_assert_msg(strstr(held_text, pool) != NULL, "no %s", pool + 1);
  ck_assert_msg(strstr(held_text, vm) != NULL, "no %s", vm + 1);
  ck_assert_ptr_null(strstr(held_text, "hmmv_vm_dram_pages{vm=\"we"));   /* out of the table */

  /* another QEMU under the name (pid 5151) runs and leaves with a hold too: the core lists
   * two holds; the metric keeps one series per VM name, their sum (review 19, finding 4) */
  tracker = hmmv_fake_tracker_new();
  ck_assert(hmmvd_vms_add_with_tracker(fx.bed.vms, "we\"b", HMMVD_SOURCE_STANDALONE, 5151, NULL,
                                       hmmv_test_vm_new("we\"b", 1024), tracker, &error));
  hmmvd_test_write_pages(tracker, 0, 100);
  hmmvd_vms_run_interval(fx.bed.vms);
  held2 = hmmv_vm_get_dram_pages(hmmv_core_lookup_vm(fx.bed.core, "we\"b"));
  ck_assert_uint_gt(held2, 0);
  ck_assert(hmmv_core_hold_dram(fx.bed.core, "we\"b", &error));
  hmmvd_vms_remove(fx.bed.vms, "we\"b");
  twin_text = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  assert_well_formed(twin_text);
  g_free(vm);
  vm = g_strdup_printf("\nhmmv_vm_dram_held_pages{vm=\"we\\\"b\"} %" G_GUINT64_FORMAT "\n",
                       held + held2);
  ck_assert_msg(strstr(twin_text, vm) != NULL, "no %s", vm + 1);
  first = strstr(twin_text, "hmmv_vm_dram_held_pages{");
  ck_assert_msg(strstr(first + 1, "hmmv_vm_dram_held_pages{") == NULL, "two samples of one "
                "series: %s", first);
  hmmv_core_release_dram(fx.bed.core, "we\"b", 5151);

  hmmv_core_release_dram(fx.bed.core, "we\"b", 4242);   /* its QEMU (the bed's pid) is gone */
  after = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  ck_assert_ptr_nonnull(strstr(after, "\nhmmv_pool_held_dram_pages 0\n"));
  ck_assert_ptr_null(strstr(after, "hmmv_vm_dram_held_pages{"));
}
END_TEST

START_TEST(test_parse_listen)
{
  static const char *const good[] = { "127.0.0.1:9464", "[::1]:0", "localhost:80",
                                      "127.1.2.3:65535", NULL };
  static const char *const bad[] = { "0.0.0.0:9464", "192.168.1.1:1", "[::]:1", "9464",
                                     "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                                     "::1:9464", "[::1]9464", "host.example:80", ":80", "",
                                     NULL };

  for (guint i = 0; good[i] != NULL; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GSocketAddress) address = NULL;

    ck_assert_msg(hmmvd_metrics_parse_listen(good[i], &address, &error), "%s: %s", good[i],
                  error ? error->message : "");
    ck_assert(address != NULL);
  }
  for (guint i = 0; bad[i] != NULL; i++) {
    g_autoptr(GError) error = NULL;
    GSocketAddress *address = NULL;

    ck_assert_msg(!hmmvd_metrics_parse_listen(bad[i], &address, &error), "accepted %s", bad[i]);
    ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
    ck_assert(address == NULL);
  }
}
END_TEST

/* ---- HTTP over loopback: a client thread while this thread runs the server's loop ---- */

typedef struct {
  guint16 port;
  const char *request;
  gsize request_len;
  GString *response;
  gint done;
} HttpJob;

static gpointer
http_client(gpointer data)
{
  HttpJob *job = data;
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketConnection) connection = NULL;
  char buf[4096];
  gssize n;

  g_socket_client_set_timeout(client, 10);
  connection = g_socket_client_connect_to_host(client, "127.0.0.1", job->port, NULL, NULL);
  if (connection != NULL) {
    (void)g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(connection)),
                                    job->request, job->request_len, NULL, NULL, NULL);
    while ((n = g_input_stream_read(g_io_stream_get_input_stream(G_IO_STREAM(connection)), buf,
                                    sizeof(buf), NULL, NULL)) > 0)
      g_string_append_len(job->response, buf, n);
  }
  g_atomic_int_set(&job->done, 1);
  g_main_context_wakeup(NULL);
  return NULL;
}

static char *
http_get(guint16 port, const char *request, gsize len)
{
  HttpJob job = { .port = port, .request = request, .request_len = len,
                  .response = g_string_new(NULL) };
  GThread *thread = g_thread_new("http-client", http_client, &job);

  while (!g_atomic_int_get(&job.done))
    g_main_context_iteration(NULL, TRUE);
  g_thread_join(thread);
  return g_string_free(job.response, FALSE);
}

START_TEST(test_http)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvdMetrics) metrics = hmmvd_metrics_new(fx.bed.vms, fx.bed.topo, "127.0.0.1:0", "",
                                                      &error);
  g_autofree char *expected = NULL;
  g_autofree char *ok = NULL;
  g_autofree char *missing = NULL;
  g_autofree char *post = NULL;
  g_autofree char *garbage = NULL;
  g_autofree char *huge_request = g_strnfill(HMMVD_METRICS_MAX_REQUEST + 100, 'a');
  g_autofree char *huge = NULL;
  guint16 port;

  ck_assert_msg(metrics != NULL, "%s", error ? error->message : "");
  port = hmmvd_metrics_get_port(metrics);
  ck_assert_uint_ne(port, 0);
  hmmvd_vms_add_unmanaged(fx.bed.vms, "vm1", HMMVD_SOURCE_LIBVIRT, "test");
  expected = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  ok = http_get(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", 42);
  ck_assert_msg(g_str_has_prefix(ok, "HTTP/1.1 200 OK\r\n"), "%s", ok);
  ck_assert(strstr(ok, "Content-Type: text/plain; version=0.0.4") != NULL);
  ck_assert(g_str_has_suffix(ok, expected));
  ck_assert(strstr(ok, "hmmv_vm_managed{vm=\"vm1\"} 0\n") != NULL);
  missing = http_get(port, "GET /other HTTP/1.0\r\n\r\n", 23);
  ck_assert_msg(g_str_has_prefix(missing, "HTTP/1.1 404 Not Found\r\n"), "%s", missing);
  post = http_get(port, "POST /metrics HTTP/1.1\r\n\r\n", 26);
  ck_assert(g_str_has_prefix(post, "HTTP/1.1 405 "));
  garbage = http_get(port, "\x01\x02\r\n\r\n", 6);
  ck_assert(g_str_has_prefix(garbage, "HTTP/1.1 400 "));
  huge = http_get(port, huge_request, strlen(huge_request));
  ck_assert_msg(g_str_has_prefix(huge, "HTTP/1.1 431 "), "%s", huge);
}
END_TEST

/* issue 10, item 7: any local user held all 8 metrics connections with a byte every 5 s, and
 * root's scrapes failed. Each connection now has a deadline: the tricklers are dropped, and
 * then a scrape is served. */
START_TEST(test_http_trickling_dropped)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvdMetrics) metrics = hmmvd_metrics_new(fx.bed.vms, fx.bed.topo, "127.0.0.1:0", "",
                                                      &error);
  g_autoptr(GInetAddress) loopback = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autofree char *ok = NULL;
  guint bytes = 0;

  ck_assert_msg(metrics != NULL, "%s", error ? error->message : "");
  hmmvd_metrics_set_request_deadline_ms(metrics, 500);
  loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  address = g_inet_socket_address_new(loopback, hmmvd_metrics_get_port(metrics));
  ck_assert_uint_eq(hmmvd_test_trickle(address, HMMVD_METRICS_MAX_CLIENTS, &bytes),
                    HMMVD_METRICS_MAX_CLIENTS);
  printf("# %u trickling scrapers dropped, the longest after %u bytes (1 every 100 ms)\n",
         HMMVD_METRICS_MAX_CLIENTS, bytes);
  /* The real request after them gets a deadline that load does not decide. */
  hmmvd_metrics_set_request_deadline_ms(metrics, 30000);
  ok = http_get(hmmvd_metrics_get_port(metrics), "GET /metrics HTTP/1.1\r\n\r\n", 26);
  ck_assert_msg(g_str_has_prefix(ok, "HTTP/1.1 200 OK\r\n"), "%s", ok);
}
END_TEST

START_TEST(test_http_refuses_non_loopback)
{
  g_autoptr(GError) error = NULL;

  ck_assert(hmmvd_metrics_new(fx.bed.vms, fx.bed.topo, "0.0.0.0:0", "", &error) == NULL);
  ck_assert(strstr(error->message, "not a loopback address") != NULL);
}
END_TEST

START_TEST(test_textfile)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename(fx.tmpdir, "hmmv.prom", NULL);
  g_autoptr(HmmvdMetrics) metrics = hmmvd_metrics_new(fx.bed.vms, fx.bed.topo, "", path, &error);
  g_autofree char *expected = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GDir) dir = NULL;
  guint files = 0;

  ck_assert(metrics != NULL);
  ck_assert_uint_eq(hmmvd_metrics_get_port(metrics), 0);
  hmmvd_vms_run_interval(fx.bed.vms);
  ck_assert(hmmvd_metrics_interval_done(metrics, &error));
  ck_assert(hmmvd_metrics_interval_done(metrics, &error));
  expected = hmmvd_metrics_format(fx.bed.vms, fx.bed.topo);
  ck_assert(g_file_get_contents(path, &text, NULL, NULL));
  ck_assert_str_eq(text, expected);
  dir = g_dir_open(fx.tmpdir, 0, NULL);
  while (g_dir_read_name(dir) != NULL)
    files++;
  ck_assert_uint_eq(files, 1);   /* no temporary left behind */
  ck_assert(hmmvd_metrics_new(fx.bed.vms, fx.bed.topo, "", "relative.prom", &error) == NULL);
}
END_TEST

static Suite *
metrics_suite(void)
{
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("metrics");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_escape_label);
  tcase_add_test(tc, test_append_golden);
  tcase_add_test(tc, test_format_without_vms);
  tcase_add_test(tc, test_format_with_vms);
  tcase_add_test(tc, test_format_holds);
  tcase_add_test(tc, test_parse_listen);
  tcase_add_test(tc, test_http);
  tcase_add_test(tc, test_http_refuses_non_loopback);
  tcase_add_test(tc, test_http_trickling_dropped);
  tcase_add_test(tc, test_textfile);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(metrics_suite());
}
