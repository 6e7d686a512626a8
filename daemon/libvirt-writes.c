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
 */
#include "libvirt-private.h"

#include <libvirt/virterror.h>

typedef struct {
  HmmvQuota quota;
  char **exclude;
  guint serial;
  guint pushed_gen;             /* the connection it was handed to (0: not handed yet) */
  gboolean said_busy;           /* "waits for its QEMU" logged */
} PendingWrite;

void
hmmvd_libvirt_pending_write_free(gpointer data)
{
  PendingWrite *w = data;

  g_strfreev(w->exclude);
  g_free(w);
}

static void
write_done(HmmvdLibvirt *lv, LvCall *call)
{
  PendingWrite *w = g_hash_table_lookup(lv->writes, call->name);
  gboolean latest = w != NULL && w->serial == call->serial;
  HmmvdVmInfo *info;

  if (call->error == NULL) {
    g_message("vm %s: quota written to libvirt's metadata", call->name);
  } else if (call->kept) {
    /* the connection's failure: made again on the next connection */
    g_warning("vm %s: the quota from set-quota was not written yet: %s; written once "
              "libvirt is connected again", call->name, call->error->message);
    if (latest)
      w->pushed_gen = 0;
    return;
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
}

/* A domain whose QEMU owes a QMP answer: libvirtd would hold a write to it on the domain's
 * job (see above). */
static gboolean
domain_busy(HmmvdLibvirt *lv, const char *name)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  return info != NULL && info->source == HMMVD_SOURCE_LIBVIRT &&
         (info->frozen || (info->uuid != NULL && hmmvd_libvirt_qmp_is_busy(lv->qmp, info->uuid)));
}

static void
push_write(HmmvdLibvirt *lv, const char *name, PendingWrite *w)
{
  guint gen = (guint)g_atomic_int_get(&lv->gen);
  LvCall *call;

  if (!lv->connected || w->pushed_gen == gen)
    return;
  if (domain_busy(lv, name)) {
    if (!w->said_busy)
      g_message("vm %s: quota written to libvirt once its QEMU answers QMP again", name);
    w->said_busy = TRUE;
    return;
  }
  w->pushed_gen = gen;
  call = hmmvd_libvirt_call_new(lv, gen, hmmvd_libvirt_run_write, write_done);
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

  w->quota = *quota;
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
  g_hash_table_remove_all(lv->writes);
}

/* On the calls thread. A failure of the connection itself (none, or not alive any more) keeps
 * the write for the next connection; anything else is libvirtd's answer. */
void
hmmvd_libvirt_run_write(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  if (!hmmvd_libvirt_write_metadata(conn, call->name, &call->quota,
                                    (const char *const *)call->exclude, &call->error))
    call->kept = conn == NULL || virConnectIsAlive(conn) != 1;
}
