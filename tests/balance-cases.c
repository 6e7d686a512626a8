/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "balance-cases.h"

#include <string.h>

const guint test_keys[NR_TEST_KEYS] = { 0x00, 0x01, 0x0f, 0x10, 0x11, 0x35, 0x80, 0x81, 0xff };

guint64
effective_max(const HmmvBalanceVm *vm)
{
  return vm->max_pages != 0 ? MIN(vm->max_pages, vm->nr_pages) : vm->nr_pages;
}

void
case_link(Case *c)
{
  for (guint i = 0; i < c->nr_vms; i++)
    c->vms[i].hist = &c->hist[i];
}

/* A random VM: nr_pages up to max_pages, a histogram over a few keys (sometimes short of
 * nr_pages, as a histogram of a VM still being sized may be), min/max/weight/prev. */
static void
random_vm(GRand *rand, Case *c, guint i, guint max_pages)
{
  HmmvBalanceVm *vm = &c->vms[i];
  guint64 nr = g_rand_int_range(rand, 0, max_pages + 1);
  guint64 placed = 0;
  guint64 histogram_pages = g_rand_int_range(rand, 0, 4) == 0 ? nr / 2 : nr;

  memset(&c->hist[i], 0, sizeof(c->hist[i]));
  while (placed < histogram_pages) {
    guint key = test_keys[g_rand_int_range(rand, 0, G_N_ELEMENTS(test_keys))];
    guint64 count = MIN(histogram_pages - placed, (guint64)g_rand_int_range(rand, 1, 5));

    c->hist[i].count[key] += count;
    placed += count;
  }
  *vm = (HmmvBalanceVm){
    .nr_pages = nr,
    .min_pages = g_rand_int_range(rand, 0, 4) == 0 ? 0 : g_rand_int_range(rand, 0, nr + 2),
    .weight = g_rand_boolean(rand) ? 100 : g_rand_int_range(rand, 1, 301),
    .prev_budget = g_rand_int_range(rand, 0, nr + 1),
    .held_pages = g_rand_int_range(rand, 0, nr + 1),
    .budget = SENTINEL,
  };
  if (g_rand_boolean(rand))
    vm->max_pages = vm->min_pages + g_rand_int_range(rand, 0, nr + 2);
}

void
random_case(GRand *rand, Case *c, guint max_vms, guint max_pages)
{
  guint64 total = 0;

  c->nr_vms = g_rand_int_range(rand, 1, max_vms + 1);
  for (guint i = 0; i < c->nr_vms; i++) {
    random_vm(rand, c, i, max_pages);
    total += MIN(c->vms[i].min_pages, c->vms[i].nr_pages);
  }
  /* At least the mins (errors are tested apart), up to more than every VM can use. */
  c->pool = total + g_rand_int_range(rand, 0, max_vms * max_pages + 2);
  case_link(c);
}

void
balance_ok(Case *c)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_balance(c->vms, c->nr_vms, c->pool, 0, &error), "%s",
                error ? error->message : "");
}

void
check_invariants(const Case *c)
{
  guint64 sum = 0;
  gboolean all_full = TRUE;

  for (guint i = 0; i < c->nr_vms; i++) {
    const HmmvBalanceVm *vm = &c->vms[i];

    ck_assert_uint_ge(vm->budget, MIN(vm->min_pages, vm->nr_pages));
    ck_assert_uint_le(vm->budget, effective_max(vm));
    all_full &= vm->budget == effective_max(vm);
    sum += vm->budget;
  }
  ck_assert_uint_le(sum, c->pool);
  /* DRAM is only left idle when every VM is at its max. */
  ck_assert(sum == c->pool || all_full);
}

void
check_invariants_scaled(const Case *c)
{
  guint64 sum = 0;
  gboolean all_full = TRUE;

  for (guint i = 0; i < c->nr_vms; i++) {
    const HmmvBalanceVm *vm = &c->vms[i];

    ck_assert_uint_ge(vm->budget, vm->min_granted);
    ck_assert_uint_le(vm->budget, effective_max(vm));
    all_full &= vm->budget == effective_max(vm);
    sum += vm->budget;
  }
  ck_assert_uint_le(sum, c->pool);
  ck_assert(sum == c->pool || all_full);
}
