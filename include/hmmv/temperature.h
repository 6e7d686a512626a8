/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: page temperature, HMM-V's multi-level queue in one byte per page.
 *
 * A page accessed in an interval rises (write_weight levels if written, read_weight if only
 * read) and its freshness resets to 15; an idle page loses one freshness per interval and
 * sinks one level after the idle intervals its level asks for. The byte is the sort key.
 *
 * The update is one pass over the VM's pages driven by 256-entry lookup tables (one per
 * access kind), so any per-level sink rate costs the same. Pages that are cold (byte 0) and
 * untouched are skipped 8 at a time by one word compare: the cold majority costs a fraction
 * of a nanosecond, and the rest is O(pages that are warm).
 */
#pragma once

#include <glib.h>
#include <hmmv/access.h>
#include <hmmv/params.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct {
  guint8 idle[HMMV_NR_KEYS];
  guint8 read[HMMV_NR_KEYS];
  guint8 write[HMMV_NR_KEYS];   /* written (whether read or not) */
} HmmvTempTables;

void hmmv_temp_tables_init(HmmvTempTables *tables, const HmmvParams *params);

/* Key histogram of one VM: hist[k] = pages whose temp byte is k. */
typedef struct {
  guint64 count[HMMV_NR_KEYS];
} HmmvHistogram;

/* Apply one harvest to the VM's temperatures and fill hist. acc may be NULL (nothing seen). */
void hmmv_temperature_update(HmmvVm *vm, const HmmvTempTables *tables, const HmmvAccess *acc,
                             HmmvHistogram *hist);
/* Recount hist from the VM's current temperatures. */
void hmmv_temperature_histogram(const HmmvVm *vm, HmmvHistogram *hist);

/* Relative benefit of keeping one page of key k in DRAM: an estimate of its accesses per
 * interval (level L was accessed in about L of the last intervals, more if written). Used
 * by the balancer; monotone non-decreasing in k, 0 for key 0. */
guint64 hmmv_temperature_benefit(guint key);

G_END_DECLS
