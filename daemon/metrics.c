/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Prometheus text exposition (format 0.0.4), served over HTTP on loopback and/or written to a
 * textfile-collector file.
 *
 * The HTTP side is deliberately tiny: one GET per connection, the request bounded to
 * HMMVD_METRICS_MAX_REQUEST bytes, at most HMMVD_METRICS_MAX_CLIENTS connections, each over
 * within HMMVD_METRICS_REQUEST_DEADLINE_MS (10 s) however it trickles, "Connection: close". Only loopback addresses are accepted: metrics name the
 * host's VMs, and exposing them further is the job of a proxy the operator chooses.
 */
#include "metrics.h"
#include "quota.h"

#include <string.h>

/* A scraper that sends nothing for this long is dropped (Prometheus's default timeout). */
#define HTTP_TIMEOUT_S 10u

struct _HmmvdMetrics {
  HmmvdVms *vms;
  const HmmvTopology *topo;
  char *textfile;
  GSocketService *service;
  GCancellable *cancellable;  /* cancelled on free: pending clients then only clean up */
  guint16 port;
  guint nr_clients;
  guint request_deadline_ms;
};

typedef struct {
  HmmvdMetrics *metrics;      /* not valid once cancellable is cancelled */
  GCancellable *cancellable;
  GSocketConnection *connection;
  char request[HMMVD_METRICS_MAX_REQUEST + 1];
  gsize len;
  char *reply;
  guint deadline_source;
} HttpClient;

char *
hmmvd_metrics_escape_label(const char *value)
{
  GString *out = g_string_sized_new(strlen(value) + 8);

  for (const char *c = value; *c != '\0'; c++) {
    if (*c == '\\')
      g_string_append(out, "\\\\");
    else if (*c == '"')
      g_string_append(out, "\\\"");
    else if (*c == '\n')
      g_string_append(out, "\\n");
    else
      g_string_append_c(out, *c);
  }
  return g_string_free(out, FALSE);
}

void
hmmvd_metrics_append_family(GString *out, const char *name, const char *type, const char *help)
{
  g_string_append_printf(out, "# HELP %s ", name);
  for (const char *c = help; *c != '\0'; c++) {
    if (*c == '\\')
      g_string_append(out, "\\\\");
    else if (*c == '\n')
      g_string_append(out, "\\n");
    else
      g_string_append_c(out, *c);
  }
  g_string_append_printf(out, "\n# TYPE %s %s\n", name, type);
}

void
hmmvd_metrics_append_sample(GString *out, const char *name, const char *const *labels,
                            guint64 value)
{
  g_string_append(out, name);
  if (labels != NULL && labels[0] != NULL) {
    g_string_append_c(out, '{');
    for (guint i = 0; labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
      g_autofree char *escaped = hmmvd_metrics_escape_label(labels[i + 1]);

      g_string_append_printf(out, "%s%s=\"%s\"", i > 0 ? "," : "", labels[i], escaped);
    }
    g_string_append_c(out, '}');
  }
  g_string_append_printf(out, " %" G_GUINT64_FORMAT "\n", value);
}

typedef guint64 (*VmFigure)(const HmmvdVmInfo *info);

static guint64 fig_managed(const HmmvdVmInfo *i) { return i->in_core ? 1 : 0; }
static guint64 fig_dram(const HmmvdVmInfo *i) { return i->last.dram_pages; }
static guint64 fig_slow(const HmmvdVmInfo *i) { return i->last.slow_pages; }
static guint64 fig_budget(const HmmvdVmInfo *i) { return i->last.budget_pages; }
static guint64 fig_hot(const HmmvdVmInfo *i) { return i->last.hot_pages; }
static guint64 fig_written(const HmmvdVmInfo *i) { return i->last.written; }
static guint64 fig_promoted(const HmmvdVmInfo *i) { return i->moves.promoted; }
static guint64 fig_demoted(const HmmvdVmInfo *i) { return i->moves.demoted; }
static guint64 fig_errors(const HmmvdVmInfo *i) { return i->errors; }
static guint64 fig_fallback_promoted(const HmmvdVmInfo *i) { return i->fallback_promoted; }
static guint64 fig_fallback_demoted(const HmmvdVmInfo *i) { return i->fallback_demoted; }
static guint64 fig_homed_dram(const HmmvdVmInfo *i) { return i->homed_dram; }
static guint64 fig_homed_slow(const HmmvdVmInfo *i) { return i->homed_slow; }
static guint64 fig_away_dram(const HmmvdVmInfo *i) { return i->last.away_dram; }
static guint64 fig_moved_first(const HmmvdVmInfo *i) { return i->moved_first; }
static guint64 fig_moved_again(const HmmvdVmInfo *i) { return i->moved_again; }
static guint64 fig_hot_entered(const HmmvdVmInfo *i) { return i->hot_entered; }
static guint64 fig_hot_left(const HmmvdVmInfo *i) { return i->hot_left; }
static guint64 fig_away_slow(const HmmvdVmInfo *i) { return i->last.away_slow; }
static guint64 fig_rank_flat(const HmmvdVmInfo *i) { return i->in_core && i->last.rank_flat; }

