/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's calls into libvirtd, on a thread of their own (see libvirt-private.h).
 */
#include "libvirt-private.h"

#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>

/* libvirt keepalive: a probe every 5 s, the connection is declared dead after 3 unanswered
 * ones, so a hung (not just dead) libvirtd is noticed within ~20 s. */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

void
hmmvd_domain_facts_free(gpointer data)
{
  HmmvdDomainFacts *facts = data;

  if (facts == NULL)
    return;
  g_free(facts->name);
  g_free(facts->xml);
  g_free(facts->xml_error);
  g_free(facts->meta);
  g_free(facts->meta_error);
  g_free(facts);
}

/* ------------------------------------------------------------------------------------------
 * The thread
 */

static void
call_free(gpointer data)
{
  LvCall *call = data;

  g_clear_error(&call->error);
  hmmvd_domain_facts_free(call->facts);
  if (call->list != NULL)
    g_ptr_array_unref(call->list);
  g_free(call->uri);
  g_free(call->base);
  g_free(call->written);
  g_free(call->name);
  g_strfreev(call->exclude);
  hmmvd_libvirt_unref(call->lv);
  g_free(call);
}

LvCall *
hmmvd_libvirt_call_new(HmmvdLibvirt *lv, guint gen, LvCallRun run, LvCallDone done)
{
  LvCall *call = g_new0(LvCall, 1);

  call->lv = hmmvd_libvirt_ref(lv);
  call->gen = gen;
  call->run = run;
  call->done = done;
  return call;
}

typedef struct {
  LvCall *call;
  GSource *source;
} CallEnd;

static gboolean
call_end_dispatch(gpointer data)
{
  CallEnd *end = data;
  HmmvdLibvirt *lv = end->call->lv;

  /* a connection abandoned since: what it learnt is out of date */
  if (!lv->closing && end->call->done != NULL &&
      (end->call->gen == 0 || end->call->gen == (guint)g_atomic_int_get(&lv->gen)))
    end->call->done(lv, end->call);
  return G_SOURCE_REMOVE;
}

static void
call_end_free(gpointer data)
{
  CallEnd *end = data;
  HmmvdLibvirt *lv = end->call->lv;

  g_mutex_lock(&lv->lock);
  if (end->source != NULL && g_ptr_array_remove_fast(lv->pending, end->source))
    g_source_unref(end->source);
  g_mutex_unlock(&lv->lock);
  call_free(end->call);
  g_free(end);
}

static void
calls_thread(gpointer data, gpointer user_data)
{
  LvCall *call = data;
  HmmvdLibvirt *lv = call->lv;
  gboolean dropped = call->gen != 0 && call->gen != (guint)g_atomic_int_get(&lv->gen);
  CallEnd *end;

  if (!dropped) {
    g_mutex_lock(&lv->lock);
    lv->busy_since = lv->clock();
    lv->busy_serial++;
    lv->busy_deadline_ms = call->deadline_ms;
    g_mutex_unlock(&lv->lock);
    call->run(lv, call, lv->conn);
    g_mutex_lock(&lv->lock);
    lv->busy_since = 0;
    g_mutex_unlock(&lv->lock);
  }
  g_mutex_lock(&lv->lock);
  if (dropped || lv->stopping || call->done == NULL) {
    g_mutex_unlock(&lv->lock);
    call_free(call);
    return;
  }
  /* back to the main thread, listed so that hmmvd_libvirt_free can drop it */
  end = g_new0(CallEnd, 1);
  end->call = call;
  end->source = g_idle_source_new();
  g_source_set_callback(end->source, call_end_dispatch, end, call_end_free);
  g_ptr_array_add(lv->pending, g_source_ref(end->source));
  g_source_attach(end->source, lv->context);
  g_source_unref(end->source);
  g_mutex_unlock(&lv->lock);
}

void
hmmvd_libvirt_calls_start(HmmvdLibvirt *lv)
{
  g_cond_init(&lv->drained);
  lv->lifecycle_id = lv->metadata_id = -1;
  lv->clock = g_get_monotonic_time;
  /* exclusive, one thread: the calls run one at a time, in order, on one connection */
  lv->calls = g_thread_pool_new(calls_thread, NULL, 1, TRUE, NULL);
}

void
hmmvd_libvirt_call_push(HmmvdLibvirt *lv, LvCall *call)
{
  g_thread_pool_push(lv->calls, call, NULL);
}

/* The clock read under the lock with busy_since: a step's restart is never half seen. */
gint64
hmmvd_libvirt_calls_busy_for(HmmvdLibvirt *lv, guint *serial, guint *deadline_ms)
{
  gint64 busy_for = -1;

  g_mutex_lock(&lv->lock);
  if (lv->busy_since != 0)
    busy_for = lv->clock() - lv->busy_since;
  *serial = lv->busy_serial;
  *deadline_ms = lv->busy_deadline_ms;
  g_mutex_unlock(&lv->lock);
  return busy_for;
}

