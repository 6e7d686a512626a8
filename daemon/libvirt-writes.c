/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source: quotas from hmmvctl set-quota, written to the domain's libvirt
 * metadata on the calls thread (see libvirt-private.h); the metadata event applies them.
 *
 * libvirt's SetMetadata takes a job on the domain, and so does every QMP exchange hmmvd makes
 * with it (qemu-monitor-command: each interval's hmmv-sync, a start-up's). A write that comes
 * while an exchange holds the job waits for it: milliseconds while QEMU answers, but a hung
 * QEMU holds the job until it answers, and libvirtd makes the write wait its 30 s job timeout
 * and then refuses it (VIR_ERR_OPERATION_TIMEOUT, "cannot acquire state change lock"), every
 * later call of hmmvd's one connection waiting behind it. In the first seconds of a hang
 * (hmmv-sync sent, not yet past its deadline) nothing tells a slow answer from none. So:
 *
 * hmmvctl's reply never waits for libvirtd. A write waits in lv->writes (the latest for each
 * domain) while it cannot be made now, and is made then:
 * - not connected (or the connection failed under it): once connected again;
 * - a QMP exchange of hmmvd's with the domain under way or queued (hmmvd_libvirt_qmp_is_busy,
 *   within its deadline or not): once none is. The pending writes are pushed when a sync round
 *   is over (libvirt.c sync_done), so they go out in the quiet gap after the domains' answers,
 *   an interval before the next hmmv-sync, not on a timer of the interval's period that would
 *   meet the next sync again and again (5977573); retry_dropped's timer and a new connection
 *   push them too (domains that get no hmmv-sync);
 *   A write that finds the exchange within its deadline is pushed again every
 *   LIBVIRT_WRITE_POLL_MS until it is answered, so that a slow QEMU (busy most of each
 *   interval) still gets it in its gaps; one whose exchange is overdue waits for the pushes
 *   above;
 * - the domain's job taken by a synchronous job (libvirt's control info, read on the calls
 *   thread just before writing, takes no job; it says OCCUPIED for a monitor command under
 *   way, JOB for a step of an async job under way, ERROR/INTERNAL for a job waiting outside
 *   the monitor): the write is not made, and is pushed again as above;
 * - libvirtd refused it because it could not take the domain's job in its 30 s
 *   (VIR_ERR_OPERATION_TIMEOUT): kept, and not tried again for LIBVIRT_JOB_BACKOFF_MS, doubled
 *   for each refusal in a row up to LIBVIRT_JOB_BACKOFF_MAX_MS (counted in retry_dropped's
 *   ticks), or sooner when the domain resumes (a lifecycle event); one log line per streak,
 *   and the VM's quota-pending says it waits and until when. This is what an async job
 *   (a dump, a save, a migration, a snapshot) gets: between its steps the control info reads
 *   OK (libvirt reports only synchronous jobs there), yet SetMetadata's job is not granted
 *   while it runs, for minutes or, for a post-copy migration left paused, without end. Each
 *   try holds hmmvd's one calls thread (every other domain's write, discovery, events) for
 *   libvirtd's 30 s; with the backoff at most one try in 2 ... 9 such periods, not back to
 *   back. The write is never given up: the quota-pending field says it is not applied yet.
 *   A QEMU that hangs, or an exchange that starts, in the milliseconds between the control
 *   info and SetMetadata costs the same 30 s once. libvirt has no way to ask for a job
 *   without waiting, nor a shorter wait per call, and its job info calls (GetJobInfo,
 *   GetJobStats) take a job and ask QEMU themselves: not a pre-check.
 * A write libvirtd refuses otherwise while connected (anything but the connection failing or
 * the job) is not kept: a warning, and the VM's quota-error says the quota from set-quota is
 * not applied.
 * A write made late never overwrites a newer element: it carries the element hmmvd had seen
 * when set-quota came (base), and the calls thread reads libvirt's just before writing; when
 * it differs (virsh metadata since), the write is dropped with a warning. libvirt has no
 * compare-and-set: a virsh write between that read and the write is still overwritten.
 * One write at a time for each domain: the next waits for the one under way, whose element
 * becomes its base, and takes over its backoff (the job is likely still taken).
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
  gboolean said_overdue;        /* "once its QEMU answers QMP again" logged */
  gboolean said_job;            /* "once the domain is free" logged */
  guint refusals;               /* refused for the domain's job in a row (its backoff) */
  guint retry_tick;             /* not pushed before lv->write_ticks reaches this */
} PendingWrite;

