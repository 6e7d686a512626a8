/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvctl: hmmvd's command-line client (status, vms, placement, set-quota, pause, resume
 * over the control socket), and `hmmvctl track`, which watches one QEMU's guest writes directly over
 * its QMP socket, without hmmvd.
 */
#include "control.h"
#include "hmmvctl.h"
#include "quota.h"

#include <gio/gunixsocketaddress.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>

/* `hmmvctl vms` of a few thousand VMs is a few MiB of JSON; more is not hmmvd talking. */
#define MAX_REPLY_BYTES (16u << 20)
#define SOCKET_TIMEOUT_S 30u
#define QMP_TIMEOUT_MS 5000u

typedef struct {
  char *socket_path;
  gboolean json;
  char *min;
  char *max;
  char *weight;
  char *managed;
  char *qmp;
  int interval_ms;
  int count;
  char *trace;
  gboolean reads;
} Options;

static void
options_clear(Options *options)
{
  g_free(options->socket_path);
  g_free(options->min);
  g_free(options->max);
  g_free(options->weight);
  g_free(options->managed);
  g_free(options->qmp);
  g_free(options->trace);
}

/* ---- talking to hmmvd ---- */

static char *
read_reply_line(GInputStream *in, GError **error)
{
  g_autoptr(GByteArray) buf = g_byte_array_new();
  char chunk[4096];

  for (;;) {
    gssize n = g_input_stream_read(in, chunk, sizeof(chunk), NULL, error);
    const char *newline;

    if (n < 0)
      return NULL;
    if (n == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "hmmvd closed the connection");
      return NULL;
    }
    g_byte_array_append(buf, (const guint8 *)chunk, (guint)n);
    newline = memchr(buf->data, '\n', buf->len);
    if (newline != NULL)
      return g_strndup((const char *)buf->data, (gsize)(newline - (const char *)buf->data));
    if (buf->len > MAX_REPLY_BYTES) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "reply longer than %u bytes",
                  MAX_REPLY_BYTES);
      return NULL;
    }
  }
}

static JsonNode *
parse_reply(const char *line, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  JsonObject *object;
  JsonNode *root;

  if (!json_parser_load_from_data(parser, line, -1, error))
    return NULL;
  root = json_parser_get_root(parser);
  object = root != NULL && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  if (object != NULL && json_object_has_member(object, "error")) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "hmmvd: %s",
                json_object_get_string_member_with_default(object, "error", "(no message)"));
    return NULL;
  }
  if (object == NULL || !json_object_has_member(object, "return")) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "hmmvd sent a malformed reply");
    return NULL;
  }
  return json_node_copy(json_object_get_member(object, "return"));
}

static JsonNode *
call_hmmvd(const char *socket_path, JsonObject *request, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(socket_path);
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
  g_autoptr(GError) local_error = NULL;
  g_autofree char *text = NULL;
  g_autofree char *line = NULL;
  g_autofree char *reply = NULL;

  g_socket_client_set_timeout(client, SOCKET_TIMEOUT_S);
  connection = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address), NULL,
                                       &local_error);
  if (connection == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO,
                "cannot reach hmmvd at %s: %s (is hmmvd running? the socket is root only)",
                socket_path, local_error->message);
    return NULL;
  }
  json_node_set_object(node, request);
  text = json_to_string(node, FALSE);
  line = g_strconcat(text, "\n", NULL);
  if (!g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(connection)), line,
                                 strlen(line), NULL, NULL, &local_error)) {
    /* hmmvd answers a peer it refuses with one error line and hangs up, maybe before our
     * request is written: its reason beats "broken pipe". */
    reply = read_reply_line(g_io_stream_get_input_stream(G_IO_STREAM(connection)), NULL);
    if (reply != NULL)
      return parse_reply(reply, error);
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "hmmvd at %s hung up: %s", socket_path,
                local_error->message);
    return NULL;
  }
  reply = read_reply_line(g_io_stream_get_input_stream(G_IO_STREAM(connection)), error);
  return reply != NULL ? parse_reply(reply, error) : NULL;
}

/* ---- human output (status and vms: hmmvctl-print.c) ---- */

#define member_uint hmmvctl_member_uint
#define mib hmmvctl_mib

/* hmmvd's placement map ("placement": one character a page, the node in base 32 or '-' for a
 * page hmmvd has not placed) summed per region and node: 4 GiB of guest RAM is a 1 Mi
 * character string nobody reads, the counts are what a person checks against numa_maps. */
#define PLACEMENT_NODES 32

static int
placement_node(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'v')
    return c - 'a' + 10;
  return -1;
}

