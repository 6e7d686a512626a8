/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Huge units (issue 7, item 3): the VM's units, their mean keys, the planner deciding them
 * whole, and the core with the sim mover keeping accounting and the cap in real pages. */
#include "hmmv-test.h"
#include "plan-private.h"
#include "vm-private.h"

#include <string.h>

#define DRAM_NODE 0
#define SLOW_NODE 1

/* hugetlbfs regions give fixed units of their page size; 4 KiB regions give one block per
 * whole 2 MiB of host address space, a unit only once it is a THP. */
START_TEST(test_units_layout)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("t");
  const guint64 mib = 1u << 20;
  const HmmvUnit *unit;
  guint64 nr, block;
  HmmvUnit *units;

  /* 8 MiB of anonymous RAM at a host address 1 MiB past a 2 MiB boundary: whole blocks at
   * +1 MiB, +3 MiB, +5 MiB, and the first and last MiB in blocks of their own (256 pages:
   * the kernel's THP there spans memory outside the range) */
  ck_assert(hmmv_vm_add_region(vm, "low", 0, 0x40100000, 8 * mib, 4096, NULL));
  /* 6 MiB of hugetlbfs (2 MiB pages) */
  ck_assert(hmmv_vm_add_region(vm, "huge", 16 * mib, 0x80000000, 6 * mib, 2 * mib, NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  ck_assert_uint_eq(hmmv_vm_get_nr_thp_blocks(vm), 5);
  ck_assert_uint_eq(hmmv_vm_thp_block_first_page(vm, 0, &nr), 0);
  ck_assert_uint_eq(nr, 256);
  ck_assert_uint_eq(hmmv_vm_thp_block_first_page(vm, 1, &nr), 256);
  ck_assert_uint_eq(nr, 512);
  ck_assert_uint_eq(hmmv_vm_thp_block_first_page(vm, 4, &nr), 256 + 1536);
  ck_assert_uint_eq(nr, 256);
  ck_assert_uint_eq(hmmv_vm_thp_block_first_page(vm, 5, NULL), G_MAXUINT64);
  ck_assert(hmmv_vm_page_thp_block(vm, 255, &block));
  ck_assert_uint_eq(block, 0);
  ck_assert(hmmv_vm_page_thp_block(vm, 256 + 600, &block));
  ck_assert_uint_eq(block, 2);
  ck_assert(!hmmv_vm_page_thp_block(vm, 2048 + 5, &block));   /* hugetlbfs */

  units = hmmv_vm_get_units(vm, &nr);
  ck_assert_uint_eq(nr, 3);                  /* the three hugetlbfs pages */
  ck_assert_uint_eq(units[0].first_page, 2048);
  ck_assert_uint_eq(units[0].nr_pages, 512);
  ck_assert(!units[0].thp);
  ck_assert_ptr_null(hmmv_vm_unit_of(vm, 300));
  ck_assert_uint_eq(hmmv_vm_unit_pages(vm, 300), 1);

  ck_assert(hmmv_vm_set_thp(vm, 2, TRUE));
  ck_assert(!hmmv_vm_set_thp(vm, 2, TRUE));  /* no change */
  unit = hmmv_vm_unit_of(vm, 800);
  ck_assert_ptr_nonnull(unit);
  ck_assert_uint_eq(unit->first_page, 768);
  ck_assert_uint_eq(unit->nr_pages, 512);
  ck_assert(unit->thp);
  ck_assert_uint_eq(hmmv_vm_unit_pages(vm, 2048 + 700), 512);
  {
    guint64 thp, hugetlb;

    hmmv_vm_get_huge_pages(vm, &thp, &hugetlb);
    ck_assert_uint_eq(thp, 512);
    ck_assert_uint_eq(hugetlb, 1536);
  }
  ck_assert(hmmv_vm_set_thp(vm, 2, FALSE));  /* split by the kernel */
  ck_assert_ptr_null(hmmv_vm_unit_of(vm, 800));
}
END_TEST

/* pc's RAM: below 640 KiB and from 1 MiB are two ranges of one RAMBlock, so the first 2 MiB
 * huge page holds 160 + 256 pages of the VM: one unit (a move of either part moves both). */
START_TEST(test_units_across_ranges)
{
  const guint64 kib = 1024, mib = 1u << 20;

  for (guint hugetlb = 0; hugetlb <= 1; hugetlb++) {
    g_autoptr(HmmvVm) vm = hmmv_vm_new("pc");
    guint64 size = hugetlb ? 2 * mib : 4096;
    const HmmvUnit *unit;

    ck_assert(hmmv_vm_add_region(vm, "pc.ram", 0, 0x7f0000000000, 640 * kib, size, NULL));
    ck_assert(hmmv_vm_add_region(vm, "pc.ram", mib, 0x7f0000000000 + mib, 7 * mib, size, NULL));
    ck_assert(hmmv_vm_finalize_layout(vm, NULL));
    if (!hugetlb) {
      ck_assert_uint_eq(hmmv_vm_get_nr_thp_blocks(vm), 4);
      ck_assert(hmmv_vm_set_thp(vm, 0, TRUE));
    }
    unit = hmmv_vm_unit_of(vm, 200);             /* page 200: 1 MiB + 160 KiB */
    ck_assert_ptr_nonnull(unit);
    ck_assert_uint_eq(unit->first_page, 0);
    ck_assert_uint_eq(unit->nr_pages, 160 + 256);
    ck_assert_ptr_eq(hmmv_vm_unit_of(vm, 3), unit);
  }
}
END_TEST

/* A unit's key is the mean of its pages' keys, and the histogram counts its pages there. */
START_TEST(test_mean_key)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 1024 + 8);
  HmmvHistogram hist;
  guint64 nr;
  HmmvUnit *units;

  ck_assert(hmmv_vm_set_thp(vm, 0, TRUE));
  /* 64 pages at 200, 448 at 0: mean 25; block 1 stays 4 KiB pages, key 40 each */
  for (guint p = 0; p < 64; p++)
    vm->temp[p * 8] = 200;
  for (guint p = 512; p < 1024; p++)
    vm->temp[p] = 40;
  hmmv_temperature_histogram(vm, &hist);
  ck_assert_uint_eq(hist.count[200], 64);
  hmmv_units_aggregate(vm, &hist);
  units = hmmv_vm_get_units(vm, &nr);
  ck_assert_uint_eq(nr, 1);
  ck_assert_uint_eq(units[0].key, 25);
  ck_assert_uint_eq(hmmv_units_mean_key(vm, 0, 512), 25);
  ck_assert_uint_eq(hist.count[200], 0);
  ck_assert_uint_eq(hist.count[25], 512);
  ck_assert_uint_eq(hist.count[40], 512);
  ck_assert_uint_eq(hist.count[0], 8);       /* the 8 pages past the block */
  /* the pages keep their own keys */
  ck_assert_uint_eq(vm->temp[8], 200);
}
END_TEST

