/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Hot-set selection: known cuts and a sort-based reference on random VMs. */
#include "hmmv-test.h"
#include "vm-private.h"

#include <stdlib.h>
#include <string.h>

static void
hist_of(const HmmvVm *vm, HmmvHistogram *hist)
{
  memset(hist, 0, sizeof(*hist));
  for (guint64 page = 0; page < vm->nr_pages; page++)
    hist->count[vm->temp[page]]++;
}

START_TEST(test_cut_known)
{
  HmmvHistogram hist = { { 0 } };
  HmmvHotCut cut;

  hist.count[0] = 1000;
  hist.count[0x10] = 5;
  hist.count[0x2f] = 3;
  hist.count[0xff] = 2;

  hmmv_classify(&hist, 4, 0x10, &cut);
  ck_assert_uint_eq(cut.cut_key, 0x2f);
  ck_assert_uint_eq(cut.take_at_cut, 2);
  ck_assert_uint_eq(cut.hot_pages, 4);

  /* Budget ends exactly on a bucket boundary: the bucket is the cut, all of it taken. */
  hmmv_classify(&hist, 5, 0x10, &cut);
  ck_assert_uint_eq(cut.cut_key, 0x2f);
  ck_assert_uint_eq(cut.take_at_cut, 3);
  ck_assert_uint_eq(cut.hot_pages, 5);

  /* More budget than eligible pages: key 0 stays out. */
  hmmv_classify(&hist, 100000, 0x10, &cut);
  ck_assert_uint_eq(cut.cut_key, 0x10);
  ck_assert_uint_eq(cut.take_at_cut, 5);
  ck_assert_uint_eq(cut.hot_pages, 10);

  hmmv_classify(&hist, 100000, 0x30, &cut);
  ck_assert_uint_eq(cut.cut_key, 0xff);
  ck_assert_uint_eq(cut.take_at_cut, 2);
  ck_assert_uint_eq(cut.hot_pages, 2);

  hmmv_classify(&hist, 0, 0x10, &cut);
  ck_assert_uint_eq(cut.cut_key, HMMV_NR_KEYS);
  ck_assert_uint_eq(cut.take_at_cut, 0);
  ck_assert_uint_eq(cut.hot_pages, 0);

  memset(&hist, 0, sizeof(hist));
  hist.count[0x0f] = 10;
  hmmv_classify(&hist, 3, 0x10, &cut);
  ck_assert_uint_eq(cut.cut_key, HMMV_NR_KEYS);
  ck_assert_uint_eq(cut.hot_pages, 0);
}
END_TEST

START_TEST(test_bitmap_known)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 130);
  guint64 bitmap[3] = { 0 };
  HmmvHistogram hist;
  HmmvHotCut cut;

  vm->temp[0] = 0x20;
  vm->temp[5] = 0x30;
  vm->temp[64] = 0x20;
  vm->temp[100] = 0x20;
  vm->temp[129] = 0x40;
  hist_of(vm, &hist);
  hmmv_classify(&hist, 3, 0x10, &cut);
  hmmv_classify_bitmap(vm, &cut, bitmap);
  ck_assert_uint_eq(bitmap[0], (G_GUINT64_CONSTANT(1) << 5) | 1);
  ck_assert_uint_eq(bitmap[1], 0);
  ck_assert_uint_eq(bitmap[2], 2);
}
END_TEST

typedef struct {
  guint8 key;
  guint64 page;
} KeyPage;

static int
key_page_cmp(const void *a, const void *b)
{
  const KeyPage *x = a, *y = b;

  if (x->key != y->key)
    return x->key > y->key ? -1 : 1;
  return x->page < y->page ? -1 : x->page > y->page;
}

/* Reference: sort by (key desc, page asc), take the first min(budget, eligible). */
static void
ref_hot_bitmap(const HmmvVm *vm, guint64 budget, guint min_key, guint64 *bitmap)
{
  g_autofree KeyPage *order = g_new(KeyPage, vm->nr_pages);

  for (guint64 page = 0; page < vm->nr_pages; page++)
    order[page] = (KeyPage){ vm->temp[page], page };
  qsort(order, vm->nr_pages, sizeof(*order), key_page_cmp);
  for (guint64 i = 0; i < vm->nr_pages && i < budget && order[i].key >= min_key; i++)
    bitmap[order[i].page >> 6] |= G_GUINT64_CONSTANT(1) << (order[i].page & 63);
}