static void
print_placement_row(const char *label, const char *gpa, guint64 pages, const guint64 *counts,
                    guint64 unplaced, const gboolean *used)
{
  printf("%-16.16s %18s %10" G_GUINT64_FORMAT, label, gpa, pages);
  for (int n = 0; n < PLACEMENT_NODES; n++)
    if (used[n])
      printf(" %10" G_GUINT64_FORMAT, counts[n]);
  printf(" %10" G_GUINT64_FORMAT "\n", unplaced);
}

static gboolean
print_placement(JsonObject *view, GError **error)
{
  JsonArray *regions = json_object_get_array_member(view, "regions");
  const char *nodes = json_object_get_string_member_with_default(view, "nodes", "");
  guint64 nr_pages = member_uint(view, "nr-pages");
  guint nr_regions = regions != NULL ? json_array_get_length(regions) : 0;
  g_autofree guint64 *counts = g_new0(guint64, (gsize)(nr_regions + 1) * PLACEMENT_NODES);
  g_autofree guint64 *unplaced = g_new0(guint64, nr_regions + 1);
  guint64 *total = counts + (gsize)nr_regions * PLACEMENT_NODES;
  gboolean used[PLACEMENT_NODES] = { FALSE };

  if (strlen(nodes) != nr_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "hmmvd's placement lists %zu pages of %" G_GUINT64_FORMAT, strlen(nodes),
                nr_pages);
    return FALSE;
  }
  for (guint r = 0; r < nr_regions; r++) {
    JsonObject *region = json_array_get_object_element(regions, r);
    guint64 first = member_uint(region, "first-page"), pages = member_uint(region, "pages");

    if (first > nr_pages || pages > nr_pages - first) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                  "hmmvd's placement: region %u (pages %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                  ") outside the VM's %" G_GUINT64_FORMAT " pages", r, first, pages, nr_pages);
      return FALSE;
    }
    for (guint64 page = first; page < first + pages; page++) {
      int node = placement_node(nodes[page]);

      if (node < 0) {
        unplaced[r]++;
        unplaced[nr_regions]++;
        continue;
      }
      used[node] = TRUE;
      counts[(gsize)r * PLACEMENT_NODES + (guint)node]++;
      total[node]++;
    }
  }
  printf("%s (pid %" G_GUINT64_FORMAT "), after interval %" G_GUINT64_FORMAT ": %"
         G_GUINT64_FORMAT " pages (%" G_GUINT64_FORMAT " MiB)\n",
         json_object_get_string_member_with_default(view, "name", "?"), member_uint(view, "pid"),
         member_uint(view, "intervals"), nr_pages, mib(nr_pages));
  printf("%-16s %18s %10s", "REGION", "GPA", "PAGES");
  for (int n = 0; n < PLACEMENT_NODES; n++)
    if (used[n])
      printf("      NODE%-2d", n);
  printf(" %10s\n", "UNPLACED");
  for (guint r = 0; r < nr_regions; r++) {
    JsonObject *region = json_array_get_object_element(regions, r);
    g_autofree char *gpa = g_strdup_printf("0x%" G_GINT64_MODIFIER "x",
                                           member_uint(region, "gpa"));

    print_placement_row(json_object_get_string_member_with_default(region, "name", "?"), gpa,
                        member_uint(region, "pages"), counts + (gsize)r * PLACEMENT_NODES,
                        unplaced[r], used);
  }
  if (nr_regions > 1)
    print_placement_row("total", "", nr_pages, total, unplaced[nr_regions], used);
  printf("(pages of 4 KiB, on each node as hmmvd placed them; UNPLACED: never touched, or not "
         "yet seen by hmmvd; --json has the page-by-page map)\n");
  return TRUE;
}

/* ---- commands ---- */

static gboolean
build_quota(const Options *options, JsonObject *quota, GError **error)
{
  guint64 pages, weight;

  if (options->min == NULL && options->max == NULL && options->weight == NULL &&
      options->managed == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "set-quota needs at least one of --min, --max, --weight, --managed");
    return FALSE;
  }
  if (options->min != NULL) {
    if (!hmmvd_quota_parse_mib(options->min, &pages, error)) {
      g_prefix_error(error, "--min: ");
      return FALSE;
    }
    json_object_set_int_member(quota, "dram-min-mib", (gint64)(pages / HMMVD_PAGES_PER_MIB));
  }
  if (options->max != NULL) {
    if (!hmmvd_quota_parse_mib(options->max, &pages, error)) {
      g_prefix_error(error, "--max: ");
      return FALSE;
    }
    json_object_set_int_member(quota, "dram-max-mib", (gint64)(pages / HMMVD_PAGES_PER_MIB));
  }
  if (options->weight != NULL) {
    if (strspn(options->weight, "0123456789") != strlen(options->weight) ||
        !g_ascii_string_to_unsigned(options->weight, 10, 1, HMMVD_QUOTA_MAX_WEIGHT, &weight,
                                    NULL)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "--weight: \"%s\" is not a whole number in 1..%u", options->weight,
                  HMMVD_QUOTA_MAX_WEIGHT);
      return FALSE;
    }
    json_object_set_int_member(quota, "weight", (gint64)weight);
  }
  if (options->managed != NULL) {
    if (g_strcmp0(options->managed, "yes") != 0 && g_strcmp0(options->managed, "no") != 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "--managed: expected yes or no, not \"%s\"", options->managed);
      return FALSE;
    }
    json_object_set_boolean_member(quota, "managed", options->managed[0] == 'y');
  }
  return TRUE;
}

