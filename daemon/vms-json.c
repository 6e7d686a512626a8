/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The JSON views of the VM table and of the daemon, shared by the control socket (and so by
 * hmmvctl --json) and the tests. Member names are dashed, figures are in pages unless the
 * name says MiB or bytes.
 */
#include "quota.h"
#include "vms.h"

static const char *
source_name(HmmvdSource source)
{
  return source == HMMVD_SOURCE_LIBVIRT ? "libvirt" : "standalone";
}

static void
add_uint(JsonBuilder *builder, const char *member, guint64 value)
{
  json_builder_set_member_name(builder, member);
  json_builder_add_int_value(builder, (gint64)MIN(value, (guint64)G_MAXINT64));
}

static void
add_string(JsonBuilder *builder, const char *member, const char *value)
{
  json_builder_set_member_name(builder, member);
  if (value != NULL)
    json_builder_add_string_value(builder, value);
  else
    json_builder_add_null_value(builder);
}

static void
add_bool(JsonBuilder *builder, const char *member, gboolean value)
{
  json_builder_set_member_name(builder, member);
  json_builder_add_boolean_value(builder, value);
}

static void
quota_to_json(JsonBuilder *builder, const HmmvQuota *quota)
{
  json_builder_set_member_name(builder, "quota");
  json_builder_begin_object(builder);
  add_uint(builder, "dram-min-mib", quota->min_pages / HMMVD_PAGES_PER_MIB);
  add_uint(builder, "dram-max-mib", quota->max_pages / HMMVD_PAGES_PER_MIB);
  add_uint(builder, "weight", quota->weight);
  add_bool(builder, "managed", quota->managed);
  json_builder_end_object(builder);
}

static void
moves_to_json(JsonBuilder *builder, const HmmvMoveStats *moves)
{
  add_uint(builder, "promotions-total", moves->promoted);
  add_uint(builder, "demotions-total", moves->demoted);
  json_builder_set_member_name(builder, "move-failures");
  json_builder_begin_object(builder);
  add_uint(builder, "not-present", moves->not_present);
  add_uint(builder, "busy", moves->busy);
  add_uint(builder, "no-memory", moves->no_memory);
  add_uint(builder, "fault", moves->fault);
  add_uint(builder, "access", moves->access);
  add_uint(builder, "other", moves->other);
  add_uint(builder, "call-failures", moves->call_failures);
  json_builder_end_object(builder);
}

/* Pages that failed their last move and are backed off, by cause (vm.h). */
static void
unmovable_to_json(JsonBuilder *builder, const HmmvUnmovable *unmovable)
{
  json_builder_set_member_name(builder, "unmovable-pages");
  json_builder_begin_object(builder);
  for (guint c = 0; c < HMMV_NR_UNMOVABLE_CAUSES; c++)
    add_uint(builder, hmmv_unmovable_cause_to_string(c), unmovable->pages[c]);
  json_builder_end_object(builder);
}

