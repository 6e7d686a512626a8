/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The check before json-glib sees peer text: nesting depth, one value only, nothing that
 * could hide brackets from the count (comments, single quotes), NUL bytes.
 */
#include "hmmv-test.h"

#include <string.h>

static const struct {
  const char *text;
  gboolean ok;
} cases[] = {
  { "{}", TRUE },
  { " {\"a\": [1, 2, {\"b\": null}]} \r\n", TRUE },
  { "\"a string with [[[[ and {{{ and \\\" inside\"", TRUE },
  { "123", TRUE },
  { "-1.5e+3", TRUE },
  { "true", TRUE },
  { "[[[[]]]]", TRUE },
  { "{} {}", FALSE },
  { "{}[0]", FALSE },
  { "1 2", FALSE },
  { "\"a\" \"b\"", FALSE },
  { "{},", FALSE },
  { "{\"a\": 1} x", FALSE },
  { "{\"a\": /* [ */ 1}", FALSE },
  { "{'a': 1}", FALSE },
  { "{\"a\": 1} # c", FALSE },
};

START_TEST(test_cases)
{
  g_autoptr(GError) error = NULL;
  gboolean ok = hmmv_json_check_text(cases[_i].text, strlen(cases[_i].text), 32, &error);

  ck_assert_msg(ok == cases[_i].ok, "%s: %s", cases[_i].text, error ? error->message : "ok");
  if (!ok)
    ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL));
}
END_TEST

START_TEST(test_depth)
{
  g_autofree char *at_limit = g_strconcat("[[[[[[[[", "]]]]]]]]", NULL);
  g_autofree char *deep = g_strnfill(1000000, '[');
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) node = NULL;

  ck_assert(hmmv_json_check_text(at_limit, strlen(at_limit), 8, NULL));
  ck_assert(!hmmv_json_check_text(at_limit, strlen(at_limit), 7, &error));
  ck_assert_msg(strstr(error->message, "deeper than 7 levels at offset 7") != NULL, "%s",
                error->message);
  g_clear_error(&error);
  /* A million levels: json-glib alone dies of a stack overflow at ~75,000. */
  ck_assert(hmmv_json_parse(deep, strlen(deep), &error) == NULL);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL));
  g_clear_error(&error);
  /* Brackets inside strings do not count. */
  node = hmmv_json_parse("{\"s\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}", 51, &error);
  ck_assert_msg(node != NULL, "%s", error ? error->message : "");
  ck_assert(JSON_NODE_HOLDS_OBJECT(node));
}
END_TEST

START_TEST(test_nul_and_grammar)
{
  g_autoptr(GError) error = NULL;

  ck_assert(!hmmv_json_check_text("{}\0{}", 5, 32, &error));
  ck_assert_msg(strstr(error->message, "NUL") != NULL, "%s", error->message);
  g_clear_error(&error);
  /* The grammar proper is json-glib's. */
  ck_assert(hmmv_json_parse("{\"a\":}", 6, &error) == NULL);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL));
  g_clear_error(&error);
  ck_assert(hmmv_json_parse("", 0, &error) == NULL);
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL));
}
END_TEST

static Suite *
json_suite(void)
{
  Suite *suite = suite_create("json");
  TCase *tc = tcase_create("check");

  tcase_add_loop_test(tc, test_cases, 0, G_N_ELEMENTS(cases));
  tcase_add_test(tc, test_depth);
  tcase_add_test(tc, test_nul_and_grammar);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(json_suite());
}
