/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The VM table's side of each interval (vms.c has the table): start it on the core's worker,
 * and when it is done read its report on the main loop: log the balance and node fallbacks,
 * take VMs whose QEMU is gone, timed out, tampered with its region or changed its RAM layout
 * out of the core (restarting tracking for the last), let VMs that came meanwhile join, and
 * call whoever waited for the core to be idle.
 */
#include "affinity.h"
#include "pid.h"
#include "quota.h"
#include "vms-private.h"

/* Pages sent to a farther node because the nearest was full: logged when the set of VMs and
 * nodes changes, and when it ends (counts: hmmvctl vms --json, metrics). */
/* The mins of the managed VMs whose nearest DRAM node is a node, against what that node can
 * hold (its capacity in the last interval): the quota check is host-wide, so a node's VMs may
 * have mins that fit in the pool but not on their node; the balance then takes the rest from
 * the next nodes (remote DRAM). One sentence per such node, naming it and its VMs; NULL when
 * every node holds its VMs' mins. */
static char *
node_mins_note(HmmvdVms *vms)
{
  HmmvNodePool pools[HMMV_MAX_NODE_ID + 1];
  guint nr_pools = hmmv_core_get_node_pools(vms->core, pools, G_N_ELEMENTS(pools));
  g_autoptr(GString) note = g_string_new(NULL);

  for (guint p = 0; p < nr_pools; p++) {
    g_autoptr(GString) names = g_string_new(NULL);
    guint64 mins = 0;

    if (pools[p].tier != HMMV_TIER_DRAM)
      continue;
    for (guint i = 0; i < vms->report.vms->len; i++) {
      const HmmvVmReport *rep = &g_array_index(vms->report.vms, HmmvVmReport, i);
      VmEntry *entry = g_hash_table_lookup(vms->entries, rep->name);
      guint64 min;

      if (entry == NULL || !entry->info.in_core || !entry->info.quota.managed ||
          rep->paused || rep->frozen || rep->dram_node != pools[p].id || entry->info.quota.min_pages == 0)
        continue;
      min = rep->nr_pages != 0 ? MIN(entry->info.quota.min_pages, rep->nr_pages)
                               : entry->info.quota.min_pages;
      mins += min;
      g_string_append_printf(names, "%svm %s %" G_GUINT64_FORMAT " MiB",
                             names->len > 0 ? ", " : "", entry->info.name,
                             min / HMMVD_PAGES_PER_MIB);
    }
    if (mins <= pools[p].capacity_pages)
      continue;
    g_string_append_printf(note, "%snode %d holds %" G_GUINT64_FORMAT " MiB for VMs, but the "
                           "dram-min-mib of the VMs nearest it total %" G_GUINT64_FORMAT
                           " MiB (%s): the rest of their mins is remote DRAM from the next "
                           "nodes", note->len > 0 ? "; " : "", pools[p].id,
                           pools[p].capacity_pages / HMMVD_PAGES_PER_MIB,
                           mins / HMMVD_PAGES_PER_MIB, names->str);
  }
  return note->len > 0 ? g_string_free(g_steal_pointer(&note), FALSE) : NULL;
}

/* Logged once, when it appears or changes. */
static void
log_node_mins(HmmvdVms *vms)
{
  g_autofree char *note = node_mins_note(vms);

  if (note != NULL && g_strcmp0(vms->node_mins_note, note) != 0)
    g_warning("%s", note);
  else if (note == NULL && vms->node_mins_note != NULL)
    g_message("every DRAM node holds the mins of the VMs nearest it again");
  g_free(vms->node_mins_note);
  vms->node_mins_note = g_steal_pointer(&note);
}

static void
log_fallback(HmmvdVms *vms)
{
  const char *note = vms->report.fallback_note;

  if (note != NULL && g_strcmp0(vms->fallback_note, note) != 0)
    g_warning("node full, falling back: %s", note);
  else if (note == NULL && vms->fallback_note != NULL)
    g_message("node fallback over: every move went to its nearest node");
  g_free(vms->fallback_note);
  vms->fallback_note = g_strdup(note);
}

/* "1,3", or "any" for 0 (every node). */
static char *
nodes_text(guint32 mask)
{
  GString *text = g_string_new(NULL);

  for (int id = 0; id <= HMMV_MAX_NODE_ID; id++)
    if (mask & (1u << id))
      g_string_append_printf(text, "%s%d", text->len > 0 ? "," : "", id);
  return g_string_free(text->len > 0 ? text : (g_string_append(text, "any"), text), FALSE);
}

