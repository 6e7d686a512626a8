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
 */
#include "quota.h"
#include "vms.h"
#include "affinity.h"

#include <string.h>

#define STARTING_STATUS "starting: tracking starts on a worker thread"

typedef struct {
  HmmvdVmInfo info;           /* first: entries are handed out as HmmvdVmInfo */
  HmmvQmp *qmp;               /* owned; NULL for VMs added with a ready tracker */
  HmmvMoveStats moves_base;   /* mover outcomes of earlier tracking runs */
  guint64 nr_pages;           /* the VM's size once its layout was known, else 0 */
  guint64 max_ram_bytes;      /* the source's view of the VM's RAM (libvirt), 0 unknown */
  gboolean retry_layout;      /* tracking could not start because the RAM layout moved
                                 under it (a guest still in firmware): retried each interval */
  HmmvVm *pending_vm;         /* built while an interval ran: tracked when it is done */
  HmmvTracker *pending_tracker;
} VmEntry;

typedef struct {
  GSourceFunc func;
  gpointer data;
} IdleWaiter;

struct _HmmvdVms {
  HmmvCore *core;
  const HmmvdConfig *config;
  HmmvMover *mover;
  HmmvdReads *reads;          /* borrowed; NULL: writes only */
  GHashTable *entries;        /* name -> VmEntry */
  GPtrArray *list;            /* sorted view handed out by hmmvd_vms_list() */
  HmmvIntervalReport report;
  gboolean have_report;
  guint64 intervals_started;  /* the index of the next interval */
  char *balance_error;        /* last one logged: a persisting error is logged once */
  char *balance_note;         /* the same for the note of scaled mins */
  char *fallback_note;        /* the same for pages sent past a full node */
  HmmvdQuotaWriter writer;
  gpointer writer_data;
  HmmvdVmRebuildFunc rebuild;
  gpointer rebuild_data;
  HmmvdVmGoneFunc gone;
  gpointer gone_data;
  /* The interval in flight on the worker, if any. */
  gboolean running;
  HmmvIntervalReport run_report;  /* the worker's until it is done, then swapped in */
  GCancellable *cancellable;
  HmmvdIntervalDone done;
  gpointer done_data;
  GPtrArray *doomed;          /* VmEntry removed or replaced meanwhile: untracked after it */
  GArray *waiters;            /* IdleWaiter: called when it is done */
  guint64 intervals_skipped;  /* ticks that found an interval still running */
  HmmvdVmRestartFunc restart;   /* for VMs of restart_source */
  HmmvdSource restart_source;
  gpointer restart_data;
};

static void
entry_free(gpointer data)
{
  VmEntry *entry = data;

  g_free(entry->info.name);
  g_free(entry->info.uuid);
  g_free(entry->info.quota_error);
  g_free(entry->info.status);
  g_free(entry->info.last_error);
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
  vms->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, entry_free);
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

static void
set_status(VmEntry *entry, const char *status)
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

static void
update_moves(HmmvdVms *vms, VmEntry *entry)
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

static gboolean
mover_is_sim(const HmmvMover *mover)
{
  return mover != NULL && g_strcmp0(hmmv_mover_get_name(mover), "sim") == 0;
}

