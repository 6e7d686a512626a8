/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: hmmv itself. The REAL libhmmv core (hmmv_core_run_interval: temperatures,
 * pool balance, hot cut, plan under the migration caps, moves) with the real replay tracker
 * reading the VMs' traces and the real sim mover standing in for move_pages(2) on a modelled
 * host with the setup's DRAM. Only what the tracker shows the core differs:
 *   hmmv-writes        the writes of each interval (the qemu-dirty tracker: the patched
 *                      QEMU's dirty bitmaps see writes only);
 *   hmmv-reads-writes  the writes of each interval, and the reads as the shipped idle-page
 *                      tracker sees them (libhmmv/trackers/idle-page.c, due()): a page is
 *                      scanned every interval at level >= 1 (key >= 16), every 2nd interval
 *                      at keys 1-15, every 8th at key 0, staggered by its 64-page block, and
 *                      a scan reports it read when it was accessed (read or written: one
 *                      accessed bit) since its last scan. DAMON, the other read source,
 *                      samples one page per region instead: not modelled;
 *   hmmv-ideal         every read and write of each interval (an ideal tracker).
 * The core keeps one bit per page an interval, so beside the other VMs a VM's pages weigh what
 * their bits say, whatever each page misses (a pointer chase's page ~200 misses an interval,
 * a key-value store's ~2: corun-rank.py). With replay --hmmv-weights misses each VM's balance
 * weight is its setup weight times its LLC misses per page its tracker saw, relative to all
 * the VMs' (cumulative, updated at each core interval from what came before: what a per-VM
 * miss counter, e.g. the PMU's on the VM's vCPU threads, and the tracker would tell hmmvd;
 * hmmvd has no such counter today).
 * Each VM's misses are charged at the placement its pages had when the interval began (the
 * core moves at the end of the interval); the sim mover places first touches as the kernel
 * does, from every access the guest made, seen or not. The core's interval is the trace's
 * (10 ms in the recorded co-runs), or with replay --hmmv-interval-ms a multiple of it, as
 * hmmvd runs (1000 ms by default, 500 ms in corun-live): the pages seen in those trace
 * intervals are one harvest, and the moves come at its end. The payback gate's figures are
 * the setup's (CorunSetup hmmv_touch_saving_ns: the replay measures them at the core's
 * interval, gate.h) or hmmvd's defaults.
 */
#include "gate.h"
#include "policy.h"

#include <hmmv/hmmv.h>
#include <string.h>

typedef enum {
  SEE_WRITES,
  SEE_READS_WRITES,
  SEE_ALL,
} SeeKind;

/* The replay tracker, filtered to what the modelled tracker would see. */
typedef struct {
  HmmvTracker *replay;
  SeeKind see;
  guint64 harvests;
  guint64 *accessed;        /* reads-writes: accessed since the page's last scan */
  gsize nr_words;
  guint per_harvest;        /* trace intervals one harvest covers (the core's interval) */
  guint64 seen;             /* pages it reported, summed over its harvests */
} SeeTracker;

/* The idle-page tracker's schedule (libhmmv/trackers/idle-page.c, due(), cold_period 8). */
static gboolean
idle_page_due(guint64 harvests, guint8 key, guint64 page)
{
  guint64 t = harvests + (page >> 6);

  if (key >= 16)
    return TRUE;
  if (key > 0)
    return (t & 1) == 0;
  return t % 8 == 0;
}

static gboolean
see_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  SeeTracker *st = tracker->priv;

  st->harvests = 0;
  return hmmv_tracker_start(st->replay, vm, error);
}