/* The decision histogram against a brute-force one (each page at its unit's mean key, or at
 * its own outside units), with few units (their pages taken out of hist) and with most pages
 * in units (the pages outside counted afresh), on random keys. */
START_TEST(test_aggregate_matches_reference)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(11);
  static const guint thp_percent[] = { 0, 10, 45, 55, 90, 100 };

  for (guint t = 0; t < G_N_ELEMENTS(thp_percent); t++) {
    g_autoptr(HmmvVm) vm = hmmv_vm_new("t");
    HmmvHistogram hist, ref;
    HmmvUnit *units;
    guint64 nr_pages, nr_units;

    /* a 5-page region first, so blocks and units are not 8-page aligned */
    ck_assert(hmmv_vm_add_region(vm, "a", 0, 0x7f0000400000u, 5 * 4096, 4096, NULL));
    ck_assert(hmmv_vm_add_region(vm, "b", 1u << 30, 0x7f0000000000u, 40u << 20, 4096, NULL));
    ck_assert(hmmv_vm_finalize_layout(vm, NULL));
    nr_pages = hmmv_vm_get_nr_pages(vm);
    for (guint64 b = 0; b < hmmv_vm_get_nr_thp_blocks(vm); b++)
      hmmv_vm_set_thp(vm, b, (guint)g_rand_int_range(rand, 0, 100) < thp_percent[t]);
    /* 90%: 4 KiB pages after the last unit too */
    if (thp_percent[t] == 90)
      hmmv_vm_set_thp(vm, hmmv_vm_get_nr_thp_blocks(vm) - 1, FALSE);
    for (guint64 p = 0; p < nr_pages; p++)
      vm->temp[p] = g_rand_boolean(rand) ? 0 : (guint8)g_rand_int_range(rand, 0, 256);
    /* whole cold words and a cold unit too */
    memset(vm->temp + 600, 0, 1200);
    hmmv_temperature_histogram(vm, &hist);
    hmmv_units_aggregate(vm, &hist);
    units = hmmv_vm_get_units(vm, &nr_units);
    memset(&ref, 0, sizeof(ref));
    for (guint64 p = 0, u = 0; p < nr_pages; p++) {
      guint64 sum = 0;

      if (u < nr_units && p == units[u].first_page) {
        for (guint64 q = p; q < p + units[u].nr_pages; q++)
          sum += vm->temp[q];
        ck_assert_uint_eq(units[u].key, (sum + units[u].nr_pages / 2) / units[u].nr_pages);
        ref.count[units[u].key] += units[u].nr_pages;
        p += units[u].nr_pages - 1;
        u++;
        continue;
      }
      ref.count[vm->temp[p]]++;
    }
    for (guint k = 0; k < HMMV_NR_KEYS; k++)
      ck_assert_uint_eq(hist.count[k], ref.count[k]);
  }
}
END_TEST

