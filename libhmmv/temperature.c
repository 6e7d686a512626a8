/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Page temperature: HMM-V's multi-level queue in one byte a page (level << 4 | fresh).
 *
 * The three transitions, precomputed per byte into HmmvTempTables:
 *
 *   written   level += write_weight (saturating at 15), fresh = 15
 *   read      level += read_weight  (saturating at 15), fresh = 15
 *   idle      fresh -= 1 (saturating at 0); freshness counts the idle intervals the page has
 *             spent at its current level, 15 - fresh. Once that count reaches
 *             sink_after(L) = MIN(15, sink_base + L / sink_level_divisor) the page sinks one
 *             level and fresh restarts at 15, so level L is held for exactly sink_after(L)
 *             idle intervals. With the defaults (2, 4) a page written once (level 2) is at
 *             level 0 after 4 idle intervals. Restarting at 15 keeps the key order right: the
 *             sunk page (L-1, 15) ranks below every page still at level L. Level 0 pages
 *             halve their freshness each idle interval (15, 7, 3, 1, 0); byte 0 maps to
 *             itself, the cold fixed point.
 *
 * The update walks 64 pages per bitmap word: when the word has no access bit and the 64 temp
 * bytes are all 0 (eight word compares) the block costs a few loads; otherwise 8 pages at a
 * time, where word arithmetic finds the pages that are cold and untouched (they only count
 * towards hist[0]) and a table lookup is done for the others only. With a random 1% of 16M
 * pages written per interval about 17% of the pages are warm in steady state (level-0 pages
 * take 15 intervals to fade), which puts a warm page in 4 of 5 blocks of 8: visiting only
 * those pages brought the pass from about 4.2 to about 2 ns a page on the 2-core test VM;
 * with a fixed 1% working set (1% warm) it costs about 0.3 ns a page.
 */
#include "vm-private.h"
#include "swar-private.h"

#include <hmmv/temperature.h>
#include <string.h>

static guint
sink_after(const HmmvParams *params, guint level)
{
  guint divisor = MAX(params->sink_level_divisor, 1u);

  return MIN(15u, params->sink_base + level / divisor);
}

static guint8
rise(guint key, guint weight)
{
  guint level = MIN(HMMV_TEMP_LEVEL(key) + weight, HMMV_NR_LEVELS - 1u);

  return HMMV_TEMP_MAKE(level, 15u);
}

static guint8
idle_step(const HmmvParams *params, guint key)
{
  guint level = HMMV_TEMP_LEVEL(key);
  guint fresh = HMMV_TEMP_FRESH(key);
  guint idle_count = 15u - fresh + 1u;

  if (level > 0 && idle_count >= sink_after(params, level))
    return HMMV_TEMP_MAKE(level - 1, 15u);
  /* Level 0 is the cold queue: halving (15, 7, 3, 1, 0) keeps recency order among pages that
   * just went cold, and lets them reach byte 0, where scans skip them, in 4 intervals
   * instead of 15. That tail is most of the warm set, so it is most of the scan cost. */
  if (level == 0)
    return HMMV_TEMP_MAKE(0, fresh / 2);
  return HMMV_TEMP_MAKE(level, fresh > 0 ? fresh - 1 : 0);
}

void
hmmv_temp_tables_init(HmmvTempTables *tables, const HmmvParams *params)
{
  for (guint key = 0; key < HMMV_NR_KEYS; key++) {
    tables->idle[key] = idle_step(params, key);
    tables->read[key] = rise(key, params->read_weight);
    tables->write[key] = rise(key, params->write_weight);
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

/* 8 pages from temp[0]. Pages cold and untouched stay 0 and are only counted (returned, for
 * hist[0]); the others, about the warm fraction, get a table lookup each. */
static inline guint64
update_chunk8(guint8 *temp, guint w8, guint r8, const guint8 *const lut[4], guint64 *hist)
{
  guint64 idle_cold = hmmv_swar_zero_bytes(hmmv_swar_load(temp)) &
                      ~hmmv_swar_spread_bits(w8 | r8);
  guint64 work = HMMV_SWAR_HIGH & ~idle_cold;

  while (work != 0) {
    guint j = hmmv_swar_first(work);
    guint kind = (((w8 >> j) & 1u) << 1) | ((r8 >> j) & 1u);
    guint8 key = lut[kind][temp[j]];

    temp[j] = key;
    hist[key]++;
    work &= work - 1;
  }
  return hmmv_swar_count(idle_cold);
}

/* One 64-page block (temp[0..63] all real pages). Returns the pages that stayed cold. */
static inline guint64
update_block64(guint8 *temp, guint64 w, guint64 r, const guint8 *const lut[4], guint64 *hist)
{
  guint64 cold = 0;

  if ((w | r) == 0) {
    guint64 any = 0;

    for (guint c = 0; c < 8; c++)
      any |= hmmv_swar_load(temp + 8 * c);
    if (any == 0)
      return 64;
  }
  for (guint c = 0; c < 8; c++)
    cold += update_chunk8(temp + 8 * c, (guint)(w >> (8 * c)) & 0xffu,
                          (guint)(r >> (8 * c)) & 0xffu, lut, hist);
  return cold;
}

void
hmmv_temperature_update(HmmvVm *vm, const HmmvTempTables *tables, const HmmvAccess *acc,
                        HmmvHistogram *hist)
{
  const guint8 *const lut[4] = { tables->idle, tables->read, tables->write, tables->write };
  guint64 nr_pages = vm->nr_pages;
  guint64 full_blocks = nr_pages / 64;
  guint64 cold = 0;

  memset(hist, 0, sizeof(*hist));
  g_return_if_fail(vm->finalized);
  g_return_if_fail(acc == NULL || acc->nr_pages == vm->nr_pages);

  for (guint64 b = 0; b < full_blocks; b++) {
    guint64 w = acc != NULL ? acc->writes[b] : 0;
    guint64 r = acc != NULL && acc->has_reads ? acc->reads[b] : 0;

    cold += update_block64(vm->temp + 64 * b, w, r, lut, hist->count);
  }
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
 * Benefit in 1/4096 of an access per interval. A page reaches level L after about L / weight
 * accessed intervals among its recent ones and sinks within a few idle intervals, so level L
 * stands for about L accesses per 16 intervals: 256 * L. Freshness interpolates towards the
 * next level, 16 per step (at most 240 < 256, so the estimate never decreases with the key).
 * Level 0 pages have sunk all the way: only a trickle, their freshness.
 */
guint64
hmmv_temperature_benefit(guint key)
{
  guint level, fresh;

  if (key >= HMMV_NR_KEYS)
    key = HMMV_NR_KEYS - 1;
  level = HMMV_TEMP_LEVEL(key);
  fresh = HMMV_TEMP_FRESH(key);
  if (level == 0)
    return fresh;
  return 256u * level + 16u * fresh;
}
