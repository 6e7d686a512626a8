/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The planner: known cases, hysteresis over simulated intervals, invariants on random VMs. */
#include "hmmv-test.h"
#include "plan-private.h"
#include "swar-private.h"
#include "vm-private.h"

#include <string.h>

#define DRAM_NODE 0
#define SLOW_NODE 1

static HmmvParams
test_params(guint hysteresis_keys, guint cooldown_intervals)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.hysteresis_keys = hysteresis_keys;
  params.cooldown_intervals = cooldown_intervals;
  return params;
}

static void
place_all(HmmvVm *vm, int node, HmmvTier tier)
{
  for (guint64 page = 0; page < vm->nr_pages; page++)
    hmmv_vm_set_page_node(vm, page, node, tier);
}

static void
cut_of(const HmmvVm *vm, guint64 budget, guint min_key, HmmvHotCut *cut)
{
  HmmvHistogram hist;

  hmmv_temperature_histogram(vm, &hist);
  hmmv_classify(&hist, budget, min_key, cut);
}

static guint64
page_at(const GArray *list, guint i)
{
  return g_array_index(list, guint64, i);
}

/* Budget shrinks on an all-DRAM VM: exactly the excess goes, coldest first, capped. */
START_TEST(test_budget_shrink)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 1000);
  HmmvParams params = test_params(16, 2);
  HmmvPlan plan;
  HmmvHotCut cut;

  place_all(vm, DRAM_NODE, HMMV_TIER_DRAM);
  /* Page p has key p / 4: four pages a key, page 999 hottest. */
  for (guint64 page = 0; page < 1000; page++)
    vm->temp[page] = (guint8)(page / 4);
  hmmv_plan_init(&plan);

  cut_of(vm, 600, params.promote_min_key, &cut);
  hmmv_plan_build(vm, &cut, 600, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 0);
  ck_assert_uint_eq(plan.demote->len, 400);
  ck_assert_uint_eq(plan.forced_demote, 400);
  ck_assert_uint_eq(plan.deferred_cap, 0);
  for (guint i = 0; i < 400; i++)
    ck_assert_uint_eq(page_at(plan.demote, i), i);

  hmmv_plan_build(vm, &cut, 600, 100, &params, &plan);
  ck_assert_uint_eq(plan.demote->len, 100);
  ck_assert_uint_eq(plan.forced_demote, 100);
  ck_assert_uint_eq(plan.deferred_cap, 300);
  for (guint i = 0; i < 100; i++)
    ck_assert_uint_eq(page_at(plan.demote, i), i);
  hmmv_plan_clear(&plan);
}
END_TEST

/* Free room: hottest first, each key in page order, nothing demoted. */
START_TEST(test_promote_hottest_first)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 300);
  HmmvParams params = test_params(16, 2);
  static const guint64 want[] = { 250, 7, 100, 200, 20, 21 };
  HmmvPlan plan = { 0 };
  HmmvHotCut cut;

  place_all(vm, SLOW_NODE, HMMV_TIER_SLOW);
  vm->temp[20] = 0x3f;   /* above the room gate (48 here) */
  vm->temp[21] = 0x3f;
  vm->temp[22] = 0x3f;
  vm->temp[100] = 0x4f;
  vm->temp[200] = 0x4f;
  vm->temp[7] = 0x8f;
  vm->temp[250] = 0xff;
  vm->temp[5] = 0x0f; /* below promote_min_key: never hot */
  cut_of(vm, 6, params.promote_min_key, &cut);
  hmmv_plan_build(vm, &cut, 6, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, G_N_ELEMENTS(want));
  for (guint i = 0; i < G_N_ELEMENTS(want); i++)
    ck_assert_uint_eq(page_at(plan.promote, i), want[i]);
  ck_assert_uint_eq(plan.demote->len, 0);
  ck_assert_uint_eq(plan.promote_wanted, 6);

  /* Cap 4: the four hottest, two deferred. */
  hmmv_plan_build(vm, &cut, 6, 4, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 4);
  for (guint i = 0; i < 4; i++)
    ck_assert_uint_eq(page_at(plan.promote, i), want[i]);
  ck_assert_uint_eq(plan.deferred_cap, 2);
  ck_assert_uint_eq(plan.promote_wanted, 6);
  hmmv_plan_clear(&plan);
}
END_TEST