/* After temperature updates, the aggregate skips the 64-page blocks the update left cold
 * (vm->warm) without reading them: sparse accesses over a VM of units not 64-page aligned,
 * checked against the brute-force histogram and keys after every update, on both paths. */
START_TEST(test_aggregate_after_updates)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(5);
  HmmvParams params;
  HmmvTempTables tables;

  hmmv_params_init(&params);
  hmmv_temp_tables_init(&tables, &params);
  for (guint thp_percent = 30; thp_percent <= 100; thp_percent += 70) {
    g_autoptr(HmmvVm) vm = hmmv_vm_new("t");
    g_autoptr(HmmvAccess) acc = NULL;
    guint64 nr_pages;

    ck_assert(hmmv_vm_add_region(vm, "a", 0, 0x7f0000400000u, 13 * 4096, 4096, NULL));
    ck_assert(hmmv_vm_add_region(vm, "b", 1u << 30, 0x7f0000000000u, 24u << 20, 4096, NULL));
    ck_assert(hmmv_vm_finalize_layout(vm, NULL));
    nr_pages = hmmv_vm_get_nr_pages(vm);
    acc = hmmv_access_new(nr_pages, NULL);
    for (guint64 b = 0; b < hmmv_vm_get_nr_thp_blocks(vm); b++)
      hmmv_vm_set_thp(vm, b, (guint)g_rand_int_range(rand, 0, 100) < thp_percent);
    for (guint interval = 0; interval < 60; interval++) {
      HmmvHistogram hist, ref;
      HmmvUnit *units;
      guint64 nr_units;

      hmmv_access_clear(acc);
      acc->intervals = 1;
      for (guint i = 0; interval % 20 < 3 && i < 200; i++)
        hmmv_access_mark_write(acc, (guint64)g_rand_int_range(rand, 0, (gint32)nr_pages / 4));
      hmmv_temperature_update(vm, &tables, acc, &hist);
      hmmv_units_aggregate(vm, &hist);
      units = hmmv_vm_get_units(vm, &nr_units);
      memset(&ref, 0, sizeof(ref));
      for (guint64 p = 0, u = 0; p < nr_pages; p++) {
        guint64 sum = 0;

        if (u < nr_units && p == units[u].first_page) {
          for (guint64 q = p; q < p + units[u].nr_pages; q++)
            sum += vm->temp[q];
          ck_assert_uint_eq(units[u].key, (sum + units[u].nr_pages / 2) / units[u].nr_pages);
          ref.count[units[u].key] += units[u].nr_pages;
          p += units[u].nr_pages - 1;
          u++;
          continue;
        }
        ref.count[vm->temp[p]]++;
      }
      ck_assert_mem_eq(hist.count, ref.count, sizeof(ref.count));
    }
  }
}
END_TEST

static void
plan_of(HmmvVm *vm, guint64 budget, guint64 cap, HmmvPlan *plan)
{
  HmmvHistogram hist;
  HmmvHotCut cut;
  HmmvParams params;

  hmmv_params_init(&params);
  params.move_cost_ns = 0;     /* no payback gate: these cases are about units */
  hmmv_temperature_histogram(vm, &hist);
  hmmv_units_aggregate(vm, &hist);
  hmmv_classify(&hist, budget, params.promote_min_key, &cut);
  hmmv_plan_build(vm, &cut, budget, cap, &params, plan);
}

/* Hot THPs on the slow tier: one entry per unit, counted as 512 pages against the cap and
 * the room. Before, the planner emitted 4 KiB pages: 600 entries for a cap of 600 pages,
 * each of which moves a whole THP (here 2 THPs = 1024 pages moved for a cap of 600). */
