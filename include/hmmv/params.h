/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the tunables of the core, with their defaults (hmmv_params_init) and checks.
 * configs/hmmvd.conf documents each one for operators.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint interval_ms;          /* one interval; default 1000 */
  /* What an interval in which the page was written / only read counts for in its
   * temperature (temperature.h: a written interval adds 8 x write_weight). Slow tiers punish
   * writes harder (Optane: 13.9 vs 39.4 GB/s), so default 2 / 1. */
  guint write_weight;
  guint read_weight;
  /* Hysteresis: a page is demoted to make room only for a page at least this many keys
   * hotter (16 keys = one level); default 16. */
  guint hysteresis_keys;
  /* Intervals a moved page stays put (0..3); default 2. */
  guint cooldown_intervals;
  /* Lowest key worth promoting (level 1 freshly touched = 0x1f); default 0x10. */
  guint promote_min_key;
  /* The payback gate (plan.h), on the tier model (tests/bench/tier-model.md): what moving one
   * page costs the VM, default 3900 ns (move_pages in 512-page batches, ~3.9 us a page), and
   * what one weighted touched interval on DRAM instead of the slow tier saves, default
   * 7200 ns: 32 memory accesses (what a page seen touched is taken to get in an interval; the
   * tracker sees one bit) x 225 ns (Optane 305 ns vs DRAM 80 ns). A promotion must be
   * expected to save the cost of two moves (there and, later, back) before it cools. 0 turns
   * the gate off. */
  guint move_cost_ns;
  guint touch_saving_ns;
  /* Migration bandwidth cap per VM, MB/s (10^6 bytes); 0 = no cap; default 200 (memtierd
   * uses 100-200 MB/s, Memtis 100). The core runs it (and host_migrate_mbps) as a token
   * bucket as deep as the VM's largest huge unit (libhmmv/loop-cap.c). */
  guint migrate_mbps;
  /* Migration bandwidth cap of the whole host, MB/s, shared max-min fairly among the VMs
   * (what one VM does not use goes to the others); 0 = none. The anchors: memtierd moves
   * for all its processes through one mover at 100 MB/s by default (pkg/memtier/mover.go,
   * round robin over its tasks); Linux limits promotions into each node to
   * numa_balancing_promote_rate_limit_MBps, 65536 MB/s by default (kernel/sched/fair.c), in
   * effect no limit. Default 1000: five VMs at the per-VM default, and about what the one
   * worker thread that moves for hmmvd can do (move_pages at ~3.9 us a 4 KiB page is ~1050
   * MB/s), so a host's moves fit in its interval; memtierd's 100 would hold one VM below its
   * own default cap. */
  guint host_migrate_mbps;
  /* The share of an interval the moves may take, in percent; 0 = no limit but the caps;
   * default 50. The core learns how long the mover takes per page (libhmmv/loop-batch.c) and
   * plans each interval's moves, all VMs together, so they finish within this share: on the
   * testbed one batch of ~14,000 demotions ran 16-21 s with 1 s intervals and hot pages
   * waited behind it. Half leaves the other half for the harvest, the decisions and a mover
   * that turns out slower than it was. */
  guint move_share_percent;
} HmmvParams;

void hmmv_params_init(HmmvParams *params);
gboolean hmmv_params_validate(const HmmvParams *params, GError **error);
/* Pages the cap allows in one interval: at least 1; G_MAXUINT64 when there is no cap. */
guint64 hmmv_params_cap_pages(const HmmvParams *params);
/* The same for the host-wide cap (host_migrate_mbps). */
guint64 hmmv_params_host_cap_pages(const HmmvParams *params);

G_END_DECLS
