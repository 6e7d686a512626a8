/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source of VMs (see libvirt.h).
 */
#include "libvirt-metadata.h"
#include "libvirt-qmp.h"
#include "libvirt.h"
#include "quota.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

/* libvirt keepalive: a probe every 5 s, the connection is declared dead after 3 unanswered
 * ones, so a hung (not just dead) libvirtd is noticed within ~20 s. */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3
/* Each QMP exchange with a domain (through libvirtd, on the domain's own worker thread) is
 * over within this; libvirt itself waits for QEMU's reply without any limit. 5 s: a healthy
 * TCG guest on a loaded 2-core host answers hmmv-sync in tens of ms, a start-up's 5 exchanges
 * in well under a second; a QEMU that misses it while managed is frozen, its DRAM kept counted,
 * and thawed once it answers (retry_dropped); one that misses a start-up is retried. */
#define LIBVIRT_QMP_TIMEOUT_MS 5000

struct _HmmvdLibvirt {
  HmmvdVms *vms;
  const HmmvdConfig *config;
  const HmmvTopology *topo;
  GMainContext *context;        /* the main thread's: where callbacks are forwarded */
  GMutex lock;                  /* guards pending */
  GPtrArray *pending;           /* GSource: forwarded events not yet dispatched */
  virConnectPtr conn;           /* NULL while disconnected; main thread only */
  int lifecycle_id;
  int metadata_id;
  guint retry_source;
  gboolean closing;             /* forwarded events arriving now are dropped */
  HmmvdLibvirtQmp *qmp;         /* the domains' QMP workers */
  GHashTable *starting;         /* name -> DomainStart: start-ups under way on workers */
  guint check_source;           /* retries dropped domains */
  GSourceFunc sync_done;        /* the interval waiting for the domains' hmmv-sync */
  gpointer sync_data;
  HmmvdMetadataMemory *memory;  /* each domain's last good hmmv metadata, by UUID */
};

/* Reference counted (g_atomic_rc_box) so that callbacks still queued on the main context
 * and QMP transports never see freed memory; the owner's reference goes in
 * hmmvd_libvirt_free. */
static HmmvdLibvirt *
lv_ref(HmmvdLibvirt *lv)
{
  return g_atomic_rc_box_acquire(lv);
}

static void
lv_unref(gpointer lv)
{
  g_atomic_rc_box_release(lv);
}

#define last_error_message hmmvd_libvirt_last_error_message
#define set_libvirt_error hmmvd_libvirt_set_error

/* libvirt prints every error on stderr by default; hmmvd reports them itself, once. */
static void
quiet_error_handler(void *user_data, virErrorPtr error)
{
}

/* ------------------------------------------------------------------------------------------
 * Quotas: libvirt metadata in hmmv's namespace.
 */

static void add_domain(HmmvdLibvirt *lv, virDomainPtr dom);

/* Its metadata changed (or a start-up is over): applied (libvirt-metadata.h). A domain that
 * waited unmanaged for its metadata is discovered again, the element judged there. */
static void
refresh_quota(HmmvdLibvirt *lv, virDomainPtr dom)
{
  const char *name = virDomainGetName(dom);
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  if (info == NULL)
    return;
  if (g_str_has_prefix(info->status, HMMVD_METADATA_REJECTED)) {
    g_message("vm %s: hmmv metadata changed: discovering it again", name);
    hmmvd_vms_remove(lv->vms, name);
    add_domain(lv, dom);
    return;
  }
  hmmvd_libvirt_apply_metadata(lv->vms, lv->memory, lv->config, dom);
}

static void
refresh_quota_by_name(HmmvdLibvirt *lv, const char *name)
{
  virDomainPtr dom = lv->conn != NULL ? virDomainLookupByName(lv->conn, name) : NULL;

  if (dom == NULL)
    return;
  refresh_quota(lv, dom);
  virDomainFree(dom);
}

