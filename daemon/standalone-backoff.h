/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backoff of hmmvd's standalone VMs (standalone.c): a VM whose QMP connection broke while
 * its QEMU lives, or whose start-up failed with a QEMU serving the socket, is tried again
 * reconnect_ms x 2^(n-1) later for its n-th such failure in a row, counted in checks (one
 * every reconnect_ms), at most HMMVD_BACKOFF_MAX_MS worth of checks; a reconnect_ms longer
 * than that is one check, so the wait never grows past reconnect_ms. What the status and the
 * log say of it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define HMMVD_BACKOFF_MAX_MS 60000

/* The checks of the longest wait: HMMVD_BACKOFF_MAX_MS worth, at least 1. */
guint hmmvd_backoff_max_checks(guint reconnect_ms);
/* The checks to wait after the streak-th failure in a row (streak >= 1): 1, 2, 4, ..., at
 * most hmmvd_backoff_max_checks. */
guint hmmvd_backoff_checks(guint reconnect_ms, guint streak);
/* How a failure is retried, for the status: "retrying every N ms" when it is not backed off
 * or its wait cannot grow (the longest wait is one check), else "retrying after N ms, the
 * wait doubling with each failure in a row, at most T s". */
char *hmmvd_backoff_retry_text(guint reconnect_ms, gboolean backed_off);

typedef enum {
  HMMVD_BACKOFF_QUIET,    /* the same wait as the last one, the cap, already said */
  HMMVD_BACKOFF_GREW,     /* a longer wait than after the last failure */
  HMMVD_BACKOFF_AT_CAP,   /* the first failure whose wait did not grow: said once */
} HmmvdBackoffNote;

/* What the streak-th failure in a row (streak >= 2; the first one is listed in the status)
 * is worth a log line for: while the wait grows, and once when it stopped growing, so a QEMU
 * that fails for ever costs a few lines, not one a minute. */
HmmvdBackoffNote hmmvd_backoff_note(guint reconnect_ms, guint streak);

G_END_DECLS