/* "N" or "A-B": a figure over the flat intervals of the window. */
static char *
range_text(guint64 least, guint64 most)
{
  return least == most ? g_strdup_printf("%" G_GUINT64_FORMAT, least)
                       : g_strdup_printf("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT, least, most);
}

/* Every figure is over the same intervals as the verdict: the flat ones of the last
 * rank_window sampled intervals (review 18, F3: the budget shown used to be this interval's,
 * which need not be one of them). */
char *
hmmvd_rank_flat_note(const HmmvVmReport *last)
{
  g_autofree char *share = NULL;
  g_autofree char *warm = NULL;
  g_autofree char *written = NULL;
  g_autofree char *budget = NULL;

  if (!last->rank_flat)
    return NULL;
  share = last->rank_flat_percent >= 100 ? g_strdup("all")
                                         : g_strdup_printf("at least %u%%",
                                                           last->rank_flat_percent);
  warm = range_text(last->rank_flat_warm_min, last->rank_flat_warm_max);
  written = range_text(last->rank_flat_accessed_min, last->rank_flat_accessed_max);
  budget = range_text(last->rank_flat_budget_min, last->rank_flat_budget_max);
  /* written pages only, also with a read tracker (libhmmv/loop-rank.c) */
  return g_strdup_printf("in %u of the last %u sampled intervals it wrote %s of the %s pages "
                         "it touched lately, more than its DRAM budget in each (in those "
                         "intervals: %s pages written, budget %s pages): with one dirty bit a "
                         "page and interval its hot pages look like the rest and are not "
                         "found; try a shorter interval-ms", last->rank_flat_intervals,
                         last->rank_window, share, warm, written, budget);
}

/* The DRAM held for the listed VM (hmmv_core_list_held_dram): its name's holds of its QEMU,
 * or of any QEMU when its pid or the hold's is unknown (the core's own rule). FALSE when it
 * has none: another QEMU's hold under its name (a libvirt domain beside a standalone VM) is
 * not its own (review 19, finding 4). */
static gboolean
find_held(GArray *holds, const HmmvdVmInfo *info, guint64 *dram_pages)
{
  gboolean found = FALSE;

  *dram_pages = 0;
  for (guint i = 0; i < holds->len; i++) {
    const HmmvHeldDram *hold = &g_array_index(holds, HmmvHeldDram, i);

    if (g_strcmp0(hold->name, info->name) != 0 ||
        (hold->pid > 0 && info->pid > 0 && hold->pid != info->pid))
      continue;
    *dram_pages += hold->dram_pages;
    found = TRUE;
  }
  return found;
}

static void
vm_to_json(JsonBuilder *builder, const HmmvdVmInfo *info, GArray *holds)
{
  guint64 held_pages;
  g_autofree char *rank_note = NULL;
  const HmmvVmReport *last = &info->last;

  json_builder_begin_object(builder);
  add_string(builder, "name", info->name);
  add_string(builder, "source", source_name(info->source));
  add_uint(builder, "pid", info->pid > 0 ? (guint64)info->pid : 0);
  add_string(builder, "uuid", info->uuid);
  add_string(builder, "status", info->status);
  add_bool(builder, "in-core", info->in_core);
  add_bool(builder, "paused", info->paused);
  /* its QEMU missed a QMP deadline: kept in the core, its DRAM counted, nothing moves */
  add_bool(builder, "frozen", info->frozen);
  add_uint(builder, "freezes-total", info->freezes);
  quota_to_json(builder, &info->quota);
  add_string(builder, "quota-error", info->quota_error);
  /* a set-quota accepted but not written to libvirt yet (not applied): why, and when next */
  add_string(builder, "quota-pending", info->quota_pending);
  /* backends left alone: not tracked, moved or counted in the pages below */
  json_builder_set_member_name(builder, "exclude");
  json_builder_begin_array(builder);
  for (guint i = 0; info->exclude != NULL && info->exclude[i] != NULL; i++)
    json_builder_add_string_value(builder, info->exclude[i]);
  json_builder_end_array(builder);
  add_uint(builder, "excluded-pages", info->excluded_pages);
  add_uint(builder, "quota-accepted-interval", info->quota_accepted_interval);
  if (info->quota_effective_interval != G_MAXUINT64)
    add_uint(builder, "quota-effective-interval", info->quota_effective_interval);
  add_string(builder, "last-error", info->last_error);
  add_uint(builder, "errors", info->errors);
  if (info->last_good_interval != G_MAXUINT64)
    add_uint(builder, "last-good-interval", info->last_good_interval);
  /* Figures of the last interval, in 4 KiB pages. */
  add_uint(builder, "nr-pages", last->nr_pages);
  add_uint(builder, "budget-pages", last->budget_pages);
  add_uint(builder, "min-granted-pages", last->min_granted_pages);
  add_uint(builder, "hot-pages", last->hot_pages);
  add_uint(builder, "dram-pages", last->dram_pages);
  add_uint(builder, "slow-pages", last->slow_pages);
  /* only with a hold of its name and QEMU (standalone: its QMP connection broke while its
   * QEMU lives): the DRAM the core keeps counted for it beyond what it counts itself, until
   * it is back with its placement read (status "holds") */
  if (find_held(holds, info, &held_pages))
    add_uint(builder, "dram-held-pages", held_pages);
  add_uint(builder, "written-pages", last->written);
  add_uint(builder, "read-pages", last->read);
  add_uint(builder, "intervals-merged", last->intervals_merged);
  /* how closely its tracker watches: "coarse" once it has been settled a while, every hot
   * page on DRAM with room to spare (DAMON then samples a quarter as often) */
  add_string(builder, "watch", last->watch == HMMV_WATCH_COARSE ? "coarse" : "fine");
  /* its write tracking paused for the next interval (coarse: 7 intervals in 8, with a QEMU
   * that has hmmv-pause), so KVM may map it with huge pages again */
  add_bool(builder, "writes-paused", last->writes_paused);
  /* intervals since listed whose harvest brought nothing new for a settled VM: its last
   * (empty) plan stood and was not built again */
  add_uint(builder, "plans-kept-total", info->plans_kept);
  /* intervals since listed whose harvest had nothing yet (through libvirt: its QEMU had not
   * answered the interval's hmmv-sync in time); the VM was balanced and moved all the same */
  add_uint(builder, "harvests-late-total", info->harvests_late);
  add_uint(builder, "promoted-pages", last->promoted);
  add_uint(builder, "demoted-pages", last->demoted);
  add_uint(builder, "move-failed-pages", last->move_failed);
  /* churn (issue 7, item 11; README "Churn"): moves that were a page's first since hmmv
   * learnt its node, moves of pages that had moved before, and the hot set's change */
  add_uint(builder, "first-moved-pages", last->moved_first);
  add_uint(builder, "re-moved-pages", last->moved_again);
  add_uint(builder, "hot-entered-pages", last->hot_entered);
  add_uint(builder, "hot-left-pages", last->hot_left);
  add_uint(builder, "first-moves-total", info->moved_first);
  add_uint(builder, "re-moves-total", info->moved_again);
  add_uint(builder, "hot-entered-total", info->hot_entered);
  add_uint(builder, "hot-left-total", info->hot_left);
  add_uint(builder, "deferred-cap-pages", last->deferred_cap);
  add_uint(builder, "deferred-host-cap-pages", last->deferred_host_cap);
  add_uint(builder, "deferred-batch-pages", last->deferred_batch);
  add_uint(builder, "placement-unread-pages", last->placement_unread);
  /* the rolling placement rescan: pages re-read this interval, those found moved behind
   * hmmv's back, and the intervals to its next window (1-8: slower while it finds nothing) */
  add_uint(builder, "rescanned-pages", last->rescanned);
  add_uint(builder, "rescan-drift-pages", last->rescan_drift);
  add_uint(builder, "rescan-gap", last->rescan_gap);
  add_uint(builder, "deferred-room-pages", last->deferred_room);
  add_uint(builder, "deferred-unit-pages", last->deferred_unit);
  add_uint(builder, "moved-cap-pages", last->moved_max_pages);
  add_uint(builder, "thp-pages", last->thp_pages);
  add_uint(builder, "hugetlb-pages", last->hugetlb_pages);
  /* Its nodes (issue 7, item 4): where its vCPUs run and how that was found, where its
   * promotions and demotions go first, and what went farther because a node was full. */
  json_builder_set_member_name(builder, "cpu-node");
  json_builder_add_int_value(builder, info->cpu_node);
  add_string(builder, "cpu-node-source", info->cpu_node_source);
  json_builder_set_member_name(builder, "dram-node");
  json_builder_add_int_value(builder, info->in_core ? last->dram_node : -1);
  json_builder_set_member_name(builder, "slow-node");
  json_builder_add_int_value(builder, info->in_core ? last->slow_node : -1);
  add_uint(builder, "fallback-promoted-total", info->fallback_promoted);
  add_uint(builder, "fallback-demoted-total", info->fallback_demoted);
  /* and what came back to its nearest nodes since, and what is still away from them */
  add_uint(builder, "homed-dram-total", info->homed_dram);
  add_uint(builder, "homed-slow-total", info->homed_slow);
  add_uint(builder, "away-dram-pages", last->away_dram);
  add_uint(builder, "away-slow-pages", last->away_slow);
  /* The nodes its pages may go to (cpuset, numatune): null for every node; and why hmmv
   * leaves it alone when they hold no DRAM or no slow node. */
  json_builder_set_member_name(builder, "allowed-nodes");
  if (info->allowed_nodes == 0) {
    json_builder_add_null_value(builder);
  } else {
    json_builder_begin_array(builder);
    for (int id = 0; id <= HMMV_MAX_NODE_ID; id++)
      if (info->allowed_nodes & (1u << id))
        json_builder_add_int_value(builder, id);
    json_builder_end_array(builder);
  }
  add_string(builder, "left-alone", info->in_core ? last->left_alone : NULL);
  /* Whether its pages can be ranked (core.h, HMMV_RANK_FLAT_*): "flat" when it touched
   * nearly all of its warm pages in most recent intervals, more than its budget, so that its
   * hot set cannot be told apart; the note says by how much and what to do. Figures: of the
   * last rank-window sampled intervals, the flat ones; the least share (%) of its warm pages
   * touched in one of them; its warm pages (temperature above 0). */
  if (info->in_core)
    rank_note = hmmvd_rank_flat_note(last);
  add_string(builder, "ranking", !info->in_core ? NULL : last->rank_flat ? "flat" : "ranked");
  add_string(builder, "ranking-note", rank_note);
  add_uint(builder, "rank-window", last->rank_window);
  add_uint(builder, "rank-flat-intervals", last->rank_flat_intervals);
  add_uint(builder, "rank-flat-percent", last->rank_flat_percent);
  add_uint(builder, "rank-warm-pages", last->rank_warm_pages);
  moves_to_json(builder, &info->moves);
  unmovable_to_json(builder, &info->unmovable);
  json_builder_end_object(builder);
}

JsonNode *
hmmvd_vm_placement_to_json(HmmvdVms *vms, const char *name, GError **error)
{
  static const char digits[] = "0123456789abcdefghijklmnopqrstuv";
  g_autoptr(JsonBuilder) builder = json_builder_new();
  const HmmvVm *vm = hmmvd_vms_lookup_core_vm(vms, name, error);
  const HmmvIntervalReport *report = hmmvd_vms_get_last_report(vms);
  g_autofree char *nodes = NULL;
  g_autofree char *levels = NULL;
  guint64 nr_pages;
  gboolean any_failed;

  if (vm == NULL)
    return NULL;
  any_failed = hmmv_vm_get_nr_backed_off(vm) > 0;
  nr_pages = hmmv_vm_get_nr_pages(vm);
  if (nr_pages > HMMVD_PLACEMENT_MAX_PAGES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s has %" G_GUINT64_FORMAT " pages: placement lists at most %u", name,
                nr_pages, HMMVD_PLACEMENT_MAX_PAGES);
    return NULL;
  }
  nodes = g_malloc(nr_pages + 1);
  for (guint64 page = 0; page < nr_pages; page++) {
    int node = hmmv_vm_get_page_node(vm, page);

    nodes[page] = node >= 0 && node < (int)sizeof(digits) - 1 ? digits[node] : '-';
  }
  nodes[nr_pages] = '\0';
  /* the multi-level queue's level of each page (temperature >> 4, hex): what hmmv thinks
   * of it; level >= 1 is hot (promote_min_key 0x10) */
  levels = g_malloc(nr_pages + 1);
  for (guint64 page = 0; page < nr_pages; page++)
    levels[page] = digits[hmmv_vm_get_temp(vm)[page] >> 4];
  levels[nr_pages] = '\0';
  json_builder_begin_object(builder);
  add_string(builder, "name", name);
  add_uint(builder, "pid", hmmv_vm_get_pid(vm) > 0 ? (guint64)hmmv_vm_get_pid(vm) : 0);
  add_uint(builder, "intervals", report != NULL ? report->index + 1 : 0);
  add_uint(builder, "nr-pages", nr_pages);
  json_builder_set_member_name(builder, "regions");
  json_builder_begin_array(builder);
  for (guint i = 0; i < hmmv_vm_get_nr_regions(vm); i++) {
    const HmmvRegion *region = hmmv_vm_get_region(vm, i);

    json_builder_begin_object(builder);
    add_string(builder, "name", region->name);
    add_uint(builder, "gpa", region->gpa);
    add_uint(builder, "hva", region->hva);
    add_uint(builder, "first-page", region->first_page);
    add_uint(builder, "pages", region->nr_pages);
    add_uint(builder, "backing-page-size", region->backing_page_size);
    json_builder_end_object(builder);
  }
  json_builder_end_array(builder);
  add_string(builder, "nodes", nodes);
  add_string(builder, "levels", levels);
  /* the pages whose last move failed (counted in move-failures, backed off): where the
   * kernel may say otherwise than "nodes", page by page (issue 8) */
  json_builder_set_member_name(builder, "move-failed-pages");
  json_builder_begin_array(builder);
  for (guint64 page = 0; any_failed && page < nr_pages; page++)
    if (hmmv_vm_page_move_failed(vm, page))
      json_builder_add_int_value(builder, (gint64)page);
  json_builder_end_array(builder);
  json_builder_end_object(builder);
  return json_builder_get_root(builder);
}