/* Full DRAM: promotions only by swaps with pages hysteresis_keys colder; a swap costs 2. */
START_TEST(test_swaps_and_cap)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 100);
  HmmvParams params = test_params(16, 2);
  HmmvPlan plan;
  HmmvHotCut cut;

  /* The hysteresis and the cap, without the payback gate (test_payback_gate). */
  params.move_cost_ns = 0;
  hmmv_plan_init(&plan);
  place_all(vm, SLOW_NODE, HMMV_TIER_SLOW);
  /* DRAM: pages 0..9, keys 0x10 (pages 0-4) and 0x35 (pages 5-9). */
  for (guint64 page = 0; page < 10; page++) {
    hmmv_vm_set_page_node(vm, page, DRAM_NODE, HMMV_TIER_DRAM);
    vm->temp[page] = page < 5 ? 0x10 : 0x35;
  }
  /* Slow: 8 hot pages 50..57 of key 0x40. */
  for (guint64 page = 50; page < 58; page++)
    vm->temp[page] = 0x40;
  cut_of(vm, 10, params.promote_min_key, &cut);
  ck_assert_uint_eq(cut.cut_key, 0x35);
  ck_assert_uint_eq(cut.take_at_cut, 2);

  /* 0x35 is only 11 keys colder than 0x40: only pages 0-4 may make room. */
  hmmv_plan_build(vm, &cut, 10, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 5);
  ck_assert_uint_eq(plan.demote->len, 5);
  ck_assert_uint_eq(plan.promote_wanted, 8);
  ck_assert_uint_eq(plan.deferred_cap, 0);
  ck_assert_uint_eq(plan.forced_demote, 0);
  for (guint i = 0; i < 5; i++) {
    ck_assert_uint_eq(page_at(plan.promote, i), 50 + i);
    ck_assert_uint_eq(page_at(plan.demote, i), i);
  }

  /* Cap 7: three swaps; the other two wanted swaps (4 moves) are deferred. */
  hmmv_plan_build(vm, &cut, 10, 7, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 3);
  ck_assert_uint_eq(plan.demote->len, 3);
  ck_assert_uint_eq(plan.deferred_cap, 4);

  /* No hysteresis (and no payback gate, another margin): all 8 swap (pages 5-9 are not
   * hot... except the 2 taken at the cut). */
  params.hysteresis_keys = 0;
  params.move_cost_ns = 0;
  hmmv_plan_build(vm, &cut, 10, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 8);
  ck_assert_uint_eq(plan.demote->len, 8);
  for (guint i = 0; i < 8; i++)
    ck_assert_uint_eq(page_at(plan.demote, i), i < 5 ? i : i + 2);
  hmmv_plan_clear(&plan);
}
END_TEST

/* Pages in cooldown are never planned, and the build ages their cooldown by one. Pages of
 * unknown node are never planned even when hot. */
