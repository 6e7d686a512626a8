/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source of VMs (see libvirt.h).
 */
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

static const char *
last_error_message(void)
{
  const char *message = virGetLastErrorMessage();

  return message != NULL ? message : "unknown libvirt error";
}

/* libvirt prints every error on stderr by default; hmmvd reports them itself, once. */
static void
quiet_error_handler(void *user_data, virErrorPtr error)
{
}

static void
set_libvirt_error(GError **error, const char *what)
{
  int code = virGetLastErrorCode();
  int hmmv_code = HMMV_ERROR_IO;

  if (code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_OPERATION_INVALID)
    hmmv_code = HMMV_ERROR_GONE;          /* no such domain, or it is not running */
  else if (code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_OPERATION_UNSUPPORTED ||
           code == VIR_ERR_ARGUMENT_UNSUPPORTED)
    hmmv_code = HMMV_ERROR_NOT_SUPPORTED;
  else if (code == VIR_ERR_OPERATION_DENIED || code == VIR_ERR_AUTH_FAILED)
    hmmv_code = HMMV_ERROR_PERMISSION;
  g_set_error(error, HMMV_ERROR, hmmv_code, "%s: %s", what, last_error_message());
}

static void
replace_str(char **slot, const char *value)
{
  char *old = *slot;

  *slot = g_strdup(value);
  g_free(old);
}

/* ------------------------------------------------------------------------------------------
 * The QMP transport: virDomainQemuMonitorCommand on the current connection. The domain is
 * looked up by UUID at each call, so transports survive a reconnect; libvirt's run id tells
 * a restarted domain (another QEMU) from the one the transport was made for.
 */

typedef struct {
  HmmvdLibvirt *lv;             /* a reference */
  char *uuid;
  char *name;
  int id;
} LibvirtQmp;

static virDomainPtr
libvirt_qmp_lookup(LibvirtQmp *lq, GError **error)
{
  virDomainPtr dom;

  if (lq->lv->conn == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO,
                "domain %s: libvirt is not connected (reconnecting)", lq->name);
    return NULL;
  }
  dom = virDomainLookupByUUIDString(lq->lv->conn, lq->uuid);
  if (dom == NULL) {
    set_libvirt_error(error, lq->name);
    return NULL;
  }
  if ((int)virDomainGetID(dom) != lq->id) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE,
                "domain %s: stopped or restarted (run id %d, was %d)", lq->name,
                (int)virDomainGetID(dom), lq->id);
    virDomainFree(dom);
    return NULL;
  }
  return dom;
}

static char *
take_libvirt_string(char *text)
{
  char *copy = g_strdup(text);

  free(text);
  return copy;
}

static char *
libvirt_qmp_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  LibvirtQmp *lq = qmp->priv;
  virDomainPtr dom = libvirt_qmp_lookup(lq, error);
  char *result = NULL;
  int ret;

  if (dom == NULL)
    return NULL;
  ret = virDomainQemuMonitorCommand(dom, command_json, &result,
                                    VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT);
  if (ret < 0)
    set_libvirt_error(error, lq->name);
  virDomainFree(dom);
  return ret < 0 ? NULL : take_libvirt_string(result);
}

static gboolean
libvirt_qmp_send_fd(HmmvQmp *qmp, int fd, const char *fdname, GError **error)
{
  LibvirtQmp *lq = qmp->priv;
  g_autoptr(JsonObject) args = json_object_new();
  g_autofree char *command = NULL;
  g_autofree char *reply = NULL;
  g_autoptr(JsonNode) ret = NULL;
  virDomainPtr dom = libvirt_qmp_lookup(lq, error);
  char *result = NULL;
  int fds[1] = { fd };
  int rc;

  if (dom == NULL)
    return FALSE;
  json_object_set_string_member(args, "fdname", fdname);
  command = hmmv_qmp_build_command("getfd", args);
  rc = virDomainQemuMonitorCommandWithFiles(dom, command, 1, fds, NULL, NULL, &result,
                                            VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT);
  if (rc < 0)
    set_libvirt_error(error, lq->name);
  virDomainFree(dom);
  if (rc < 0)
    return FALSE;
  reply = take_libvirt_string(result);
  ret = hmmv_qmp_parse_reply(reply, error);
  if (ret == NULL) {
    g_prefix_error(error, "getfd: ");
    return FALSE;
  }
  return TRUE;
}

