/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One snapshot of the DAMON read tracker (see damon.c for the tracker, its thread and its
 * pacing): on the tracker's thread, ask the kdamond for the regions of its last aggregation
 * ("update_schemes_tried_regions"), read them from sysfs, decide which count as read and mark
 * their guest pages in a bitmap.
 *
 * Which regions count as read: those seen accessed in at least half as many samples as the
 * most accessed of their neighbours (up to DAMON_NEIGHBOURS address-contiguous regions on a
 * side; with accessed neighbours on both sides, those of the less accessed side) and at least
 * a quarter as many as the snapshot's most accessed region; a region with no accessed
 * neighbour, half as many as the snapshot's most accessed; always at least min_accesses
 * (default 1). A region straddling the edge of a read set is seen accessed in about the share
 * of it that is read (the testbed, unloaded: 1..4 for mostly cold regions, 7..9 of 10 for read
 * ones), so its pages count as read when about half of it is; relative, not absolute, because
 * how often a page read steadily is caught in a sample depends on how fast the guest runs (a
 * loaded testbed caught its read set in 2..4 samples of 10). Relative to the neighbours, not
 * to the snapshot's maximum (issue 8): with a set written twice as densely in the same VM
 * (tests/guest mode=reads with its late set: 512 pages take a quarter of the accesses, 3,072
 * the rest), a set read in every interval was caught in fewer than half the written set's
 * samples and marked in a quarter of the snapshots or fewer; its pages' keys (~25) stayed
 * between the planner's payback gate and its room gate, so half of it waited on the slow tier
 * with the room free (reads-hmmvd.py coarse: 504 and 656 of 1,024 on DRAM after 60 and 151
 * intervals; test-late-reads). Its straddling regions still meet its own regions' counts (a
 * cold side); its regions beside the written set do not count as its edge (the testbed,
 * neighbours on either side: 959 of 1,024 after 60, the ~4 regions next to the written set
 * held back). Pages read much less than the VM's hottest are left to later snapshots.
 *
 * vaddr monitors the QEMU process (pid_target) and the tried regions are host virtual
 * addresses; paddr monitors physical memory: the init regions are the span of the frames
 * that back guest RAM (from /proc/PID/pagemap, re-read every snapshot since hmmv itself
 * moves pages) and an accessed physical region marks the guest pages whose frames lie in it.
 */
#include "../vm-private.h"
#include "damon-tracker.h"

#include <hmmv/error.h>
#include <string.h>

#define SNAPSHOT_REGIONS_MAX 100000u

/* First frame entry at or above pfn (paddr). */
static guint
pfn_lower_bound(HmmvDamonTracker *damon, guint64 pfn)
{
  guint lo = 0, hi = damon->pfns->len;

  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;

    if (g_array_index(damon->pfns, PfnPage, mid).pfn < pfn)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Whether [start, end) holds any page of the VM: with paddr, the span monitored also holds
 * other processes' frames (QEMU's own code buffer is among the most accessed). */
static gboolean
holds_vm_pages(HmmvDamonTracker *damon, guint64 start, guint64 end)
{
  guint i;

  if (damon->options.ops != HMMV_DAMON_PADDR)
    return TRUE;
  i = pfn_lower_bound(damon, start >> HMMV_PAGE_SHIFT);
  return i < damon->pfns->len &&
         g_array_index(damon->pfns, PfnPage, i).pfn < (end + HMMV_PAGE_SIZE - 1) >> HMMV_PAGE_SHIFT;
}

/* Marks in bitmap the VM pages of [start, end) (host virtual or physical addresses). */
static void
mark_range(HmmvDamonTracker *damon, guint64 *bitmap, guint64 start, guint64 end)
{
  if (damon->options.ops == HMMV_DAMON_PADDR) {
    guint64 last = (end + HMMV_PAGE_SIZE - 1) >> HMMV_PAGE_SHIFT;

    for (guint i = pfn_lower_bound(damon, start >> HMMV_PAGE_SHIFT); i < damon->pfns->len;
         i++) {
      const PfnPage *entry = &g_array_index(damon->pfns, PfnPage, i);

      if (entry->pfn >= last)
        break;
      bitmap[entry->page >> 6] |= G_GUINT64_CONSTANT(1) << (entry->page & 63);
    }
    return;
  }
  for (guint r = 0; r < damon->ranges->len; r++) {
    const HvaRange *range = &g_array_index(damon->ranges, HvaRange, r);
    guint64 range_end = range->hva + (range->nr_pages << HMMV_PAGE_SHIFT);
    guint64 s = MAX(start, range->hva), e = MIN(end, range_end);

    if (s >= e)
      continue;
    /* a page partly inside an accessed region counts: DAMON regions are page aligned */
    for (guint64 page = (s - range->hva) >> HMMV_PAGE_SHIFT;
         page < (e - range->hva + HMMV_PAGE_SIZE - 1) >> HMMV_PAGE_SHIFT; page++) {
      guint64 index = range->first_page + page;

      bitmap[index >> 6] |= G_GUINT64_CONSTANT(1) << (index & 63);
    }
  }
}

