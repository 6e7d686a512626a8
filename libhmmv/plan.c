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
 *   1. promotions, hottest key first, of keys that pass the payback gate: into free room
 *      (budget - DRAM pages) while there is some, if the key is beyond the gate by more than
 *      its noise (room_min_key), then only by swapping with a demotion
 *      candidate whose expected accesses are lower by two moves' worth and at least
 *      hysteresis_keys colder (coldest first), leaving enough candidates for 2;
 *   2. forced demotions: DRAM pages above the budget, the coldest candidates left;
 *   3. the bandwidth cap grants moves in that same order (a swap needs 2), so hot pages are
 *      not held behind a budget that shrank a lot; what it cannot grant is still played out,
 *      as if granted, to count deferred_cap.
 * The gate's keys (the payback key, room_min_key, and per key the hottest a swap may
 * displace) come from plan-gate.c, per plan: the noise depends on the VM's access weights.
 * Pass 2 emits exactly the chosen number of pages per key, lowest page index first within a
 * key, straight into their final slots (counting sort by prefix offsets: hottest key first
 * for promotions, coldest first for demotions), and ages cooldowns. Cooldowns are aged in
 * pass 2, not pass 1, because a page aged from 1 to 0 in pass 1 would look like a candidate
 * to pass 2; so pass 2 stops early only once everything is emitted and it is past the last
 * page in cooldown.
 *
 * Both passes visit only pages that may matter: word arithmetic on 8 temp and 8 place bytes
 * drops settled pages whose key is below the cut on the slow tier (nothing to do) and cold
 * DRAM pages (counted as key-0 demotion candidates 8 at a time). The per-page code indexes
 * count rows by candidate kind instead of branching. On 16M pages with a random 1% written
 * per interval (17% warm) this took the planner from about 10 to about 3 ns a page.
 *
 * hmmv_plan_clear() frees the lists; a cleared (or zeroed) plan may be built again.
 */
#include "vm-private.h"
#include "plan-gate-private.h"
#include "plan-private.h"
#include "swar-private.h"

#include <hmmv/plan.h>
#include <string.h>

/* Place byte flags (cooldown and slow bits) of a settled page: 0x20 slow or unknown, 0x00
 * DRAM, both with cooldown 0; repeated in each byte of a word. */
#define PLACE_FLAGS8 HMMV_SWAR_BYTES(0xe0)
#define PLACE_SLOW_SETTLED8 HMMV_SWAR_BYTES(HMMV_PLACE_SLOW)

/* Per-key counts and emit slots live in rows indexed by the candidate kind, so the per-page
 * code indexes instead of branching; the NONE row only absorbs counts. */
enum { ROW_NONE, ROW_PROMOTE, ROW_DEMOTE, NR_ROWS };

