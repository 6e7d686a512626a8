/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: hot-set selection by bucket sort.
 *
 * The temperature byte is the bucket, so the VM's key histogram already is the bucket sort:
 * walking it from key 255 down until the DRAM budget is full gives the cut in O(256), and
 * membership of any page is then a compare. Pages below promote_min_key are never "hot"
 * (nothing to gain from them). Ties at the boundary bucket are broken deterministically: the
 * take_at_cut lowest page indices of key cut_key are hot.
 */
#pragma once

#include <glib.h>
#include <hmmv/temperature.h>

G_BEGIN_DECLS

typedef struct {
  guint cut_key;          /* keys > cut_key are hot; HMMV_NR_KEYS when nothing is hot */
  guint64 take_at_cut;    /* plus this many pages of key cut_key, lowest page index first */
  guint64 hot_pages;      /* total hot pages (<= budget) */
} HmmvHotCut;

void hmmv_classify(const HmmvHistogram *hist, guint64 budget_pages, guint promote_min_key,
                   HmmvHotCut *cut);

/* Set bit p in bitmap (nr_words = (nr_pages+63)/64, zeroed by the caller) for every hot page.
 * O(pages); for tests, tools and the benchmark harness, not the interval loop. */
void hmmv_classify_bitmap(const HmmvVm *vm, const HmmvHotCut *cut, guint64 *bitmap);

G_END_DECLS
