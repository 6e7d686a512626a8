/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The interval loop: the one place that calls trackers, the decision modules and the mover,
 * in this order, for every VM:
 *
 *   harvest -> first-touch and placement refresh -> temperatures -> balance the DRAM pool
 *   -> hot cut -> plan -> move (every VM's demotions first, to make room) -> bring home
 *   (loop-home.c) -> cooldown
 *   -> report
 *
 * Data flows one way; nothing below calls back up. A VM whose tracker or mover fails gets
 * the error in its report and loses nothing else; the other VMs go on.
 *
 * The core's table of VMs is in loop-vms.c, the balance of the DRAM pool in loop-balance.c,
 * the placement and huge-unit reads the harvest and the moves call in loop-place.c, each VM's
 * plan (and the settled VM's plan kept) in loop-plan.c, the host-wide cap in loop-cap.c, the
 * moves sized by the mover's speed in loop-batch.c, the plans carried out over the nodes in
 * loop-move.c, pages brought home in loop-home.c, how closely each tracker must watch in
 * loop-watch.c, whether its pages can be ranked at all in loop-rank.c, the worker in
 * loop-async.c.
 */
#include "core-private.h"
#include "loop-move-private.h"
#include "loop-plan-private.h"
#include "nodes-private.h"
#include "vm-private.h"

#include <hmmv/balance.h>
#include <hmmv/core.h>
#include <hmmv/error.h>
#include <hmmv/units.h>

#include <string.h>

static void
core_vm_free(gpointer data)
{
  CoreVm *cvm = data;

  hmmv_tracker_stop(cvm->tracker);
  hmmv_tracker_free(cvm->tracker);
  hmmv_access_free(cvm->acc);
  hmmv_plan_clear(&cvm->plan);
  for (guint t = 0; t < G_N_ELEMENTS(cvm->away); t++)
    g_clear_pointer(&cvm->away[t].pages, g_array_unref);
  hmmv_vm_free(cvm->vm);
  g_free(cvm);
}

HmmvCore *
hmmv_core_new(const HmmvTopology *topo, HmmvMover *mover, const HmmvParams *params,
              guint64 pool_pages, GError **error)
{
  g_autoptr(HmmvCore) core = NULL;

  g_return_val_if_fail(topo != NULL && mover != NULL && params != NULL, NULL);
  if (!hmmv_params_validate(params, error))
    return NULL;
  if (!hmmv_topology_has_tier(topo, HMMV_TIER_DRAM)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "the topology has no DRAM node to keep hot pages on");
    return NULL;
  }
  core = g_new0(HmmvCore, 1);
  core->topo = topo;
  core->mover = mover;
  core->params = *params;
  hmmv_temp_tables_init(&core->tables, params);
  core->vms = g_ptr_array_new_with_free_func(core_vm_free);
  core->scratch_pages = g_array_new(FALSE, FALSE, sizeof(guint64));
  g_mutex_init(&core->lock);
  hmmv_core_holds_init(core);
  hmmv_core_set_pool_pages(core, pool_pages);
  return g_steal_pointer(&core);
}

void
hmmv_core_free(HmmvCore *core)
{
  if (core == NULL)
    return;
  g_return_if_fail(!hmmv_core_is_running(core));
  g_ptr_array_unref(core->vms);
  hmmv_core_holds_clear(core);
  g_array_unref(core->scratch_pages);
  g_mutex_clear(&core->lock);
  g_free(core);
}

static void core_publish_pools(HmmvCore *core);

void
hmmv_core_update_pools(HmmvCore *core)
{
  guint64 used[HMMV_NR_NODE_SLOTS] = { 0 };
  guint64 dram;

  for (guint i = 0; i < core->vms->len; i++) {
    const HmmvVm *vm = ((CoreVm *)g_ptr_array_index(core->vms, i))->vm;

    for (int node = 0; node < HMMV_NR_NODE_SLOTS; node++)
      used[node] += vm->node_pages[node];
  }
  (void)hmmv_core_holds_count(core, used);   /* still on their nodes: neither free nor idle */
  dram = hmmv_nodes_update(core->topo, core->nodes, used);
  core->pool_pages = core->pool_limit != 0 ? MIN(core->pool_limit, dram) : dram;
  core_publish_pools(core);
}

void
hmmv_core_set_pool_pages(HmmvCore *core, guint64 pool_pages)
{
  core->pool_limit = pool_pages;
  hmmv_core_update_pools(core);
}

gboolean
hmmv_core_set_node_pool(HmmvCore *core, int node_id, guint64 configured_pages,
                        guint64 reserve_pages, GError **error)
{
  if (hmmv_topology_lookup(core->topo, node_id) == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND,
                "node %d: not a node of this host's topology, cannot set its pool", node_id);
    return FALSE;
  }
  core->nodes[node_id].configured_pages = configured_pages;
  core->nodes[node_id].reserve_pages = reserve_pages;
  hmmv_core_update_pools(core);
  return TRUE;
}

