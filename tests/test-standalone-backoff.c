/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backoff of hmmvd's standalone VMs (daemon/standalone-backoff.c): the waits, what the
 * status says of them, and which failed start-ups in a row are logged (review 19b, F5, F7).
 * The behaviour against QEMUs is tests/integration/test-hostile-qmp.sh's.
 */
#include "hmmv-test.h"
#include "standalone-backoff.h"

#include <string.h>

/* The waits double from one check up to 60 s worth, whatever reconnect-ms. */
START_TEST(test_waits)
{
  static const guint expected[] = { 1, 2, 4, 8, 16, 32, 60, 60, 60 };

  for (guint n = 1; n <= G_N_ELEMENTS(expected); n++)
    ck_assert_uint_eq(hmmvd_backoff_checks(1000, n), expected[n - 1]);
  ck_assert_uint_eq(hmmvd_backoff_checks(1000, 1000), 60);   /* no shift past 16 */
  ck_assert_uint_eq(hmmvd_backoff_max_checks(100), 600);
  ck_assert_uint_eq(hmmvd_backoff_max_checks(7000), 8);       /* 56 s */
  ck_assert_uint_eq(hmmvd_backoff_max_checks(60000), 1);
  ck_assert_uint_eq(hmmvd_backoff_max_checks(3600000), 1);
  ck_assert_uint_eq(hmmvd_backoff_checks(120000, 5), 1);
}
END_TEST

/* F5: with reconnect-ms past 60 s the wait is one check, reconnect-ms, and never doubles: the
 * status said "the wait doubling ..., at most 60 s" (a cap shorter than the first wait). */
START_TEST(test_retry_text)
{
  g_autofree char *text = hmmvd_backoff_retry_text(1000, TRUE);
  g_autofree char *plain = hmmvd_backoff_retry_text(1000, FALSE);
  g_autofree char *long_wait = hmmvd_backoff_retry_text(120000, TRUE);
  g_autofree char *odd = hmmvd_backoff_retry_text(7000, TRUE);

  ck_assert_str_eq(text, "retrying after 1000 ms, the wait doubling with each failure in a "
                         "row, at most 60 s");
  ck_assert_str_eq(plain, "retrying every 1000 ms");
  ck_assert_str_eq(long_wait, "retrying every 120000 ms");
  /* 8 checks of 7 s: the cap said is the real one */
  ck_assert_str_eq(odd, "retrying after 7000 ms, the wait doubling with each failure in a "
                        "row, at most 56 s");
}
END_TEST

/* F7: a QEMU that refuses every start-up was logged at each failure, one line a minute at the
 * cap for as long as it runs; now while the wait grows, and once at the cap. */
START_TEST(test_logged_failures)
{
  static const struct {
    guint reconnect_ms;
    const char *notes;   /* streak 1, 2, ...: Q quiet, G grew, C at the cap */
  } cases[] = {
    { 1000, "QGGGGGGCQQQQQQQQQQQQ" },     /* waits 1 2 4 8 16 32 60 60 ... */
    { 20000, "QGGCQQQQ" },                /* waits 1 2 3 3 ... checks of 20 s */
    { 60000, "QCQQQQ" },                  /* one check: never grows */
    { 120000, "QCQQQQ" },
    { 100, "QGGGGGGGGGGCQQQ" },           /* waits 1 ... 512 600 600 */
  };

  for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
    g_autoptr(GString) got = g_string_new(NULL);

    for (guint n = 1; n <= strlen(cases[c].notes); n++) {
      HmmvdBackoffNote note = hmmvd_backoff_note(cases[c].reconnect_ms, n);

      g_string_append_c(got, note == HMMVD_BACKOFF_GREW     ? 'G'
                             : note == HMMVD_BACKOFF_AT_CAP ? 'C'
                                                            : 'Q');
    }
    printf("# reconnect-ms %u: %s\n", cases[c].reconnect_ms, got->str);
    ck_assert_str_eq(got->str, cases[c].notes);
  }
}
END_TEST

static Suite *
backoff_suite(void)
{
  Suite *suite = suite_create("standalone-backoff");
  TCase *tc = tcase_create("backoff");

  tcase_add_test(tc, test_waits);
  tcase_add_test(tc, test_retry_text);
  tcase_add_test(tc, test_logged_failures);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(backoff_suite());
}
