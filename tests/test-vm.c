/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The VM object: layout checks, page <-> gpa <-> hva mapping, per-page state and counters. */
#include "hmmv-test.h"
#include "vm-private.h"

#define KIB(n) ((guint64)(n) << 10)
#define MIB(n) ((guint64)(n) << 20)
#define GIB(n) ((guint64)(n) << 30)

/* Two regions: 1 MiB at gpa 0 (no hva), 2 MiB at 4 GiB backed at hva 0x7f0000000000. */
static HmmvVm *
two_region_vm(void)
{
  g_autoptr(GError) error = NULL;
  HmmvVm *vm = hmmv_vm_new("two");

  ck_assert(hmmv_vm_add_region(vm, "low", 0, 0, MIB(1), HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_vm_add_region(vm, "high", GIB(4), 0x7f0000000000, MIB(2), MIB(2), &error));
  ck_assert_ptr_null(error);
  ck_assert(hmmv_vm_finalize_layout(vm, &error));
  return vm;
}

START_TEST(test_layout)
{
  g_autoptr(HmmvVm) vm = two_region_vm();
  const HmmvRegion *region;
  g_autoptr(GError) error = NULL;

  ck_assert_str_eq(hmmv_vm_get_name(vm), "two");
  ck_assert_uint_eq(hmmv_vm_get_nr_pages(vm), 256 + 512);
  ck_assert_uint_eq(hmmv_vm_get_nr_regions(vm), 2);
  region = hmmv_vm_get_region(vm, 1);
  ck_assert_str_eq(region->name, "high");
  ck_assert_uint_eq(region->first_page, 256);
  ck_assert_uint_eq(region->nr_pages, 512);
  ck_assert_uint_eq(region->backing_page_size, MIB(2));
  /* Finalize again is a no-op; adding after it is refused. */
  ck_assert(hmmv_vm_finalize_layout(vm, &error));
  ck_assert(!hmmv_vm_add_region(vm, "late", GIB(8), 0, MIB(1), HMMV_PAGE_SIZE, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_uint_eq(hmmv_vm_get_nr_pages(vm), 768);
}
END_TEST

START_TEST(test_mapping)
{
  g_autoptr(HmmvVm) vm = two_region_vm();
  guint64 page = 0;

  ck_assert_str_eq(hmmv_vm_region_of_page(vm, 0)->name, "low");
  ck_assert_str_eq(hmmv_vm_region_of_page(vm, 255)->name, "low");
  ck_assert_str_eq(hmmv_vm_region_of_page(vm, 256)->name, "high");
  ck_assert_str_eq(hmmv_vm_region_of_page(vm, 767)->name, "high");
  ck_assert_ptr_null(hmmv_vm_region_of_page(vm, 768));

  ck_assert_uint_eq(hmmv_vm_page_to_gpa(vm, 255), MIB(1) - HMMV_PAGE_SIZE);
  ck_assert_uint_eq(hmmv_vm_page_to_gpa(vm, 256), GIB(4));
  ck_assert_uint_eq(hmmv_vm_page_to_gpa(vm, 767), GIB(4) + MIB(2) - HMMV_PAGE_SIZE);
  ck_assert_uint_eq(hmmv_vm_page_to_gpa(vm, 768), G_MAXUINT64);
  ck_assert_uint_eq(hmmv_vm_page_to_hva(vm, 10), 0);
  ck_assert_uint_eq(hmmv_vm_page_to_hva(vm, 257), 0x7f0000000000 + HMMV_PAGE_SIZE);
  ck_assert_uint_eq(hmmv_vm_page_to_hva(vm, 768), 0);

  for (guint64 p = 0; p < 768; p++) {
    ck_assert(hmmv_vm_gpa_to_page(vm, hmmv_vm_page_to_gpa(vm, p), &page));
    ck_assert_uint_eq(page, p);
    /* Any address inside the page maps to it. */
    ck_assert(hmmv_vm_gpa_to_page(vm, hmmv_vm_page_to_gpa(vm, p) + 4095, &page));
    ck_assert_uint_eq(page, p);
  }
  ck_assert(!hmmv_vm_gpa_to_page(vm, MIB(1), &page));
  ck_assert(!hmmv_vm_gpa_to_page(vm, GIB(4) - 1, &page));
  ck_assert(!hmmv_vm_gpa_to_page(vm, GIB(4) + MIB(2), &page));
  ck_assert(!hmmv_vm_gpa_to_page(vm, G_MAXUINT64, &page));
}
END_TEST

static void
assert_add_fails(HmmvVm *vm, guint64 gpa, guint64 hva, guint64 size, guint64 backing)
{
  g_autoptr(GError) error = NULL;
  guint64 before = hmmv_vm_get_nr_pages(vm);
  guint regions = hmmv_vm_get_nr_regions(vm);

  ck_assert(!hmmv_vm_add_region(vm, "bad", gpa, hva, size, backing, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_uint_eq(hmmv_vm_get_nr_pages(vm), before);
  ck_assert_uint_eq(hmmv_vm_get_nr_regions(vm), regions);
}

START_TEST(test_rejections)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("bad");
  g_autoptr(GError) error = NULL;

  /* Sizes and alignments. */
  assert_add_fails(vm, 0, 0, 0, HMMV_PAGE_SIZE);
  assert_add_fails(vm, 0, 0, KIB(6), HMMV_PAGE_SIZE);
  assert_add_fails(vm, 512, 0, MIB(1), HMMV_PAGE_SIZE);
  assert_add_fails(vm, 0, 0x1000 + 8, MIB(1), HMMV_PAGE_SIZE);
  assert_add_fails(vm, 0, 0, MIB(1), 0);
  assert_add_fails(vm, 0, 0, MIB(1), 2048);
  assert_add_fails(vm, 0, 0, MIB(1), 3 * HMMV_PAGE_SIZE);
  /* Overflow of gpa or hva, and sizes beyond 2^40 pages. */
  assert_add_fails(vm, G_MAXUINT64 - MIB(1) + 1, 0, MIB(2), HMMV_PAGE_SIZE);
  assert_add_fails(vm, G_MAXUINT64 - MIB(1) + 1, 0, MIB(1), HMMV_PAGE_SIZE);
  assert_add_fails(vm, 0, G_MAXUINT64 - MIB(1) + 1, MIB(2), HMMV_PAGE_SIZE);
  assert_add_fails(vm, 0, 0, (G_GUINT64_CONSTANT(1) << 52) + HMMV_PAGE_SIZE, HMMV_PAGE_SIZE);
  assert_add_fails(vm, 0, 0, G_MAXUINT64 & ~G_GUINT64_CONSTANT(4095), HMMV_PAGE_SIZE);

  /* Nothing added yet: finalize refuses an empty VM. */
  ck_assert(!hmmv_vm_finalize_layout(vm, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  g_clear_error(&error);

  /* Overlaps: partial on either side, containment, identical. Touching is fine. */
  ck_assert(hmmv_vm_add_region(vm, "a", MIB(4), 0, MIB(4), HMMV_PAGE_SIZE, &error));
  assert_add_fails(vm, MIB(2), 0, MIB(3), HMMV_PAGE_SIZE);
  assert_add_fails(vm, MIB(7), 0, MIB(2), HMMV_PAGE_SIZE);
  assert_add_fails(vm, MIB(5), 0, KIB(4), HMMV_PAGE_SIZE);
  assert_add_fails(vm, MIB(0), 0, MIB(16), HMMV_PAGE_SIZE);
  assert_add_fails(vm, MIB(4), 0, MIB(4), HMMV_PAGE_SIZE);
  ck_assert(hmmv_vm_add_region(vm, "below", MIB(3), 0, MIB(1), HMMV_PAGE_SIZE, &error));
  ck_assert(hmmv_vm_add_region(vm, "above", MIB(8), 0, MIB(1), HMMV_PAGE_SIZE, &error));
  /* A region at the very top of the address space, ending at 2^64 - 4096. */
  ck_assert(hmmv_vm_add_region(vm, "top", G_MAXUINT64 - MIB(1) + 1 - HMMV_PAGE_SIZE, 0, MIB(1),
                               HMMV_PAGE_SIZE, &error));
  ck_assert_uint_eq(hmmv_vm_get_nr_pages(vm), 4 * 256 + 256 + 256 + 256);
  /* Pages laid out in the order added, whatever the gpa order. */
  ck_assert_str_eq(hmmv_vm_region_of_page(vm, 1024)->name, "below");
  ck_assert_uint_eq(hmmv_vm_page_to_gpa(vm, 1024), MIB(3));
  ck_assert_uint_eq(hmmv_vm_page_to_gpa(vm, 1024 + 3 * 256 - 1), G_MAXUINT64 - 2 * 4096 + 1);
}
END_TEST

/* issue 10: the overlap check was linear per region; 120k ranges in one QMP reply took 21 s.
 * 200k regions in an order that is neither ascending nor descending, then an overlap at
 * each end and in the middle. */
START_TEST(test_many_regions)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("many");
  g_autoptr(GError) error = NULL;
  const guint n = 200000;

  for (guint i = 0; i < n; i++) {
    guint slot = (guint)(((guint64)i * 7919) % n);   /* 7919 is prime, coprime with n */
    g_autofree char *name = g_strdup_printf("r%u", slot);

    ck_assert_msg(hmmv_vm_add_region(vm, name, (guint64)slot * 2 * HMMV_PAGE_SIZE, 0,
                                     HMMV_PAGE_SIZE, HMMV_PAGE_SIZE, &error),
                  "%s", error ? error->message : "");
  }
  ck_assert_uint_eq(hmmv_vm_get_nr_regions(vm), n);
  assert_add_fails(vm, 0, 0, HMMV_PAGE_SIZE, HMMV_PAGE_SIZE);
  assert_add_fails(vm, (guint64)(n - 1) * 2 * HMMV_PAGE_SIZE, 0, MIB(1), HMMV_PAGE_SIZE);
  assert_add_fails(vm, HMMV_PAGE_SIZE, 0, 2 * HMMV_PAGE_SIZE, HMMV_PAGE_SIZE);
  ck_assert(hmmv_vm_add_region(vm, "gap", HMMV_PAGE_SIZE * 1001, 0, HMMV_PAGE_SIZE,
                               HMMV_PAGE_SIZE, &error));
  ck_assert_uint_eq(hmmv_vm_get_nr_regions(vm), n + 1);
  ck_assert(hmmv_vm_finalize_layout(vm, &error));
}
END_TEST

START_TEST(test_page_state)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("s", 13);
  guint64 counts[HMMV_PLACE_MAX_NODE_ID + 1];

  /* Arrays padded to 16: temp 0 everywhere, place "unknown, slow" everywhere. */
  ck_assert_uint_eq(vm->nr_alloc, 16);
  for (guint i = 0; i < 16; i++) {
    ck_assert_uint_eq(vm->temp[i], 0);
    ck_assert_uint_eq(vm->place[i], HMMV_PLACE_UNKNOWN_BYTE);
  }
  ck_assert_ptr_eq(hmmv_vm_get_temp(vm), hmmv_vm_get_temp_mut(vm));
  ck_assert_ptr_eq(hmmv_vm_get_place(vm), hmmv_vm_get_place_mut(vm));
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 0), -1);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 0);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 0);

  hmmv_vm_set_page_node(vm, 0, 0, HMMV_TIER_DRAM);
  hmmv_vm_set_page_node(vm, 1, 0, HMMV_TIER_DRAM);
  hmmv_vm_set_page_node(vm, 2, 3, HMMV_TIER_SLOW);
  hmmv_vm_set_page_node(vm, 12, 30, HMMV_TIER_SLOW);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 2);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 2);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 2), 3);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 12), 30);
  ck_assert(HMMV_PLACE_IS_SLOW(vm->place[2]));
  ck_assert(!HMMV_PLACE_IS_SLOW(vm->place[0]));

  /* Same node again, a tier change, back to unknown, and node ids past slot 30. */
  hmmv_vm_set_page_node(vm, 0, 0, HMMV_TIER_DRAM);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 2);
  hmmv_vm_set_page_node(vm, 1, 3, HMMV_TIER_SLOW);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 1);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 3);
  hmmv_vm_set_page_node(vm, 2, -1, HMMV_TIER_SLOW);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 2);
  ck_assert_uint_eq(vm->place[2], HMMV_PLACE_UNKNOWN_BYTE);
  hmmv_vm_set_page_node(vm, 2, -1, HMMV_TIER_DRAM);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 2);
  hmmv_vm_set_page_node(vm, 12, 31, HMMV_TIER_DRAM);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 12), -1);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 1);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 1);

  /* The cooldown bits survive a node change. */
  vm->place[0] |= 2u << HMMV_PLACE_COOLDOWN_SHIFT;
  hmmv_vm_set_page_node(vm, 0, 1, HMMV_TIER_SLOW);
  ck_assert_uint_eq(HMMV_PLACE_COOLDOWN(vm->place[0]), 2);
  ck_assert_int_eq(hmmv_vm_get_page_node(vm, 0), 1);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 0);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 2);

  hmmv_vm_count_nodes(vm, counts);
  ck_assert_uint_eq(counts[1], 1);
  ck_assert_uint_eq(counts[3], 1);
  ck_assert_uint_eq(counts[0] + counts[2] + counts[30], 0);
  /* Padding untouched. */
  for (guint i = 13; i < 16; i++)
    ck_assert_uint_eq(vm->place[i], HMMV_PLACE_UNKNOWN_BYTE);
}
END_TEST