guint
hmmv_core_get_node_pools(const HmmvCore *core, HmmvNodePool *out, guint max)
{
  HmmvCore *c = (HmmvCore *)core;
  guint n;

  /* what the interval last published: one may be running on another thread */
  g_mutex_lock(&c->lock);
  n = MIN(c->nr_pools_seen, max);
  memcpy(out, c->pools_seen, n * sizeof(*out));
  g_mutex_unlock(&c->lock);
  return n;
}

/* The pools as other threads see them (hmmv_core_get_node_pools, _get_pool_pages, the pool
 * usage): copied under the lock by whichever thread runs the interval or changes them. */
static void
core_publish_pools(HmmvCore *core)
{
  guint n = MIN(hmmv_topology_get_nr_nodes(core->topo), G_N_ELEMENTS(core->pools_seen));
  HmmvNodePool *out = core->pools_seen;

  g_mutex_lock(&core->lock);
  core->pool_seen = core->pool_pages;
  core->nr_pools_seen = n;

  for (guint i = 0; i < n; i++) {
    const HmmvNode *node = hmmv_topology_get_node(core->topo, i);
    const HmmvNodeState *state = &core->nodes[node->id];

    out[i] = (HmmvNodePool){
      .id = node->id,
      .tier = node->tier,
      .total_pages = node->total_bytes >> HMMV_PAGE_SHIFT,
      .free_pages = node->free_bytes >> HMMV_PAGE_SHIFT,
      .configured_pages = state->configured_pages,
      .reserve_pages = state->reserve_pages,
      .capacity_pages = state->capacity_pages,
      .used_pages = state->used_pages,
      .fallback_in_pages = state->fallback_in_pages,
      .full = state->full,
    };
  }
  g_mutex_unlock(&core->lock);
}

gboolean
hmmv_core_set_params(HmmvCore *core, const HmmvParams *params, GError **error)
{
  if (!hmmv_params_validate(params, error))
    return FALSE;
  core->params = *params;
  hmmv_temp_tables_init(&core->tables, params);
  return TRUE;
}

const HmmvParams *
hmmv_core_get_params(const HmmvCore *core)
{
  return &core->params;
}

gboolean
hmmv_core_is_running(const HmmvCore *core)
{
  return g_atomic_int_get(&((HmmvCore *)core)->running) != 0;
}

/* The mean weight of the pages this harvest saw accessed (written: write_weight, only read:
 * read_weight), folded into the VM's moving average (vm-private.h). */
static void
core_note_access_mix(HmmvCore *core, HmmvVm *vm, const HmmvAccess *acc, guint64 written)
{
  guint64 only_read = 0, sample;

  if (acc->has_reads)
    for (gsize w = 0; w < acc->nr_words; w++)
      only_read += (guint64)__builtin_popcountll(acc->reads[w] & ~acc->writes[w]);
  if (written + only_read == 0)
    return;
  sample = (256u * (written * core->params.write_weight + only_read * core->params.read_weight)) /
           (written + only_read);
  if (vm->access_weight_x256 == 0)
    vm->access_weight_x256 = (guint)MAX(sample, 1u);
  else
    vm->access_weight_x256 = (guint)MAX((vm->access_weight_x256 * 15u + sample) / 16u, 1u);
}