static const struct {
  const char *name;
  const char *type;
  const char *help;
  VmFigure figure;
} vm_families[] = {
  { "hmmv_vm_managed", "gauge", "1 when hmmv tracks the VM, 0 when it is only listed.",
    fig_managed },
  { "hmmv_vm_dram_pages", "gauge", "Guest pages (4 KiB) of the VM on DRAM nodes.", fig_dram },
  { "hmmv_vm_slow_pages", "gauge", "Guest pages (4 KiB) of the VM on slow-tier nodes.",
    fig_slow },
  { "hmmv_vm_budget_pages", "gauge", "DRAM budget of the VM, in 4 KiB pages.", fig_budget },
  { "hmmv_vm_hot_pages", "gauge", "Pages of the VM's hot set in the last interval.", fig_hot },
  { "hmmv_vm_pages_written", "gauge", "Guest pages written in the last interval.",
    fig_written },
  { "hmmv_vm_promotions_total", "counter", "Pages moved to DRAM.", fig_promoted },
  { "hmmv_vm_demotions_total", "counter", "Pages moved to the slow tier.", fig_demoted },
  { "hmmv_vm_first_moves_total", "counter",
    "Promotions and demotions that were the page's first move since hmmv learnt its node "
    "(first placement).", fig_moved_first },
  { "hmmv_vm_re_moves_total", "counter",
    "Promotions and demotions of pages that had moved before (churn).", fig_moved_again },
  { "hmmv_vm_hot_entered_pages_total", "counter", "Pages that entered the VM's hot set.",
    fig_hot_entered },
  { "hmmv_vm_hot_left_pages_total", "counter", "Pages that left the VM's hot set.",
    fig_hot_left },
  { "hmmv_vm_interval_errors_total", "counter", "Intervals that failed for the VM.",
    fig_errors },
  { "hmmv_vm_fallback_promotions_total", "counter",
    "Pages promoted to a farther DRAM node because the one nearest the VM's vCPUs was full.",
    fig_fallback_promoted },
  { "hmmv_vm_fallback_demotions_total", "counter",
    "Pages demoted to a farther slow node because the one nearest the VM's DRAM node was "
    "full.", fig_fallback_demoted },
  { "hmmv_vm_homed_dram_pages_total", "counter",
    "Pages brought home: moved from a farther DRAM node to the nearest once it had room.",
    fig_homed_dram },
  { "hmmv_vm_homed_slow_pages_total", "counter",
    "Pages moved from a farther slow node to the nearest once it had room.", fig_homed_slow },
  { "hmmv_vm_away_dram_pages", "gauge",
    "Pages of the VM on a DRAM node other than the one nearest its vCPUs.", fig_away_dram },
  { "hmmv_vm_away_slow_pages", "gauge",
    "Pages of the VM on a slow node other than the one nearest its DRAM node.",
    fig_away_slow },
  { "hmmv_vm_rank_flat", "gauge",
    "1 when the VM's pages cannot be ranked: in most recent intervals it touched nearly all "
    "of its warm pages, more than its DRAM budget (hmmvctl vms: ranking-note).",
    fig_rank_flat },
};

static void
append_move_failures(GString *out, GPtrArray *list)
{
  static const char *const kinds[] = { "not-present", "busy", "no-memory", "fault", "access",
                                       "other", "call" };

  hmmvd_metrics_append_family(out, "hmmv_vm_move_failures_total", "counter",
                              "Pages the mover could not move, by kind (move_pages errno; "
                              "call: whole calls that failed).");
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);
    const HmmvMoveStats *m = &info->moves;
    const guint64 values[] = { m->not_present, m->busy, m->no_memory, m->fault, m->access,
                               m->other, m->call_failures };

    for (guint k = 0; k < G_N_ELEMENTS(kinds); k++) {
      const char *labels[] = { "vm", info->name, "kind", kinds[k], NULL };

      hmmvd_metrics_append_sample(out, "hmmv_vm_move_failures_total", labels, values[k]);
    }
  }
}

