/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source of VMs (see libvirt.h): what the main thread does with what
 * libvirtd says. The calls into libvirtd run on their own thread (libvirt-calls.c, see
 * libvirt-private.h); nothing here waits for libvirtd.
 */
#include "libvirt-private.h"
#include "quota.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

/* Each QMP exchange with a domain (through libvirtd, on the domain's own worker thread) is
 * over within this; libvirt itself waits for QEMU's reply without any limit. 5 s: a healthy
 * TCG guest on a loaded 2-core host answers hmmv-sync in tens of ms, a start-up's 5 exchanges
 * in well under a second; a QEMU that misses it while managed is frozen, its DRAM kept counted,
 * and thawed once it answers (retry_dropped); one that misses a start-up is retried. */
#define LIBVIRT_QMP_TIMEOUT_MS 5000
/* hmmvd stopping waits this long for a call under way on the calls thread (then leaves it). */
#define LIBVIRT_STOP_WAIT_MS 2000

static void lv_clear(gpointer data);

/* Reference counted (g_atomic_rc_box) so that callbacks still queued on the main context,
 * calls on the calls thread and QMP transports never see freed memory; the owner's reference
 * goes in hmmvd_libvirt_free, what the calls thread shares with the last one. */
HmmvdLibvirt *
hmmvd_libvirt_ref(HmmvdLibvirt *lv)
{
  return g_atomic_rc_box_acquire(lv);
}

void
hmmvd_libvirt_unref(gpointer lv)
{
  g_atomic_rc_box_release_full(lv, lv_clear);
}

#define lv_ref hmmvd_libvirt_ref
#define lv_unref hmmvd_libvirt_unref
#define last_error_message hmmvd_libvirt_last_error_message

/* libvirt prints every error on stderr by default; hmmvd reports them itself, once. */
static void
quiet_error_handler(void *user_data, virErrorPtr error)
{
}

/* ------------------------------------------------------------------------------------------
 * Asking libvirtd about one domain: on the calls thread, the answer applied by ask_done. At
 * most one retry of a domain under way (asking); calls of a connection given up are dropped.
 */

static void ask_done(HmmvdLibvirt *lv, LvCall *call);

void
hmmvd_libvirt_ask(HmmvdLibvirt *lv, LvAsk what, const char *name, const char *uuid)
{
  guint gen = (guint)g_atomic_int_get(&lv->gen);
  LvCall *call;

  if (gen == 0 || lv->closing)
    return;                               /* not connected: discovery on connect sees it */
  call = hmmvd_libvirt_call_new(lv, gen, hmmvd_libvirt_run_domain, ask_done);
  call->ask = what;
  call->name = g_strdup(name);
  if (uuid != NULL)
    g_strlcpy(call->uuid, uuid, sizeof(call->uuid));
  g_hash_table_replace(lv->asking, g_strdup(name),
                       GUINT_TO_POINTER(GPOINTER_TO_UINT(g_hash_table_lookup(lv->asking,
                                                                             name)) + 1));
  hmmvd_libvirt_call_push(lv, call);
}

static void
asked(HmmvdLibvirt *lv, const char *name)
{
  guint n = GPOINTER_TO_UINT(g_hash_table_lookup(lv->asking, name));

  if (n <= 1)
    g_hash_table_remove(lv->asking, name);
  else
    g_hash_table_replace(lv->asking, g_strdup(name), GUINT_TO_POINTER(n - 1));
}

/* ------------------------------------------------------------------------------------------
 * Quotas: libvirt metadata in hmmv's namespace.
 */

static void add_domain(HmmvdLibvirt *lv, const HmmvdDomainFacts *facts);

/* Its metadata changed (or a start-up is over): applied (libvirt-metadata.h). A domain that
 * waited unmanaged for its metadata is discovered again, the element judged there. */
static void
refresh_quota(HmmvdLibvirt *lv, const HmmvdDomainFacts *facts)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, facts->name);

  if (info == NULL)
    return;
  if (g_str_has_prefix(info->status, HMMVD_METADATA_REJECTED)) {
    g_message("vm %s: hmmv metadata changed: discovering it again", facts->name);
    hmmvd_vms_remove(lv->vms, facts->name);
    add_domain(lv, facts);
    return;
  }
  hmmvd_libvirt_apply_metadata(lv->vms, lv->memory, lv->config, facts->name, facts->uuid,
                               facts->meta, facts->meta_error);
  if (facts->meta_error == NULL)
    hmmvd_libvirt_writes_seen(lv, facts->name, facts->meta);
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
  char *meta;                   /* hmmv's element as read at discovery (NULL: none) */
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
  g_free(start->meta);
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
  /* the element read at discovery, then read again: it may have changed while it started */
  hmmvd_libvirt_apply_metadata(lv->vms, lv->memory, lv->config, start->name, start->uuid,
                               start->meta, NULL);
  hmmvd_libvirt_ask(lv, LV_ASK_METADATA, start->name, start->uuid);
}

