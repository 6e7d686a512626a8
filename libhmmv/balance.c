/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * DRAM pooling across co-running VMs (contract in balance.h).
 *
 * Mins first. When they do not all fit in the pool (DRAM held by VMs outside the balance, a
 * pool that shrank), each VM's min is scaled down in proportion rather than failing the whole
 * balance: a failed balance used to keep the last budgets, and a VM added then had 0.
 *
 * Then the lent DRAM (the pool less the mins) is a share by weight (issue 7, item 9; the
 * README promised it while the balancer lent by weight x benefit, so weight 10,000 on a
 * barely warm page beat the hottest page of a weight-1 VM). Each VM wants its warm pages
 * beyond its min (benefit > 0, up to its max); the lent DRAM is water-filled over those
 * wants by weight: weighted max-min fairness. A VM that wants less than its share gets what
 * it wants, the others split the rest by weight. Integer pages: floor shares, then one page
 * each to the smallest (got + 1) / weight, so no page could move from one VM to another that
 * would stay below it per weight (test-balance enumerates every split of small cases and
 * checks exactly that). The shares depend only on the demands, so budgets stay still while
 * the demands do.
 *
 * Pages worth 0 (cold) are not lent as shares. What the pool still holds goes first back to
 * the VMs that hold DRAM now, up to what each holds (held_pages): DRAM no VM can use with
 * benefit stays where it is, because taking it back costs a demotion (and, later, a promotion
 * back) and buys nothing. A budget falls below what its VM holds only when pages worth more
 * elsewhere want the room. The rest is then spread by weight up to each max. Both steps are
 * water-filling by weight (VMs whose room is under their share are filled, the rest split
 * what is left in proportion, rounding as above), so DRAM does not sit idle while a VM could hold more of its pages there.
 */
#include "balance-private.h"

#include <hmmv/error.h>
#include <stdlib.h>

#ifndef HEADROOM_DIVISOR
#define HEADROOM_DIVISOR 1000000
#endif

/* For messages: the VM's name, or its index when the caller gave none. */
static char *
vm_label(const HmmvBalanceVm *vm, guint index)
{
  return vm->name != NULL ? g_strdup(vm->name) : g_strdup_printf("#%u", index);
}

static gboolean
check_vm(const HmmvBalanceVm *vm, guint index, GError **error)
{
  g_autofree char *label = vm_label(vm, index);

  if (vm->weight == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "balance: vm %s: weight is 0, weights must be > 0", label);
    return FALSE;
  }
  if (vm->max_pages != 0 && vm->min_pages > vm->max_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "balance: vm %s: min_pages %" G_GUINT64_FORMAT " is above max_pages %"
                G_GUINT64_FORMAT, label, vm->min_pages, vm->max_pages);
    return FALSE;
  }
  return TRUE;
}

/* The mins do not fit: each gets floor(min * pool / sum), then the pages rounding left over
 * (fewer than the VMs) one each, largest fraction first, then lowest index. Deterministic,
 * never above a VM's min, and a VM with a min gets 0 only when the pool is smaller than the
 * number of such VMs. */
static void
scale_mins(guint nr_vms, guint64 pool_pages, BalanceWide sum, VmSpan *spans)
{
  g_autofree BalanceWide *fraction = g_new0(BalanceWide, nr_vms);
  guint64 given = 0;

  for (guint i = 0; i < nr_vms; i++) {
    BalanceWide scaled = (BalanceWide)spans[i].min * pool_pages;

    fraction[i] = scaled % sum;
    spans[i].min = (guint64)(scaled / sum);
    given += spans[i].min;
  }
  while (given < pool_pages) {
    guint best = nr_vms;

    for (guint i = 0; i < nr_vms; i++)
      if (fraction[i] > 0 && (best == nr_vms || fraction[i] > fraction[best]))
        best = i;
    if (best == nr_vms)
      break;
    spans[best].min++;
    fraction[best] = 0;
    given++;
  }
}

/* Fills spans with each VM's min (scaled down in proportion when the mins do not fit in the
 * pool) and effective max; *left = the pool after the mins. */
gboolean
hmmv_balance_take_mins(HmmvBalanceVm *vms, guint nr_vms, guint64 pool_pages, VmSpan *spans,
                       guint64 *left, GError **error)
{
  BalanceWide sum = 0;

  for (guint i = 0; i < nr_vms; i++) {
    const HmmvBalanceVm *vm = &vms[i];

    if (!check_vm(vm, i, error))
      return FALSE;
    spans[i].max = vm->max_pages != 0 ? MIN(vm->max_pages, vm->nr_pages) : vm->nr_pages;
    spans[i].min = MIN(vm->min_pages, vm->nr_pages);
    sum += spans[i].min;
  }
  if (sum > pool_pages)
    scale_mins(nr_vms, pool_pages, sum, spans);
  *left = pool_pages;
  for (guint i = 0; i < nr_vms; i++) {
    spans[i].budget = spans[i].min;
    vms[i].min_granted = spans[i].min;
    *left -= spans[i].min;
  }
  return TRUE;
}