static gboolean
see_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  SeeTracker *st = tracker->priv;
  g_autoptr(HmmvAccess) mine = hmmv_access_new(acc->nr_pages, error);
  g_autoptr(HmmvAccess) one = hmmv_access_new(acc->nr_pages, error);

  if (mine == NULL || one == NULL)
    return FALSE;
  /* the core's interval covers per_harvest of the trace's: what they touched, as one */
  for (guint k = 0; k < MAX(st->per_harvest, 1u); k++) {
    hmmv_access_clear(one);
    if (!hmmv_tracker_harvest(st->replay, vm, one, error))
      return FALSE;
    if (one->intervals == 0)
      break;
    for (gsize w = 0; w < mine->nr_words; w++) {
      mine->writes[w] |= one->writes[w];
      mine->reads[w] |= one->reads[w];
    }
    mine->has_reads |= one->has_reads;
    mine->intervals = 1;
  }
  for (gsize w = 0; w < acc->nr_words; w++)
    acc->writes[w] |= mine->writes[w];
  acc->intervals = MAX(acc->intervals, mine->intervals);
  if (mine->intervals == 0)
    return TRUE;
  switch (st->see) {
  case SEE_WRITES:
    break;
  case SEE_ALL:
    for (gsize w = 0; w < acc->nr_words; w++)
      acc->reads[w] |= mine->reads[w];
    acc->has_reads = TRUE;
    break;
  case SEE_READS_WRITES: {
    const guint8 *temp = hmmv_vm_get_temp(vm);

    if (st->accessed == NULL) {
      st->accessed = g_new0(guint64, acc->nr_words);
      st->nr_words = acc->nr_words;
    }
    for (gsize w = 0; w < acc->nr_words && w < st->nr_words; w++) {
      st->accessed[w] |= mine->reads[w] | mine->writes[w];
      for (guint64 bits = st->accessed[w]; bits != 0; bits &= bits - 1) {
        guint64 page = w * 64 + (guint64)__builtin_ctzll(bits);

        if (page < acc->nr_pages && idle_page_due(st->harvests, temp[page], page)) {
          acc->reads[w] |= G_GUINT64_CONSTANT(1) << (page & 63);
          st->accessed[w] &= ~(G_GUINT64_CONSTANT(1) << (page & 63));
        }
      }
    }
    acc->has_reads = TRUE;
    break;
  }
  }
  for (gsize w = 0; w < acc->nr_words; w++)
    st->seen += (guint64)__builtin_popcountll(acc->writes[w] | (acc->has_reads ? acc->reads[w] : 0));
  st->harvests++;
  return TRUE;
}

static void
see_destroy(HmmvTracker *tracker)
{
  SeeTracker *st = tracker->priv;

  hmmv_tracker_free(st->replay);
  g_free(st->accessed);
  g_free(st);
}

static const struct hmmv_tracker_ops see_tracker_ops = {
  .name = "replay-filtered",
  .start = see_start,
  .harvest = see_harvest,
  .destroy = see_destroy,
};

typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvIntervalReport report;
  HmmvAccess **acc;         /* each VM's full accesses this interval (for first touch) */
  GArray *touched;
  guint per_core;           /* trace intervals per core interval */
  SeeTracker **see;         /* each VM's tracker (owned by the core) */
  guint64 *misses;          /* each VM's LLC misses so far (--hmmv-weights misses) */
} HmmvPolicy;

static HmmvVm *
make_vm(const CorunVmInfo *info, GError **error)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new(info->name);

  if (!hmmv_vm_add_region(vm, "pc.ram", 0, 0, info->nr_pages * HMMV_PAGE_SIZE, HMMV_PAGE_SIZE,
                          error) ||
      !hmmv_vm_finalize_layout(vm, error))
    return NULL;
  return g_steal_pointer(&vm);
}

