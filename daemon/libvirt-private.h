/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Inside hmmvd's libvirt source (libvirt.c, libvirt-calls.c): the object, and the calls into
 * libvirtd, which all run on one thread of their own.
 *
 * libvirt's remote driver waits for libvirtd's answer to every call until keepalive gives the
 * connection up (5 s x 3, ~20 s), and a virConnectOpen to a libvirtd that accepts but does not
 * answer (stopped, hung) waits without any limit. So the main thread (control socket, metrics,
 * signals, events, intervals) never calls libvirtd: every call on hmmvd's own connection runs
 * on the calls thread, one at a time and in order, and what it learnt (HmmvdDomainFacts) is
 * applied on the main thread afterwards. The connection belongs to that thread; the main
 * thread knows it by its generation only. A call that has not returned within
 * LIBVIRT_CALL_DEADLINE_MS is abandoned: its connection is given up (its results and every
 * call still queued for it are dropped) and a new one is made once the thread is free again.
 * A call made of many RPCs (connect: the open, the registrations, the listing, then each
 * running domain read) gets the deadline afresh at each step (hmmvd_libvirt_call_step): a
 * libvirtd that answers slowly but steadily, or very many domains, never exceeds it, while an
 * RPC libvirtd does not answer still costs the connection within one deadline.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "libvirt-metadata.h"
#include "libvirt-qmp.h"
#include "libvirt.h"

G_BEGIN_DECLS

/* Past this, a call into libvirtd is abandoned with its connection (keepalive alone gives a
 * connection up after ~20 s, and never a virConnectOpen). */
#define LIBVIRT_CALL_DEADLINE_MS 15000
/* A call that may wait for a domain's job (SetMetadata: libvirtd waits up to 30 s for a job
 * held by a QMP exchange, a snapshot, a dump) gets this many deadlines (45 s): one domain's
 * slowness never makes hmmvd give a healthy connection up. */
#define LIBVIRT_JOB_CALL_FACTOR 3
/* A set-quota write libvirtd refused for the domain's job (it waited its 30 s for it) is not
 * tried again before this, doubled for each refusal in a row up to the most (libvirt-writes.c):
 * a job libvirt's control info does not show (a dump, a save, a migration) can hold the
 * domain for minutes, and each try holds hmmvd's calls thread 30 s. */
#define LIBVIRT_JOB_BACKOFF_MS 30000
#define LIBVIRT_JOB_BACKOFF_MAX_MS 240000

/* What the calls thread learnt of one domain, for the main thread. */
typedef struct {
  char *name;
  char uuid[VIR_UUID_STRING_BUFLEN];
  int id;                       /* libvirt's run id (-1: not running) */
  gboolean active;
  guint64 max_ram_bytes;        /* libvirt's view of its memory (DIMMs included) */
  char *xml;                    /* the domain XML, or NULL and xml_error says why */
  char *xml_error;
  char *meta;                   /* hmmv's metadata element (NULL: none) */
  char *meta_error;             /* set when it could not be read (meta is NULL then) */
} HmmvdDomainFacts;

void hmmvd_domain_facts_free(gpointer facts);

typedef struct _LvCall LvCall;
/* run: on the calls thread, with its connection (NULL when there is none); done: on the main
 * thread, unless the call was dropped (its connection abandoned, or hmmvd stopping). */
typedef void (*LvCallRun)(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn);
typedef void (*LvCallDone)(HmmvdLibvirt *lv, LvCall *call);

typedef enum {
  LV_ASK_STARTED,               /* a lifecycle event: the domain started */
  LV_ASK_METADATA,              /* a metadata event, or a start-up over: its quota */
  LV_ASK_RETRY,                 /* dropped or frozen: try again */
  LV_ASK_RESTART,               /* its RAM layout changed */
} LvAsk;

struct _LvCall {
  HmmvdLibvirt *lv;             /* a reference */
  guint gen;                    /* the connection it is for; 0: whatever the thread has */
  guint deadline_ms;            /* 0: lv->call_deadline_ms */
  LvCallRun run;
  LvCallDone done;
  /* arguments */
  char *uri;
  char *name;                   /* a domain by name, else by uuid */
  char uuid[VIR_UUID_STRING_BUFLEN];
  LvAsk ask;
  HmmvQuota quota;              /* a quota to write, with exclude */
  char **exclude;
  guint serial;
  /* results */
  GError *error;
  gboolean kept;                /* write: failed with its connection, made on the next one */
  char *base;                   /* write: the element hmmvd had seen when set-quota came */
  gboolean check_base;          /* write: skipped when libvirt's element is not base now */
  gboolean stale;               /* write: skipped, the element changed since */
  gboolean deferred;            /* write: not made, the domain's job is taken (error: by what) */
  int lv_code;                  /* write: libvirt's error code when libvirtd refused it */
  char *written;                /* write: the element read back after it was written */
  gboolean connected;           /* connect: a new connection, its events registered */
  HmmvdDomainFacts *facts;      /* one domain (NULL: not found; error says why) */
  GPtrArray *list;              /* connect: every running domain (HmmvdDomainFacts) */
};

