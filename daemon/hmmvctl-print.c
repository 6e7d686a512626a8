/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvctl's human output of `status` and `vms` (hmmvctl.h), from hmmvd's JSON replies. */
#include "hmmvctl.h"
#include "quota.h"

#include <stdarg.h>
#include <string.h>

static void G_GNUC_PRINTF(2, 3)
put(GString *out, const char *format, ...)
{
  va_list args;

  va_start(args, format);
  g_string_append_vprintf(out, format, args);
  va_end(args);
}

guint64
hmmvctl_member_uint(JsonObject *object, const char *member)
{
  gint64 value = json_object_get_int_member_with_default(object, member, 0);

  return value > 0 ? (guint64)value : 0;
}

#define member_uint hmmvctl_member_uint
#define mib hmmvctl_mib

/* An object or array member, NULL when absent or of another kind (an older hmmvd's reply
 * lacks some; json-glib's getters would complain). */
static JsonObject *
object_member(JsonObject *object, const char *member)
{
  JsonNode *node = json_object_get_member(object, member);

  return node != NULL && JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
}

static JsonArray *
array_member(JsonObject *object, const char *member)
{
  JsonNode *node = json_object_get_member(object, member);

  return node != NULL && JSON_NODE_HOLDS_ARRAY(node) ? json_node_get_array(node) : NULL;
}

guint64
hmmvctl_mib(guint64 pages)
{
  return pages / HMMVD_PAGES_PER_MIB;
}

/* Linux's own tiering, which moves the same pages (host-tiering.h): one line each, with
 * how to turn it off; "none" when nothing fights hmmvd. */
static void
print_host_tiering(GString *out, JsonObject *tiering)
{
  JsonArray *warnings;
  JsonArray *errors;

  if (tiering == NULL)
    return;
  warnings = array_member(tiering, "warnings");
  errors = array_member(tiering, "errors");
  if (warnings == NULL || json_array_get_length(warnings) == 0)
    put(out, "host tiering: none (NUMA balancing, demotion and DAMOS migration schemes off)\n");
  for (guint i = 0; warnings != NULL && i < json_array_get_length(warnings); i++)
    put(out, "host tiering: FIGHTS hmmvd: %s\n", json_array_get_string_element(warnings, i));
  for (guint i = 0; errors != NULL && i < json_array_get_length(errors); i++)
    put(out, "host tiering: cannot read %s\n", json_array_get_string_element(errors, i));
}

/* "12 MiB", or under 1 MiB "8 pages (32 KiB)": whole MiB alone printed a small hold as
 * "0 MiB", on the very line meant to show it (review 19, finding 3). */
char *
hmmvctl_held_size(guint64 pages)
{
  if (pages == 0 || pages >= HMMVD_PAGES_PER_MIB)
    return g_strdup_printf("%" G_GUINT64_FORMAT " MiB", mib(pages));
  return g_strdup_printf("%" G_GUINT64_FORMAT " page%s (%" G_GUINT64_FORMAT " KiB)", pages,
                         pages == 1 ? "" : "s", pages * (HMMV_PAGE_SIZE / 1024));
}

/* The DRAM the core keeps counted for VMs removed while their QEMU lives (standalone: the
 * QMP connection broke), one line per hold (per QEMU: two under one name are two lines),
 * then their total when there is one. */