static void
domain_start(HmmvdLibvirt *lv, const HmmvdDomainFacts *facts, int pid,
             guint32 numatune_nodes)
{
  const char *name = facts->name;
  g_autoptr(GError) local_error = NULL;
  DomainStart *start;
  GTask *task;
  HmmvQmp *qmp;
  g_auto(GStrv) exclude = NULL;
  g_autofree char *excluded = NULL;
  HmmvdVmInfo *info;
  HmmvQuota quota;

  /* The exclusion must be known before tracking starts: it may name memory hmmv must leave
   * alone (pinned, hugetlbfs). libvirt not answering: retried. */
  if (facts->meta_error != NULL) {
    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, facts->meta_error);
    info = hmmvd_vms_lookup(lv->vms, name);
    info->dropped = TRUE;
    info->uuid = g_strdup(facts->uuid);
    return;
  }
  hmmvd_libvirt_writes_seen(lv, name, facts->meta);
  switch (hmmvd_metadata_at_discovery(lv->memory, facts->uuid, facts->meta,
                                      &lv->config->default_quota, &quota, &exclude,
                                      &local_error)) {
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
  qmp = hmmvd_libvirt_qmp_transport_new(lv->qmp, facts->uuid, name, facts->id, &local_error);
  if (qmp == NULL) {
    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, local_error->message);
    return;
  }
  start = g_new0(DomainStart, 1);
  start->lv = lv_ref(lv);
  start->name = g_strdup(name);
  start->uuid = g_strdup(facts->uuid);
  start->pid = pid;
  /* libvirt's view of the domain's memory (KiB; DIMMs included) bounds what QEMU claims. */
  start->max_ram_bytes = facts->max_ram_bytes;
  start->interval_ms = lv->config->interval_ms;
  start->numatune_nodes = numatune_nodes;
  start->exclude = g_steal_pointer(&exclude);
  start->meta = g_strdup(facts->meta);
  start->qmp = qmp;
  /* listed meanwhile, so status shows it and a quota can be read for it */
  hmmvd_vms_add_starting(lv->vms, name, HMMVD_SOURCE_LIBVIRT, pid, facts->uuid);
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
add_domain(HmmvdLibvirt *lv, const HmmvdDomainFacts *facts)
{
  const char *name = facts->name;
  const char *uuid = facts->uuid;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *conflict = NULL;
  g_autofree char *reason = NULL;
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);
  DomainStart *starting = g_hash_table_lookup(lv->starting, name);
  int pid = -1;
  guint32 numatune_nodes = 0;

  if (info != NULL && info->source != HMMVD_SOURCE_LIBVIRT) {
    g_warning("domain %s: a standalone VM has the same name; the domain is ignored", name);
    return;
  }
  if (!hmmvd_libvirt_read_pid(lv->config->libvirt_run_dir, name, &pid, &local_error)) {
    reason = g_strdup_printf("cannot find QEMU's pid: %s", local_error->message);
  } else if ((info != NULL && is_tracked_incarnation(info, uuid, pid)) ||
             (starting != NULL && starting->pid == pid && strcmp(starting->uuid, uuid) == 0)) {
    refresh_quota(lv, facts);             /* the same QEMU: keep it, events may be missed */
    return;
  } else if (hmmvd_libvirt_qmp_is_busy(lv->qmp, uuid)) {
    /* a QEMU that missed a deadline and has not answered since, or one still answering the
     * hmmv-stop of a restart (layout, exclusion): retried when it has */
    reason = g_strdup_printf("QEMU has not answered an earlier QMP exchange yet (deadline %u "
                             "ms; retrying every %u ms)", LIBVIRT_QMP_TIMEOUT_MS,
                             lv->config->reconnect_ms);
  } else if (facts->xml == NULL) {
    reason = g_strdup(facts->xml_error);
  } else {
    conflict = hmmvd_libvirt_numatune_conflict(facts->xml, lv->topo);
    /* hmmv's node ids: a binding to nodes above them binds nothing hmmv places on */
    numatune_nodes = (guint32)(hmmvd_libvirt_numatune_nodes(facts->xml) &
                               ((G_GUINT64_CONSTANT(1) << (HMMV_MAX_NODE_ID + 1)) - 1));
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
  domain_start(lv, facts, pid, numatune_nodes);
}