/* A write waiting for a QMP exchange within its deadline is pushed again this often. */
#define LIBVIRT_WRITE_POLL_MS 50

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

/* The VM's quota-pending: why its set-quota is not applied yet (NULL: none waits). */
static void G_GNUC_PRINTF(3, 4)
set_pending(HmmvdLibvirt *lv, const char *name, const char *format, ...)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);
  va_list args;

  if (info == NULL)
    return;
  g_free(info->quota_pending);
  info->quota_pending = NULL;
  if (format == NULL)
    return;
  va_start(args, format);
  info->quota_pending = g_strdup_vprintf(format, args);
  va_end(args);
}

/* libvirtd refused the write for the domain's job (it waited its 30 s): not tried again for
 * the backoff, doubled for each refusal in a row (see above). */
static void
job_refused(HmmvdLibvirt *lv, const char *name, PendingWrite *w, const char *why)
{
  guint tick_ms = MAX(lv->config->reconnect_ms, 100);
  guint64 wait_ms = MIN((guint64)lv->job_backoff_ms << MIN(w->refusals, 16),
                        (guint64)lv->job_backoff_max_ms);
  guint ticks = MAX((guint)((wait_ms + tick_ms - 1) / tick_ms), 1);
  double wait_s = ticks * (double)tick_ms / 1000;

  w->refusals++;
  w->retry_tick = lv->write_ticks + ticks;
  if (w->refusals == 1)
    g_message("vm %s: the quota from set-quota was not written yet: libvirt's job on the "
              "domain is taken (a dump, a save, a migration or a hung QEMU: %s): the write is "
              "tried again in %.1f s, then less and less often (at most every %.1f s) while "
              "it stays taken", name, why, wait_s, lv->job_backoff_max_ms / 1000.0);
  else
    g_debug("vm %s: set-quota's write refused for the domain's job %u times in a row: tried "
            "again in %.1f s", name, w->refusals, wait_s);
  set_pending(lv, name, "not written to libvirt: libvirt's job on the domain is taken (a dump, "
              "a save, a migration or a hung QEMU); refused %u time%s in a row, tried again "
              "in %.1f s", w->refusals, w->refusals == 1 ? "" : "s", wait_s);
}

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
  if (call->deferred || (call->error != NULL && call->lv_code == VIR_ERR_OPERATION_TIMEOUT)) {
    /* kept (or replaced by a newer one that waited for it, which takes over the backoff):
     * made again at a later push (see above) */
    if (!call->deferred && w != NULL) {
      job_refused(lv, call->name, w, call->error->message);
    } else if (call->deferred && latest && !w->said_job) {
      g_message("vm %s: quota written to libvirt once the domain is free: %s", call->name,
                call->error->message);
      w->said_job = TRUE;
      set_pending(lv, call->name, "not written to libvirt yet: %s", call->error->message);
    }
    if (w != NULL && !latest)
      push_write(lv, call->name, w);
    return;
  }
  if (call->error == NULL) {
    if (w != NULL && w->refusals > 0)
      g_message("vm %s: quota written to libvirt's metadata (after %u refusal%s for the "
                "domain's job)", call->name, w->refusals, w->refusals == 1 ? "" : "s");
    else
      g_message("vm %s: quota written to libvirt's metadata", call->name);
    hmmvd_libvirt_writes_seen(lv, call->name, call->written);
    if (w != NULL && !latest) {           /* a newer one waited for this one */
      g_free(w->base);
      w->base = g_strdup(call->written);
      w->base_known = TRUE;
      w->refusals = w->retry_tick = 0;    /* the job was free */
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
  if (latest) {
    g_hash_table_remove(lv->writes, call->name);
    set_pending(lv, call->name, NULL);
  } else if (w != NULL) {
    push_write(lv, call->name, w);
  }
}

/* A QMP exchange of hmmvd's with the domain under way or queued: it holds (or is about to
 * take) the domain's job, which a write would wait for, up to libvirtd's 30 s when the QEMU
 * does not answer (see above). Within its deadline or past it: in the first seconds a hung
 * QEMU looks like a slow one. */
static gboolean
domain_busy(HmmvdLibvirt *lv, const char *name, gboolean *overdue)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(lv->vms, name);

  *overdue = FALSE;
  if (info == NULL || info->source != HMMVD_SOURCE_LIBVIRT || info->uuid == NULL ||
      !hmmvd_libvirt_qmp_is_busy(lv->qmp, info->uuid))
    return FALSE;
  *overdue = hmmvd_libvirt_qmp_is_overdue(lv->qmp, info->uuid);
  return TRUE;
}

