/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: decisions on huge units (issue 7, item 3).
 *
 * move_pages(2) on any 4 KiB page of a transparent huge page or of a hugetlbfs page moves the
 * whole huge page, so the core decides, caps and accounts huge units whole: one temperature,
 * one planner candidate of its real size in pages, one move_pages entry, every page of it
 * recorded where the kernel put it.
 *
 * The unit's temperature is the MEAN of its 4 KiB pages' keys. The benefit model is linear in
 * the key (temperature.h: 32 x key per interval), so the mean key is the unit's expected
 * accesses per 4 KiB: what a page of DRAM spent on the unit buys, the same measure the hot
 * cut and the balancer use for 4 KiB pages. The maximum would give 2 MiB of DRAM to one hot
 * 4 KiB; the minimum would send a unit with 300 hot pages to the slow tier.
 *
 * A unit that mixes hot and cold pages is KEPT WHOLE, never split: the mean decides where all
 * of it lives. Memtis (SOSP '23) splits such "skewed" THPs in the kernel where the gain pays
 * for the split; hmmvd cannot: nothing splits another process's THP from outside
 * (process_madvise(2) takes no MADV_NOHUGEPAGE, which would not split an existing THP
 * anyway; debugfs split_huge_pages is a test interface), hugetlbfs pages cannot be split at
 * all, and a split costs the guest the 2 MiB mapping (TLB reach) for as long as the VM runs.
 * The per-page keys stay, so a later split (the kernel's own, on a full node) is followed.
 */
#pragma once

#include <glib.h>
#include <hmmv/temperature.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

/* Sets each huge unit's key to the mean of its pages' keys (rounded to nearest) and moves
 * its pages in hist from their own keys to the unit's. hist must be the VM's per-page
 * histogram (hmmv_temperature_update / _histogram) and becomes the decision histogram. */
void hmmv_units_aggregate(HmmvVm *vm, HmmvHistogram *hist);

/* The mean key of nr pages from first (the aggregate above). */
guint8 hmmv_units_mean_key(const HmmvVm *vm, guint64 first, guint64 nr);

G_END_DECLS