static gboolean
write_quota(const char *name, const HmmvQuota *quota, gpointer user_data, GError **error)
{
  HmmvdLibvirt *lv = user_data;
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  return hmmvd_libvirt_write_metadata(lv->conn, name, quota,
                                      info != NULL ? (const char *const *)info->exclude : NULL,
                                      error);
}

/* ------------------------------------------------------------------------------------------
 * Discovery
 */

static gboolean
is_tracked_incarnation(const HmmvdVmInfo *info, const char *uuid, int pid)
{
  return info->source == HMMVD_SOURCE_LIBVIRT && info->in_core && info->pid == pid &&
         g_strcmp0(info->uuid, uuid) == 0;
}

/* A domain's start-up: every QMP round trip (layout, getfd, hmmv-start) on a worker thread,
 * each under the transport's deadline; the table is touched on the main thread only. */
typedef struct {
  HmmvdLibvirt *lv;             /* a reference; lv->closing: only clean up */
  char *name;
  char *uuid;
  int pid;
  guint64 max_ram_bytes;
  guint interval_ms;
  guint32 numatune_nodes;       /* hmmvd_libvirt_numatune_nodes, within 0..HMMV_MAX_NODE_ID */
  char **exclude;               /* the metadata's backends left alone */
  /* results */
  guint64 excluded_bytes;
  HmmvQmp *qmp;
  HmmvVm *vm;
  HmmvTracker *tracker;
} DomainStart;

static void
domain_start_free(gpointer data)
{
  DomainStart *start = data;

  if (start->tracker != NULL)
    hmmv_tracker_stop(start->tracker);  /* started, then abandoned: stop the export */
  hmmv_tracker_free(start->tracker);
  hmmv_vm_free(start->vm);
  hmmv_qmp_free(start->qmp);
  lv_unref(start->lv);
  g_free(start->name);
  g_free(start->uuid);
  g_strfreev(start->exclude);
  g_free(start);
}

static void
domain_start_run(GTask *task, gpointer source_object, gpointer task_data,
                 GCancellable *cancellable)
{
  DomainStart *start = task_data;
  GError *error = NULL;

  if (!hmmvd_vm_build_started(start->name, start->qmp, start->pid, start->max_ram_bytes,
                              start->interval_ms, (const char *const *)start->exclude,
                              &start->excluded_bytes, &start->vm, &start->tracker, &error))
    g_task_return_error(task, error);
  else
    g_task_return_boolean(task, TRUE);
}

static void refresh_quota_by_name(HmmvdLibvirt *lv, const char *name);

/* Main thread. */
static void
domain_start_done(GObject *source_object, GAsyncResult *result, gpointer user_data)
{
  DomainStart *start = g_task_get_task_data(G_TASK(result));
  HmmvdLibvirt *lv = start->lv;
  g_autoptr(GError) local_error = NULL;
  HmmvdVmInfo *info;

  if (lv->closing || g_hash_table_lookup(lv->starting, start->name) != start)
    return;                               /* hmmvd stops, or the domain went meanwhile */
  g_hash_table_steal(lv->starting, start->name);
  info = hmmvd_vms_lookup(lv->vms, start->name);
  if (info == NULL || g_strcmp0(info->uuid, start->uuid) != 0 || info->pid != start->pid) {
    g_debug("domain %s: stopped while tracking started", start->name);
  } else if (!g_task_propagate_boolean(G_TASK(result), &local_error)) {
    if (g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT)) {
      /* an exclusion that names no backend of it, or all of them: until it is fixed */
      g_autofree char *reason = g_strdup_printf(HMMVD_METADATA_REJECTED "%s; not managed "
                                                "until it is fixed", local_error->message);

      hmmvd_vms_add_unmanaged(lv->vms, start->name, HMMVD_SOURCE_LIBVIRT, reason);
      return;
    }
    /* vms lists it with the reason ("QEMU lacks the hmmv patches: ...") and logs it */
    hmmvd_vms_fail_start(lv->vms, start->name, local_error);
    /* retried: a guest still booting (RAM remapped), or every QMP connection was busy */
    if (g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED) ||
        g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_BUSY))
      hmmvd_vms_lookup(lv->vms, start->name)->dropped = TRUE;
  } else if (hmmvd_vms_add_started(lv->vms, start->name, HMMVD_SOURCE_LIBVIRT, start->pid,
                                   start->uuid, g_steal_pointer(&start->qmp),
                                   start->max_ram_bytes, (const char *const *)start->exclude,
                                   start->excluded_bytes, g_steal_pointer(&start->vm),
                                   g_steal_pointer(&start->tracker), NULL)) {
    g_message("vm %s: libvirt domain %s, QEMU pid %d", start->name, start->uuid, start->pid);
    hmmvd_vms_set_bound_nodes(lv->vms, start->name, start->numatune_nodes);
  }
  refresh_quota_by_name(lv, start->name);
}

