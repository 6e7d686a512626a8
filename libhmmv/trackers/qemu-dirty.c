/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qemu-dirty tracker: guest writes from the patched QEMU's shared-memory bitmaps (fed by
 * the KVM dirty ring that Intel PML fills, KVM's dirty log, or TCG). QEMU's guest RAM layout
 * (query-hmmv-ramblocks, hmmv_qemu_query_layout) is read in qemu-layout.c.
 *
 * start:   query the layout and check it is the VM's; hmmv-start into a memfd passed in an
 *          fd set (add-fd), or with getfd to a QEMU whose hmmv-start takes no fd set; seal,
 *          map and check the region.
 * harvest: (daemon-paced: hmmv-sync first) wait for a stable seq, exchange every non-zero
 *          bitmap word with 0 and set the matching VM pages. Generation delta = intervals
 *          merged, so a late harvest loses nothing; bits drained while QEMU is still
 *          publishing them count as an interval too (consumers skip 0-interval harvests).
 * A region flagged LAYOUT_STALE, or a layout that no longer matches, is reported as
 * HMMV_ERROR_LAYOUT_CHANGED; a QEMU that is gone as HMMV_ERROR_GONE.
 * layout:  a QEMU with per-block layout (10.0's 0016) bumps one descriptor's layout
 *          generation when only that block changed (a DIMM plugged or unplugged, PAM,
 *          removal, resize) and leaves the region valid; the header's layout generation
 *          counts every change. When it moves, the harvest re-reads the guest-physical ranges
 *          of the blocks whose generation moved, and only those: a block whose ranges still
 *          match the VM's (or that the VM never had and that is still unmapped) keeps being
 *          harvested; one that moved is HMMV_ERROR_LAYOUT_CHANGED, naming it. Ranges wholly
 *          below 1 MiB in the legacy window (PAM, SMRAM: BIOS shadowing, a reset, a VM state
 *          load) may come and go without that. A hot-plugged NIC (its option ROM) changes
 *          nothing at all. A virtio-mem device's block (only its populated parts are in the
 *          VM, qemu-layout.c) changes the same way when the guest plugs or unplugs memory
 *          (10.0's 0016; no flag): LAYOUT_CHANGED, and hmmvd lays the VM out again; bits in
 *          parts the VM does not have are never marked.
 * exclude:  backends left out of the export (hmmv-start's exclude): hmmvd builds the VM
 *           without their ranges (hmmv_qemu_vm_new_excluding); they get no block map, and a
 *           VM built with them never has their pages marked written. The list is honoured on
 *           a QEMU that exports them anyway (no exclude): their bits are never read.
 * pause:    hmmv-pause while the core says COARSE, the liveness of those exchanges, and QEMU's
 *           own word on its pause after one missed its deadline: in qemu-dirty-pause.c (the
 *           state is QemuDirty's, qemu-dirty-private.h).
 * A QEMU without exclude or hmmv-pause (a series before 10.0's 0012, 7.2's 0006) is tracked
 * as before; the log says so once per VM.
 */
#include "../procmaps.h"
#include "../shm.h"
#include "../vm-private.h"
#include "qemu-dirty-private.h"

#include <errno.h>
#include <hmmv/error.h>
#include <hmmv/qemu.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Longest a harvest waits for QEMU to finish a publication in progress. */
#define PUBLISH_WAIT_US 2000

typedef struct {
  guint64 offset_pages;     /* in the block */
  guint64 nr_pages;
  guint64 first_page;       /* VM page index */
} BlockRange;

typedef struct {
  guint shm_index;
  GArray *ranges;           /* BlockRange, by offset */
  guint cursor;             /* harvest: ranges are visited in increasing offset */
  HmmvAccess *acc;          /* harvest target */
} BlockMap;

/* QEMU's answer to a command it does not know, or to an argument it does not take. */
gboolean
hmmv_qemu_dirty_lacks(const GError *error, const char *what)
{
  return error != NULL && g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL) &&
         (strstr(error->message, "CommandNotFound") != NULL ||
          (what != NULL && strstr(error->message, what) != NULL &&
           strstr(error->message, "unexpected") != NULL));
}

static void
block_map_clear(gpointer data)
{
  BlockMap *map = data;

  g_clear_pointer(&map->ranges, g_array_unref);
}

static gboolean
region_is_range(const HmmvRegion *region, const HmmvQemuRange *range)
{
  return region->gpa == range->gpa && region->nr_pages == range->size >> HMMV_PAGE_SHIFT &&
         region->hva == range->hva;
}

/* Pair the region's blocks with the VM's regions; the VM was built from the same query, so
 * any difference means the layout changed in between. The excluded backends' ranges are not
 * in the VM (hmmv_qemu_vm_new_excluding); a VM built with them keeps them, never marked. */
static gboolean
build_block_maps(QemuDirty *qd, HmmvVm *vm, GPtrArray *ranges, GError **error)
{
  int pid = hmmv_vm_get_pid(vm) > 0 ? hmmv_vm_get_pid(vm) : hmmv_qmp_get_peer_pid(qd->qmp);
  g_autoptr(GArray) maps = hmmv_proc_maps_read(pid, error);

  if (maps == NULL) {
    g_prefix_error(error, "cannot check the export against QEMU's mappings: ");
    return FALSE;
  }
  guint next = 0;   /* the VM's next region */

  g_array_set_size(qd->blocks, 0);
  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);
    const HmmvRegion *region =
      next < hmmv_vm_get_nr_regions(vm) ? hmmv_vm_get_region(vm, next) : NULL;
    BlockRange br;
    BlockMap *map = NULL;
    guint b;

    if (hmmv_qemu_range_excluded(range, (const char *const *)qd->exclude)) {
      if (region != NULL && region_is_range(region, range))
        next++;   /* in the VM, not exported: never seen written */
      continue;
    }
    if (region == NULL || !region_is_range(region, range)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                  "guest RAM at 0x%" G_GINT64_MODIFIER "x changed since the VM was set up",
                  range->gpa);
      return FALSE;
    }
    next++;
    br = (BlockRange){ range->offset >> HMMV_PAGE_SHIFT, range->size >> HMMV_PAGE_SHIFT,
                       region->first_page };
    for (b = 0; b < hmmv_shm_get_nr_blocks(qd->shm); b++)
      if (strcmp(hmmv_shm_get_block(qd->shm, b)->id, range->block) == 0)
        break;
    if (b == hmmv_shm_get_nr_blocks(qd->shm)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                  "RAM block %s is not in QEMU's export", range->block);
      return FALSE;
    }
    if (((range->offset + range->size) >> HMMV_PAGE_SHIFT) >
        (hmmv_shm_get_block(qd->shm, b)->used_length >> HMMV_PAGE_SHIFT)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                  "RAM block %s is smaller in the export than in the layout", range->block);
      return FALSE;
    }
    /* The harvest reads the block's bitmap up to its used length: that length is a claim
     * too (a 128 MiB guest with a 1 GiB bitmap: 23 s per harvest), bounded here by what
     * QEMU maps at the block's address. */
    if (!hmmv_proc_maps_cover(maps, hmmv_shm_get_block(qd->shm, b)->host_addr,
                              hmmv_shm_get_block(qd->shm, b)->used_length) ||
        hmmv_shm_get_block(qd->shm, b)->host_addr != range->hva - range->offset) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL,
                  "RAM block %s in the export is not the memory QEMU maps for it",
                  range->block);
      return FALSE;
    }
    for (guint m = 0; m < qd->blocks->len; m++)
      if (g_array_index(qd->blocks, BlockMap, m).shm_index == b)
        map = &g_array_index(qd->blocks, BlockMap, m);
    if (map == NULL) {
      g_array_set_size(qd->blocks, qd->blocks->len + 1);
      map = &g_array_index(qd->blocks, BlockMap, qd->blocks->len - 1);
      map->shm_index = b;
      map->ranges = g_array_new(FALSE, FALSE, sizeof(BlockRange));
    }
    g_array_append_val(map->ranges, br);
  }
  if (next != hmmv_vm_get_nr_regions(vm)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                "QEMU now maps %u of the VM's %u guest RAM ranges", next,
                hmmv_vm_get_nr_regions(vm));
    return FALSE;
  }
  for (guint m = 0; m < qd->blocks->len; m++) {
    GArray *brs = g_array_index(qd->blocks, BlockMap, m).ranges;

    for (guint r = 1; r < brs->len; r++) {
      BlockRange *prev = &g_array_index(brs, BlockRange, r - 1);
      BlockRange *cur = &g_array_index(brs, BlockRange, r);

      /* Ranges of one block come in gpa order, and guest-physical maps of one block are
       * laid out in offset order in every machine type hmmv knows; insist on it so the
       * harvest's cursor is right. */
      if (cur->offset_pages < prev->offset_pages + prev->nr_pages) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                    "RAM block mapped at overlapping or out-of-order offsets");
        return FALSE;
      }
    }
  }
  return TRUE;
}