gboolean
hmmvd_libvirt_call_step(HmmvdLibvirt *lv, LvCall *call)
{
  void (*hook)(HmmvdLibvirt *lv);

  if (call->gen != 0 && call->gen != (guint)g_atomic_int_get(&lv->gen))
    return FALSE;
  g_mutex_lock(&lv->lock);
  lv->busy_since = lv->clock();
  hook = lv->step_hook;
  g_mutex_unlock(&lv->lock);
  if (hook != NULL)
    hook(lv);
  return TRUE;
}

void
hmmvd_libvirt_set_call_clock(HmmvdLibvirt *lv, gint64 (*clock)(void),
                             void (*step_hook)(HmmvdLibvirt *lv))
{
  g_mutex_lock(&lv->lock);
  lv->clock = clock != NULL ? clock : g_get_monotonic_time;
  lv->step_hook = step_hook;
  g_mutex_unlock(&lv->lock);
}

static void
mark_disconnected(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  g_mutex_lock(&lv->lock);
  lv->disconnected = TRUE;
  g_cond_signal(&lv->drained);
  g_mutex_unlock(&lv->lock);
}

gboolean
hmmvd_libvirt_calls_stop(HmmvdLibvirt *lv, guint wait_ms)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)wait_ms * 1000;
  gboolean done;

  g_mutex_lock(&lv->lock);
  lv->stopping = TRUE;
  g_mutex_unlock(&lv->lock);
  g_atomic_int_set(&lv->gen, 0);            /* calls still queued are dropped */
  hmmvd_libvirt_call_push(lv, hmmvd_libvirt_call_new(lv, 0, hmmvd_libvirt_run_disconnect,
                                                     NULL));
  hmmvd_libvirt_call_push(lv, hmmvd_libvirt_call_new(lv, 0, mark_disconnected, NULL));
  g_mutex_lock(&lv->lock);
  while (!lv->disconnected)
    if (!g_cond_wait_until(&lv->drained, &lv->lock, deadline))
      break;
  done = lv->disconnected;
  g_mutex_unlock(&lv->lock);
  /* done: the thread is idle, this returns at once; else it finishes its call on its own */
  g_thread_pool_free(lv->calls, !done, done);
  lv->calls = NULL;
  return done;
}

/* ------------------------------------------------------------------------------------------
 * Events: libvirt calls these from its event sources on the main context, or from a call
 * under way on the calls thread; they only queue the event (libvirt.c).
 */

typedef struct {
  HmmvdLibvirt *lv;             /* a reference */
  guint gen;
} EventCtx;

static EventCtx *
event_ctx_new(HmmvdLibvirt *lv, guint gen)
{
  EventCtx *ctx = g_new0(EventCtx, 1);

  ctx->lv = hmmvd_libvirt_ref(lv);
  ctx->gen = gen;
  return ctx;
}

static void
event_ctx_free(void *data)
{
  EventCtx *ctx = data;

  hmmvd_libvirt_unref(ctx->lv);
  g_free(ctx);
}

static int
on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
  EventCtx *ctx = opaque;

  hmmvd_libvirt_forward(ctx->lv, ctx->gen, FORWARD_LIFECYCLE, dom, event, detail);
  return 0;
}

static void
on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
  EventCtx *ctx = opaque;

  if (type == VIR_DOMAIN_METADATA_ELEMENT && g_strcmp0(nsuri, HMMVD_METADATA_URI) == 0)
    hmmvd_libvirt_forward(ctx->lv, ctx->gen, FORWARD_METADATA, dom, 0, 0);
}

static void
on_close(virConnectPtr conn, int reason, void *opaque)
{
  EventCtx *ctx = opaque;

  hmmvd_libvirt_forward(ctx->lv, ctx->gen, FORWARD_CLOSED, NULL, reason, 0);
}

/* ------------------------------------------------------------------------------------------
 * Calls
 */

/* The thread's connection closed (on a dead one the calls fail at once; the callbacks'
 * contexts go with the connection object either way). */
void
hmmvd_libvirt_run_disconnect(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  if (lv->conn == NULL)
    return;
  if (lv->lifecycle_id >= 0)
    virConnectDomainEventDeregisterAny(lv->conn, lv->lifecycle_id);
  if (lv->metadata_id >= 0)
    virConnectDomainEventDeregisterAny(lv->conn, lv->metadata_id);
  lv->lifecycle_id = lv->metadata_id = -1;
  if (lv->close_ctx != NULL)
    virConnectUnregisterCloseCallback(lv->conn, on_close);
  /* the QMP workers' reference goes first: this thread's close is then the last one, the
   * only one that may wait for libvirtd */
  hmmvd_libvirt_qmp_set_connection(lv->qmp, NULL);
  virConnectClose(lv->conn);
  lv->conn = NULL;
  lv->conn_gen = 0;
  g_clear_pointer(&lv->close_ctx, event_ctx_free);
}

