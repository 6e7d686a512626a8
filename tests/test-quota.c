/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The quota metadata element: parse (GMarkup), format, validate. */
#include "hmmv-test.h"
#include "quota.h"

#include <string.h>

static const HmmvQuota defaults = { .min_pages = 256, .max_pages = 0, .weight = 100,
                                    .managed = TRUE };

static void
assert_quota(const HmmvQuota *q, guint64 min_mib, guint64 max_mib, guint weight,
             gboolean managed)
{
  ck_assert_uint_eq(q->min_pages, min_mib * 256);
  ck_assert_uint_eq(q->max_pages, max_mib * 256);
  ck_assert_uint_eq(q->weight, weight);
  ck_assert_int_eq(!!q->managed, !!managed);
}

START_TEST(test_parse_all_attributes)
{
  g_autoptr(GError) error = NULL;
  HmmvQuota q;

  ck_assert(hmmvd_quota_parse("<memory dram-min-mib=\"256\" dram-max-mib=\"1024\" "
                              "weight=\"50\" managed=\"no\"/>", &defaults, &q, &error));
  assert_quota(&q, 256, 1024, 50, FALSE);
}
END_TEST

START_TEST(test_parse_namespaces)
{
  g_autoptr(GError) error = NULL;
  HmmvQuota q;

  /* As libvirt returns it: default namespace, or bound to a prefix. */
  ck_assert_msg(hmmvd_quota_parse("<memory xmlns=\"" HMMVD_METADATA_URI "\" weight=\"7\"/>",
                                  &defaults, &q, &error), "%s", error ? error->message : "");
  assert_quota(&q, 1, 0, 7, TRUE);
  ck_assert(hmmvd_quota_parse("<?xml version=\"1.0\"?>\n<hmmv:memory xmlns:hmmv=\""
                              HMMVD_METADATA_URI "\" dram-max-mib=\"2048\">\n  </hmmv:memory>\n",
                              &defaults, &q, &error));
  assert_quota(&q, 1, 2048, 100, TRUE);
  /* A declaration of some other prefix is not ours to judge. */
  ck_assert(hmmvd_quota_parse("<memory xmlns:x=\"urn:other\" weight=\"3\"/>", &defaults, &q,
                              &error));
  assert_quota(&q, 1, 0, 3, TRUE);
}
END_TEST

START_TEST(test_parse_absent_attributes_keep_defaults)
{
  g_autoptr(GError) error = NULL;
  HmmvQuota q;

  ck_assert(hmmvd_quota_parse("<memory/>", &defaults, &q, &error));
  ck_assert_mem_eq(&q, &defaults, sizeof(q));
}
END_TEST

static const struct {
  const char *xml;
  const char *needle;
} bad_inputs[] = {
  { "<memory colour=\"red\"/>", "unknown attribute colour" },
  { "<memory dram-min-mib=\"abc\"/>", "dram-min-mib: \"abc\" is not a whole number" },
  { "<memory dram-min-mib=\"-5\"/>", "is negative" },
  { "<memory dram-max-mib=\"1e3\"/>", "not a whole number" },
  { "<memory dram-max-mib=\"\"/>", "empty" },
  { "<memory dram-min-mib=\" 5\"/>", "not a whole number" },
  { "<memory dram-min-mib=\"99999999999999999999999\"/>", "too large" },
  { "<memory dram-min-mib=\"1099511627777\"/>", "too large" },
  { "<memory weight=\"0\"/>", "out of range 1..10000" },
  { "<memory weight=\"10001\"/>", "out of range 1..10000" },
  { "<memory weight=\"-1\"/>", "not a whole number" },
  { "<memory managed=\"maybe\"/>", "expected yes or no" },
  { "<quota weight=\"1\"/>", "expected one <memory> element" },
  { "<memory><memory/></memory>", "unexpected element <memory> inside" },
  { "<memory>hello</memory>", "unexpected text" },
  { "<memory/><memory/>", "" },
  { "<memory", "" },
  { "", "empty" },
  { "<!-- nothing -->", "no <memory> element" },
  { "<memory xmlns=\"urn:not-hmmv\"/>", "not hmmv's" },
  { "<h:memory xmlns:h=\"urn:not-hmmv\"/>", "not hmmv's" },
  { "<memory weight=\"1\" weight=\"2\"/>", "attribute weight is given twice" },
  { "\xff\xfe<memory/>", "" },
};

START_TEST(test_parse_rejects)
{
  g_autoptr(GError) error = NULL;
  HmmvQuota q = { .weight = 4242 };

  ck_assert_msg(!hmmvd_quota_parse(bad_inputs[_i].xml, &defaults, &q, &error),
                "accepted %s", bad_inputs[_i].xml);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_msg(strstr(error->message, bad_inputs[_i].needle) != NULL, "%s: \"%s\"",
                bad_inputs[_i].xml, error->message);
  ck_assert_uint_eq(q.weight, 4242);   /* untouched on error */
}
END_TEST