/* A QEMU's refusal that says hmmv-start takes no fd set: the 7.2 series and 10.0 before its
 * add-fd patch (0013) take only fdname ("Parameter 'fdname' is missing", or 'fdset-id'
 * unexpected). */
static gboolean
takes_no_fdset(const GError *error)
{
  return hmmv_qemu_dirty_lacks(error, "'fdset-id'") ||
         (error != NULL && g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL) &&
          strstr(error->message, "Parameter 'fdname' is missing") != NULL);
}

/* hmmv-start with args, and the backends to exclude where there are some and QEMU takes
 * them (a QEMU without exclude exports all, said once). */
static JsonNode *
start_export(QemuDirty *qd, JsonObject *args, GError **error)
{
  g_autoptr(GError) local_error = NULL;
  JsonNode *ret;
  JsonArray *names;

  qd->excluding = FALSE;
  if (qd->exclude == NULL || qd->exclude[0] == NULL || qd->no_exclude)
    return hmmv_qmp_execute(qd->qmp, "hmmv-start", args, error);
  names = json_array_new();
  for (guint i = 0; qd->exclude[i] != NULL; i++)
    json_array_add_string_element(names, qd->exclude[i]);
  json_object_set_array_member(args, "exclude", names);
  ret = hmmv_qmp_execute(qd->qmp, "hmmv-start", args, &local_error);
  json_object_remove_member(args, "exclude");
  if (ret != NULL) {
    qd->excluding = TRUE;
    return ret;
  }
  if (!hmmv_qemu_dirty_lacks(local_error, "exclude")) {
    /* 'fdset-id' unexpected is the caller's to handle; anything else is a real refusal */
    if (!takes_no_fdset(local_error))
      g_prefix_error(&local_error, "excluding backends from the write export: ");
    g_propagate_error(error, g_steal_pointer(&local_error));
    return NULL;
  }
  g_warning("vm %s: this QEMU cannot leave backends out of the write export (no "
            "hmmv-start exclude: its hmmv series predates 10.0's 0011 / 7.2's 0006): "
            "all guest RAM is tracked", qd->vm_name);
  qd->no_exclude = TRUE;
  return hmmv_qmp_execute(qd->qmp, "hmmv-start", args, error);
}