/* The nodes its pages may go to: its QEMU's cpuset (Mems_allowed_list: what move_pages(2)
 * enforces) and its source's binding (libvirt numatune, also where libvirt binds with a
 * memory policy only), within the topology; 0 when that is every node. The sim mover's
 * modelled host has no processes: the binding alone. */
static guint32
allowed_nodes(HmmvdVms *vms, const VmEntry *entry, const HmmvTopology *topo)
{
  guint32 all = 0, mems = 0, allowed;

  for (guint i = 0; i < hmmv_topology_get_nr_nodes(topo); i++)
    all |= 1u << hmmv_topology_get_node(topo, i)->id;
  allowed = all;
  if (!hmmvd_vms_mover_is_sim(vms->mover) &&
      hmmvd_affinity_mems_allowed(NULL, entry->info.pid, &mems))
    allowed &= mems;
  if (entry->info.bound_nodes != 0)
    allowed &= entry->info.bound_nodes;
  return allowed == all ? 0 : allowed;
}

/* Where each VM's vCPUs run and which nodes its memory may use, re-read every 8 intervals
 * (libvirt can re-pin a live domain and change a live numatune nodeset), and for a VM before
 * its first interval or when its source's binding changed. The modelled host of the sim
 * mover has no CPUs to pin to. Called between intervals: the core's VMs are not in use. */
static void
update_affinity(HmmvdVms *vms)
{
  gboolean all = vms->intervals_started % 8 == 1;
  GHashTableIter iter;
  gpointer value;

  if (vms->mover == NULL)
    return;
  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    VmEntry *entry = value;
    HmmvVm *vm = entry->info.in_core ? hmmv_core_lookup_vm(vms->core, entry->info.name)
                                     : NULL;
    const char *source;
    guint32 allowed;
    int node;

    if (vm == NULL || !(all || entry->nodes_stale))
      continue;
    entry->nodes_stale = FALSE;
    allowed = allowed_nodes(vms, entry, vms->mover->topo);
    if (allowed != entry->info.allowed_nodes) {
      g_autofree char *text = nodes_text(allowed);

      g_message("vm %s: its memory may be on nodes %s (%s): no page goes elsewhere",
                entry->info.name, text,
                entry->info.bound_nodes != 0 ? "numatune and cpuset" : "cpuset");
    }
    entry->info.allowed_nodes = allowed;
    hmmv_vm_set_allowed_nodes(vm, allowed);
    if (hmmvd_vms_mover_is_sim(vms->mover))
      continue;
    node = hmmvd_affinity_cpu_node(NULL, entry->info.pid, vms->mover->topo, &source);
    if (node != entry->info.cpu_node)
      g_message("vm %s: runs on node %d (%s): promoted to the DRAM node nearest it",
                entry->info.name, node, source);
    entry->info.cpu_node = node;
    entry->info.cpu_node_source = source;
    hmmv_vm_set_cpu_node(vm, node);
  }
}

/* A VM whose allowed nodes leave nothing to move between: logged when it starts and ends
 * (hmmvctl vms --json: left-alone). */
static void
log_left_alone(VmEntry *entry, const HmmvVmReport *rep)
{
  if (rep->left_alone != NULL && g_strcmp0(rep->left_alone, entry->left_alone) != 0) {
    g_autofree char *text = nodes_text(entry->info.allowed_nodes);

    g_warning("vm %s: left alone, %s (%s): none of its pages moves, it keeps its DRAM",
              entry->info.name, rep->left_alone, text);
  } else if (rep->left_alone == NULL && entry->left_alone != NULL) {
    g_message("vm %s: its allowed nodes hold DRAM and slow nodes again: managed",
              entry->info.name);
  }
  entry->left_alone = rep->left_alone;
}

/* A VM whose pages cannot be ranked: logged once when it becomes so, once when it is ranked
 * again (hmmvctl vms: ranking). */