static gboolean
core_harvest(HmmvCore *core, CoreVm *cvm, HmmvVmReport *rep, GError **error)
{
  g_autoptr(GError) local_error = NULL;

  if (!hmmv_core_read_placement(core, cvm, error))
    return FALSE;
  rep->placement_unread = hmmv_vm_get_nr_pages(cvm->vm) - cvm->place_next;
  hmmv_access_clear(cvm->acc);
  if (!hmmv_tracker_harvest(cvm->tracker, cvm->vm, cvm->acc, &local_error)) {
    if (!g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_BUSY)) {
      g_propagate_prefixed_error(error, g_steal_pointer(&local_error), "tracker %s: ",
                                 hmmv_tracker_get_name(cvm->tracker));
      return FALSE;
    }
    /* Nothing for this interval yet (a QEMU that has not answered the interval's hmmv-sync
     * in time: daemon/libvirt-qmp.c): a harvest of 0 intervals, as tracker.h has a source
     * with nothing new published report it; the next harvest brings what was written. The
     * VM stays in the balance and its plan runs on what the core knew. As a failing VM it
     * was left outside, keeping the DRAM it held as its budget, none of its pages moving:
     * in the testbed's libvirt run at load 20-29 most intervals were late, the budgets
     * summed to 11,652 pages against a pool of 4,096 and a VM stayed at 2,126 pages above
     * its dram-max of 512 (issue 8; tests/test-loop-late.c). */
    hmmv_access_clear(cvm->acc);   /* 0 intervals: nothing cools, nothing is first seen */
    rep->harvest_late = TRUE;
  }
  rep->intervals_merged = cvm->acc->intervals;
  rep->written = hmmv_bitmap_count(cvm->acc->writes, cvm->acc->nr_words);
  rep->read = cvm->acc->has_reads ? hmmv_bitmap_count(cvm->acc->reads, cvm->acc->nr_words) : 0;
  core_note_access_mix(core, cvm->vm, cvm->acc, rep->written);
  hmmv_mover_touch(core->mover, cvm->vm, cvm->acc);
  if (!hmmv_core_refresh_placement(core, cvm, rep, error))
    return FALSE;
  hmmv_temperature_update(cvm->vm, &core->tables, cvm->acc, &cvm->hist);
  hmmv_core_rank_sample(cvm, cvm->acc, &cvm->hist);
  /* huge units are decided whole, at the mean of their pages' keys (units.h) */
  hmmv_units_aggregate(cvm->vm, &cvm->hist);
  return TRUE;
}

/* Pages the guests touch for the first time land where the kernel finds room: on DRAM while
 * it has free pages, else on the slow tier, from where they must be promoted (a demotion and
 * a promotion, 2 x 3.9 us, and the accesses meanwhile at slow-tier cost). So the balancer
 * keeps free, out of the cold DRAM VMs hold, about four intervals' worth of the pages the
 * guests first-touched lately: 4x the last interval's first touches, or the last headroom
 * less 1/8, whichever is larger, at most 1/16 of the pool (free DRAM is refilled only by
 * demotions under the bandwidth cap, so one interval's worth runs dry between them). No
 * first touches (a settled host): the headroom decays to 0 and cold DRAM stays with its
 * holder. In the co-run model (tests/bench/corun-sim.c, hot sets drifting 1/16 an interval)
 * keeping all cold DRAM with its holders took the slowdown to 1.46x of all-DRAM; with this
 * headroom it is 1.07x (spreading it all by weight, before issue 7 item 6: 1.09x). */
static void
core_headroom(HmmvCore *core)
{
  guint64 decayed = core->headroom_pages - core->headroom_pages / 8;
  guint64 first_seen = 0;

  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    first_seen += cvm->vm->first_seen - cvm->first_seen;
    cvm->first_seen = cvm->vm->first_seen;
  }
  core->headroom_pages = MIN(MAX(4 * first_seen, decayed), core->pool_pages / 16);
  /* A closed payback gate (no key pays back a move) frees none: a first-touched page is at
   * best as hot as the hottest key, so the demotion that makes room for it does not pay back
   * either, and room the first touches leave is idle for good, as nothing is promoted into
   * it (issue 7: hmmv4-long at CXL 50%, 331 of btree's pages demoted 7 intervals after the
   * guests' first touches stopped, for a headroom decayed from them; tests/test-loop.c,
   * closed gate). The first touches land where the kernel puts them, as under first-touch. */
  if (hmmv_plan_payback_min_key(&core->params) >= HMMV_NR_KEYS)
    core->headroom_pages = 0;
}

void
hmmv_core_get_pool_usage(HmmvCore *core, const char *name, const HmmvQuota *quota,
                         HmmvPoolUsage *usage)
{
  /* What the last interval left, under the lock: an interval may be running meanwhile. */
  g_mutex_lock(&core->lock);
  hmmv_core_pool_usage_locked(core, name, quota, usage);
  g_mutex_unlock(&core->lock);
}