static void
append_unmovable(GString *out, GPtrArray *list)
{
  hmmvd_metrics_append_family(out, "hmmv_vm_unmovable_pages", "gauge",
                              "Pages whose last move failed and that are backed off, by cause "
                              "(busy, pinned, shared, other).");
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    for (guint c = 0; c < HMMV_NR_UNMOVABLE_CAUSES; c++) {
      const char *labels[] = { "vm", info->name, "cause", hmmv_unmovable_cause_to_string(c),
                               NULL };

      hmmvd_metrics_append_sample(out, "hmmv_vm_unmovable_pages", labels,
                                  info->unmovable.pages[c]);
    }
  }
}

/* Each node's share of the pool (hmmv_core_get_node_pools), in 4 KiB pages. */
static void
append_node_pools(GString *out, HmmvCore *core, guint nr_nodes)
{
  static const struct {
    const char *name, *type, *help;
  } families[] = {
    { "hmmv_node_free_pages", "gauge", "Free pages of the node at the last look." },
    { "hmmv_node_capacity_pages", "gauge", "Pages the VMs may hold on the node: theirs there "
      "+ free - reserve, at most the node and its configured pool." },
    { "hmmv_node_used_pages", "gauge", "Pages the VMs hold on the node." },
    { "hmmv_node_fallback_pages_total", "counter", "Pages placed on the node because the "
      "node nearest their VM was full." },
  };
  g_autofree HmmvNodePool *pools = g_new0(HmmvNodePool, MAX(nr_nodes, 1));
  guint n = core != NULL ? hmmv_core_get_node_pools(core, pools, nr_nodes) : 0;

  for (guint f = 0; f < G_N_ELEMENTS(families); f++) {
    hmmvd_metrics_append_family(out, families[f].name, families[f].type, families[f].help);
    for (guint i = 0; i < n; i++) {
      const guint64 values[] = { pools[i].free_pages, pools[i].capacity_pages,
                                 pools[i].used_pages, pools[i].fallback_in_pages };
      g_autofree char *id = g_strdup_printf("%d", pools[i].id);
      const char *labels[] = { "node", id, "tier", hmmv_tier_to_string(pools[i].tier), NULL };

      hmmvd_metrics_append_sample(out, families[f].name, labels, values[f]);
    }
  }
}

static void
append_nodes(GString *out, const HmmvTopology *topo)
{
  guint nr_nodes = topo != NULL ? hmmv_topology_get_nr_nodes(topo) : 0;

  hmmvd_metrics_append_family(out, "hmmv_node_total_bytes", "gauge",
                              "Memory of the NUMA node, with the tier hmmv treats it as.");
  for (guint i = 0; i < nr_nodes; i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);
    g_autofree char *id = g_strdup_printf("%d", node->id);
    const char *labels[] = { "node", id, "tier", hmmv_tier_to_string(node->tier), NULL };

    hmmvd_metrics_append_sample(out, "hmmv_node_total_bytes", labels, node->total_bytes);
  }
}

/* The DRAM the core keeps counted for VMs removed while their QEMU lives (standalone: the
 * QMP connection broke; hmmv_core_list_held_dram): in all, and per VM name (a VM out of the
 * core is not in the table, so the holds name it themselves). The core lists one entry per
 * hold; two QEMUs' holds under one name are summed into one sample, so each series is one
 * VM's and stays the same series across its QEMU's restarts (a pid label would start a new
 * one at each, and duplicate none only by luck of the listing). */