START_TEST(test_cooldown_and_unknown)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 64);
  HmmvParams params = test_params(16, 2);
  HmmvPlan plan;
  HmmvHotCut cut;

  hmmv_plan_init(&plan);
  place_all(vm, SLOW_NODE, HMMV_TIER_SLOW);
  for (guint64 page = 0; page < 4; page++)
    vm->temp[page] = 0xff;
  hmmv_place_set_cooldown(vm, 0, 1);
  hmmv_place_set_cooldown(vm, 1, 3);
  hmmv_vm_set_page_node(vm, 2, -1, HMMV_TIER_SLOW);
  hmmv_place_set_cooldown(vm, 2, 1);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 1), SLOW_NODE);
  cut_of(vm, 10, params.promote_min_key, &cut);

  hmmv_plan_build(vm, &cut, 10, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 1);
  ck_assert_uint_eq(page_at(plan.promote, 0), 3);
  ck_assert_uint_eq(plan.promote_wanted, 1);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[0]), 0);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[1]), 2);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[2]), 0);
  ck_assert_uint_eq(HMMV_PLACE_NODE(vm->place[1]), SLOW_NODE);

  /* Next interval: page 0 is free to move, page 1 still waits, page 2 stays unknown. */
  hmmv_plan_build(vm, &cut, 10, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 2);
  ck_assert_uint_eq(page_at(plan.promote, 0), 0);
  ck_assert_uint_eq(page_at(plan.promote, 1), 3);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[1]), 1);
  hmmv_plan_build(vm, &cut, 10, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 2);
  hmmv_plan_build(vm, &cut, 10, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 3);

  /* A DRAM page in cooldown is not demoted even when the budget shrinks. */
  hmmv_vm_set_page_node(vm, 40, DRAM_NODE, HMMV_TIER_DRAM);
  hmmv_vm_set_page_node(vm, 41, DRAM_NODE, HMMV_TIER_DRAM);
  hmmv_place_set_cooldown(vm, 40, 2);
  cut_of(vm, 0, params.promote_min_key, &cut);
  hmmv_plan_build(vm, &cut, 0, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.demote->len, 1);
  ck_assert_uint_eq(page_at(plan.demote, 0), 41);
  ck_assert_uint_eq(plan.forced_demote, 1);
  hmmv_plan_clear(&plan);
}
END_TEST

static void
apply_plan(HmmvVm *vm, const HmmvPlan *plan, const HmmvParams *params)
{
  for (guint i = 0; i < plan->promote->len; i++) {
    guint64 page = page_at(plan->promote, i);

    hmmv_vm_set_page_node(vm, page, DRAM_NODE, HMMV_TIER_DRAM);
    hmmv_place_set_cooldown(vm, page, params->cooldown_intervals);
  }
  for (guint i = 0; i < plan->demote->len; i++) {
    guint64 page = page_at(plan->demote, i);

    hmmv_vm_set_page_node(vm, page, SLOW_NODE, HMMV_TIER_SLOW);
    hmmv_place_set_cooldown(vm, page, params->cooldown_intervals);
  }
}

/* 31 pages written every interval, page A on even intervals, page B on odd ones, DRAM for
 * 32: the one free slot is contended. Returns the moves of A and B. */
static guint
simulate_alternating(guint hysteresis_keys, guint cooldown_intervals, gboolean gate_on,
                     guint intervals)
{
  enum { NR_PAGES = 500, BUDGET = 32, PAGE_A = 100, PAGE_B = 300 };
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", NR_PAGES);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvParams params = test_params(hysteresis_keys, cooldown_intervals);
  HmmvTempTables tables;
  HmmvPlan plan;
  guint moves = 0;

  /* The payback gate is a margin too: off unless asked for (gate_on). */
  if (!gate_on)
    params.move_cost_ns = 0;

  hmmv_temp_tables_init(&tables, &params);
  hmmv_plan_init(&plan);
  place_all(vm, SLOW_NODE, HMMV_TIER_SLOW);
  for (guint64 page = 0; page < 31; page++)
    hmmv_vm_set_page_node(vm, page * 7, DRAM_NODE, HMMV_TIER_DRAM);
  hmmv_vm_set_page_node(vm, PAGE_A, DRAM_NODE, HMMV_TIER_DRAM);

  for (guint t = 0; t < intervals; t++) {
    HmmvHistogram hist;
    HmmvHotCut cut;

    hmmv_access_clear(acc);
    acc->intervals = 1;
    for (guint64 page = 0; page < 31; page++)
      hmmv_access_mark_write(acc, page * 7);
    hmmv_access_mark_write(acc, t % 2 == 0 ? PAGE_A : PAGE_B);
    hmmv_temperature_update(vm, &tables, acc, &hist);
    hmmv_classify(&hist, BUDGET, params.promote_min_key, &cut);
    hmmv_plan_build(vm, &cut, BUDGET, G_MAXUINT64, &params, &plan);
    for (guint i = 0; i < plan.promote->len; i++)
      moves += page_at(plan.promote, i) == PAGE_A || page_at(plan.promote, i) == PAGE_B;
    for (guint i = 0; i < plan.demote->len; i++)
      moves += page_at(plan.demote, i) == PAGE_A || page_at(plan.demote, i) == PAGE_B;
    apply_plan(vm, &plan, &params);
    ck_assert_uint_le(hmmv_vm_get_dram_pages(vm), BUDGET);
  }
  hmmv_plan_clear(&plan);
  return moves;
}

