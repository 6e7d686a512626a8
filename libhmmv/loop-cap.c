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
 *
 * A VM whose share of the host's cap is smaller than the next unit it wants moves nothing; its
 * share is then saved for it: it goes to that VM first in the next interval, on top of its
 * share of that interval's cap, and so on until the unit fits (deficit round robin). What is
 * saved is kept beside the host's bucket, which refills as if it were not there, so the
 * other VMs keep their shares meanwhile. Without it a second VM busy enough to take its share
 * every interval kept a unit larger than the first VM's share from ever moving (a 1 GiB page
 * beside a busy VM under the default 1000 MB/s host cap: the share is 122,070 pages). So
 * over n intervals the host moves at most n caps plus one bucket plus what is saved (less
 * than the largest unit).
 *
 * Both caps are token buckets (issue 7): each interval adds one interval's cap to the bucket,
 * a plan may use what the bucket holds, and what the VM's moves really asked of the mover is
 * taken out. The bucket holds at most the larger of one interval's cap and the VM's largest
 * unit (for the host: the largest unit of any VM). Why a bucket: a unit moves whole or not at
 * all, and a 1 GiB hugetlbfs page is 262,144 pages, above the default per-VM cap (200 MB/s:
 * 48,828 pages an interval) and the default host cap (1000 MB/s: 244,140); with a cap that
 * starts afresh every interval such a unit never moved, however hot. With the bucket it moves
 * after the cap has been idle for long enough (6 intervals per VM at the defaults). Why that
 * depth: any bigger and a VM idle for a while could spend many intervals' worth at once, a
 * burst its neighbours pay for; any smaller and the unit never fits. Over any n intervals a
 * VM moves at most n caps plus one bucket, the usual token-bucket bound. When no unit is
 * larger than a cap the bucket is one cap deep, so the cap behaves exactly as it did before.
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

void
hmmv_core_water_fill(const guint64 *want, guint64 *grant, guint n, guint64 cap)
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

/* The largest unit of the VM, in 4 KiB pages (1 without huge units). */
static guint64
largest_unit(HmmvVm *vm)
{
  guint64 nr, largest = 1;
  const HmmvUnit *units = hmmv_vm_get_units(vm, &nr);

  for (guint64 i = 0; i < nr; i++)
    largest = MAX(largest, units[i].nr_pages);
  return largest;
}

/* Adds one interval's rate to the bucket, at most depth (see the top); G_MAXUINT64: no cap. */
static guint64
bucket_refill(guint64 *tokens, guint64 rate, guint64 largest)
{
  guint64 depth = MAX(rate, largest);

  if (rate == G_MAXUINT64)
    return G_MAXUINT64;
  *tokens = MIN(*tokens, depth);
  *tokens += MIN(rate, depth - *tokens);
  return *tokens;
}

guint64
hmmv_core_vm_cap_pages(HmmvCore *core, CoreVm *cvm)
{
  return bucket_refill(&cvm->cap_tokens, hmmv_params_cap_pages(&core->params),
                       largest_unit(cvm->vm));
}

void
hmmv_core_spend_caps(HmmvCore *core, const HmmvIntervalReport *report)
{
  guint64 total = 0;

  for (guint i = 0; i < core->vms->len && i < report->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    guint64 spent = g_array_index(report->vms, HmmvVmReport, i).moved_max_pages;

    cvm->cap_tokens -= MIN(cvm->cap_tokens, spent);
    total += spent;
  }
  core->host_cap_tokens -= MIN(core->host_cap_tokens, total);
}

void
hmmv_core_share_host_cap(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report)
{
  guint64 largest = 1, cap, total = 0;
  guint n = core->vms->len;
  g_autofree guint64 *want = g_new0(guint64, MAX(n, 1));
  g_autofree guint64 *demote = g_new0(guint64, MAX(n, 1));
  g_autofree guint64 *grant = NULL, *rest = NULL, *share = NULL;
  guint64 held = 0, saved = 0, fresh;

  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (ok[i]) {
      largest = MAX(largest, largest_unit(cvm->vm));
      saved += cvm->host_saved;
    }
  }
  /* What was saved for VMs whose unit did not fit stays in the bucket beside it: the bucket
   * refills as if it were not there, so the others keep their share meanwhile. */
  saved = MIN(saved, core->host_cap_tokens);
  fresh = core->host_cap_tokens - saved;
  cap = bucket_refill(&fresh, hmmv_params_host_cap_pages(&core->params), largest);
  if (cap == G_MAXUINT64)
    return;
  core->host_cap_tokens = fresh + saved;
  cap = core->host_cap_tokens;
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (!ok[i])
      continue;
    demote[i] = list_pages(cvm->vm, cvm->plan.demote);
    want[i] = demote[i] + list_pages(cvm->vm, cvm->plan.promote);
    total += want[i];
  }
  if (total <= cap) {
    for (guint i = 0; i < n; i++)
      ((CoreVm *)g_ptr_array_index(core->vms, i))->host_saved = 0;
    return;
  }
  grant = g_new0(guint64, n);
  rest = g_new0(guint64, n);
  share = g_new0(guint64, n);
  /* What VMs whose unit did not fit saved up goes first (lowest index first), the rest of
   * the bucket is shared max-min fairly over what they still want. */
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    grant[i] = ok[i] ? MIN(MIN(cvm->host_saved, want[i]), cap - held) : 0;
    held += grant[i];
    rest[i] = want[i] - grant[i];
  }
  hmmv_core_water_fill(rest, share, n, cap - held);
  for (guint i = 0; i < n; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);
    guint64 kept;

    grant[i] += share[i];
    cvm->host_saved = 0;
    if (grant[i] == want[i])
      continue;
    /* A unit that does not fit whole in what is left waits (a 2 MiB THP is 512 pages): the
     * VM may move a little less than its share; that is not handed on. */
    cvm->plan.demote_pages = list_cut(cvm->vm, cvm->plan.demote, demote[i],
                                      (grant[i] * demote[i] + want[i] - 1) / want[i]);
    cvm->plan.promote_pages = list_cut(cvm->vm, cvm->plan.promote, want[i] - demote[i],
                                       grant[i] - cvm->plan.demote_pages);
    kept = cvm->plan.demote_pages + cvm->plan.promote_pages;
    /* Nothing fits: the grant is saved for the next interval (it stays in the bucket, which
     * is at least as deep as the largest unit), so the unit moves once enough has accrued;
     * otherwise a VM busy enough to take its share every interval kept the host's bucket
     * below a unit larger than the other VM's share for good. */
    if (kept == 0)
      cvm->host_saved = grant[i];
    rep->deferred_host_cap = want[i] - kept;
    rep->deferred_cap += rep->deferred_host_cap;
  }
}
