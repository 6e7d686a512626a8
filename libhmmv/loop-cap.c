/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The host-wide migration cap (params.host_migrate_mbps), shared among the VMs' plans.
 *
 * Each VM's plan is built under its own cap first; then, when the plans together want more
 * than the host allows, the host's pages are shared max-min fairly (water filling): every VM
 * gets an equal share, a VM that wants less than its share keeps what it wants and the rest
 * is shared again among the others; the pages left over by rounding go one each from the
 * lowest index. So one busy VM cannot take the host's bandwidth from the others, and
 * bandwidth a VM does not use is not lost.
 *
 * Counted in 4 KiB pages, as the per-VM cap is: a list entry is a whole unit (a THP or a
 * hugetlbfs page moves all its pages). Within a VM's grant, demotions and promotions keep
 * their proportion in the plan (demotions rounded up: they make the room the promotions
 * need), each list cut from its end, which is its least urgent (promotions hottest first,
 * demotions coldest first). Promotions beyond the
 * room that demotions made are then held back by core_limit_promotions, as before.
 */
#include "core-private.h"

/* The 4 KiB pages a list moves: each entry is a whole unit (a THP or hugetlbfs page moves all
 * its pages), as the per-VM cap counts them. */
static guint64
list_pages(HmmvVm *vm, const GArray *list)
{
  guint64 pages = 0;

  for (guint i = 0; i < list->len; i++)
    pages += hmmv_vm_unit_pages(vm, g_array_index(list, guint64, i));
  return pages;
}

/* Cuts a list from its end (its least urgent entries) until it moves at most max_pages;
 * returns the pages it still moves. */
static guint64
list_cut(HmmvVm *vm, GArray *list, guint64 pages, guint64 max_pages)
{
  while (list->len > 0 && pages > max_pages) {
    pages -= hmmv_vm_unit_pages(vm, g_array_index(list, guint64, list->len - 1));
    g_array_set_size(list, list->len - 1);
  }
  return pages;
}

/* grant[i] <= want[i], sum(grant) = min(cap, sum(want)), max-min fair. */
static void
water_fill(const guint64 *want, guint64 *grant, guint n, guint64 cap)
{
  guint64 left = cap;
  guint open = 0;

  for (guint i = 0; i < n; i++) {
    grant[i] = 0;
    open += want[i] > 0;
  }
  while (open > 0 && left >= open) {
    guint64 share = left / open;

    for (guint i = 0; i < n; i++) {
      guint64 more = MIN(share, want[i] - grant[i]);

      if (want[i] == grant[i])
        continue;
      grant[i] += more;
      left -= more;
      open -= grant[i] == want[i];
    }
  }
  for (guint i = 0; i < n && left > 0; i++) {
    if (grant[i] < want[i]) {
      grant[i]++;
      left--;
    }
  }
}

void
hmmv_core_share_host_cap(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report)
{
  guint64 cap = hmmv_params_host_cap_pages(&core->params), total = 0;
  guint n = core->vms->len;
  g_autofree guint64 *want = g_new0(guint64, MAX(n, 1));
  g_autofree guint64 *demote = g_new0(guint64, MAX(n, 1));
  g_autofree guint64 *grant = NULL;

  if (cap == G_MAXUINT64)
    return;
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (!ok[i])
      continue;
    demote[i] = list_pages(cvm->vm, cvm->plan.demote);
    want[i] = demote[i] + list_pages(cvm->vm, cvm->plan.promote);
    total += want[i];
  }
  if (total <= cap)
    return;
  grant = g_new0(guint64, n);
  water_fill(want, grant, n, cap);
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);
    guint64 kept;

    if (grant[i] == want[i])
      continue;
    /* A unit that does not fit whole in what is left waits (a 2 MiB THP is 512 pages): the
     * VM may move a little less than its share; that is not handed on. */
    kept = list_cut(cvm->vm, cvm->plan.demote, demote[i],
                    (grant[i] * demote[i] + want[i] - 1) / want[i]);
    kept += list_cut(cvm->vm, cvm->plan.promote, want[i] - demote[i], grant[i] - kept);
    rep->deferred_host_cap = want[i] - kept;
    rep->deferred_cap += rep->deferred_host_cap;
  }
}
