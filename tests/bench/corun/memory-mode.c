/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: Optane Memory Mode. DRAM is a direct-mapped cache in front of the slow tier,
 * run by the memory controller; the OS sees only the slow tier, and nothing is migrated.
 *
 * Simplified to pages (the hardware caches 64 B lines; traces count misses per page):
 * - host frame of a guest page = the VM's base frame + page (VMs laid out one after the
 *   other; real hosts scatter frames, which spreads conflicts differently); cache slot =
 *   frame mod the DRAM's pages;
 * - a page alone in its slot in an interval hits every access if it was resident, else its
 *   first accesses miss, one per line (at most 64 of a 4 KiB page), and the rest hit;
 * - pages sharing a slot in an interval thrash: with accesses interleaved at random, an
 *   access hits when the previous access to the slot was to the same page, so page i (a_i of
 *   the slot's A accesses) hits a_i x a_i / A times (no more than its cold misses allow); the
 *   page with the most accesses stays resident;
 * - every miss fills a line into DRAM (DRAM write traffic); a resident page's written lines
 *   (at most 64) are written back to the slow tier when it is evicted, and a write miss in a
 *   contended slot is written back once.
 */
#include "policy.h"

#include <string.h>

#define LINES_PER_PAGE 64u

typedef struct {
  guint64 nr_slots;
  guint64 *vm_base;         /* first host frame of each VM */
  guint64 *owner;           /* frame + 1 resident in each slot, 0 empty */
  guint8 *dirty_lines;      /* of the resident page */
  guint64 *slot_total;      /* this interval's accesses per slot (zeroed after use) */
  guint64 *slot_best;       /* frame + 1 with the most accesses this interval */
  guint64 *slot_best_count;
} MemoryMode;

static gboolean
mm_init(CorunPolicy *policy, GError **error)
{
  const CorunSetup *setup = policy->setup;
  MemoryMode *mm = g_new0(MemoryMode, 1);
  guint64 base = 0;

  mm->nr_slots = MAX(setup->dram_pages, 1);
  mm->vm_base = g_new0(guint64, setup->nr_vms);
  for (guint v = 0; v < setup->nr_vms; v++) {
    mm->vm_base[v] = base;
    base += setup->vms[v].nr_pages;
  }
  mm->owner = g_new0(guint64, mm->nr_slots);
  mm->dirty_lines = g_new0(guint8, mm->nr_slots);
  mm->slot_total = g_new0(guint64, mm->nr_slots);
  mm->slot_best = g_new0(guint64, mm->nr_slots);
  mm->slot_best_count = g_new0(guint64, mm->nr_slots);
  policy->priv = mm;
  return TRUE;
}

static gboolean
mm_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
            CorunDemand *demand, GError **error)
{
  MemoryMode *mm = policy->priv;
  const CorunProfile *profile = policy->setup->profile;
  double line = profile ? profile->line_bytes : 64;
  guint nr_vms = policy->setup->nr_vms;

  /* Pass 1: who wants each slot this interval. */
  for (guint v = 0; v < nr_vms; v++)
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];
      guint64 frame = mm->vm_base[v] + e->page, slot = frame % mm->nr_slots;
      guint64 a = (guint64)e->reads + e->writes;

      mm->slot_total[slot] += a;
      if (a > mm->slot_best_count[slot]) {
        mm->slot_best_count[slot] = a;
        mm->slot_best[slot] = frame + 1;
      }
    }
  /* Pass 2: hits and misses of each page. */
  for (guint v = 0; v < nr_vms; v++)
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];
      guint64 frame = mm->vm_base[v] + e->page, slot = frame % mm->nr_slots;
      guint64 a = (guint64)e->reads + e->writes, total = mm->slot_total[slot];
      gboolean resident = mm->owner[slot] == frame + 1;
      guint64 cold = resident ? 0 : MIN(a, LINES_PER_PAGE);
      guint64 hits, misses, miss_writes;

      if (a == 0)
        continue;
      hits = a == total ? a - cold : MIN((guint64)((double)a * (double)a / (double)total), a - cold);
      misses = a - hits;
      /* misses split between reads and writes in proportion */
      miss_writes = (guint64)((double)misses * (double)e->writes / (double)a + 0.5);
      demand[v].slow_writes += miss_writes;
      demand[v].slow_reads += misses - miss_writes;
      demand[v].dram_writes += e->writes - miss_writes;
      demand[v].dram_reads += e->reads - (misses - miss_writes);
      demand[v].extra_dram_write_bytes += line * (double)misses;
      if (a != total)
        demand[v].extra_slow_write_bytes += line * (double)miss_writes;
    }
  /* Pass 3: the winner of each slot stays; a dirty loser is written back. */
  for (guint v = 0; v < nr_vms; v++)
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];
      guint64 frame = mm->vm_base[v] + e->page, slot = frame % mm->nr_slots;

      if (mm->slot_total[slot] == 0)
        continue; /* done already */
      if (mm->owner[slot] != mm->slot_best[slot]) {
        demand[v].extra_slow_write_bytes += line * mm->dirty_lines[slot];
        mm->owner[slot] = mm->slot_best[slot];
        mm->dirty_lines[slot] = 0;
      }
      mm->slot_total[slot] = 0;
      mm->slot_best_count[slot] = 0;
    }
  for (guint v = 0; v < nr_vms; v++)
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];
      guint64 frame = mm->vm_base[v] + e->page, slot = frame % mm->nr_slots;

      if (mm->owner[slot] == frame + 1)
        mm->dirty_lines[slot] = (guint8)MIN((guint64)mm->dirty_lines[slot] + e->writes,
                                            LINES_PER_PAGE);
    }
  return TRUE;
}

static void
mm_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  MemoryMode *mm = policy->priv;
  guint nr_vms = policy->setup->nr_vms;

  memset(vm_dram, 0, nr_vms * sizeof(guint64));
  for (guint64 s = 0; s < mm->nr_slots; s++)
    if (mm->owner[s] != 0)
      for (guint v = nr_vms; v-- > 0;)
        if (mm->owner[s] - 1 >= mm->vm_base[v]) {
          vm_dram[v]++;
          break;
        }
}

static void
mm_destroy(CorunPolicy *policy)
{
  MemoryMode *mm = policy->priv;

  g_free(mm->vm_base);
  g_free(mm->owner);
  g_free(mm->dirty_lines);
  g_free(mm->slot_total);
  g_free(mm->slot_best);
  g_free(mm->slot_best_count);
  g_free(mm);
}

const struct corun_policy_ops corun_policy_memory_mode = {
  .name = "memory-mode",
  .init = mm_init,
  .interval = mm_interval,
  .dram_pages = mm_dram_pages,
  .destroy = mm_destroy,
};
