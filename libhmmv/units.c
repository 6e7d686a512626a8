/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Huge units' temperatures: the mean of their pages' keys (why the mean: units.h). One pass
 * over the units' pages per interval, which skips the 64-page blocks the temperature update
 * left cold (vm->warm) without reading them. When units hold most of the VM's pages the decision
 * histogram is built afresh from the pages outside units, and a unit's keys are only summed,
 * 64 a step (a step of cold pages costs one test); otherwise each unit page is taken out of
 * the per-page histogram, 8 keys a word (a cold word costs one compare).
 */
#include "swar-private.h"
#include "vm-private.h"

#include <hmmv/units.h>
#include <string.h>

#define LOW_BYTES G_GUINT64_CONSTANT(0x00ff00ff00ff00ff)

/* Sum of the 8 bytes of a word. */
static inline guint
byte_sum(guint64 word)
{
  guint64 pairs = (word & LOW_BYTES) + ((word >> 8) & LOW_BYTES);

  return (guint)((pairs * G_GUINT64_CONSTANT(0x0001000100010001)) >> 48);
}

/* The 64 pages from page (64-aligned, a whole block) are all 0, as the last temperature
 * update left them (vm-private.h), so they need not be read. */
static inline gboolean
block_known_cold(const HmmvVm *vm, guint64 page)
{
  guint64 block = page >> 6;

  return vm->warm_valid && (vm->warm[block >> 6] & (G_GUINT64_CONSTANT(1) << (block & 63))) == 0;
}

/* How many 64-page blocks from page (64-aligned) on are known cold, up to the end of their
 * word of vm->warm; 0 when the first is not. */
static inline guint64
cold_blocks_from(const HmmvVm *vm, guint64 page)
{
  guint64 block = page >> 6, bits;

  if (!vm->warm_valid)
    return 0;
  bits = vm->warm[block >> 6] >> (block & 63);
  return bits != 0 ? (guint64)__builtin_ctzll(bits) : 64 - (block & 63);
}

/* Sums the keys of [first, first + nr) and takes each page out of hist. */
static guint64
sum_keys(const HmmvVm *vm, guint64 first, guint64 nr, HmmvHistogram *hist)
{
  const guint8 *temp = vm->temp;
  guint64 page = first, end = first + nr, sum = 0;

  for (; page < end && (page & 7) != 0; page++) {
    sum += temp[page];
    hist->count[temp[page]]--;
  }
  for (; page + 8 <= end; page += 8) {
    guint64 word;

    if ((page & 63) == 0 && page + 64 <= end && block_known_cold(vm, page)) {
      hist->count[0] -= 64;
      page += 56;
      continue;
    }
    word = hmmv_swar_load(temp + page);
    if (word == 0) {
      hist->count[0] -= 8;
      continue;
    }
    sum += byte_sum(word);
    for (guint j = 0; j < 8; j++)
      hist->count[temp[page + j]]--;
  }
  for (; page < end; page++) {
    sum += temp[page];
    hist->count[temp[page]]--;
  }
  return sum;
}

/* Sum of the 16-bit lanes of a word. */
static inline guint
lane_sum(guint64 lanes)
{
  return (guint)((lanes * G_GUINT64_CONSTANT(0x0001000100010001)) >> 48);
}

/* Sums the keys of [first, first + nr) without a histogram: 64 keys a step (a block), where
 * a block known cold is not read, one of cold pages costs eight loads and one test, and a
 * warm one adds byte pairs into 16-bit lanes (8 words x 2 x 255 fits). */
static guint64
sum_keys_only(const HmmvVm *vm, guint64 first, guint64 nr)
{
  const guint8 *temp = vm->temp;
  guint64 page = first, end = first + nr, sum = 0;

  for (; page < end && (page & 7) != 0; page++)
    sum += temp[page];
  for (; page + 8 <= end && (page & 63) != 0; page += 8)
    sum += byte_sum(hmmv_swar_load(temp + page));
  while (page + 64 <= end) {
    guint64 w[8], any = 0, lanes = 0, cold = cold_blocks_from(vm, page);

    if (cold > 0) {
      /* a run of blocks known cold: one bit test for all of them (a cold 2 MiB unit is
       * 8 bits of one word) */
      page += 64 * MIN(cold, (end - page) / 64);
      continue;
    }
    for (guint j = 0; j < 8; j++) {
      w[j] = hmmv_swar_load(temp + page + 8 * j);
      any |= w[j];
    }
    page += 64;
    if (any == 0)
      continue;
    for (guint j = 0; j < 8; j++)
      lanes += (w[j] & LOW_BYTES) + ((w[j] >> 8) & LOW_BYTES);
    sum += lane_sum(lanes);
  }
  for (; page + 8 <= end; page += 8)
    sum += byte_sum(hmmv_swar_load(temp + page));
  for (; page < end; page++)
    sum += temp[page];
  return sum;
}

guint8
hmmv_units_mean_key(const HmmvVm *vm, guint64 first, guint64 nr)
{
  g_return_val_if_fail(nr > 0 && first + nr <= vm->nr_pages, 0);
  return (guint8)((sum_keys_only(vm, first, nr) + nr / 2) / nr);
}

/* Adds the pages of [first, first + nr) to hist at their own keys. */
static void
count_keys(const HmmvVm *vm, guint64 first, guint64 nr, HmmvHistogram *hist)
{
  const guint8 *temp = vm->temp;
  guint64 page = first, end = first + nr;

  for (; page < end && (page & 7) != 0; page++)
    hist->count[temp[page]]++;
  for (; page + 8 <= end; page += 8) {
    if ((page & 63) == 0 && page + 64 <= end && block_known_cold(vm, page)) {
      hist->count[0] += 64;
      page += 56;
      continue;
    }
    if (hmmv_swar_load(temp + page) == 0) {
      hist->count[0] += 8;
      continue;
    }
    for (guint j = 0; j < 8; j++)
      hist->count[temp[page + j]]++;
  }
  for (; page < end; page++)
    hist->count[temp[page]]++;
}

void
hmmv_units_aggregate(HmmvVm *vm, HmmvHistogram *hist)
{
  guint64 nr, unit_pages = 0;
  HmmvUnit *units = hmmv_vm_get_units(vm, &nr);
  gboolean rebuild;

  for (guint64 i = 0; i < nr; i++)
    unit_pages += units[i].nr_pages;
  /* hist is the per-page histogram, so the result is the histogram of the pages outside
   * units plus each unit's pages at its key. When units hold most pages (every 2 MiB block a
   * THP, as QEMU asks), counting the few pages outside them afresh is cheaper than taking
   * every unit page out of hist one by one; both give the same counts. */
  rebuild = unit_pages > vm->nr_pages - unit_pages;
  if (rebuild) {
    guint64 next = 0;

    memset(hist, 0, sizeof(*hist));
    for (guint64 i = 0; i < nr; i++) {
      count_keys(vm, next, units[i].first_page - next, hist);
      next = units[i].first_page + units[i].nr_pages;
    }
    count_keys(vm, next, vm->nr_pages - next, hist);
  }
  for (guint64 i = 0; i < nr; i++) {
    HmmvUnit *unit = &units[i];
    guint64 sum = rebuild ? sum_keys_only(vm, unit->first_page, unit->nr_pages)
                          : sum_keys(vm, unit->first_page, unit->nr_pages, hist);

    unit->key = (guint8)((sum + unit->nr_pages / 2) / unit->nr_pages);
    hist->count[unit->key] += unit->nr_pages;
  }
}