static void
domain_start(HmmvdLibvirt *lv, virDomainPtr dom, const char *uuid, int pid,
             guint32 numatune_nodes)
{
  const char *name = virDomainGetName(dom);
  g_autoptr(GError) local_error = NULL;
  DomainStart *start;
  GTask *task;
  HmmvQmp *qmp;
  g_auto(GStrv) exclude = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *excluded = NULL;
  HmmvdVmInfo *info;
  HmmvQuota quota;

  /* The exclusion must be known before tracking starts: it may name memory hmmv must leave
   * alone (pinned, hugetlbfs). libvirt not answering: retried. */
  if (!hmmvd_libvirt_read_metadata_text(dom, &xml, &local_error)) {
    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, local_error->message);
    info = hmmvd_vms_lookup(lv->vms, name);
    info->dropped = TRUE;
    info->uuid = g_strdup(uuid);
    return;
  }
  switch (hmmvd_metadata_at_discovery(lv->memory, uuid, xml, &lv->config->default_quota,
                                      &quota, &exclude, &local_error)) {
  case HMMVD_METADATA_WAIT: {
    g_autofree char *reason = g_strdup_printf(HMMVD_METADATA_REJECTED "%s; which backends to "
                                              "leave alone is unknown: not managed until it "
                                              "is fixed", local_error->message);

    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, reason);
    return;
  }
  case HMMVD_METADATA_LAST_GOOD:
    excluded = g_strjoinv(", ", exclude);
    g_warning("vm %s: discovered again with malformed hmmv metadata (%s); its last good quota "
              "and exclusion [%s] stay", name, local_error->message, excluded);
    break;
  case HMMVD_METADATA_QUOTA_REJECTED:     /* its quota: the default (refresh_quota says so) */
  case HMMVD_METADATA_ACCEPTED:
    break;
  }
  qmp = hmmvd_libvirt_qmp_transport_new(lv->qmp, uuid, name, (int)virDomainGetID(dom),
                                        &local_error);
  if (qmp == NULL) {
    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, local_error->message);
    return;
  }
  start = g_new0(DomainStart, 1);
  start->lv = lv_ref(lv);
  start->name = g_strdup(name);
  start->uuid = g_strdup(uuid);
  start->pid = pid;
  /* libvirt's view of the domain's memory (KiB; DIMMs included) bounds what QEMU claims. */
  start->max_ram_bytes = (guint64)virDomainGetMaxMemory(dom) << 10;
  start->interval_ms = lv->config->interval_ms;
  start->numatune_nodes = numatune_nodes;
  start->exclude = g_steal_pointer(&exclude);
  start->qmp = qmp;
  /* listed meanwhile, so status shows it and a quota can be read for it */
  hmmvd_vms_add_starting(lv->vms, name, HMMVD_SOURCE_LIBVIRT, pid, uuid);
  info = hmmvd_vms_lookup(lv->vms, name);
  if (start->exclude[0] != NULL)          /* shown while it starts, and if the start fails */
    info->exclude = g_strdupv(start->exclude);
  task = g_task_new(NULL, NULL, domain_start_done, NULL);
  g_task_set_task_data(task, start, domain_start_free);
  g_hash_table_replace(lv->starting, start->name, start);
  g_task_run_in_thread(task, domain_start_run);
  g_object_unref(task);
}