/* hmmv-start on fd handed over in an fd set: add-fd (with fd), hmmv-start with the set's
 * id, then remove-fd whatever the answer (QEMU holds its own duplicate once started, so the
 * set then holds nothing of hmmvd's and goes with hmmv-stop). NULL with *no_fdset set: this
 * QEMU takes no fd set (or refused add-fd) and needs getfd. */
static JsonNode *
start_with_fdset(QemuDirty *qd, JsonObject *args, int fd, gboolean *no_fdset, GError **error)
{
  g_autoptr(JsonObject) add = json_object_new();
  g_autoptr(JsonObject) remove = json_object_new();
  g_autoptr(JsonNode) added = NULL, removed = NULL;
  g_autoptr(GError) local_error = NULL;
  JsonObject *info;
  JsonNode *ret;
  gint64 id;

  *no_fdset = FALSE;
  json_object_set_string_member(add, "opaque", "hmmv-region");
  added = hmmv_qmp_execute_with_fd(qd->qmp, "add-fd", add, fd, &local_error);
  if (added == NULL) {
    /* A QEMU (or a test's fake one) that refuses add-fd may still take getfd; a transport
     * that cannot pass fds, or a QEMU gone, fails as well there. */
    *no_fdset = g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_PROTOCOL);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return NULL;
  }
  info = JSON_NODE_HOLDS_OBJECT(added) ? json_node_get_object(added) : NULL;
  if (info == NULL || !json_object_has_member(info, "fdset-id") ||
      json_node_get_value_type(json_object_get_member(info, "fdset-id")) != G_TYPE_INT64) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "add-fd: no fdset-id in the reply");
    return NULL;
  }
  id = json_object_get_int_member(info, "fdset-id");
  json_object_set_int_member(args, "fdset-id", id);
  ret = start_export(qd, args, &local_error);
  json_object_remove_member(args, "fdset-id");
  json_object_set_int_member(remove, "fdset-id", id);
  removed = hmmv_qmp_execute(qd->qmp, "remove-fd", remove, NULL);
  if (ret == NULL) {
    *no_fdset = takes_no_fdset(local_error);
    g_propagate_error(error, g_steal_pointer(&local_error));
  }
  return ret;
}

