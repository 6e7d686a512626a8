/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Quotas: the libvirt metadata element (XML) and MiB values; a parsed quota is formatted back
 * and must parse again to the same quota. */
#include "fuzz-common.h"
#include "quota.h"

#include <string.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup((const char *)data, size);
  const HmmvQuota defaults = { .weight = 100, .managed = TRUE };
  HmmvQuota quota, again;
  guint64 pages;

  fuzz_quiet();
  (void)hmmvd_quota_parse_mib(text, &pages, NULL);
  if (hmmvd_quota_parse(text, &defaults, &quota, NULL)) {
    g_autofree char *xml = hmmvd_quota_format(&quota, NULL);

    if (!hmmvd_quota_parse(xml, &defaults, &again, NULL) ||
        memcmp(&quota, &again, sizeof(quota)) != 0)
      __builtin_trap();   /* format and parse disagree */
  }
  return 0;
}