JsonNode *
hmmvd_vms_to_json(HmmvdVms *vms)
{
  g_autoptr(JsonBuilder) builder = json_builder_new();
  GPtrArray *list = hmmvd_vms_list(vms);
  g_autoptr(GArray) holds = hmmv_core_list_held_dram(hmmvd_vms_get_core(vms), NULL);

  json_builder_begin_array(builder);
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    vm_to_json(builder, info, holds);
  }
  json_builder_end_array(builder);
  return json_builder_get_root(builder);
}

/* Every node: what it is, and its share of the pool (hmmv_core_get_node_pools). */
static void
nodes_to_json(JsonBuilder *builder, const HmmvTopology *topo, HmmvCore *core)
{
  guint nr_nodes = topo != NULL ? hmmv_topology_get_nr_nodes(topo) : 0;
  g_autofree HmmvNodePool *pools = g_new0(HmmvNodePool, MAX(nr_nodes, 1));
  guint nr_pools = core != NULL ? hmmv_core_get_node_pools(core, pools, nr_nodes) : 0;

  json_builder_set_member_name(builder, "nodes");
  json_builder_begin_array(builder);
  for (guint i = 0; i < nr_nodes; i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);

    json_builder_begin_object(builder);
    add_uint(builder, "id", (guint64)node->id);
    add_string(builder, "tier", hmmv_tier_to_string(node->tier));
    add_uint(builder, "total-bytes", node->total_bytes);
    add_uint(builder, "cpus", node->nr_cpus);
    add_string(builder, "cpulist", node->cpulist);
    json_builder_set_member_name(builder, "distances");
    json_builder_begin_array(builder);
    for (guint j = 0; j < nr_nodes; j++)
      json_builder_add_int_value(builder, hmmv_topology_get_distance(
                                            topo, node->id, hmmv_topology_get_node(topo, j)->id));
    json_builder_end_array(builder);
    for (guint p = 0; p < nr_pools; p++) {
      if (pools[p].id != node->id)
        continue;
      add_uint(builder, "free-pages", pools[p].free_pages);
      add_uint(builder, "configured-pages", pools[p].configured_pages);
      add_uint(builder, "reserve-pages", pools[p].reserve_pages);
      add_uint(builder, "capacity-pages", pools[p].capacity_pages);
      add_uint(builder, "used-pages", pools[p].used_pages);
      add_uint(builder, "fallback-in-pages", pools[p].fallback_in_pages);
      add_bool(builder, "full", pools[p].full);
    }
    json_builder_end_object(builder);
  }
  json_builder_end_array(builder);
}