/* The region is a memfd hmmvd creates and hands to QEMU in an fd set (add-fd), or with getfd
 * where hmmv-start takes no fd set (remembered: asked once a tracker); QEMU sizes it in
 * hmmv-start, hmmv_shm_open_fd() seals its size before mapping it. A file in a file system
 * (QEMU's own creation) cannot be sealed, so a transport that cannot pass fds cannot track. */
static gboolean
qemu_dirty_export(QemuDirty *qd, HmmvVm *vm, GError **error)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autofree char *memfd_name = g_strdup_printf("hmmv-%s", hmmv_vm_get_name(vm));
  int fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

  g_free(qd->vm_name);
  qd->vm_name = g_strdup(hmmv_vm_get_name(vm));
  if (fd < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "memfd_create: %s", g_strerror(errno));
    return FALSE;
  }
  json_object_set_int_member(args, "interval-ms", qd->options.interval_ms);
  /* An export is one consumer's: one left active by a consumer that died without stopping
   * it (hmmvd killed with SIGKILL, then started again) would make hmmv-start fail for good
   * and leave the VM unmanaged. Take it over: stop whatever is active first; QEMU refusing
   * because nothing is active is the normal case and not an error. */
  ret = hmmv_qmp_execute(qd->qmp, "hmmv-stop", NULL, NULL);
  g_clear_pointer(&ret, json_node_unref);
  qd->excluding = FALSE;
  qd->qemu_paused = FALSE;
  qd->cycle.paused = FALSE;
  qd->stats.region_passed = NULL;
  if (!qd->no_fdset) {
    g_autoptr(GError) local_error = NULL;

    ret = start_with_fdset(qd, args, fd, &qd->no_fdset, &local_error);
    if (ret == NULL && !qd->no_fdset) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      close(fd);
      return FALSE;
    }
    if (ret == NULL)
      g_debug("vm %s: no fd set (%s): the region goes with getfd", qd->vm_name,
              local_error->message);
    else
      qd->stats.region_passed = "add-fd";
  }
  if (ret == NULL) {
    if (!hmmv_qmp_send_fd(qd->qmp, fd, "hmmv-region", error)) {
      close(fd);
      return FALSE;
    }
    json_object_set_string_member(args, "fdname", "hmmv-region");
    ret = start_export(qd, args, error);
    if (ret != NULL)
      qd->stats.region_passed = "getfd";
  }
  if (ret != NULL)
    qd->shm = hmmv_shm_open_fd(fd, memfd_name, error);
  close(fd);
  return qd->shm != NULL;
}

