/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Temperature: the lookup tables, the 8/64-page update pass and its histogram. */
#include "hmmv-test.h"
#include "vm-private.h"

#include <string.h>

static guint
ref_sink_after(const HmmvParams *params, guint level)
{
  return MIN(15u, params->sink_base + level / params->sink_level_divisor);
}

START_TEST(test_tables_access)
{
  HmmvParams params;
  HmmvTempTables tables;

  hmmv_params_init(&params);
  hmmv_temp_tables_init(&tables, &params);
  ck_assert_uint_eq(tables.write[0], HMMV_TEMP_MAKE(2, 15));
  ck_assert_uint_eq(tables.read[0], HMMV_TEMP_MAKE(1, 15));
  for (guint key = 0; key < HMMV_NR_KEYS; key++) {
    guint level = HMMV_TEMP_LEVEL(key);

    ck_assert_uint_eq(tables.write[key], HMMV_TEMP_MAKE(MIN(level + 2, 15u), 15));
    ck_assert_uint_eq(tables.read[key], HMMV_TEMP_MAKE(MIN(level + 1, 15u), 15));
  }
  /* Saturation at 15, whatever the weight. */
  params.write_weight = 15;
  params.read_weight = 7;
  hmmv_temp_tables_init(&tables, &params);
  ck_assert_uint_eq(tables.write[HMMV_TEMP_MAKE(1, 3)], 0xff);
  ck_assert_uint_eq(tables.read[HMMV_TEMP_MAKE(9, 0)], 0xff);
  ck_assert_uint_eq(tables.read[HMMV_TEMP_MAKE(8, 0)], 0xff);
  ck_assert_uint_eq(tables.read[HMMV_TEMP_MAKE(7, 0)], HMMV_TEMP_MAKE(14, 15));
  /* Weight 0: an access only refreshes. */
  params.read_weight = 0;
  hmmv_temp_tables_init(&tables, &params);
  ck_assert_uint_eq(tables.read[HMMV_TEMP_MAKE(5, 2)], HMMV_TEMP_MAKE(5, 15));
}
END_TEST

/* A page touched at level L stays at L for exactly sink_after(L) idle intervals, for several
 * parameter sets; level 0 decays to 0 and stays; idle never warms a page. */
START_TEST(test_tables_idle)
{
  static const guint sets[][2] = { { 2, 4 }, { 1, 1 }, { 3, 2 }, { 15, 16 }, { 7, 1 } };
  HmmvParams params;
  HmmvTempTables tables;

  hmmv_params_init(&params);
  for (guint s = 0; s < G_N_ELEMENTS(sets); s++) {
    params.sink_base = sets[s][0];
    params.sink_level_divisor = sets[s][1];
    hmmv_temp_tables_init(&tables, &params);
    ck_assert_uint_eq(tables.idle[0], 0);
    for (guint key = 1; key < HMMV_NR_KEYS; key++)
      ck_assert_uint_lt(tables.idle[key], key);
    for (guint level = 1; level < HMMV_NR_LEVELS; level++) {
      guint8 key = HMMV_TEMP_MAKE(level, 15);
      guint hold = ref_sink_after(&params, level);

      for (guint i = 1; i < hold; i++) {
        key = tables.idle[key];
        ck_assert_uint_eq(HMMV_TEMP_LEVEL(key), level);
        ck_assert_uint_eq(HMMV_TEMP_FRESH(key), 15 - i);
      }
      key = tables.idle[key];
      ck_assert_uint_eq(key, HMMV_TEMP_MAKE(level - 1, 15));
    }
    /* Level 0 halves its freshness: 15, 7, 3, 1, 0. */
    {
      guint8 key = HMMV_TEMP_MAKE(0, 15);
      const guint expect[] = { 7, 3, 1, 0, 0 };

      for (guint i = 0; i < G_N_ELEMENTS(expect); i++) {
        key = tables.idle[key];
        ck_assert_uint_eq(key, expect[i]);
      }
    }
    /* From the top, a page reaches 0 after the sum of all holds plus 4 and stays there. */
    {
      guint8 key = 0xff;
      guint steps = 4;

      for (guint level = 1; level < HMMV_NR_LEVELS; level++)
        steps += ref_sink_after(&params, level);
      for (guint i = 0; i < steps; i++) {
        ck_assert_uint_ne(key, 0);
        key = tables.idle[key];
      }
      ck_assert_uint_eq(key, 0);
      ck_assert_uint_eq(tables.idle[key], 0);
    }
  }
}
END_TEST

