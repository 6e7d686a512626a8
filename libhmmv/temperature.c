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
 * The update walks 64 pages per bitmap word, 64 words at a time: the blocks it visits are
 * those touched and those that may be warm (vm->warm, kept by the update itself:
 * vm-private.h), found by bit tests, so a block known cold and untouched is not read at all;
 * when its 64 temp bytes are all 0 (eight word compares) it costs a few loads. The histogram
 * is not counted page by page: the last one (vm->temp_hist) is moved through the idle table
 * and corrected for the accessed pages, so only those (about the touched fraction) get a
 * lookup and a count each; the idle warm pages (most warm pages, most intervals) are
 * stepped 8 at a time by word arithmetic (hmmv_temp_idle8, the idle table for one interval;
 * a harvest of several intervals looks each up in its merged table). At fleet
 * scale (2 TiB of guest RAM, 1% touched) most blocks are cold, and not reading them is most
 * of the saving.
 */
#include "vm-private.h"
#include "swar-private.h"
#include "temperature-private.h"

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

/* The update's running state: the tables of what happened to a page, the histogram change of
 * the accessed pages (their keys before, taken out of the last histogram, and after), and
 * whether the idle table is the one-interval rule that hmmv_temp_idle8 computes. */
typedef struct {
  const guint8 *lut[4];          /* by kind: 0 idle, 1 read, 2 written, 3 both (written) */
  gboolean idle_is_one;
  guint64 taken[HMMV_NR_KEYS];   /* accessed pages by key before the update */
  guint64 added[HMMV_NR_KEYS];   /* ... and after */
} Update;

/* Idle for the 8 bytes of x (0 stays 0). */
static inline guint64
idle8(guint64 x, const Update *up)
{
  guint64 out = 0;

  if (up->idle_is_one)
    return hmmv_temp_idle8(x);
  for (guint j = 0; j < 8; j++)
    out |= (guint64)up->lut[0][(x >> (8 * j)) & 0xffu] << (8 * j);
  return out;
}

/* The pages of x (8 keys from temp[0]) flagged in bits through one table, counted in
 * up->taken and up->added. */
static inline void
apply_table(guint8 *temp, guint64 x, guint bits, const guint8 *table, Update *up)
{
  for (; bits != 0; bits &= bits - 1) {
    guint j = (guint)__builtin_ctz(bits);
    guint old = (guint)(x >> (8 * j)) & 0xffu;
    guint8 key = table[old];

    temp[j] = key;
    up->taken[old]++;
    up->added[key]++;
  }
}

/* The accessed pages among 8 at temp[0] (w8, r8: bit j = page j): each through the table of
 * what happened to it (written wins over read), counted in up->taken and up->added; the
 * others idle. */
static inline void
update_chunk8(guint8 *temp, guint w8, guint r8, Update *up)
{
  guint64 x = hmmv_swar_load(temp);
  guint64 out = idle8(x, up);

  memcpy(temp, &out, sizeof(out));
  apply_table(temp, x, w8, up->lut[2], up);
  apply_table(temp, x, r8 & ~w8, up->lut[1], up);
}

/* One 64-page block (temp[0..63] all real pages). Returns TRUE when it was all cold and
 * untouched (it stays so). */