START_TEST(test_plan_whole_units_under_cap)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 4096);
  HmmvPlan plan;

  hmmv_plan_init(&plan);
  for (guint64 p = 0; p < 4096; p++)
    hmmv_vm_set_page_node(vm, p, SLOW_NODE, HMMV_TIER_SLOW);
  for (guint b = 0; b < 8; b++)
    ck_assert(hmmv_vm_set_thp(vm, b, TRUE));
  memset(vm->temp + 1024, 200, 1024);         /* THPs 2 and 3 hot */
  plan_of(vm, 2048, 600, &plan);
  ck_assert_uint_eq(plan.promote->len, 1);
  ck_assert_uint_eq(g_array_index(plan.promote, guint64, 0), 1024);
  ck_assert_uint_eq(plan.promote_pages, 512);
  ck_assert_uint_eq(plan.demote_pages, 0);
  ck_assert_uint_le(plan.promote_pages + plan.demote_pages, 600);
  /* with room for both under the cap, both go */
  plan_of(vm, 2048, 1024, &plan);
  ck_assert_uint_eq(plan.promote->len, 2);
  ck_assert_uint_eq(plan.promote_pages, 1024);
  /* a budget of 700 pages has room for one THP, not two */
  plan_of(vm, 700, 4096, &plan);
  ck_assert_uint_eq(plan.promote_pages, 512);
  hmmv_plan_clear(&plan);
}
END_TEST

/* The mixed-THP rule (units.h): kept whole, placed by the mean of its pages' keys. THP A has
 * 64 very hot pages (key 200) and 448 cold ones: mean 25. THP B is evenly warm: key 40. With
 * room for one, B is promoted and A stays whole on the slow tier. Before, the planner
 * promoted A's 64 hot pages one by one (and each dragged all of A along) plus 448 of B's. */
START_TEST(test_plan_mixed_thp_kept_whole_by_mean)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 2048);
  HmmvPlan plan;

  hmmv_plan_init(&plan);
  for (guint64 p = 0; p < 2048; p++)
    hmmv_vm_set_page_node(vm, p, SLOW_NODE, HMMV_TIER_SLOW);
  for (guint b = 0; b < 4; b++)
    ck_assert(hmmv_vm_set_thp(vm, b, TRUE));
  for (guint p = 0; p < 64; p++)
    vm->temp[p * 8] = 200;                    /* A: pages 0..511 */
  memset(vm->temp + 512, 40, 512);            /* B: pages 512..1023 */
  plan_of(vm, 512, G_MAXUINT64, &plan);
  ck_assert_uint_eq(plan.promote->len, 1);
  ck_assert_uint_eq(g_array_index(plan.promote, guint64, 0), 512);
  ck_assert_uint_eq(plan.promote_pages, 512);

  /* On DRAM and over budget: the cold mixed THP A (mean 25) is demoted whole, as one entry,
   * before B (40); its hot pages go with it, and the plan says so (512 pages). */
  for (guint64 p = 0; p < 1024; p++)
    hmmv_vm_set_page_node(vm, p, DRAM_NODE, HMMV_TIER_DRAM);
  plan_of(vm, 600, G_MAXUINT64, &plan);
  ck_assert_uint_eq(plan.demote->len, 1);
  ck_assert_uint_eq(g_array_index(plan.demote, guint64, 0), 0);
  ck_assert_uint_eq(plan.demote_pages, 512);
  hmmv_plan_clear(&plan);
}
END_TEST

/* The planner ages the cooldown of every page of every unit by one (8 place bytes a word),
 * whatever the unit's alignment, and changes nothing else in a place byte: units start at
 * page 3 here (a 3-page region first, itself a unit), so every word at a unit's edge
 * straddles two units. */