static gboolean
run_daemon_command(const Options *options, const char *command, const char *vm,
                   GError **error)
{
  g_autoptr(JsonObject) request = json_object_new();
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_string_member(request, "command", command);
  if (vm != NULL)
    json_object_set_string_member(request, "vm", vm);
  if (strcmp(command, "set-quota") == 0) {
    JsonObject *quota = json_object_new();

    json_object_set_object_member(request, "quota", quota);
    if (!build_quota(options, quota, error))
      return FALSE;
  }
  ret = call_hmmvd(options->socket_path, request, error);
  if (ret == NULL)
    return FALSE;
  if (options->json) {
    g_autofree char *text = json_to_string(ret, TRUE);

    printf("%s\n", text);
  } else if (strcmp(command, "status") == 0 && JSON_NODE_HOLDS_OBJECT(ret)) {
    g_autoptr(GString) out = g_string_new(NULL);

    hmmvctl_print_status(out, json_node_get_object(ret));
    fputs(out->str, stdout);
  } else if (strcmp(command, "vms") == 0 && JSON_NODE_HOLDS_ARRAY(ret)) {
    g_autoptr(GString) out = g_string_new(NULL);

    hmmvctl_print_vms(out, json_node_get_array(ret));
    fputs(out->str, stdout);
  } else if (strcmp(command, "placement") == 0 && JSON_NODE_HOLDS_OBJECT(ret)) {
    return print_placement(json_node_get_object(ret), error);
  } else if (strcmp(command, "set-quota") == 0) {
    /* a libvirt domain's is written to its metadata on hmmvd's libvirt thread after this
     * reply, and applied by libvirt's metadata event (libvirt.c) */
    printf("%s: quota accepted; it applies from the next interval, a libvirt domain's once "
           "hmmvd has written it to the domain's metadata (see hmmvctl vms)\n", vm);
  } else if (vm != NULL) {
    printf("%s: %s\n", vm, command[0] == 'p' ? "paused (tracked, no page moves)" : "resumed");
  }
  return TRUE;
}

static gboolean
check_usage(const Options *options, const char *command, int argc, GError **error)
{
  gboolean quota_options = options->min != NULL || options->max != NULL ||
                           options->weight != NULL || options->managed != NULL;
  gboolean track_options = options->qmp != NULL || options->interval_ms >= 0 ||
                           options->count >= 0 || options->trace != NULL || options->reads;
  int want_args = strcmp(command, "set-quota") == 0 || strcmp(command, "pause") == 0 ||
                  strcmp(command, "resume") == 0 || strcmp(command, "placement") == 0 ? 1 : 0;
  const char *bad = NULL;

  if (quota_options && strcmp(command, "set-quota") != 0)
    bad = "--min, --max, --weight and --managed go with set-quota";
  else if (track_options && strcmp(command, "track") != 0)
    bad = "--qmp, --interval-ms, --count, --trace and --reads go with track";
  else if (argc - 2 != want_args)
    bad = want_args ? "this command takes one domain name" : "this command takes no argument";
  else if (strcmp(command, "track") == 0 && options->qmp == NULL)
    bad = "track needs --qmp SOCKET";
  if (bad != NULL)
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "%s: %s", command, bad);
  return bad == NULL;
}