static void
append_holds(GString *out, HmmvCore *core)
{
  g_autoptr(GArray) holds = hmmv_core_list_held_dram(core, NULL);
  guint64 total = 0;

  for (guint i = 0; i < holds->len; i++)
    total += g_array_index(holds, HmmvHeldDram, i).dram_pages;
  hmmvd_metrics_append_family(out, "hmmv_pool_held_dram_pages", "gauge",
                              "DRAM pages (4 KiB) kept counted for VMs removed while their "
                              "QEMU lives (QMP connection broke), until it is back with its "
                              "placement read or gone.");
  hmmvd_metrics_append_sample(out, "hmmv_pool_held_dram_pages", NULL, total);
  hmmvd_metrics_append_family(out, "hmmv_vm_dram_held_pages", "gauge",
                              "DRAM pages (4 KiB) kept counted for the VM beyond its own, while "
                              "it is out of the core or back reading its placement (its QEMUs' "
                              "holds summed); only VMs with such a hold.");
  for (guint i = 0; i < holds->len; i++) {
    const HmmvHeldDram *hold = &g_array_index(holds, HmmvHeldDram, i);
    const char *labels[] = { "vm", hold->name, NULL };
    guint64 pages = 0;
    gboolean seen = FALSE;

    for (guint j = 0; j < i && !seen; j++)
      seen = strcmp(g_array_index(holds, HmmvHeldDram, j).name, hold->name) == 0;
    if (seen)
      continue;   /* summed at its name's first hold */
    for (guint j = i; j < holds->len; j++)
      if (strcmp(g_array_index(holds, HmmvHeldDram, j).name, hold->name) == 0)
        pages += g_array_index(holds, HmmvHeldDram, j).dram_pages;
    hmmvd_metrics_append_sample(out, "hmmv_vm_dram_held_pages", labels, pages);
  }
}

static void
append_intervals(GString *out, const HmmvIntervalReport *report)
{
  char seconds[G_ASCII_DTOSTR_BUF_SIZE];

  hmmvd_metrics_append_family(out, "hmmv_interval_seconds", "gauge",
                              "Wall time of the last interval in the core, moves included.");
  g_ascii_formatd(seconds, sizeof(seconds), "%.6f",
                  report != NULL ? (double)report->elapsed_ns / 1e9 : 0.0);
  g_string_append_printf(out, "hmmv_interval_seconds %s\n", seconds);
  hmmvd_metrics_append_family(out, "hmmv_intervals_total", "counter", "Intervals run.");
  hmmvd_metrics_append_sample(out, "hmmv_intervals_total", NULL,
                              report != NULL ? report->index + 1 : 0);
}

char *
hmmvd_metrics_format(HmmvdVms *vms, const HmmvTopology *topo)
{
  GString *out = g_string_sized_new(4096);
  GPtrArray *list = hmmvd_vms_list(vms);

  for (guint f = 0; f < G_N_ELEMENTS(vm_families); f++) {
    hmmvd_metrics_append_family(out, vm_families[f].name, vm_families[f].type,
                                vm_families[f].help);
    for (guint i = 0; i < list->len; i++) {
      const HmmvdVmInfo *info = g_ptr_array_index(list, i);
      const char *labels[] = { "vm", info->name, NULL };

      hmmvd_metrics_append_sample(out, vm_families[f].name, labels,
                                  vm_families[f].figure(info));
    }
  }
  append_move_failures(out, list);
  append_unmovable(out, list);
  append_nodes(out, topo);
  append_intervals(out, hmmvd_vms_get_last_report(vms));
  append_node_pools(out, hmmvd_vms_get_core(vms),
                    topo != NULL ? hmmv_topology_get_nr_nodes(topo) : 0);
  append_holds(out, hmmvd_vms_get_core(vms));
  return g_string_free(out, FALSE);
}

/* ---- listen address ---- */

static gboolean
split_host_port(const char *listen, char **host, guint64 *port, GError **error)
{
  const char *port_text;

  if (listen[0] == '[') {
    const char *end = strchr(listen, ']');

    if (end == NULL || end[1] != ':') {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "\"%s\": expected [IPV6]:PORT", listen);
      return FALSE;
    }
    *host = g_strndup(listen + 1, (gsize)(end - listen - 1));
    port_text = end + 2;
  } else {
    const char *colon = strrchr(listen, ':');

    if (colon == NULL || memchr(listen, ':', (gsize)(colon - listen)) != NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "\"%s\": expected HOST:PORT (IPv6 addresses in brackets: [::1]:9464)",
                  listen);
      return FALSE;
    }
    *host = g_strndup(listen, (gsize)(colon - listen));
    port_text = colon + 1;
  }
  if (*port_text == '\0' || strspn(port_text, "0123456789") != strlen(port_text) ||
      !g_ascii_string_to_unsigned(port_text, 10, 0, 65535, port, NULL)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "\"%s\": the port must be a number in 0..65535", listen);
    g_clear_pointer(host, g_free);
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmvd_metrics_parse_listen(const char *listen, GSocketAddress **address, GError **error)
{
  g_autofree char *host = NULL;
  g_autoptr(GInetAddress) inet = NULL;
  guint64 port;

  if (!split_host_port(listen, &host, &port, error))
    return FALSE;
  inet = g_inet_address_new_from_string(g_strcmp0(host, "localhost") == 0 ? "127.0.0.1"
                                                                           : host);
  if (inet == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "\"%s\" is not an IP address (use 127.0.0.1, [::1] or localhost)", host);
    return FALSE;
  }
  if (!g_inet_address_get_is_loopback(inet)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "%s is not a loopback address: hmmvd serves metrics on localhost only "
                "(export them further through a proxy, or use the textfile)", host);
    return FALSE;
  }
  *address = g_inet_socket_address_new(inet, (guint16)port);
  return TRUE;
}