/* Warm demand: the VM's positions in [span->min, span->max) whose benefit is > 0 and key at
 * least min_key, walking its histogram hottest first (benefit made monotone, histogram
 * clipped at the VM's size). */
guint64
hmmv_balance_warm_demand(const HmmvBalanceVm *vm, const VmSpan *span, guint min_key)
{
  guint64 pos = 0;
  guint64 benefit = G_MAXUINT64;

  if (vm->hist == NULL)
    return 0;             /* nothing known yet: the VM gets its min and a spread share */
  for (guint key = HMMV_NR_KEYS; key-- > 0 && pos < span->max;) {
    guint64 count = vm->hist->count[key];

    benefit = MIN(benefit, hmmv_temperature_benefit(key));
    if (benefit == 0 || key < min_key)
      break;
    pos = count > span->max - pos ? span->max : pos + count;
  }
  return pos > span->min ? pos - span->min : 0;
}

/* Lending goes in four rounds (issue 7, item 11): first the demand that would pay back a
 * move (key >= demand_min_key: the core passes the payback gate's), then room for the hot
 * pages a VM has waiting on the slow tier (below), then every warm page up to the DRAM its VM
 * holds, then every warm page. In scripts/demo, pages of the cold ranges
 * written once in a while (each in 1-4% of intervals) counted as demand as much as another
 * VM's hot set, and as their number went up and down with the guests' speed, so did the
 * shares: big's budget swung by thousands of pages below a hot set it could not hold, and
 * each swing demoted and promoted its hot pages again (1.4-1.9% of its hot set moved again
 * per interval after 40 s). Lent after every VM's paying demand, those pages' swings move
 * only DRAM the payback gate would not promote into; lent not at all, the pages a VM has
 * just touched for the first time (on DRAM, and not yet known to be hot) were demoted and
 * promoted back (tests/test-loop.c, first touch headroom: 212 of 480 first touches stayed on
 * DRAM instead of 426). The middle round (issue 12): warm pages below the gate are worth the
 * same wherever they are, and the planner never promotes them, so a VM's may not take DRAM
 * another VM's hold; lent in one round, in hmmv-corun's recorded co-runs at 50% DRAM the VM
 * that had first-touched the most (every page written once at start) was demoted to an
 * equal share at the cap, 1,800 pages in 5 intervals, for DRAM no other VM then promoted
 * into (it sat idle). Cold DRAM (benefit 0) still goes to them in the last round.
 * The second round (waiting_pages, the planner's promote_no_room): a VM's budget covering its
 * paying demand is not enough when its DRAM is full of its own pages below the gate (first
 * touches): without room its hot pages on the slow tier can only be swapped in, and a swap
 * asks for a key beyond the noise of both estimates (plan-gate.c), about 100 keys above a first
 * touch's. In tests/test-churn.c a hot set that moved had 120 of its pages wait 5 intervals
 * so (keys 73-106; on DRAM again 9 intervals after the shift, 3 before the round above kept
 * sub-gate DRAM with its holders). So after every VM's paying demand, a VM with such pages
 * gets room for them above what it holds, before the warm pages below the gate keep the DRAM
 * their VMs hold: DRAM it will promote into at once, not DRAM that sits idle. */
void
hmmv_balance_demand_caps(const HmmvBalanceVm *vms, guint nr_vms, const VmSpan *spans,
                         guint round, guint64 *caps)
{
  for (guint i = 0; i < nr_vms; i++) {
    guint64 want = spans[i].min + hmmv_balance_warm_demand(&vms[i], &spans[i],
                                                           vms[i].demand_min_key);
    /* A closed gate (no key pays back a move) promotes nothing, so DRAM lent above what a VM
     * holds would sit idle: its warm pages keep what it holds, no more (nor does the core
     * ask for first-touch headroom under it: loop.c, core_headroom). */
    gboolean closed = vms[i].demand_min_key >= HMMV_NR_KEYS;

    if (round > 0) {
      guint64 warm = spans[i].min + hmmv_balance_warm_demand(&vms[i], &spans[i], 0);

      if (round == 1)
        want = MAX(want, vms[i].waiting_pages > 0 ?
                         MIN(spans[i].max, vms[i].held_pages + vms[i].waiting_pages) : 0);
      else
        want = MAX(want, round == 2 || closed ? MIN(warm, vms[i].held_pages) : warm);
    }
    caps[i] = MAX(spans[i].budget, want);
  }
}

/* One water-filling pass: fill every VM whose room (up to caps) is at most its share of left. */
static gboolean
fill_small_rooms(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, const guint64 *caps,
                 gboolean *active, guint64 *left)
{
  BalanceWide total_weight = 0;
  gboolean filled = FALSE;

  for (guint i = 0; i < nr_vms; i++)
    total_weight += active[i] ? vms[i].weight : 0;
  for (guint i = 0; i < nr_vms; i++) {
    guint64 room = caps[i] - spans[i].budget;

    /* room <= left * w / W: the water level only rises as others fill, so this VM ends
     * full whatever happens after. */
    if (active[i] && (BalanceWide)room * total_weight <= (BalanceWide)*left * vms[i].weight) {
      spans[i].budget += room;
      *left -= room;
      active[i] = FALSE;
      filled = TRUE;
    }
  }
  return filled;
}