static void
fill_keys(HmmvVm *vm, GRand *rand, guint mode)
{
  for (guint64 page = 0; page < vm->nr_pages; page++) {
    switch (mode) {
    case 0: /* uniform */
      vm->temp[page] = (guint8)g_rand_int_range(rand, 0, 256);
      break;
    case 1: /* mostly cold, a few distinct warm keys: many ties */
      vm->temp[page] = g_rand_double(rand) < 0.8 ? 0 : (guint8)(0x10 * g_rand_int_range(rand, 1, 4) + 0xf);
      break;
    default: /* all equal */
      vm->temp[page] = 0x3f;
      break;
    }
  }
}

START_TEST(test_random_vs_sort)
{
  static const guint64 sizes[] = { 1, 8, 13, 64, 200, 1000, 5003 };
  static const guint min_keys[] = { 1, 0x10, 0x3f, 0x40, 0xff };

  for (guint32 seed = 1; seed <= 4; seed++) {
    g_autoptr(GRand) rand = g_rand_new_with_seed(seed);

    for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
      guint64 nr_pages = sizes[s];
      gsize nr_words = (nr_pages + 63) / 64;
      g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", nr_pages);
      g_autofree guint64 *got = g_new(guint64, nr_words);
      g_autofree guint64 *want = g_new(guint64, nr_words);
      guint64 budgets[] = { 0, 1, nr_pages / 3, nr_pages / 2, nr_pages - 1, nr_pages,
                            nr_pages + 7, g_rand_int_range(rand, 0, (gint32)nr_pages + 1) };
      HmmvHistogram hist;
      HmmvHotCut cut;

      fill_keys(vm, rand, seed % 3);
      hist_of(vm, &hist);
      for (guint b = 0; b < G_N_ELEMENTS(budgets); b++) {
        for (guint m = 0; m < G_N_ELEMENTS(min_keys); m++) {
          memset(got, 0, nr_words * sizeof(guint64));
          memset(want, 0, nr_words * sizeof(guint64));
          hmmv_classify(&hist, budgets[b], min_keys[m], &cut);
          hmmv_classify_bitmap(vm, &cut, got);
          ref_hot_bitmap(vm, budgets[b], min_keys[m], want);
          ck_assert_mem_eq(got, want, nr_words * sizeof(guint64));
          ck_assert_uint_eq(cut.hot_pages, hmmv_bitmap_count(want, nr_words));
          ck_assert_uint_le(cut.hot_pages, budgets[b]);
          if (cut.hot_pages == 0) {
            ck_assert_uint_eq(cut.cut_key, HMMV_NR_KEYS);
            ck_assert_uint_eq(cut.take_at_cut, 0);
          } else {
            ck_assert_uint_ge(cut.take_at_cut, 1);
            ck_assert_uint_le(cut.take_at_cut, hist.count[cut.cut_key]);
          }
        }
      }
    }
  }
}
END_TEST

/* promote_min_key 0 lets key 0 be hot: the 8-page skip must not drop those pages. */
START_TEST(test_min_key_zero)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 100);
  guint64 got[2] = { 0 }, want[2] = { 0 };
  HmmvHistogram hist;
  HmmvHotCut cut;

  vm->temp[50] = 0x11;
  hist_of(vm, &hist);
  hmmv_classify(&hist, 20, 0, &cut);
  ck_assert_uint_eq(cut.cut_key, 0);
  ck_assert_uint_eq(cut.take_at_cut, 19);
  hmmv_classify_bitmap(vm, &cut, got);
  ref_hot_bitmap(vm, 20, 0, want);
  ck_assert_mem_eq(got, want, sizeof(got));
}
END_TEST

static Suite *
classify_suite(void)
{
  Suite *suite = suite_create("classify");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_cut_known);
  tcase_add_test(tc, test_bitmap_known);
  tcase_add_test(tc, test_random_vs_sort);
  tcase_add_test(tc, test_min_key_zero);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(classify_suite());
}
