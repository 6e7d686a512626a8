/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Huge units' temperatures: the mean of their pages' keys (why the mean: units.h). One pass
 * over the units' pages per interval, 8 keys a word; a word of cold pages costs one compare.
 */
#include "swar-private.h"
#include "vm-private.h"

#include <hmmv/units.h>

#define LOW_BYTES G_GUINT64_CONSTANT(0x00ff00ff00ff00ff)

/* Sum of the 8 bytes of a word. */
static inline guint
byte_sum(guint64 word)
{
  guint64 pairs = (word & LOW_BYTES) + ((word >> 8) & LOW_BYTES);

  return (guint)((pairs * G_GUINT64_CONSTANT(0x0001000100010001)) >> 48);
}

/* Sums the keys of [first, first + nr), and takes each page out of hist when it is given. */
static guint64
sum_keys(const HmmvVm *vm, guint64 first, guint64 nr, HmmvHistogram *hist)
{
  const guint8 *temp = vm->temp;
  guint64 page = first, end = first + nr, sum = 0;

  for (; page < end && (page & 7) != 0; page++) {
    sum += temp[page];
    if (hist != NULL)
      hist->count[temp[page]]--;
  }
  for (; page + 8 <= end; page += 8) {
    guint64 word = hmmv_swar_load(temp + page);

    if (word == 0) {
      if (hist != NULL)
        hist->count[0] -= 8;
      continue;
    }
    sum += byte_sum(word);
    if (hist != NULL)
      for (guint j = 0; j < 8; j++)
        hist->count[temp[page + j]]--;
  }
  for (; page < end; page++) {
    sum += temp[page];
    if (hist != NULL)
      hist->count[temp[page]]--;
  }
  return sum;
}

guint8
hmmv_units_mean_key(const HmmvVm *vm, guint64 first, guint64 nr)
{
  g_return_val_if_fail(nr > 0 && first + nr <= vm->nr_pages, 0);
  return (guint8)((sum_keys(vm, first, nr, NULL) + nr / 2) / nr);
}

void
hmmv_units_aggregate(HmmvVm *vm, HmmvHistogram *hist)
{
  guint64 nr;
  HmmvUnit *units = hmmv_vm_get_units(vm, &nr);

  for (guint64 i = 0; i < nr; i++) {
    HmmvUnit *unit = &units[i];
    guint64 sum = sum_keys(vm, unit->first_page, unit->nr_pages, hist);

    unit->key = (guint8)((sum + unit->nr_pages / 2) / unit->nr_pages);
    hist->count[unit->key] += unit->nr_pages;
  }
}
