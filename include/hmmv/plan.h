/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the planner turns a hot cut and the current placement into promote and demote lists.
 *
 * Promotions are hot pages on the slow tier, hottest first; demotions are non-hot pages on
 * DRAM, coldest first, and only as many as the budget needs: to make room for promotions
 * (and then only pages at least hysteresis_keys colder than the page they make room for) or
 * to bring the VM back under a budget that shrank. Pages in cooldown never move. Promotions
 * plus demotions never exceed cap_pages. Two passes over the pages: a histogram of the
 * candidates, then the emit pass; cold settled pages are skipped 8 at a time.
 */
#pragma once

#include <glib.h>
#include <hmmv/classify.h>
#include <hmmv/params.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct {
  GArray *promote;          /* guint64 page indices, hottest first */
  GArray *demote;           /* guint64 page indices, coldest first */
  guint64 forced_demote;    /* demotions needed because the budget shrank */
  guint64 promote_wanted;   /* hot pages on the slow tier, before the cap */
  guint64 deferred_cap;     /* moves the bandwidth cap pushed to a later interval */
} HmmvPlan;

void hmmv_plan_init(HmmvPlan *plan);
void hmmv_plan_clear(HmmvPlan *plan);

/* Also ages cooldowns by one interval. */
void hmmv_plan_build(HmmvVm *vm, const HmmvHotCut *cut, guint64 budget_pages,
                     guint64 cap_pages, const HmmvParams *params, HmmvPlan *plan);

G_END_DECLS