START_TEST(test_hysteresis_alternating)
{
  const guint intervals = 60;

  /* Without hysteresis or cooldown the two pages swap places every interval: the test sees
   * ping-pong when there is some. */
  ck_assert_uint_ge(simulate_alternating(0, 0, FALSE, intervals), intervals);
  /* Cooldown alone: a moved page stays put for cooldown intervals. */
  ck_assert_uint_le(simulate_alternating(0, 2, FALSE, intervals), 2 * (intervals / 3 + 1));
  /* Hysteresis alone: a swap needs one level between the pages, never true for long. */
  ck_assert_uint_le(simulate_alternating(16, 0, FALSE, intervals), 4);
  ck_assert_uint_le(simulate_alternating(16, 2, FALSE, intervals), 4);
  /* The payback gate alone: neither page is ever worth two moves more than the other. */
  ck_assert_uint_le(simulate_alternating(0, 0, TRUE, intervals), 4);
}
END_TEST

/*
 * Issue 7, item 11: the payback gate, checked against its definition on every pair of keys
 * (step 5): one page on the slow tier at key kp, one on DRAM at key kd, budget 1, so the only
 * possible move is a swap; and the same slow page alone with room for it. Promoted into room
 * iff its expected accesses pay for two moves; swapped iff that, and it is expected to get two
 * moves' worth more than the DRAM page, and is hysteresis_keys hotter.
 */
