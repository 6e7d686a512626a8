/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The table of VMs hmmvd knows, on top of the core. Every VM a source reports is listed, the
 * ones hmmv cannot manage too (with the reason as status), so that `hmmvctl vms` answers "why
 * is my VM not managed?".
 *
 * A VM added through QMP keeps its transport here; the core's qemu-dirty tracker talks
 * through a borrowing proxy of it. So when QEMU's RAM layout changes (memory hot-plug), the
 * VM can leave the core (which frees the tracker) and come back with a freshly queried layout
 * over the same transport.
 *
 * A VM whose QEMU is gone leaves the core but stays listed as "gone: ..." until its source
 * removes it: the operator sees what happened, and the source (libvirt's lifecycle events,
 * or standalone reconnects) decides when the name goes away or comes back.
 *
 * The interval runs on a worker (hmmv_core_run_interval_async) while the main loop goes on
 * serving libvirt events and the control socket. Meanwhile the table answers from the last
 * finished interval's report; pause and quota reach the core at once (the core takes them
 * at the next interval); a VM that comes or goes waits: it is tracked, or leaves the core and
 * its transport is freed, when the interval is done (the interval's tracker may be talking
 * through that transport). Anything else that needs the VMs' page state waits likewise
 * (hmmvd_vms_when_idle).
 *
 * The hand-off of each interval to the worker and back is in vms-interval.c.
 */
#include "quota.h"
#include "vms-private.h"

#include <string.h>

void
hmmvd_vm_entry_free(gpointer data)
{
  VmEntry *entry = data;

  g_free(entry->info.name);
  g_free(entry->info.uuid);
  g_free(entry->info.quota_error);
  g_free(entry->info.quota_pending);
  g_strfreev(entry->info.exclude);
  g_free(entry->info.status);
  g_free(entry->info.last_error);
  g_free(entry->frozen_reason);
  if (entry->pending_tracker != NULL) {
    hmmv_tracker_stop(entry->pending_tracker);
    hmmv_tracker_free(entry->pending_tracker);
  }
  hmmv_vm_free(entry->pending_vm);
  hmmv_qmp_free(entry->qmp);
  g_free(entry);
}

HmmvdVms *
hmmvd_vms_new(HmmvCore *core, const HmmvdConfig *config)
{
  HmmvdVms *vms = g_new0(HmmvdVms, 1);

  vms->core = core;
  vms->config = config;
  vms->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, hmmvd_vm_entry_free);
  vms->list = g_ptr_array_new();
  hmmv_interval_report_init(&vms->report);
  hmmv_interval_report_init(&vms->run_report);
  vms->doomed = g_ptr_array_new();
  vms->waiters = g_array_new(FALSE, FALSE, sizeof(IdleWaiter));
  return vms;
}

HmmvCore *
hmmvd_vms_get_core(HmmvdVms *vms)
{
  return vms->core;
}

const HmmvdConfig *
hmmvd_vms_get_config(HmmvdVms *vms)
{
  return vms->config;
}

void
hmmvd_vms_set_mover(HmmvdVms *vms, HmmvMover *mover)
{
  vms->mover = mover;
}

void
hmmvd_vms_set_reads(HmmvdVms *vms, HmmvdReads *reads)
{
  vms->reads = reads;
}

HmmvdReads *
hmmvd_vms_get_reads(HmmvdVms *vms)
{
  return vms->reads;
}

void
hmmvd_vms_set_rebuild_func(HmmvdVms *vms, HmmvdVmRebuildFunc func, gpointer user_data)
{
  vms->rebuild = func;
  vms->rebuild_data = user_data;
}

void
hmmvd_vms_set_gone_func(HmmvdVms *vms, HmmvdVmGoneFunc func, gpointer user_data)
{
  vms->gone = func;
  vms->gone_data = user_data;
}

void
hmmvd_vms_set_restart_func(HmmvdVms *vms, HmmvdSource source, HmmvdVmRestartFunc func,
                           gpointer user_data)
{
  vms->restart = func;
  vms->restart_source = source;
  vms->restart_data = user_data;
}

void
hmmvd_vms_set_quota_writer(HmmvdVms *vms, HmmvdQuotaWriter writer, gpointer user_data)
{
  vms->writer = writer;
  vms->writer_data = user_data;
}

