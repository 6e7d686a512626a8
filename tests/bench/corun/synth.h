/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: the synthetic co-run workload, shared by tests/bench/corun-sim.c (the modelled
 * co-run of BENCHMARKS.md's deterministic tables) and `hmmv-corun gen` (generated traces for
 * tests). Never a stand-in for recorded traces in a BENCHMARKS figure of issue 12.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint hot_pct;            /* the hot set, % of the VM's pages */
  guint touch_pct;          /* pages touched per interval, % of the VM */
  guint write_pct;          /* touches that write */
} CorunSynthSpec;

typedef void (*CorunSynthTouch)(gpointer data, guint64 page, gboolean hot, gboolean write);

/* xorshift64*: the same stream on every machine. */
guint64 corun_synth_rng_next(guint64 *state);

/* One interval: touch_pct of the pages are touched, 90% of the touches in a hot set of
 * hot_pct that drifts by 1/16 of itself per interval, write_pct of them writes; touch() is
 * called for each, in order. */
void corun_synth_interval(const CorunSynthSpec *spec, guint64 nr_pages, guint64 interval,
                          guint64 *rng, CorunSynthTouch touch, gpointer data);

G_END_DECLS