static void
log_rank_flat(VmEntry *entry, const HmmvVmReport *rep)
{
  g_autofree char *note = NULL;

  if (!rep->rank_flat_changed)
    return;
  if (rep->rank_flat) {
    note = hmmvd_rank_flat_note(rep);
    g_warning("vm %s: ranking flat, %s", entry->info.name, note);
  } else {
    g_message("vm %s: ranking no longer flat: only %u of the last %u intervals were",
              entry->info.name, rep->rank_flat_intervals, rep->rank_window);
  }
}

/* A persisting error or note is logged once, when it appears or changes. */
static void
log_balance(HmmvdVms *vms)
{
  const GError *error = vms->report.balance_error;
  const char *note = vms->report.balance_note;

  if (error != NULL && g_strcmp0(vms->balance_error, error->message) != 0)
    g_warning("%s; the last good DRAM budgets stay", error->message);
  else if (error == NULL && vms->balance_error != NULL)
    g_message("DRAM pool balanced again");
  g_free(vms->balance_error);
  vms->balance_error = error != NULL ? g_strdup(error->message) : NULL;

  if (note != NULL && g_strcmp0(vms->balance_note, note) != 0)
    g_warning("%s", note);
  else if (note == NULL && vms->balance_note != NULL)
    g_message("DRAM pool: every VM's min fits again");
  g_free(vms->balance_note);
  vms->balance_note = g_strdup(note);
}

static void
record_error(VmEntry *entry, const char *message)
{
  entry->info.errors++;
  if (g_strcmp0(entry->info.last_error, message) != 0)
    g_warning("%s", message);   /* the core's message names the VM */
  g_free(entry->info.last_error);
  entry->info.last_error = g_strdup(message);
}

/* A VM the harvest found gone may still have its QEMU: one that closed its QMP socket (the
 * transport reports HMMV_ERROR_GONE) lives on with its pages on their nodes. Standalone
 * removes it and connects again after its backoff (up to 60 s), so the core keeps its DRAM
 * counted meanwhile (hmmv_core_hold_dram), as when standalone's own check saw the break
 * first; the entry records the hold (info.held_pid) for standalone to adopt at its next check,
 * or for retire() to release if the entry goes first. Before, such a VM left without a hold
 * and its DRAM was lent to the others while it waited (review 18b, F2). Under the sim mover
 * the pid is not looked at (the core tests' VMs have none), so such a VM is always held; for
 * a standalone VM (there a fake QEMU, a real process) standalone's own pid check ends the
 * hold at its next check once that process is gone. A libvirt domain's QEMU that closed its
 * socket is not held: libvirt does not connect it again by itself (its lifecycle events add
 * and remove it), so nothing would adopt or end the hold while the domain runs. A QEMU that
 * exited (also one not reaped yet: hmmvd_pid_alive) is not held either; this covers the
 * frozen VMs check_frozen_alive finds gone. */
static gboolean
gone_may_live(HmmvdVms *vms, VmEntry *entry)
{
  if (entry->info.source != HMMVD_SOURCE_STANDALONE || entry->info.pid <= 0)
    return FALSE;
  return hmmvd_vms_mover_is_sim(vms->mover) || hmmvd_pid_alive(entry->info.pid);
}

static void
handle_gone(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  g_autofree char *status = g_strdup_printf("gone: %s", message);

  if (entry->info.in_core && gone_may_live(vms, entry) &&
      hmmv_core_hold_dram(vms->core, entry->info.name, NULL)) {
    entry->info.held_pid = entry->info.pid;   /* an entry's pid does not change */
    g_message("vm %s: its QMP connection closed (%s), no longer managed; QEMU pid %d may "
              "still run: its DRAM stays counted until it is back or gone", entry->info.name,
              message, entry->info.pid);
  } else {
    g_message("vm %s: QEMU is gone, no longer managed (%s)", entry->info.name, message);
  }
  hmmvd_vms_untrack(vms, entry);
  hmmvd_vm_entry_set_status(entry, status);
  if (vms->gone != NULL)
    vms->gone(entry->info.name, vms->gone_data);
}

/* "not answering (frozen, N MiB on DRAM kept counted): why", from the last report. */
static void
set_frozen_status(VmEntry *entry)
{
  g_autofree char *status =
    g_strdup_printf("not answering (frozen, %" G_GUINT64_FORMAT " MiB on DRAM kept counted): %s",
                    entry->info.last.dram_pages / HMMVD_PAGES_PER_MIB,
                    entry->frozen_reason != NULL ? entry->frozen_reason : "?");

  hmmvd_vm_entry_set_status(entry, status);
}