static void
add_domain(HmmvdLibvirt *lv, virDomainPtr dom)
{
  const char *name = virDomainGetName(dom);
  char uuid[VIR_UUID_STRING_BUFLEN];
  g_autoptr(GError) local_error = NULL;
  g_autofree char *conflict = NULL;
  g_autofree char *reason = NULL;
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);
  DomainStart *starting = g_hash_table_lookup(lv->starting, name);
  char *xml;
  int pid = -1;
  guint32 numatune_nodes = 0;

  virDomainGetUUIDString(dom, uuid);
  if (info != NULL && info->source != HMMVD_SOURCE_LIBVIRT) {
    g_warning("domain %s: a standalone VM has the same name; the domain is ignored", name);
    return;
  }
  if (!hmmvd_libvirt_read_pid(lv->config->libvirt_run_dir, name, &pid, &local_error)) {
    reason = g_strdup_printf("cannot find QEMU's pid: %s", local_error->message);
  } else if ((info != NULL && is_tracked_incarnation(info, uuid, pid)) ||
             (starting != NULL && starting->pid == pid && strcmp(starting->uuid, uuid) == 0)) {
    refresh_quota(lv, dom);               /* the same QEMU: keep it, events may be missed */
    return;
  } else if (hmmvd_libvirt_qmp_is_busy(lv->qmp, uuid)) {
    /* a QEMU that missed a deadline and has not answered since, or one still answering the
     * hmmv-stop of a restart (layout, exclusion): retried when it has */
    reason = g_strdup_printf("QEMU has not answered an earlier QMP exchange yet (deadline %u "
                             "ms; retrying every %u ms)", LIBVIRT_QMP_TIMEOUT_MS,
                             lv->config->reconnect_ms);
  } else if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL) {
    reason = g_strdup_printf("cannot read the domain XML: %s", last_error_message());
  } else {
    conflict = hmmvd_libvirt_numatune_conflict(xml, lv->topo);
    /* hmmv's node ids: a binding to nodes above them binds nothing hmmv places on */
    numatune_nodes = (guint32)(hmmvd_libvirt_numatune_nodes(xml) &
                               ((G_GUINT64_CONSTANT(1) << (HMMV_MAX_NODE_ID + 1)) - 1));
    free(xml);
  }
  g_hash_table_remove(lv->starting, name);  /* another QEMU: its start-up counts no more */
  if (info != NULL)
    hmmvd_vms_remove(lv->vms, name);      /* another QEMU, or an entry to re-evaluate */
  if (reason != NULL || conflict != NULL) {
    const char *why = reason != NULL ? reason : conflict;

    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, why);
    info = hmmvd_vms_lookup(lv->vms, name);
    info->dropped = reason != NULL && pid > 0;
    info->uuid = g_strdup(uuid);          /* retry_dropped finds it by it */
    return;
  }
  domain_start(lv, dom, uuid, pid, numatune_nodes);
}

static void
remove_domain(HmmvdLibvirt *lv, const char *name, const char *why)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  g_hash_table_remove(lv->starting, name);
  if (info == NULL || info->source != HMMVD_SOURCE_LIBVIRT)
    return;
  g_message("vm %s: %s, no longer managed", name, why);
  hmmvd_vms_remove(lv->vms, name);
}

/* Every running domain is added (or kept when its QEMU is the one already tracked); libvirt
 * VMs that are no longer running are removed. */
