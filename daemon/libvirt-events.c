/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source: libvirt's events, queued on the main context and handled there
 * (see libvirt-private.h).
 */
#include "libvirt-private.h"

/* ------------------------------------------------------------------------------------------
 * Events: libvirt calls back (libvirt-calls.c) from its event sources or from a call under
 * way on the calls thread; the event is queued on the main context and handled there.
 */

typedef struct {
  HmmvdLibvirt *lv;             /* a reference */
  guint gen;                    /* its connection's: events of an old connection are dropped */
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
  hmmvd_libvirt_unref(fw->lv);
  g_free(fw->name);
  g_free(fw);
}


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

  if (lv->closing || fw->gen != (guint)g_atomic_int_get(&lv->gen))
    return G_SOURCE_REMOVE;
  if (fw->kind == FORWARD_CLOSED) {
    g_warning("libvirt: lost the connection to %s; VMs stay managed, reconnecting every %u ms",
              lv->config->libvirt_uri, lv->config->reconnect_ms);
    hmmvd_libvirt_disconnect(lv);
    hmmvd_libvirt_schedule_reconnect(lv);
    return G_SOURCE_REMOVE;
  }
  /* By name, not looked up: a transient domain that stopped is gone from libvirt by the
   * time its event is dispatched (the lookup failed and the VM stayed listed, managed). */
  if (fw->kind == FORWARD_LIFECYCLE && (why = stop_reason(fw->event, fw->detail)) != NULL) {
    hmmvd_libvirt_remove_domain(lv, fw->name, why);
    return G_SOURCE_REMOVE;
  }
  if (fw->kind == FORWARD_LIFECYCLE && fw->event == VIR_DOMAIN_EVENT_RESUMED)
    hmmvd_libvirt_writes_wake(lv, fw->name);    /* a dump or a save that paused it is over */
  if (fw->kind == FORWARD_LIFECYCLE && fw->event == VIR_DOMAIN_EVENT_STARTED)
    hmmvd_libvirt_ask(lv, LV_ASK_STARTED, fw->name, fw->uuid);
  else if (fw->kind == FORWARD_METADATA)
    hmmvd_libvirt_ask(lv, LV_ASK_METADATA, fw->name, fw->uuid);
  return G_SOURCE_REMOVE;
}

void
hmmvd_libvirt_forward(HmmvdLibvirt *lv, guint gen, ForwardKind kind, virDomainPtr dom,
                      int event, int detail)
{
  Forward *fw = g_new0(Forward, 1);
  GSource *source;

  fw->lv = hmmvd_libvirt_ref(lv);
  fw->gen = gen;
  fw->kind = kind;
  if (dom != NULL) {
    virDomainGetUUIDString(dom, fw->uuid);
    fw->name = g_strdup(virDomainGetName(dom));
  }
  fw->event = event;
  fw->detail = detail;
  /* Always through an idle source, never g_main_context_invoke(): on the main thread the
   * latter runs the handler at once, inside libvirt's callback and under its locks. */
  source = g_idle_source_new();
  g_source_set_callback(source, forward_dispatch, fw, forward_free);
  /* Listed and attached under the lock, as the calls' ends are: hmmvd_libvirt_free drains
   * lv->pending once stopping is set, so an event after that is dropped here (its source
   * never attached; forward_free finds it unlisted). */
  g_mutex_lock(&lv->lock);
  if (lv->stopping) {
    g_mutex_unlock(&lv->lock);
    g_source_unref(source);               /* forward_free, outside the lock */
    return;
  }
  fw->source = source;
  g_ptr_array_add(lv->pending, g_source_ref(source));
  g_source_attach(source, lv->context);
  g_source_unref(source);                 /* still held by lv->pending and the context */
  g_mutex_unlock(&lv->lock);
}

