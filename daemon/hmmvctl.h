/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvctl's parts: main and the daemon commands (hmmvctl.c), track (hmmvctl-track.c). */
#pragma once

#include <glib.h>

/* hmmvctl track: interval_ms 0 = QEMU publishes on demand; count < 0 = until a signal. */
gboolean hmmvctl_track(const char *qmp_path, int interval_ms, int count, const char *trace,
                       gboolean reads, GError **error);
