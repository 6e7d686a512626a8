/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the accesses one harvest saw, as bitmaps over a VM's page indices.
 *
 * Bit i of word w stands for page w*64+i. Trackers OR into the bitmaps, so a tracker that
 * merges several intervals (a late harvest) simply sets more bits. Reads are optional: a
 * tracker that only sees writes leaves has_reads FALSE.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint64 nr_pages;
  gsize nr_words;          /* (nr_pages + 63) / 64 */
  guint64 *writes;
  guint64 *reads;
  gboolean has_reads;
  guint64 intervals;       /* tracker intervals merged into this harvest (>= 1) */
} HmmvAccess;

/* Allocates both bitmaps zeroed; fails cleanly when nr_pages is absurd. */
HmmvAccess *hmmv_access_new(guint64 nr_pages, GError **error);
void hmmv_access_free(HmmvAccess *acc);
void hmmv_access_clear(HmmvAccess *acc);

static inline void
hmmv_access_mark_write(HmmvAccess *acc, guint64 page)
{
  acc->writes[page >> 6] |= G_GUINT64_CONSTANT(1) << (page & 63);
}

static inline void
hmmv_access_mark_read(HmmvAccess *acc, guint64 page)
{
  acc->reads[page >> 6] |= G_GUINT64_CONSTANT(1) << (page & 63);
  acc->has_reads = TRUE;
}

static inline gboolean
hmmv_bitmap_test(const guint64 *bitmap, guint64 bit)
{
  return (bitmap[bit >> 6] >> (bit & 63)) & 1;
}

guint64 hmmv_bitmap_count(const guint64 *bitmap, gsize nr_words);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvAccess, hmmv_access_free)

G_END_DECLS