/* Brute-force reference of one update, and the check of a VM against it. */
static void
ref_update(guint8 *temp, guint64 nr_pages, const HmmvTempTables *tables, const HmmvAccess *acc,
           guint64 *hist)
{
  memset(hist, 0, sizeof(guint64) * HMMV_NR_KEYS);
  for (guint64 page = 0; page < nr_pages; page++) {
    gboolean w = acc != NULL && hmmv_bitmap_test(acc->writes, page);
    gboolean r = acc != NULL && acc->has_reads && hmmv_bitmap_test(acc->reads, page);

    temp[page] = w ? tables->write[temp[page]] : r ? tables->read[temp[page]]
                                                   : tables->idle[temp[page]];
    hist[temp[page]]++;
  }
}

static void
fill_random_access(HmmvAccess *acc, GRand *rand, double write_p, double read_p,
                   gboolean reads)
{
  hmmv_access_clear(acc);
  for (guint64 page = 0; page < acc->nr_pages; page++) {
    if (g_rand_double(rand) < write_p)
      hmmv_access_mark_write(acc, page);
    if (reads && g_rand_double(rand) < read_p)
      hmmv_access_mark_read(acc, page);
  }
  acc->has_reads = reads;
}

static void
check_random_run(guint64 nr_pages, guint32 seed)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", nr_pages);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(nr_pages, NULL);
  g_autoptr(GRand) rand = g_rand_new_with_seed(seed);
  g_autofree guint8 *ref = g_new0(guint8, nr_pages);
  HmmvParams params;
  HmmvTempTables tables;
  HmmvHistogram hist, recount;
  guint64 ref_hist[HMMV_NR_KEYS];

  hmmv_params_init(&params);
  params.write_weight = 1 + seed % 3;
  params.sink_base = 1 + seed % 2;
  hmmv_temp_tables_init(&tables, &params);
  for (guint interval = 0; interval < 40; interval++) {
    /* Bursts, then quiet intervals (acc NULL or empty) that let pages cool to 0. */
    double density = (interval % 10) < 4 ? 0.02 + 0.2 * g_rand_double(rand) : 0.0;
    gboolean use_null = density == 0.0 && (interval & 1);

    fill_random_access(acc, rand, density, density, interval % 3 != 0);
    hmmv_temperature_update(vm, &tables, use_null ? NULL : acc, &hist);
    ref_update(ref, nr_pages, &tables, use_null ? NULL : acc, ref_hist);
    ck_assert_mem_eq(vm->temp, ref, nr_pages);
    ck_assert_mem_eq(hist.count, ref_hist, sizeof(ref_hist));
    hmmv_temperature_histogram(vm, &recount);
    ck_assert_mem_eq(recount.count, ref_hist, sizeof(ref_hist));
    for (gsize i = nr_pages; i < vm->nr_alloc; i++)
      ck_assert_uint_eq(vm->temp[i], 0);
  }
}

START_TEST(test_update_random)
{
  static const guint64 sizes[] = { 1, 7, 8, 9, 63, 64, 65, 127, 128, 1000, 4099, 20000 };

  for (guint s = 0; s < G_N_ELEMENTS(sizes); s++)
    for (guint32 seed = 1; seed <= 3; seed++)
      check_random_run(sizes[s], seed * 7919 + s);
}
END_TEST