typedef struct {
  guint64 count[NR_ROWS][HMMV_NR_KEYS];
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

/* The hot test of classify.h. Must run for every page in page order, in both passes, so that
 * both see the same take_at_cut pages of the boundary key. */
static inline guint
page_is_hot(const HmmvHotCut *cut, guint key, guint64 *seen_at_cut)
{
  guint at_cut = key == cut->cut_key;
  guint hot = (key > cut->cut_key) | (at_cut & (*seen_at_cut < cut->take_at_cut));

  *seen_at_cut += at_cut;
  return hot;
}

/* ROW_PROMOTE: hot on a known slow node; ROW_DEMOTE: not hot on DRAM; both cooldown 0. */
static inline guint
candidate_row(guint place, guint hot)
{
  guint settled = (HMMV_PLACE_COOLDOWN(place) == 0) &
                  (HMMV_PLACE_NODE(place) != HMMV_PLACE_NODE_UNKNOWN);
  guint slow = HMMV_PLACE_IS_SLOW(place);

  return settled * ((slow & hot) | ((!slow & !hot) << 1));
}

/* Of 8 pages from base, 0x80 in the bytes of settled pages that are not hot whatever the cut
 * counter says, because their key is below cold_below (<= cut_key, <= 0x80): on the slow tier
 * or unknown they need nothing; *dram_cold gets the DRAM ones of key 0, which are demotion
 * candidates of key 0 (counted, or emitted while key 0 still has demotions to emit). Other
 * warm DRAM pages need their key, so they are visited. Both passes skip the same pages, and
 * none of them has key cut_key, so the cut counter sees the same sequence in both. */
static inline guint64
cold_settled(const guint8 *temp, const guint8 *place, guint cold_below, guint64 *dram_cold)
{
  guint64 keys = hmmv_swar_load(temp);
  guint64 flags = hmmv_swar_load(place) & PLACE_FLAGS8;

  *dram_cold = hmmv_swar_zero_bytes(keys) & hmmv_swar_zero_bytes(flags);
  return *dram_cold | (hmmv_swar_less_than(keys, cold_below) &
                       hmmv_swar_zero_bytes(flags ^ PLACE_SLOW_SETTLED8));
}

/* Keys below this are never hot, and the byte compare above needs it <= 0x80. */
static guint
cold_below_of(const HmmvHotCut *cut)
{
  return MIN(cut->cut_key, 0x80u);
}

/* 0x80 in the bytes of the 8 pages from base that lie in [start, end) (base <= start, a
 * multiple of 8; end <= nr_pages, so padding is never visited). */
static inline guint64
range_pages(guint64 base, guint64 start, guint64 end)
{
  guint64 mask = HMMV_SWAR_HIGH;

  if (start > base)
    mask &= ~G_GUINT64_CONSTANT(0) << (8 * (start - base));
  if (end < base + 8)
    mask &= (G_GUINT64_CONSTANT(1) << (8 * (end - base))) - 1;
  return mask;
}

/* The hot test of a huge unit: all of it or nothing. At the cut key it is hot when all its
 * pages fit in what is left of take_at_cut; either way its pages count as seen there, so
 * both passes see the same sequence. */
static inline guint
unit_is_hot(const HmmvHotCut *cut, const HmmvUnit *unit, guint64 *seen_at_cut)
{
  guint at_cut = unit->key == cut->cut_key;
  guint hot = (unit->key > cut->cut_key) |
              (at_cut & (*seen_at_cut + unit->nr_pages <= cut->take_at_cut));

  *seen_at_cut += at_cut * unit->nr_pages;
  return hot;
}

/* The hot-set change (issue 7, item 11): the hot bits of pages [first, first + n) (within one
 * 64-page word) become `bits` (bit 0 = page first); counts the pages that entered and left.
 * Most bits do not change from one plan to the next: a word that stays as it was is only
 * compared (the build targets x86-64 without POPCNT, so each count is a libgcc call). */
static inline void
hot_bits_set(guint64 *hot, guint64 first, guint n, guint64 bits, HmmvPlan *plan)
{
  guint shift = (guint)(first & 63);
  guint64 mask = (n >= 64 ? ~G_GUINT64_CONSTANT(0) : (G_GUINT64_CONSTANT(1) << n) - 1) << shift;
  guint64 word = hot[first >> 6];
  guint64 old = word & mask, now = (bits << shift) & mask;

  if (old == now)
    return;
  plan->hot_entered += (guint64)__builtin_popcountll(now & ~old);
  plan->hot_left += (guint64)__builtin_popcountll(old & ~now);
  hot[first >> 6] = (word & ~mask) | now;
}

/* The same for a huge unit, hot or not as a whole: its whole words are compared with the
 * unit's word, and only a word that differs is counted and written. */
static void
hot_range_set(guint64 *hot, guint64 first, guint64 nr, gboolean is_hot, HmmvPlan *plan)
{
  guint64 all = is_hot ? ~G_GUINT64_CONSTANT(0) : 0;

  if ((first & 63) != 0) {
    guint n = (guint)MIN(nr, 64 - (first & 63));

    hot_bits_set(hot, first, n, all, plan);
    first += n;
    nr -= n;
  }
  if (nr >= 64) {
    guint64 *words = hot + (first >> 6), nr_words = nr / 64, diff = 0;

    /* a unit whose bits all stay (most, most intervals): one pass of compares */
    for (guint64 i = 0; i < nr_words; i++)
      diff |= words[i] ^ all;
    for (guint64 i = 0; diff != 0 && i < nr_words; i++) {
      guint64 old = words[i];

      plan->hot_entered += (guint64)__builtin_popcountll(all & ~old);
      plan->hot_left += (guint64)__builtin_popcountll(old & ~all);
      words[i] = all;
    }
    first += 64 * nr_words;
    nr -= 64 * nr_words;
  }
  if (nr > 0)
    hot_bits_set(hot, first, (guint)nr, all, plan);
}

/* Pages [start, end) of 4 KiB units, pass 1. Also records which pages are hot (vm->hot),
 * counting the change: the pages it skips are not hot. */
static void
count_range(HmmvVm *vm, const HmmvHotCut *cut, guint64 start, guint64 end,
            guint64 *seen_at_cut, guint64 *cooldown_end, KeyCounts *cand, HmmvPlan *plan)
{
  /* Key 0 is never hot unless the cut reaches it (promote_min_key 0). */
  gboolean zero_is_cold = cut->cut_key > 0;
  guint cold_below = cold_below_of(cut);
  const guint8 *temp = vm->temp, *place = vm->place;

  for (guint64 base = start & ~G_GUINT64_CONSTANT(7); base < end; base += 8) {
    guint64 work = range_pages(base, start, end), dram_cold = 0;
    guint64 first = MAX(base, start);
    guint hot_bits = 0;

    if (zero_is_cold) {
      work &= ~cold_settled(temp + base, place + base, cold_below, &dram_cold);
      cand->count[ROW_DEMOTE][0] += hmmv_swar_count(dram_cold & range_pages(base, start, end));
    }
    /* Ascending page order within the block: the cut counter needs it. */
    for (; work != 0; work &= work - 1) {
      guint64 page = base + hmmv_swar_first(work);
      guint key = temp[page];
      guint pl = place[page];
      guint hot = page_is_hot(cut, key, seen_at_cut);

      *cooldown_end = HMMV_PLACE_COOLDOWN(pl) != 0 ? page + 1 : *cooldown_end;
      cand->count[candidate_row(pl, hot)][key]++;
      hot_bits |= hot << (page - first);
    }
    /* one byte of the bitmap per 8 pages: a load and a store, no branch */
    hot_bits_set(vm->hot, first, (guint)(MIN(base + 8, end) - first), hot_bits, plan);
  }
}

/* Pass 1. Returns one past the last page in cooldown (0 when none). A huge unit is one
 * candidate of its size in pages at its key, placed and cooled down as its first page (the
 * core records and cools all its pages together). */
static guint64
count_candidates(HmmvVm *vm, const HmmvUnit *units, guint64 nr_units, const HmmvHotCut *cut,
                 KeyCounts *cand, HmmvPlan *plan)
{
  guint64 seen_at_cut = 0, cooldown_end = 0, next = 0;

  memset(cand, 0, sizeof(*cand));
  if (vm->hot == NULL)
    vm->hot = g_new0(guint64, hmmv_vm_page_bitmap_words(vm));
  for (guint64 u = 0; u <= nr_units; u++) {
    const HmmvUnit *unit = u < nr_units ? &units[u] : NULL;
    guint pl, hot;

    count_range(vm, cut, next, unit != NULL ? unit->first_page : vm->nr_pages, &seen_at_cut,
                &cooldown_end, cand, plan);
    if (unit == NULL)
      break;
    pl = vm->place[unit->first_page];
    next = unit->first_page + unit->nr_pages;
    cooldown_end = HMMV_PLACE_COOLDOWN(pl) != 0 ? next : cooldown_end;
    hot = unit_is_hot(cut, unit, &seen_at_cut);
    cand->count[candidate_row(pl, hot)][unit->key] += unit->nr_pages;
    hot_range_set(vm->hot, unit->first_page, unit->nr_pages, hot, plan);
  }
  return cooldown_end;
}

/* Demotion candidates still free, coldest first from first_key. */
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

/* The pages by which the demotions chosen so far overshoot when each key's are emitted as
 * whole units of unit_pages (emit_unit: the last unit of a key takes more than was chosen,
 * out of the cap left over). */
static guint64
unit_overshoot(const guint64 *chosen_demote, guint64 unit_pages)
{
  guint64 over = 0;

  for (guint key = 0; key < HMMV_NR_KEYS; key++)
    if (chosen_demote[key] % unit_pages != 0)
      over += unit_pages - chosen_demote[key] % unit_pages;
  return over;
}

/* The decision on the histograms: fills chosen and the plan's counters; returns the moves the
 * cap still allows. unit_pages: the VM's largest huge unit (0: none). */
static guint64
decide(const KeyCounts *cand, guint64 dram_pages, guint64 budget_pages, guint64 cap_pages,
       const PlanGate *gate, guint64 unit_pages, KeyCounts *chosen, HmmvPlan *plan)
{
  DemotePool pool = { .first_key = 0 };
  /* Each list is a GArray (guint length): 4G moves an interval is far above any real cap. */
  guint64 cap_left = MIN(cap_pages, (guint64)G_MAXUINT), room = 0;
  guint64 *chosen_promote = chosen->count[ROW_PROMOTE];
  guint64 *chosen_demote = chosen->count[ROW_DEMOTE];

  guint64 forced = 0;
  gboolean swaps_cut = FALSE;

  memset(chosen, 0, sizeof(*chosen));
  memcpy(pool.left, cand->count[ROW_DEMOTE], sizeof(pool.left));

  /* Forced demotions are granted the cap after the promotions (issue 7): a budget that
   * shrank by thousands of pages took the whole cap for intervals while the VM's hot pages
   * waited on the slow tier. A promotion is then a swap, which keeps the VM's DRAM as it is,
   * so the VM does not grow meanwhile; the swaps leave the forced demotions enough
   * candidates (by_swap below) and take the coldest, the forced ones the next coldest. */
  if (dram_pages > budget_pages)
    forced = MIN(dram_pages - budget_pages, pool_available(&pool, HMMV_NR_KEYS - 1));
  else
    room = budget_pages - dram_pages;

  for (int key = HMMV_NR_KEYS - 1; key >= 0; key--) {
    guint64 wanted = cand->count[ROW_PROMOTE][key];
    guint64 by_room, by_swap, granted;

    plan->promote_wanted += wanted;
    if (wanted == 0)
      continue;
    if ((guint)key < gate->min_key) {
      plan->promote_gated += wanted;   /* would not pay back before it cools */
      continue;
    }
    by_room = (guint)key >= gate->room_min_key ? MIN(wanted, room) : 0;
    room -= by_room;
    granted = MIN(by_room, cap_left);
    cap_left -= granted;
    chosen_promote[key] += granted;
    plan->deferred_cap += by_room - granted;

    by_swap = MIN(wanted - by_room, pool_available(&pool, gate->swap_max[key]));
    by_swap = MIN(by_swap, pool_available(&pool, HMMV_NR_KEYS - 1) - forced);
    if ((guint)key >= gate->room_min_key)
      plan->promote_no_room += wanted - by_room - by_swap;
    if ((guint)key < gate->room_min_key)
      plan->promote_gated += wanted - by_swap;   /* not known to pay back: not into room */
    if (unit_pages > 0) {
      /* With huge units a swap of two 2 MiB units takes 1,024 pages of the cap at once;
       * under a smaller cap, half of it for each side fits neither unit and nothing would
       * ever move. So the demotions go first and the promotions take what the cap has
       * left: the room the demotions make is promoted into by the next plan if not now.
       * What is left must first cover the demotions rounded up to whole units (emit_unit
       * takes that from the cap left over): under a cap below two units, the promotions
       * that took it kept the demotion from being emitted, and then were trimmed themselves
       * for want of its room, every interval (issue 7/8: the two-socket testbed promoted
       * nothing in 800 intervals). */
      guint64 demote = MIN(by_swap, cap_left), promote, over;

      cap_left -= demote;
      pool_take(&pool, by_swap, demote, chosen_demote);
      over = MIN(unit_overshoot(chosen_demote, unit_pages), cap_left);
      promote = MIN(demote, cap_left - over);
      cap_left -= promote;
      chosen_promote[key] += promote;
      swaps_cut |= demote < by_swap;
      plan->deferred_cap += (by_swap - demote) + (by_swap - promote);
      continue;
    }
    granted = MIN(by_swap, cap_left / 2);
    cap_left -= 2 * granted;
    chosen_promote[key] += granted;
    pool_take(&pool, by_swap, granted, chosen_demote);
    swaps_cut |= granted < by_swap;
    plan->deferred_cap += 2 * (by_swap - granted);
  }

  if (forced > 0) {
    /* After swaps the cap cut, what is left of it (a page: a swap takes 2) would demote a
     * page warmer than the swap candidates that wait: nothing, the next plan starts colder. */
    guint64 granted = swaps_cut ? 0 : MIN(forced, cap_left);

    pool_take(&pool, forced, granted, chosen_demote);
    cap_left -= granted;
    plan->forced_demote = granted;
    plan->deferred_cap += forced - granted;
  }
  return cap_left;
}

typedef struct {
  KeyCounts left;                              /* still to emit, per row and key */
  guint64 next[NR_ROWS][HMMV_NR_KEYS];         /* next slot in the row's list, per key */
  guint64 *out[NR_ROWS];
} Emitter;

/* Slots of one row: keys in the order given by hottest_first, each key's pages contiguous. */
static guint64
emitter_init_row(Emitter *em, guint row, const guint64 *counts, gboolean hottest_first,
                 GArray *list)
{
  guint64 offset = 0;

  for (guint i = 0; i < HMMV_NR_KEYS; i++) {
    guint key = hottest_first ? HMMV_NR_KEYS - 1 - i : i;

    em->left.count[row][key] = counts[key];
    em->next[row][key] = offset;
    offset += counts[key];
  }
  g_array_set_size(list, (guint)offset);
  em->out[row] = (guint64 *)(void *)list->data;
  return offset;
}

typedef struct {
  HmmvVm *vm;
  const HmmvHotCut *cut;
  Emitter *em;
  guint64 seen_at_cut;
  guint64 remaining;        /* pages still to emit */
  guint64 spare;            /* moves the cap allows beyond the chosen ones */
  guint64 aged_unit_pages;
} EmitState;

/* Pages [start, end) of 4 KiB units, pass 2. */
static void
emit_range(EmitState *st, guint64 start, guint64 end, guint64 cooldown_end)
{
  HmmvVm *vm = st->vm;
  Emitter *em = st->em;
  gboolean zero_is_cold = st->cut->cut_key > 0;
  guint cold_below = cold_below_of(st->cut);
  const guint8 *temp = vm->temp;
  guint8 *place = vm->place;

  for (guint64 base = start & ~G_GUINT64_CONSTANT(7); base < end; base += 8) {
    guint64 work = range_pages(base, start, end), dram_cold = 0;

    if (st->remaining == 0 && base >= cooldown_end)
      break;
    if (zero_is_cold) {
      guint64 skip = cold_settled(temp + base, place + base, cold_below, &dram_cold);

      work &= ~(em->left.count[ROW_DEMOTE][0] == 0 ? skip : skip & ~dram_cold);
    }
    for (; work != 0; work &= work - 1) {
      guint64 page = base + hmmv_swar_first(work);
      guint key = temp[page];
      guint pl = place[page];
      guint row = candidate_row(pl, page_is_hot(st->cut, key, &st->seen_at_cut));

      place[page] = (guint8)(pl - ((HMMV_PLACE_COOLDOWN(pl) != 0) << HMMV_PLACE_COOLDOWN_SHIFT));
      if (em->left.count[row][key] != 0) {
        em->left.count[row][key]--;
        em->out[row][em->next[row][key]++] = page;
        st->remaining--;
      }
    }
  }
}

/* 0x80 in the bytes of a word of place bytes whose cooldown (bits 7..6) is not 0. */
#define COOLDOWN_BITS8 HMMV_SWAR_BYTES(0xc0)

/* Ages the cooldowns of place[first .. first + nr) by one, 8 bytes a word: a byte with
 * cooldown c > 0 is >= 0x40, so taking 0x40 from it borrows from no other byte; a word with
 * no cooldown costs one test, 64 aligned pages with none eight loads and one test. */
static void
age_cooldowns(guint8 *place, guint64 first, guint64 nr)
{
  guint64 p = first, end = first + nr;

  for (; p < end && (p & 7) != 0; p++)
    place[p] = (guint8)(place[p] - ((HMMV_PLACE_COOLDOWN(place[p]) != 0)
                                    << HMMV_PLACE_COOLDOWN_SHIFT));
  for (; p + 8 <= end; p += 8) {
    guint64 word, cooling;

    /* 64 pages with no cooldown (most) cost eight loads and one test */
    if ((p & 63) == 0 && p + 64 <= end &&
        ((hmmv_swar_load(place + p) | hmmv_swar_load(place + p + 8) |
          hmmv_swar_load(place + p + 16) | hmmv_swar_load(place + p + 24) |
          hmmv_swar_load(place + p + 32) | hmmv_swar_load(place + p + 40) |
          hmmv_swar_load(place + p + 48) | hmmv_swar_load(place + p + 56)) &
         COOLDOWN_BITS8) == 0) {
      p += 56;
      continue;
    }
    word = hmmv_swar_load(place + p);
    if ((word & COOLDOWN_BITS8) == 0)
      continue;
    cooling = (word | (word << 1)) & HMMV_SWAR_HIGH;
    word -= cooling >> 1;
    memcpy(place + p, &word, sizeof(word));
  }
  for (; p < end; p++)
    place[p] = (guint8)(place[p] - ((HMMV_PLACE_COOLDOWN(place[p]) != 0)
                                    << HMMV_PLACE_COOLDOWN_SHIFT));
}

/* A huge unit, pass 2: emitted (its first page) only when it fits whole in what was chosen
 * at its key: a promotion never takes more room than the decision gave; a demotion may
 * overshoot its key's count by what the cap still allows (demoting a 2 MiB unit for 100
 * pages of room frees more than asked, which is harmless; leaving it would keep the VM over
 * its budget for good when all its cold DRAM is in huge units). Ages its pages' cooldowns. */
static void
emit_unit(EmitState *st, const HmmvUnit *unit, gboolean aging, guint64 *emitted_pages)
{
  guint8 *place = st->vm->place;
  guint pl = place[unit->first_page];
  guint row = candidate_row(pl, unit_is_hot(st->cut, unit, &st->seen_at_cut));
  guint64 *left = &st->em->left.count[row][unit->key];

  if (aging) {
    age_cooldowns(place, unit->first_page, unit->nr_pages);
    st->aged_unit_pages += unit->nr_pages;
  }
  if (row == ROW_NONE || *left == 0)
    return;
  if (*left < unit->nr_pages) {
    if (row != ROW_DEMOTE || unit->nr_pages - *left > st->spare)
      return;
    st->spare -= unit->nr_pages - *left;
    st->remaining -= *left;
    *left = 0;
  } else {
    *left -= unit->nr_pages;
    st->remaining -= unit->nr_pages;
  }
  st->em->out[row][st->em->next[row][unit->key]++] = unit->first_page;
  emitted_pages[row] += unit->nr_pages;
}

/* Units take one slot for many pages, and some are not emitted: close the gaps between
 * keys' slots. */
static void
compact_row(Emitter *em, guint row, const guint64 *counts, gboolean hottest_first,
            GArray *list)
{
  guint64 to = 0, from = 0;
  guint64 *out = em->out[row];

  for (guint i = 0; i < HMMV_NR_KEYS; i++) {
    guint key = hottest_first ? HMMV_NR_KEYS - 1 - i : i;
    guint64 used = em->next[row][key] - from;

    if (used > 0)   /* out is NULL for a row that emitted nothing (UBSan: memmove(NULL)) */
      memmove(out + to, out + from, used * sizeof(guint64));
    to += used;
    from += counts[key];
  }
  g_array_set_size(list, (guint)to);
}

/* Pass 2: emit the chosen pages and age cooldowns. With huge units the lists hold their
 * first pages and the page totals are in promote_pages / demote_pages. */
static void
emit(HmmvVm *vm, const HmmvUnit *units, guint64 nr_units, const HmmvHotCut *cut,
     const KeyCounts *chosen, guint64 cooldown_end, guint64 spare, guint64 budget_pages,
     HmmvPlan *plan)
{
  gboolean aging = vm->cooling_builds > 0;
  g_autofree Emitter *em = g_new0(Emitter, 1);
  EmitState st = { .vm = vm, .cut = cut, .em = em, .spare = spare };
  guint64 unit_pages[NR_ROWS] = { 0 }, chosen_demote = 0, next = 0, allowed;

  st.remaining = emitter_init_row(em, ROW_PROMOTE, chosen->count[ROW_PROMOTE], TRUE,
                                  plan->promote);
  chosen_demote = emitter_init_row(em, ROW_DEMOTE, chosen->count[ROW_DEMOTE], FALSE,
                                   plan->demote);
  st.remaining += chosen_demote;

  for (guint64 u = 0; u <= nr_units; u++) {
    const HmmvUnit *unit = u < nr_units ? &units[u] : NULL;

    /* nothing left to emit and no cooldown anywhere to age: the rest is not read */
    if (st.remaining == 0 && !aging)
      break;
    emit_range(&st, next, unit != NULL ? unit->first_page : vm->nr_pages, cooldown_end);
    if (unit == NULL)
      break;
    emit_unit(&st, unit, aging, unit_pages);
    next = unit->first_page + unit->nr_pages;
  }
  plan->aged_unit_pages = st.aged_unit_pages;
  if (nr_units == 0) {
    g_warn_if_fail(st.remaining == 0);
    plan->promote_pages = plan->promote->len;
    plan->demote_pages = plan->demote->len;
    return;
  }
  /* chosen pages no whole unit could take: they wait for a later plan */
  plan->deferred_unit = st.remaining;
  compact_row(em, ROW_PROMOTE, chosen->count[ROW_PROMOTE], TRUE, plan->promote);
  compact_row(em, ROW_DEMOTE, chosen->count[ROW_DEMOTE], FALSE, plan->demote);
  plan->promote_pages = 0;
  plan->demote_pages = 0;
  for (guint i = 0; i < plan->promote->len; i++)
    plan->promote_pages += hmmv_vm_unit_pages(vm, g_array_index(plan->promote, guint64, i));
  for (guint i = 0; i < plan->demote->len; i++)
    plan->demote_pages += hmmv_vm_unit_pages(vm, g_array_index(plan->demote, guint64, i));
  /* Demotions that did not fit whole gave no room: the promotions that counted on it wait,
   * coldest first, so that the VM's DRAM stays within its budget (budget - DRAM pages, plus
   * what the demotions free), or, above its budget, does not grow (its swaps may go before
   * its forced demotions, see decide()). */
  allowed = MAX(budget_pages, vm->dram_pages) + plan->demote_pages - vm->dram_pages;
  if (plan->promote_pages > allowed) {
    guint64 trimmed = 0;
    guint keep = plan->promote->len;

    while (keep > 0 && plan->promote_pages - trimmed > allowed)
      trimmed += hmmv_vm_unit_pages(vm, g_array_index(plan->promote, guint64, --keep));
    g_array_set_size(plan->promote, keep);
    plan->promote_pages -= trimmed;
    plan->deferred_unit += trimmed;
  }
}

void
hmmv_plan_build(HmmvVm *vm, const HmmvHotCut *cut, guint64 budget_pages, guint64 cap_pages,
                const HmmvParams *params, HmmvPlan *plan)
{
  g_autofree KeyCounts *cand = g_new(KeyCounts, 1);
  g_autofree KeyCounts *chosen = g_new(KeyCounts, 1);
  g_autofree PlanGate *gate = g_new(PlanGate, 1);
  guint64 cooldown_end, nr_units, spare, unit_pages = 0;
  const HmmvUnit *units;

  if (plan->promote == NULL)
    plan->promote = g_array_new(FALSE, FALSE, sizeof(guint64));
  if (plan->demote == NULL)
    plan->demote = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_array_set_size(plan->promote, 0);
  g_array_set_size(plan->demote, 0);
  plan->forced_demote = 0;
  plan->promote_wanted = 0;
  plan->deferred_cap = 0;
  plan->promote_gated = 0;
  plan->promote_no_room = 0;
  plan->promote_pages = 0;
  plan->demote_pages = 0;
  plan->deferred_unit = 0;
  plan->hot_entered = 0;
  plan->hot_left = 0;
  plan->aged_unit_pages = 0;
  g_return_if_fail(vm->finalized);

  units = hmmv_vm_get_units(vm, &nr_units);
  cooldown_end = count_candidates(vm, units, nr_units, cut, cand, plan);
  hmmv_plan_gate_init(gate, params, vm);
  for (guint64 u = 0; u < nr_units; u++)
    unit_pages = MAX(unit_pages, units[u].nr_pages);
  spare = decide(cand, vm->dram_pages, budget_pages, cap_pages, gate, unit_pages, chosen, plan);
  emit(vm, units, nr_units, cut, chosen, cooldown_end, spare, budget_pages, plan);
  if (vm->cooling_builds > 0)
    vm->cooling_builds--;
}
