/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The co-run recorder's LLC model (tests/corun/recorder/llc.c) against a naive LRU. */
#include "hmmv-test.h"
#include "llc.h"

#include <string.h>

START_TEST(test_geometry)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvLlc) llc = hmmv_llc_new(4u << 20, 16, &error);
  HmmvLlc *bad;

  ck_assert_ptr_nonnull(llc);
  ck_assert_uint_eq(hmmv_llc_get_sets(llc), 4096);
  ck_assert_uint_eq(hmmv_llc_get_ways(llc), 16);
  /* 3 MiB / (64 B x 16) = 3072 sets: not a power of two */
  bad = hmmv_llc_new(3u << 20, 16, &error);
  ck_assert_ptr_null(bad);
  ck_assert_msg(strstr(error->message, "power of two") != NULL, "%s", error->message);
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_llc_new(4u << 20, 0, &error));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_llc_new(4u << 20, HMMV_LLC_MAX_WAYS + 1, &error));
  g_clear_error(&error);
  ck_assert_ptr_null(hmmv_llc_new(1000, 1, &error));
}
END_TEST

/* A working set of exactly the capacity misses once per line, then always hits; one line
 * more per set and a cyclic sweep misses every time (LRU's worst case). */
START_TEST(test_capacity)
{
  g_autoptr(HmmvLlc) llc = hmmv_llc_new(64 * 1024, 4, NULL);   /* 256 sets x 4 ways */
  guint64 lines = 1024, misses = 0;

  for (int pass = 0; pass < 3; pass++)
    for (guint64 l = 0; l < lines; l++)
      misses += !hmmv_llc_access(llc, l * 64 + (l % 64));
  ck_assert_uint_eq(misses, lines);
  misses = 0;
  for (int pass = 0; pass < 3; pass++)
    for (guint64 l = 0; l < lines + 256; l++)
      misses += !hmmv_llc_access(llc, (1u << 30) + l * 64);
  ck_assert_uint_eq(misses, 3 * (lines + 256));
}
END_TEST

/* Within one set, the least recently used line is the one that goes. */
START_TEST(test_lru_order)
{
  g_autoptr(HmmvLlc) llc = hmmv_llc_new(4 * 64 * 8, 4, NULL);   /* 8 sets x 4 ways */
  guint64 stride = 8 * 64;   /* same set */

  for (guint64 i = 0; i < 4; i++)
    ck_assert(!hmmv_llc_access(llc, i * stride));
  ck_assert(hmmv_llc_access(llc, 0));          /* 0 is the most recent now, 1 the least */
  ck_assert(!hmmv_llc_access(llc, 4 * stride)); /* evicts 1 */
  ck_assert(hmmv_llc_access(llc, 0));
  ck_assert(hmmv_llc_access(llc, 2 * stride));
  ck_assert(hmmv_llc_access(llc, 3 * stride));
  ck_assert(hmmv_llc_access(llc, 4 * stride));
  ck_assert(!hmmv_llc_access(llc, 1 * stride));
  /* a line in another set is unaffected */
  ck_assert(!hmmv_llc_access(llc, 64));
  ck_assert(hmmv_llc_access(llc, 64 + 32));
}
END_TEST

/* Random addresses against a naive LRU (a timestamp per line, the oldest evicted). */
START_TEST(test_against_reference)
{
  const guint sets = 64, ways = 8 + (guint)_i * 4;
  g_autoptr(HmmvLlc) llc = hmmv_llc_new((guint64)sets * ways * 64, ways, NULL);
  g_autoptr(GRand) rand = g_rand_new_with_seed(7 + (guint32)_i);
  g_autofree guint64 *tag = g_new0(guint64, sets * ways);
  g_autofree guint64 *stamp = g_new0(guint64, sets * ways);
  guint64 hits = 0, disagree = 0;

  for (guint64 t = 1; t <= 100000; t++) {
    /* a hot range that fits and a cold one that does not */
    guint64 line = g_rand_int_range(rand, 0, 4) ? (guint64)g_rand_int_range(rand, 0, 300)
                                                : (guint64)g_rand_int_range(rand, 0, 100000);
    guint64 *tg = tag + (line % sets) * ways, *st = stamp + (line % sets) * ways;
    gboolean ref_hit = FALSE;
    guint victim = 0;

    for (guint w = 0; w < ways; w++) {
      if (tg[w] == line + 1) {
        ref_hit = TRUE;
        victim = w;
        break;
      }
      if (st[w] < st[victim])
        victim = w;
    }
    tg[victim] = line + 1;
    st[victim] = t;
    hits += ref_hit;
    disagree += hmmv_llc_access(llc, line << 6) != ref_hit;
  }
  printf("# %u ways: %" G_GUINT64_FORMAT " hits in 100,000 accesses, as the reference\n",
         ways, hits);
  ck_assert_uint_eq(disagree, 0);
  ck_assert_uint_gt(hits, 25000);
}
END_TEST

static Suite *
llc_suite(void)
{
  Suite *suite = suite_create("llc");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_geometry);
  tcase_add_test(tc, test_capacity);
  tcase_add_test(tc, test_lru_order);
  tcase_add_loop_test(tc, test_against_reference, 0, 3);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(llc_suite());
}