struct _HmmvdLibvirt {
  HmmvdVms *vms;
  const HmmvdConfig *config;
  const HmmvTopology *topo;
  GMainContext *context;        /* the main thread's: where callbacks are forwarded */
  GMutex lock;                  /* guards pending, busy_*, stopping */
  GPtrArray *pending;           /* GSource: forwarded events and calls' ends not yet run */
  gint gen;                     /* atomic; main writes: the connection wanted (0: none) */
  gboolean connected;           /* main: the connection of gen is up, events registered */
  LvCall *connecting;           /* main: the connect call under way, if any */
  guint next_gen;               /* main: the last generation given */
  gboolean said_unreachable;    /* main: a failed connect was logged as a warning */
  guint retry_source;
  gboolean closing;             /* forwarded events arriving now are dropped */
  HmmvdLibvirtQmp *qmp;         /* the domains' QMP workers */
  GHashTable *starting;         /* name -> DomainStart: start-ups under way on workers */
  GHashTable *asking;           /* name -> count of calls under way about it (main) */
  GHashTable *writes;           /* name -> pending write: set-quotas not done yet (main) */
  GHashTable *meta_seen;        /* name -> hmmv element last seen in libvirt, "" none (main) */
  guint write_serial;
  guint write_ticks;            /* retry_dropped's ticks (every reconnect_ms): the clock of
                                 * the writes' backoff */
  guint job_backoff_ms;         /* LIBVIRT_JOB_BACKOFF_MS (tests set less) */
  guint job_backoff_max_ms;     /* LIBVIRT_JOB_BACKOFF_MAX_MS (tests set less) */
  guint write_poll_source;      /* pushes the writes again soon: one waits for a QMP exchange
                                 * within its deadline */
  guint check_source;           /* retries dropped domains, abandons overdue calls */
  GSourceFunc sync_done;        /* the interval waiting for the domains' hmmv-sync */
  gpointer sync_data;
  HmmvdMetadataMemory *memory;  /* each domain's last good hmmv metadata, by UUID */
  /* the calls thread */
  GThreadPool *calls;
  gint64 busy_since;            /* µs (lv->clock) the running call or its step began; 0: idle */
  guint busy_deadline_ms;       /* the running call's deadline */
  guint busy_serial;            /* counts calls begun */
  guint abandoned_serial;       /* main: the call whose connection was abandoned last */
  guint call_deadline_ms;       /* main: LIBVIRT_CALL_DEADLINE_MS (tests set less) */
  gint64 (*clock)(void);        /* under lock: g_get_monotonic_time (tests: their own) */
  void (*step_hook)(HmmvdLibvirt *lv);  /* under lock: NULL (tests: a step's cost) */
  int write_fault;              /* under lock: 0 (tests: the next writes' refusal, a code) */
  guint write_faults;           /* under lock: how many writes more fail with write_fault */
  guint write_tries;            /* under lock: writes tried (SetMetadata, or its test fault) */
  gboolean stopping;            /* hmmvd stops: nothing more goes back to the main thread */
  GCond drained;
  gboolean disconnected;        /* the last disconnect ran (for hmmvd_libvirt_free) */
  /* calls thread only */
  virConnectPtr conn;
  guint conn_gen;
  int lifecycle_id;
  int metadata_id;
  gpointer close_ctx;
};

HmmvdLibvirt *hmmvd_libvirt_ref(HmmvdLibvirt *lv);
void hmmvd_libvirt_unref(gpointer lv);

/* libvirt-calls.c: the calls thread. */
void hmmvd_libvirt_calls_start(HmmvdLibvirt *lv);
LvCall *hmmvd_libvirt_call_new(HmmvdLibvirt *lv, guint gen, LvCallRun run, LvCallDone done);
void hmmvd_libvirt_call_push(HmmvdLibvirt *lv, LvCall *call);
/* How long (µs) the running call has run since it began or since its last step, which call
 * it is and its deadline; -1 when idle. */