static void
print_holds(GString *out, JsonObject *status)
{
  JsonArray *holds = array_member(status, "holds");
  g_autofree char *total = NULL;
  guint nr = holds != NULL ? json_array_get_length(holds) : 0;

  for (guint i = 0; i < nr; i++) {
    JsonNode *node = json_array_get_element(holds, i);
    JsonObject *hold = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
    g_autofree char *size = NULL, *qemu = NULL;
    const char *state;

    if (hold == NULL)
      continue;
    state = json_object_get_string_member_with_default(hold, "state", "?");
    size = hmmvctl_held_size(member_uint(hold, "dram-pages"));
    qemu = member_uint(hold, "pid") > 0
           ? g_strdup_printf("QEMU pid %" G_GUINT64_FORMAT, member_uint(hold, "pid"))
           : g_strdup("QEMU");
    put(out, "held:        vm %s %s (%s%s)\n",
        json_object_get_string_member_with_default(hold, "name", "?"), size, qemu,
        g_strcmp0(state, "reconnecting") == 0 ? " lives, reconnecting"
        : g_strcmp0(state, "reading-placement") == 0 ? " connected again, reading its placement"
        : state);
  }
  if (nr == 0)
    return;
  total = hmmvctl_held_size(member_uint(status, "held-dram-pages"));
  put(out, "held:        %s of the pool in all, %u hold%s (VMs out of the core, or back and "
      "reading their placement)\n", total, nr, nr == 1 ? "" : "s");
}

void
hmmvctl_print_status(GString *out, JsonObject *status)
{
  JsonArray *nodes = array_member(status, "nodes");
  JsonArray *flat = array_member(status, "vms-rank-flat");
  const char *mover = json_object_get_string_member_with_default(status, "mover", "?");
  const char *balance = json_object_get_string_member_with_default(status, "balance-error",
                                                                   NULL);
  const char *note = json_object_get_string_member_with_default(status, "balance-note", NULL);
  const char *node_mins = json_object_get_string_member_with_default(status, "node-mins-note",
                                                                     NULL);

  put(out, "intervals:   %" G_GUINT64_FORMAT " (%" G_GUINT64_FORMAT " ms each), the last took "
           "%.3f ms\n", member_uint(status, "intervals"), member_uint(status, "interval-ms"),
           (double)member_uint(status, "last-interval-ns") / 1e6);
  put(out, "reads:       %s%s%s%s\n",
           json_object_get_string_member_with_default(status, "read-source", "none"),
           json_object_has_member(status, "read-source-reason") ? " (" : "",
           json_object_get_string_member_with_default(status, "read-source-reason", ""),
           json_object_has_member(status, "read-source-reason") ? ")" : "");
  put(out, "mover:       %s%s\n", mover,
           json_object_get_boolean_member_with_default(status, "slow-tier-modelled", FALSE)
             ? " (the slow tier is modelled: no page really moves)" : "");
  if (member_uint(status, "batch-pages") > 0)
    put(out, "moves:       %" G_GUINT64_FORMAT " ns a page learnt, at most %" G_GUINT64_FORMAT
             " pages an interval; the last took %.3f ms\n",
             member_uint(status, "mover-ns-per-page"), member_uint(status, "batch-pages"),
             (double)member_uint(status, "last-moves-ns") / 1e6);
  put(out, "DRAM pool:   %" G_GUINT64_FORMAT " MiB", mib(member_uint(status, "pool-pages")));
  if (member_uint(status, "held-outside-pages") > 0) {
    g_autofree char *outside = hmmvctl_held_size(member_uint(status, "held-outside-pages"));

    put(out, " (%s held outside the balance: paused, frozen, unmanaged or failing VMs, VMs "
        "still reading their placement, holds)", outside);
  }
  put(out, "\n");
  print_holds(out, status);
  if (balance != NULL)
    put(out, "balance:     %s\n", balance);
  if (note != NULL)
    put(out, "mins scaled: %s\n", note);
  if (node_mins != NULL)
    put(out, "node mins:   %s\n", node_mins);
  put(out, "VMs:         %" G_GUINT64_FORMAT " listed, %" G_GUINT64_FORMAT " managed\n",
           member_uint(status, "vms"), member_uint(status, "vms-managed"));
  /* VMs whose pages cannot be ranked, each with what to do */
  for (guint i = 0; flat != NULL && i < json_array_get_length(flat); i++) {
    JsonNode *node = json_array_get_element(flat, i);
    JsonObject *vm = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;

    if (vm == NULL)
      continue;
    put(out, "ranking:     vm %s flat, %s\n",
        json_object_get_string_member_with_default(vm, "name", "?"),
        json_object_get_string_member_with_default(vm, "note", "?"));
  }
  print_host_tiering(out, object_member(status, "host-tiering"));
  /* per node: its size and CPUs, then its share of the pool: what the VMs may hold there
   * (capacity: their pages + free - reserve, at most a configured pool), what they hold, and
   * what came to it because a nearer node was full */
  put(out, "%-6s %-6s %10s %6s %10s %10s %10s %10s %s\n", "NODE", "TIER", "MiB", "CPUS",
           "FREE MiB", "CAP MiB", "USED MiB", "FALLBACK", "");
  for (guint i = 0; nodes != NULL && i < json_array_get_length(nodes); i++) {
    JsonObject *node = json_array_get_object_element(nodes, i);

    put(out, "%-6" G_GUINT64_FORMAT " %-6s %10" G_GUINT64_FORMAT " %6" G_GUINT64_FORMAT
             " %10" G_GUINT64_FORMAT " %10" G_GUINT64_FORMAT " %10" G_GUINT64_FORMAT " %10"
             G_GUINT64_FORMAT " %s%s\n",
             member_uint(node, "id"), json_object_get_string_member_with_default(node, "tier", "?"),
             member_uint(node, "total-bytes") >> 20, member_uint(node, "cpus"),
             mib(member_uint(node, "free-pages")), mib(member_uint(node, "capacity-pages")),
             mib(member_uint(node, "used-pages")), member_uint(node, "fallback-in-pages"),
             json_object_get_boolean_member_with_default(node, "full", FALSE) ? "full" : "",
             member_uint(node, "configured-pages") != 0 ? " (pool configured)" : "");
  }
}

