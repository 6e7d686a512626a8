/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: hmmv's payback gate at the interval its core runs in the replay.
 *
 * The gate (include/hmmv/plan.h) promotes a page only when the weighted touched intervals it
 * is expected to get before it cools, each saving touch_saving_ns, pay for two moves of
 * move_cost_ns. hmmvd's defaults (7200 ns: 32 memory accesses of 225 ns a touched interval;
 * 3900 ns a move) were set for its 1 s interval and an unloaded latency gap. The replay's core
 * runs every 10 ms of trace (or every --hmmv-interval-ms), where a touched page gets 2.8-31.7
 * LLC misses on average (hmmv4, BENCHMARKS.md), each saving (slow - DRAM latency) / mlp on the
 * tier model: the defaults let through promotions that cannot pay back. So the replay sets the
 * two figures as an operator sets hmmvd's touch-saving-ns and move-cost-ns for a host:
 * move_cost_ns from the profile (what the model charges a move), touch_saving_ns from what
 * the setup's traces measure, over all its VMs and intervals pooled, at the core's interval:
 * the mean saving of one weighted touched (page, core interval), each miss saving the
 * profile's idle latency gap / mlp, a written interval weighing write_weight and a read-only
 * one read_weight (hmmv_params_init's). One figure for the whole setup: no page's own future.
 */
#pragma once

#include "policy.h"

G_BEGIN_DECLS

typedef struct {
  guint touch_saving_ns;    /* one weighted touched interval of the core; >= 1 */
  guint move_cost_ns;
  /* what the calibration measured (for the report) */
  guint64 touched;          /* (page, core interval) pairs with a miss or more */
  double misses_per_touched;
} CorunGate;

/* Trace intervals per core interval: hmmv_interval_ms / interval_ms, at least 1. */
guint corun_gate_per_core(const CorunSetup *setup);

/* gate from setup's traces (their first max_intervals trace intervals; 0: all) at
 * per_core trace intervals per core interval, and setup->profile (required). */
gboolean corun_gate_calibrate(const CorunSetup *setup, guint per_core, guint64 max_intervals,
                              CorunGate *gate, GError **error);

G_END_DECLS