START_TEST(test_plan_ages_unit_cooldowns)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("t");
  g_autoptr(GRand) rand = g_rand_new_with_seed(7);
  const guint64 mib = 1u << 20;
  g_autofree guint8 *before = NULL;
  guint64 nr_pages, nr_units;
  HmmvPlan plan;

  ck_assert(hmmv_vm_add_region(vm, "a", 0, 0x7f0000000000u + 64 * mib, 3 * 4096, 4096, NULL));
  ck_assert(hmmv_vm_add_region(vm, "b", 16 * mib, 0x7f0000000000u, 8 * mib, 4096, NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  nr_pages = hmmv_vm_get_nr_pages(vm);
  for (guint64 b = 0; b < hmmv_vm_get_nr_thp_blocks(vm); b++)
    ck_assert(hmmv_vm_set_thp(vm, b, TRUE));
  hmmv_vm_get_units(vm, &nr_units);
  ck_assert_uint_eq(nr_units, 5);           /* region a is a 3-page unit of its own */
  ck_assert_uint_eq(hmmv_vm_get_units(vm, &nr_units)[1].first_page, 3);
  hmmv_plan_init(&plan);
  for (guint round = 0; round < 4; round++) {
    for (guint64 p = 0; p < nr_pages; p++) {
      gboolean dram = g_rand_boolean(rand);

      hmmv_vm_set_page_node(vm, p, dram ? DRAM_NODE : SLOW_NODE,
                            dram ? HMMV_TIER_DRAM : HMMV_TIER_SLOW);
      /* round 0: no cooldown anywhere (the words are skipped); round 1: a few pages at 1
       * (blocks of 64 with nothing but a 1 here and there); then a mix of 0..3 */
      hmmv_place_set_cooldown(vm, p,
                              round == 0 ? 0
                              : round == 1 ? g_rand_int_range(rand, 0, 100) == 0
                                           : (guint)g_rand_int_range(rand, 0, 4));
      vm->temp[p] = (guint8)g_rand_int_range(rand, 0, 256);
    }
    g_free(before);
    before = g_memdup2(vm->place, nr_pages);
    plan_of(vm, nr_pages / 2, G_MAXUINT64, &plan);
    for (guint64 p = 0; p < nr_pages; p++) {
      guint cooldown = HMMV_PLACE_COOLDOWN(before[p]);

      ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[p]), cooldown > 0 ? cooldown - 1 : 0);
      ck_assert_uint_eq(vm->place[p] & 0x3f, before[p] & 0x3f);
    }
  }
  hmmv_plan_clear(&plan);
}
END_TEST

/* No page cooling down, nothing to emit: the planner does not read the units' place bytes to
 * age cooldowns (at fleet scale, 2 TiB in 2 MiB units, that was every place byte, 512 MB an
 * interval, read to find none). A cooldown set by the core makes the next builds age every
 * unit again until it is 0. Old code (aging every build): 2,048 pages read in each. */
START_TEST(test_plan_skips_aging_without_cooldowns)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 2048);
  HmmvPlan plan;

  hmmv_plan_init(&plan);
  for (guint64 p = 0; p < 2048; p++)
    hmmv_vm_set_page_node(vm, p, p < 1024 ? DRAM_NODE : SLOW_NODE,
                          p < 1024 ? HMMV_TIER_DRAM : HMMV_TIER_SLOW);
  for (guint b = 0; b < 4; b++)
    ck_assert(hmmv_vm_set_thp(vm, b, TRUE));
  memset(vm->temp, 40, 1024);                 /* the DRAM half warm, the slow half cold */
  plan_of(vm, 1024, G_MAXUINT64, &plan);
  ck_assert_uint_eq(plan.promote->len + plan.demote->len, 0);
  ck_assert_uint_eq(plan.aged_unit_pages, 0);

  /* a move's cooldown of 2 (unit 2, slow): two builds age every unit, then none */
  hmmv_place_set_cooldown(vm, 1100, 2);
  for (guint build = 0; build < 3; build++) {
    plan_of(vm, 1024, G_MAXUINT64, &plan);
    ck_assert_uint_eq(plan.aged_unit_pages, build < 2 ? 2048 : 0);
    ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[1100]), build < 1 ? 1 : 0);
  }

  /* a unit to promote (room for it), still nothing cooling: emitted, nothing aged */
  memset(vm->temp + 1536, 200, 512);
  plan_of(vm, 1536, G_MAXUINT64, &plan);
  ck_assert_uint_eq(plan.promote->len, 1);
  ck_assert_uint_eq(g_array_index(plan.promote, guint64, 0), 1536);
  ck_assert_uint_eq(plan.aged_unit_pages, 0);

  /* hmmv_vm_get_place_mut's caller may write any cooldown: the next builds age again */
  hmmv_vm_get_place_mut(vm)[5] |= 1u << HMMV_PLACE_COOLDOWN_SHIFT;
  plan_of(vm, 1536, G_MAXUINT64, &plan);
  ck_assert_uint_eq(plan.aged_unit_pages, 2048);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[5]), 0);
  hmmv_plan_clear(&plan);
}
END_TEST

