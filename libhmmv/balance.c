/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * DRAM pooling across co-running VMs (contract in balance.h).
 *
 * Mins first. When they do not all fit in the pool (DRAM held by VMs outside the balance, a
 * pool that shrank), each VM's min is scaled down in proportion rather than failing the whole
 * balance: a failed balance used to keep the last budgets, and a VM added then had 0.
 *
 * Think of each VM's pages as one line, hottest first (key 255 down to 0 of its histogram).
 * Positions 0 .. min-1 are the VM's min, paid for up front; positions min .. max-1 can be
 * lent; a page at position p is worth weight * benefit(key of p). Benefit does not grow as
 * the key falls, so lending the most valuable pages first, greedily, gives the best total
 * (an exchange argument: each VM's value line is non-increasing). Pages of equal key are one
 * group, so the greedy is a sort of at most 2 * 256 groups per VM, never a pass over pages.
 *
 * Ties in value are where the pool's edge falls. To keep budgets still when nothing changed,
 * a group is split at the VM's prev_budget: the part the VM already held goes first, then
 * higher prev_budget, then lower VM index. Running again with prev_budget = the last output
 * therefore hands every VM exactly the tied pages it got before: a fixed point in one step.
 *
 * Pages worth 0 (cold) are not lent by benefit. What the pool still holds goes first back to
 * the VMs that hold DRAM now, up to what each holds (held_pages): DRAM no VM can use with
 * benefit stays where it is, because taking it back costs a demotion (and, later, a promotion
 * back) and buys nothing. A budget falls below what its VM holds only when pages worth more
 * elsewhere want the room. The rest is then spread by weight up to each max. Both steps are
 * water-filling by weight (VMs whose room is under their share are filled, the rest split
 * what is left in proportion, rounding down, one leftover page each from the lowest index),
 * so DRAM does not sit idle while a VM could hold more of its pages there.
 */
#include <hmmv/balance.h>
#include <hmmv/error.h>
#include <stdlib.h>

/* weight (32 bits) * benefit (64 bits) needs 96 bits: compare exactly, never saturate. */
#ifndef HEADROOM_DIVISOR
#define HEADROOM_DIVISOR 1000000
#endif
__extension__ typedef unsigned __int128 BalanceWide;

typedef struct {
  BalanceWide value;        /* weight * benefit of every page in the group */
  guint64 prev_budget;
  guint64 pages;
  guint vm;
  guint key;
  gboolean held;            /* positions below the VM's prev_budget */
} LendGroup;

typedef struct {
  guint64 min;              /* min_pages, capped to nr_pages */
  guint64 max;              /* effective max: max_pages or nr_pages, never above nr_pages */
  guint64 budget;
} VmSpan;

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
static gboolean
take_mins(HmmvBalanceVm *vms, guint nr_vms, guint64 pool_pages, VmSpan *spans, guint64 *left,
          GError **error)
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

static void
emit(GArray *groups, const HmmvBalanceVm *vm, guint index, guint key, BalanceWide value,
     guint64 start, guint64 end)
{
  /* Split at prev_budget: [start, split) was held last interval. */
  guint64 split = CLAMP(vm->prev_budget, start, end);
  LendGroup group = {
    .value = value, .prev_budget = vm->prev_budget, .vm = index, .key = key,
  };

  if (split > start) {
    group.pages = split - start;
    group.held = TRUE;
    g_array_append_val(groups, group);
  }
  if (end > split) {
    group.pages = end - split;
    group.held = FALSE;
    g_array_append_val(groups, group);
  }
}

/* The lendable groups of one VM: positions [span->min, span->max) of benefit > 0. */
static void
vm_groups(const HmmvBalanceVm *vm, guint index, const VmSpan *span, GArray *groups)
{
  guint64 pos = 0;
  guint64 benefit = G_MAXUINT64;

  if (vm->hist == NULL)
    return;               /* nothing known yet: the VM gets its min and a spread share */
  for (guint key = HMMV_NR_KEYS; key-- > 0 && pos < span->max;) {
    guint64 count = vm->hist->count[key];
    guint64 start = pos;

    /* Histograms come from another module: clip at the VM's size and make the benefit
     * monotone, so "a VM's budget is its hottest pages" holds even for a bad table. */
    pos = count > span->max - pos ? span->max : pos + count;
    benefit = MIN(benefit, hmmv_temperature_benefit(key));
    if (benefit == 0)
      break;
    if (pos > span->min)
      emit(groups, vm, index, key, (BalanceWide)vm->weight * benefit, MAX(start, span->min),
           pos);
  }
}

static int
compare_groups(const void *pa, const void *pb)
{
  const LendGroup *a = pa, *b = pb;

  if (a->value != b->value)
    return a->value > b->value ? -1 : 1;
  if (a->held != b->held)
    return a->held ? -1 : 1;
  if (a->prev_budget != b->prev_budget)
    return a->prev_budget > b->prev_budget ? -1 : 1;
  if (a->vm != b->vm)
    return a->vm < b->vm ? -1 : 1;
  return (a->key < b->key) - (a->key > b->key);
}

static guint64
lend_by_benefit(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, guint64 left)
{
  g_autoptr(GArray) groups = g_array_new(FALSE, FALSE, sizeof(LendGroup));

  for (guint i = 0; i < nr_vms; i++)
    vm_groups(&vms[i], i, &spans[i], groups);
  if (groups->len > 1)
    qsort(groups->data, groups->len, sizeof(LendGroup), compare_groups);
  for (guint g = 0; g < groups->len && left > 0; g++) {
    const LendGroup *group = &g_array_index(groups, LendGroup, g);
    guint64 give = MIN(group->pages, left);

    spans[group->vm].budget += give;
    left -= give;
  }
  return left;
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

/* Every active VM has room above its share: floor shares, then one page each by index. */
static void
split_by_weight(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, const gboolean *active,
                guint64 left)
{
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
      given += share;
    }
  }
  /* Fewer leftover pages than active VMs, and each has room for one more. */
  for (guint i = 0; i < nr_vms && given < left; i++) {
    if (active[i]) {
      spans[i].budget++;
      given++;
    }
  }
}

/* Water-fills left into the VMs by weight, none above caps[i]; returns what is left. */
static guint64
spread_by_weight(const HmmvBalanceVm *vms, guint nr_vms, VmSpan *spans, const guint64 *caps,
                 guint64 left)
{
  g_autofree gboolean *active = g_new0(gboolean, nr_vms);
  guint64 room = 0;

  for (guint i = 0; i < nr_vms; i++) {
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
    split_by_weight(vms, nr_vms, spans, active, left);
  return 0;
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
  left = spread_by_weight(vms, nr_vms, spans, caps, left - headroom) + headroom;
  for (guint i = 0; i < nr_vms; i++)
    caps[i] = spans[i].max;
  spread_by_weight(vms, nr_vms, spans, caps, left);
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
  if (!take_mins(vms, nr_vms, pool_pages, spans, &left, error))
    return FALSE;
  left = lend_by_benefit(vms, nr_vms, spans, left);
  spread_rest(vms, nr_vms, spans, headroom_pages, left);
  for (guint i = 0; i < nr_vms; i++)
    vms[i].budget = spans[i].budget;
  return TRUE;
}