static void
discover_all(HmmvdLibvirt *lv)
{
  g_autoptr(GHashTable) running = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
  virDomainPtr *domains = NULL;
  GPtrArray *list;
  int n;

  n = virConnectListAllDomains(lv->conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    g_warning("libvirt: cannot list the running domains: %s", last_error_message());
    return;
  }
  for (int i = 0; i < n; i++) {
    g_hash_table_add(running, g_strdup(virDomainGetName(domains[i])));
    add_domain(lv, domains[i]);
    virDomainFree(domains[i]);
  }
  free(domains);
  list = hmmvd_vms_list(lv->vms);
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    if (info->source == HMMVD_SOURCE_LIBVIRT && !g_hash_table_contains(running, info->name))
      g_ptr_array_add(gone, g_strdup(info->name));
  }
  for (guint i = 0; i < gone->len; i++)
    remove_domain(lv, g_ptr_array_index(gone, i), "stopped while libvirt was away");
}

/* ------------------------------------------------------------------------------------------
 * Events: libvirt calls these from its event sources (or from an RPC call that saw EOF);
 * they only copy what they need and queue it on the main context.
 */

typedef enum {
  FORWARD_LIFECYCLE,
  FORWARD_METADATA,
  FORWARD_CLOSED,
} ForwardKind;

typedef struct {
  HmmvdLibvirt *lv;             /* a reference */
  virConnectPtr conn;           /* a reference: events of an old connection are dropped */
  ForwardKind kind;
  char uuid[VIR_UUID_STRING_BUFLEN];
  char *name;
  int event;
  int detail;
  GSource *source;              /* the idle source carrying it, listed in lv->pending */
} Forward;

static void
forward_free(gpointer data)
{
  Forward *fw = data;

  g_mutex_lock(&fw->lv->lock);
  if (fw->source != NULL && g_ptr_array_remove_fast(fw->lv->pending, fw->source))
    g_source_unref(fw->source);
  g_mutex_unlock(&fw->lv->lock);
  virConnectClose(fw->conn);
  lv_unref(fw->lv);
  g_free(fw->name);
  g_free(fw);
}

static void schedule_reconnect(HmmvdLibvirt *lv);
static void disconnect(HmmvdLibvirt *lv);

/* Why a lifecycle event ends the domain's management; NULL when it does not. */
static const char *
stop_reason(int event, int detail)
{
  switch (event) {
  case VIR_DOMAIN_EVENT_STOPPED:
    return detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED ? "migrated away"
           : detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? "crashed"
                                                        : "stopped";
  case VIR_DOMAIN_EVENT_CRASHED:
    return "crashed";
  case VIR_DOMAIN_EVENT_SHUTDOWN:
    return detail == VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED ? "shut down" : NULL;
  default:
    return NULL;
  }
}

static gboolean
forward_dispatch(gpointer data)
{
  Forward *fw = data;
  HmmvdLibvirt *lv = fw->lv;
  const char *why;
  virDomainPtr dom;

  if (lv->closing || lv->conn != fw->conn)
    return G_SOURCE_REMOVE;
  if (fw->kind == FORWARD_CLOSED) {
    g_warning("libvirt: lost the connection to %s; VMs stay managed, reconnecting every %u ms",
              lv->config->libvirt_uri, lv->config->reconnect_ms);
    disconnect(lv);
    schedule_reconnect(lv);
    return G_SOURCE_REMOVE;
  }
  /* By name, not looked up: a transient domain that stopped is gone from libvirt by the
   * time its event is dispatched (the lookup failed and the VM stayed listed, managed). */
  if (fw->kind == FORWARD_LIFECYCLE && (why = stop_reason(fw->event, fw->detail)) != NULL) {
    remove_domain(lv, fw->name, why);
    return G_SOURCE_REMOVE;
  }
  dom = virDomainLookupByUUIDString(lv->conn, fw->uuid);
  if (dom == NULL) {
    g_debug("libvirt: event for domain %s that is gone: %s", fw->uuid, last_error_message());
    return G_SOURCE_REMOVE;
  }
  if (fw->kind == FORWARD_LIFECYCLE && fw->event == VIR_DOMAIN_EVENT_STARTED)
    add_domain(lv, dom);
  else if (fw->kind == FORWARD_METADATA)
    refresh_quota(lv, dom);
  virDomainFree(dom);
  return G_SOURCE_REMOVE;
}

