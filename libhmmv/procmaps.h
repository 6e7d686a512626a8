/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A process's mappings (/proc/PID/maps): what the kernel says a QEMU really maps, against
 * which hmmv checks the sizes QEMU claims before allocating anything for them.
 */
#pragma once

#include <glib.h>

typedef struct {
  guint64 start;
  guint64 end;
  gboolean writable;
} HmmvProcMapping;

/* The mappings of pid, by address (GArray of HmmvProcMapping). */
GArray *hmmv_proc_maps_read(int pid, GError **error);
/* Parsed from maps text (for tests and fuzzing); lines that do not parse are an error. */
GArray *hmmv_proc_maps_parse(const char *text, gsize len, GError **error);
/* TRUE when [start, start + size) is covered by contiguous writable mappings. */
gboolean hmmv_proc_maps_cover(const GArray *maps, guint64 start, guint64 size);
