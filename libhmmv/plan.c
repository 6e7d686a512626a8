/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The planner: hot cut + placement -> promote and demote lists (semantics in plan.h).
 *
 * Candidates (cooldown and node read before any aging of this build):
 *   promote  hot, on a known slow-tier node, cooldown 0. A hot page whose node is unknown is
 *            not planned: the core first learns its node through the mover's query.
 *   demote   not hot, on a DRAM node, cooldown 0.
 *
 * Pass 1 counts candidates per key (256-bucket histograms, nothing written). The decision
 * then works on the histograms only, in this order:
 *   1. forced demotions: DRAM pages above the budget, coldest first;
 *   2. promotions, hottest key first: into free room (budget - DRAM pages) while there is
 *      some, then only by swapping with a demotion candidate at least hysteresis_keys colder
 *      (coldest first);
 *   3. the bandwidth cap grants moves in that same order (a swap needs 2); what it cannot
 *      grant is still played out, as if granted, to count deferred_cap.
 * Pass 2 emits exactly the chosen number of pages per key, lowest page index first within a
 * key, straight into their final slots (counting sort by prefix offsets: hottest key first
 * for promotions, coldest first for demotions), and ages cooldowns. Cooldowns are aged in
 * pass 2, not pass 1, because a page aged from 1 to 0 in pass 1 would look like a candidate
 * to pass 2; so pass 2 stops early only once everything is emitted and it is past the last
 * page in cooldown.
 *
 * hmmv_plan_clear() frees the lists; a cleared (or zeroed) plan may be built again.
 */
#include "vm-private.h"
#include "plan-private.h"
#include "swar-private.h"

#include <hmmv/plan.h>
#include <string.h>

/* Place byte flags (cooldown and slow bits) of a settled page: 0x20 slow or unknown, 0x00
 * DRAM, both with cooldown 0; repeated in each byte of a word. */
#define PLACE_FLAGS8 HMMV_SWAR_BYTES(0xe0)
#define PLACE_SLOW_SETTLED8 HMMV_SWAR_BYTES(HMMV_PLACE_SLOW)

/* Of 8 pages from base: 0x80 in the bytes of pages that are cold (key 0, never hot while the
 * cut is above 0) and settled; *dram_cold gets those among them that are on DRAM. Both passes
 * skip these pages, except the DRAM ones when pass 2 still has key-0 demotions to emit. */
static inline guint64
cold_settled(const guint8 *temp, const guint8 *place, guint64 *dram_cold)
{
  guint64 cold = hmmv_swar_zero_bytes(hmmv_swar_load(temp));
  guint64 flags = hmmv_swar_load(place) & PLACE_FLAGS8;

  *dram_cold = cold & hmmv_swar_zero_bytes(flags);
  return *dram_cold | (cold & hmmv_swar_zero_bytes(flags ^ PLACE_SLOW_SETTLED8));
}

typedef enum { CAND_NONE, CAND_PROMOTE, CAND_DEMOTE } Candidate;

typedef struct {
  guint64 promote[HMMV_NR_KEYS];
  guint64 demote[HMMV_NR_KEYS];
} KeyCounts;

void
hmmv_plan_init(HmmvPlan *plan)
{
  *plan = (HmmvPlan){
    .promote = g_array_new(FALSE, FALSE, sizeof(guint64)),
    .demote = g_array_new(FALSE, FALSE, sizeof(guint64)),
  };
}

void
hmmv_plan_clear(HmmvPlan *plan)
{
  g_clear_pointer(&plan->promote, g_array_unref);
  g_clear_pointer(&plan->demote, g_array_unref);
  memset(plan, 0, sizeof(*plan));
}

/* Must be called for every page in page order, in both passes, so that both see the same
 * take_at_cut pages of the boundary key. */
static inline gboolean
page_is_hot(const HmmvHotCut *cut, guint key, guint64 *seen_at_cut)
{
  return key > cut->cut_key || (key == cut->cut_key && (*seen_at_cut)++ < cut->take_at_cut);
}

static inline Candidate
candidate_of(guint place, gboolean hot)
{
  if (HMMV_PLACE_COOLDOWN(place) != 0 || HMMV_PLACE_NODE(place) == HMMV_PLACE_NODE_UNKNOWN)
    return CAND_NONE;
  if (HMMV_PLACE_IS_SLOW(place))
    return hot ? CAND_PROMOTE : CAND_NONE;
  return hot ? CAND_NONE : CAND_DEMOTE;
}