static void
forward(HmmvdLibvirt *lv, virConnectPtr conn, ForwardKind kind, virDomainPtr dom, int event,
        int detail)
{
  Forward *fw = g_new0(Forward, 1);
  GSource *source;

  fw->lv = lv_ref(lv);
  fw->conn = conn;
  virConnectRef(conn);
  fw->kind = kind;
  if (dom != NULL) {
    virDomainGetUUIDString(dom, fw->uuid);
    fw->name = g_strdup(virDomainGetName(dom));
  }
  fw->event = event;
  fw->detail = detail;
  /* Always through an idle source, never g_main_context_invoke(): on the main thread the
   * latter runs the handler at once, inside libvirt's callback and under its locks, and
   * disconnect() would then deadlock on the close callback's own lock. */
  source = g_idle_source_new();
  g_source_set_callback(source, forward_dispatch, fw, forward_free);
  g_mutex_lock(&lv->lock);
  fw->source = source;
  g_ptr_array_add(lv->pending, g_source_ref(source));
  g_mutex_unlock(&lv->lock);
  g_source_attach(source, lv->context);
  g_source_unref(source);
}

static int
on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
  forward(opaque, conn, FORWARD_LIFECYCLE, dom, event, detail);
  return 0;
}

static void
on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
  if (type == VIR_DOMAIN_METADATA_ELEMENT && g_strcmp0(nsuri, HMMVD_METADATA_URI) == 0)
    forward(opaque, conn, FORWARD_METADATA, dom, 0, 0);
}

static void
on_close(virConnectPtr conn, int reason, void *opaque)
{
  forward(opaque, conn, FORWARD_CLOSED, NULL, reason, 0);
}

/* ------------------------------------------------------------------------------------------
 * Connection
 */

static void
disconnect(HmmvdLibvirt *lv)
{
  if (lv->conn == NULL)
    return;
  /* On a dead connection these fail; the callbacks' references are dropped either way when
   * the connection object goes. */
  if (lv->lifecycle_id >= 0)
    virConnectDomainEventDeregisterAny(lv->conn, lv->lifecycle_id);
  if (lv->metadata_id >= 0)
    virConnectDomainEventDeregisterAny(lv->conn, lv->metadata_id);
  virConnectUnregisterCloseCallback(lv->conn, on_close);
  lv->lifecycle_id = lv->metadata_id = -1;
  hmmvd_libvirt_qmp_set_connection(lv->qmp, NULL);
  virConnectClose(lv->conn);
  lv->conn = NULL;
}

static gboolean
connect_libvirt(HmmvdLibvirt *lv, GError **error)
{
  const char *uri = lv->config->libvirt_uri;
  virConnectPtr conn = virConnectOpen(uri);

  if (conn == NULL) {
    set_libvirt_error(error, uri);
    return FALSE;
  }
  lv->conn = conn;
  hmmvd_libvirt_qmp_set_connection(lv->qmp, conn);
  if (virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0)
    g_debug("libvirt: no keepalive on %s: %s", uri, last_error_message());
  /* Events first, discovery second: a domain starting in between is seen twice, which
   * add_domain handles, rather than never. */
  lv->lifecycle_id = virConnectDomainEventRegisterAny(
    conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
    lv_ref(lv), lv_unref);
  lv->metadata_id = virConnectDomainEventRegisterAny(
    conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata),
    lv_ref(lv), lv_unref);
  /* The close callback holds no reference: a driver without close callbacks (test:///)
   * accepts it and never calls freecb, which leaked lv. None is needed: disconnect()
   * unregisters it before the owner's reference goes, and libvirt runs it under the lock
   * that unregistering takes. */
  if (lv->lifecycle_id < 0 || lv->metadata_id < 0 ||
      virConnectRegisterCloseCallback(conn, on_close, lv, NULL) < 0) {
    set_libvirt_error(error, uri);
    g_prefix_error(error, "cannot register for events: ");
    disconnect(lv);
    return FALSE;
  }
  discover_all(lv);
  return TRUE;
}