void
hmmvd_vm_entry_set_status(VmEntry *entry, const char *status)
{
  g_free(entry->info.status);
  entry->info.status = g_strdup(status);
}

static void
moves_add(HmmvMoveStats *sum, const HmmvMoveStats *a, const HmmvMoveStats *b)
{
  sum->promoted = a->promoted + b->promoted;
  sum->demoted = a->demoted + b->demoted;
  sum->not_present = a->not_present + b->not_present;
  sum->busy = a->busy + b->busy;
  sum->no_memory = a->no_memory + b->no_memory;
  sum->fault = a->fault + b->fault;
  sum->access = a->access + b->access;
  sum->other = a->other + b->other;
  sum->call_failures = a->call_failures + b->call_failures;
}

void
hmmvd_vms_update_moves(HmmvdVms *vms, VmEntry *entry)
{
  HmmvVm *vm = entry->info.in_core ? hmmv_core_lookup_vm(vms->core, entry->info.name) : NULL;

  if (vm != NULL) {
    moves_add(&entry->info.moves, &entry->moves_base, hmmv_vm_get_move_stats(vm));
    hmmv_vm_get_unmovable(vm, &entry->info.unmovable);
  }
}

/* The last report must not keep pointers into a VM the core freed. */
static void
drop_from_report(HmmvdVms *vms, const char *name)
{
  for (guint i = 0; i < vms->report.vms->len; i++) {
    if (g_strcmp0(g_array_index(vms->report.vms, HmmvVmReport, i).name, name) == 0) {
      g_array_remove_index(vms->report.vms, i);
      return;
    }
  }
}

gboolean
hmmvd_vms_mover_is_sim(const HmmvMover *mover)
{
  return mover != NULL && g_strcmp0(hmmv_mover_get_name(mover), "sim") == 0;
}

void
hmmvd_vms_untrack(HmmvdVms *vms, VmEntry *entry)
{
  g_autoptr(GError) error = NULL;
  HmmvVm *vm;

  if (!entry->info.in_core)
    return;
  hmmvd_vms_update_moves(vms, entry);
  entry->moves_base = entry->info.moves;
  /* the backoff state leaves with the VM; a new tracking run learns it again */
  entry->info.unmovable = (HmmvUnmovable){ 0 };
  vm = hmmv_core_lookup_vm(vms->core, entry->info.name);
  if (vm != NULL && hmmvd_vms_mover_is_sim(vms->mover))
    hmmv_sim_mover_forget_vm(vms->mover, vm);
  drop_from_report(vms, entry->info.name);
  if (!hmmv_core_remove_vm(vms->core, entry->info.name, &error))
    g_warning("vm %s: leaving the core: %s", entry->info.name, error->message);
  entry->info.in_core = FALSE;
  entry->info.frozen = FALSE;
  g_clear_pointer(&entry->frozen_reason, g_free);
}

void
hmmvd_vms_free(HmmvdVms *vms)
{
  GHashTableIter iter;
  gpointer value;

  if (vms == NULL)
    return;
  hmmvd_vms_wait_idle(vms);
  /* Trackers talk through the entries' transports: stop them before those go. */
  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    hmmvd_vms_untrack(vms, value);
  g_hash_table_unref(vms->entries);
  g_ptr_array_unref(vms->list);
  g_ptr_array_unref(vms->doomed);
  g_array_unref(vms->waiters);
  hmmv_interval_report_clear(&vms->report);
  hmmv_interval_report_clear(&vms->run_report);
  g_free(vms->balance_error);
  g_free(vms->balance_note);
  g_free(vms->fallback_note);
  g_free(vms->node_mins_note);
  g_free(vms);
}

/* A QMP transport that borrows the entry's: the tracker may free it, the entry keeps the
 * real one for a restart. */
static char *
proxy_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  HmmvQmp *real = qmp->priv;

  return real->ops->transact(real, command_json, error);
}

static char *
proxy_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  return hmmv_qmp_transact_fd(qmp->priv, command_json, fd, error);
}

static void
proxy_post(HmmvQmp *qmp, const char *command_json)
{
  HmmvQmp *real = qmp->priv;

  if (real->ops->post != NULL)
    real->ops->post(real, command_json);
  else
    g_free(real->ops->transact(real, command_json, NULL));
}