/* The layout the block maps were built on: the header's and every block's generation. */
static void
layout_baseline(QemuDirty *qd, const HmmvShmState *state)
{
  guint n = hmmv_shm_get_nr_blocks(qd->shm);

  qd->layout_generation = state->layout_generation;
  g_array_set_size(qd->block_layouts, n);
  for (guint b = 0; b < n; b++) {
    guint32 flags;

    hmmv_shm_read_block_layout(qd->shm, b, &g_array_index(qd->block_layouts, guint32, b),
                               &flags);
  }
}

/* PC machines remap parts of pc.ram below 1 MiB while they run (PAM and SMRAM: the BIOS
 * shadows its ROMs there, a reset clears them, a VM state load restores them): ranges wholly
 * inside this window may come and go; the VM keeps the ones it was built with and the others
 * stay untracked until tracking restarts (at most 384 KiB of firmware shadow). */
#define LEGACY_WINDOW_START 0xa0000u
#define LEGACY_WINDOW_END 0x100000u

static gboolean
in_legacy_window(guint64 gpa, guint64 size)
{
  return gpa >= LEGACY_WINDOW_START && gpa < LEGACY_WINDOW_END &&
         size <= LEGACY_WINDOW_END - gpa;
}

static gboolean
vm_has_range(HmmvVm *vm, const HmmvQemuRange *range)
{
  for (guint r = 0; r < hmmv_vm_get_nr_regions(vm); r++) {
    const HmmvRegion *region = hmmv_vm_get_region(vm, r);

    if (region->gpa == range->gpa && region->hva == range->hva &&
        region->nr_pages == range->size >> HMMV_PAGE_SHIFT)
      return TRUE;
  }
  return FALSE;
}

static gboolean
qemu_has_region(GPtrArray *ranges, const HmmvRegion *region)
{
  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);

    if (region->gpa == range->gpa && region->hva == range->hva &&
        region->nr_pages == range->size >> HMMV_PAGE_SHIFT)
      return TRUE;
  }
  return FALSE;
}

/* Are the VM's regions of block b (by host address: a backend's block gets its id string
 * only once a device uses it) what QEMU maps of it now (ranges, from
 * hmmv_qemu_query_layout), the legacy window aside? */
static gboolean
block_still_matches(QemuDirty *qd, HmmvVm *vm, guint b, GPtrArray *ranges)
{
  const HmmvShmBlock *block = hmmv_shm_get_block(qd->shm, b);

  for (guint i = 0; i < ranges->len; i++) {
    const HmmvQemuRange *range = g_ptr_array_index(ranges, i);

    if (range->hva - range->offset == block->host_addr &&
        !in_legacy_window(range->gpa, range->size) && !vm_has_range(vm, range))
      return FALSE;   /* memory the guest now sees that the VM does not have */
  }
  for (guint r = 0; r < hmmv_vm_get_nr_regions(vm); r++) {
    const HmmvRegion *region = hmmv_vm_get_region(vm, r);

    if (region->hva >= block->host_addr && region->hva - block->host_addr < block->max_length &&
        !in_legacy_window(region->gpa, region->nr_pages << HMMV_PAGE_SHIFT) &&
        !qemu_has_region(ranges, region))
      return FALSE;   /* memory the VM has that the guest no longer sees there */
  }
  return TRUE;
}

/* The header's layout generation moved while the region stays valid: re-read the blocks
 * whose own generation moved, only those. */
