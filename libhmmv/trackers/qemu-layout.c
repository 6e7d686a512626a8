/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QEMU's guest RAM as hmmv sees it, from the patched QEMU's query-hmmv-ramblocks: each
 * guest RAM block's guest-physical ranges (HmmvQemuRange, by gpa), checked against what QEMU
 * really maps, and the HmmvVm built from them. The qemu-dirty tracker (qemu-dirty.c) checks
 * its export against the same ranges.
 *
 * A block that a RamDiscardManager manages (a virtio-mem device's memory backend: QEMU
 * reports its discard-granularity and its populated parts, 10.0's 0016) holds guest pages
 * only where it is populated (plugged): its ranges are cut down to those parts, so unplugged
 * memory is never ranked or moved. A plug or unplug bumps that block's layout generation;
 * the tracker's recheck then finds the ranges changed (LAYOUT_CHANGED) and hmmvd lays the VM
 * out again.
 */
#include "../procmaps.h"
#include "../vm-private.h"

#include <hmmv/error.h>
#include <hmmv/json.h>
#include <hmmv/qemu.h>

void
hmmv_qemu_range_free(HmmvQemuRange *range)
{
  if (range == NULL)
    return;
  g_free(range->block);
  g_free(range->memdev);
  g_free(range);
}

static gboolean
is_guest_ram(JsonObject *block, const char *name)
{
  /* A memory backend owns the RAM of every -numa/-object guest (libvirt always uses one);
   * plain "-m" RAM is the "pc.ram" block. */
  return json_object_has_member(block, "memdev") || g_strcmp0(name, "pc.ram") == 0;
}

static gint
range_by_gpa(gconstpointer a, gconstpointer b)
{
  const HmmvQemuRange *ra = *(HmmvQemuRange *const *)a;
  const HmmvQemuRange *rb = *(HmmvQemuRange *const *)b;

  return ra->gpa < rb->gpa ? -1 : ra->gpa > rb->gpa;
}

typedef struct {
  guint64 offset;           /* in the block */
  guint64 size;
} Populated;

/* A block's populated parts (query-hmmv-ramblocks' populated: offset order, not overlapping,
 * page-aligned, inside used), or NULL with no error when QEMU reports none for it (no
 * RamDiscardManager: all of it is guest RAM). Bounded by used / 4 KiB parts, which the order
 * and overlap checks imply. */
static GArray *
parse_populated(JsonObject *block, const char *name, guint64 used, GError **error)
{
  JsonNode *node = json_object_get_member(block, "populated");
  g_autoptr(GArray) parts = NULL;
  JsonArray *array;
  guint64 next = 0;

  if (node == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_ARRAY(node)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "block %s: populated is not a list",
                name);
    return NULL;
  }
  array = json_node_get_array(node);
  parts = g_array_new(FALSE, FALSE, sizeof(Populated));
  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonNode *element = json_array_get_element(array, i);
    JsonObject *object = JSON_NODE_HOLDS_OBJECT(element) ? json_node_get_object(element) : NULL;
    Populated part;
    guint64 end;

    if (object == NULL || !hmmv_json_get_uint(object, "offset", &part.offset, error) ||
        !hmmv_json_get_uint(object, "size", &part.size, error)) {
      if (object == NULL)
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                    "block %s: a populated part is not an object", name);
      else
        g_prefix_error(error, "block %s: populated part %u: ", name, i);
      return NULL;
    }
    if (part.size == 0 || part.offset < next ||
        !g_uint64_checked_add(&end, part.offset, part.size) || end > used ||
        (part.offset | part.size) % HMMV_PAGE_SIZE != 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                  "block %s: populated part offset 0x%" G_GINT64_MODIFIER "x size 0x%"
                  G_GINT64_MODIFIER "x is not page-aligned inside the block after the last",
                  name, part.offset, part.size);
      return NULL;
    }
    next = end;
    g_array_append_val(parts, part);
  }
  return g_steal_pointer(&parts);
}

/* range, cut down to the block's populated parts (parts NULL: all of it), into out. */
static void
add_populated(HmmvQemuRange *range, const GArray *parts, GPtrArray *out)
{
  guint64 end = range->offset + range->size;

  if (parts == NULL) {
    g_ptr_array_add(out, range);
    return;
  }
  for (guint i = 0; i < parts->len; i++) {
    const Populated *part = &g_array_index(parts, Populated, i);
    guint64 from = MAX(part->offset, range->offset);
    guint64 to = MIN(part->offset + part->size, end);
    HmmvQemuRange *cut;

    if (from >= to)
      continue;
    cut = g_new0(HmmvQemuRange, 1);
    cut->block = g_strdup(range->block);
    cut->memdev = g_strdup(range->memdev);
    cut->offset = from;
    cut->gpa = range->gpa + (from - range->offset);
    cut->size = to - from;
    cut->hva = range->hva + (from - range->offset);
    cut->page_size = range->page_size;
    g_ptr_array_add(out, cut);
  }
  hmmv_qemu_range_free(range);
}

