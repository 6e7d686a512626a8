/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP to libvirt domains on per-domain worker threads (see libvirt-qmp.h).
 *
 * One lock (lq->lock) guards the workers, their queues and every job's result; callers wait
 * on one condition (lq->done) for their job, with a deadline. A worker thread lives while its
 * domain has a transport or a queued job, and ends after 10 s idle.
 */
#include "libvirt-qmp.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An idle worker thread ends after this (a new one starts with the next exchange). */
#define WORKER_IDLE_US (10 * G_TIME_SPAN_SECOND)
/* Each worker thread talks to libvirtd over a connection of its own, opened to the URI of the
 * daemon's connection: with libvirt 9.0, while one thread's call waited on a QEMU that does not
 * answer (SIGSTOP), other threads' calls over the same connection came back only when the
 * keepalive (5 s) woke the connection, so healthy domains missed their 5 s deadlines
 * (measured: worst 5.0 s over a shared connection, 0.4 s with one per domain; libvirt 11.3
 * did not show it). Its keepalive, as the daemon's (libvirt.c). */
#define WORKER_KEEPALIVE_INTERVAL_S 5
#define WORKER_KEEPALIVE_COUNT 3

typedef enum {
  KIND_OTHER,
  KIND_START,       /* hmmv-start: tracking becomes active when it succeeds */
  KIND_STOP,        /* hmmv-stop: tracking ends */
  KIND_SYNC,        /* hmmv-sync: the harvest's, maybe sent ahead by sync_begin */
} JobKind;

typedef struct {
  gint refs;                    /* atomic: the caller's and the worker's */
  JobKind kind;
  char *command;
  char *name;
  int id;                       /* the libvirt run id the transport was made for */
  int fd;                       /* a duplicate passed with the command (getfd, add-fd), or -1 */
  gint64 deadline_us;           /* the caller's, monotonic */
  guint64 round;                /* KIND_SYNC sent ahead: its sync round, else 0 */
  /* results, under lq->lock */
  gboolean done;
  char *reply;
  GError *error;
} Job;

typedef struct {
  char *uuid;
  char *name;                   /* of the newest transport, with its run id */
  int id;
  guint users;                  /* transports */
  GQueue jobs;
  GCond wake;
  gboolean running;             /* its thread is alive */
  Job *current;                 /* the exchange under way, or NULL */
  gboolean tracking;            /* hmmv-start succeeded and no hmmv-stop since */
  Job *sync;                    /* sent ahead for round sync_round (a reference) */
  guint64 sync_round;
} Worker;

struct _HmmvdLibvirtQmp {
  GMutex lock;
  GCond done;                   /* some job is done */
  guint timeout_ms;
  virConnectPtr conn;
  char *uri;                    /* conn's, for the workers' own connections */
  guint64 conn_generation;      /* counts set_connection calls */
  GHashTable *workers;          /* uuid -> Worker */
  /* the sync round under way */
  guint64 round;
  guint sync_pending;
  GSourceFunc sync_done;
  gpointer sync_data;
  GMainContext *sync_context;
  GSource *sync_deadline;
};

typedef struct {
  HmmvdLibvirtQmp *lq;          /* a reference */
  Worker *worker;
  char *name;
  int id;
} Transport;

static char *sync_command;      /* {"execute":"hmmv-sync"}, as hmmv_qmp_execute builds it */

/* ------------------------------------------------------------------------------------------
 * libvirt errors (thread-local in libvirt: read on the thread that made the call)
 */

const char *
hmmvd_libvirt_last_error_message(void)
{
  const char *message = virGetLastErrorMessage();

  return message != NULL ? message : "unknown libvirt error";
}

void
hmmvd_libvirt_set_error(GError **error, const char *what)
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
  g_set_error(error, HMMV_ERROR, hmmv_code, "%s: %s", what, hmmvd_libvirt_last_error_message());
}

/* ------------------------------------------------------------------------------------------
 * Jobs and workers
 */