static gboolean
retry_connect(gpointer data)
{
  HmmvdLibvirt *lv = data;
  g_autoptr(GError) local_error = NULL;

  if (!connect_libvirt(lv, &local_error)) {
    g_debug("libvirt: still no connection: %s", local_error->message);
    return G_SOURCE_CONTINUE;
  }
  g_message("libvirt: connected to %s", lv->config->libvirt_uri);
  lv->retry_source = 0;
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect(HmmvdLibvirt *lv)
{
  if (lv->retry_source == 0)
    lv->retry_source = g_timeout_add(MAX(lv->config->reconnect_ms, 100), retry_connect, lv);
}

/* Domains dropped because their start-up missed a QMP deadline (or whose layout changed) are
 * tried again once nothing is left under way with them; a frozen domain (its QEMU missed a
 * deadline while managed: vms-interval.c) is thawed once its QEMU answered the exchange it
 * missed, or removed if it stopped meanwhile. */
static gboolean
retry_dropped(gpointer data)
{
  HmmvdLibvirt *lv = data;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  GPtrArray *list;

  if (lv->conn == NULL)
    return G_SOURCE_CONTINUE;
  list = hmmvd_vms_list(lv->vms);
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    if (info->source == HMMVD_SOURCE_LIBVIRT && info->uuid != NULL &&
        ((info->frozen && info->in_core) ||
         (info->dropped && !info->in_core && !g_hash_table_contains(lv->starting, info->name))) &&
        !hmmvd_libvirt_qmp_is_busy(lv->qmp, info->uuid))
      g_ptr_array_add(names, g_strdup(info->name));
  }
  for (guint i = 0; i < names->len; i++) {
    const char *name = g_ptr_array_index(names, i);
    gboolean frozen = hmmvd_vms_lookup(lv->vms, name)->frozen;
    virDomainPtr dom = virDomainLookupByName(lv->conn, name);

    if (dom == NULL || virDomainIsActive(dom) != 1) {
      remove_domain(lv, name, frozen ? "stopped while frozen" : "stopped while dropped");
    } else if (frozen) {
      (void)hmmvd_vms_thaw(lv->vms, name);
    } else {
      g_message("vm %s: trying again", name);
      add_domain(lv, dom);
    }
    if (dom != NULL)
      virDomainFree(dom);
  }
  return G_SOURCE_CONTINUE;
}

/* vms: a domain's RAM layout changed; its tracking restarts off the main thread. */
static void
restart_domain(const char *name, gpointer user_data)
{
  HmmvdLibvirt *lv = user_data;
  virDomainPtr dom = lv->conn != NULL ? virDomainLookupByName(lv->conn, name) : NULL;

  if (dom == NULL)
    return;                               /* retry_dropped tries it again */
  add_domain(lv, dom);
  virDomainFree(dom);
}

/* The interval's hmmv-sync, sent ahead (see libvirt-qmp.h). */
static gboolean
sync_done(gpointer data)
{
  HmmvdLibvirt *lv = data;
  GSourceFunc done = lv->sync_done;

  lv->sync_done = NULL;
  if (done != NULL && !lv->closing)
    done(lv->sync_data);
  return G_SOURCE_REMOVE;
}

