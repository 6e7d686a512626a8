/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Where a VM's pages are, as the core learns it through the mover: the placement of a VM the
 * core just took, read in slices across intervals; first touches and a rolling rescan each
 * interval; the THP state of its 2 MiB blocks (the huge units the planner moves whole), read
 * in a rolling window and again just before a move. Split out of loop.c, which calls these
 * from the interval's harvest and move steps.
 */
#include "core-private.h"
#include "vm-private.h"

#include <hmmv/core.h>
#include <hmmv/units.h>

/* Ask the mover where pages [first, first + nr) live; in chunks so the scratch array stays
 * small for big VMs. */
static gboolean
core_query_range(HmmvCore *core, HmmvVm *vm, guint64 first, guint64 nr, GError **error)
{
  const guint64 chunk = 1u << 16;

  for (guint64 start = first; start < first + nr; start += chunk) {
    guint64 count = MIN(chunk, first + nr - start);

    g_array_set_size(core->scratch_pages, count);
    for (guint64 i = 0; i < count; i++)
      g_array_index(core->scratch_pages, guint64, i) = start + i;
    if (!hmmv_mover_query(core->mover, vm, (const guint64 *)core->scratch_pages->data, count,
                          error))
      return FALSE;
  }
  return TRUE;
}

/* THP state: a rolling window of the VM's 2 MiB blocks (core.h); *changed gets the blocks
 * whose state changed. */
static gboolean
core_refresh_thp(HmmvCore *core, CoreVm *cvm, guint64 *changed, GError **error)
{
  guint64 nr_blocks = hmmv_vm_get_nr_thp_blocks(cvm->vm);
  guint64 window = CLAMP(nr_blocks / HMMV_CORE_RESCAN_DIVISOR, HMMV_CORE_THP_RESCAN_MIN_BLOCKS,
                         HMMV_CORE_THP_RESCAN_MAX_BLOCKS);

  *changed = 0;
  if (nr_blocks == 0)
    return TRUE;
  if (cvm->thp_next >= nr_blocks)
    cvm->thp_next = 0;
  window = MIN(window, nr_blocks - cvm->thp_next);
  if (!hmmv_mover_refresh_thp(core->mover, cvm->vm, cvm->thp_next, window, changed, error))
    return FALSE;
  cvm->thp_next += window;
  return TRUE;
}

/* The rolling window: pages [rescan_next, + window) asked again, counting those the record
 * had elsewhere (HMMV_PLACE_NODE before and after the query), and the THP window. */
static gboolean
core_rescan_window(HmmvCore *core, CoreVm *cvm, HmmvVmReport *rep, GError **error)
{
  HmmvVm *vm = cvm->vm;
  guint64 nr_pages = hmmv_vm_get_nr_pages(vm);
  guint64 window = CLAMP(nr_pages / HMMV_CORE_RESCAN_DIVISOR, HMMV_CORE_RESCAN_MIN_PAGES,
                         HMMV_CORE_RESCAN_MAX_PAGES);
  g_autofree guint8 *before = NULL;
  guint64 first, drift = 0, thp_changed = 0;

  window = MIN(window, nr_pages);
  if (cvm->rescan_next >= nr_pages)
    cvm->rescan_next = 0;
  first = cvm->rescan_next;
  window = MIN(window, nr_pages - first);
  before = g_new(guint8, MAX(window, 1));
  for (guint64 i = 0; i < window; i++)
    before[i] = (guint8)HMMV_PLACE_NODE(vm->place[first + i]);
  if (!core_query_range(core, vm, first, window, error))
    return FALSE;
  for (guint64 i = 0; i < window; i++)
    drift += before[i] != (guint8)HMMV_PLACE_NODE(vm->place[first + i]);
  cvm->rescan_next += window;
  if (!core_refresh_thp(core, cvm, &thp_changed, error))
    return FALSE;
  rep->rescanned = window;
  rep->rescan_drift = drift + thp_changed;
  return TRUE;
}

/* Placement the core does not know yet: pages accessed while unknown (first touch since the
 * last look), plus a rolling window so moves the kernel makes on its own are noticed, read
 * every rescan_gap intervals: doubled after a window that found nothing moved, up to
 * HMMV_CORE_RESCAN_GAP_MAX, back to every interval after one that found drift (core.h). */