static JobKind
command_kind(const char *command)
{
  g_autoptr(JsonNode) root = hmmv_json_parse(command, strlen(command), NULL);
  const char *execute;

  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
    return KIND_OTHER;
  execute = json_object_get_string_member_with_default(json_node_get_object(root), "execute",
                                                       "");
  return strcmp(execute, "hmmv-start") == 0  ? KIND_START
         : strcmp(execute, "hmmv-stop") == 0 ? KIND_STOP
         : strcmp(execute, "hmmv-sync") == 0 ? KIND_SYNC
                                             : KIND_OTHER;
}

static Job *
job_new(HmmvdLibvirtQmp *lq, const Transport *t, const char *command, JobKind kind)
{
  Job *job = g_new0(Job, 1);

  job->refs = 1;
  job->kind = kind;
  job->command = g_strdup(command);
  job->name = g_strdup(t->name);
  job->id = t->id;
  job->fd = -1;
  job->deadline_us = g_get_monotonic_time() + (gint64)lq->timeout_ms * 1000;
  return job;
}

static Job *
job_ref(Job *job)
{
  g_atomic_int_inc(&job->refs);
  return job;
}

static void
job_unref(Job *job)
{
  if (job == NULL || !g_atomic_int_dec_and_test(&job->refs))
    return;
  if (job->fd >= 0)
    close(job->fd);
  g_free(job->command);
  g_free(job->name);
  g_free(job->reply);
  g_clear_error(&job->error);
  g_free(job);
}

/* Worker thread, without the lock: one exchange through libvirt. */
static void
job_run(virConnectPtr conn, const char *uuid, Job *job)
{
  virDomainPtr dom;
  char *result = NULL;
  int rc;

  if (conn == NULL) {
    g_set_error(&job->error, HMMV_ERROR, HMMV_ERROR_IO,
                "domain %s: libvirt is not connected (reconnecting)", job->name);
    return;
  }
  dom = virDomainLookupByUUIDString(conn, uuid);
  if (dom == NULL) {
    hmmvd_libvirt_set_error(&job->error, job->name);
    return;
  }
  if ((int)virDomainGetID(dom) != job->id) {
    g_set_error(&job->error, HMMV_ERROR, HMMV_ERROR_GONE,
                "domain %s: stopped or restarted (run id %d, was %d)", job->name,
                (int)virDomainGetID(dom), job->id);
    virDomainFree(dom);
    return;
  }
  if (job->fd >= 0) {
    int fds[1] = { job->fd };

    rc = virDomainQemuMonitorCommandWithFiles(dom, job->command, 1, fds, NULL, NULL, &result,
                                              VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT);
  } else {
    rc = virDomainQemuMonitorCommand(dom, job->command, &result,
                                     VIR_DOMAIN_QEMU_MONITOR_COMMAND_DEFAULT);
  }
  if (rc < 0)
    hmmvd_libvirt_set_error(&job->error, job->name);
  else
    job->reply = g_strdup(result);
  free(result);
  virDomainFree(dom);
}

static void
worker_free(Worker *w)
{
  Job *job;

  while ((job = g_queue_pop_head(&w->jobs)) != NULL)
    job_unref(job);
  job_unref(w->sync);
  g_cond_clear(&w->wake);
  g_free(w->uuid);
  g_free(w->name);
  g_free(w);
}

/* Under the lock: a worker nobody uses and no thread runs goes. */
static void
worker_maybe_free(HmmvdLibvirtQmp *lq, Worker *w)
{
  if (w->users == 0 && !w->running)
    g_hash_table_remove(lq->workers, w->uuid);   /* frees it */
}

static gboolean sync_finish(gpointer data);

typedef struct {
  HmmvdLibvirtQmp *lq;
  Worker *worker;
} ThreadArgs;