static gboolean
write_poll(gpointer data)
{
  HmmvdLibvirt *lv = data;

  lv->write_poll_source = 0;
  hmmvd_libvirt_writes_push(lv);
  return G_SOURCE_REMOVE;
}

static void
push_write(HmmvdLibvirt *lv, const char *name, PendingWrite *w)
{
  guint gen = (guint)g_atomic_int_get(&lv->gen);
  gboolean overdue;
  LvCall *call;

  if (!lv->connected || w->flight_gen == gen || lv->write_ticks < w->retry_tick)
    return;
  if (domain_busy(lv, name, &overdue)) {
    if (overdue && !w->said_overdue) {
      /* pushed again when a sync round is over (libvirt.c) */
      g_message("vm %s: quota written to libvirt once its QEMU answers QMP again", name);
      w->said_overdue = TRUE;
      set_pending(lv, name, "not written to libvirt yet: its QEMU has not answered a QMP "
                  "exchange; written once it does");
    } else if (!overdue) {
      /* a slow QEMU may be busy at every round's end and every retry tick: tried again as
       * soon as the exchange is answered */
      g_debug("vm %s: quota written to libvirt once the QMP exchange under way is answered",
              name);
      if (lv->write_poll_source == 0)
        lv->write_poll_source = g_timeout_add(LIBVIRT_WRITE_POLL_MS, write_poll, lv);
    }
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

void
hmmvd_libvirt_writes_tick(HmmvdLibvirt *lv)
{
  lv->write_ticks++;
  hmmvd_libvirt_writes_push(lv);
}

void
hmmvd_libvirt_writes_wake(HmmvdLibvirt *lv, const char *name)
{
  PendingWrite *w = g_hash_table_lookup(lv->writes, name);

  if (w != NULL && w->retry_tick > lv->write_ticks)
    w->retry_tick = lv->write_ticks;      /* pushed at the next round's end or tick */
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
  w->refusals = old != NULL ? old->refusals : 0;       /* the job is likely still taken */
  w->retry_tick = old != NULL ? old->retry_tick : 0;
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

  if (lv->write_poll_source != 0)
    g_source_remove(lv->write_poll_source);
  lv->write_poll_source = 0;
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

/* On the calls thread: TRUE when a synchronous job of the domain is under way now (error says
 * which), so that SetMetadata would wait for it. libvirt's control info takes no job (the
 * domain's lock only, which a QMP exchange waiting on QEMU does not hold). It does not show an
 * async job (a dump, a save, a migration) between its steps: that one is met by libvirtd's
 * refusal and the backoff (see above). A driver without it: FALSE, written. */
static gboolean
job_taken(virDomainPtr dom, GError **error)
{
  virDomainControlInfo control;

  if (virDomainGetControlInfo(dom, &control, 0) < 0)
    return FALSE;
  switch (control.state) {
  case VIR_DOMAIN_CONTROL_OCCUPIED:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY, "libvirt has had a QMP command to its QEMU "
                "under way for %llu ms", control.stateTime);
    return TRUE;
  case VIR_DOMAIN_CONTROL_JOB:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY, "a step of a libvirt job of the domain "
                "(a dump, a migration, ...) has run for %llu ms", control.stateTime);
    return TRUE;
  case VIR_DOMAIN_CONTROL_ERROR:
    if (control.details != VIR_DOMAIN_CONTROL_ERROR_REASON_INTERNAL)
      return FALSE;                       /* its monitor failed: the write needs no monitor */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY, "the domain's job is taken and libvirt "
                "does not say by what");
    return TRUE;
  default:
    return FALSE;
  }
}