void
hmmvd_libvirt_remove_domain(HmmvdLibvirt *lv, const char *name, const char *why)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  g_hash_table_remove(lv->starting, name);
  if (info == NULL || info->source != HMMVD_SOURCE_LIBVIRT)
    return;
  g_hash_table_remove(lv->meta_seen, name);
  g_message("vm %s: %s, no longer managed", name, why);
  hmmvd_vms_remove(lv->vms, name);
}

/* Every running domain (as the calls thread listed them) is added, or kept when its QEMU is
 * the one already tracked; libvirt VMs that are no longer running are removed. */
static void
discover_all(HmmvdLibvirt *lv, GPtrArray *domains)
{
  g_autoptr(GHashTable) running = g_hash_table_new(g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
  GPtrArray *list;

  for (guint i = 0; i < domains->len; i++) {
    const HmmvdDomainFacts *facts = g_ptr_array_index(domains, i);

    g_hash_table_add(running, facts->name);
    add_domain(lv, facts);
  }
  list = hmmvd_vms_list(lv->vms);
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    if (info->source == HMMVD_SOURCE_LIBVIRT && !g_hash_table_contains(running, info->name))
      g_ptr_array_add(gone, g_strdup(info->name));
  }
  for (guint i = 0; i < gone->len; i++)
    hmmvd_libvirt_remove_domain(lv, g_ptr_array_index(gone, i),
                                "stopped while libvirt was away");
}

/* What the calls thread learnt of one domain (ask), applied. */
static void
ask_done(HmmvdLibvirt *lv, LvCall *call)
{
  const HmmvdDomainFacts *facts = call->facts;
  HmmvdVmInfo *info;

  asked(lv, call->name);
  if (facts == NULL) {
    /* A transient domain that stopped is gone from libvirt by now; the stop event (or
     * discovery) removes it. A retry of one libvirt does not know: it stopped. */
    g_debug("libvirt: domain %s: %s", call->name, call->error->message);
    if (call->ask == LV_ASK_RETRY && (info = hmmvd_vms_lookup(lv->vms, call->name)) != NULL &&
        g_error_matches(call->error, HMMV_ERROR, HMMV_ERROR_GONE))
      hmmvd_libvirt_remove_domain(lv, call->name, info->frozen ? "stopped while frozen"
                                                               : "stopped while dropped");
    return;
  }
  switch (call->ask) {
  case LV_ASK_STARTED:
  case LV_ASK_RESTART:
    if (facts->active)
      add_domain(lv, facts);
    break;
  case LV_ASK_METADATA:
    refresh_quota(lv, facts);
    break;
  case LV_ASK_RETRY:
    if ((info = hmmvd_vms_lookup(lv->vms, facts->name)) == NULL ||
        info->source != HMMVD_SOURCE_LIBVIRT)
      break;
    if (!facts->active) {
      hmmvd_libvirt_remove_domain(lv, facts->name, info->frozen ? "stopped while frozen"
                                                                : "stopped while dropped");
    } else if (info->frozen && info->in_core) {
      /* retry_dropped asked once the exchange it missed was answered; one under way now
       * within its deadline is a new one (the interval's hmmv-sync goes to frozen domains
       * too, each interval): waiting for none at all, as before, missed the thaw whenever
       * the answer came back while the sync was out, which the interval and retry timers
       * (both reconnect-ms = interval-ms = 500 ms in the tests) made happen again and
       * again: thawed 1-42 s after the QEMU answered (libvirt-qemu-hung). A new exchange
       * that turns overdue freezes it again. */
      if (!hmmvd_libvirt_qmp_is_overdue(lv->qmp, facts->uuid))
        (void)hmmvd_vms_thaw(lv->vms, facts->name);
    } else if (info->dropped && !info->in_core &&
               !g_hash_table_contains(lv->starting, facts->name)) {
      g_message("vm %s: trying again", facts->name);
      add_domain(lv, facts);
    }
    break;
  }
}

/* ------------------------------------------------------------------------------------------
 * Connection: made, given up and closed on the calls thread; the main thread knows it by its
 * generation (lv->gen, 0 while there is none).
 */

/* Main thread: the connection is given up; its calls still queued, their answers and its
 * events are dropped, and the calls thread closes it when it is free. */
void
hmmvd_libvirt_disconnect(HmmvdLibvirt *lv)
{
  if (g_atomic_int_get(&lv->gen) == 0)
    return;
  g_atomic_int_set(&lv->gen, 0);
  lv->connected = FALSE;
  lv->connecting = NULL;
  g_hash_table_remove_all(lv->asking);
  hmmvd_libvirt_call_push(lv, hmmvd_libvirt_call_new(lv, 0, hmmvd_libvirt_run_disconnect,
                                                     NULL));
}