static HmmvdDomainFacts *
facts_read(virDomainPtr dom)
{
  HmmvdDomainFacts *facts = g_new0(HmmvdDomainFacts, 1);
  g_autoptr(GError) local_error = NULL;
  char *xml;

  facts->name = g_strdup(virDomainGetName(dom));
  virDomainGetUUIDString(dom, facts->uuid);
  facts->id = (int)virDomainGetID(dom);
  facts->active = virDomainIsActive(dom) == 1;
  if (!facts->active)
    return facts;
  facts->max_ram_bytes = (guint64)virDomainGetMaxMemory(dom) << 10;
  if ((xml = virDomainGetXMLDesc(dom, 0)) == NULL) {
    facts->xml_error = g_strdup_printf("cannot read the domain XML: %s",
                                       hmmvd_libvirt_last_error_message());
  } else {
    facts->xml = g_strdup(xml);
    free(xml);
  }
  if (!hmmvd_libvirt_read_metadata_text(dom, &facts->meta, &local_error))
    facts->meta_error = g_strdup(local_error->message);
  return facts;
}

/* A new connection (the old one closed first), its events registered (events first,
 * discovery second: a domain starting in between is seen twice, which the main thread
 * handles, rather than never), and every running domain. Each step has the call's deadline
 * of its own: the open, the registrations, the listing, each domain read (its 4-5 RPCs: ~10 ms
 * a domain on a loaded libvirtd, so one deadline for all of them ran out at ~1,000 domains,
 * or at a few dozen on a libvirtd 100 times slower, and hmmvd gave up and rediscovered
 * forever). A connection given up meanwhile stops the discovery (its answer is dropped). */
void
hmmvd_libvirt_run_connect(HmmvdLibvirt *lv, LvCall *call, virConnectPtr old)
{
  virDomainPtr *domains = NULL;
  virConnectPtr conn;
  int n;

  hmmvd_libvirt_run_disconnect(lv, call, old);
  if ((conn = virConnectOpen(call->uri)) == NULL) {
    hmmvd_libvirt_set_error(&call->error, call->uri);
    return;
  }
  lv->conn = conn;
  lv->conn_gen = call->gen;
  if (!hmmvd_libvirt_call_step(lv, call))
    return;
  if (virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) < 0)
    g_debug("libvirt: no keepalive on %s: %s", call->uri, hmmvd_libvirt_last_error_message());
  lv->lifecycle_id = virConnectDomainEventRegisterAny(
    conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
    event_ctx_new(lv, call->gen), event_ctx_free);
  lv->metadata_id = virConnectDomainEventRegisterAny(
    conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata),
    event_ctx_new(lv, call->gen), event_ctx_free);
  /* No freecb: a driver without close callbacks (test:///) accepts it and never calls it;
   * the context is freed here after unregistering (run_disconnect). */
  lv->close_ctx = event_ctx_new(lv, call->gen);
  if (lv->lifecycle_id < 0 || lv->metadata_id < 0 ||
      virConnectRegisterCloseCallback(conn, on_close, lv->close_ctx, NULL) < 0) {
    hmmvd_libvirt_set_error(&call->error, call->uri);
    g_prefix_error(&call->error, "cannot register for events: ");
    hmmvd_libvirt_run_disconnect(lv, call, conn);
    return;
  }
  hmmvd_libvirt_qmp_set_connection(lv->qmp, conn);
  call->connected = TRUE;
  if (!hmmvd_libvirt_call_step(lv, call))
    return;
  n = virConnectListAllDomains(conn, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) {
    hmmvd_libvirt_set_error(&call->error, call->uri);
    g_prefix_error(&call->error, "cannot list the running domains: ");
    return;
  }
  call->list = g_ptr_array_new_with_free_func(hmmvd_domain_facts_free);
  for (int i = 0; i < n; i++) {
    HmmvdDomainFacts *facts;

    if (!hmmvd_libvirt_call_step(lv, call)) {
      for (; i < n; i++)
        virDomainFree(domains[i]);
      break;
    }
    facts = facts_read(domains[i]);
    /* one that stopped meanwhile: its event removes it */
    if (facts->active)
      g_ptr_array_add(call->list, facts);
    else
      hmmvd_domain_facts_free(facts);
    virDomainFree(domains[i]);
  }
  free(domains);
}

/* One domain, by name or UUID. */
void
hmmvd_libvirt_run_domain(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  virDomainPtr dom;

  if (conn == NULL) {
    g_set_error(&call->error, HMMV_ERROR, HMMV_ERROR_IO, "libvirt is not connected");
    return;
  }
  dom = call->uuid[0] != '\0' ? virDomainLookupByUUIDString(conn, call->uuid)
                              : virDomainLookupByName(conn, call->name);
  if (dom == NULL) {
    hmmvd_libvirt_set_error(&call->error, call->name);
    return;
  }
  call->facts = facts_read(dom);
  virDomainFree(dom);
}