/* On the calls thread. A failure of the connection itself (none, or not alive any more) keeps
 * the write for the next connection; a domain whose job is taken defers it; anything else is
 * libvirtd's answer. */
void
hmmvd_libvirt_run_write(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  virDomainPtr dom = conn != NULL ? virDomainLookupByName(conn, call->name) : NULL;
  g_autofree char *now = NULL;
  int fault;

  if (dom != NULL && job_taken(dom, &call->error)) {
    call->deferred = TRUE;
    virDomainFree(dom);
    return;
  }
  if (dom != NULL && call->check_base && hmmvd_libvirt_read_metadata_text(dom, &now, NULL) &&
      g_strcmp0(now, call->base) != 0) {
    call->stale = TRUE;
    g_set_error(&call->error, HMMV_ERROR, HMMV_ERROR_BUSY, "libvirt's hmmv metadata changed "
                "since set-quota (virsh metadata?): not overwritten");
    virDomainFree(dom);
    return;
  }
  g_mutex_lock(&lv->lock);
  lv->write_tries++;
  fault = lv->write_faults > 0 ? lv->write_fault : 0;
  if (lv->write_faults > 0 && --lv->write_faults == 0)
    lv->write_fault = 0;
  g_mutex_unlock(&lv->lock);
  if (fault != 0) {
    call->lv_code = fault;
    g_set_error(&call->error, HMMV_ERROR, HMMV_ERROR_IO, "%s: libvirt error %d (a test's)",
                call->name, fault);
  } else if (!hmmvd_libvirt_write_metadata(conn, call->name, &call->quota,
                                           (const char *const *)call->exclude, &call->lv_code,
                                           &call->error)) {
    call->kept = conn == NULL || virConnectIsAlive(conn) != 1;
  } else if (dom != NULL) {
    (void)hmmvd_libvirt_read_metadata_text(dom, &call->written, NULL);
  }
  if (dom != NULL)
    virDomainFree(dom);
}

void
hmmvd_libvirt_fail_writes(HmmvdLibvirt *lv, int code, guint n)
{
  g_mutex_lock(&lv->lock);
  lv->write_fault = n > 0 ? code : 0;
  lv->write_faults = n;
  g_mutex_unlock(&lv->lock);
}

void
hmmvd_libvirt_fail_next_write(HmmvdLibvirt *lv, int code)
{
  hmmvd_libvirt_fail_writes(lv, code, 1);
}

guint
hmmvd_libvirt_writes_tried(HmmvdLibvirt *lv)
{
  guint n;

  g_mutex_lock(&lv->lock);
  n = lv->write_tries;
  g_mutex_unlock(&lv->lock);
  return n;
}

void
hmmvd_libvirt_set_job_backoff(HmmvdLibvirt *lv, guint first_ms, guint max_ms)
{
  lv->job_backoff_ms = first_ms;
  lv->job_backoff_max_ms = max_ms;
}