/* Pass 1. Returns one past the last page in cooldown (0 when none). */
static guint64
count_candidates(const HmmvVm *vm, const HmmvHotCut *cut, KeyCounts *cand)
{
  /* Key 0 is never hot unless the cut reaches it (promote_min_key 0). */
  gboolean zero_is_cold = cut->cut_key > 0;
  guint64 seen_at_cut = 0, cooldown_end = 0;
  const guint8 *temp = vm->temp, *place = vm->place;

  memset(cand, 0, sizeof(*cand));
  for (guint64 base = 0; base < vm->nr_pages; base += 8) {
    guint64 work = HMMV_SWAR_HIGH, dram_cold = 0;

    /* Bytes of padding pages (beyond nr_pages) are never visited. */
    if (vm->nr_pages - base < 8)
      work >>= 8 * (8 - (vm->nr_pages - base));
    if (zero_is_cold) {
      work &= ~cold_settled(temp + base, place + base, &dram_cold);
      cand->demote[0] += hmmv_swar_count(dram_cold);
    }
    /* Ascending page order within the block: the cut counter needs it. */
    for (; work != 0; work &= work - 1) {
      guint64 page = base + hmmv_swar_first(work);
      guint key = temp[page];
      guint pl = place[page];
      gboolean hot = page_is_hot(cut, key, &seen_at_cut);

      if (HMMV_PLACE_COOLDOWN(pl) != 0)
        cooldown_end = page + 1;
      switch (candidate_of(pl, hot)) {
      case CAND_PROMOTE:
        cand->promote[key]++;
        break;
      case CAND_DEMOTE:
        cand->demote[key]++;
        break;
      case CAND_NONE:
        break;
      }
    }
  }
  return cooldown_end;
}

/* Demotion candidates still free, coldest first from *first_key. */
typedef struct {
  guint64 left[HMMV_NR_KEYS];
  guint first_key;
} DemotePool;

static guint64
pool_available(const DemotePool *pool, int max_key)
{
  guint64 total = 0;

  for (int key = (int)pool->first_key; key <= max_key && key < HMMV_NR_KEYS; key++)
    total += pool->left[key];
  return total;
}

/* Take n candidates, coldest first; the first `granted` of them go into chosen[]. */
static void
pool_take(DemotePool *pool, guint64 n, guint64 granted, guint64 *chosen)
{
  while (n > 0 && pool->first_key < HMMV_NR_KEYS) {
    guint key = pool->first_key;
    guint64 take = MIN(n, pool->left[key]);
    guint64 grant = MIN(take, granted);

    chosen[key] += grant;
    granted -= grant;
    pool->left[key] -= take;
    n -= take;
    if (pool->left[key] == 0)
      pool->first_key++;
  }
}

/* The decision on the histograms: fills chosen and the plan's counters. */
static void
decide(const KeyCounts *cand, guint64 dram_pages, guint64 budget_pages, guint64 cap_pages,
       guint hysteresis_keys, KeyCounts *chosen, HmmvPlan *plan)
{
  DemotePool pool = { .first_key = 0 };
  /* Each list is a GArray (guint length): 4G moves an interval is far above any real cap. */
  guint64 cap_left = MIN(cap_pages, (guint64)G_MAXUINT), room = 0;

  memset(chosen, 0, sizeof(*chosen));
  memcpy(pool.left, cand->demote, sizeof(pool.left));
  while (pool.first_key < HMMV_NR_KEYS && pool.left[pool.first_key] == 0)
    pool.first_key++;

  if (dram_pages > budget_pages) {
    guint64 want = MIN(dram_pages - budget_pages, pool_available(&pool, HMMV_NR_KEYS - 1));
    guint64 granted = MIN(want, cap_left);

    pool_take(&pool, want, granted, chosen->demote);
    cap_left -= granted;
    plan->forced_demote = granted;
    plan->deferred_cap += want - granted;
  } else {
    room = budget_pages - dram_pages;
  }

  for (int key = HMMV_NR_KEYS - 1; key >= 0; key--) {
    guint64 wanted = cand->promote[key];
    guint64 by_room, by_swap, granted;

    plan->promote_wanted += wanted;
    if (wanted == 0)
      continue;
    by_room = MIN(wanted, room);
    room -= by_room;
    granted = MIN(by_room, cap_left);
    cap_left -= granted;
    chosen->promote[key] += granted;
    plan->deferred_cap += by_room - granted;

    by_swap = MIN(wanted - by_room, pool_available(&pool, key - (int)hysteresis_keys));
    granted = MIN(by_swap, cap_left / 2);
    cap_left -= 2 * granted;
    chosen->promote[key] += granted;
    pool_take(&pool, by_swap, granted, chosen->demote);
    plan->deferred_cap += 2 * (by_swap - granted);
  }
}