static gboolean
proxy_commands_sent(HmmvQmp *qmp, guint64 *sent)
{
  return hmmv_qmp_get_commands_sent(qmp->priv, sent);
}

static const struct hmmv_qmp_ops proxy_ops = {
  .name = "hmmvd-borrowed",
  .transact = proxy_transact,
  .transact_fd = proxy_transact_fd,
  .post = proxy_post,
  .commands_sent = proxy_commands_sent,
};

/* QEMU's claims about its RAM are checked against its mappings and the source's view of the
 * VM before anything is allocated for them. Touches no table state: worker threads use it. */
static gboolean
build_vm(const char *name, HmmvQmp *qmp, int pid, guint64 max_ram_bytes, guint interval_ms,
         gboolean prestart, const char *const *exclude, guint64 *excluded_bytes,
         HmmvVm **vm_out, HmmvTracker **tracker_out, GError **error)
{
  /* hmmvd drives publication: interval 0 makes QEMU publish only on hmmv-sync, which the
   * tracker sends before each harvest. With QEMU on its own 1 s timer and hmmvd's period 1 s
   * plus its work, some harvests found nothing new (every page cooled a step for nothing)
   * and some merged two publications (issue 7, item 8); now each harvest covers exactly the
   * interval since the last one. */
  HmmvQemuDirtyOptions options = {
    .interval_ms = 0,   /* not interval_ms, hmmvd's period: see above */
    /* A settled VM (its budget not contended: loop-watch.c) has QEMU's write export paused
     * 7 intervals in 8, so KVM may map it with huge pages again (issue 9, "Cost"). */
    .pause_when_coarse = TRUE,
    /* left alone: not in the VM, and not exported (no dirty logging, huge pages kept) */
    .exclude = exclude,
  };
  g_autoptr(HmmvVm) vm = hmmv_qemu_vm_new_excluding(qmp, name, pid, max_ram_bytes, exclude,
                                                    excluded_bytes, error);
  g_autoptr(HmmvTracker) tracker = NULL;
  HmmvQmp *proxy;

  if (vm == NULL)
    return FALSE;
  proxy = hmmv_qmp_new(&proxy_ops, qmp, error);
  if (proxy == NULL)
    return FALSE;
  tracker = hmmv_qemu_dirty_tracker_new(proxy, &options, error);
  if (tracker == NULL)
    return FALSE;
  hmmv_vm_set_pid(vm, pid);
  if (prestart && !hmmv_qemu_dirty_tracker_prestart(tracker, vm, error)) {
    g_prefix_error(error, "tracker qemu-dirty: ");
    return FALSE;
  }
  *vm_out = g_steal_pointer(&vm);
  *tracker_out = g_steal_pointer(&tracker);
  return TRUE;
}

gboolean
hmmvd_vms_build_from_qmp(HmmvdVms *vms, VmEntry *entry, HmmvVm **vm_out,
                         HmmvTracker **tracker_out, GError **error)
{
  guint64 excluded_bytes = 0;

  if (!build_vm(entry->info.name, entry->qmp, entry->info.pid, entry->max_ram_bytes,
                vms->config->interval_ms, FALSE, (const char *const *)entry->info.exclude,
                &excluded_bytes, vm_out, tracker_out, error))
    return FALSE;
  entry->info.excluded_pages = excluded_bytes >> HMMV_PAGE_SHIFT;
  return TRUE;
}

gboolean
hmmvd_vm_build_started(const char *name, HmmvQmp *qmp, int pid, guint64 max_ram_bytes,
                       guint interval_ms, const char *const *exclude, guint64 *excluded_bytes,
                       HmmvVm **vm, HmmvTracker **tracker, GError **error)
{
  return build_vm(name, qmp, pid, max_ram_bytes, interval_ms, TRUE, exclude, excluded_bytes,
                  vm, tracker, error);
}

/* Status of a VM whose tracking could not start: an unpatched QEMU says CommandNotFound. */
static char *
failure_status(const GError *error)
{
  if (strstr(error->message, "CommandNotFound") != NULL)
    return g_strdup_printf("QEMU lacks the hmmv patches: %s", error->message);
  if (g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE))
    return g_strdup_printf("gone: %s", error->message);
  if (g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT))
    return g_strdup_printf("not answering, retried: %s", error->message);
  return g_strdup_printf("tracking failed: %s", error->message);
}