/* Bits a tracker sets beyond nr_pages must not warm or count the padding. */
START_TEST(test_update_padding)
{
  static const guint64 sizes[] = { 1, 5, 61, 67, 100, 130 };

  for (guint s = 0; s < G_N_ELEMENTS(sizes); s++) {
    guint64 nr_pages = sizes[s];
    g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", nr_pages);
    g_autoptr(HmmvAccess) acc = hmmv_access_new(nr_pages, NULL);
    HmmvParams params;
    HmmvTempTables tables;
    HmmvHistogram hist;
    guint64 total = 0;

    hmmv_params_init(&params);
    hmmv_temp_tables_init(&tables, &params);
    memset(acc->writes, 0xff, acc->nr_words * sizeof(guint64));
    memset(acc->reads, 0xff, acc->nr_words * sizeof(guint64));
    acc->has_reads = TRUE;
    hmmv_temperature_update(vm, &tables, acc, &hist);
    for (guint k = 0; k < HMMV_NR_KEYS; k++)
      total += hist.count[k];
    ck_assert_uint_eq(total, nr_pages);
    ck_assert_uint_eq(hist.count[HMMV_TEMP_MAKE(2, 15)], nr_pages);
    for (gsize i = nr_pages; i < vm->nr_alloc; i++)
      ck_assert_uint_eq(vm->temp[i], 0);
    /* Now all idle: still nr_pages counted, key 0 included. */
    hmmv_access_clear(acc);
    for (guint i = 0; i < 30; i++)
      hmmv_temperature_update(vm, &tables, acc, &hist);
    ck_assert_uint_eq(hist.count[0], nr_pages);
    hmmv_temperature_histogram(vm, &hist);
    ck_assert_uint_eq(hist.count[0], nr_pages);
  }
}
END_TEST

/* Known small case: write beats read, reads ignored without has_reads, NULL idles. */
START_TEST(test_update_known)
{
  g_autoptr(HmmvVm) vm = hmmv_test_vm_new("t", 200);
  g_autoptr(HmmvAccess) acc = hmmv_access_new(200, NULL);
  HmmvParams params;
  HmmvTempTables tables;
  HmmvHistogram hist;

  hmmv_params_init(&params);
  hmmv_temp_tables_init(&tables, &params);
  hmmv_access_mark_write(acc, 3);
  hmmv_access_mark_read(acc, 3);
  hmmv_access_mark_read(acc, 70);
  hmmv_access_mark_write(acc, 199);
  hmmv_temperature_update(vm, &tables, acc, &hist);
  ck_assert_uint_eq(vm->temp[3], 0x2f);
  ck_assert_uint_eq(vm->temp[70], 0x1f);
  ck_assert_uint_eq(vm->temp[199], 0x2f);
  ck_assert_uint_eq(hist.count[0x2f], 2);
  ck_assert_uint_eq(hist.count[0x1f], 1);
  ck_assert_uint_eq(hist.count[0], 197);

  acc->has_reads = FALSE;
  hmmv_temperature_update(vm, &tables, acc, &hist);
  ck_assert_uint_eq(vm->temp[3], 0x4f);
  ck_assert_uint_eq(vm->temp[70], 0x1e);

  /* Level 4 holds sink_after(4) = 3 idle intervals. */
  for (guint i = 0; i < 2; i++)
    hmmv_temperature_update(vm, &tables, NULL, &hist);
  ck_assert_uint_eq(vm->temp[3], 0x4d);
  hmmv_temperature_update(vm, &tables, NULL, &hist);
  ck_assert_uint_eq(vm->temp[3], 0x3f);
  ck_assert_uint_eq(hist.count[0x3f], 2);
}
END_TEST

START_TEST(test_benefit)
{
  ck_assert_uint_eq(hmmv_temperature_benefit(0), 0);
  for (guint key = 1; key < HMMV_NR_KEYS; key++) {
    ck_assert_uint_gt(hmmv_temperature_benefit(key), 0);
    ck_assert_uint_ge(hmmv_temperature_benefit(key), hmmv_temperature_benefit(key - 1));
  }
  /* Any page at a higher level is worth more than every page below it. */
  ck_assert_uint_gt(hmmv_temperature_benefit(0x20), hmmv_temperature_benefit(0x1f));
}
END_TEST

static Suite *
temperature_suite(void)
{
  Suite *suite = suite_create("temperature");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_tables_access);
  tcase_add_test(tc, test_tables_idle);
  tcase_add_test(tc, test_update_known);
  tcase_add_test(tc, test_update_random);
  tcase_add_test(tc, test_update_padding);
  tcase_add_test(tc, test_benefit);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(temperature_suite());
}