/* Under the lock: the last sync of a round is done, the round is over. */
static void
sync_round_done(HmmvdLibvirtQmp *lq)
{
  GSource *idle = g_idle_source_new();

  g_source_set_callback(idle, sync_finish, g_atomic_rc_box_acquire(lq),
                        (GDestroyNotify)hmmvd_libvirt_qmp_unref);
  g_source_attach(idle, lq->sync_context);
  g_source_unref(idle);
}

static gpointer
worker_main(gpointer data)
{
  ThreadArgs *args = data;
  HmmvdLibvirtQmp *lq = args->lq;
  Worker *w = args->worker;
  virConnectPtr conn = NULL;    /* this thread's own (see WORKER_KEEPALIVE_INTERVAL_S) */
  guint64 generation = 0;       /* lq->conn_generation it was opened for */

  g_free(args);
  g_mutex_lock(&lq->lock);
  for (;;) {
    Job *job = g_queue_pop_head(&w->jobs);
    g_autofree char *uri = NULL;

    if (job == NULL) {
      gint64 until = g_get_monotonic_time() + WORKER_IDLE_US;

      if (w->users > 0 && g_cond_wait_until(&w->wake, &lq->lock, until))
        continue;
      if (!g_queue_is_empty(&w->jobs))
        continue;
      break;
    }
    w->current = job;
    /* the daemon's connection changed (libvirtd restarted) or is gone: so is this one */
    if (conn != NULL && (generation != lq->conn_generation || lq->conn == NULL))
      g_clear_pointer(&conn, virConnectClose);
    if (conn == NULL && lq->conn != NULL) {
      uri = g_strdup(lq->uri);
      generation = lq->conn_generation;
    }
    g_mutex_unlock(&lq->lock);

    if (uri != NULL && (conn = virConnectOpen(uri)) != NULL &&
        virConnectSetKeepAlive(conn, WORKER_KEEPALIVE_INTERVAL_S, WORKER_KEEPALIVE_COUNT) < 0)
      g_debug("domain %s: no keepalive on %s: %s", job->name, uri,
              hmmvd_libvirt_last_error_message());
    if (uri != NULL && conn == NULL)
      hmmvd_libvirt_set_error(&job->error, job->name);
    else
      job_run(conn, w->uuid, job);

    g_mutex_lock(&lq->lock);
    w->current = NULL;
    job->done = TRUE;
    if (job->kind == KIND_START && job->error == NULL) {
      g_autoptr(JsonNode) ret = hmmv_qmp_parse_reply(job->reply, NULL);

      w->tracking = ret != NULL;
    }
    if (job->round != 0 && job->round == lq->round && lq->sync_pending > 0 &&
        --lq->sync_pending == 0)
      sync_round_done(lq);
    g_cond_broadcast(&lq->done);
    job_unref(job);
  }
  w->running = FALSE;
  worker_maybe_free(lq, w);
  g_mutex_unlock(&lq->lock);
  if (conn != NULL)
    virConnectClose(conn);
  hmmvd_libvirt_qmp_unref(lq);
  return NULL;
}

/* Under the lock: queue a job (the worker takes its own reference), starting the thread. */
static gboolean
worker_queue(HmmvdLibvirtQmp *lq, Worker *w, Job *job, GError **error)
{
  if (!w->running) {
    g_autoptr(GError) local_error = NULL;
    ThreadArgs *args = g_new0(ThreadArgs, 1);
    GThread *thread;

    args->lq = g_atomic_rc_box_acquire(lq);
    args->worker = w;
    thread = g_thread_try_new("hmmvd-libvirt-qmp", worker_main, args, &local_error);
    if (thread == NULL) {
      hmmvd_libvirt_qmp_unref(lq);
      g_free(args);
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED,
                  "domain %s: cannot start a QMP thread: %s", job->name, local_error->message);
      return FALSE;
    }
    g_thread_unref(thread);
    w->running = TRUE;
  }
  g_queue_push_tail(&w->jobs, job_ref(job));
  g_cond_signal(&w->wake);
  return TRUE;
}