/* Its QEMU missed a QMP deadline (stopped, a stalled main loop, a host at load 20-30): its
 * guest does not run either, so its pages are neither hot nor cold. Frozen in the core: kept
 * with its last placement and counted (its DRAM is not free, the other VMs' budgets must not
 * take it), nothing of it asked, planned or moved, until its source sees QEMU answer again
 * (hmmvd_vms_thaw) or it goes. Before, it left the core and its DRAM was counted against
 * nobody until it was added again from scratch. */
static void
handle_timed_out(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  g_autoptr(GError) error = NULL;

  if (!hmmv_core_set_frozen(vms->core, entry->info.name, TRUE, &error)) {
    g_warning("vm %s: cannot freeze it (%s): dropped, QEMU missed a QMP deadline: %s",
              entry->info.name, error->message, message);
    hmmvd_vms_untrack(vms, entry);
    hmmvd_vm_entry_set_status(entry, "not answering, retried");
    entry->info.dropped = TRUE;
    return;
  }
  g_warning("vm %s: frozen, QEMU missed a QMP deadline: %s; its %" G_GUINT64_FORMAT " MiB on "
            "DRAM stay counted, nothing of it moves until QEMU answers", entry->info.name,
            message, entry->info.last.dram_pages / HMMVD_PAGES_PER_MIB);
  entry->info.frozen = TRUE;
  entry->info.freezes++;
  g_free(entry->frozen_reason);
  entry->frozen_reason = g_strdup(message);
  set_frozen_status(entry);
}

gboolean
hmmvd_vms_thaw(HmmvdVms *vms, const char *name)
{
  VmEntry *entry = g_hash_table_lookup(vms->entries, name);
  g_autoptr(GError) error = NULL;

  if (entry == NULL || !entry->info.frozen || !entry->info.in_core)
    return FALSE;
  if (!hmmv_core_set_frozen(vms->core, name, FALSE, &error)) {
    g_warning("vm %s: cannot thaw it: %s", name, error->message);
    return FALSE;
  }
  entry->info.frozen = FALSE;
  g_clear_pointer(&entry->frozen_reason, g_free);
  hmmvd_vm_entry_set_status(entry, "managed");
  g_message("vm %s: QEMU answers again: thawed, its placement is read again %s", name,
            vms->running ? "after the running interval" : "at the next interval");
  return TRUE;
}

/* A frozen VM is not harvested, so a QEMU that died while frozen is not found by a harvest:
 * its pid is looked at before each interval (a zombie counts as dead: hmmvd_pid_alive), not
 * with the sim mover (the core tests' VMs have no process). */
static void
check_frozen_alive(HmmvdVms *vms)
{
  g_autoptr(GPtrArray) gone = g_ptr_array_new();
  GHashTableIter iter;
  gpointer value;

  if (hmmvd_vms_mover_is_sim(vms->mover))
    return;
  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    VmEntry *entry = value;

    if (entry->info.frozen && entry->info.in_core && entry->info.pid > 0 &&
        !hmmvd_pid_alive(entry->info.pid))
      g_ptr_array_add(gone, entry);
  }
  for (guint i = 0; i < gone->len; i++) {
    VmEntry *entry = g_ptr_array_index(gone, i);
    g_autofree char *message = g_strdup_printf("QEMU (pid %d) exited while frozen",
                                               entry->info.pid);

    handle_gone(vms, entry, message);
  }
}

/* QEMU tampered with the shared region under hmmvd (its header or counters changed; hmmvd
 * sealed its size, so it cannot shrink it): out of the core, refused while that QEMU runs
 * (its source lists it again when another QEMU comes). */
static void
handle_corrupt(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  g_autofree char *status = g_strdup_printf("refused: QEMU tampered with its shared region: %s",
                                            message);

  g_warning("vm %s: refused, QEMU tampered with its shared region: %s", entry->info.name,
            message);
  hmmvd_vms_untrack(vms, entry);
  hmmvd_vm_entry_set_status(entry, status);
}