/* hmmvd --record-dir: what the tracker sees goes to DIR/NAME.trace; a VM tracked again (its
 * QEMU restarted, its layout changed) gets NAME.1.trace, NAME.2.trace...: nothing recorded
 * is overwritten. */
static HmmvTracker *
record_wrap(const HmmvdConfig *config, const char *name, HmmvTracker *tracker, gboolean reads)
{
  for (guint n = 0; n < 10000; n++) {
    g_autofree char *file = n ? g_strdup_printf("%s.%u.trace", name, n)
                              : g_strdup_printf("%s.trace", name);
    g_autofree char *path = g_build_filename(config->record_dir, file, NULL);

    if (!g_file_test(path, G_FILE_TEST_EXISTS))
      return hmmv_recording_tracker_new(tracker, path, config->interval_ms, reads);
  }
  g_warning("vm %s: %s holds 10,000 recordings of it already: not recorded", name,
            config->record_dir);
  return tracker;
}

gboolean
hmmvd_vms_track(HmmvdVms *vms, VmEntry *entry, HmmvVm *vm, HmmvTracker *tracker,
                GError **error)
{
  const char *name = entry->info.name;
  guint64 nr_pages = hmmv_vm_get_nr_pages(vm);
  guint nr_regions = hmmv_vm_get_nr_regions(vm);
  g_autoptr(GError) local_error = NULL;

  HmmvTracker *writes = tracker;

  if (vms->running) {
    /* The core takes no VM while an interval runs: this one joins when it is done, through
     * here again, and is given its read source and recording then. Until 2026-12-04 they
     * were given here too: such a VM had two read trackers (with DAMON two kdamonds on one
     * QEMU, and in the race of issue 8 one more setup racing the others' for kdamonds)
     * and, with --record-dir, two recordings. */
    hmmv_vm_free(entry->pending_vm);
    if (entry->pending_tracker != NULL)
      hmmv_tracker_free(entry->pending_tracker);
    entry->pending_vm = vm;
    entry->pending_tracker = tracker;
    hmmvd_vm_entry_set_status(entry, "starting: joins when the running interval is done");
    return TRUE;
  }
  /* reads, where the kernel offers a source: combined with the writes (the core starts the
   * combined tracker, which starts both; a prestarted write tracker as before) */
  tracker = hmmvd_reads_wrap(vms->reads, tracker);
  if (vms->config->record_dir != NULL)
    tracker = record_wrap(vms->config, name, tracker, tracker != writes);
  hmmv_vm_set_pid(vm, entry->info.pid);
  hmmv_vm_set_quota(vm, &entry->info.quota);
  entry->retry_layout = FALSE;
  if (!hmmv_core_add_vm(vms->core, vm, tracker, &local_error)) {
    g_autofree char *status = failure_status(local_error);

    /* While the firmware runs, QEMU's guest-physical map changes (ROM shadowing, SMRAM):
     * the layout can move between the query and the start. Try again next interval. */
    entry->retry_layout = entry->qmp != NULL &&
                          g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED);

    hmmvd_vm_entry_set_status(entry, status);
    g_warning("vm %s: not managed: %s", name, status);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  entry->info.in_core = TRUE;
  entry->info.dropped = FALSE;
  entry->nodes_stale = TRUE;   /* its allowed nodes, before its first interval */
  entry->nr_pages = nr_pages;
  if (entry->info.paused)
    (void)hmmv_core_set_paused(vms->core, name, TRUE, NULL);
  hmmvd_vm_entry_set_status(entry, "managed");
  g_message("vm %s: managed: %" G_GUINT64_FORMAT " MiB of RAM in %u region(s), pid %d",
            name, nr_pages / HMMVD_PAGES_PER_MIB, nr_regions, entry->info.pid);
  return TRUE;
}

/* An entry leaves the table now; it leaves the core (and its transport is freed) once no
 * interval runs: the interval's tracker may be using that transport. A hold its source did
 * not adopt ends with it (the release is safe while an interval runs). */