static void
connect_done(HmmvdLibvirt *lv, LvCall *call)
{
  if (lv->connecting == call)
    lv->connecting = NULL;
  if (!call->connected) {
    if (!lv->said_unreachable)
      g_warning("libvirt: %s; retrying every %u ms", call->error->message,
                lv->config->reconnect_ms);
    else
      g_debug("libvirt: still no connection: %s", call->error->message);
    lv->said_unreachable = TRUE;
    g_atomic_int_set(&lv->gen, 0);
    g_hash_table_remove_all(lv->asking);  /* asks queued for it are dropped, never answered */
    return;
  }
  lv->connected = TRUE;
  lv->said_unreachable = FALSE;
  g_message("libvirt: connected to %s", lv->config->libvirt_uri);
  if (lv->retry_source != 0)
    g_source_remove(lv->retry_source);
  lv->retry_source = 0;
  if (call->list == NULL)
    g_warning("libvirt: %s", call->error->message);
  else
    discover_all(lv, call->list);
  hmmvd_libvirt_writes_push(lv);        /* set-quotas that waited for libvirt */
}

static void
start_connect(HmmvdLibvirt *lv)
{
  LvCall *call;

  if (lv->connecting != NULL || lv->connected || lv->closing)
    return;                               /* one connection (and discovery) at a time */
  if (++lv->next_gen == 0)
    lv->next_gen = 1;
  g_atomic_int_set(&lv->gen, (gint)lv->next_gen);
  call = hmmvd_libvirt_call_new(lv, lv->next_gen, hmmvd_libvirt_run_connect, connect_done);
  call->uri = g_strdup(lv->config->libvirt_uri);
  lv->connecting = call;
  hmmvd_libvirt_call_push(lv, call);
}

static gboolean
retry_connect(gpointer data)
{
  HmmvdLibvirt *lv = data;

  if (lv->connected) {
    lv->retry_source = 0;
    return G_SOURCE_REMOVE;
  }
  start_connect(lv);
  return G_SOURCE_CONTINUE;
}

void
hmmvd_libvirt_schedule_reconnect(HmmvdLibvirt *lv)
{
  if (lv->retry_source == 0)
    lv->retry_source = g_timeout_add(MAX(lv->config->reconnect_ms, 100), retry_connect, lv);
}

/* A call (or a step of one) past LIBVIRT_CALL_DEADLINE_MS: its connection is given up (once
 * per call) and made again when the calls thread is free. */
static void
check_calls(HmmvdLibvirt *lv)
{
  guint serial, deadline_ms;
  gint64 busy_for = hmmvd_libvirt_calls_busy_for(lv, &serial, &deadline_ms);

  if (deadline_ms == 0)
    deadline_ms = lv->call_deadline_ms;
  if (busy_for < 0 || serial == lv->abandoned_serial || busy_for < (gint64)deadline_ms * 1000)
    return;
  lv->abandoned_serial = serial;
  g_warning("libvirt: a call to %s has not returned in %u ms: the connection is given up "
            "(VMs stay as they are), made again once libvirt answers", lv->config->libvirt_uri,
            deadline_ms);
  hmmvd_libvirt_disconnect(lv);
  hmmvd_libvirt_schedule_reconnect(lv);
}

/* Domains dropped because their start-up missed a QMP deadline (or whose layout changed) are
 * tried again once nothing is left under way with them; a frozen domain (its QEMU missed a
 * deadline while managed: vms-interval.c) is thawed once its QEMU answered the exchange it
 * missed, or removed if it stopped meanwhile. libvirtd is asked on the calls thread, at most
 * once at a time for each domain. */
static gboolean
retry_dropped(gpointer data)
{
  HmmvdLibvirt *lv = data;
  GPtrArray *list;

  check_calls(lv);
  if (!lv->connected)
    return G_SOURCE_CONTINUE;
  list = hmmvd_vms_list(lv->vms);
  for (guint i = 0; i < list->len; i++) {
    const HmmvdVmInfo *info = g_ptr_array_index(list, i);

    if (info->source == HMMVD_SOURCE_LIBVIRT && info->uuid != NULL &&
        ((info->frozen && info->in_core) ||
         (info->dropped && !info->in_core && !g_hash_table_contains(lv->starting, info->name))) &&
        !g_hash_table_contains(lv->asking, info->name) &&
        !hmmvd_libvirt_qmp_is_busy(lv->qmp, info->uuid))
      hmmvd_libvirt_ask(lv, LV_ASK_RETRY, info->name, NULL);
  }
  /* those that waited for their QEMU are pushed when a sync round is over (sync_done); this
   * is for domains that get no hmmv-sync (starting, dropped), and the backoff's clock */
  hmmvd_libvirt_writes_tick(lv);
  return G_SOURCE_CONTINUE;
}

