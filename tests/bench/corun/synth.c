/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: the synthetic co-run workload (synth.h). */
#include "synth.h"

guint64
corun_synth_rng_next(guint64 *state)
{
  *state ^= *state >> 12;
  *state ^= *state << 25;
  *state ^= *state >> 27;
  return *state * G_GUINT64_CONSTANT(2685821657736338717);
}

void
corun_synth_interval(const CorunSynthSpec *spec, guint64 nr_pages, guint64 interval,
                     guint64 *rng, CorunSynthTouch touch, gpointer data)
{
  guint64 hot_pages = MAX(nr_pages * spec->hot_pct / 100, 1);
  guint64 nr_touch = MAX(nr_pages * spec->touch_pct / 100, 1);
  guint64 hot_base = (interval * MAX(hot_pages / 16, 1)) % nr_pages;

  for (guint64 i = 0; i < nr_touch; i++) {
    gboolean hot = corun_synth_rng_next(rng) % 10 != 0;
    guint64 page = hot ? (hot_base + corun_synth_rng_next(rng) % hot_pages) % nr_pages
                       : corun_synth_rng_next(rng) % nr_pages;
    gboolean write = corun_synth_rng_next(rng) % 100 < spec->write_pct;

    touch(data, page, hot, write);
  }
}