static void
retire(HmmvdVms *vms, VmEntry *entry)
{
  if (entry->info.held_pid > 0)
    hmmv_core_release_dram(vms->core, entry->info.name, entry->info.held_pid);
  entry->info.held_pid = 0;
  g_hash_table_steal(vms->entries, entry->info.name);
  if (vms->running) {
    g_ptr_array_add(vms->doomed, entry);
    return;
  }
  hmmvd_vms_untrack(vms, entry);
  hmmvd_vm_entry_free(entry);
}

static VmEntry *
entry_new(HmmvdVms *vms, const char *name, HmmvdSource source, int pid, const char *uuid)
{
  VmEntry *old = g_hash_table_lookup(vms->entries, name);
  VmEntry *entry = g_new0(VmEntry, 1);

  if (old != NULL) {
    if (!g_str_has_prefix(old->info.status, STARTING_STATUS))   /* its own start-up: quiet */
      g_message("vm %s: listed again, replacing its previous entry (%s)", name,
                old->info.status);
    retire(vms, old);
  }
  entry->info.name = g_strdup(name);
  entry->info.source = source;
  entry->info.pid = pid;
  entry->info.uuid = g_strdup(uuid);
  entry->info.quota = vms->config->default_quota;
  entry->info.cpu_node = -1;
  entry->info.cpu_node_source = "pages";
  entry->info.quota_accepted_interval = vms->intervals_started;
  entry->info.quota_effective_interval = G_MAXUINT64;
  entry->info.last_good_interval = G_MAXUINT64;
  entry->info.status = g_strdup("starting");
  g_hash_table_insert(vms->entries, entry->info.name, entry);
  return entry;
}

gboolean
hmmvd_vms_add_with_tracker(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                           const char *uuid, HmmvVm *vm, HmmvTracker *tracker, GError **error)
{
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);

  return hmmvd_vms_track(vms, entry, vm, tracker, error);
}

gboolean
hmmvd_vms_add(HmmvdVms *vms, const char *name, HmmvdSource source, int pid, const char *uuid,
              HmmvQmp *qmp, guint64 max_ram_bytes, GError **error)
{
  HmmvVm *vm = NULL;
  HmmvTracker *tracker = NULL;
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);
  g_autoptr(GError) local_error = NULL;

  entry->qmp = qmp;
  entry->max_ram_bytes = max_ram_bytes;
  if (!hmmvd_vms_build_from_qmp(vms, entry, &vm, &tracker, &local_error)) {
    g_clear_pointer(&entry->qmp, hmmv_qmp_free);   /* an unmanaged VM holds no connection */
    g_autofree char *status = failure_status(local_error);

    hmmvd_vm_entry_set_status(entry, status);
    g_warning("vm %s: not managed: %s", name, status);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  return hmmvd_vms_track(vms, entry, vm, tracker, error);
}

gboolean
hmmvd_vms_add_started(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                      const char *uuid, HmmvQmp *qmp, guint64 max_ram_bytes,
                      const char *const *exclude, guint64 excluded_bytes, HmmvVm *vm,
                      HmmvTracker *tracker, GError **error)
{
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);

  entry->qmp = qmp;
  entry->max_ram_bytes = max_ram_bytes;
  entry->info.exclude = exclude != NULL && exclude[0] != NULL ? g_strdupv((char **)exclude)
                                                              : NULL;
  entry->info.excluded_pages = excluded_bytes >> HMMV_PAGE_SHIFT;
  return hmmvd_vms_track(vms, entry, vm, tracker, error);
}

void
hmmvd_vms_add_starting(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                       const char *uuid)
{
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);

  hmmvd_vm_entry_set_status(entry, STARTING_STATUS);
}

void
hmmvd_vms_fail_start(HmmvdVms *vms, const char *name, const GError *error)
{
  VmEntry *entry = g_hash_table_lookup(vms->entries, name);
  g_autofree char *status = NULL;

  if (entry == NULL)
    return;
  status = failure_status(error);
  hmmvd_vm_entry_set_status(entry, status);
  entry->info.dropped = g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT);
  g_warning("vm %s: not managed: %s", name, status);
}

gboolean
hmmvd_vms_set_bound_nodes(HmmvdVms *vms, const char *name, guint32 mask)
{
  VmEntry *entry = g_hash_table_lookup(vms->entries, name);

  if (entry == NULL)
    return FALSE;
  entry->info.bound_nodes = mask;
  entry->nodes_stale = TRUE;
  return TRUE;
}