START_TEST(test_parse_rejects_huge_input)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = g_strnfill(100000, ' ');
  HmmvQuota q;

  memcpy(xml, "<memory/>", 9);
  ck_assert(!hmmvd_quota_parse(xml, &defaults, &q, &error));
  ck_assert(strstr(error->message, "longer than") != NULL);
}
END_TEST

START_TEST(test_parse_mib_limits)
{
  g_autoptr(GError) error = NULL;
  guint64 pages = 1;

  ck_assert(hmmvd_quota_parse_mib("0", &pages, &error));
  ck_assert_uint_eq(pages, 0);
  ck_assert(hmmvd_quota_parse_mib("1099511627776", &pages, &error));
  ck_assert_uint_eq(pages, HMMVD_QUOTA_MAX_MIB * 256);
  ck_assert(!hmmvd_quota_parse_mib("1099511627777", &pages, &error));
}
END_TEST

/* format -> parse is the identity on random quotas (whole MiB). */
START_TEST(test_format_round_trip)
{
  GRand *rand = g_rand_new_with_seed(42);

  for (guint i = 0; i < 1000; i++) {
    g_autoptr(GError) error = NULL;
    HmmvQuota in = {
      .min_pages = (guint64)g_rand_int_range(rand, 0, 1 << 20) * 256,
      .max_pages = (guint64)g_rand_int_range(rand, 0, 1 << 20) * 256,
      .weight = (guint)g_rand_int_range(rand, 1, 10001),
      .managed = g_rand_boolean(rand),
    };
    g_autofree char *xml = hmmvd_quota_format(&in, NULL);
    HmmvQuota out;

    ck_assert_msg(hmmvd_quota_parse(xml, &defaults, &out, &error), "%s", xml);
    ck_assert_mem_eq(&in, &out, sizeof(in));
  }
  g_rand_free(rand);
}
END_TEST

START_TEST(test_format_text)
{
  HmmvQuota q = { .min_pages = 256 * 256, .max_pages = 1024 * 256, .weight = 100,
                  .managed = TRUE };
  g_autofree char *xml = hmmvd_quota_format(&q, NULL);

  ck_assert_str_eq(xml, "<memory dram-min-mib=\"256\" dram-max-mib=\"1024\" weight=\"100\" "
                        "managed=\"yes\"/>");
}
END_TEST

/* issue 9, "Cost": <exclude backend="NAME"/> children name the backends hmmv leaves alone;
 * set-quota writes them back. */
START_TEST(test_parse_exclude)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) exclude = NULL;
  g_autofree char *xml = NULL;
  HmmvQuota q;
  static const char *const bad[] = {
    "<memory><exclude/></memory>",
    "<memory><exclude backend=\"\"/></memory>",
    "<memory><exclude backend=\"a b\"/></memory>",
    "<memory><exclude backend=\"a\"/><exclude backend=\"a\"/></memory>",
    "<memory><exclude backend=\"a\" size=\"1\"/></memory>",
    "<memory><exclude backend=\"a\"><exclude backend=\"b\"/></exclude></memory>",
    "<memory><exclude backend=\"a\">text</exclude></memory>",
    "<memory><include backend=\"a\"/></memory>",
    "<exclude backend=\"a\"/>",
  };

  ck_assert_msg(hmmvd_metadata_parse("<hmmv:memory xmlns:hmmv=\"" HMMVD_METADATA_URI "\" "
                                     "weight=\"7\"><hmmv:exclude backend=\"ram-node1\"/>"
                                     "<hmmv:exclude backend=\"0000:00:03.0/vmem0\"/>"
                                     "</hmmv:memory>", &defaults, &q, &exclude, &error),
                "%s", error ? error->message : "");
  assert_quota(&q, 1, 0, 7, TRUE);
  ck_assert_uint_eq(g_strv_length(exclude), 2);
  ck_assert_str_eq(exclude[0], "ram-node1");
  ck_assert_str_eq(exclude[1], "0000:00:03.0/vmem0");
  /* written back with the quota, and read again the same */
  xml = hmmvd_quota_format(&q, (const char *const *)exclude);
  ck_assert_str_eq(xml, "<memory dram-min-mib=\"1\" dram-max-mib=\"0\" weight=\"7\" "
                        "managed=\"yes\"><exclude backend=\"ram-node1\"/><exclude "
                        "backend=\"0000:00:03.0/vmem0\"/></memory>");
  g_clear_pointer(&exclude, g_strfreev);
  ck_assert(hmmvd_metadata_parse(xml, &defaults, &q, &exclude, &error));
  ck_assert_uint_eq(g_strv_length(exclude), 2);
  g_clear_pointer(&exclude, g_strfreev);
  /* no children: an empty list */
  ck_assert(hmmvd_metadata_parse("<memory/>", &defaults, &q, &exclude, &error));
  ck_assert(exclude != NULL && exclude[0] == NULL);
  g_clear_pointer(&exclude, g_strfreev);
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    ck_assert_msg(!hmmvd_metadata_parse(bad[i], &defaults, &q, &exclude, &error), "accepted %s",
                  bad[i]);
    ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
    ck_assert(exclude == NULL);
    g_clear_error(&error);
  }
}
END_TEST

