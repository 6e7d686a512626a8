/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "corun-test.h"

CorunProfile *
corun_test_profile(void)
{
  g_autoptr(GError) error = NULL;
  CorunProfile *p = corun_profile_load_named(HMMV_TIER_PROFILE_DIR, "optane", &error);

  ck_assert_msg(p != NULL, "%s", error ? error->message : "");
  return p;
}