static gboolean
recheck_layout(QemuDirty *qd, HmmvVm *vm, const HmmvShmState *state, GError **error)
{
  g_autoptr(GPtrArray) ranges = NULL;

  for (guint b = 0; b < hmmv_shm_get_nr_blocks(qd->shm) && b < qd->block_layouts->len; b++) {
    guint32 generation, flags;
    guint32 *seen = &g_array_index(qd->block_layouts, guint32, b);

    if (!hmmv_shm_read_block_layout(qd->shm, b, &generation, &flags) || generation == *seen)
      continue;
    if (ranges == NULL) {
      ranges = hmmv_qemu_query_layout(qd->qmp, FALSE, error);
      if (ranges == NULL)
        return FALSE;
    }
    if (!block_still_matches(qd, vm, b, ranges)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                  "RAM block %s at 0x%" G_GINT64_MODIFIER "x %s (its layout generation %u -> "
                  "%u); tracking must restart",
                  hmmv_shm_get_block(qd->shm, b)->id[0] != '\0'
                    ? hmmv_shm_get_block(qd->shm, b)->id
                    : "(a backend no device used at the start)",
                  hmmv_shm_get_block(qd->shm, b)->host_addr,
                  (flags & HMMV_SHM_BLOCK_F_GONE) ? "was removed"
                  : (flags & HMMV_SHM_BLOCK_F_RESIZED) ? "was resized"
                  : (flags & HMMV_SHM_BLOCK_F_REMAPPED) ? "moved in guest-physical memory"
                  : "had memory plugged or unplugged (virtio-mem)", *seen, generation);
      return FALSE;
    }
    qd->stats.blocks_rechecked++;
    *seen = generation;
  }
  qd->layout_generation = state->layout_generation;
  return TRUE;
}

static void
qemu_dirty_stop(HmmvTracker *tracker)
{
  QemuDirty *qd = tracker->priv;

  qd->prestarted = FALSE;
  /* QEMU may be gone or hung: nobody waits for the reply (libvirt's transport queues it) */
  if (qd->active)
    hmmv_qmp_post(qd->qmp, "hmmv-stop", NULL);
  qd->active = FALSE;
  qd->qemu_paused = FALSE;
  qd->stats.paused = FALSE;
  qd->cycle.paused = FALSE;
  qd->pause_unsure = FALSE;
  g_clear_error(&qd->missed);
  g_clear_pointer(&qd->shm, hmmv_shm_free);
  g_array_set_size(qd->blocks, 0);
}

static gboolean
qemu_dirty_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  QemuDirty *qd = tracker->priv;
  g_autoptr(GPtrArray) ranges = NULL;
  HmmvShmState state;

  if (qd->prestarted && qd->active) {
    qd->prestarted = FALSE;   /* the QMP work was done on the caller's worker thread */
    return TRUE;
  }
  qemu_dirty_stop(tracker);
  ranges = hmmv_qemu_query_layout(qd->qmp, FALSE, error);
  if (ranges == NULL || !qemu_dirty_export(qd, vm, error))
    return FALSE;
  qd->active = TRUE;
  if (!build_block_maps(qd, vm, ranges, error) || !hmmv_shm_read_state(qd->shm, &state, error)) {
    qemu_dirty_stop(tracker);
    return FALSE;
  }
  qd->last_generation = state.generation;
  layout_baseline(qd, &state);
  qd->stats.source = (state.flags & HMMV_SHM_F_SOURCE_KVM_RING) ? "kvm-dirty-ring"
                     : (state.flags & HMMV_SHM_F_SOURCE_KVM_LOG) ? "kvm-dirty-log"
                     : (state.flags & HMMV_SHM_F_SOURCE_TCG)     ? "tcg"
                                                                 : "unknown";
  return TRUE;
}

static void
mark_page(guint64 block_page, gpointer user_data)
{
  BlockMap *map = user_data;

  /* Bits come in increasing order: move the cursor forward only. */
  while (map->cursor < map->ranges->len) {
    const BlockRange *br = &g_array_index(map->ranges, BlockRange, map->cursor);

    if (block_page < br->offset_pages)
      return;   /* a page of the block that the guest does not see */
    if (block_page < br->offset_pages + br->nr_pages) {
      hmmv_access_mark_write(map->acc, br->first_page + block_page - br->offset_pages);
      return;
    }
    map->cursor++;
  }
}

