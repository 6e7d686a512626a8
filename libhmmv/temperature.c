/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Page temperature: an estimate of how often the page is accessed, in one byte a page.
 *
 * The byte c is a moving average of the page's weighted accesses per interval, scaled so that
 * c = 128 x (write_weight x P(written) + read_weight x P(only read)) per interval in steady
 * state: an accessed interval adds 8 x weight, and every interval takes away 1/16 of c
 * (HMMV_TEMP_DECAY_SHIFT), so c forgets its history with a time constant of 16 intervals.
 * With the default weights (2, 1) a page written in every interval settles at 255, in 60% of
 * intervals near 146, 30% near 69, 15% near 30, 5% near 6 (tests/test-temperature.c checks
 * the order from a hot and from a cold start after 100 intervals). Level = c >> 4.
 *
 * This is still HMM-V's multi-level queue, bucket-sorted by the byte: 256 levels (16 coarse
 * levels, c >> 4), a page rising on an accessed interval and sinking on an idle one. What
 * changed (issue 7, item 10) is how far a page moves: HMM-V-style fixed steps with sink times
 * that grow with the level held hot pages longer the hotter they were, so a page written in
 * 15% of intervals spent half its time at the top level, and a page written every 5-14
 * intervals stayed at level 13-15 if it had ever been hot but never passed 2 when it started
 * cold: the level said more about the page's past than about its frequency, and the
 * balancer's "level L is about L accesses per 16 intervals" was far off. Steps proportional
 * to the distance from the top (up) and to the level (down) make the level a moving average:
 * one fixed point per frequency, reached from any start, and its value is the benefit the
 * balancer needs (hmmv_temperature_benefit is linear in c).
 *
 * The three transitions, precomputed per byte into HmmvTempTables:
 *
 *   written   c - floor(c / 16) + 8 x write_weight (saturating at 255)
 *   read      c - floor(c / 16) + 8 x read_weight
 *   idle      c - ceil(c / 16), and one more below 16
 *
 * Idle rounds up so that every warm page reaches 0, the cold fixed point that scans skip;
 * below 16 (under one write's worth, below promote_min_key) it takes one more, so a page
 * written once (16) is back at 0 after 9 idle intervals, about as long as the old queue's
 * warm tail (8): that tail is what the passes scan. Accessed rounds down so that a page
 * accessed in every interval climbs to 255 from any start (rounding up there would leave a
 * band of fixed points 241..255 and let history decide). All three tables are non-decreasing
 * and accessed >= idle, so a page accessed in a superset of the intervals of another never
 * ends colder.
 *
 * The update walks 64 pages per bitmap word: when the word has no access bit and the block
 * is known cold (vm->warm, kept by the update itself: vm-private.h) it is not read at all;
 * when its 64 temp bytes are all 0 (eight word compares) it costs a few loads; otherwise 8
 * pages at a time, where word arithmetic finds the pages that are cold and untouched (they
 * only count towards hist[0]) and a table lookup is done for the others only. At fleet scale
 * (2 TiB of guest RAM, 1% touched) most blocks are cold, and not reading them is most of
 * the saving: the pass is bound by memory, not by instructions.
 */
#include "vm-private.h"
#include "swar-private.h"

#include <hmmv/temperature.h>
#include <string.h>

static guint8
accessed(guint c, guint weight)
{
  guint next = c - (c >> HMMV_TEMP_DECAY_SHIFT) + HMMV_TEMP_STEP * weight;

  return (guint8)MIN(next, HMMV_NR_KEYS - 1u);
}

static guint8
idle_step(guint c)
{
  guint unit = 1u << HMMV_TEMP_DECAY_SHIFT;
  guint take = (c + unit - 1) >> HMMV_TEMP_DECAY_SHIFT;

  if (c > 0 && c < unit)
    take++;
  return (guint8)(c > take ? c - take : 0);
}

void
hmmv_temp_tables_init(HmmvTempTables *tables, const HmmvParams *params)
{
  for (guint key = 0; key < HMMV_NR_KEYS; key++) {
    tables->idle[key] = idle_step(key);
    tables->read[key] = accessed(key, params->read_weight);
    tables->write[key] = accessed(key, params->write_weight);
  }
}

/* Up to 8 pages from temp[0]: w and r hold their access bits (bit j = page j). */
static inline void
update_pages(guint8 *temp, guint count, guint w, guint r, const guint8 *const lut[4],
             guint64 *hist)
{
  for (guint j = 0; j < count; j++) {
    guint kind = (((w >> j) & 1u) << 1) | ((r >> j) & 1u);
    guint8 key = lut[kind][temp[j]];

    temp[j] = key;
    hist[key]++;
  }
}

/* The pages of temp[0..7] flagged in mask (0x80 bytes) through one table. */
static inline void
apply_table(guint8 *temp, guint64 mask, const guint8 *table, guint64 *hist)
{
  for (; mask != 0; mask &= mask - 1) {
    guint j = hmmv_swar_first(mask);
    guint8 key = table[temp[j]];

    temp[j] = key;
    hist[key]++;
  }
}

/* 8 pages from temp[0]. Pages cold and untouched stay 0 and are only counted (returned, for
 * hist[0]); the others, about the warm fraction, get a lookup each in the table of what
 * happened to them (written wins over read), split by word arithmetic so that the per-page
 * step does not work out its kind. */
static inline guint64
update_chunk8(guint8 *temp, guint w8, guint r8, const guint8 *const lut[4], guint64 *hist)
{
  guint64 zero = hmmv_swar_zero_bytes(hmmv_swar_load(temp));
  guint64 written = hmmv_swar_spread_bits(w8);
  guint64 read = hmmv_swar_spread_bits(r8) & ~written;
  guint64 idle_warm = HMMV_SWAR_HIGH & ~zero & ~(written | read);

  apply_table(temp, idle_warm, lut[0], hist);
  apply_table(temp, written, lut[2], hist);
  apply_table(temp, read, lut[1], hist);
  return hmmv_swar_count(zero & ~(written | read));
}

/* One 64-page block (temp[0..63] all real pages). Returns the pages that stayed cold. */
static inline guint64
update_block64(guint8 *temp, guint64 w, guint64 r, const guint8 *const lut[4], guint64 *hist)
{
  guint64 cold = 0;

  /* Written out: gcc -O2 kept the loop (a compare and a jump per word). */
  if ((w | r) == 0 &&
      (hmmv_swar_load(temp) | hmmv_swar_load(temp + 8) | hmmv_swar_load(temp + 16) |
       hmmv_swar_load(temp + 24) | hmmv_swar_load(temp + 32) | hmmv_swar_load(temp + 40) |
       hmmv_swar_load(temp + 48) | hmmv_swar_load(temp + 56)) == 0)
    return 64;
  for (guint c = 0; c < 8; c++)
    cold += update_chunk8(temp + 8 * c, (guint)(w >> (8 * c)) & 0xffu,
                          (guint)(r >> (8 * c)) & 0xffu, lut, hist);
  return cold;
}

/* The tables of a harvest that covers k >= 2 intervals: an untouched page idled k times; a
 * page whose bit is set was accessed in at least one of them, counted as one accessed
 * interval after k - 1 idle ones (one bit cannot say more, and counting it once per
 * interval would make a page touched once in k look k times as hot). */
static void
tables_for_intervals(const HmmvTempTables *one, guint64 intervals, HmmvTempTables *out)
{
  /* 255 is cold after ~60 idle intervals (test_tables_idle): more changes nothing. */
  guint k = (guint)MIN(intervals, (guint64)HMMV_TEMP_MAX_MERGED);

  for (guint key = 0; key < HMMV_NR_KEYS; key++) {
    guint c = key;

    for (guint i = 1; i < k; i++)
      c = one->idle[c];
    out->read[key] = one->read[c];
    out->write[key] = one->write[c];
    out->idle[key] = one->idle[c];
  }
}

void
hmmv_temperature_update(HmmvVm *vm, const HmmvTempTables *tables_one, const HmmvAccess *acc,
                        HmmvHistogram *hist)
{
  HmmvTempTables merged;
  const HmmvTempTables *tables = tables_one;
  const guint8 *lut[4];
  guint64 nr_pages = vm->nr_pages;
  guint64 full_blocks = nr_pages / 64;
  guint64 cold = 0;

  memset(hist, 0, sizeof(*hist));
  g_return_if_fail(vm->finalized);
  g_return_if_fail(acc == NULL || acc->nr_pages == vm->nr_pages);
  /* No new publication since the last harvest: no interval has passed for the tracker, so
   * nothing cools (issue 7, item 8). */
  if (acc != NULL && acc->intervals == 0) {
    hmmv_temperature_histogram(vm, hist);
    return;
  }
  if (acc != NULL && acc->intervals > 1) {
    tables_for_intervals(tables_one, acc->intervals, &merged);
    tables = &merged;
  }
  lut[0] = tables->idle;
  lut[1] = tables->read;
  lut[2] = tables->write;
  lut[3] = tables->write;

  /* A block known cold (its warm bit clear since the last update) and untouched stays cold
   * without a read of its 64 keys; every block's bit is written again. */
  if (vm->warm == NULL)
    vm->warm = g_new0(guint64, (full_blocks + 63) / 64);
  for (guint64 b = 0; b < full_blocks; b++) {
    guint64 w = acc != NULL ? acc->writes[b] : 0;
    guint64 r = acc != NULL && acc->has_reads ? acc->reads[b] : 0;
    guint64 bit = G_GUINT64_CONSTANT(1) << (b & 63), block_cold;

    if ((w | r) == 0 && vm->warm_valid && (vm->warm[b >> 6] & bit) == 0) {
      cold += 64;
      continue;
    }
    block_cold = update_block64(vm->temp + 64 * b, w, r, lut, hist->count);
    cold += block_cold;
    /* 64 pages that were 0 and untouched are 0; a block that just cooled to 0 keeps its
     * bit one more update (cheaper than testing its keys again now) */
    if (block_cold == 64)
      vm->warm[b >> 6] &= ~bit;
    else
      vm->warm[b >> 6] |= bit;
  }
  vm->warm_valid = TRUE;
  /* The last partial word: only real pages, so bits a tracker set beyond nr_pages cannot warm
   * the padding and padding is never counted. */
  for (guint64 base = full_blocks * 64; base < nr_pages; base += 8) {
    guint count = (guint)MIN(8u, nr_pages - base);
    guint64 w = acc != NULL ? acc->writes[base >> 6] : 0;
    guint64 r = acc != NULL && acc->has_reads ? acc->reads[base >> 6] : 0;
    guint w8 = (guint)(w >> (base & 63)) & 0xffu;
    guint r8 = (guint)(r >> (base & 63)) & 0xffu;

    update_pages(vm->temp + base, count, w8, r8, lut, hist->count);
  }
  hist->count[0] += cold;
}

void
hmmv_temperature_histogram(const HmmvVm *vm, HmmvHistogram *hist)
{
  guint64 nr_pages = vm->nr_pages;
  guint64 full = nr_pages & ~G_GUINT64_CONSTANT(7);
  guint64 cold = 0;

  memset(hist, 0, sizeof(*hist));
  g_return_if_fail(vm->finalized);
  for (guint64 base = 0; base < full; base += 8) {
    if (hmmv_swar_load(vm->temp + base) == 0) {
      cold += 8;
      continue;
    }
    for (guint j = 0; j < 8; j++)
      hist->count[vm->temp[base + j]]++;
  }
  for (guint64 page = full; page < nr_pages; page++)
    hist->count[vm->temp[page]]++;
  hist->count[0] += cold;
}

/*
 * Benefit in 1/4096 of a weighted access per interval. In steady state c is 128 x the page's
 * weighted accesses per interval (see the top of this file), so the estimate is c / 128 =
 * 32 x c / 4096: linear, 0 at key 0, and calibrated against the tables by
 * tests/test-temperature.c (pages seen at each level >= 1 are accessed within a factor of
 * 1.5 of it in the following intervals).
 */
guint64
hmmv_temperature_benefit(guint key)
{
  if (key >= HMMV_NR_KEYS)
    key = HMMV_NR_KEYS - 1;
  return (guint64)key * (4096u / (HMMV_TEMP_STEP << HMMV_TEMP_DECAY_SHIFT));
}

guint64
hmmv_temperature_expected_accesses(guint key)
{
  guint64 sum = 0;

  if (key >= HMMV_NR_KEYS)
    key = HMMV_NR_KEYS - 1;
  /* At most ~60 idle steps from 255 (test_tables_idle). */
  for (guint c = key; c > 0; c = idle_step(c))
    sum += hmmv_temperature_benefit(c);
  return sum;
}

void
hmmv_temperature_expected_table(guint64 expected[HMMV_NR_KEYS])
{
  /* idle_step(c) < c for c > 0: one pass upwards, each key once. */
  expected[0] = 0;
  for (guint c = 1; c < HMMV_NR_KEYS; c++)
    expected[c] = hmmv_temperature_benefit(c) + expected[idle_step(c)];
}