START_TEST(test_payback_gate)
{
  HmmvParams params = test_params(16, 0);
  guint64 need = (guint64)2 * params.move_cost_ns * 4096 / params.touch_saving_ns;
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 2);
  HmmvPlan plan;
  HmmvHotCut cut;

  guint gate = 0, room = 0;
  double gate_var;

  hmmv_plan_init(&plan);
  /* The defaults: a page written once (16) does not pay, written in two intervals (31) does. */
  ck_assert_uint_lt(hmmv_temperature_expected_accesses(16), need);
  ck_assert_uint_ge(hmmv_temperature_expected_accesses(31), need);
  /* Into room, the key must lie two standard deviations of the noise of a page at the gate's
   * key beyond it (steps of 16): 31, written in two intervals running by chance, is not. */
  while (hmmv_temperature_expected_accesses(gate) < need)
    gate++;
  gate_var = 16.0 * gate * (1.0 - gate / 256.0) / (2.0 - 1.0 / 16.0);
  room = gate;
  while ((double)(room - gate) * (room - gate) < 4.0 * gate_var)
    room++;
  ck_assert_uint_gt(room, 31);
  ck_assert_uint_le(room, 48);
  for (guint kp = 1; kp < HMMV_NR_KEYS; kp += 5) {
    guint64 ep = hmmv_temperature_expected_accesses(kp);

    /* Alone, with room. */
    vm->temp[0] = (guint8)kp;
    vm->temp[1] = 0;
    hmmv_vm_set_page_node(vm, 0, SLOW_NODE, HMMV_TIER_SLOW);
    hmmv_vm_set_page_node(vm, 1, SLOW_NODE, HMMV_TIER_SLOW);
    cut_of(vm, 1, 1, &cut);
    hmmv_plan_build(vm, &cut, 1, G_MAXUINT64, &params, &plan);
    ck_assert_msg(plan.promote->len == (kp >= room ? 1u : 0u), "kp %u: %u promoted into room "
                  "(gate %u, room gate %u)", kp, plan.promote->len, gate, room);
    ck_assert_uint_eq(plan.promote_gated, kp >= room ? 0 : 1);
    for (guint kd = 0; kd < kp; kd += 5) {
      guint64 ed = hmmv_temperature_expected_accesses(kd);
      /* Four standard deviations of the difference of two keys of pages of one frequency,
       * the frequency their mean says (steps of 16). */
      double mean = (kp + kd) / 2.0;
      double var = 2 * 16.0 * mean * (1.0 - MIN(mean / 256.0, 1.0)) / (2.0 - 1.0 / 16.0);
      gboolean swap = ep >= need && ep >= ed + need && kp >= kd + params.hysteresis_keys &&
                      (double)(kp - kd) * (kp - kd) >= 16.0 * var;

      vm->temp[1] = (guint8)kd;
      hmmv_vm_set_page_node(vm, 1, DRAM_NODE, HMMV_TIER_DRAM);
      cut_of(vm, 1, 1, &cut);
      hmmv_plan_build(vm, &cut, 1, G_MAXUINT64, &params, &plan);
      ck_assert_msg(plan.promote->len == (swap ? 1u : 0u) && plan.demote->len == plan.promote->len,
                    "kp %u kd %u: %u promoted, %u demoted, expected swap %d", kp, kd,
                    plan.promote->len, plan.demote->len, swap);
    }
  }
  /* move_cost_ns 0: the gate is off, a page written once is promoted into room. */
  params.move_cost_ns = 0;
  vm->temp[0] = 16;
  vm->temp[1] = 0;
  hmmv_vm_set_page_node(vm, 1, SLOW_NODE, HMMV_TIER_SLOW);
  cut_of(vm, 1, 1, &cut);
  hmmv_plan_build(vm, &cut, 1, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 1);
  hmmv_plan_clear(&plan);
}
END_TEST