/* Pages the mover refused since the VM was listed, all kinds together (--json has each). */
static guint64
move_failures(JsonObject *vm)
{
  static const char *const kinds[] = { "not-present", "busy", "no-memory", "fault", "access",
                                        "other" };
  JsonObject *failures = object_member(vm, "move-failures");
  guint64 total = 0;

  for (guint i = 0; failures != NULL && i < G_N_ELEMENTS(kinds); i++)
    total += member_uint(failures, kinds[i]);
  return total;
}

static void
print_vm_row(GString *out, JsonObject *vm, int name_width)
{
  JsonObject *quota = object_member(vm, "quota");
  const char *status = json_object_get_string_member_with_default(vm, "status", "?");
  g_autofree char *max = NULL;

  if (quota != NULL && member_uint(quota, "dram-max-mib") != 0)
    max = g_strdup_printf("%" G_GUINT64_FORMAT, member_uint(quota, "dram-max-mib"));
  put(out, "%-*s %-12.12s %6" G_GUINT64_FORMAT " %6s %6" G_GUINT64_FORMAT " %7" G_GUINT64_FORMAT
           " %7" G_GUINT64_FORMAT " %7" G_GUINT64_FORMAT " %7" G_GUINT64_FORMAT " %9"
           G_GUINT64_FORMAT " %9" G_GUINT64_FORMAT " %9" G_GUINT64_FORMAT " %7" G_GUINT64_FORMAT
           " %7" G_GUINT64_FORMAT " %7" G_GUINT64_FORMAT " %6" G_GUINT64_FORMAT "\n",
           name_width, json_object_get_string_member_with_default(vm, "name", "?"),
           json_object_get_boolean_member_with_default(vm, "paused", FALSE) ? "paused" : status,
           quota != NULL ? member_uint(quota, "dram-min-mib") : 0, max != NULL ? max : "-",
           quota != NULL ? member_uint(quota, "weight") : 0, mib(member_uint(vm, "budget-pages")),
           mib(member_uint(vm, "hot-pages")), mib(member_uint(vm, "dram-pages")),
           mib(member_uint(vm, "slow-pages")), member_uint(vm, "promotions-total"),
           member_uint(vm, "demotions-total"), member_uint(vm, "re-moves-total"),
           move_failures(vm),
           member_uint(vm, "homed-dram-total") + member_uint(vm, "homed-slow-total"),
           member_uint(vm, "away-dram-pages") + member_uint(vm, "away-slow-pages"),
           member_uint(vm, "errors"));
}