static void
libvirt_qmp_destroy(HmmvQmp *qmp)
{
  LibvirtQmp *lq = qmp->priv;

  if (lq == NULL)
    return;
  lv_unref(lq->lv);
  g_free(lq->uuid);
  g_free(lq->name);
  g_free(lq);
}

static const struct hmmv_qmp_ops libvirt_qmp_ops = {
  .name = "libvirt",
  .transact = libvirt_qmp_transact,
  .send_fd = libvirt_qmp_send_fd,
  .destroy = libvirt_qmp_destroy,
};

static HmmvQmp *
libvirt_qmp_new(HmmvdLibvirt *lv, virDomainPtr dom, GError **error)
{
  LibvirtQmp *lq = g_new0(LibvirtQmp, 1);
  char uuid[VIR_UUID_STRING_BUFLEN];

  virDomainGetUUIDString(dom, uuid);
  lq->lv = lv_ref(lv);
  lq->uuid = g_strdup(uuid);
  lq->name = g_strdup(virDomainGetName(dom));
  lq->id = (int)virDomainGetID(dom);
  return hmmv_qmp_new(&libvirt_qmp_ops, lq, error);
}

/* ------------------------------------------------------------------------------------------
 * Quotas: libvirt metadata in hmmv's namespace.
 */

static void
record_quota_error(HmmvdLibvirt *lv, const char *name, const GError *error)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  g_warning("vm %s: hmmv metadata rejected, the last good quota stays: %s", name,
            error->message);
  if (info != NULL)
    replace_str(&info->quota_error, error->message);
}

/* Read the live metadata and apply it; takes effect at the next interval. */
static void
refresh_quota(HmmvdLibvirt *lv, virDomainPtr dom)
{
  const char *name = virDomainGetName(dom);
  const HmmvdConfig *config = lv->config;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *xml = NULL;
  HmmvQuota quota = config->default_quota;
  char *text;

  if (hmmvd_vms_lookup(lv->vms, name) == NULL)
    return;
  text = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                              VIR_DOMAIN_AFFECT_LIVE);
  if (text == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN_METADATA) {
    g_warning("vm %s: cannot read the hmmv metadata: %s", name, last_error_message());
    return;
  }
  xml = text != NULL ? take_libvirt_string(text) : NULL;
  if (xml != NULL && !hmmvd_quota_parse(xml, &config->default_quota, &quota, &local_error)) {
    record_quota_error(lv, name, local_error);
    return;
  }
  if (!hmmvd_vms_set_quota(lv->vms, name, &quota, &local_error))
    return;                               /* logged and recorded by vms */
  g_debug("vm %s: quota %s", name, xml != NULL ? xml : "(defaults: no hmmv metadata)");
}

static gboolean
write_quota(const char *name, const HmmvQuota *quota, gpointer user_data, GError **error)
{
  HmmvdLibvirt *lv = user_data;
  g_autofree char *xml = hmmvd_quota_format(quota);
  unsigned int flags = VIR_DOMAIN_AFFECT_LIVE;
  virDomainPtr dom;
  int rc;

  if (lv->conn == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "libvirt is not connected (reconnecting)");
    return FALSE;
  }
  dom = virDomainLookupByName(lv->conn, name);
  if (dom == NULL) {
    set_libvirt_error(error, name);
    return FALSE;
  }
  /* CONFIG too when the domain has a persistent definition, so the quota survives a restart
   * of the domain, as `virsh metadata --live --config` does. */
  if (virDomainIsPersistent(dom) == 1)
    flags |= VIR_DOMAIN_AFFECT_CONFIG;
  rc = virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, HMMVD_METADATA_KEY,
                            HMMVD_METADATA_URI, flags);
  if (rc < 0)
    set_libvirt_error(error, name);
  virDomainFree(dom);
  return rc == 0;
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

