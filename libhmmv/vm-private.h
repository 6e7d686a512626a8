/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The VM object's insides, shared by the core modules that scan page state. */
#pragma once

#include <hmmv/vm.h>

struct _HmmvVm {
  char *name;
  GArray *regions;          /* HmmvRegion */
  GTree *by_gpa;            /* region indices by gpa, for the overlap check; NULL once final */
  gboolean finalized;
  guint64 nr_pages;
  guint8 *temp;             /* nr_pages, rounded up to a multiple of 8 (padding is 0) */
  /* Bit b: temp bytes of the 64-page block b (whole blocks only, nr_pages / 64) may be
   * non-zero; a clear bit means all 64 are 0. Written whole by each hmmv_temperature_update,
   * which then sets warm_valid; hmmv_vm_get_temp_mut() clears it (its caller may write any
   * byte), and so must any other writer of temp. Lets the per-interval passes skip cold
   * blocks without reading them (temperature.c, units.c). NULL before the first update. */
  guint64 *warm;
  gboolean warm_valid;
  /* temp_hist[k] (HMMV_NR_KEYS of them, NULL before the first update): pages whose temp byte is k, as
   * the last hmmv_temperature_update left them; valid with warm (while warm_valid). The next
   * update moves it through the idle table and counts only the accessed pages one by one. */
  guint64 *temp_hist;
  guint8 *place;            /* same length; padding is "unknown, slow" */
  /* Plan builds that must still age cooldowns: every page's cooldown is 0 when it is 0. Set
   * by hmmv_place_set_cooldown (to the largest cooldown given) and by hmmv_vm_get_place_mut
   * (to HMMV_PLACE_COOLDOWN_MAX: its caller may write any byte); each build takes one. With
   * none, a build does not read the place bytes of huge units it has nothing to emit from
   * (at fleet scale, 2 TiB of guest RAM in 2 MiB units, that was every place byte, 512 MB
   * an interval, to find no cooldown). */
  guint cooling_builds;
  gsize nr_alloc;           /* bytes in temp and in place */
  guint64 dram_pages;
  guint64 slow_pages;
  guint64 node_pages[HMMV_PLACE_MAX_NODE_ID + 1]; /* pages per node, kept by set_page_node */
  int cpu_node;             /* node whose CPUs run its vCPUs; -1 unknown */
  guint32 allowed_nodes;    /* bit per node id its memory may be on (cpuset.mems); 0 = any */
  guint64 first_seen;       /* pages whose node, unknown until then, became known: first
                               touches, mostly (the core sizes its headroom of free DRAM
                               from their rate) */
  /* Churn (issue 7, item 11), a bit per page each, NULL until first used: moved, the page
   * moved since its node became known (its next move is a re-move, not its first placement;
   * cleared when its node becomes unknown); hot, the page was in the hot set of the last plan
   * (the planner counts the pages that enter and leave it). */
  guint64 *moved;
  guint64 *hot;
  int pid;
  HmmvQuota quota;
  guint64 budget_pages;
  HmmvMoveStats move_stats;
  guint8 *backoff;          /* NULL until the first failure; else nr_alloc bytes (vm.c) */
  HmmvUnmovable unmovable;  /* backed-off pages by cause */
  /* The mean weight of an accessed page, x 256, as a moving average (1/16 per interval, the
   * temperature's own horizon): 256 x write_weight for a VM whose pages are written, x
   * read_weight for one that is only read (issue 11). 0: nothing seen yet (the planner then
   * takes the larger weight). The payback gate's noise model needs it (plan-gate.c). */
  guint access_weight_x256;
  guint64 nr_blocks;        /* 2 MiB blocks of the 4 KiB-backed regions */
  GArray *blocks;           /* HmmvUnit (first_page, nr_pages) of each, in page order */
  guint64 *thp;             /* bitmap: the block is a THP; NULL when nr_blocks is 0 */
  GArray *units;            /* HmmvUnit, huge units in page order */
  gboolean units_stale;     /* thp changed since units was built */
};

/* The place byte of a page that is not present (or whose node is unknown). */
#define HMMV_PLACE_UNKNOWN_BYTE ((guint8)(HMMV_PLACE_NODE_UNKNOWN | HMMV_PLACE_SLOW))

/* Words of a bitmap of one bit per page (moved, hot). */
static inline gsize
hmmv_vm_page_bitmap_words(const HmmvVm *vm)
{
  return (vm->nr_alloc + 63) / 64;
}

/* Records that page moved (its whole unit: the caller passes each of its pages); TRUE when it
 * had moved before since its node became known: a re-move, not its first placement. */
gboolean hmmv_vm_note_move_again(HmmvVm *vm, guint64 page);