/* The hot-set change the planner reports (hot_entered, hot_left; issue 7, item 11) and the
 * bitmap it keeps it in (vm->hot), against a brute-force reference of classify.h's hot test:
 * in page order, a page (a huge unit: all its pages at once) is hot when its key is above the
 * cut, or at the cut while the pages seen there fit in take_at_cut. Units unaligned to the
 * bitmap's words (a 13-page region first) and aligned ones, THPs that come and go, budgets
 * that swing: words partly and wholly changed, and words that stay. */
START_TEST(test_plan_hot_set_changes)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed(11);
  HmmvParams params;
  HmmvTempTables tables;

  hmmv_params_init(&params);
  params.move_cost_ns = 0;
  hmmv_temp_tables_init(&tables, &params);
  for (guint layout = 0; layout < 2; layout++) {
    g_autoptr(HmmvVm) vm = hmmv_vm_new("t");
    g_autoptr(HmmvAccess) acc = NULL;
    g_autofree guint8 *ref = NULL;
    guint64 nr_pages, changed_words = 0;
    HmmvPlan plan;

    if (layout == 0)
      ck_assert(hmmv_vm_add_region(vm, "a", 0, 0x7f0000400000u, 13 * 4096, 4096, NULL));
    ck_assert(hmmv_vm_add_region(vm, "b", 1u << 30, 0x7f0000000000u, 24u << 20, 4096, NULL));
    ck_assert(hmmv_vm_finalize_layout(vm, NULL));
    nr_pages = hmmv_vm_get_nr_pages(vm);
    acc = hmmv_access_new(nr_pages, NULL);
    ref = g_new0(guint8, nr_pages);
    hmmv_plan_init(&plan);
    for (guint64 p = 0; p < nr_pages; p++)
      hmmv_vm_set_page_node(vm, p, p % 3 ? SLOW_NODE : DRAM_NODE,
                            p % 3 ? HMMV_TIER_SLOW : HMMV_TIER_DRAM);
    for (guint interval = 0; interval < 80; interval++) {
      HmmvHistogram hist;
      HmmvHotCut cut;
      HmmvUnit *units;
      guint64 nr_units, budget, seen = 0, entered = 0, left = 0, wrong = 0;
      guint64 base = (guint64)interval * nr_pages / 40 % nr_pages;

      if (interval % 10 == 5)
        for (guint64 b = 0; b < hmmv_vm_get_nr_thp_blocks(vm); b++)
          hmmv_vm_set_thp(vm, b, g_rand_boolean(rand));
      hmmv_access_clear(acc);
      acc->intervals = 1;
      for (guint i = 0; i < 600; i++)
        hmmv_access_mark_write(acc, (base + (guint64)g_rand_int_range(rand, 0, 1500)) % nr_pages);
      hmmv_temperature_update(vm, &tables, acc, &hist);
      hmmv_units_aggregate(vm, &hist);
      budget = (guint64)g_rand_int_range(rand, 0, (gint32)nr_pages);
      hmmv_classify(&hist, budget, params.promote_min_key, &cut);
      hmmv_plan_build(vm, &cut, budget, 4096, &params, &plan);

      units = hmmv_vm_get_units(vm, &nr_units);
      for (guint64 p = 0, u = 0; p < nr_pages;) {
        gboolean unit = u < nr_units && units[u].first_page == p;
        guint64 n = unit ? units[u].nr_pages : 1;
        guint key = unit ? units[u].key : vm->temp[p];
        gboolean at_cut = key == cut.cut_key;
        guint8 hot = key > cut.cut_key || (at_cut && seen + n <= cut.take_at_cut);

        seen += at_cut ? n : 0;
        for (guint64 q = p; q < p + n; q++) {
          entered += hot && !ref[q];
          left += !hot && ref[q];
          ref[q] = hot;
        }
        p += n;
        u += unit;
      }
      for (guint64 p = 0; p < nr_pages; p++)
        wrong += ((vm->hot[p >> 6] >> (p & 63)) & 1) != ref[p];
      ck_assert_msg(wrong == 0, "interval %u: %" G_GUINT64_FORMAT " hot bits differ from the "
                    "reference", interval, wrong);
      ck_assert_uint_eq(plan.hot_entered, entered);
      ck_assert_uint_eq(plan.hot_left, left);
      changed_words += entered + left > 0;
    }
    ck_assert_uint_gt(changed_words, 60);    /* the hot set moved in most intervals */
    hmmv_plan_clear(&plan);
  }
}
END_TEST