/* ---- HTTP ---- */

static void
http_client_free(HttpClient *client)
{
  if (client->deadline_source != 0)
    g_source_remove(client->deadline_source);
  if (!g_cancellable_is_cancelled(client->cancellable))
    client->metrics->nr_clients--;
  g_io_stream_close(G_IO_STREAM(client->connection), NULL, NULL);
  g_object_unref(client->connection);
  g_object_unref(client->cancellable);
  g_free(client->reply);
  g_free(client);
}

static void
http_written(GObject *source, GAsyncResult *result, gpointer user_data)
{
  HttpClient *client = user_data;

  (void)g_output_stream_write_all_finish(G_OUTPUT_STREAM(source), result, NULL, NULL);
  http_client_free(client);
}

static void
http_reply(HttpClient *client, const char *status, const char *content_type, const char *body)
{
  GOutputStream *out = g_io_stream_get_output_stream(G_IO_STREAM(client->connection));

  client->reply = g_strdup_printf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                                  "Connection: close\r\n\r\n%s", status, content_type,
                                  strlen(body), body);
  g_output_stream_write_all_async(out, client->reply, strlen(client->reply), G_PRIORITY_DEFAULT,
                                  client->cancellable, http_written, client);
}

static void
http_handle(HttpClient *client)
{
  g_autofree char *line = g_strndup(client->request, strcspn(client->request, "\r\n"));
  g_auto(GStrv) parts = g_strsplit(line, " ", 4);
  g_autofree char *body = NULL;
  char *query;

  if (g_strv_length(parts) != 3 || !g_str_has_prefix(parts[2], "HTTP/1.")) {
    http_reply(client, "400 Bad Request", "text/plain", "bad request\n");
    return;
  }
  if (strcmp(parts[0], "GET") != 0) {
    http_reply(client, "405 Method Not Allowed", "text/plain", "only GET is served\n");
    return;
  }
  query = strchr(parts[1], '?');
  if (query != NULL)
    *query = '\0';
  if (strcmp(parts[1], "/metrics") != 0) {
    http_reply(client, "404 Not Found", "text/plain", "not found: metrics are at /metrics\n");
    return;
  }
  body = hmmvd_metrics_format(client->metrics->vms, client->metrics->topo);
  http_reply(client, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body);
}

static void http_read_more(HttpClient *client);

static void
http_read(GObject *source, GAsyncResult *result, gpointer user_data)
{
  HttpClient *client = user_data;
  gssize n = g_input_stream_read_finish(G_INPUT_STREAM(source), result, NULL);

  if (g_cancellable_is_cancelled(client->cancellable) || n <= 0) {
    http_client_free(client);   /* closed, timed out, or hmmvd is stopping */
    return;
  }
  client->len += (gsize)n;
  client->request[client->len] = '\0';
  if (strstr(client->request, "\r\n\r\n") != NULL || strstr(client->request, "\n\n") != NULL)
    http_handle(client);
  else if (client->len >= HMMVD_METRICS_MAX_REQUEST)
    http_reply(client, "431 Request Header Fields Too Large", "text/plain",
               "request too large\n");
  else
    http_read_more(client);
}

static void
http_read_more(HttpClient *client)
{
  GInputStream *in = g_io_stream_get_input_stream(G_IO_STREAM(client->connection));

  g_input_stream_read_async(in, client->request + client->len,
                            HMMVD_METRICS_MAX_REQUEST - client->len, G_PRIORITY_DEFAULT,
                            client->cancellable, http_read, client);
}

