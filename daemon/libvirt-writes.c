/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source: quotas from hmmvctl set-quota, written to the domain's libvirt
 * metadata on the calls thread (see libvirt-private.h); the metadata event applies them.
 *
 * hmmvctl's reply never waits for libvirtd. A write waits in lv->writes (the latest for each
 * domain) while it cannot be made now, and is made then:
 * - not connected (or the connection failed under it): once connected again;
 * - the domain's QEMU has not answered a QMP exchange (frozen, or a late answer owed): once
 *   it has. libvirt's SetMetadata takes a job on the domain, and a QMP exchange to a hung QEMU
 *   holds the domain's job: libvirtd would make the write wait its 30 s job timeout and then
 *   refuse it, and every later call of hmmvd's one connection would wait behind it.
 * A write libvirtd refuses while connected (anything but the connection failing) is not
 * kept: a warning, and the VM's quota-error says the quota from set-quota is not applied.
 * A write made late never overwrites a newer element: it carries the element hmmvd had seen
 * when set-quota came (base), and the calls thread reads libvirt's just before writing; when
 * it differs (virsh metadata since), the write is dropped with a warning. libvirt has no
 * compare-and-set: a virsh write between that read and the write is still overwritten.
 * One write at a time for each domain: the next waits for the one under way, whose element
 * becomes its base.
 */
#include "libvirt-private.h"

#include <libvirt/virterror.h>

typedef struct {
  HmmvQuota quota;
  char **exclude;
  guint serial;
  char *base;                   /* the element seen when set-quota came (NULL: none) */
  gboolean base_known;          /* FALSE: never read; written without the check */
  guint flight_gen;             /* a write of this domain handed to that connection and not
                                 * done, or failed with it (0: none) */
  gboolean said_busy;           /* "waits for its QEMU" logged */
} PendingWrite;

static void
pending_write_free(gpointer data)
{
  PendingWrite *w = data;

  g_strfreev(w->exclude);
  g_free(w->base);
  g_free(w);
}

void
hmmvd_libvirt_writes_init(HmmvdLibvirt *lv)
{
  lv->writes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, pending_write_free);
  lv->meta_seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

void
hmmvd_libvirt_writes_seen(HmmvdLibvirt *lv, const char *name, const char *meta)
{
  g_hash_table_replace(lv->meta_seen, g_strdup(name), g_strdup(meta != NULL ? meta : ""));
}

static void push_write(HmmvdLibvirt *lv, const char *name, PendingWrite *w);

static void
write_done(HmmvdLibvirt *lv, LvCall *call)
{
  PendingWrite *w = g_hash_table_lookup(lv->writes, call->name);
  gboolean latest = w != NULL && w->serial == call->serial;
  HmmvdVmInfo *info;

  if (call->kept) {
    /* the connection's failure: made again on the next connection (flight_gen stays) */
    g_warning("vm %s: the quota from set-quota was not written yet: %s; written once "
              "libvirt is connected again", call->name, call->error->message);
    return;
  }
  if (w != NULL)
    w->flight_gen = 0;
  if (call->error == NULL) {
    g_message("vm %s: quota written to libvirt's metadata", call->name);
    hmmvd_libvirt_writes_seen(lv, call->name, call->written);
    if (w != NULL && !latest) {           /* a newer one waited for this one */
      g_free(w->base);
      w->base = g_strdup(call->written);
      w->base_known = TRUE;
    }
  } else if (call->stale) {
    g_warning("vm %s: the quota from set-quota was not written: %s", call->name,
              call->error->message);
  } else if (g_error_matches(call->error, HMMV_ERROR, HMMV_ERROR_GONE)) {
    g_warning("vm %s: the quota from set-quota was not written: %s", call->name,
              call->error->message);
  } else {
    g_warning("vm %s: the quota from set-quota was NOT applied: libvirt refused the write: "
              "%s", call->name, call->error->message);
    if (latest && (info = hmmvd_vms_lookup(lv->vms, call->name)) != NULL) {
      g_free(info->quota_error);
      info->quota_error = g_strdup_printf("the quota from set-quota was not written to "
                                          "libvirt: %s", call->error->message);
    }
  }
  if (latest)
    g_hash_table_remove(lv->writes, call->name);
  else if (w != NULL)
    push_write(lv, call->name, w);
}

/* A domain whose QEMU owes a QMP answer: libvirtd would hold a write to it on the domain's
 * job (see above). An exchange under way within its deadline (each interval's hmmv-sync) holds
 * the job for milliseconds: not a reason to wait (the retries run on a timer of the interval's
 * period, so waiting for none at all could miss again and again). */