/* Regions up to this many places either side of one in DAMON's list, each address-contiguous
 * with the next, are its neighbours for the read threshold (hmmv_damon_regions_read). */
#define DAMON_NEIGHBOURS 2u

void
hmmv_damon_regions_read(const RegionSeen *regions, guint nr, guint64 min_accesses,
                        gboolean *read)
{
  guint64 max = 0, least = MAX(min_accesses, 1u);

  for (guint i = 0; i < nr; i++)
    max = MAX(max, regions[i].nr_accesses);
  for (guint i = 0; i < nr; i++) {
    guint64 left = 0, right = 0, own = regions[i].nr_accesses, local, threshold;
    guint j;

    for (j = i; j > 0 && i - j < DAMON_NEIGHBOURS && regions[j - 1].end == regions[j].start; j--)
      left = MAX(left, regions[j - 1].nr_accesses);
    for (j = i; j + 1 < nr && j - i < DAMON_NEIGHBOURS && regions[j].end == regions[j + 1].start;
         j++)
      right = MAX(right, regions[j + 1].nr_accesses);
    /* alone: half the snapshot's most accessed region. Beside others: half the most
     * accessed of itself and its neighbours on the side that is not cold (both sides
     * accessed: the less accessed side, a region between two sets is no set's edge), and
     * a quarter of the snapshot's most accessed */
    if (left == 0 && right == 0) {
      threshold = (max + 1) / 2;
    } else {
      local = MAX(own, left == 0 ? right : right == 0 ? left : MIN(left, right));
      threshold = MAX((local + 1) / 2, (max + 3) / 4);
    }
    read[i] = own >= MAX(threshold, least);
  }
}

gboolean
hmmv_damon_snapshot(HmmvDamonTracker *damon, guint64 *bitmap, guint64 *nr_regions,
                    guint64 *nr_marked, GError **error)
{
  g_autofree char *state = NULL;
  g_autofree char *state_path = hmmv_damon_path(damon->index, "state");
  guint64 regions = 0;
  g_autofree gboolean *read = NULL;

  g_array_set_size(damon->seen, 0);
  if (damon->options.ops == HMMV_DAMON_PADDR) {
    if (!hmmv_damon_read_pfns(damon, error))
      return FALSE;
    /* More than 1/16 of the frames outside what DAMON watches (hmmv's own moves, mostly):
     * new ranges, handed to the running kdamond with "commit" (it keeps the monitoring
     * results where old and new ranges overlap). */
    if (hmmv_damon_frames_outside(damon) * 16 > damon->pfns->len) {
      if (!hmmv_damon_write_regions(damon, error) ||
          !hmmv_damon_write_attr(damon, "state", "commit", error))
        return FALSE;
      g_mutex_lock(&damon->lock);
      damon->stats.recommits++;
      g_mutex_unlock(&damon->lock);
    }
  }
  if (!hmmv_damon_write_attr(damon, "state", "update_schemes_tried_regions", error))
    return FALSE;
  /* The kdamond ends by itself when its target process exits. */
  if (!hmmv_sysfs_read(damon->fs, state_path, &state, error))
    return FALSE;
  if (g_strcmp0(state, "on") != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "kdamond %u stopped (state %s)",
                damon->index, state);
    return FALSE;
  }
  memset(bitmap, 0, damon->nr_words * sizeof(guint64));
  for (guint i = 0; i < SNAPSHOT_REGIONS_MAX; i++) {
    g_autofree char *dir = g_strdup_printf("contexts/0/schemes/0/tried_regions/%u", i);
    g_autofree char *start_path = g_strdup_printf("kdamonds/%u/%s/start", damon->index, dir);
    g_autofree char *end_path = g_strdup_printf("kdamonds/%u/%s/end", damon->index, dir);
    g_autofree char *nr_path = g_strdup_printf("kdamonds/%u/%s/nr_accesses", damon->index, dir);
    guint64 start, end, nr_accesses;

    if (!hmmv_sysfs_read_u64(damon->fs, start_path, &start, NULL))
      break;    /* past the last region */
    if (!hmmv_sysfs_read_u64(damon->fs, end_path, &end, error) ||
        !hmmv_sysfs_read_u64(damon->fs, nr_path, &nr_accesses, error))
      return FALSE;
    if (end > start && holds_vm_pages(damon, start, end)) {
      RegionSeen seen = { start, end, nr_accesses };

      g_array_append_val(damon->seen, seen);
    }
    regions++;
  }
  read = g_new(gboolean, MAX(damon->seen->len, 1u));
  hmmv_damon_regions_read((const RegionSeen *)(void *)damon->seen->data, damon->seen->len,
                          damon->stats.min_accesses, read);
  for (guint i = 0; i < damon->seen->len; i++) {
    const RegionSeen *seen = &g_array_index(damon->seen, RegionSeen, i);

    if (read[i])
      mark_range(damon, bitmap, seen->start, seen->end);
  }
  *nr_regions = regions;
  *nr_marked = 0;
  for (gsize w = 0; w < damon->nr_words; w++)
    *nr_marked += (guint64)__builtin_popcountll(bitmap[w]);
  return TRUE;
}