static const char summary[] =
  "Commands (talk to hmmvd over its root-only control socket):\n"
  "  status                  the daemon: intervals, mover, read source, DRAM pool, nodes\n"
  "  vms                     per VM: status, quota, DRAM budget, hot set, pages per tier,\n"
  "                          promotions, demotions, errors\n"
  "  placement DOM           DOM's pages per region and NUMA node, as hmmvd placed them\n"
  "                          (--json: the node of every page)\n"
  "  set-quota DOM [--min MIB] [--max MIB] [--weight N] [--managed yes|no]\n"
  "                          for libvirt domains, written to the domain's metadata as\n"
  "                          virsh metadata would (live and config); else applied at once\n"
  "  pause DOM | resume DOM  stop / restart moving DOM's pages (tracking goes on)\n"
  "\n"
  "Without hmmvd, straight to one QEMU with the hmmv patches:\n"
  "  track --qmp SOCKET [--reads] [--interval-ms N] [--count K] [--trace FILE]\n"
  "      Starts tracking, prints per interval the guest-physical ranges written as\n"
  "      0xSTART-0xEND with END exclusive (the first byte after the range), and stops\n"
  "      tracking cleanly after K intervals (default: until Ctrl-C or SIGTERM).\n"
  "      --interval-ms N: QEMU publishes every N ms (default 1000); 0: QEMU publishes\n"
  "      only when asked (hmmv-sync), once a second. --trace FILE writes the replay\n"
  "      trace format (include/hmmv/trace.h) instead of ranges. --reads: reads too,\n"
  "      from what hmmvd's [reads] source = auto takes (DAMON vaddr, else idle page\n"
  "      tracking, else DAMON paddr; a free kdamond only; says which, and why not the\n"
  "      others), printed apart from the writes: pages accessed and not written.\n"
  "\n"
  "Exit status: 0 ok, 1 error (the reason on stderr).";

int
main(int argc, char **argv)
{
  Options options = { .interval_ms = -1, .count = -1 };
  const GOptionEntry entries[] = {
    { "socket", 's', 0, G_OPTION_ARG_FILENAME, &options.socket_path,
      "hmmvd's control socket (default /run/hmmv/hmmvd.sock)", "PATH" },
    { "json", 'j', 0, G_OPTION_ARG_NONE, &options.json, "print hmmvd's raw JSON reply", NULL },
    { "min", 0, 0, G_OPTION_ARG_STRING, &options.min, "set-quota: DRAM minimum", "MIB" },
    { "max", 0, 0, G_OPTION_ARG_STRING, &options.max, "set-quota: DRAM maximum (0: none)",
      "MIB" },
    { "weight", 0, 0, G_OPTION_ARG_STRING, &options.weight, "set-quota: share, 1..10000",
      "N" },
    { "managed", 0, 0, G_OPTION_ARG_STRING, &options.managed,
      "set-quota: whether hmmv moves the VM's pages", "yes|no" },
    { "qmp", 0, 0, G_OPTION_ARG_FILENAME, &options.qmp, "track: QEMU's QMP socket", "SOCKET" },
    { "interval-ms", 0, 0, G_OPTION_ARG_INT, &options.interval_ms,
      "track: QEMU's publication interval (default 1000, 0: on demand)", "N" },
    { "count", 0, 0, G_OPTION_ARG_INT, &options.count, "track: stop after K intervals", "K" },
    { "trace", 0, 0, G_OPTION_ARG_FILENAME, &options.trace,
      "track: write a replay trace instead of ranges", "FILE" },
    { "reads", 0, 0, G_OPTION_ARG_NONE, &options.reads,
      "track: reads too (as hmmvd picks its source), printed apart from writes", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new("COMMAND [DOM]");
  g_autoptr(GError) error = NULL;
  const char *command;
  gboolean ok;

  g_option_context_add_main_entries(context, entries, NULL);
  g_option_context_set_description(context, summary);
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    fprintf(stderr, "hmmvctl: %s (see hmmvctl --help)\n", error->message);
    options_clear(&options);
    return 1;
  }
  if (argc < 2) {
    g_autofree char *help = g_option_context_get_help(context, TRUE, NULL);

    fprintf(stderr, "%s", help);
    options_clear(&options);
    return 1;
  }
  command = argv[1];
  if (options.socket_path == NULL)
    options.socket_path = g_strdup("/run/hmmv/hmmvd.sock");
  if (!g_strv_contains((const char *const[]){ "status", "vms", "placement", "set-quota",
                                              "pause", "resume", "track", NULL }, command))
    g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "unknown command \"%s\" (see hmmvctl --help)", command);
  ok = error == NULL && check_usage(&options, command, argc, &error);
  if (ok && strcmp(command, "track") == 0)
    ok = hmmvctl_track(options.qmp, options.interval_ms < 0 ? 1000 : options.interval_ms,
                       options.count, options.trace, options.reads, &error);
  else if (ok)
    ok = run_daemon_command(&options, command, argc > 2 ? argv[2] : NULL, &error);
  if (!ok)
    fprintf(stderr, "hmmvctl: %s\n", error->message);
  options_clear(&options);
  return ok ? 0 : 1;
}