/* Every active VM has room above its share: floor shares, then the leftover pages. base:
 * each VM's budget when this spread began (what it got in it is measured from there). */
static void
split_by_weight(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, const gboolean *active,
                const guint64 *base, guint64 left)
{
  g_autofree guint64 *got = g_new0(guint64, nr_vms);
  BalanceWide total_weight = 0;
  guint64 given = 0;

  for (guint i = 0; i < nr_vms; i++)
    total_weight += active[i] ? vms[i].weight : 0;
  if (total_weight == 0)
    return;
  for (guint i = 0; i < nr_vms; i++) {
    if (active[i]) {
      guint64 share = (guint64)((BalanceWide)left * vms[i].weight / total_weight);

      spans[i].budget += share;
      got[i] = spans[i].budget - base[i];
      given += share;
    }
  }
  /* Fewer leftover pages than active VMs, and each has room for one more: one each to the
   * VMs whose share would be the smallest per weight with it, (got + 1) / weight, ties to the
   * lower index. No page can then go from one VM to another that would stay below the
   * giver per weight (the fairness the brute-force reference in test-balance checks). */
  while (given < left) {
    guint best = nr_vms;

    for (guint i = 0; i < nr_vms; i++) {
      if (!active[i] || got[i] == G_MAXUINT64)
        continue;
      if (best == nr_vms || (BalanceWide)(got[i] + 1) * vms[best].weight <
                            (BalanceWide)(got[best] + 1) * vms[i].weight)
        best = i;
    }
    spans[best].budget++;
    got[best] = G_MAXUINT64;   /* one each */
    given++;
  }
}

/* Water-fills left into the VMs by weight, none above caps[i]; returns what is left. */
guint64
hmmv_balance_spread(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans,
                    const guint64 *caps, guint64 left)
{
  g_autofree gboolean *active = g_new0(gboolean, nr_vms);
  g_autofree guint64 *base = g_new0(guint64, nr_vms);
  guint64 room = 0;

  for (guint i = 0; i < nr_vms; i++) {
    base[i] = spans[i].budget;
    active[i] = spans[i].budget < caps[i];
    room += active[i] ? caps[i] - spans[i].budget : 0;
  }
  if (room <= left) {
    for (guint i = 0; i < nr_vms; i++)
      spans[i].budget = MAX(spans[i].budget, caps[i]);
    return left - room;
  }
  /* Each pass fills at least one VM or is the last: at most nr_vms + 1 passes. */
  while (left > 0 && fill_small_rooms(vms, nr_vms, spans, caps, active, &left))
    ;
  if (left > 0)
    split_by_weight(vms, nr_vms, spans, active, base, left);
  return 0;
}

/* The lent DRAM, shared by weight over the VMs' warm demand: weighted max-min fairness
 * (water-filling, what is not wanted below a VM's share goes to the others by weight), so
 * weight 200 gets twice the lent DRAM of weight 100 while both have warm pages for it,
 * however hot each one's pages are. Returns what no warm page wants. */
static guint64
lend_shares(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, guint64 left)
{
  g_autofree guint64 *caps = g_new0(guint64, nr_vms);

  for (guint round = 0; round < HMMV_BALANCE_ROUNDS; round++) {
    hmmv_balance_demand_caps(vms, nr_vms, spans, round, caps);
    left = hmmv_balance_spread(vms, nr_vms, spans, caps, left);
  }
  return left;
}

/* Cold DRAM stays with its holder, then the rest is spread up to each max. */
static void
spread_rest(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, guint64 headroom_pages,
            guint64 left)
{
  g_autofree guint64 *caps = g_new0(guint64, nr_vms);

  guint64 headroom = MIN(left, headroom_pages);

  for (guint i = 0; i < nr_vms; i++)
    caps[i] = MAX(spans[i].budget, MIN(vms[i].held_pages, spans[i].max));
  left = hmmv_balance_spread(vms, nr_vms, spans, caps, left - headroom) + headroom;
  for (guint i = 0; i < nr_vms; i++)
    caps[i] = spans[i].max;
  hmmv_balance_spread(vms, nr_vms, spans, caps, left);
}

gboolean
hmmv_balance(HmmvBalanceVm *vms, guint nr_vms, guint64 pool_pages, guint64 headroom_pages,
             GError **error)
{
  g_autofree VmSpan *spans = NULL;
  guint64 left = 0;

  g_return_val_if_fail(vms != NULL || nr_vms == 0, FALSE);
  if (nr_vms == 0)
    return TRUE;
  spans = g_new0(VmSpan, nr_vms);
  if (!hmmv_balance_take_mins(vms, nr_vms, pool_pages, spans, &left, error))
    return FALSE;
  left = lend_shares(vms, nr_vms, spans, left);
  spread_rest(vms, nr_vms, spans, headroom_pages, left);
  for (guint i = 0; i < nr_vms; i++)
    vms[i].budget = spans[i].budget;
  return TRUE;
}