static gboolean
qemu_alive(QemuDirty *qd, GError **error)
{
  guint32 pid = hmmv_shm_get_qemu_pid(qd->shm);

  if (pid > 1 && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "QEMU (pid %u) is gone", pid);
    return FALSE;
  }
  return TRUE;
}

/* Exchange every non-zero word of the exported blocks' bitmaps with 0 and mark the pages in
 * acc; returns the pages found. */
static guint64
drain(QemuDirty *qd, HmmvAccess *acc)
{
  guint64 found = 0;

  for (guint m = 0; m < qd->blocks->len; m++) {
    BlockMap *map = &g_array_index(qd->blocks, BlockMap, m);

    map->cursor = 0;
    map->acc = acc;
    found += hmmv_shm_harvest_block(qd->shm, map->shm_index, mark_page, map);
  }
  qd->stats.pages_harvested += found;
  return found;
}

static gboolean
qemu_dirty_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  QemuDirty *qd = tracker->priv;
  gint64 start_ns;
  HmmvShmState state;
  guint64 found;

  if (!qd->active || qd->shm == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "tracking is not started");
    return FALSE;
  }
  /* A resume (set_watch) QEMU did not answer: as a missed hmmv-sync. */
  if (qd->missed != NULL) {
    g_propagate_error(error, g_steal_pointer(&qd->missed));
    return FALSE;
  }
  /* Paused, QEMU publishes nothing on hmmv-sync (it answers paused), but the exchange is
   * the VM's liveness check and is kept: without it (6acde4d) a QEMU stopped while paused
   * was never found (kill(pid, 0) succeeds on it) and never dropped. Through libvirt the
   * sync is sent ahead to every tracking domain anyway. */
  if (qd->options.interval_ms == 0) {
    g_autoptr(JsonNode) ret = hmmv_qmp_execute(qd->qmp, "hmmv-sync", NULL, error);

    if (ret == NULL)
      return FALSE;
    qd->stats.syncs++;
    hmmv_qemu_dirty_pause_from_sync(qd, ret);   /* its "paused" is QEMU's word */
  } else if (!qemu_alive(qd, error) || !hmmv_qemu_dirty_pause_check(qd, error)) {
    return FALSE;
  }
  /* The harvest proper, timed without the QMP round trip above. */
  start_ns = g_get_monotonic_time() * 1000;
  hmmv_shm_wait_stable(qd->shm, PUBLISH_WAIT_US);
  if (!hmmv_shm_read_state(qd->shm, &state, error))
    return FALSE;
  if ((state.flags & HMMV_SHM_F_LAYOUT_STALE) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED,
                "QEMU's RAM layout changed (layout generation %" G_GUINT64_FORMAT
                "); tracking must restart", state.layout_generation);
    return FALSE;
  }
  if (state.layout_generation != qd->layout_generation &&
      !recheck_layout(qd, vm, &state, error))
    return FALSE;
  /* QEMU only counts up; backwards is a QEMU writing the region it should not (it would
   * read as 2^64 merged intervals) */
  if (state.generation < qd->last_generation) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "the region's generation went back from %" G_GUINT64_FORMAT " to %"
                G_GUINT64_FORMAT, qd->last_generation, state.generation);
    return FALSE;
  }
  acc->intervals = state.generation - qd->last_generation;
  qd->last_generation = state.generation;
  found = drain(qd, acc);
  if (found > 0 && acc->intervals == 0 && !qd->qemu_paused) {
    /* Bits, and no publication counted for them: QEMU was publishing while they were
     * drained (it sets a publication's bits before it moves the generation; its timer can
     * fire while this harvest runs, and a loaded QEMU can sit between the two). Every
     * consumer skips a harvest of 0 intervals whole (the temperature update, the recorder,
     * hmmvctl track), and so dropped those bits: the guest's 64 writes of hmmvctl-track went
     * unseen at load ~30 with QEMU's 100 ms timer (QEMU had published 65 pages). Let the
     * publication end and count it, with the rest of its bits; if it does not end in time,
     * count one interval anyway. (While paused, the one publication hmmv-pause made is
     * folded into the interval before on purpose: its bits are not used.) */
    qd->stats.mid_publication++;
    hmmv_shm_wait_stable(qd->shm, PUBLISH_WAIT_US);
    if (hmmv_shm_read_state(qd->shm, &state, NULL) && state.generation > qd->last_generation) {
      acc->intervals = state.generation - qd->last_generation;
      qd->last_generation = state.generation;
      found += drain(qd, acc);
    } else {
      acc->intervals = 1;
    }
  }
  qd->stats.generation = state.generation;
  qd->stats.harvests++;
  qd->stats.last_publish_ns = state.last_duration_ns;
  qd->stats.last_harvest_ns = (guint64)(g_get_monotonic_time() * 1000 - start_ns);
  return hmmv_qemu_dirty_pause_after_harvest(qd, error);
}