/* Under the lock: the exchange under way has outlived its caller's deadline. */
static gboolean
worker_stuck(const Worker *w, gint64 now)
{
  return w->current != NULL && now >= w->current->deadline_us;
}

/* ------------------------------------------------------------------------------------------
 * The transport
 */

static char *
exchange(Transport *t, const char *command, int fd, GError **error)
{
  HmmvdLibvirtQmp *lq = t->lq;
  Worker *w = t->worker;
  JobKind kind = command_kind(command);
  gint64 now = g_get_monotonic_time();
  Job *job = NULL;
  char *reply = NULL;

  g_mutex_lock(&lq->lock);
  if (kind == KIND_SYNC && fd < 0 && w->sync != NULL && w->sync_round == lq->round) {
    /* sent ahead by sync_begin, whose round is over: never wait for it here */
    job = g_steal_pointer(&w->sync);
    if (!job->done) {
      if (now >= job->deadline_us)
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                    "domain %s: QEMU did not answer hmmv-sync within %u ms (libvirt QMP)",
                    t->name, lq->timeout_ms);
      else
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                    "domain %s: QEMU has not answered hmmv-sync yet; no harvest this "
                    "interval", t->name);
      g_mutex_unlock(&lq->lock);
      job_unref(job);
      return NULL;
    }
  } else if (worker_stuck(w, now)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                "domain %s: QEMU has not answered QMP for over %u ms; no command is sent "
                "until it does", t->name, lq->timeout_ms);
    g_mutex_unlock(&lq->lock);
    return NULL;
  } else if (kind == KIND_SYNC && w->current != NULL) {
    /* the harvest's sync behind an exchange still under way: no data this interval rather
     * than an interval that waits */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                "domain %s: a QMP exchange is still under way; no harvest this interval",
                t->name);
    g_mutex_unlock(&lq->lock);
    return NULL;
  } else {
    job = job_new(lq, t, command, kind);
    if (fd >= 0 && (job->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "domain %s: dup: %s", t->name,
                  g_strerror(errno));
      g_mutex_unlock(&lq->lock);
      job_unref(job);
      return NULL;
    }
    if (!worker_queue(lq, w, job, error)) {
      g_mutex_unlock(&lq->lock);
      job_unref(job);
      return NULL;
    }
  }
  while (!job->done && g_cond_wait_until(&lq->done, &lq->lock, job->deadline_us))
    ;
  if (!job->done) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                "domain %s: QEMU did not answer within %u ms (libvirt QMP)", t->name,
                lq->timeout_ms);
  } else if (job->error != NULL) {
    g_propagate_error(error, g_error_copy(job->error));
  } else {
    reply = g_strdup(job->reply);
  }
  g_mutex_unlock(&lq->lock);
  job_unref(job);
  return reply;
}

static char *
transport_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  return exchange(qmp->priv, command_json, -1, error);
}

/* The fd goes with the command (virDomainQemuMonitorCommandWithFiles). */
static char *
transport_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  return exchange(qmp->priv, command_json, fd, error);
}

/* hmmv-stop and the like: queued in order with the domain's other exchanges, not waited
 * for (a QEMU that stopped answering cannot hold whoever stops tracking it). */
static void
transport_post(HmmvQmp *qmp, const char *command_json)
{
  Transport *t = qmp->priv;
  HmmvdLibvirtQmp *lq = t->lq;
  JobKind kind = command_kind(command_json);
  Job *job = job_new(lq, t, command_json, kind);

  g_mutex_lock(&lq->lock);
  if (kind == KIND_STOP)
    t->worker->tracking = FALSE;
  if (!worker_queue(lq, t->worker, job, NULL))
    g_debug("domain %s: %s not sent (no thread)", t->name, command_json);
  g_mutex_unlock(&lq->lock);
  job_unref(job);
}