/* Independent check of one plan against the state before the build. */
static void
check_plan(const guint8 *temp, const guint8 *place_before, const HmmvVm *vm,
           const HmmvHotCut *cut, guint64 dram_before, guint64 budget, guint64 cap,
           const HmmvParams *params, const HmmvPlan *plan)
{
  guint64 nr_pages = vm->nr_pages;
  g_autofree guint8 *hot = g_new0(guint8, nr_pages);
  g_autofree guint8 *used = g_new0(guint8, nr_pages);
  guint64 seen = 0, promote_cand = 0, demote_cand = 0, room, forced, swaps, want_forced;
  guint64 dram_after;
  guint min_promoted = HMMV_NR_KEYS, max_demoted = 0;

  for (guint64 p = 0; p < nr_pages; p++) {
    guint pl = place_before[p];
    gboolean settled = HMMV_PLACE_COOLDOWN(pl) == 0 && HMMV_PLACE_NODE(pl) != 31;

    hot[p] = temp[p] > cut->cut_key || (temp[p] == cut->cut_key && seen++ < cut->take_at_cut);
    promote_cand += settled && HMMV_PLACE_IS_SLOW(pl) && hot[p];
    demote_cand += settled && !HMMV_PLACE_IS_SLOW(pl) && !hot[p];
    /* Cooldowns aged by one, nothing else in the place byte changed. */
    ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[p]),
                      HMMV_PLACE_COOLDOWN(pl) > 0 ? HMMV_PLACE_COOLDOWN(pl) - 1 : 0);
    ck_assert_uint_eq(vm->place[p] & 0x3f, pl & 0x3f);
  }
  ck_assert_uint_eq(plan->promote_wanted, promote_cand);
  for (guint i = 0; i < plan->promote->len; i++) {
    guint64 p = page_at(plan->promote, i);

    ck_assert_uint_lt(p, nr_pages);
    ck_assert(hot[p] && !used[p]);
    ck_assert(HMMV_PLACE_IS_SLOW(place_before[p]) && HMMV_PLACE_NODE(place_before[p]) != 31);
    ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(place_before[p]), 0);
    if (i > 0) {
      guint64 q = page_at(plan->promote, i - 1);
      ck_assert(temp[q] > temp[p] || (temp[q] == temp[p] && q < p));
    }
    used[p] = 1;
    min_promoted = MIN(min_promoted, temp[p]);
  }
  for (guint i = 0; i < plan->demote->len; i++) {
    guint64 p = page_at(plan->demote, i);

    ck_assert_uint_lt(p, nr_pages);
    ck_assert(!hot[p] && !used[p]);
    ck_assert(!HMMV_PLACE_IS_SLOW(place_before[p]));
    ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(place_before[p]), 0);
    if (i > 0) {
      guint64 q = page_at(plan->demote, i - 1);
      ck_assert(temp[q] < temp[p] || (temp[q] == temp[p] && q < p));
    }
    used[p] = 2;
    max_demoted = MAX(max_demoted, temp[p]);
  }
  /* Hottest / coldest first among all candidates, and page order within the last key. */
  for (guint64 p = 0; p < nr_pages; p++) {
    guint pl = place_before[p];
    gboolean settled = HMMV_PLACE_COOLDOWN(pl) == 0 && HMMV_PLACE_NODE(pl) != 31;

    if (settled && HMMV_PLACE_IS_SLOW(pl) && hot[p] && !used[p] && plan->promote->len > 0) {
      ck_assert_uint_le(temp[p], min_promoted);
      if (temp[p] == min_promoted)
        ck_assert_uint_gt(p, page_at(plan->promote, plan->promote->len - 1));
    }
    if (settled && !HMMV_PLACE_IS_SLOW(pl) && !hot[p] && !used[p] && plan->demote->len > 0) {
      ck_assert_uint_ge(temp[p], max_demoted);
      if (temp[p] == max_demoted)
        ck_assert_uint_gt(p, page_at(plan->demote, plan->demote->len - 1));
    }
  }
  ck_assert_uint_le(plan->promote->len + plan->demote->len, cap);
  /* Forced demotions are granted the cap after the promotions: all of them unless the cap
   * ran out (within a page: a swap takes 2). */
  want_forced = dram_before > budget ? MIN(dram_before - budget, demote_cand) : 0;
  ck_assert_uint_le(plan->forced_demote, want_forced);
  if (plan->forced_demote < want_forced)
    ck_assert_uint_ge(plan->promote->len + plan->demote->len + 1, cap);
  /* Promotions beyond the free room each come with a swap demotion hysteresis_keys colder,
   * paired in list order: the swaps take the coldest candidates, the forced ones the next. */
  forced = plan->forced_demote;
  room = budget > dram_before ? budget - dram_before : 0;
  ck_assert_uint_ge(plan->demote->len, forced);
  swaps = plan->demote->len - forced;
  ck_assert_uint_eq(plan->promote->len, MIN(plan->promote->len, room) + swaps);
  for (guint i = 0; i < swaps; i++) {
    guint64 promoted = page_at(plan->promote, plan->promote->len - swaps + i);
    guint64 demoted = page_at(plan->demote, i);

    ck_assert_int_le((int)temp[demoted], (int)temp[promoted] - (int)params->hysteresis_keys);
  }
  dram_after = dram_before - plan->demote->len + plan->promote->len;
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), dram_before);
  if (plan->deferred_cap == 0 && dram_before <= budget + demote_cand)
    ck_assert_uint_le(dram_after, budget);
  ck_assert_uint_le(dram_after, MAX(budget, dram_before));
  if (plan->deferred_cap > 0)
    ck_assert_uint_ge(plan->promote->len + plan->demote->len + 1, cap);
}

