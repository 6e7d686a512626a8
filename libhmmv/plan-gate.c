/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The planner's payback gate (semantics in plan.h), split out of plan.c: from the tier model
 * (params' move_cost_ns and touch_saving_ns, the temperature's expected accesses per key), the
 * coldest key a promotion pays back (min_key), the coldest promoted into free room
 * (room_min_key: beyond min_key by twice its noise) and, per key, the hottest key a swap may
 * displace (swap_max); the noise is that of a page's key under the VM's access weights.
 */
#include "plan-gate-private.h"

#include <hmmv/plan.h>

/* Variance of the temperature of a page accessed independently with a fixed probability in
 * each interval, whose mean key is c: with steps of s = 8 x weight and 1/16 decay, s^2 p(1-p)
 * / (2a - a^2) with p = c a / s, a = 1/16: s c (1 - c / 16 s) / (2 - 1/16). A page written in
 * 13% of intervals (c ~ 33) spreads over about +-15 keys. */
static double
temp_variance(double step, double c)
{
  double p = c / (16.0 * step);

  return step * c * (1.0 - MIN(p, 1.0)) / (2.0 - 1.0 / 16.0);
}

/* Is the page at key hot really accessed more often than the one at key cold, or could both
 * be pages of one frequency whose estimates differ by chance? Under that null hypothesis both
 * keys scatter around their mean with temp_variance each. The planner pairs the hottest of
 * up to thousands of slow-tier candidates with the coldest of as many DRAM pages: the extremes
 * of two samples of 1000 pages of one frequency lie about 3.2 standard deviations from the
 * mean each, ~4.5 apart in units of the difference's deviation, so a swap asks for 4 (checked
 * by tests/test-loop.c: pages written in 13% of intervals, spread over both tiers, are no
 * longer swapped; without it 20% of the hot set's size moved every interval). */
static gboolean
beyond_noise(double step, guint hot, guint cold)
{
  double diff = (double)hot - (double)cold;

  return diff > 0 &&
         diff * diff >= 16.0 * 2.0 * temp_variance(step, ((double)hot + (double)cold) / 2.0);
}

static gboolean
swap_pays(double step, const guint64 *expected, guint64 need, guint hot, guint cold)
{
  return expected[cold] + need <= expected[hot] && (need == 0 || beyond_noise(step, hot, cold));
}

/* The step of an accessed interval in the noise model: 8 x the weight of the VM's accessed
 * pages (a moving average, vm-private.h). A page only read climbs by 8 x read_weight, half a
 * written page's 8 x write_weight at the defaults, and its key scatters half as much: taking
 * every page for a written one (issue 7) asked a page read in 90% of intervals to reach key
 * ~102 before it could displace a cold page (test-loop: 67 of 128 read pages promoted in 30
 * intervals; the testbed, DAMON vaddr: 0 of 2,048), where ~52 is beyond a read page's noise.
 * Before anything was seen, the larger weight. */
static double
noise_step(const HmmvParams *params, const HmmvVm *vm)
{
  guint max = MAX(MAX(params->write_weight, params->read_weight), 1u);

  if (vm->access_weight_x256 == 0)
    return HMMV_TEMP_STEP * max;
  return HMMV_TEMP_STEP * MIN((double)vm->access_weight_x256 / 256.0, (double)max);
}

/* In 1/4096 of a weighted access: two moves' cost in touched intervals' savings. */
static guint64
payback_need(const HmmvParams *params)
{
  return params->touch_saving_ns == 0 ? 0 :
         (guint64)2 * params->move_cost_ns * 4096u / params->touch_saving_ns;
}

static guint
payback_min_key(const guint64 *expected, guint64 need)
{
  guint min_key = HMMV_NR_KEYS;

  for (guint key = HMMV_NR_KEYS; key-- > 0;)
    if (expected[key] >= need)
      min_key = key;
  return min_key;
}

guint
hmmv_plan_payback_min_key(const HmmvParams *params)
{
  guint64 expected[HMMV_NR_KEYS];

  hmmv_temperature_expected_table(expected);
  return payback_min_key(expected, payback_need(params));
}

/* Promotions into free room ask the page's key to lie beyond the gate's key by twice the
 * noise of a page whose mean is the gate's key (one-sided, ~2% of such pages pass by chance):
 * a key is one sample of a noisy estimate, and where thousands of pages are written in 1-4%
 * of intervals some are written in two intervals running every interval and reach the gate's
 * key by luck alone (31 >= 22 at the defaults). Promoted into room, they cooled and were
 * demoted again when the room was needed (issue 7 item 11: in scripts/demo, once the idle VM's
 * DRAM was lent out, the VMs' budgets followed their warm pages' count up and down, and
 * small moved 1.85-3.21% of its hot set again an interval, all such pages; tests/test-churn.c
 * reproduces it). At the defaults (gate 22, step 16, noise +-13) the key is 48: three writes
 * in three or four intervals running at the least, about 1.3 p times as likely as two for a
 * page written in p of intervals (1/20 as many at p = 4%). A page written in every interval
 * is promoted after 4 intervals instead of 2. A swap already asks for more (beyond_noise). */
static guint
room_min_key(double step, guint min_key)
{
  double var = temp_variance(step, (double)min_key);
  guint key = min_key;

  while (key < HMMV_NR_KEYS - 1 &&
         ((double)key - (double)min_key) * ((double)key - (double)min_key) < 4.0 * var)
    key++;
  return key;
}

static void
gate_init(PlanGate *gate, const HmmvParams *params, double step)
{
  guint64 expected[HMMV_NR_KEYS];
  guint64 need = payback_need(params);

  hmmv_temperature_expected_table(expected);
  gate->min_key = payback_min_key(expected, need);
  gate->room_min_key = room_min_key(step, gate->min_key);
  /* A swap is two moves now: the page promoted must be expected to get `need` more accesses
   * than the page it displaces (expected is increasing, so this is a key bound), be at least
   * hysteresis_keys hotter, and hotter by more than the two estimates' noise. */
  for (guint key = 0; key < HMMV_NR_KEYS; key++) {
    int max = (int)key - (int)params->hysteresis_keys;

    /* The keys a page may displace are 0 .. swap_max[key], and the bound only rises with
     * the key: start from the last bound and go up (O(256) for the table, not 256^2). */
    if (max >= 0) {
      int m = key > 0 ? MAX(gate->swap_max[key - 1], -1) : -1;

      while (m + 1 <= max && swap_pays(step, expected, need, key, (guint)(m + 1)))
        m++;
      max = m;
    }
    gate->swap_max[key] = max;
  }
}

void
hmmv_plan_gate_init(PlanGate *gate, const HmmvParams *params, const HmmvVm *vm)
{
  gate_init(gate, params, noise_step(params, vm));
}