static void
transport_destroy(HmmvQmp *qmp)
{
  Transport *t = qmp->priv;
  HmmvdLibvirtQmp *lq;

  if (t == NULL)
    return;
  lq = t->lq;
  g_mutex_lock(&lq->lock);
  t->worker->users--;
  g_cond_signal(&t->worker->wake);           /* an idle thread may end now */
  worker_maybe_free(lq, t->worker);
  g_mutex_unlock(&lq->lock);
  g_free(t->name);
  g_free(t);
  hmmvd_libvirt_qmp_unref(lq);
}

static const struct hmmv_qmp_ops transport_ops = {
  .name = "libvirt",
  .transact = transport_transact,
  .transact_fd = transport_transact_fd,
  .post = transport_post,
  .destroy = transport_destroy,
};

HmmvQmp *
hmmvd_libvirt_qmp_transport_new(HmmvdLibvirtQmp *lq, const char *uuid, const char *name,
                                int id, GError **error)
{
  Transport *t = g_new0(Transport, 1);
  Worker *w;

  g_mutex_lock(&lq->lock);
  w = g_hash_table_lookup(lq->workers, uuid);
  if (w == NULL) {
    w = g_new0(Worker, 1);
    w->uuid = g_strdup(uuid);
    g_queue_init(&w->jobs);
    g_cond_init(&w->wake);
    g_hash_table_insert(lq->workers, w->uuid, w);
  }
  w->users++;
  w->tracking = FALSE;
  g_free(w->name);
  w->name = g_strdup(name);
  w->id = id;
  g_mutex_unlock(&lq->lock);
  t->lq = g_atomic_rc_box_acquire(lq);
  t->worker = w;
  t->name = g_strdup(name);
  t->id = id;
  return hmmv_qmp_new(&transport_ops, t, error);
}

gboolean
hmmvd_libvirt_qmp_is_busy(HmmvdLibvirtQmp *lq, const char *uuid)
{
  Worker *w;
  gboolean busy;

  g_mutex_lock(&lq->lock);
  w = g_hash_table_lookup(lq->workers, uuid);
  busy = w != NULL && (w->current != NULL || !g_queue_is_empty(&w->jobs));
  g_mutex_unlock(&lq->lock);
  return busy;
}

/* ------------------------------------------------------------------------------------------
 * hmmv-sync ahead of the interval
 */

/* Main context: the round is over (all answered, or its deadline passed), once. */
static gboolean
sync_finish(gpointer data)
{
  HmmvdLibvirtQmp *lq = data;
  GSourceFunc done;
  gpointer done_data;

  g_mutex_lock(&lq->lock);
  done = lq->sync_done;
  done_data = lq->sync_data;
  lq->sync_done = NULL;
  lq->sync_pending = 0;
  if (lq->sync_deadline != NULL) {
    g_source_destroy(lq->sync_deadline);
    g_clear_pointer(&lq->sync_deadline, g_source_unref);
  }
  g_mutex_unlock(&lq->lock);
  if (done != NULL)
    done(done_data);
  return G_SOURCE_REMOVE;
}

gboolean
hmmvd_libvirt_qmp_sync_begin(HmmvdLibvirtQmp *lq, guint wait_ms, GSourceFunc done,
                             gpointer data)
{
  gint64 now = g_get_monotonic_time();
  GHashTableIter iter;
  gpointer value;
  guint sent = 0;

  g_mutex_lock(&lq->lock);
  lq->round++;
  g_hash_table_iter_init(&iter, lq->workers);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    Worker *w = value;
    Transport fake = { .name = w->name, .id = w->id };
    Job *job;

    g_clear_pointer(&w->sync, job_unref);
    /* a domain stuck in an exchange fails its harvest at once (exchange()) */
    if (!w->tracking || w->users == 0 || worker_stuck(w, now))
      continue;
    job = job_new(lq, &fake, sync_command, KIND_SYNC);
    job->round = lq->round;
    if (w->current != NULL || !g_queue_is_empty(&w->jobs)) {
      /* another exchange first (a start-up, a stop, a slow sync): this interval's harvest
       * gets no data (exchange()) */
      job_unref(job);
      continue;
    }
    if (!worker_queue(lq, w, job, NULL)) {
      job_unref(job);
      continue;
    }
    w->sync = job;                             /* the reference job_new gave */
    w->sync_round = lq->round;
    sent++;
  }
  if (sent == 0) {
    g_mutex_unlock(&lq->lock);
    return FALSE;
  }
  lq->sync_pending = sent;
  lq->sync_done = done;
  lq->sync_data = data;
  g_clear_pointer(&lq->sync_context, g_main_context_unref);
  lq->sync_context = g_main_context_ref_thread_default();
  lq->sync_deadline = g_timeout_source_new(MIN(MAX(wait_ms, 1), lq->timeout_ms));
  g_source_set_callback(lq->sync_deadline, sync_finish, g_atomic_rc_box_acquire(lq),
                        (GDestroyNotify)hmmvd_libvirt_qmp_unref);
  g_source_attach(lq->sync_deadline, lq->sync_context);
  g_mutex_unlock(&lq->lock);
  return TRUE;
}