/* Counters against a recount after many random changes. */
START_TEST(test_counters_random)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("r", 1000);
  g_autoptr(GRand) rand = g_rand_new_with_seed(42);

  for (guint i = 0; i < 20000; i++) {
    guint64 page = (guint64)g_rand_int_range(rand, 0, 1000);
    int node = g_rand_int_range(rand, -1, 4);

    hmmv_vm_set_page_node(vm, page, node, node >= 2 ? HMMV_TIER_SLOW : HMMV_TIER_DRAM);
    if (i % 1000 == 999) {
      guint64 dram = 0, slow = 0, counts[HMMV_PLACE_MAX_NODE_ID + 1];

      for (guint64 p = 0; p < 1000; p++) {
        int n = hmmv_vm_get_page_node(vm, p);

        dram += n == 0 || n == 1;
        slow += n >= 2;
      }
      ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), dram);
      ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), slow);
      hmmv_vm_count_nodes(vm, counts);
      ck_assert_uint_eq(counts[0] + counts[1], dram);
      ck_assert_uint_eq(counts[2] + counts[3], slow);
    }
  }
}
END_TEST

START_TEST(test_misc)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("m");
  g_autoptr(GError) error = NULL;
  guint64 counts[HMMV_PLACE_MAX_NODE_ID + 1];
  HmmvQuota quota = { .min_pages = 10, .max_pages = 20, .weight = 50, .managed = FALSE };

  ck_assert_int_eq(hmmv_vm_get_pid(vm), -1);
  ck_assert_uint_eq(hmmv_vm_get_quota(vm)->weight, 100);
  ck_assert(hmmv_vm_get_quota(vm)->managed);
  hmmv_vm_set_pid(vm, 1234);
  ck_assert_int_eq(hmmv_vm_get_pid(vm), 1234);
  hmmv_vm_set_quota(vm, &quota);
  ck_assert_uint_eq(hmmv_vm_get_quota(vm)->max_pages, 20);
  ck_assert(!hmmv_vm_get_quota(vm)->managed);
  hmmv_vm_set_budget_pages(vm, 77);
  ck_assert_uint_eq(hmmv_vm_get_budget_pages(vm), 77);
  ck_assert_uint_eq(hmmv_vm_get_move_stats(vm)->promoted, 0);
  hmmv_vm_get_move_stats(vm)->promoted += 3;
  ck_assert_uint_eq(hmmv_vm_get_move_stats(vm)->promoted, 3);

  /* Regions added but not finalized: no page state yet, and nothing reads it. */
  ck_assert(hmmv_vm_add_region(vm, "ram", 0, 0, MIB(64), HMMV_PAGE_SIZE, &error));
  ck_assert_ptr_null(hmmv_vm_get_temp(vm));
  hmmv_vm_count_nodes(vm, counts);
  ck_assert_uint_eq(counts[0], 0);
  ck_assert(hmmv_vm_finalize_layout(vm, &error));
  /* Two bytes a page plus a little overhead. */
  ck_assert(hmmv_vm_bytes_per_page(vm) >= 2.0);
  ck_assert(hmmv_vm_bytes_per_page(vm) < 2.1);
}
END_TEST

static Suite *
vm_suite(void)
{
  Suite *suite = suite_create("vm");
  TCase *tc = tcase_create("core");

  /* Liveness only: test_many_regions takes ~0.3 s of CPU, far more on a loaded machine. */
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_layout);
  tcase_add_test(tc, test_mapping);
  tcase_add_test(tc, test_rejections);
  tcase_add_test(tc, test_many_regions);
  tcase_add_test(tc, test_page_state);
  tcase_add_test(tc, test_counters_random);
  tcase_add_test(tc, test_misc);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(vm_suite());
}
