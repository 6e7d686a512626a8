/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backoff of hmmvd's standalone VMs (see standalone-backoff.h).
 */
#include "standalone-backoff.h"

static guint
period_ms(guint reconnect_ms)
{
  return MAX(reconnect_ms, 100);
}

guint
hmmvd_backoff_max_checks(guint reconnect_ms)
{
  return MAX(HMMVD_BACKOFF_MAX_MS / period_ms(reconnect_ms), 1);
}

guint
hmmvd_backoff_checks(guint reconnect_ms, guint streak)
{
  g_return_val_if_fail(streak >= 1, 1);
  return MIN(1u << MIN(streak - 1, 16u), hmmvd_backoff_max_checks(reconnect_ms));
}

char *
hmmvd_backoff_retry_text(guint reconnect_ms, gboolean backed_off)
{
  guint max_checks = hmmvd_backoff_max_checks(reconnect_ms);
  guint64 cap_ms = (guint64)max_checks * period_ms(reconnect_ms);

  /* With reconnect_ms past HMMVD_BACKOFF_MAX_MS the longest wait is one check: said as it
   * is, not as a doubling up to a cap shorter than the first wait (review 19b, F5). */
  if (!backed_off || max_checks == 1)
    return g_strdup_printf("retrying every %u ms", reconnect_ms);
  if (cap_ms % 1000 == 0)
    return g_strdup_printf("retrying after %u ms, the wait doubling with each failure in a "
                           "row, at most %" G_GUINT64_FORMAT " s", period_ms(reconnect_ms),
                           cap_ms / 1000);
  return g_strdup_printf("retrying after %u ms, the wait doubling with each failure in a row, "
                         "at most %.1f s", period_ms(reconnect_ms), cap_ms / 1000.0);
}

HmmvdBackoffNote
hmmvd_backoff_note(guint reconnect_ms, guint streak)
{
  guint max_checks = hmmvd_backoff_max_checks(reconnect_ms);

  if (streak < 2)
    return HMMVD_BACKOFF_QUIET;
  if (hmmvd_backoff_checks(reconnect_ms, streak - 1) < max_checks)
    return HMMVD_BACKOFF_GREW;
  if (streak == 2 || hmmvd_backoff_checks(reconnect_ms, streak - 2) < max_checks)
    return HMMVD_BACKOFF_AT_CAP;
  return HMMVD_BACKOFF_QUIET;
}