gboolean
hmmv_core_refresh_placement(HmmvCore *core, CoreVm *cvm, HmmvVmReport *rep, GError **error)
{
  HmmvVm *vm = cvm->vm;
  const HmmvAccess *acc = cvm->acc;
  guint64 nr_units, last_unit = G_MAXUINT64;
  const HmmvUnit *unit;

  rep->rescanned = rep->rescan_drift = 0;
  rep->rescan_gap = MAX(cvm->rescan_gap, 1u);
  hmmv_vm_get_units(vm, &nr_units);
  g_array_set_size(core->scratch_pages, 0);
  for (gsize w = 0; w < acc->nr_words; w++) {
    guint64 bits = acc->writes[w] | acc->reads[w];

    while (bits != 0) {
      guint64 page = w * 64 + (guint64)__builtin_ctzll(bits);

      bits &= bits - 1;
      if (HMMV_PLACE_NODE(vm->place[page]) != HMMV_PLACE_NODE_UNKNOWN)
        continue;
      /* the first touch of a huge page faults in all of it: learn all of it */
      unit = nr_units > 0 ? hmmv_vm_unit_of(vm, page) : NULL;
      if (unit != NULL && unit->first_page == last_unit)
        continue;
      if (unit != NULL) {
        last_unit = unit->first_page;
        for (guint64 p = unit->first_page; p < unit->first_page + unit->nr_pages; p++)
          if (HMMV_PLACE_NODE(vm->place[p]) == HMMV_PLACE_NODE_UNKNOWN)
            g_array_append_val(core->scratch_pages, p);
        continue;
      }
      g_array_append_val(core->scratch_pages, page);
    }
  }
  if (core->scratch_pages->len > 0 &&
      !hmmv_mover_query(core->mover, vm, (const guint64 *)core->scratch_pages->data,
                        core->scratch_pages->len, error))
    return FALSE;

  if (cvm->place_next < hmmv_vm_get_nr_pages(vm))
    return TRUE;   /* the first read is still under way: it is this VM's rescan */
  if (core->interval_index < cvm->rescan_due)
    return TRUE;   /* waiting out the gap the last windows earned */
  if (!core_rescan_window(core, cvm, rep, error))
    return FALSE;
  if (rep->rescan_drift > 0)
    cvm->rescan_gap = 1;
  else
    cvm->rescan_gap = MIN(MAX(cvm->rescan_gap, 1u) * 2, HMMV_CORE_RESCAN_GAP_MAX);
  cvm->rescan_due = core->interval_index + cvm->rescan_gap;
  rep->rescan_gap = cvm->rescan_gap;
  return TRUE;
}

/* The placement of a VM the core just took: HMMV_CORE_ADD_SLICE_PAGES an interval, before the
 * mover sees this interval's touches (so a page first touched now still counts as a first
 * touch), and not counted as first touches: the pages were somewhere before hmmv came. */
gboolean
hmmv_core_read_placement(HmmvCore *core, CoreVm *cvm, GError **error)
{
  guint64 nr_pages = hmmv_vm_get_nr_pages(cvm->vm);
  guint64 count = MIN(HMMV_CORE_ADD_SLICE_PAGES, nr_pages - cvm->place_next);
  guint64 seen_before = cvm->vm->first_seen;
  guint64 nr_blocks = hmmv_vm_get_nr_thp_blocks(cvm->vm), end;

  if (count == 0)
    return TRUE;
  if (!core_query_range(core, cvm->vm, cvm->place_next, count, error))
    return FALSE;
  cvm->place_next += count;
  cvm->first_seen += cvm->vm->first_seen - seen_before;
  /* and which of those pages the kernel put in THPs: the whole 2 MiB blocks read so far */
  end = cvm->place_thp_next;
  for (; end < nr_blocks; end++) {
    guint64 block_pages, first = hmmv_vm_thp_block_first_page(cvm->vm, end, &block_pages);

    if (first + block_pages > cvm->place_next)
      break;
  }
  if (end > cvm->place_thp_next &&
      !hmmv_mover_refresh_thp(core->mover, cvm->vm, cvm->place_thp_next,
                              end - cvm->place_thp_next, NULL, error))
    return FALSE;
  cvm->place_thp_next = end;
  return TRUE;
}

/* Just before a move, the THP state of the blocks the list touches is read again: a THP that
 * khugepaged formed since the plan would take 512 pages along with the one asked for (over the
 * cap, and recorded as 1), a THP the kernel split would move 1 page for an entry counted as
 * 512. Entries whose unit changed wait for the next plan, which sees the unit as it is. */
gboolean
hmmv_core_fresh_units(HmmvCore *core, HmmvVm *vm, GArray *pages, GError **error)
{
  g_autofree guint64 *sizes = NULL;
  guint64 changed = 0;
  guint kept = 0;

  if (hmmv_vm_get_nr_thp_blocks(vm) == 0 || pages->len == 0)
    return TRUE;
  sizes = g_new(guint64, pages->len);
  for (guint i = 0; i < pages->len; i++)
    sizes[i] = hmmv_vm_unit_pages(vm, g_array_index(pages, guint64, i));
  if (!hmmv_mover_refresh_thp_of(core->mover, vm, (const guint64 *)pages->data, pages->len,
                                 &changed, error))
    return FALSE;
  if (changed == 0)
    return TRUE;
  for (guint i = 0; i < pages->len; i++) {
    guint64 page = g_array_index(pages, guint64, i);
    const HmmvUnit *unit = hmmv_vm_unit_of(vm, page);

    if ((unit != NULL ? unit->nr_pages : 1) == sizes[i] &&
        (unit == NULL || unit->first_page == page))
      g_array_index(pages, guint64, kept++) = page;
  }
  g_array_set_size(pages, kept);
  return TRUE;
}