/* why: "RAM layout changed" or "excluded backends changed" */
static void
restart_tracking_for(HmmvdVms *vms, VmEntry *entry, const char *why, const char *message)
{
  g_autoptr(GError) error = NULL;
  const char *name = entry->info.name;
  HmmvVm *vm = NULL;
  HmmvTracker *tracker = NULL;
  gboolean built;
  g_autofree char *restarting = g_strdup_printf("restarting tracking: %s", why);

  g_message("vm %s: %s, restarting tracking (%s)", name, why, message);
  hmmvd_vms_untrack(vms, entry);
  entry->retry_layout = FALSE;   /* hmmvd_vms_track() sets it again if the layout still moves */
  entry->restart_exclude = FALSE;
  if (vms->restart != NULL && entry->info.source == vms->restart_source) {
    /* the source queries the new layout off the main thread */
    hmmvd_vm_entry_set_status(entry, restarting);
    entry->info.dropped = TRUE;
    vms->restart(name, vms->restart_data);
    return;
  }
  if (entry->qmp != NULL)
    built = hmmvd_vms_build_from_qmp(vms, entry, &vm, &tracker, &error);
  else if (vms->rebuild != NULL)
    built = vms->rebuild(name, vms->rebuild_data, &vm, &tracker, &error);
  else
    built = (g_set_error(&error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                         "no QMP transport to query the new layout"), FALSE);
  if (!built || !hmmvd_vms_track(vms, entry, vm, tracker, &error)) {
    g_autofree char *status = g_strdup_printf("%s and tracking could not restart: %s", why,
                                              error->message);

    hmmvd_vm_entry_set_status(entry, status);
    g_warning("vm %s: %s", name, status);
  }
}

static void
restart_tracking(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  restart_tracking_for(vms, entry, "RAM layout changed", message);
}

gboolean
hmmvd_vms_change_exclude(HmmvdVms *vms, const char *name, const char *const *exclude)
{
  VmEntry *entry = g_hash_table_lookup(vms->entries, name);
  const char *const none[] = { NULL };
  g_autofree char *before = NULL, *after = NULL;

  if (entry == NULL ||
      g_strv_equal(entry->info.exclude != NULL ? (const char *const *)entry->info.exclude : none,
                   exclude != NULL ? exclude : none))
    return FALSE;
  before = entry->info.exclude != NULL ? g_strjoinv(", ", entry->info.exclude) : NULL;
  after = exclude != NULL ? g_strjoinv(", ", (char **)exclude) : NULL;
  g_strfreev(entry->info.exclude);
  entry->info.exclude = exclude != NULL && exclude[0] != NULL ? g_strdupv((char **)exclude)
                                                              : NULL;
  entry->info.excluded_pages = 0;
  entry->restart_exclude = TRUE;
  g_message("vm %s: excluded backends changed: [%s] -> [%s]; its tracking restarts (hmmv-stop, "
            "hmmv-start) %s", name, before != NULL ? before : "", after != NULL ? after : "",
            vms->running ? "once the running interval is done" : "now");
  if (!vms->running)
    restart_tracking_for(vms, entry, "excluded backends changed", after != NULL && *after
                                                                      ? after : "none");
  return TRUE;
}

/* VMs whose tracking could not start because their layout was still moving. */
static void
retry_layouts(HmmvdVms *vms)
{
  g_autoptr(GPtrArray) retry = g_ptr_array_new();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    if (((VmEntry *)value)->retry_layout && !((VmEntry *)value)->info.in_core)
      g_ptr_array_add(retry, value);
  for (guint i = 0; i < retry->len; i++)
    restart_tracking(vms, g_ptr_array_index(retry, i), "retrying after the layout moved");
}

/* The interval's report is read: what changed meanwhile goes in now. */
static void
interval_settle(HmmvdVms *vms)
{
  GHashTableIter iter;
  gpointer value;
  g_autoptr(GArray) waiters = NULL;
  g_autoptr(GPtrArray) restart = g_ptr_array_new_with_free_func(g_free);

  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    VmEntry *entry = value;
    g_autoptr(GError) error = NULL;

    if (entry->pending_vm != NULL) {
      HmmvVm *vm = g_steal_pointer(&entry->pending_vm);
      HmmvTracker *tracker = g_steal_pointer(&entry->pending_tracker);

      (void)hmmvd_vms_track(vms, entry, vm, tracker, &error);   /* logged and in its status */
    }
    if (entry->restart_exclude)
      g_ptr_array_add(restart, g_strdup(entry->info.name));
  }
  /* not while iterating: a source's restart replaces the entry */
  for (guint i = 0; i < restart->len; i++) {
    VmEntry *entry = g_hash_table_lookup(vms->entries, g_ptr_array_index(restart, i));

    if (entry != NULL && entry->restart_exclude)
      restart_tracking_for(vms, entry, "excluded backends changed", "set while it ran");
  }
  waiters = g_steal_pointer(&vms->waiters);
  vms->waiters = g_array_new(FALSE, FALSE, sizeof(IdleWaiter));
  for (guint i = 0; i < waiters->len; i++) {
    IdleWaiter *waiter = &g_array_index(waiters, IdleWaiter, i);

    waiter->func(waiter->data);
  }
}