void
hmmv_core_pool_usage_locked(HmmvCore *core, const char *name, const HmmvQuota *quota,
                            HmmvPoolUsage *usage)
{
  *usage = (HmmvPoolUsage){ .pool_pages = core->pool_seen };
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    const HmmvQuota *q = cvm->ctl_quota_set ? &cvm->ctl_quota : hmmv_vm_get_quota(cvm->vm);
    gboolean failing = cvm->seen_outside && !cvm->ctl_paused && q->managed;

    if (name != NULL && quota != NULL && g_strcmp0(hmmv_vm_get_name(cvm->vm), name) == 0)
      q = quota;
    if (failing || cvm->ctl_paused || cvm->ctl_frozen || !q->managed)
      usage->held_outside_pages += cvm->seen_dram_pages;
    else
      usage->min_pages += MIN(q->min_pages, hmmv_vm_get_nr_pages(cvm->vm));
  }
  usage->held_outside_pages += hmmv_core_holds_dram_locked(core);
}

guint64
hmmv_core_get_pool_pages(const HmmvCore *core)
{
  HmmvCore *c = (HmmvCore *)core;
  guint64 pages;

  g_mutex_lock(&c->lock);
  pages = c->pool_seen;
  g_mutex_unlock(&c->lock);
  return pages;
}