void
hmmvd_vms_add_unmanaged(HmmvdVms *vms, const char *name, HmmvdSource source,
                        const char *reason)
{
  VmEntry *entry = entry_new(vms, name, source, 0, NULL);

  hmmvd_vm_entry_set_status(entry, reason);
  g_message("vm %s: not managed: %s", name, reason);
}

void
hmmvd_vms_remove(HmmvdVms *vms, const char *name)
{
  VmEntry *entry = g_hash_table_lookup(vms->entries, name);

  if (entry == NULL)
    return;
  g_message("vm %s: removed", name);
  retire(vms, entry);
}

HmmvdVmInfo *
hmmvd_vms_lookup(HmmvdVms *vms, const char *name)
{
  return name != NULL ? g_hash_table_lookup(vms->entries, name) : NULL;
}

HmmvQmp *
hmmvd_vms_get_qmp(HmmvdVms *vms, const char *name)
{
  VmEntry *entry = name != NULL ? g_hash_table_lookup(vms->entries, name) : NULL;

  return entry != NULL ? entry->qmp : NULL;
}

static int
info_by_name(gconstpointer a, gconstpointer b)
{
  const HmmvdVmInfo *x = *(HmmvdVmInfo *const *)a;
  const HmmvdVmInfo *y = *(HmmvdVmInfo *const *)b;

  return strcmp(x->name, y->name);
}

GPtrArray *
hmmvd_vms_list(HmmvdVms *vms)
{
  GHashTableIter iter;
  gpointer value;

  g_ptr_array_set_size(vms->list, 0);
  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    g_ptr_array_add(vms->list, value);
  g_ptr_array_sort(vms->list, info_by_name);
  return vms->list;
}

static VmEntry *
lookup_or_error(HmmvdVms *vms, const char *name, GError **error)
{
  VmEntry *entry = name != NULL ? g_hash_table_lookup(vms->entries, name) : NULL;

  if (entry == NULL)
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "no VM named %s",
                name != NULL ? name : "(none)");
  return entry;
}

/* The DRAM pool quotas are checked against: the core's (configured, else the DRAM of its
 * topology). */
guint64
hmmvd_vms_get_pool_pages(HmmvdVms *vms)
{
  return hmmv_core_get_pool_pages(vms->core);
}

/* The same accounting as the core's balance (hmmv_core_get_pool_usage): mins that can never
 * fit in the pool are refused; mins that fit only once VMs outside the balance (paused,
 * unmanaged, failing) give back their DRAM are accepted, and scaled down in proportion
 * meanwhile (the interval's note says how). */
static gboolean
check_quota(HmmvdVms *vms, VmEntry *entry, const HmmvQuota *quota, GError **error)
{
  HmmvPoolUsage usage;
  guint64 room;

  if (!hmmvd_quota_validate(quota, entry->nr_pages, hmmvd_vms_get_pool_pages(vms), error))
    return FALSE;
  if (entry->info.in_core) {
    hmmv_core_get_pool_usage(vms->core, entry->info.name, quota, &usage);
  } else {
    hmmv_core_get_pool_usage(vms->core, NULL, NULL, &usage);
    if (quota->managed)
      usage.min_pages += entry->nr_pages != 0 ? MIN(quota->min_pages, entry->nr_pages)
                                              : quota->min_pages;
  }
  if (usage.pool_pages != 0 && usage.min_pages > usage.pool_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "the dram-min-mib of all managed VMs would total %" G_GUINT64_FORMAT
                " MiB, above the DRAM pool of %" G_GUINT64_FORMAT " MiB",
                usage.min_pages / HMMVD_PAGES_PER_MIB, usage.pool_pages / HMMVD_PAGES_PER_MIB);
    return FALSE;
  }
  room = usage.pool_pages - MIN(usage.pool_pages, usage.held_outside_pages);
  if (usage.min_pages > room)
    g_message("vm %s: the dram-min-mib of all managed VMs total %" G_GUINT64_FORMAT " MiB; "
              "%" G_GUINT64_FORMAT " MiB of the %" G_GUINT64_FORMAT " MiB pool are held by "
              "paused, unmanaged or failing VMs, so the mins are scaled down in proportion "
              "until they give it back", entry->info.name,
              usage.min_pages / HMMVD_PAGES_PER_MIB,
              usage.held_outside_pages / HMMVD_PAGES_PER_MIB,
              usage.pool_pages / HMMVD_PAGES_PER_MIB);
  return TRUE;
}

