/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hot-set selection: walk the key histogram from 255 down to promote_min_key until the budget
 * is spent.
 *
 * Representation of the cut (one form only, so callers and tests can compare cuts): cut_key
 * is the coldest key that holds a hot page and take_at_cut is how many of its pages are hot,
 * 1 .. hist[cut_key]; take_at_cut == hist[cut_key] when the budget covers that bucket
 * exactly or when every eligible page is hot. Nothing hot: cut_key = HMMV_NR_KEYS, take 0.
 * Either way "key > cut_key, or key == cut_key among the first take_at_cut pages in page
 * order" is the membership test.
 */
#include "vm-private.h"
#include "swar-private.h"

#include <hmmv/classify.h>
#include <string.h>

void
hmmv_classify(const HmmvHistogram *hist, guint64 budget_pages, guint promote_min_key,
              HmmvHotCut *cut)
{
  guint64 left = budget_pages;

  *cut = (HmmvHotCut){ .cut_key = HMMV_NR_KEYS, .take_at_cut = 0, .hot_pages = 0 };
  for (guint key = HMMV_NR_KEYS; key-- > promote_min_key && left > 0;) {
    guint64 take = MIN(hist->count[key], left);

    if (take == 0)
      continue;
    cut->cut_key = key;
    cut->take_at_cut = take;
    cut->hot_pages += take;
    left -= take;
  }
}

void
hmmv_classify_bitmap(const HmmvVm *vm, const HmmvHotCut *cut, guint64 *bitmap)
{
  guint64 seen_at_cut = 0;
  /* Key 0 can only be hot when promote_min_key was 0; otherwise skip 8 cold pages at once. */
  gboolean skip_cold = cut->cut_key > 0;

  g_return_if_fail(vm->finalized);
  for (guint64 base = 0; base < vm->nr_pages; base += 8) {
    guint count = (guint)MIN(8u, vm->nr_pages - base);

    if (skip_cold && hmmv_swar_load(vm->temp + base) == 0)
      continue;
    for (guint j = 0; j < count; j++) {
      guint64 page = base + j;
      guint key = vm->temp[page];
      gboolean hot = key > cut->cut_key ||
                     (key == cut->cut_key && seen_at_cut++ < cut->take_at_cut);

      if (hot)
        bitmap[page >> 6] |= G_GUINT64_CONSTANT(1) << (page & 63);
    }
  }
}