static void
interval_read_report(HmmvdVms *vms)
{
  g_autoptr(GPtrArray) gone = g_ptr_array_new();
  g_autoptr(GPtrArray) relayout = g_ptr_array_new();
  g_autoptr(GPtrArray) timed_out = g_ptr_array_new();
  g_autoptr(GPtrArray) corrupt = g_ptr_array_new();
  g_autoptr(GPtrArray) corrupt_messages = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) messages = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GPtrArray) timed_out_messages = g_ptr_array_new_with_free_func(g_free);

  vms->have_report = TRUE;
  log_balance(vms);
  log_fallback(vms);
  log_node_mins(vms);
  for (guint i = 0; i < vms->report.vms->len; i++) {
    HmmvVmReport *rep = &g_array_index(vms->report.vms, HmmvVmReport, i);
    VmEntry *entry = g_hash_table_lookup(vms->entries, rep->name);

    if (entry == NULL)
      continue;   /* every VM of the core is listed; a stranger is not ours to touch */
    rep->name = entry->info.name;   /* outlives the core's VM */
    /* A quota accepted while this interval ran (a metadata event on the main loop) waits in
     * the core for the next one: this report is the old quota's. The core's report.index
     * counts the same intervals as intervals_started (one per start, one at a time). */
    if (entry->info.quota_effective_interval == G_MAXUINT64 &&
        vms->report.index >= entry->info.quota_accepted_interval)
      entry->info.quota_effective_interval = vms->report.index;
    entry->info.last = *rep;
    entry->info.last.error = NULL;
    log_left_alone(entry, rep);
    log_rank_flat(entry, rep);
    entry->info.fallback_promoted += rep->promoted_fallback;
    entry->info.fallback_demoted += rep->demoted_fallback;
    entry->info.homed_dram += rep->homed_dram;
    entry->info.homed_slow += rep->homed_slow;
    entry->info.moved_first += rep->moved_first;
    entry->info.moved_again += rep->moved_again;
    entry->info.hot_entered += rep->hot_entered;
    entry->info.hot_left += rep->hot_left;
    entry->info.plans_kept += rep->plan_kept;
    entry->info.harvests_late += rep->harvest_late;
    hmmvd_vms_update_moves(vms, entry);
    if (rep->frozen) {
      /* not run: no error, and not a good interval either */
      if (entry->info.frozen)
        set_frozen_status(entry);   /* its DRAM as the core still counts it */
    } else if (rep->error == NULL) {
      entry->info.last_good_interval = vms->report.index;
      if (entry->info.last_error != NULL)
        g_message("vm %s: intervals succeed again", entry->info.name);
      g_clear_pointer(&entry->info.last_error, g_free);
    } else if (g_error_matches(rep->error, HMMV_ERROR, HMMV_ERROR_GONE)) {
      g_ptr_array_add(gone, entry);
      g_ptr_array_add(messages, g_strdup(rep->error->message));
    } else if (g_error_matches(rep->error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED)) {
      g_ptr_array_add(relayout, entry);
      g_ptr_array_add(messages, g_strdup(rep->error->message));
    } else if (g_error_matches(rep->error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT)) {
      g_ptr_array_add(timed_out, entry);
      g_ptr_array_add(timed_out_messages, g_strdup(rep->error->message));
    } else if (g_error_matches(rep->error, HMMV_ERROR, HMMV_ERROR_CORRUPT)) {
      g_ptr_array_add(corrupt, entry);
      g_ptr_array_add(corrupt_messages, g_strdup(rep->error->message));
    } else {
      record_error(entry, rep->error->message);
    }
  }
  /* Leaving the core changes the report: only now that it was read. */
  for (guint i = 0; i < gone->len; i++)
    handle_gone(vms, g_ptr_array_index(gone, i), g_ptr_array_index(messages, i));
  for (guint i = 0; i < relayout->len; i++)
    restart_tracking(vms, g_ptr_array_index(relayout, i),
                     g_ptr_array_index(messages, gone->len + i));
  for (guint i = 0; i < timed_out->len; i++)
    handle_timed_out(vms, g_ptr_array_index(timed_out, i),
                     g_ptr_array_index(timed_out_messages, i));
  for (guint i = 0; i < corrupt->len; i++)
    handle_corrupt(vms, g_ptr_array_index(corrupt, i), g_ptr_array_index(corrupt_messages, i));
  retry_layouts(vms);
}