/* Shut the socket down: the pending read or write ends, and frees the client. */
static gboolean
http_deadline(gpointer user_data)
{
  HttpClient *client = user_data;

  client->deadline_source = 0;
  g_socket_shutdown(g_socket_connection_get_socket(client->connection), TRUE, TRUE, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
http_incoming(GSocketService *service, GSocketConnection *connection, GObject *source_object,
              gpointer user_data)
{
  HmmvdMetrics *metrics = user_data;
  HttpClient *client;

  if (metrics->nr_clients >= HMMVD_METRICS_MAX_CLIENTS) {
    g_io_stream_close(G_IO_STREAM(connection), NULL, NULL);
    return TRUE;
  }
  metrics->nr_clients++;
  client = g_new0(HttpClient, 1);
  client->metrics = metrics;
  client->cancellable = g_object_ref(metrics->cancellable);
  client->connection = g_object_ref(connection);
  g_socket_set_timeout(g_socket_connection_get_socket(connection), HTTP_TIMEOUT_S);
  client->deadline_source = g_timeout_add(metrics->request_deadline_ms, http_deadline, client);
  http_read_more(client);
  return TRUE;
}

static gboolean
http_start(HmmvdMetrics *metrics, const char *listen, GError **error)
{
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) effective = NULL;
  g_autoptr(GError) local_error = NULL;

  if (!hmmvd_metrics_parse_listen(listen, &address, error))
    return FALSE;
  metrics->service = g_socket_service_new();
  if (!g_socket_listener_add_address(G_SOCKET_LISTENER(metrics->service), address,
                                     G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL,
                                     &effective, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "metrics: cannot listen on %s: %s", listen,
                local_error->message);
    return FALSE;
  }
  metrics->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
  g_signal_connect(metrics->service, "incoming", G_CALLBACK(http_incoming), metrics);
  g_socket_service_start(metrics->service);
  {
    g_autofree char *where = g_socket_connectable_to_string(G_SOCKET_CONNECTABLE(effective));

    g_message("metrics: serving http://%s/metrics", where);
  }
  return TRUE;
}

void
hmmvd_metrics_set_request_deadline_ms(HmmvdMetrics *metrics, guint deadline_ms)
{
  metrics->request_deadline_ms = deadline_ms;
}

HmmvdMetrics *
hmmvd_metrics_new(HmmvdVms *vms, const HmmvTopology *topo, const char *listen,
                  const char *textfile, GError **error)
{
  g_autoptr(HmmvdMetrics) metrics = g_new0(HmmvdMetrics, 1);

  metrics->vms = vms;
  metrics->topo = topo;
  metrics->cancellable = g_cancellable_new();
  metrics->request_deadline_ms = HMMVD_METRICS_REQUEST_DEADLINE_MS;
  if (textfile != NULL && *textfile != '\0') {
    if (!g_path_is_absolute(textfile)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "metrics textfile %s is not an absolute path", textfile);
      return NULL;
    }
    metrics->textfile = g_strdup(textfile);
  }
  if (listen != NULL && *listen != '\0' && !http_start(metrics, listen, error))
    return NULL;
  return g_steal_pointer(&metrics);
}

void
hmmvd_metrics_free(HmmvdMetrics *metrics)
{
  if (metrics == NULL)
    return;
  g_cancellable_cancel(metrics->cancellable);
  if (metrics->service != NULL) {
    g_socket_service_stop(metrics->service);
    g_socket_listener_close(G_SOCKET_LISTENER(metrics->service));
    g_signal_handlers_disconnect_by_data(metrics->service, metrics);
    g_object_unref(metrics->service);
  }
  g_object_unref(metrics->cancellable);
  g_free(metrics->textfile);
  g_free(metrics);
}

guint16
hmmvd_metrics_get_port(const HmmvdMetrics *metrics)
{
  return metrics->port;
}

gboolean
hmmvd_metrics_interval_done(HmmvdMetrics *metrics, GError **error)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) local_error = NULL;

  if (metrics->textfile == NULL)
    return TRUE;
  text = hmmvd_metrics_format(metrics->vms, metrics->topo);
  /* CONSISTENT: a temporary file renamed over the old one, so the collector never reads a
   * half-written file. */
  if (!g_file_set_contents_full(metrics->textfile, text, -1, G_FILE_SET_CONTENTS_CONSISTENT,
                                0644, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "metrics textfile: %s",
                local_error->message);
    return FALSE;
  }
  return TRUE;
}