/* One interval on the calling thread; running is set by the caller. */
gboolean
hmmv_core_run_locked(HmmvCore *core, HmmvIntervalReport *report, GError **error)
{
  g_autofree gboolean *ok = g_new0(gboolean, MAX(core->vms->len, 1));
  gint64 start_us = g_get_monotonic_time();
  g_autoptr(GString) note = g_string_new(NULL);
  g_autoptr(GPtrArray) later = g_ptr_array_new_with_free_func((GDestroyNotify)g_array_unref);

  for (guint i = 0; i < core->vms->len; i++)
    g_ptr_array_add(later, g_array_new(FALSE, FALSE, sizeof(guint64)));
  if (report->vms == NULL)
    hmmv_interval_report_init(report);
  g_array_set_size(report->vms, 0);
  g_clear_error(&report->balance_error);
  g_clear_pointer(&report->balance_note, g_free);
  g_clear_pointer(&report->fallback_note, g_free);
  report->index = core->interval_index++;
  g_array_set_size(report->vms, core->vms->len);

  /* What other threads asked since the last interval applies from this one. */
  g_mutex_lock(&core->lock);
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    cvm->paused = cvm->ctl_paused;
    if (cvm->frozen && !cvm->ctl_frozen)
      hmmv_core_thaw(core, cvm);
    cvm->frozen = cvm->ctl_frozen;
    if (cvm->ctl_quota_set)
      hmmv_vm_set_quota(cvm->vm, &cvm->ctl_quota);
    cvm->ctl_quota_set = FALSE;
  }
  g_mutex_unlock(&core->lock);
  hmmv_core_holds_settle(core);

  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    rep->name = hmmv_vm_get_name(cvm->vm);
    rep->nr_pages = hmmv_vm_get_nr_pages(cvm->vm);
    rep->paused = cvm->paused;
    rep->frozen = cvm->frozen;
    /* frozen: its QEMU does not answer; nothing of it is asked (core.h) */
    ok[i] = cvm->frozen || core_harvest(core, cvm, rep, &rep->error);
    if (!ok[i])
      g_prefix_error(&rep->error, "vm %s: ", rep->name);
  }

  /* Each node's capacity from the free memory the caller just re-read, and each VM's nodes
   * from where its vCPUs run or its pages are now. */
  hmmv_core_update_pools(core);
  report->pool_pages = core->pool_pages;
  for (int node = 0; node < HMMV_NR_NODE_SLOTS; node++)
    core->nodes[node].full = FALSE;
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    rep->dram_node = hmmv_nodes_targets(core->topo, cvm->vm, &cvm->promote_to, &cvm->demote_to);
    rep->slow_node = cvm->demote_to.nr_rank > 0 ? cvm->demote_to.rank[0] : -1;
    cvm->left_alone = hmmv_nodes_left_alone(cvm->vm, &cvm->promote_to, &cvm->demote_to);
    rep->left_alone = cvm->left_alone;
  }
  core_headroom(core);
  /* Impossible quotas: keep the budgets of the last good interval. */
  if (!hmmv_core_balance(core, ok, &report->balance_note, &report->balance_error))
    g_prefix_error(&report->balance_error, "DRAM pool of %" G_GUINT64_FORMAT " pages: ",
                   core->pool_pages);

  /* Plan every VM, then demote for all of them before any promotes: DRAM one VM's budget
   * gave up is free before another VM's promotions need it. The mover's errors already name
   * the VM; a VM whose demotions failed does not promote. */
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    ok[i] = ok[i] && !cvm->outside;
    if (ok[i])
      hmmv_core_plan(core, cvm, &g_array_index(report->vms, HmmvVmReport, i));
  }
  hmmv_core_share_host_cap(core, ok, report);
  hmmv_core_fit_batch(core, ok, report);
  core->moved_ns = 0;
  core->moved_pages = 0;
  core->learn_ns = 0;
  core->learn_pages = 0;
  /* Each VM's demotions that make room for its promotions, then the promotions, then the
   * demotions nothing waits for (loop-batch.c: hmmv_core_split_demotions), unless the
   * promotions need the pool's room those free. */
  hmmv_core_split_demotions(core, ok, later);
  hmmv_core_demote(core, ok, report, note);
  if (hmmv_core_promotions_wait(core, ok)) {
    hmmv_core_swap_demotions(core, later);
    hmmv_core_demote(core, ok, report, note);
    hmmv_core_swap_demotions(core, later);
    for (guint i = 0; i < later->len; i++)
      g_array_set_size(g_ptr_array_index(later, i), 0);
  }
  hmmv_core_limit_promotions(core, ok, report);
  hmmv_core_promote(core, ok, report, note);
  hmmv_core_swap_demotions(core, later);
  hmmv_core_demote(core, ok, report, note);
  hmmv_core_bring_home(core, ok, report);
  hmmv_core_spend_caps(core, report);
  hmmv_core_learn_speed(core);
  report->moved_ns = core->moved_ns;
  if (note->len > 0)
    report->fallback_note = g_string_free(g_steal_pointer(&note), FALSE);
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);
    HmmvVmReport *rep = &g_array_index(report->vms, HmmvVmReport, i);

    rep->budget_pages = hmmv_vm_get_budget_pages(cvm->vm);
    hmmv_vm_get_huge_pages(cvm->vm, &rep->thp_pages, &rep->hugetlb_pages);
    rep->min_granted_pages = cvm->outside ? 0 : cvm->min_granted;
    rep->dram_pages = hmmv_vm_get_dram_pages(cvm->vm);
    rep->slow_pages = hmmv_vm_get_slow_pages(cvm->vm);
  }
  hmmv_core_watch(core, ok, report);
  hmmv_core_rank_flat(core, report);
  g_mutex_lock(&core->lock);
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    cvm->seen_outside = cvm->outside;
    cvm->seen_dram_pages = hmmv_vm_get_dram_pages(cvm->vm);
  }
  g_mutex_unlock(&core->lock);
  core_publish_pools(core);   /* this interval's fallbacks and full nodes */
  report->elapsed_ns = (guint64)(g_get_monotonic_time() - start_us) * 1000u;
  return TRUE;
}

gboolean
hmmv_core_run_interval(HmmvCore *core, HmmvIntervalReport *report, GError **error)
{
  gboolean ok;

  if (!g_atomic_int_compare_and_exchange(&core->running, 0, 1)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY, "an interval is already running");
    return FALSE;
  }
  ok = hmmv_core_run_locked(core, report, error);
  g_atomic_int_set(&core->running, 0);
  return ok;
}

static void
vm_report_clear(gpointer data)
{
  HmmvVmReport *rep = data;

  g_clear_error(&rep->error);
}

void
hmmv_interval_report_init(HmmvIntervalReport *report)
{
  *report = (HmmvIntervalReport){ 0 };
  report->vms = g_array_new(FALSE, TRUE, sizeof(HmmvVmReport));
  g_array_set_clear_func(report->vms, vm_report_clear);
}

void
hmmv_interval_report_clear(HmmvIntervalReport *report)
{
  g_clear_pointer(&report->vms, g_array_unref);
  g_clear_error(&report->balance_error);
  g_clear_pointer(&report->balance_note, g_free);
  g_clear_pointer(&report->fallback_note, g_free);
}