/* A forced demotion of fewer pages than a unit still demotes the unit (whole) when the cap
 * allows it; otherwise the VM would stay over budget for good when its cold DRAM is all
 * THPs. Promotions never overshoot. */
START_TEST(test_plan_forced_demotion_rounds_up)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 2048);
  HmmvPlan plan;

  hmmv_plan_init(&plan);
  for (guint64 p = 0; p < 2048; p++)
    hmmv_vm_set_page_node(vm, p, DRAM_NODE, HMMV_TIER_DRAM);
  for (guint b = 0; b < 4; b++)
    ck_assert(hmmv_vm_set_thp(vm, b, TRUE));
  memset(vm->temp + 512, 100, 1536);          /* THP 0 cold */
  plan_of(vm, 2048 - 100, 1000, &plan);
  ck_assert_uint_eq(plan.demote->len, 1);
  ck_assert_uint_eq(g_array_index(plan.demote, guint64, 0), 0);
  ck_assert_uint_eq(plan.demote_pages, 512);
  /* a cap below the unit's size: nothing, and the shortfall is reported */
  plan_of(vm, 2048 - 100, 300, &plan);
  ck_assert_uint_eq(plan.demote->len, 0);
  ck_assert_uint_eq(plan.deferred_unit, 100);
  hmmv_plan_clear(&plan);
}
END_TEST

/* The core on a modelled host whose VM is all THPs (the sim moves a THP whole, as the
 * kernel does) under a cap of 976 pages an interval: the VM's record of every page equals
 * the host's, its DRAM count equals what it really holds, the pages really migrated per
 * interval never exceed the cap, and the promoted/demoted counts are the pages that really
 * moved. Before, demoting one cold 4 KiB page dragged its THP's 511 neighbours to the slow
 * tier while the record still said DRAM, and the host migrated up to 512x the pages counted. */
static void
check_core_units(gboolean hugetlb)
{
  enum { DRAM = 2048, NR = 8192, CAP = 976 };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier((guint64)DRAM * HMMV_PAGE_SIZE,
                                                             (guint64)NR * HMMV_PAGE_SIZE);
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autoptr(HmmvCore) core = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  g_autofree guint64 *pages = g_new(guint64, NR);
  g_autofree int *recorded = g_new(int, NR);
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  HmmvVm *vm = hmmv_vm_new("huge");
  HmmvParams params;
  guint64 charged = 0, promoted = 0, demoted = 0;

  hmmv_params_init(&params);
  params.migrate_mbps = 4;                    /* 4e6 B/s x 1 s / 4096 = 976 pages */
  ck_assert_uint_eq(hmmv_params_cap_pages(&params), CAP);
  ck_assert(hmmv_vm_add_region(vm, "ram", 0, 0, (guint64)NR * HMMV_PAGE_SIZE,
                               hugetlb ? 2u << 20 : HMMV_PAGE_SIZE, NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  hmmv_sim_mover_set_ns_per_page(mover, 1);   /* charged_ns counts pages migrated */
  if (!hugetlb)
    ck_assert(hmmv_sim_mover_set_thp(mover, vm, 0, NR, NULL));
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_core_add_vm(core, vm, tracker, &error));
  hmmv_interval_report_init(&report);

  for (guint i = 0; i < 40; i++) {
    const HmmvVmReport *rep;
    guint64 now;

    /* interval 0 touches everything (DRAM fills with the first 4 units); then the hot set
     * is units 10..11, plus one page in 16 of units 12..13 (mixed, mean key low) */
    for (guint64 p = 0; p < NR; p++)
      if (i == 0 || (p >= 5120 && p < 6144) || (p >= 6144 && p < 7168 && p % 16 == 0))
        hmmv_fake_tracker_queue_write(tracker, p);
    ck_assert(hmmv_core_run_interval(core, &report, &error));
    rep = &g_array_index(report.vms, HmmvVmReport, 0);
    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
    now = hmmv_sim_mover_get_charged_ns(mover);
    ck_assert_msg(now - charged <= CAP, "interval %u: %" G_GUINT64_FORMAT " pages migrated, "
                  "cap %d", i, now - charged, CAP);
    ck_assert_uint_le(rep->moved_max_pages, CAP);
    ck_assert_uint_eq(rep->promoted + rep->demoted, now - charged);
    charged = now;
    promoted += rep->promoted;
    demoted += rep->demoted;
  }
  /* the hot units made it to DRAM, whole */
  for (guint64 p = 5120; p < 6144; p++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, p), DRAM_NODE);
  ck_assert_uint_gt(promoted, 0);
  ck_assert_uint_gt(demoted, 0);
  ck_assert_uint_eq(promoted + demoted, charged);
  ck_assert_uint_eq(hmmv_vm_get_move_stats(vm)->promoted, promoted);
  /* the record is the host's, page for page */
  for (guint64 p = 0; p < NR; p++) {
    pages[p] = p;
    recorded[p] = hmmv_vm_get_page_node(vm, p);
  }
  ck_assert(hmmv_mover_query(mover, vm, pages, NR, &error));
  for (guint64 p = 0; p < NR; p++)
    ck_assert_msg(hmmv_vm_get_page_node(vm, p) == recorded[p], "page %" G_GUINT64_FORMAT
                  ": recorded on %d, really on %d", p, recorded[p],
                  hmmv_vm_get_page_node(vm, p));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), hmmv_sim_mover_get_used_pages(mover, 0));
  ck_assert_uint_le(hmmv_vm_get_dram_pages(vm), DRAM);
  {
    const HmmvVmReport *rep = &g_array_index(report.vms, HmmvVmReport, 0);

    ck_assert_uint_eq(rep->thp_pages, hugetlb ? 0 : NR);
    ck_assert_uint_eq(rep->hugetlb_pages, hugetlb ? NR : 0);
  }
  hmmv_core_remove_vm(core, "huge", NULL);
}