gint64 hmmvd_libvirt_calls_busy_for(HmmvdLibvirt *lv, guint *serial, guint *deadline_ms);
/* On the calls thread, between the RPCs of a long call: the deadline counts again from now.
 * FALSE when the call's connection was given up meanwhile (what it learns is dropped: stop). */
gboolean hmmvd_libvirt_call_step(HmmvdLibvirt *lv, LvCall *call);
/* Stops the thread: the connection closed and the thread gone, waiting at most wait_ms for a
 * call under way; FALSE when it did not end in time (the thread then ends on its own later,
 * holding its references). */
gboolean hmmvd_libvirt_calls_stop(HmmvdLibvirt *lv, guint wait_ms);

/* For tests: the deadline of a call (LIBVIRT_CALL_DEADLINE_MS), checked every reconnect_ms;
 * the clock the deadline is counted on (NULL: g_get_monotonic_time), and a hook run on the
 * calls thread at each step of a call (hmmvd_libvirt_call_step), after the deadline restarted:
 * what a slow RPC costs. */
void hmmvd_libvirt_set_call_deadline(HmmvdLibvirt *lv, guint ms);
void hmmvd_libvirt_set_call_clock(HmmvdLibvirt *lv, gint64 (*clock)(void),
                                  void (*step_hook)(HmmvdLibvirt *lv));
/* For tests: the next set-quota write is not made but fails as libvirtd refusing it with
 * libvirt error code (VIR_ERR_OPERATION_TIMEOUT: the domain's job not taken in its 30 s). */
void hmmvd_libvirt_fail_next_write(HmmvdLibvirt *lv, int code);
/* For tests: the next n writes fail so (0: none more); writes tried so far. */
void hmmvd_libvirt_fail_writes(HmmvdLibvirt *lv, int code, guint n);
guint hmmvd_libvirt_writes_tried(HmmvdLibvirt *lv);
/* For tests: a write refused for the domain's job waits first_ms, doubled up to max_ms. */
void hmmvd_libvirt_set_job_backoff(HmmvdLibvirt *lv, guint first_ms, guint max_ms);

/* Calls (run on the calls thread). */
void hmmvd_libvirt_run_connect(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn);
void hmmvd_libvirt_run_disconnect(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn);
void hmmvd_libvirt_run_domain(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn);
void hmmvd_libvirt_run_write(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn);

/* libvirt-writes.c: set-quota's writes (lv->writes: name -> pending write). The quota writer
 * (vms.h); every pending write that can be made now handed to the calls thread (connected, no
 * QMP exchange with the domain under way: called when a sync round is over, libvirt.c); hmmvd
 * stopping (those not written named, the tables freed). */
void hmmvd_libvirt_writes_init(HmmvdLibvirt *lv);
/* The domain's hmmv element as libvirt has it now (NULL: none), read on the calls thread. */
void hmmvd_libvirt_writes_seen(HmmvdLibvirt *lv, const char *name, const char *meta);
gboolean hmmvd_libvirt_write_quota(const char *name, const HmmvQuota *quota,
                                   gpointer user_data, GError **error);
void hmmvd_libvirt_writes_push(HmmvdLibvirt *lv);
/* retry_dropped's tick: the backoff's clock (then the writes pushed). */
void hmmvd_libvirt_writes_tick(HmmvdLibvirt *lv);
/* A lifecycle event of the domain (a dump or a save that paused it ended, ...): a write
 * waiting out its backoff is tried at the next push. */
void hmmvd_libvirt_writes_wake(HmmvdLibvirt *lv, const char *name);
void hmmvd_libvirt_writes_stop(HmmvdLibvirt *lv);

/* An event forwarded to the main thread. */
typedef enum {
  FORWARD_LIFECYCLE,
  FORWARD_METADATA,
  FORWARD_CLOSED,
} ForwardKind;

/* libvirt-events.c: libvirt's callbacks queue their event with this (any thread). */
void hmmvd_libvirt_forward(HmmvdLibvirt *lv, guint gen, ForwardKind kind, virDomainPtr dom,
                           int event, int detail);

/* libvirt.c, main thread: ask libvirtd about a domain (by uuid, else by name) on the calls
 * thread, the answer applied there; a libvirt VM no longer managed; the connection given up
 * (its calls and events dropped); connected again every reconnect_ms until it is. */
void hmmvd_libvirt_ask(HmmvdLibvirt *lv, LvAsk what, const char *name, const char *uuid);
void hmmvd_libvirt_remove_domain(HmmvdLibvirt *lv, const char *name, const char *why);
void hmmvd_libvirt_disconnect(HmmvdLibvirt *lv);
void hmmvd_libvirt_schedule_reconnect(HmmvdLibvirt *lv);

G_END_DECLS