static void
add_domain(HmmvdLibvirt *lv, virDomainPtr dom)
{
  const char *name = virDomainGetName(dom);
  char uuid[VIR_UUID_STRING_BUFLEN];
  g_autoptr(GError) local_error = NULL;
  g_autofree char *conflict = NULL;
  g_autofree char *reason = NULL;
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);
  HmmvQmp *qmp;
  char *xml;
  int pid = -1;

  virDomainGetUUIDString(dom, uuid);
  if (info != NULL && info->source != HMMVD_SOURCE_LIBVIRT) {
    g_warning("domain %s: a standalone VM has the same name; the domain is ignored", name);
    return;
  }
  if (!hmmvd_libvirt_read_pid(lv->config->libvirt_run_dir, name, &pid, &local_error)) {
    reason = g_strdup_printf("cannot find QEMU's pid: %s", local_error->message);
  } else if (info != NULL && is_tracked_incarnation(info, uuid, pid)) {
    refresh_quota(lv, dom);               /* the same QEMU: keep it, events may be missed */
    return;
  } else if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL) {
    reason = g_strdup_printf("cannot read the domain XML: %s", last_error_message());
  } else {
    conflict = hmmvd_libvirt_numatune_conflict(xml, lv->topo);
    free(xml);
  }
  if (info != NULL)
    hmmvd_vms_remove(lv->vms, name);      /* another QEMU, or an entry to re-evaluate */
  if (reason != NULL || conflict != NULL) {
    const char *why = reason != NULL ? reason : conflict;

    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, why);
    return;
  }
  /* On failure vms lists the VM with the reason ("QEMU lacks the hmmv patches: ...") and
   * logs it; the quota is still read so that status shows it. */
  qmp = libvirt_qmp_new(lv, dom, &local_error);
  if (qmp == NULL) {
    hmmvd_vms_add_unmanaged(lv->vms, name, HMMVD_SOURCE_LIBVIRT, local_error->message);
    return;
  }
  /* libvirt's view of the domain's memory (KiB; DIMMs included) bounds what QEMU claims. */
  if (hmmvd_vms_add(lv->vms, name, HMMVD_SOURCE_LIBVIRT, pid, uuid, qmp,
                    (guint64)virDomainGetMaxMemory(dom) << 10, NULL))
    g_message("vm %s: libvirt domain %s, QEMU pid %d", name, uuid, pid);
  refresh_quota(lv, dom);
}

static void
remove_domain(HmmvdLibvirt *lv, const char *name, const char *why)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

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
  g_free(fw);
}

static void schedule_reconnect(HmmvdLibvirt *lv);
static void disconnect(HmmvdLibvirt *lv);

static void
handle_lifecycle(HmmvdLibvirt *lv, virDomainPtr dom, int event, int detail)
{
  switch (event) {
  case VIR_DOMAIN_EVENT_STARTED:
    add_domain(lv, dom);
    break;
  case VIR_DOMAIN_EVENT_STOPPED:
    remove_domain(lv, virDomainGetName(dom),
                  detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED ? "migrated away"
                  : detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED ? "crashed"
                                                               : "stopped");
    break;
  case VIR_DOMAIN_EVENT_CRASHED:
    remove_domain(lv, virDomainGetName(dom), "crashed");
    break;
  case VIR_DOMAIN_EVENT_SHUTDOWN:
    if (detail == VIR_DOMAIN_EVENT_SHUTDOWN_FINISHED)
      remove_domain(lv, virDomainGetName(dom), "shut down");
    break;
  default:
    break;
  }
}

static gboolean
forward_dispatch(gpointer data)
{
  Forward *fw = data;
  HmmvdLibvirt *lv = fw->lv;
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
  dom = virDomainLookupByUUIDString(lv->conn, fw->uuid);
  if (dom == NULL) {
    g_debug("libvirt: event for domain %s that is gone: %s", fw->uuid, last_error_message());
    return G_SOURCE_REMOVE;
  }
  if (fw->kind == FORWARD_LIFECYCLE)
    handle_lifecycle(lv, dom, fw->event, fw->detail);
  else
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
  if (dom != NULL)
    virDomainGetUUIDString(dom, fw->uuid);
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
  if (lv->lifecycle_id < 0 || lv->metadata_id < 0 ||
      virConnectRegisterCloseCallback(conn, on_close, lv_ref(lv), lv_unref) < 0) {
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
  hmmvd_vms_set_quota_writer(vms, write_quota, lv);
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
  if (lv->retry_source != 0)
    g_source_remove(lv->retry_source);
  lv->retry_source = 0;
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
  g_mutex_clear(&lv->lock);
  g_main_context_unref(lv->context);
  lv_unref(lv);
}
