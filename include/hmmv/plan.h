/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the planner turns a hot cut and the current placement into promote and demote lists.
 *
 * Promotions are hot pages on the slow tier, hottest first; demotions are non-hot pages on
 * DRAM, coldest first, and only as many as the budget needs: to make room for promotions
 * (and then only pages at least hysteresis_keys colder than the page they make room for) or
 * to bring the VM back under a budget that shrank.
 *
 * The payback gate (issue 7, item 11): a page is promoted only when the weighted accesses it
 * is expected to get before it cools (hmmv_temperature_expected_accesses), each saving
 * touch_saving_ns, pay for two moves of move_cost_ns (there, and back when it has cooled);
 * a page written once from cold (16) is not, one written in two intervals running (31) is.
 * Into free room a page goes only when its key is also beyond the gate's by twice the noise
 * of a page whose mean is the gate's key (48 at the defaults): cold pages written in two
 * intervals running by chance were promoted into room and demoted again (tests/test-churn.c).
 * A swap displaces a DRAM page only when the promoted page's expected accesses exceed the
 * displaced page's by that same two moves' worth. So pages touched once in a while are not
 * moved into spare DRAM and out again, and nothing is demoted for a promotion that does not
 * pay. Pages in cooldown never move. Promotions
 * plus demotions never exceed cap_pages, counted in 4 KiB pages: a huge unit (units.h) is
 * one candidate of its real size at its mean key, hot or not as a whole, emitted as one entry
 * only when it fits whole (a demotion may overshoot its key's count by what the cap still
 * allows). Two passes over the pages: a histogram of the
 * candidates, then the emit pass; cold settled pages are skipped 8 at a time.
 */
#pragma once

#include <glib.h>
#include <hmmv/classify.h>
#include <hmmv/params.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct {
  GArray *promote;          /* guint64 page indices, hottest first; a huge unit (units.h) is
                             * one entry, its first page */
  GArray *demote;           /* guint64 page indices, coldest first; likewise */
  guint64 promote_pages;    /* 4 KiB pages the promote list moves (its units' sizes summed) */
  guint64 demote_pages;     /* likewise for demote */
  guint64 forced_demote;    /* demotions needed because the budget shrank */
  guint64 promote_wanted;   /* hot pages on the slow tier, before the cap */
  guint64 deferred_cap;     /* moves the bandwidth cap pushed to a later interval */
  guint64 promote_gated;    /* hot slow-tier pages not promoted: they would not pay back */
  guint64 promote_no_room;  /* hot slow-tier pages past the room gate that neither free room
                             * nor a swap could take (the swap's noise test): what a budget
                             * above the DRAM the VM holds would let it promote */
  guint64 deferred_unit;    /* pages chosen but not moved because a huge unit did not fit
                             * whole in what was chosen at its key (or in the room its
                             * demotions made) */
  guint64 hot_entered;      /* pages in this plan's hot set that were not in the last one's */
  guint64 hot_left;         /* pages in the last plan's hot set that are not in this one's */
  guint64 aged_unit_pages;  /* pages of huge units whose place bytes the build read to age
                             * their cooldowns: 0 when no page of the VM is cooling down */
} HmmvPlan;

void hmmv_plan_init(HmmvPlan *plan);
void hmmv_plan_clear(HmmvPlan *plan);

/* The payback gate's coldest key: a page below it is not promoted, its expected accesses
 * before it cools would not pay for two moves; 0 when the gate is off (touch_saving_ns 0).
 * The balancer counts no demand below it (balance.h). */
guint hmmv_plan_payback_min_key(const HmmvParams *params);

/* Also ages cooldowns by one interval. */
void hmmv_plan_build(HmmvVm *vm, const HmmvHotCut *cut, guint64 budget_pages,
                     guint64 cap_pages, const HmmvParams *params, HmmvPlan *plan);

G_END_DECLS