/* vms: a domain's RAM layout changed; its tracking restarts off the main thread. */
static void
restart_domain(const char *name, gpointer user_data)
{
  /* not connected: retry_dropped tries it again */
  hmmvd_libvirt_ask(user_data, LV_ASK_RESTART, name, NULL);
}

/* The interval's hmmv-sync, sent ahead (see libvirt-qmp.h). */
static gboolean
sync_done(gpointer data)
{
  HmmvdLibvirt *lv = data;
  GSourceFunc done = lv->sync_done;

  lv->sync_done = NULL;
  if (lv->closing)
    return G_SOURCE_REMOVE;
  if (done != NULL)
    done(lv->sync_data);
  /* the domains that answered have no exchange under way now, and the next hmmv-sync is an
   * interval away: set-quotas that waited for their QEMU go out in that gap
   * (libvirt-writes.c) */
  hmmvd_libvirt_writes_push(lv);
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

void
hmmvd_libvirt_set_call_deadline(HmmvdLibvirt *lv, guint ms)
{
  lv->call_deadline_ms = MAX(ms, 1);
}

gboolean
hmmvd_libvirt_is_connected(const HmmvdLibvirt *lv)
{
  return lv->connected;
}

HmmvdLibvirt *
hmmvd_libvirt_new(HmmvdVms *vms, const HmmvdConfig *config, const HmmvTopology *topo,
                  GError **error)
{
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
  g_mutex_init(&lv->lock);
  lv->pending = g_ptr_array_new();
  lv->qmp = hmmvd_libvirt_qmp_new(LIBVIRT_QMP_TIMEOUT_MS, config->qmp_connections);
  lv->starting = g_hash_table_new(g_str_hash, g_str_equal);
  lv->asking = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  hmmvd_libvirt_writes_init(lv);
  lv->memory = hmmvd_metadata_memory_new();
  lv->call_deadline_ms = LIBVIRT_CALL_DEADLINE_MS;
  lv->job_backoff_ms = LIBVIRT_JOB_BACKOFF_MS;
  lv->job_backoff_max_ms = LIBVIRT_JOB_BACKOFF_MAX_MS;
  hmmvd_libvirt_calls_start(lv);
  hmmvd_vms_set_quota_writer(vms, hmmvd_libvirt_write_quota, lv);
  hmmvd_vms_set_restart_func(vms, HMMVD_SOURCE_LIBVIRT, restart_domain, lv);
  lv->check_source = g_timeout_add(MAX(config->reconnect_ms, 100), retry_dropped, lv);
  /* connected (and every running domain discovered) on the calls thread; until then, and
   * whenever it fails, tried again every reconnect_ms */
  start_connect(lv);
  hmmvd_libvirt_schedule_reconnect(lv);
  return lv;
}

/* The last reference: what the calls thread may still have touched. */
static void
lv_clear(gpointer data)
{
  HmmvdLibvirt *lv = data;

  g_ptr_array_unref(lv->pending);
  hmmvd_libvirt_qmp_unref(lv->qmp);
  g_cond_clear(&lv->drained);
  g_mutex_clear(&lv->lock);
  g_main_context_unref(lv->context);
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
  hmmvd_libvirt_writes_stop(lv);
  /* the connection closed on the calls thread; a call libvirtd does not answer is left to
   * finish on its own (it holds its references) */
  if (!hmmvd_libvirt_calls_stop(lv, LIBVIRT_STOP_WAIT_MS))
    g_warning("libvirt: a call to %s has not returned: not waiting for it",
              lv->config->libvirt_uri);
  /* Events and answers still queued would never run now: drop them (and their references). */
  for (;;) {
    GSource *source = NULL;

    g_mutex_lock(&lv->lock);
    if (lv->pending->len > 0)
      source = g_ptr_array_steal_index_fast(lv->pending, lv->pending->len - 1);
    g_mutex_unlock(&lv->lock);
    if (source == NULL)
      break;
    g_source_destroy(source);     /* runs its free function, which no longer finds it listed */
    g_source_unref(source);
  }
  g_hash_table_unref(lv->starting);
  g_hash_table_unref(lv->asking);
  hmmvd_metadata_memory_free(lv->memory);
  hmmvd_libvirt_qmp_sync_end(lv->qmp);
  lv_unref(lv);
}