JsonNode *
hmmvd_status_to_json(HmmvdVms *vms, const HmmvTopology *topo, const char *mover)
{
  g_autoptr(JsonBuilder) builder = json_builder_new();
  const HmmvIntervalReport *report = hmmvd_vms_get_last_report(vms);
  GPtrArray *list = hmmvd_vms_list(vms);
  guint managed = 0, frozen = 0;
  guint64 frozen_dram = 0;
  HmmvPoolUsage usage;
  g_autoptr(GPtrArray) flat = g_ptr_array_new();
  /* one snapshot: held-dram-pages is part of held-outside-pages (review 19, finding 5) */
  g_autoptr(GArray) holds = hmmv_core_list_held_dram(hmmvd_vms_get_core(vms), &usage);
  guint64 held_dram = 0;

  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    managed += info->in_core ? 1 : 0;
    if (info->frozen && info->in_core) {
      frozen++;
      frozen_dram += info->last.dram_pages;
    }
    if (info->in_core && info->last.rank_flat)
      g_ptr_array_add(flat, (gpointer)info);
  }
  for (guint i = 0; i < holds->len; i++)
    held_dram += g_array_index(holds, HmmvHeldDram, i).dram_pages;
  json_builder_begin_object(builder);
  add_uint(builder, "interval-ms", hmmvd_vms_get_config(vms)->interval_ms);
  add_uint(builder, "intervals", report != NULL ? report->index + 1 : 0);
  add_uint(builder, "last-interval-ns", report != NULL ? report->elapsed_ns : 0);
  /* the mover's learnt speed, the moves that fit in move-share-percent of an interval at it
   * (0: no limit), and how long the last interval's moves took on the mover's clock */
  add_uint(builder, "mover-ns-per-page", report != NULL ? report->mover_ns_per_page : 0);
  add_uint(builder, "batch-pages", report != NULL && report->batch_pages != G_MAXUINT64
                                     ? report->batch_pages : 0);
  add_uint(builder, "last-moves-ns", report != NULL ? report->moved_ns : 0);
  /* the interval runs on a worker: whether one is running now, and ticks it made skip */
  json_builder_set_member_name(builder, "interval-running");
  json_builder_add_boolean_value(builder, hmmvd_vms_interval_running(vms));
  add_uint(builder, "intervals-skipped", hmmvd_vms_get_intervals_skipped(vms));
  add_uint(builder, "pool-pages", report != NULL ? report->pool_pages : hmmvd_vms_get_pool_pages(vms));
  add_string(builder, "balance-error", hmmvd_vms_get_balance_error(vms));
  add_string(builder, "balance-note", hmmvd_vms_get_balance_note(vms));
  add_string(builder, "node-mins-note", hmmvd_vms_get_node_mins_note(vms));
  add_string(builder, "mover", mover);
  add_string(builder, "read-source", hmmvd_vms_get_reads(vms) != NULL
                                       ? hmmvd_reads_get_source(hmmvd_vms_get_reads(vms))
                                       : "none");
  if (hmmvd_vms_get_reads(vms) != NULL && hmmvd_reads_get_reason(hmmvd_vms_get_reads(vms)))
    add_string(builder, "read-source-reason",
               hmmvd_reads_get_reason(hmmvd_vms_get_reads(vms)));
  add_bool(builder, "slow-tier-modelled", g_strcmp0(mover, "sim") == 0);
  add_bool(builder, "single-node", topo != NULL && hmmv_topology_is_single_node(topo));
  add_uint(builder, "vms", list->len);
  add_uint(builder, "vms-managed", managed);
  /* VMs whose QEMU stopped answering, kept in the core, and the DRAM they hold; and all the
   * DRAM held outside the balance (paused, frozen, unmanaged or failing VMs): the pool the
   * others share shrinks by it */
  add_uint(builder, "vms-frozen", frozen);
  add_uint(builder, "frozen-dram-pages", frozen_dram);
  add_uint(builder, "held-outside-pages", usage.held_outside_pages);
  /* DRAM the core keeps counted for VMs removed while their QEMU lives (standalone: the QMP
   * connection broke; connected again up to 60 s later), part of held-outside-pages: each
   * hold (one per QEMU: two under one name are two entries, "pid" 0 when unknown), and their
   * total. "state": "reconnecting" (out of the core) or "reading-placement" (back, its
   * placement still being read; dram-pages is what that read has not found yet) */
  add_uint(builder, "held-dram-pages", held_dram);
  json_builder_set_member_name(builder, "holds");
  json_builder_begin_array(builder);
  for (guint i = 0; i < holds->len; i++) {
    const HmmvHeldDram *hold = &g_array_index(holds, HmmvHeldDram, i);

    json_builder_begin_object(builder);
    add_string(builder, "name", hold->name);
    add_uint(builder, "pid", hold->pid > 0 ? (guint64)hold->pid : 0);
    add_uint(builder, "dram-pages", hold->dram_pages);
    add_string(builder, "state", hold->in_core ? "reading-placement" : "reconnecting");
    json_builder_end_object(builder);
  }
  json_builder_end_array(builder);
  /* VMs whose pages cannot be ranked (their "ranking" is "flat"), each with its note */
  json_builder_set_member_name(builder, "vms-rank-flat");
  json_builder_begin_array(builder);
  for (guint i = 0; i < flat->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(flat, i);
    g_autofree char *note = hmmvd_rank_flat_note(&info->last);

    json_builder_begin_object(builder);
    add_string(builder, "name", info->name);
    add_string(builder, "note", note);
    json_builder_end_object(builder);
  }
  json_builder_end_array(builder);
  nodes_to_json(builder, topo, hmmvd_vms_get_core(vms));
  json_builder_end_object(builder);
  return json_builder_get_root(builder);
}