static inline gboolean
update_block64(guint8 *temp, guint64 w, guint64 r, Update *up)
{
  if ((w | r) == 0) {
    guint64 x[8], any = 0;

    for (guint c = 0; c < 8; c++) {
      x[c] = hmmv_swar_load(temp + 8 * c);
      any |= x[c];
    }
    if (any == 0)
      return TRUE;
    for (guint c = 0; c < 8; c++) {
      guint64 out = x[c] != 0 ? idle8(x[c], up) : 0;

      memcpy(temp + 8 * c, &out, sizeof(out));
    }
    return FALSE;
  }
  for (guint c = 0; c < 8; c++)
    update_chunk8(temp + 8 * c, (guint)(w >> (8 * c)) & 0xffu, (guint)(r >> (8 * c)) & 0xffu,
                  up);
  return FALSE;
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

/* Is this the one-interval idle rule, byte for byte? (A caller may bring its own tables.) */
static gboolean
idle_is_one_interval(const guint8 idle[HMMV_NR_KEYS])
{
  for (guint key = 0; key < HMMV_NR_KEYS; key += 8)
    if (hmmv_swar_load(idle + key) != hmmv_temp_idle8(HMMV_SWAR_ONES * key +
                                                      G_GUINT64_CONSTANT(0x0706050403020100)))
      return FALSE;
  return TRUE;
}

void
hmmv_temperature_update(HmmvVm *vm, const HmmvTempTables *tables_one, const HmmvAccess *acc,
                        HmmvHistogram *hist)
{
  HmmvTempTables merged;
  const HmmvTempTables *tables = tables_one;
  Update update = { 0 }, *up = &update;
  const guint64 *writes, *reads;
  guint64 *warm;
  gboolean warm_valid;
  guint8 *temp = vm->temp;
  guint64 nr_pages = vm->nr_pages;
  guint64 full_blocks = nr_pages / 64;

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
  /* The histogram after the update is the last one with every idle page's key moved through
   * the idle table, corrected for the accessed pages: so only those are counted one by one,
   * and idle warm pages are stepped 8 at a time without a lookup each. The last histogram is
   * kept with vm->warm (both valid while warm_valid); without it, it is recounted. */
  if (vm->warm == NULL)
    vm->warm = g_new0(guint64, (full_blocks + 63) / 64);   /* NULL for 0 words: never read */
  if (vm->temp_hist == NULL)
    vm->temp_hist = g_new0(guint64, HMMV_NR_KEYS);
  if (!vm->warm_valid) {
    hmmv_temperature_histogram(vm, hist);
    memcpy(vm->temp_hist, hist->count, sizeof(hist->count));
    memset(hist, 0, sizeof(*hist));
  }
  up->lut[0] = tables->idle;
  up->lut[1] = tables->read;
  up->lut[2] = tables->write;
  up->lut[3] = tables->write;
  up->idle_is_one = idle_is_one_interval(tables->idle);

  /* A block known cold (its warm bit clear since the last update) and untouched stays cold
   * without a read of its 64 keys. The pointers in locals: the stores into temp may alias
   * anything, so the compiler would load them again for every block. */
  writes = acc != NULL ? acc->writes : NULL;
  reads = acc != NULL && acc->has_reads ? acc->reads : NULL;
  warm = vm->warm;
  warm_valid = vm->warm_valid;
  for (guint64 group = 0; group < full_blocks; group += 64) {
    guint n = (guint)MIN(64u, full_blocks - group);
    guint64 in_group = n < 64 ? (G_GUINT64_CONSTANT(1) << n) - 1 : ~G_GUINT64_CONSTANT(0);
    guint64 touched = 0, todo, cold = 0;

    /* the blocks to visit: the touched ones and those that may be warm */
    for (guint i = 0; writes != NULL && i < n; i++)
      touched |= (guint64)((writes[group + i] | (reads != NULL ? reads[group + i] : 0)) != 0)
                 << i;
    todo = (touched | (warm_valid ? warm[group >> 6] : ~G_GUINT64_CONSTANT(0))) & in_group;
    for (guint64 left = todo; left != 0; left &= left - 1) {
      guint i = (guint)__builtin_ctzll(left);
      guint64 b = group + i;

      cold |= (guint64)update_block64(temp + 64 * b, writes != NULL ? writes[b] : 0,
                                      reads != NULL ? reads[b] : 0, up) << i;
    }
    /* Every block's bit is written again: those not visited were known cold and stay so,
     * those visited all 0 and untouched are cold; a block that just cooled to 0 keeps its
     * bit one more update (cheaper than testing its keys again now). */
    warm[group >> 6] = todo & ~cold;
  }
  /* The last partial word: only real pages, so bits a tracker set beyond nr_pages cannot warm
   * the padding and padding is never counted. Each page is counted as an accessed one. */
  for (guint64 page = full_blocks * 64; page < nr_pages; page++) {
    guint64 w = acc != NULL ? acc->writes[page >> 6] >> (page & 63) : 0;
    guint64 r = acc != NULL && acc->has_reads ? acc->reads[page >> 6] >> (page & 63) : 0;
    guint kind = (guint)(((w & 1u) << 1) | (r & 1u));
    guint old = vm->temp[page];

    vm->temp[page] = up->lut[kind][old];
    up->taken[old]++;
    up->added[vm->temp[page]]++;
  }
  for (guint key = 0; key < HMMV_NR_KEYS; key++) {
    hist->count[up->lut[0][key]] += vm->temp_hist[key] - up->taken[key];
    hist->count[key] += up->added[key];
  }
  memcpy(vm->temp_hist, hist->count, sizeof(hist->count));
  vm->warm_valid = TRUE;
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