static gboolean
parse_range(JsonObject *block, const char *name, guint64 host, guint64 used, guint64 page_size,
            const GArray *populated, JsonNode *node, GPtrArray *out, GError **error)
{
  g_autoptr(HmmvQemuRange) range = g_new0(HmmvQemuRange, 1);
  JsonObject *object = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
  guint64 end;

  if (object == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "block %s: a range is not an object",
                name);
    return FALSE;
  }
  if (!hmmv_json_get_uint(object, "gpa", &range->gpa, error) ||
      !hmmv_json_get_uint(object, "size", &range->size, error) ||
      !hmmv_json_get_uint(object, "offset", &range->offset, error))
    return FALSE;
  if (range->size == 0 || !g_uint64_checked_add(&end, range->offset, range->size) ||
      end > used || !g_uint64_checked_add(&end, range->gpa, range->size) ||
      (range->offset | range->size | range->gpa) % HMMV_PAGE_SIZE != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "block %s: range gpa 0x%" G_GINT64_MODIFIER "x size 0x%" G_GINT64_MODIFIER
                "x offset 0x%" G_GINT64_MODIFIER "x is not page-aligned inside the block",
                name, range->gpa, range->size, range->offset);
    return FALSE;
  }
  range->block = g_strdup(name);
  range->memdev = g_strdup(json_object_get_string_member_with_default(block, "memdev", NULL));
  range->hva = host + range->offset;
  range->page_size = page_size;
  add_populated(g_steal_pointer(&range), populated, out);
  return TRUE;
}

GPtrArray *
hmmv_qemu_query_layout(HmmvQmp *qmp, gboolean all_blocks, GError **error)
{
  g_autoptr(JsonNode) ret = hmmv_qmp_execute(qmp, "query-hmmv-ramblocks", NULL, error);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)hmmv_qemu_range_free);
  JsonArray *blocks;

  if (ret == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_ARRAY(ret)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "query-hmmv-ramblocks did not return a list");
    return NULL;
  }
  blocks = json_node_get_array(ret);
  for (guint i = 0; i < json_array_get_length(blocks); i++) {
    JsonNode *node = json_array_get_element(blocks, i);
    JsonObject *block = JSON_NODE_HOLDS_OBJECT(node) ? json_node_get_object(node) : NULL;
    JsonNode *ranges_node;
    const char *name;
    guint64 host, used, page_size;
    g_autoptr(GArray) populated = NULL;
    GError *local_error = NULL;

    if (block == NULL || !hmmv_json_get_string(block, "name", &name, error) ||
        !hmmv_json_get_uint(block, "host-address", &host, error) ||
        !hmmv_json_get_uint(block, "used-length", &used, error) ||
        !hmmv_json_get_uint(block, "page-size", &page_size, error)) {
      g_prefix_error(error, "query-hmmv-ramblocks block %u: ", i);
      if (block == NULL)
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "block %u is not an object", i);
      return NULL;
    }
    if (!all_blocks && !is_guest_ram(block, name))
      continue;
    ranges_node = json_object_get_member(block, "ranges");
    if (ranges_node == NULL || !JSON_NODE_HOLDS_ARRAY(ranges_node)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "block %s has no range list", name);
      return NULL;
    }
    populated = parse_populated(block, name, used, &local_error);
    if (local_error != NULL) {
      g_propagate_error(error, local_error);
      return NULL;
    }
    for (guint r = 0; r < json_array_get_length(json_node_get_array(ranges_node)); r++)
      if (!parse_range(block, name, host, used, page_size, populated,
                       json_array_get_element(json_node_get_array(ranges_node), r), out,
                       error))
        return NULL;
  }
  if (out->len == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND,
                "QEMU reports no guest RAM mapped in guest-physical space");
    return NULL;
  }
  g_ptr_array_sort(out, range_by_gpa);
  return g_steal_pointer(&out);
}

/* Every range QEMU claims must be memory QEMU really maps writable, and all of them together
 * no more than max_ram_bytes (0: no such bound): before this, a claimed 4 TiB made hmmvd
 * allocate and fill 1 GiB of page state (13.7 s). */