static void
random_vm(HmmvVm *vm, GRand *rand, double dram_share)
{
  for (guint64 p = 0; p < vm->nr_pages; p++) {
    double where = g_rand_double(rand);

    vm->temp[p] = g_rand_double(rand) < 0.5 ? 0 : (guint8)g_rand_int_range(rand, 0, 256);
    if (where < 0.05)
      hmmv_vm_set_page_node(vm, p, -1, HMMV_TIER_SLOW);
    else if (where < 0.05 + dram_share)
      hmmv_vm_set_page_node(vm, p, DRAM_NODE, HMMV_TIER_DRAM);
    else
      hmmv_vm_set_page_node(vm, p, SLOW_NODE, HMMV_TIER_SLOW);
    if (g_rand_double(rand) < 0.1)
      hmmv_place_set_cooldown(vm, p, (guint)g_rand_int_range(rand, 1, 4));
  }
}

START_TEST(test_random_invariants)
{
  static const guint64 sizes[] = { 1, 8, 61, 64, 333, 2048 };
  static const guint64 caps[] = { 1, 2, 3, 17, 100, G_MAXUINT64 };
  static const guint hysteresis[] = { 0, 16, 40 };

  for (guint32 seed = 1; seed <= 3; seed++) {
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);

    for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
      guint64 nr_pages = sizes[s];
      g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", nr_pages);
      g_autofree guint8 *place = g_new(guint8, nr_pages);
      HmmvPlan plan;

      hmmv_plan_init(&plan);
      random_vm(vm, rand, g_rand_double(rand));
      for (guint c = 0; c < G_N_ELEMENTS(caps); c++) {
        for (guint h = 0; h < G_N_ELEMENTS(hysteresis); h++) {
          HmmvParams params = test_params(hysteresis[h], 2);
          guint64 budget = (guint64)g_rand_int_range(rand, 0, (gint32)nr_pages + 2);
          guint64 dram = hmmv_vm_get_dram_pages(vm);
          HmmvHotCut cut;

          params.promote_min_key = c % 2 ? 1 : 0x10;
          cut_of(vm, budget, params.promote_min_key, &cut);
          memcpy(place, vm->place, nr_pages);
          hmmv_plan_build(vm, &cut, budget, caps[c], &params, &plan);
          check_plan(vm->temp, place, vm, &cut, dram, budget, caps[c], &params, &plan);
          /* Put the cooldowns back for the next combination (some are worth testing). */
          memcpy(vm->place, place, nr_pages);
        }
      }
      hmmv_plan_clear(&plan);
    }
  }
}
END_TEST

/* Big cold VMs take the 8-page fast paths; a few warm pages among them are still found. */
START_TEST(test_fast_paths)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 10000);
  g_autofree guint8 *place = g_new(guint8, 10000);
  HmmvParams params = test_params(16, 2);
  HmmvPlan plan;
  HmmvHotCut cut;

  hmmv_plan_init(&plan);
  for (guint64 p = 0; p < 10000; p++)
    hmmv_vm_set_page_node(vm, p, p < 5000 ? DRAM_NODE : SLOW_NODE,
                          p < 5000 ? HMMV_TIER_DRAM : HMMV_TIER_SLOW);
  vm->temp[4000] = 0x5f;  /* hot on DRAM: stays */
  vm->temp[7001] = 0x6f;  /* hot on slow: promoted */
  vm->temp[9999] = 0x7f;
  hmmv_place_set_cooldown(vm, 9990, 1);
  cut_of(vm, 4000, params.promote_min_key, &cut);
  memcpy(place, vm->place, 10000);
  hmmv_plan_build(vm, &cut, 4000, G_MAXUINT64, &params, &plan);
  check_plan(vm->temp, place, vm, &cut, 5000, 4000, G_MAXUINT64, &params, &plan);
  /* 1000 forced demotions, then the two hot slow pages swap with the next two coldest. */
  ck_assert_uint_eq(plan.forced_demote, 1000);
  ck_assert_uint_eq(plan.promote->len, 2);
  ck_assert_uint_eq(plan.demote->len, 1002);
  ck_assert_uint_eq(page_at(plan.demote, 1001), 1001);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[9990]), 0);

  cut_of(vm, 5000, params.promote_min_key, &cut);
  memcpy(place, vm->place, 10000);
  vm->dram_pages = 4998;  /* as if 2 pages had left DRAM: room for both hot pages */
  hmmv_plan_build(vm, &cut, 5000, G_MAXUINT64, &params, &plan);
  ck_assert_uint_eq(plan.promote->len, 2);
  ck_assert_uint_eq(page_at(plan.promote, 0), 9999);
  ck_assert_uint_eq(page_at(plan.promote, 1), 7001);
  ck_assert_uint_eq(plan.demote->len, 0);
  vm->dram_pages = 5000;
  hmmv_plan_clear(&plan);
}
END_TEST