typedef struct {
  guint64 left[HMMV_NR_KEYS];   /* still to emit, per key */
  guint64 next[HMMV_NR_KEYS];   /* next slot in the output list, per key */
  guint64 *out;
} Emitter;

/* Slots: keys in the order given by hottest_first, each key's pages contiguous. */
static guint64
emitter_init(Emitter *em, const guint64 *counts, gboolean hottest_first, GArray *list)
{
  guint64 offset = 0;

  for (guint i = 0; i < HMMV_NR_KEYS; i++) {
    guint key = hottest_first ? HMMV_NR_KEYS - 1 - i : i;

    em->left[key] = counts[key];
    em->next[key] = offset;
    offset += counts[key];
  }
  g_array_set_size(list, (guint)offset);
  em->out = (guint64 *)(void *)list->data;
  return offset;
}

static inline gboolean
emitter_put(Emitter *em, guint key, guint64 page)
{
  if (em->left[key] == 0)
    return FALSE;
  em->left[key]--;
  em->out[em->next[key]++] = page;
  return TRUE;
}

/* Pass 2: emit the chosen pages and age cooldowns. */
static void
emit(HmmvVm *vm, const HmmvHotCut *cut, const KeyCounts *chosen, guint64 cooldown_end,
     HmmvPlan *plan)
{
  gboolean zero_is_cold = cut->cut_key > 0;
  guint64 seen_at_cut = 0, remaining;
  const guint8 *temp = vm->temp;
  guint8 *place = vm->place;
  g_autofree Emitter *promote = g_new(Emitter, 1);
  g_autofree Emitter *demote = g_new(Emitter, 1);

  remaining = emitter_init(promote, chosen->promote, TRUE, plan->promote);
  remaining += emitter_init(demote, chosen->demote, FALSE, plan->demote);

  for (guint64 base = 0; base < vm->nr_pages; base += 8) {
    guint64 work = HMMV_SWAR_HIGH, dram_cold = 0;

    if (remaining == 0 && base >= cooldown_end)
      break;
    if (vm->nr_pages - base < 8)
      work >>= 8 * (8 - (vm->nr_pages - base));
    if (zero_is_cold) {
      guint64 skip = cold_settled(temp + base, place + base, &dram_cold);

      work &= ~(demote->left[0] == 0 ? skip : skip & ~dram_cold);
    }
    for (; work != 0; work &= work - 1) {
      guint64 page = base + hmmv_swar_first(work);
      guint key = temp[page];
      guint pl = place[page];
      gboolean hot = page_is_hot(cut, key, &seen_at_cut);

      if (HMMV_PLACE_COOLDOWN(pl) != 0) {
        place[page] = (guint8)(pl - (1u << HMMV_PLACE_COOLDOWN_SHIFT));
        continue;
      }
      switch (candidate_of(pl, hot)) {
      case CAND_PROMOTE:
        remaining -= emitter_put(promote, key, page);
        break;
      case CAND_DEMOTE:
        remaining -= emitter_put(demote, key, page);
        break;
      case CAND_NONE:
        break;
      }
    }
  }
  g_warn_if_fail(remaining == 0);
}

void
hmmv_plan_build(HmmvVm *vm, const HmmvHotCut *cut, guint64 budget_pages, guint64 cap_pages,
                const HmmvParams *params, HmmvPlan *plan)
{
  g_autofree KeyCounts *cand = g_new(KeyCounts, 1);
  g_autofree KeyCounts *chosen = g_new(KeyCounts, 1);
  guint64 cooldown_end;

  if (plan->promote == NULL)
    plan->promote = g_array_new(FALSE, FALSE, sizeof(guint64));
  if (plan->demote == NULL)
    plan->demote = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_array_set_size(plan->promote, 0);
  g_array_set_size(plan->demote, 0);
  plan->forced_demote = 0;
  plan->promote_wanted = 0;
  plan->deferred_cap = 0;
  g_return_if_fail(vm->finalized);

  cooldown_end = count_candidates(vm, cut, cand);
  decide(cand, vm->dram_pages, budget_pages, cap_pages, params->hysteresis_keys, chosen, plan);
  emit(vm, cut, chosen, cooldown_end, plan);
}
