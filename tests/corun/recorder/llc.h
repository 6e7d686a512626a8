/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A set-associative last-level cache model with LRU replacement, for the co-run trace
 * recorder (issue 12): the recorder counts only the accesses that miss it, since raw loads
 * and stores are not memory traffic.  Physical line addresses in, hit or miss out; no data.
 */
#pragma once

#include <glib.h>

#define HMMV_LLC_LINE_SHIFT 6   /* 64-byte lines */
#define HMMV_LLC_MAX_WAYS 64

typedef struct _HmmvLlc HmmvLlc;

/* size_bytes / (64 * ways) sets, which must be a power of two; NULL with an error else. */
HmmvLlc *hmmv_llc_new(guint64 size_bytes, guint ways, GError **error);
void hmmv_llc_free(HmmvLlc *llc);
/* TRUE on a hit; a miss brings the line in, evicting the set's least recently used. */
gboolean hmmv_llc_access(HmmvLlc *llc, guint64 phys_addr);
guint hmmv_llc_get_sets(const HmmvLlc *llc);
guint hmmv_llc_get_ways(const HmmvLlc *llc);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvLlc, hmmv_llc_free)