static void
untrack(HmmvdVms *vms, VmEntry *entry)
{
  g_autoptr(GError) error = NULL;
  HmmvVm *vm;

  if (!entry->info.in_core)
    return;
  update_moves(vms, entry);
  entry->moves_base = entry->info.moves;
  /* the backoff state leaves with the VM; a new tracking run learns it again */
  entry->info.unmovable = (HmmvUnmovable){ 0 };
  vm = hmmv_core_lookup_vm(vms->core, entry->info.name);
  if (vm != NULL && mover_is_sim(vms->mover))
    hmmv_sim_mover_forget_vm(vms->mover, vm);
  drop_from_report(vms, entry->info.name);
  if (!hmmv_core_remove_vm(vms->core, entry->info.name, &error))
    g_warning("vm %s: leaving the core: %s", entry->info.name, error->message);
  entry->info.in_core = FALSE;
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
    untrack(vms, value);
  g_hash_table_unref(vms->entries);
  g_ptr_array_unref(vms->list);
  g_ptr_array_unref(vms->doomed);
  g_array_unref(vms->waiters);
  hmmv_interval_report_clear(&vms->report);
  hmmv_interval_report_clear(&vms->run_report);
  g_free(vms->balance_error);
  g_free(vms->balance_note);
  g_free(vms->fallback_note);
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

static gboolean
proxy_send_fd(HmmvQmp *qmp, int fd, const char *fdname, GError **error)
{
  return hmmv_qmp_send_fd(qmp->priv, fd, fdname, error);
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

static const struct hmmv_qmp_ops proxy_ops = {
  .name = "hmmvd-borrowed",
  .transact = proxy_transact,
  .send_fd = proxy_send_fd,
  .post = proxy_post,
};

/* QEMU's claims about its RAM are checked against its mappings and the source's view of the
 * VM before anything is allocated for them. Touches no table state: worker threads use it. */
static gboolean
build_vm(const char *name, HmmvQmp *qmp, int pid, guint64 max_ram_bytes, guint interval_ms,
         gboolean prestart, HmmvVm **vm_out, HmmvTracker **tracker_out, GError **error)
{
  /* hmmvd drives publication: interval 0 makes QEMU publish only on hmmv-sync, which the
   * tracker sends before each harvest. With QEMU on its own 1 s timer and hmmvd's period 1 s
   * plus its work, some harvests found nothing new (every page cooled a step for nothing)
   * and some merged two publications (issue 7, item 8); now each harvest covers exactly the
   * interval since the last one. */
  HmmvQemuDirtyOptions options = {
    .interval_ms = 0,   /* not interval_ms, hmmvd's period: see above */
  };
  g_autoptr(HmmvVm) vm = hmmv_qemu_vm_new_bounded(qmp, name, pid, max_ram_bytes, error);
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

static gboolean
build_from_qmp(HmmvdVms *vms, VmEntry *entry, HmmvVm **vm_out, HmmvTracker **tracker_out,
               GError **error)
{
  return build_vm(entry->info.name, entry->qmp, entry->info.pid, entry->max_ram_bytes,
                  vms->config->interval_ms, FALSE, vm_out, tracker_out, error);
}

gboolean
hmmvd_vm_build_started(const char *name, HmmvQmp *qmp, int pid, guint64 max_ram_bytes,
                       guint interval_ms, HmmvVm **vm, HmmvTracker **tracker, GError **error)
{
  return build_vm(name, qmp, pid, max_ram_bytes, interval_ms, TRUE, vm, tracker, error);
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

static gboolean
track(HmmvdVms *vms, VmEntry *entry, HmmvVm *vm, HmmvTracker *tracker, GError **error)
{
  const char *name = entry->info.name;
  guint64 nr_pages = hmmv_vm_get_nr_pages(vm);
  guint nr_regions = hmmv_vm_get_nr_regions(vm);
  g_autoptr(GError) local_error = NULL;

  /* reads, where the kernel offers a source: combined with the writes (the core starts the
   * combined tracker, which starts both; a prestarted write tracker as before) */
  tracker = hmmvd_reads_wrap(vms->reads, tracker);

  if (vms->running) {
    /* The core takes no VM while an interval runs: this one joins when it is done. */
    hmmv_vm_free(entry->pending_vm);
    if (entry->pending_tracker != NULL)
      hmmv_tracker_free(entry->pending_tracker);
    entry->pending_vm = vm;
    entry->pending_tracker = tracker;
    set_status(entry, "starting: joins when the running interval is done");
    return TRUE;
  }
  hmmv_vm_set_pid(vm, entry->info.pid);
  hmmv_vm_set_quota(vm, &entry->info.quota);
  entry->retry_layout = FALSE;
  if (!hmmv_core_add_vm(vms->core, vm, tracker, &local_error)) {
    g_autofree char *status = failure_status(local_error);

    /* While the firmware runs, QEMU's guest-physical map changes (ROM shadowing, SMRAM):
     * the layout can move between the query and the start. Try again next interval. */
    entry->retry_layout = entry->qmp != NULL &&
                          g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED);

    set_status(entry, status);
    g_warning("vm %s: not managed: %s", name, status);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  entry->info.in_core = TRUE;
  entry->info.dropped = FALSE;
  entry->nr_pages = nr_pages;
  if (entry->info.paused)
    (void)hmmv_core_set_paused(vms->core, name, TRUE, NULL);
  set_status(entry, "managed");
  g_message("vm %s: managed: %" G_GUINT64_FORMAT " MiB of RAM in %u region(s), pid %d",
            name, nr_pages / HMMVD_PAGES_PER_MIB, nr_regions, entry->info.pid);
  return TRUE;
}

/* An entry leaves the table now; it leaves the core (and its transport is freed) once no
 * interval runs: the interval's tracker may be using that transport. */
static void
retire(HmmvdVms *vms, VmEntry *entry)
{
  g_hash_table_steal(vms->entries, entry->info.name);
  if (vms->running) {
    g_ptr_array_add(vms->doomed, entry);
    return;
  }
  untrack(vms, entry);
  entry_free(entry);
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
  entry->info.status = g_strdup("starting");
  g_hash_table_insert(vms->entries, entry->info.name, entry);
  return entry;
}

gboolean
hmmvd_vms_add_with_tracker(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                           const char *uuid, HmmvVm *vm, HmmvTracker *tracker, GError **error)
{
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);

  return track(vms, entry, vm, tracker, error);
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
  if (!build_from_qmp(vms, entry, &vm, &tracker, &local_error)) {
    g_clear_pointer(&entry->qmp, hmmv_qmp_free);   /* an unmanaged VM holds no connection */
    g_autofree char *status = failure_status(local_error);

    set_status(entry, status);
    g_warning("vm %s: not managed: %s", name, status);
    g_propagate_error(error, g_steal_pointer(&local_error));
    return FALSE;
  }
  return track(vms, entry, vm, tracker, error);
}

gboolean
hmmvd_vms_add_started(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                      const char *uuid, HmmvQmp *qmp, guint64 max_ram_bytes, HmmvVm *vm,
                      HmmvTracker *tracker, GError **error)
{
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);

  entry->qmp = qmp;
  entry->max_ram_bytes = max_ram_bytes;
  return track(vms, entry, vm, tracker, error);
}

void
hmmvd_vms_add_starting(HmmvdVms *vms, const char *name, HmmvdSource source, int pid,
                       const char *uuid)
{
  VmEntry *entry = entry_new(vms, name, source, pid, uuid);

  set_status(entry, STARTING_STATUS);
}

void
hmmvd_vms_fail_start(HmmvdVms *vms, const char *name, const GError *error)
{
  VmEntry *entry = g_hash_table_lookup(vms->entries, name);
  g_autofree char *status = NULL;

  if (entry == NULL)
    return;
  status = failure_status(error);
  set_status(entry, status);
  entry->info.dropped = g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT);
  g_warning("vm %s: not managed: %s", name, status);
}

void
hmmvd_vms_add_unmanaged(HmmvdVms *vms, const char *name, HmmvdSource source,
                        const char *reason)
{
  VmEntry *entry = entry_new(vms, name, source, 0, NULL);

  set_status(entry, reason);
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

/* Pages sent to a farther node because the nearest was full: logged when the set of VMs and
 * nodes changes, and when it ends (counts: hmmvctl vms --json, metrics). */
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

/* Where each VM's vCPUs run, re-read every 8 intervals (libvirt can re-pin a live domain);
 * the modelled host of the sim mover has no CPUs to pin to. */
static void
update_affinity(HmmvdVms *vms)
{
  GHashTableIter iter;
  gpointer value;

  if (vms->mover == NULL || mover_is_sim(vms->mover) || vms->intervals_started % 8 != 1)
    return;
  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    VmEntry *entry = value;
    HmmvVm *vm = entry->info.in_core ? hmmv_core_lookup_vm(vms->core, entry->info.name)
                                     : NULL;
    const char *source;
    int node;

    if (vm == NULL)
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

static void
handle_gone(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  g_autofree char *status = g_strdup_printf("gone: %s", message);

  g_message("vm %s: QEMU is gone, no longer managed (%s)", entry->info.name, message);
  untrack(vms, entry);
  set_status(entry, status);
  if (vms->gone != NULL)
    vms->gone(entry->info.name, vms->gone_data);
}

/* Its QEMU missed a QMP deadline: out of the core (its DRAM goes back to the pool), listed
 * with the reason, and its source tries it again once QEMU answers. */
static void
handle_timed_out(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  g_autofree char *status = g_strdup_printf("not answering, retried: %s", message);

  g_warning("vm %s: dropped, QEMU missed a QMP deadline: %s", entry->info.name, message);
  untrack(vms, entry);
  set_status(entry, status);
  entry->info.dropped = TRUE;
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
  untrack(vms, entry);
  set_status(entry, status);
}

static void
restart_tracking(HmmvdVms *vms, VmEntry *entry, const char *message)
{
  g_autoptr(GError) error = NULL;
  const char *name = entry->info.name;
  HmmvVm *vm = NULL;
  HmmvTracker *tracker = NULL;
  gboolean built;

  g_message("vm %s: RAM layout changed, restarting tracking (%s)", name, message);
  untrack(vms, entry);
  entry->retry_layout = FALSE;   /* track() sets it again if the layout is still moving */
  if (vms->restart != NULL && entry->info.source == vms->restart_source) {
    /* the source queries the new layout off the main thread */
    set_status(entry, "restarting tracking: the RAM layout changed");
    entry->info.dropped = TRUE;
    vms->restart(name, vms->restart_data);
    return;
  }
  if (entry->qmp != NULL)
    built = build_from_qmp(vms, entry, &vm, &tracker, &error);
  else if (vms->rebuild != NULL)
    built = vms->rebuild(name, vms->rebuild_data, &vm, &tracker, &error);
  else
    built = (g_set_error(&error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                         "no QMP transport to query the new layout"), FALSE);
  if (!built || !track(vms, entry, vm, tracker, &error)) {
    g_autofree char *status = g_strdup_printf("RAM layout changed and tracking could not "
                                              "restart: %s", error->message);

    set_status(entry, status);
    g_warning("vm %s: %s", name, status);
  }
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

  g_hash_table_iter_init(&iter, vms->entries);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    VmEntry *entry = value;
    g_autoptr(GError) error = NULL;

    if (entry->pending_vm != NULL) {
      HmmvVm *vm = g_steal_pointer(&entry->pending_vm);
      HmmvTracker *tracker = g_steal_pointer(&entry->pending_tracker);

      (void)track(vms, entry, vm, tracker, &error);   /* logged and in its status */
    }
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
  for (guint i = 0; i < vms->report.vms->len; i++) {
    HmmvVmReport *rep = &g_array_index(vms->report.vms, HmmvVmReport, i);
    VmEntry *entry = g_hash_table_lookup(vms->entries, rep->name);

    if (entry == NULL)
      continue;   /* every VM of the core is listed; a stranger is not ours to touch */
    rep->name = entry->info.name;   /* outlives the core's VM */
    if (entry->info.quota_effective_interval == G_MAXUINT64)
      entry->info.quota_effective_interval = vms->report.index;
    entry->info.last = *rep;
    entry->info.last.error = NULL;
    entry->info.fallback_promoted += rep->promoted_fallback;
    entry->info.fallback_demoted += rep->demoted_fallback;
    update_moves(vms, entry);
    if (rep->error == NULL) {
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

    untrack(vms, entry);
    entry_free(entry);
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
hmmvd_vms_get_balance_note(HmmvdVms *vms)
{
  return vms->balance_note;
}
