/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvctl's parts: main and the daemon commands (hmmvctl.c), their human output
 * (hmmvctl-print.c), track (hmmvctl-track.c). */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* hmmvctl track: interval_ms 0 = QEMU publishes on demand; count < 0 = until a signal. */
gboolean hmmvctl_track(const char *qmp_path, int interval_ms, int count, const char *trace,
                       gboolean reads, GError **error);

/* hmmvctl-print.c: an unsigned member of hmmvd's JSON (0 when absent or negative), and pages
 * in MiB. */
guint64 hmmvctl_member_uint(JsonObject *object, const char *member);
guint64 hmmvctl_mib(guint64 pages);
/* A held size for status and vms: whole MiB, or pages and KiB under 1 MiB. */
char *hmmvctl_held_size(guint64 pages);
/* The human form of `hmmvctl status` and `hmmvctl vms`, from hmmvd's replies, appended to
 * out. */
void hmmvctl_print_status(GString *out, JsonObject *status);
void hmmvctl_print_vms(GString *out, JsonArray *vms);