void
hmmvd_libvirt_qmp_sync_end(HmmvdLibvirtQmp *lq)
{
  GHashTableIter iter;
  gpointer value;

  g_mutex_lock(&lq->lock);
  lq->round++;                                 /* late answers count for nothing now */
  lq->sync_done = NULL;                        /* and a round under way calls nobody */
  lq->sync_pending = 0;
  if (lq->sync_deadline != NULL) {
    g_source_destroy(lq->sync_deadline);
    g_clear_pointer(&lq->sync_deadline, g_source_unref);
  }
  g_hash_table_iter_init(&iter, lq->workers);
  while (g_hash_table_iter_next(&iter, NULL, &value))
    g_clear_pointer(&((Worker *)value)->sync, job_unref);
  g_mutex_unlock(&lq->lock);
}

/* ------------------------------------------------------------------------------------------
 * The registry
 */

HmmvdLibvirtQmp *
hmmvd_libvirt_qmp_new(guint timeout_ms)
{
  HmmvdLibvirtQmp *lq = g_atomic_rc_box_new0(HmmvdLibvirtQmp);

  if (g_once_init_enter(&sync_command)) {
    char *command = hmmv_qmp_build_command("hmmv-sync", NULL);

    g_once_init_leave(&sync_command, command);
  }
  g_mutex_init(&lq->lock);
  g_cond_init(&lq->done);
  lq->timeout_ms = MAX(timeout_ms, 1);
  lq->workers = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)worker_free);
  return lq;
}

void
hmmvd_libvirt_qmp_set_connection(HmmvdLibvirtQmp *lq, virConnectPtr conn)
{
  char *uri = conn != NULL ? virConnectGetURI(conn) : NULL;
  virConnectPtr old;

  if (conn != NULL)
    virConnectRef(conn);
  g_mutex_lock(&lq->lock);
  old = lq->conn;
  lq->conn = conn;
  g_free(lq->uri);
  lq->uri = g_strdup(uri);    /* libvirt's string goes with free() */
  lq->conn_generation++;
  g_mutex_unlock(&lq->lock);
  free(uri);
  if (old != NULL)
    virConnectClose(old);
}

static void
registry_clear(gpointer data)
{
  HmmvdLibvirtQmp *lq = data;

  /* every worker is gone: each thread and transport held a reference */
  g_hash_table_unref(lq->workers);
  if (lq->conn != NULL)
    virConnectClose(lq->conn);
  g_free(lq->uri);
  if (lq->sync_deadline != NULL) {
    g_source_destroy(lq->sync_deadline);
    g_source_unref(lq->sync_deadline);
  }
  if (lq->sync_context != NULL)
    g_main_context_unref(lq->sync_context);
  g_cond_clear(&lq->done);
  g_mutex_clear(&lq->lock);
}

void
hmmvd_libvirt_qmp_unref(HmmvdLibvirtQmp *lq)
{
  if (lq != NULL)
    g_atomic_rc_box_release_full(lq, registry_clear);
}