START_TEST(test_core_thp_accounting_and_cap)
{
  check_core_units(FALSE);
}
END_TEST

START_TEST(test_core_hugetlb_accounting_and_cap)
{
  check_core_units(TRUE);
}
END_TEST

/* THPs the kernel forms after the VM was added (khugepaged) are learnt from the mover: the
 * rolling refresh finds them, and a move is never planned on a stale unit. */
START_TEST(test_core_learns_new_thps)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_test_topology_two_tier(4096 * HMMV_PAGE_SIZE,
                                                             4096 * HMMV_PAGE_SIZE);
  g_autoptr(HmmvMover) mover = hmmv_sim_mover_new(topo, &error);
  g_autoptr(HmmvCore) core = NULL;
  g_auto(HmmvIntervalReport) report = { 0 };
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  HmmvVm *vm = hmmv_test_vm_new("t", 2048);
  HmmvParams params;
  guint64 thp_pages, hugetlb_pages;

  hmmv_params_init(&params);
  core = hmmv_core_new(topo, mover, &params, 0, &error);
  ck_assert(core != NULL);
  ck_assert(hmmv_core_add_vm(core, vm, tracker, &error));
  hmmv_interval_report_init(&report);
  /* made THPs after the add, faulted in by the first touch */
  ck_assert(hmmv_sim_mover_set_thp(mover, vm, 512, 1024, NULL));
  hmmv_fake_tracker_queue_write(tracker, 600);
  hmmv_fake_tracker_queue_write(tracker, 1100);
  ck_assert(hmmv_core_run_interval(core, &report, &error));
  hmmv_vm_get_huge_pages(vm, &thp_pages, &hugetlb_pages);
  ck_assert_uint_eq(thp_pages, 1024);
  ck_assert_uint_eq(hugetlb_pages, 0);
  /* placement of the whole THPs is known after the first look at the touched pages' units */
  hmmv_core_remove_vm(core, "t", NULL);
}
END_TEST

static Suite *
units_suite(void)
{
  Suite *suite = suite_create("units");
  TCase *tc = tcase_create("units");

  tcase_add_test(tc, test_units_layout);
  tcase_add_test(tc, test_units_across_ranges);
  tcase_add_test(tc, test_mean_key);
  tcase_add_test(tc, test_aggregate_matches_reference);
  tcase_add_test(tc, test_aggregate_after_updates);
  tcase_add_test(tc, test_plan_whole_units_under_cap);
  tcase_add_test(tc, test_plan_mixed_thp_kept_whole_by_mean);
  tcase_add_test(tc, test_plan_forced_demotion_rounds_up);
  tcase_add_test(tc, test_plan_ages_unit_cooldowns);
  tcase_add_test(tc, test_plan_skips_aging_without_cooldowns);
  tcase_add_test(tc, test_plan_hot_set_changes);
  tcase_add_test(tc, test_core_thp_accounting_and_cap);
  tcase_add_test(tc, test_core_hugetlb_accounting_and_cap);
  tcase_add_test(tc, test_core_learns_new_thps);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(units_suite());
}
