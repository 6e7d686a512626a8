/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: page temperature, an estimate of each page's access frequency in one byte per page.
 *
 * The byte is a moving average: an interval in which the page was written adds
 * HMMV_TEMP_STEP x write_weight (only read: x read_weight) and every interval takes away
 * 1/16 of it, so in steady state it is 128 x the page's weighted accesses per interval,
 * whatever the page's history (reached within about 100 intervals from any start). The
 * byte is the sort key and level = byte >> 4.
 *
 * The update is one pass over the VM's pages driven by 256-entry lookup tables (one per
 * access kind). Pages that are cold (byte 0) and untouched are skipped 8 at a time by one
 * word compare: the cold majority costs a fraction of a nanosecond, and the rest is
 * O(pages that are warm).
 */
#pragma once

#include <glib.h>
#include <hmmv/access.h>
#include <hmmv/params.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

/* An idle interval takes 1/2^4 of the estimate away: a time constant of 16 intervals, long
 * enough to tell 5% from 15% of intervals apart, short enough that a page touched once is
 * cold again after 9 intervals. */
#define HMMV_TEMP_DECAY_SHIFT 4
/* What one unit of access weight adds in an accessed interval: 8 x 16 = 128 = a page
 * accessed with weight 1 in every interval; weight 2 in every interval saturates at 255. */
#define HMMV_TEMP_STEP 8u
/* A harvest covering more intervals than this is applied as this many: every page is cold
 * after 60 idle intervals anyway. */
#define HMMV_TEMP_MAX_MERGED 64u

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

/* Apply one harvest to the VM's temperatures and fill hist. acc may be NULL (one interval,
 * nothing seen). acc->intervals is how many of the tracker's intervals the harvest covers:
 * 0 (nothing new published) leaves every page as it was; k >= 2 idles untouched pages k
 * times and counts a touched page as accessed in one of the k intervals. */
void hmmv_temperature_update(HmmvVm *vm, const HmmvTempTables *tables, const HmmvAccess *acc,
                             HmmvHistogram *hist);
/* Recount hist from the VM's current temperatures. */
void hmmv_temperature_histogram(const HmmvVm *vm, HmmvHistogram *hist);

/* Benefit of keeping one page of key k in DRAM: its expected weighted accesses per interval
 * (a read counts read_weight, a write write_weight), in 1/4096: k / 128 accesses, i.e.
 * 32 x k. Used by the balancer and the planner's payback gate; linear, 0 for key 0. */
guint64 hmmv_temperature_benefit(guint key);

/* Weighted accesses a page of key k is expected to get before it cools to 0, in 1/4096: the
 * benefit summed along its idle decay (what the estimate still predicts if no access renews
 * it). About 16 x benefit(k) for warm keys; 80/128 of an access for a page written once. */
guint64 hmmv_temperature_expected_accesses(guint key);
/* The same for every key at once, in O(256). */
void hmmv_temperature_expected_table(guint64 expected[HMMV_NR_KEYS]);

G_END_DECLS
