/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * How closely each VM's tracker must watch (tracker.h, HmmvWatch), decided after every
 * interval from what its plan found.
 *
 * A VM is settled when, this interval, every hot page that would pay for its move is on DRAM
 * (the plan wanted no promotion but the ones the payback gate holds back), nothing was forced
 * down or deferred, and its budget has room to spare: at least 1/HMMV_WATCH_ROOM_DIVISOR of
 * its hot set, and HMMV_WATCH_ROOM_MIN_PAGES. Then what a tracker sees can change only one
 * thing: a page found hot on the slow tier is promoted into that room, displacing nothing,
 * and a slower look finds it a few intervals later; no swap, no demotion depends on it. After
 * HMMV_WATCH_SETTLE_INTERVALS settled intervals in a row its tracker is told COARSE; the first
 * interval that is not settled (a hot page waits on the slow tier, the room ran short, the
 * budget shrank, the VM paused or failed) tells it FINE at once.
 *
 * Why (issue 8, the tiering race in the testbed, 2026-12-02): hmmvd's DAMON read tracking
 * cost the guests most of what hmmvd cost them (its kdamonds 51 CPU s and its snapshot
 * thread 37 s in 150 s), sampling at full rate for the whole run though both VMs' hot sets
 * had been on DRAM, with room, since 25 s. The DAMON tracker samples a quarter as often
 * while COARSE (trackers/damon.c).
 *
 * A write source that can pause (qemu-dirty with a QEMU that has hmmv-pause) pauses while
 * COARSE for 7 intervals in 8 (tracker.h, HmmvPauseCycle): continuous dirty logging keeps
 * KVM from mapping the guest with huge pages, and a settled VM needs only the slower look.
 *
 * The watch is told every interval, so a tracker started again (a new kdamond) hears it.
 */
#include "core-private.h"
#include "vm-private.h"

static gboolean
watch_settled(const CoreVm *cvm, gboolean ok, const HmmvVmReport *rep)
{
  guint64 budget = rep->budget_pages, dram = rep->dram_pages;
  guint64 margin = MAX(rep->hot_pages / HMMV_WATCH_ROOM_DIVISOR, HMMV_WATCH_ROOM_MIN_PAGES);

  return ok && rep->error == NULL && !cvm->outside && !cvm->paused &&
         rep->placement_unread == 0 &&
         cvm->plan.promote_wanted == cvm->plan.promote_gated &&
         cvm->plan.forced_demote == 0 && rep->deferred_cap == 0 && rep->deferred_room == 0 &&
         budget > dram && budget - dram >= margin;
}

void
hmmv_core_watch(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report)
{
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    if (cvm->frozen) {
      /* its QEMU does not answer: not told anything (a thaw starts it FINE again) */
      cvm->settled_run = 0;
      rep->watch = HMMV_WATCH_FINE;
      continue;
    }
    if (watch_settled(cvm, ok[i], rep))
      cvm->settled_run = MIN(cvm->settled_run + 1, G_MAXUINT - 1);
    else
      cvm->settled_run = 0;
    rep->watch = cvm->settled_run >= HMMV_WATCH_SETTLE_INTERVALS ? HMMV_WATCH_COARSE
                                                                   : HMMV_WATCH_FINE;
    hmmv_tracker_set_watch(cvm->tracker, rep->watch);
    rep->writes_paused = hmmv_tracker_is_paused(cvm->tracker);
  }
}