static gboolean
domain_busy(HmmvdLibvirt *lv, const char *name)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  return info != NULL && info->source == HMMVD_SOURCE_LIBVIRT &&
         (info->frozen ||
          (info->uuid != NULL && hmmvd_libvirt_qmp_is_overdue(lv->qmp, info->uuid)));
}

static void
push_write(HmmvdLibvirt *lv, const char *name, PendingWrite *w)
{
  guint gen = (guint)g_atomic_int_get(&lv->gen);
  LvCall *call;

  if (!lv->connected || w->flight_gen == gen)
    return;
  if (domain_busy(lv, name)) {
    if (!w->said_busy)
      g_message("vm %s: quota written to libvirt once its QEMU answers QMP again", name);
    w->said_busy = TRUE;
    return;
  }
  w->flight_gen = gen;
  call = hmmvd_libvirt_call_new(lv, gen, hmmvd_libvirt_run_write, write_done);
  call->base = g_strdup(w->base);
  call->check_base = w->base_known;
  /* libvirtd may make SetMetadata wait for the domain's job (30 s): more than a call's
   * deadline, so that a slow domain never costs the connection */
  call->deadline_ms = lv->call_deadline_ms * LIBVIRT_JOB_CALL_FACTOR;
  call->name = g_strdup(name);
  call->quota = w->quota;
  call->exclude = g_strdupv(w->exclude);
  call->serial = w->serial;
  hmmvd_libvirt_call_push(lv, call);
}

void
hmmvd_libvirt_writes_push(HmmvdLibvirt *lv)
{
  GHashTableIter iter;
  gpointer name, w;

  g_hash_table_iter_init(&iter, lv->writes);
  while (g_hash_table_iter_next(&iter, &name, &w))
    push_write(lv, name, w);
}

gboolean
hmmvd_libvirt_write_quota(const char *name, const HmmvQuota *quota, gpointer user_data,
                          GError **error)
{
  HmmvdLibvirt *lv = user_data;
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);
  PendingWrite *w = g_new0(PendingWrite, 1);
  PendingWrite *old = g_hash_table_lookup(lv->writes, name);
  const char *seen = g_hash_table_lookup(lv->meta_seen, name);

  w->quota = *quota;
  w->base_known = seen != NULL;
  w->base = seen != NULL && *seen != '\0' ? g_strdup(seen) : NULL;
  w->flight_gen = old != NULL ? old->flight_gen : 0;   /* one under way: this one waits */
  w->exclude = info != NULL && info->exclude != NULL ? g_strdupv(info->exclude)
                                                     : g_new0(char *, 1);
  w->serial = ++lv->write_serial;
  g_hash_table_replace(lv->writes, g_strdup(name), w);
  if (lv->connected)
    push_write(lv, name, w);
  else
    g_message("vm %s: quota written to libvirt once it is connected again", name);
  return TRUE;
}

/* hmmvd stops: what was not written is lost, said by name. */
void
hmmvd_libvirt_writes_stop(HmmvdLibvirt *lv)
{
  g_autoptr(GString) names = g_string_new(NULL);
  GHashTableIter iter;
  gpointer name;

  g_hash_table_iter_init(&iter, lv->writes);
  while (g_hash_table_iter_next(&iter, &name, NULL))
    g_string_append_printf(names, "%s%s", names->len > 0 ? ", " : "", (const char *)name);
  if (names->len > 0)
    g_warning("libvirt: hmmvd stops: the quota from set-quota of %s was not written to "
              "libvirt (not applied)", names->str);
  g_hash_table_unref(lv->writes);
  g_hash_table_unref(lv->meta_seen);
  lv->writes = lv->meta_seen = NULL;
}

/* On the calls thread. A failure of the connection itself (none, or not alive any more) keeps
 * the write for the next connection; anything else is libvirtd's answer. */
void
hmmvd_libvirt_run_write(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  virDomainPtr dom = conn != NULL ? virDomainLookupByName(conn, call->name) : NULL;
  g_autofree char *now = NULL;

  if (dom != NULL && call->check_base && hmmvd_libvirt_read_metadata_text(dom, &now, NULL) &&
      g_strcmp0(now, call->base) != 0) {
    call->stale = TRUE;
    g_set_error(&call->error, HMMV_ERROR, HMMV_ERROR_BUSY, "libvirt's hmmv metadata changed "
                "since set-quota (virsh metadata?): not overwritten");
    virDomainFree(dom);
    return;
  }
  if (!hmmvd_libvirt_write_metadata(conn, call->name, &call->quota,
                                    (const char *const *)call->exclude, &call->error))
    call->kept = conn == NULL || virConnectIsAlive(conn) != 1;
  else if (dom != NULL)
    (void)hmmvd_libvirt_read_metadata_text(dom, &call->written, NULL);
  if (dom != NULL)
    virDomainFree(dom);
}