static void
qemu_dirty_destroy(HmmvTracker *tracker)
{
  QemuDirty *qd = tracker->priv;

  qemu_dirty_stop(tracker);
  hmmv_qmp_free(qd->qmp);
  g_array_unref(qd->blocks);
  g_array_unref(qd->block_layouts);
  g_strfreev(qd->exclude);
  g_free(qd->vm_name);
  g_free(qd);
}

static const struct hmmv_tracker_ops qemu_dirty_ops = {
  .name = "qemu-dirty",
  .start = qemu_dirty_start,
  .harvest = qemu_dirty_harvest,
  .stop = qemu_dirty_stop,
  .set_watch = hmmv_qemu_dirty_set_watch,
  .is_paused = hmmv_qemu_dirty_is_paused,
  .destroy = qemu_dirty_destroy,
};

HmmvTracker *
hmmv_qemu_dirty_tracker_new(HmmvQmp *qmp, const HmmvQemuDirtyOptions *options, GError **error)
{
  QemuDirty *qd = g_new0(QemuDirty, 1);
  HmmvTracker *tracker;

  qd->qmp = qmp;
  qd->options = *options;
  qd->exclude = options->exclude != NULL ? g_strdupv((char **)options->exclude) : NULL;
  qd->options.exclude = NULL;   /* the copy above is the tracker's */
  qd->vm_name = g_strdup("?");
  qd->blocks = g_array_new(FALSE, TRUE, sizeof(BlockMap));
  g_array_set_clear_func(qd->blocks, block_map_clear);
  qd->block_layouts = g_array_new(FALSE, TRUE, sizeof(guint32));
  qd->stats.source = "unknown";
  tracker = hmmv_tracker_new(&qemu_dirty_ops, qd, error);
  if (tracker == NULL) {
    hmmv_qmp_free(qd->qmp);
    g_array_unref(qd->blocks);
    g_array_unref(qd->block_layouts);
    g_strfreev(qd->exclude);
    g_free(qd->vm_name);
    g_free(qd);
  }
  return tracker;
}

gboolean
hmmv_qemu_dirty_tracker_prestart(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  g_return_val_if_fail(tracker->ops == &qemu_dirty_ops, FALSE);
  if (!qemu_dirty_start(tracker, vm, error))
    return FALSE;
  ((QemuDirty *)tracker->priv)->prestarted = TRUE;
  return TRUE;
}

HmmvQmp *
hmmv_qemu_dirty_tracker_get_qmp(HmmvTracker *tracker)
{
  g_return_val_if_fail(tracker->ops == &qemu_dirty_ops, NULL);
  return ((QemuDirty *)tracker->priv)->qmp;
}

gboolean
hmmv_qemu_dirty_tracker_get_stats(HmmvTracker *tracker, HmmvQemuDirtyStats *stats)
{
  if (tracker->ops != &qemu_dirty_ops)
    return FALSE;
  *stats = ((QemuDirty *)tracker->priv)->stats;
  stats->excluding = ((QemuDirty *)tracker->priv)->excluding;
  return TRUE;
}