static void
interval_done(GObject *source, GAsyncResult *result, gpointer user_data)
{
  HmmvdVms *vms = user_data;
  g_autoptr(GError) error = NULL;
  HmmvIntervalReport swap;
  gboolean ok = hmmv_core_run_interval_finish(vms->core, result, &error);

  vms->running = FALSE;
  g_clear_object(&vms->cancellable);
  if (ok) {
    swap = vms->report;
    vms->report = vms->run_report;
    vms->run_report = swap;
  }
  /* VMs removed meanwhile leave the core (and the report) before it is read. */
  for (guint i = 0; i < vms->doomed->len; i++) {
    VmEntry *entry = g_ptr_array_index(vms->doomed, i);

    hmmvd_vms_untrack(vms, entry);
    hmmvd_vm_entry_free(entry);
  }
  g_ptr_array_set_size(vms->doomed, 0);
  if (ok)
    interval_read_report(vms);
  else
    g_warning("interval failed: %s", error->message);
  interval_settle(vms);
  if (vms->done != NULL)
    vms->done(vms->done_data);
}

gboolean
hmmvd_vms_start_interval(HmmvdVms *vms, HmmvdIntervalDone done, gpointer user_data)
{
  if (vms->running) {
    vms->intervals_skipped++;
    return FALSE;
  }
  check_frozen_alive(vms);   /* frozen VMs are not harvested: is their QEMU still there? */
  update_affinity(vms);   /* the VMs' vCPU nodes, read between intervals */
  vms->running = TRUE;
  vms->done = done;
  vms->done_data = user_data;
  vms->intervals_started++;
  vms->cancellable = g_cancellable_new();
  hmmv_core_run_interval_async(vms->core, &vms->run_report, vms->cancellable, interval_done,
                               vms);
  return TRUE;
}

gboolean
hmmvd_vms_interval_running(HmmvdVms *vms)
{
  return vms->running;
}

guint64
hmmvd_vms_get_intervals_skipped(HmmvdVms *vms)
{
  return vms->intervals_skipped;
}

gboolean
hmmvd_vms_when_idle(HmmvdVms *vms, GSourceFunc func, gpointer user_data)
{
  IdleWaiter waiter = { .func = func, .data = user_data };

  if (!vms->running)
    return FALSE;
  g_array_append_val(vms->waiters, waiter);
  return TRUE;
}

void
hmmvd_vms_wait_idle(HmmvdVms *vms)
{
  GMainContext *context = g_main_context_get_thread_default();

  if (vms->running && vms->cancellable != NULL)
    g_cancellable_cancel(vms->cancellable);
  /* The worker stops before its next VM's moves; its completion comes through the context
   * the interval started from. */
  while (vms->running)
    g_main_context_iteration(context, TRUE);
}

void
hmmvd_vms_run_interval(HmmvdVms *vms)
{
  GMainContext *context = g_main_context_get_thread_default();

  if (!hmmvd_vms_start_interval(vms, NULL, NULL))
    return;
  while (vms->running)
    g_main_context_iteration(context, TRUE);
}

const HmmvIntervalReport *
hmmvd_vms_get_last_report(HmmvdVms *vms)
{
  return vms->have_report ? &vms->report : NULL;
}

const char *
hmmvd_vms_get_balance_error(HmmvdVms *vms)
{
  return vms->balance_error;
}

const char *
hmmvd_vms_get_node_mins_note(HmmvdVms *vms)
{
  return vms->node_mins_note;
}

const char *
hmmvd_vms_get_balance_note(HmmvdVms *vms)
{
  return vms->balance_note;
}