static gboolean
hmmv_init(CorunPolicy *policy, SeeKind see, GError **error)
{
  const CorunSetup *setup = policy->setup;
  HmmvPolicy *hp = g_new0(HmmvPolicy, 1);
  HmmvParams params;
  guint64 total = 0;

  policy->priv = hp;
  hmmv_interval_report_init(&hp->report);
  hp->touched = g_array_new(FALSE, FALSE, sizeof(guint64));
  hp->acc = g_new0(HmmvAccess *, setup->nr_vms);
  hp->see = g_new0(SeeTracker *, setup->nr_vms);
  hp->misses = g_new0(guint64, setup->nr_vms);
  for (guint v = 0; v < setup->nr_vms; v++)
    total += setup->vms[v].nr_pages;
  hp->topo = hmmv_topology_new();
  if (!hmmv_topology_add_node(hp->topo, 0, MAX(setup->dram_pages, 1) * HMMV_PAGE_SIZE, 2,
                              HMMV_TIER_DRAM, error) ||
      !hmmv_topology_add_node(hp->topo, 1, total * HMMV_PAGE_SIZE, 0, HMMV_TIER_SLOW, error))
    return FALSE;
  hp->mover = hmmv_sim_mover_new(hp->topo, error);
  if (hp->mover == NULL)
    return FALSE;
  if (setup->profile != NULL)
    hmmv_sim_mover_set_ns_per_page(hp->mover, (guint64)setup->profile->move_ns_per_page);
  hmmv_params_init(&params);
  /* The core's interval is hmmvd's when the replay is given one (--hmmv-interval-ms), else
   * the trace's; its caps are MB/s over it. */
  hp->per_core = corun_gate_per_core(setup);
  params.interval_ms = CLAMP(setup->interval_ms * hp->per_core, 10, 3600 * 1000);
  /* The payback gate at that interval (gate.h), when the replay measured it */
  if (setup->hmmv_touch_saving_ns != 0) {
    params.touch_saving_ns = setup->hmmv_touch_saving_ns;
    params.move_cost_ns = setup->hmmv_move_cost_ns;
  }
  hp->core = hmmv_core_new(hp->topo, hp->mover, &params, 0, error);
  if (hp->core == NULL)
    return FALSE;
  for (guint v = 0; v < setup->nr_vms; v++) {
    SeeTracker *st;
    HmmvTracker *replay, *tracker;
    HmmvVm *vm;

    hp->acc[v] = hmmv_access_new(setup->vms[v].nr_pages, error);
    if (hp->acc[v] == NULL)
      return FALSE;
    replay = hmmv_replay_tracker_new(setup->vms[v].trace_path, FALSE, error);
    if (replay == NULL)
      return FALSE;
    st = g_new0(SeeTracker, 1);
    st->replay = replay;
    st->see = see;
    st->per_harvest = hp->per_core;
    hp->see[v] = st;
    tracker = hmmv_tracker_new(&see_tracker_ops, st, error);
    if (tracker == NULL) {
      hmmv_tracker_free(replay);
      g_free(st);
      return FALSE;
    }
    vm = make_vm(&setup->vms[v], error);
    if (vm == NULL) {
      hmmv_tracker_free(tracker);
      return FALSE;
    }
    {
      /* setup.json's quota, as hmmvd takes it from virsh metadata: the weight is the VM's
       * share of the lent DRAM in the core's balance, the min its guaranteed DRAM (scaled
       * down in proportion when the mins do not fit in the pool), the max its ceiling */
      HmmvQuota quota = *hmmv_vm_get_quota(vm);

      if (setup->vms[v].weight != 0)
        quota.weight = setup->vms[v].weight;
      quota.min_pages = setup->vms[v].dram_min_pages;
      quota.max_pages = setup->vms[v].dram_max_pages;
      hmmv_vm_set_quota(vm, &quota);
    }
    if (!hmmv_core_add_vm(hp->core, vm, tracker, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
hmmv_writes_init(CorunPolicy *policy, GError **error)
{
  return hmmv_init(policy, SEE_WRITES, error);
}

static gboolean
hmmv_reads_writes_init(CorunPolicy *policy, GError **error)
{
  return hmmv_init(policy, SEE_READS_WRITES, error);
}

static gboolean
hmmv_ideal_init(CorunPolicy *policy, GError **error)
{
  return hmmv_init(policy, SEE_ALL, error);
}

/* --hmmv-weights misses: weight = setup weight x (misses / seen pages) / (the same over all
 * VMs), within virsh metadata's bounds; a VM whose tracker saw nothing yet keeps its own. */
static void
miss_weights(HmmvPolicy *hp, const CorunSetup *setup)
{
  guint64 misses = 0, seen = 0;

  for (guint v = 0; v < setup->nr_vms; v++) {
    misses += hp->misses[v];
    seen += hp->see[v]->seen;
  }
  if (misses == 0 || seen == 0)
    return;
  for (guint v = 0; v < setup->nr_vms; v++) {
    HmmvVm *vm = hmmv_core_get_vm(hp->core, v);
    HmmvQuota quota = *hmmv_vm_get_quota(vm);
    double base = setup->vms[v].weight != 0 ? setup->vms[v].weight : 100;

    if (hp->see[v]->seen == 0)
      continue;
    quota.weight = (guint)CLAMP(base * ((double)hp->misses[v] / (double)hp->see[v]->seen) /
                                ((double)misses / (double)seen) + 0.5, 1, 10000);
    hmmv_vm_set_quota(vm, &quota);
  }
}

static gboolean
hmmv_interval(CorunPolicy *policy, guint64 index, const CorunAccesses *now,
              CorunDemand *demand, GError **error)
{
  HmmvPolicy *hp = policy->priv;
  guint nr_vms = policy->setup->nr_vms;

  for (guint v = 0; v < nr_vms; v++) {
    HmmvVm *vm = hmmv_core_get_vm(hp->core, v);
    HmmvAccess *acc = hp->acc[v];
    const guint8 *place;

    hmmv_access_clear(acc);
    g_array_set_size(hp->touched, 0);
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];

      if (e->stored)
        hmmv_access_mark_write(acc, e->page);
      else
        hmmv_access_mark_read(acc, e->page);
      g_array_append_val(hp->touched, e->page);
    }
    acc->intervals = 1;
    /* The guest touches before anyone decides: first touch places, then the misses are
     * charged where the pages are. */
    hmmv_mover_touch(hp->mover, vm, acc);
    if (!hmmv_mover_query(hp->mover, vm, (const guint64 *)hp->touched->data, hp->touched->len,
                          error))
      return FALSE;
    place = hmmv_vm_get_place(vm);
    for (gsize i = 0; i < now[v].nr_entries; i++) {
      const HmmvTraceEntry *e = &now[v].entries[i];

      hp->misses[v] += (guint64)e->reads + e->writes;
      if (HMMV_PLACE_IS_SLOW(place[e->page])) {
        demand[v].slow_reads += e->reads;
        demand[v].slow_writes += e->writes;
      } else {
        demand[v].dram_reads += e->reads;
        demand[v].dram_writes += e->writes;
      }
    }
  }
  /* the core acts at the end of its interval (every per_core trace intervals) */
  if ((index + 1) % hp->per_core != 0)
    return TRUE;
  if (policy->setup->hmmv_miss_weights)
    miss_weights(hp, policy->setup);
  if (!hmmv_core_run_interval(hp->core, &hp->report, error))
    return FALSE;
  for (guint i = 0; i < hp->report.vms->len && i < nr_vms; i++) {
    const HmmvVmReport *rep = &g_array_index(hp->report.vms, HmmvVmReport, i);

    if (rep->error != NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "vm %s: %s", rep->name,
                  rep->error->message);
      return FALSE;
    }
    demand[i].promoted += rep->promoted;
    demand[i].demoted += rep->demoted;
  }
  return TRUE;
}

static void
hmmv_dram_pages(CorunPolicy *policy, guint64 *vm_dram)
{
  HmmvPolicy *hp = policy->priv;

  for (guint v = 0; v < policy->setup->nr_vms; v++)
    vm_dram[v] = hmmv_vm_get_dram_pages(hmmv_core_get_vm(hp->core, v));
}

static void
hmmv_destroy(CorunPolicy *policy)
{
  HmmvPolicy *hp = policy->priv;

  if (hp == NULL)
    return;
  if (hp->core != NULL && hp->mover != NULL)
    for (guint v = 0; v < hmmv_core_get_nr_vms(hp->core); v++)
      hmmv_sim_mover_forget_vm(hp->mover, hmmv_core_get_vm(hp->core, v));
  hmmv_interval_report_clear(&hp->report);
  hmmv_core_free(hp->core);
  hmmv_mover_free(hp->mover);
  hmmv_topology_free(hp->topo);
  for (guint v = 0; v < policy->setup->nr_vms; v++)
    hmmv_access_free(hp->acc[v]);
  g_free(hp->acc);
  g_free(hp->see);
  g_free(hp->misses);
  g_array_unref(hp->touched);
  g_free(hp);
}

const struct corun_policy_ops corun_policy_hmmv_writes = {
  .name = "hmmv-writes",
  .init = hmmv_writes_init,
  .interval = hmmv_interval,
  .dram_pages = hmmv_dram_pages,
  .destroy = hmmv_destroy,
};

const struct corun_policy_ops corun_policy_hmmv_reads_writes = {
  .name = "hmmv-reads-writes",
  .init = hmmv_reads_writes_init,
  .interval = hmmv_interval,
  .dram_pages = hmmv_dram_pages,
  .destroy = hmmv_destroy,
};

const struct corun_policy_ops corun_policy_hmmv_ideal = {
  .name = "hmmv-ideal",
  .init = hmmv_ideal_init,
  .interval = hmmv_interval,
  .dram_pages = hmmv_dram_pages,
  .destroy = hmmv_destroy,
};