static gboolean
quota_equal(const HmmvQuota *a, const HmmvQuota *b)
{
  return a->min_pages == b->min_pages && a->max_pages == b->max_pages &&
         a->weight == b->weight && !a->managed == !b->managed;
}

gboolean
hmmvd_vms_set_quota(HmmvdVms *vms, const char *name, const HmmvQuota *quota, GError **error)
{
  VmEntry *entry = lookup_or_error(vms, name, error);
  g_autoptr(GError) local_error = NULL;

  if (entry == NULL)
    return FALSE;
  if (!check_quota(vms, entry, quota, &local_error)) {
    g_free(entry->info.quota_error);
    entry->info.quota_error = g_strdup(local_error->message);
    g_warning("vm %s: quota rejected, the last good one stays: %s", name,
              local_error->message);
    g_propagate_prefixed_error(error, g_steal_pointer(&local_error), "vm %s: ", name);
    return FALSE;
  }
  g_clear_pointer(&entry->info.quota_error, g_free);
  if (quota_equal(&entry->info.quota, quota))
    return TRUE;
  entry->info.quota = *quota;
  entry->info.quota_accepted_interval = vms->intervals_started;
  entry->info.quota_effective_interval = G_MAXUINT64;
  if (entry->info.in_core)
    (void)hmmv_core_set_quota(vms->core, name, quota, NULL);   /* safe while one runs */
  g_message("vm %s: quota dram-min %" G_GUINT64_FORMAT " MiB, dram-max %" G_GUINT64_FORMAT
            " MiB (0: none), weight %u, managed %s", name, quota->min_pages / HMMVD_PAGES_PER_MIB,
            quota->max_pages / HMMVD_PAGES_PER_MIB, quota->weight, quota->managed ? "yes" : "no");
  return TRUE;
}

gboolean
hmmvd_vms_request_quota(HmmvdVms *vms, const char *name, const HmmvQuota *quota,
                        GError **error)
{
  VmEntry *entry = lookup_or_error(vms, name, error);

  if (entry == NULL)
    return FALSE;
  if (!check_quota(vms, entry, quota, error)) {
    g_prefix_error(error, "vm %s: ", name);
    return FALSE;
  }
  /* libvirt's metadata is the one place the quota lives: write it there and let the
   * metadata-change event apply it, so virsh and hmmvctl never disagree. */
  if (entry->info.source == HMMVD_SOURCE_LIBVIRT && vms->writer != NULL) {
    if (!vms->writer(name, quota, vms->writer_data, error)) {
      g_prefix_error(error, "vm %s: writing the quota to libvirt: ", name);
      return FALSE;
    }
    return TRUE;
  }
  return hmmvd_vms_set_quota(vms, name, quota, error);
}

gboolean
hmmvd_vms_set_paused(HmmvdVms *vms, const char *name, gboolean paused, GError **error)
{
  VmEntry *entry = lookup_or_error(vms, name, error);

  if (entry == NULL)
    return FALSE;
  if (entry->info.in_core && !hmmv_core_set_paused(vms->core, name, paused, error))
    return FALSE;
  if (!entry->info.paused != !paused)
    g_message("vm %s: %s", name, paused ? "paused: tracked, nothing moves" : "resumed");
  entry->info.paused = paused;
  return TRUE;
}

const HmmvVm *
hmmvd_vms_lookup_core_vm(HmmvdVms *vms, const char *name, GError **error)
{
  VmEntry *entry = lookup_or_error(vms, name, error);
  HmmvVm *vm;

  if (entry == NULL)
    return NULL;
  if (vms->running) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                "vm %s: an interval is running; its pages are the interval's until it is done",
                name);
    return NULL;
  }
  vm = entry->info.in_core ? hmmv_core_lookup_vm(vms->core, name) : NULL;
  if (vm == NULL)
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "vm %s is not managed: %s",
                name, entry->info.status);
  return vm;
}