/* The exclusion alone (what a domain never managed starts with when its quota is malformed):
 * the quota attributes are not looked at, everything else is checked as hmmvd_metadata_parse
 * checks it. */
START_TEST(test_parse_exclude_only)
{
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) exclude = NULL;
  HmmvQuota q;
  static const char *const quota_only_bad[] = {
    "<memory dram-min-mib=\"lots\"><exclude backend=\"m1\"/></memory>",
    "<memory weight=\"0\" managed=\"maybe\"><exclude backend=\"m1\"/></memory>",
    "<memory colour=\"red\"><exclude backend=\"m1\"/></memory>",
  };
  static const char *const exclusion_bad[] = {
    "<memory dram-min-mib=\"lots\"><exclude backend=\"a b\"/></memory>",
    "<memory><exclude backend=\"m1\"/><exclude backend=\"m1\"/></memory>",
    "<memory><exlude backend=\"m1\"/></memory>",
    "<memory xmlns=\"urn:other\"><exclude backend=\"m1\"/></memory>",
    "<quota><exclude backend=\"m1\"/></quota>",
    "<memory>text</memory>",
  };

  for (guint i = 0; i < G_N_ELEMENTS(quota_only_bad); i++) {
    /* the whole element is rejected, the exclusion alone is known */
    ck_assert_msg(!hmmvd_metadata_parse(quota_only_bad[i], &defaults, &q, &exclude, &error),
                  "accepted %s", quota_only_bad[i]);
    g_clear_error(&error);
    ck_assert_msg(hmmvd_metadata_parse_exclude(quota_only_bad[i], &exclude, &error), "%s: %s",
                  quota_only_bad[i], error ? error->message : "");
    ck_assert_uint_eq(g_strv_length(exclude), 1);
    ck_assert_str_eq(exclude[0], "m1");
    g_clear_pointer(&exclude, g_strfreev);
  }
  for (guint i = 0; i < G_N_ELEMENTS(exclusion_bad); i++) {
    ck_assert_msg(!hmmvd_metadata_parse_exclude(exclusion_bad[i], &exclude, &error),
                  "accepted %s", exclusion_bad[i]);
    ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
    ck_assert(exclude == NULL);
    g_clear_error(&error);
  }
  /* a good element: the same list as the whole parse */
  ck_assert(hmmvd_metadata_parse_exclude("<memory weight=\"3\"/>", &exclude, &error));
  ck_assert(exclude != NULL && exclude[0] == NULL);
}
END_TEST

START_TEST(test_validate)
{
  const guint64 mib = 256;
  HmmvQuota q = { .min_pages = 512 * mib, .max_pages = 1024 * mib, .weight = 100 };
  g_autoptr(GError) error = NULL;

  ck_assert(hmmvd_quota_validate(&q, 2048 * mib, 4096 * mib, &error));
  ck_assert(hmmvd_quota_validate(&q, 0, 0, &error));     /* sizes unknown: skipped */
  q.max_pages = 0;
  ck_assert(hmmvd_quota_validate(&q, 2048 * mib, 4096 * mib, &error));
  q.max_pages = 256 * mib;
  ck_assert(!hmmvd_quota_validate(&q, 0, 0, &error));
  ck_assert(strstr(error->message, "dram-min-mib 512 is above dram-max-mib 256") != NULL);
  g_clear_error(&error);
  q.max_pages = 0;
  ck_assert(!hmmvd_quota_validate(&q, 0, 256 * mib, &error));
  ck_assert(strstr(error->message, "DRAM pool of 256 MiB") != NULL);
  g_clear_error(&error);
  ck_assert(!hmmvd_quota_validate(&q, 128 * mib, 0, &error));
  ck_assert(strstr(error->message, "VM's RAM of 128 MiB") != NULL);
  g_clear_error(&error);
  q.weight = 0;
  ck_assert(!hmmvd_quota_validate(&q, 0, 0, &error));
  ck_assert(strstr(error->message, "weight") != NULL);
}
END_TEST

static Suite *
quota_suite(void)
{
  Suite *s = suite_create("quota");
  TCase *tc = tcase_create("quota");

  tcase_add_test(tc, test_parse_all_attributes);
  tcase_add_test(tc, test_parse_namespaces);
  tcase_add_test(tc, test_parse_absent_attributes_keep_defaults);
  tcase_add_loop_test(tc, test_parse_rejects, 0, G_N_ELEMENTS(bad_inputs));
  tcase_add_test(tc, test_parse_rejects_huge_input);
  tcase_add_test(tc, test_parse_mib_limits);
  tcase_add_test(tc, test_format_round_trip);
  tcase_add_test(tc, test_format_text);
  tcase_add_test(tc, test_validate);
  tcase_add_test(tc, test_parse_exclude);
  tcase_add_test(tc, test_parse_exclude_only);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(quota_suite());
}