/* The word tricks both scans rely on, against byte-by-byte references. */
START_TEST(test_swar_helpers)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(5);

  for (guint i = 0; i < 20000; i++) {
    guint8 bytes[8];
    guint64 word, zero = 0, less = 0;
    guint n = (guint)g_rand_int_range(rand, 0, 0x81);
    guint bits = (guint)g_rand_int_range(rand, 0, 256);
    guint64 spread = 0;

    /* Mix in the edge values 0, 1, n-1, n, 0x7f, 0x80, 0xff. */
    for (guint j = 0; j < 8; j++) {
      static const guint8 edges[] = { 0, 1, 0x7f, 0x80, 0x81, 0xff };
      guint pick = (guint)g_rand_int_range(rand, 0, 4);

      bytes[j] = pick == 0   ? edges[g_rand_int_range(rand, 0, G_N_ELEMENTS(edges))]
                 : pick == 1 ? (guint8)(n + g_rand_int_range(rand, -1, 1))
                             : (guint8)g_rand_int_range(rand, 0, 256);
      zero |= (guint64)(bytes[j] == 0 ? 0x80 : 0) << (8 * j);
      less |= (guint64)(bytes[j] < n ? 0x80 : 0) << (8 * j);
      spread |= (guint64)((bits >> j) & 1 ? 0x80 : 0) << (8 * j);
    }
    memcpy(&word, bytes, sizeof(word));
    ck_assert_uint_eq(hmmv_swar_load(bytes), word);
    ck_assert_uint_eq(hmmv_swar_zero_bytes(word), zero);
    ck_assert_uint_eq(hmmv_swar_less_than(word, n), less);
    ck_assert_uint_eq(hmmv_swar_spread_bits(bits), spread);
    ck_assert_uint_eq(hmmv_swar_count(less), (guint)__builtin_popcountll(less));
    if (less != 0)
      ck_assert_uint_eq(hmmv_swar_first(less), (guint)__builtin_ctzll(less) / 8);
  }
}
END_TEST

static Suite *
plan_suite(void)
{
  Suite *suite = suite_create("plan");
  TCase *tc = tcase_create("core");

  /* test_random_invariants needs ~0.3 s of CPU; on a loaded 2-core CI machine that was over
   * Check's default 4 s of wall time. A liveness bound, not a speed check. */
  tcase_set_timeout(tc, 60);

  tcase_add_test(tc, test_swar_helpers);
  tcase_add_test(tc, test_budget_shrink);
  tcase_add_test(tc, test_promote_hottest_first);
  tcase_add_test(tc, test_swaps_and_cap);
  tcase_add_test(tc, test_cooldown_and_unknown);
  tcase_add_test(tc, test_hysteresis_alternating);
  tcase_add_test(tc, test_payback_gate);
  tcase_add_test(tc, test_random_invariants);
  tcase_add_test(tc, test_fast_paths);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(plan_suite());
}