static gboolean
check_ranges(GPtrArray *ranges, int pid, guint64 max_ram_bytes, GError **error)
{
  g_autoptr(GArray) maps = hmmv_proc_maps_read(pid, error);
  guint64 total = 0;

  if (maps == NULL) {
    g_prefix_error(error, "cannot check the RAM QEMU claims against its mappings: ");
    return FALSE;
  }
  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);

    if (!hmmv_proc_maps_cover(maps, range->hva, range->size)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                  "QEMU (pid %d) claims %" G_GUINT64_FORMAT " MiB of RAM block %s at 0x%"
                  G_GINT64_MODIFIER "x that it does not map writable", pid,
                  range->size >> 20, range->block, range->hva);
      return FALSE;
    }
    total += range->size;   /* cannot wrap: each range is mapped, mappings do not overlap */
  }
  if (max_ram_bytes != 0 && total > max_ram_bytes) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                "QEMU claims %" G_GUINT64_FORMAT " MiB of guest RAM, the VM has at most %"
                G_GUINT64_FORMAT " MiB", total >> 20, max_ram_bytes >> 20);
    return FALSE;
  }
  return TRUE;
}

HmmvVm *
hmmv_qemu_vm_new(HmmvQmp *qmp, const char *name, GError **error)
{
  return hmmv_qemu_vm_new_bounded(qmp, name, hmmv_qmp_get_peer_pid(qmp), 0, error);
}

HmmvVm *
hmmv_qemu_vm_new_bounded(HmmvQmp *qmp, const char *name, int pid, guint64 max_ram_bytes,
                         GError **error)
{
  return hmmv_qemu_vm_new_excluding(qmp, name, pid, max_ram_bytes, NULL, NULL, error);
}

gboolean
hmmv_qemu_range_excluded(const HmmvQemuRange *range, const char *const *exclude)
{
  for (guint i = 0; exclude != NULL && exclude[i] != NULL; i++)
    if (g_strcmp0(exclude[i], range->block) == 0 || g_strcmp0(exclude[i], range->memdev) == 0)
      return TRUE;
  return FALSE;
}

/* Each name must be a backend or block of the guest RAM mapped now (QEMU would refuse an
 * unknown one at hmmv-start, but only a QEMU with 10.0's 0012), and something must be left. */
static gboolean
check_exclude(GPtrArray *ranges, const char *const *exclude, GError **error)
{
  g_autoptr(GString) known = g_string_new(NULL);
  guint left = 0;

  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);
    const char *id = range->memdev != NULL ? range->memdev : range->block;

    const char *one[] = { id, NULL };
    guint seen;

    if (!hmmv_qemu_range_excluded(range, exclude))
      left++;
    for (seen = 0; seen < i; seen++)   /* a backend mapped in several ranges: named once */
      if (hmmv_qemu_range_excluded(g_ptr_array_index(ranges, seen), one))
        break;
    if (seen == i)
      g_string_append_printf(known, "%s%s", known->len > 0 ? ", " : "", id);
  }
  for (guint n = 0; exclude != NULL && exclude[n] != NULL; n++) {
    const char *one[] = { exclude[n], NULL };
    guint i;

    for (i = 0; i < ranges->len; i++)
      if (hmmv_qemu_range_excluded(g_ptr_array_index(ranges, i), one))
        break;
    if (i == ranges->len) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "exclude: no memory backend or RAM block named '%s' in this VM's guest RAM "
                  "(it has: %s)", exclude[n], known->str);
      return FALSE;
    }
  }
  if (left == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "exclude: every guest RAM backend of this VM is excluded (%s): nothing is left "
                "for hmmv to manage", known->str);
    return FALSE;
  }
  return TRUE;
}

HmmvVm *
hmmv_qemu_vm_new_excluding(HmmvQmp *qmp, const char *name, int pid, guint64 max_ram_bytes,
                           const char *const *exclude, guint64 *excluded_bytes,
                           GError **error)
{
  g_autoptr(GPtrArray) ranges = hmmv_qemu_query_layout(qmp, FALSE, error);
  g_autoptr(HmmvVm) vm = NULL;
  guint64 excluded = 0;

  if (ranges == NULL || !check_ranges(ranges, pid, max_ram_bytes, error) ||
      !check_exclude(ranges, exclude, error))
    return NULL;
  vm = hmmv_vm_new(name);
  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);

    if (hmmv_qemu_range_excluded(range, exclude)) {
      excluded += range->size;   /* left alone: not tracked, moved or counted */
      continue;
    }
    if (!hmmv_vm_add_region(vm, range->block, range->gpa, range->hva, range->size,
                            MAX(range->page_size, HMMV_PAGE_SIZE), error))
      return NULL;
  }
  if (!hmmv_vm_finalize_layout(vm, error))
    return NULL;
  if (excluded_bytes != NULL)
    *excluded_bytes = excluded;
  return g_steal_pointer(&vm);
}