gboolean
hmmvd_libvirt_sync_begin(HmmvdLibvirt *lv, GSourceFunc done, gpointer data)
{
  if (lv == NULL || lv->sync_done != NULL)
    return FALSE;
  lv->sync_done = done;
  lv->sync_data = data;
  /* healthy domains answer in ms; one slower than an interval (at least 1 s) costs only its
   * own harvest, never the others' interval */
  if (!hmmvd_libvirt_qmp_sync_begin(lv->qmp, MAX(lv->config->interval_ms, 1000), sync_done,
                                    lv)) {
    lv->sync_done = NULL;
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmvd_libvirt_sync_pending(const HmmvdLibvirt *lv)
{
  return lv != NULL && lv->sync_done != NULL;
}

void
hmmvd_libvirt_sync_end(HmmvdLibvirt *lv)
{
  if (lv != NULL)
    hmmvd_libvirt_qmp_sync_end(lv->qmp);
}

gboolean
hmmvd_libvirt_is_connected(const HmmvdLibvirt *lv)
{
  return lv->conn != NULL;
}

HmmvdLibvirt *
hmmvd_libvirt_new(HmmvdVms *vms, const HmmvdConfig *config, const HmmvTopology *topo,
                  GError **error)
{
  g_autoptr(GError) local_error = NULL;
  HmmvdLibvirt *lv;

  virSetErrorFunc(NULL, quiet_error_handler);
  if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "libvirt: cannot start: %s",
                last_error_message());
    return NULL;
  }
  lv = g_atomic_rc_box_new0(HmmvdLibvirt);
  lv->vms = vms;
  lv->config = config;
  lv->topo = topo;
  lv->context = g_main_context_ref(g_main_context_default());
  lv->lifecycle_id = lv->metadata_id = -1;
  g_mutex_init(&lv->lock);
  lv->pending = g_ptr_array_new();
  lv->qmp = hmmvd_libvirt_qmp_new(LIBVIRT_QMP_TIMEOUT_MS, config->qmp_connections);
  lv->starting = g_hash_table_new(g_str_hash, g_str_equal);
  lv->memory = hmmvd_metadata_memory_new();
  hmmvd_vms_set_quota_writer(vms, write_quota, lv);
  hmmvd_vms_set_restart_func(vms, HMMVD_SOURCE_LIBVIRT, restart_domain, lv);
  lv->check_source = g_timeout_add(MAX(config->reconnect_ms, 100), retry_dropped, lv);
  if (!connect_libvirt(lv, &local_error)) {
    g_warning("libvirt: %s; retrying every %u ms", local_error->message,
              config->reconnect_ms);
    schedule_reconnect(lv);
  } else {
    g_message("libvirt: connected to %s", config->libvirt_uri);
  }
  return lv;
}

void
hmmvd_libvirt_free(HmmvdLibvirt *lv)
{
  if (lv == NULL)
    return;
  lv->closing = TRUE;
  hmmvd_vms_set_quota_writer(lv->vms, NULL, NULL);
  hmmvd_vms_set_restart_func(lv->vms, HMMVD_SOURCE_LIBVIRT, NULL, NULL);
  if (lv->retry_source != 0)
    g_source_remove(lv->retry_source);
  lv->retry_source = 0;
  if (lv->check_source != 0)
    g_source_remove(lv->check_source);
  lv->check_source = 0;
  /* start-ups still running end on their own (each exchange has its deadline) and only
   * clean up: lv->closing */
  g_hash_table_remove_all(lv->starting);
  disconnect(lv);
  /* Events still queued would never run now: drop them (and their references). */
  for (;;) {
    GSource *source = NULL;

    g_mutex_lock(&lv->lock);
    if (lv->pending->len > 0)
      source = g_ptr_array_steal_index_fast(lv->pending, lv->pending->len - 1);
    g_mutex_unlock(&lv->lock);
    if (source == NULL)
      break;
    g_source_destroy(source);     /* runs forward_free, which no longer finds it listed */
    g_source_unref(source);
  }
  g_ptr_array_unref(lv->pending);
  g_hash_table_unref(lv->starting);
  hmmvd_metadata_memory_free(lv->memory);
  hmmvd_libvirt_qmp_sync_end(lv->qmp);
  hmmvd_libvirt_qmp_unref(lv->qmp);
  g_mutex_clear(&lv->lock);
  g_main_context_unref(lv->context);
  lv_unref(lv);
}
