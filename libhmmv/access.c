/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <hmmv/access.h>
#include <hmmv/error.h>

#include <string.h>

/* 2^40 pages = 4 PiB of guest RAM: anything above is a corrupt size, not a VM. */
#define HMMV_ACCESS_MAX_PAGES (G_GUINT64_CONSTANT(1) << 40)

HmmvAccess *
hmmv_access_new(guint64 nr_pages, GError **error)
{
  g_autoptr(HmmvAccess) acc = g_new0(HmmvAccess, 1);

  if (nr_pages == 0 || nr_pages > HMMV_ACCESS_MAX_PAGES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "access bitmap for %" G_GUINT64_FORMAT " pages is out of range", nr_pages);
    return NULL;
  }
  acc->nr_pages = nr_pages;
  acc->nr_words = (nr_pages + 63) / 64;
  acc->writes = g_try_new0(guint64, acc->nr_words);
  acc->reads = g_try_new0(guint64, acc->nr_words);
  if (acc->writes == NULL || acc->reads == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED,
                "out of memory for access bitmaps of %" G_GUINT64_FORMAT " pages", nr_pages);
    return NULL;
  }
  return g_steal_pointer(&acc);
}

void
hmmv_access_free(HmmvAccess *acc)
{
  if (acc == NULL)
    return;
  g_free(acc->writes);
  g_free(acc->reads);
  g_free(acc);
}

void
hmmv_access_clear(HmmvAccess *acc)
{
  memset(acc->writes, 0, acc->nr_words * sizeof(guint64));
  memset(acc->reads, 0, acc->nr_words * sizeof(guint64));
  acc->has_reads = FALSE;
  acc->intervals = 0;
}

guint64
hmmv_bitmap_count(const guint64 *bitmap, gsize nr_words)
{
  guint64 count = 0;

  for (gsize i = 0; i < nr_words; i++)
    count += (guint64)__builtin_popcountll(bitmap[i]);
  return count;
}