static void
print_vm_notes(GString *out, JsonObject *vm)
{
  const char *name = json_object_get_string_member_with_default(vm, "name", "?");
  const char *status = json_object_get_string_member_with_default(vm, "status", "?");
  const char *quota_error = json_object_get_string_member_with_default(vm, "quota-error", NULL);
  const char *quota_pending =
    json_object_get_string_member_with_default(vm, "quota-pending", NULL);
  const char *last_error = json_object_get_string_member_with_default(vm, "last-error", NULL);

  if (g_strcmp0(status, "managed") != 0)
    put(out, "  %s: %s\n", name, status);
  JsonNode *exclude = json_object_get_member(vm, "exclude");

  if (quota_error != NULL)
    put(out, "  %s: quota rejected (the last good one stays): %s\n", name, quota_error);
  if (quota_pending != NULL)
    put(out, "  %s: quota from set-quota not applied yet: %s\n", name, quota_pending);
  if (exclude != NULL && JSON_NODE_HOLDS_ARRAY(exclude) &&
      json_array_get_length(json_node_get_array(exclude)) > 0) {
    JsonArray *names = json_node_get_array(exclude);
    g_autoptr(GString) list = g_string_new(NULL);

    for (guint i = 0; i < json_array_get_length(names); i++)
      g_string_append_printf(list, "%s%s", i > 0 ? ", " : "",
                             json_array_get_string_element(names, i));
    put(out, "  %s: excluded (left alone: not tracked, not moved, not counted): %s, %"
             G_GUINT64_FORMAT " MiB\n", name, list->str, mib(member_uint(vm, "excluded-pages")));
  }
  if (last_error != NULL)
    put(out, "  %s: last error: %s\n", name, last_error);
  if (json_object_has_member(vm, "dram-held-pages")) {
    g_autofree char *held = hmmvctl_held_size(member_uint(vm, "dram-held-pages"));

    put(out, "  %s: %s of DRAM held for it beyond its own pages (its QMP connection broke "
        "while QEMU lives; until its placement is read again)\n", name, held);
  }
  if (json_object_get_string_member_with_default(vm, "ranking-note", NULL) != NULL)
    put(out, "  %s: ranking: flat, %s\n", name,
        json_object_get_string_member_with_default(vm, "ranking-note", NULL));
  if (json_object_get_boolean_member_with_default(vm, "writes-paused", FALSE))
    put(out, "  %s: write tracking paused (settled, budget not contended: 1 interval in %u "
        "tracked)\n", name, HMMV_PAUSE_CYCLE);
}

void
hmmvctl_print_vms(GString *out, JsonArray *vms)
{
  guint nr = json_array_get_length(vms);
  int width = 4;

  for (guint i = 0; i < nr; i++) {
    const char *name = json_object_get_string_member_with_default(
      json_array_get_object_element(vms, i), "name", "?");

    width = MAX(width, (int)MIN(strlen(name), 40u));
  }
  put(out, "%-*s %-12s %6s %6s %6s %7s %7s %7s %7s %9s %9s %9s %7s %7s %7s %6s\n", width,
      "NAME", "STATUS", "MIN", "MAX", "WEIGHT", "BUDGET", "HOT", "DRAM", "SLOW", "PROMOTED",
      "DEMOTED", "RE-MOVED", "FAILED", "HOMED", "AWAY", "ERRORS");
  for (guint i = 0; i < nr; i++)
    print_vm_row(out, json_array_get_object_element(vms, i), width);
  if (nr > 0)
    put(out, "(MIN MAX BUDGET HOT DRAM SLOW in MiB; PROMOTED DEMOTED RE-MOVED FAILED HOMED in "
        "pages since listed, RE-MOVED: promotions and demotions of pages that had moved before; "
        "AWAY in pages now, on a node other than the VM's nearest of their tier; "
        "ERRORS in intervals)\n");
  for (guint i = 0; i < nr; i++)
    print_vm_notes(out, json_array_get_object_element(vms, i));
}

