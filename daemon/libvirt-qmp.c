/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * QMP to libvirt domains on a bounded pool of threads (see libvirt-qmp.h).
 *
 * One lock (lq->lock) guards the pool, the domains' queues and every job's result; callers
 * wait on one condition (lq->done) for their job, with a deadline. A domain with queued jobs
 * and no exchange under way waits in lq->ready; a pool thread takes it, runs its next job over
 * the thread's own libvirt connection, and puts it back if more are queued, so a domain's
 * exchanges stay in order and one at a time. At most pool_size threads live, set-aside ones
 * included. One whose exchange has been under way for longer than the deadline is set aside
 * (its QEMU does not answer; libvirt waits without limit): its domain gets nothing more until
 * the call returns, and the other threads serve the healthy domains. With pool_size QEMUs hung
 * at once no thread is left: the others' exchanges fail BUSY at once (never sent, no harvest),
 * so hmmvd never holds more than pool_size of libvirtd's workers. A set-aside thread whose call
 * came back rejoins the pool; an idle thread ends after 10 s. A job's caller waits until its
 * deadline, and once a thread took the job, until the job's own deadline from then: only a
 * QEMU that had the whole deadline is said to time out. Nothing that may block on libvirtd
 * (a call, a connection's close) runs under the lock.
 */
#include "libvirt-qmp-private.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An idle pool thread ends after this (a new one starts when there is work). */
#define POOL_IDLE_US (10 * G_TIME_SPAN_SECOND)
/* Each pool thread talks to libvirtd over a connection of its own, opened to the URI of the
 * daemon's connection: with libvirt 9.0, while one thread's call waited on a QEMU that does not
 * answer (SIGSTOP), other threads' calls over the same connection came back only when the
 * keepalive (5 s) woke the connection, so healthy domains missed their 5 s deadlines
 * (measured: worst 5.0 s over a shared connection, 0.4 s with one per domain; libvirt 11.3
 * did not show it). A thread makes one call at a time. Its keepalive, as the daemon's
 * (libvirt.c). */
#define WORKER_KEEPALIVE_INTERVAL_S 5
#define WORKER_KEEPALIVE_COUNT 3

char *hmmvd_lq_sync_command;    /* {"execute":"hmmv-sync"}, as hmmv_qmp_execute builds it */

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
 * Jobs, domains and the pool
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

Job *
hmmvd_lq_job_new(HmmvdLibvirtQmp *lq, const Transport *t, const char *command, JobKind kind)
{
  Job *job = g_new0(Job, 1);

  job->refs = 1;
  job->kind = kind;
  job->command = g_strdup(command);
  job->name = g_strdup(t->name);
  job->id = t->id;
  job->fd = -1;
  job->sent_us = g_get_monotonic_time();
  job->deadline_us = job->sent_us + (gint64)lq->timeout_ms * 1000;
  return job;
}

static Job *
job_ref(Job *job)
{
  g_atomic_int_inc(&job->refs);
  return job;
}

void
hmmvd_lq_job_unref(Job *job)
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

/* Pool thread, without the lock: one exchange through libvirt. */
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
    hmmvd_lq_job_unref(job);
  hmmvd_lq_job_unref(w->sync);
  g_free(w->uuid);
  g_free(w->name);
  g_free(w);
}

/* Under the lock: a domain nobody uses, with nothing queued or under way, goes. */
static void
worker_maybe_free(HmmvdLibvirtQmp *lq, Worker *w)
{
  if (w->users == 0 && w->current == NULL && g_queue_is_empty(&w->jobs) && !w->ready)
    g_hash_table_remove(lq->workers, w->uuid);   /* frees it */
}

/* Under the lock: the exchange under way has been so for longer than the deadline (a job
 * still queued behind others is not: it was never sent). */
static gboolean
job_overdue(const HmmvdLibvirtQmp *lq, const Job *job, gint64 now)
{
  return job != NULL && job->started_us != 0 &&
         now >= job->started_us + (gint64)lq->timeout_ms * 1000;
}

gboolean
hmmvd_lq_worker_stuck(const HmmvdLibvirtQmp *lq, const Worker *w, gint64 now)
{
  return job_overdue(lq, w->current, now);
}

/* Under the lock: a job not taken by a pool thread yet leaves its domain's queue (its caller
 * gave up on it: it must not reach QEMU later). */
void
hmmvd_lq_job_cancel(HmmvdLibvirtQmp *lq, Worker *w, Job *job)
{
  if (job->started_us != 0 || job->done || !g_queue_remove(&w->jobs, job))
    return;
  hmmvd_lq_job_unref(job);                              /* the queue's reference */
  if (g_queue_is_empty(&w->jobs) && w->ready) {
    g_queue_remove(&lq->ready, w);
    w->ready = FALSE;
  }
}

/* Under the lock: the job's results are in. */
static void
job_finish(HmmvdLibvirtQmp *lq, Worker *w, Job *job)
{
  job->done = TRUE;
  if (job->kind == KIND_START && job->error == NULL) {
    g_autoptr(JsonNode) ret = hmmv_qmp_parse_reply(job->reply, NULL);

    w->tracking = ret != NULL;
  }
  if (job->round != 0 && job->round == lq->round) {
    gint64 now = g_get_monotonic_time();

    lq->stat_exchange_max_us = MAX(lq->stat_exchange_max_us, now - job->sent_us);
    if (lq->sync_pending == 1)
      lq->round_done_us = now;
  }
  if (job->round != 0 && job->round == lq->round && lq->sync_pending > 0 &&
      --lq->sync_pending == 0)
    hmmvd_lq_sync_round_done(lq);
  g_cond_broadcast(&lq->done);
}

static gpointer pool_thread_main(gpointer data);

/* Under the lock: threads whose exchange is overdue are set aside; idle threads are woken
 * for the domains waiting, and threads started while the pool has room. */
static void
pool_kick(HmmvdLibvirtQmp *lq)
{
  gint64 now = g_get_monotonic_time();
  guint ready = g_queue_get_length(&lq->ready);

  for (guint i = 0; i < lq->busy->len; i++) {
    PoolThread *t = g_ptr_array_index(lq->busy, i);

    if (!t->aside && job_overdue(lq, t->current, now)) {
      t->aside = TRUE;
      lq->active--;
      lq->aside++;
      lq->aside_total++;
      g_info("libvirt QMP: domain %s has not answered for over %u ms: its connection is set "
             "aside (%u aside, %u active of %u)", t->current->name, lq->timeout_ms, lq->aside,
             lq->active, lq->pool_size);
    }
  }
  if (ready == 0)
    return;
  if (lq->idle > 0)
    g_cond_broadcast(&lq->wake);
  /* set-aside threads count against the bound: each holds one of libvirtd's workers (its
   * max_workers, 20 by default, serve every client): with 24 QEMUs stopped and no bound, the
   * set-aside threads went to 64 and libvirtd answered no QEMU call of anyone's for over 60 s
   * (tests/bench/libvirt-fleet.sh) */
  while (lq->active + lq->aside < lq->pool_size && ready > lq->idle) {
    g_autoptr(GError) local_error = NULL;
    PoolThread *t = g_new0(PoolThread, 1);
    GThread *thread;

    t->lq = g_atomic_rc_box_acquire(lq);
    thread = g_thread_try_new("hmmvd-libvirt-qmp", pool_thread_main, t, &local_error);
    if (thread == NULL) {
      g_warning("libvirt QMP: cannot start a thread (%u active): %s", lq->active,
                local_error->message);
      hmmvd_libvirt_qmp_unref(t->lq);
      g_free(t);
      return;
    }
    g_thread_unref(thread);
    lq->active++;
    lq->idle++;                                /* until it takes a domain */
  }
}

/* Under the lock: no thread can take a job until a hung QEMU answers (every one allowed is
 * set aside under an overdue exchange). Call after pool_kick(), which sets them aside. */
static gboolean
pool_exhausted(const HmmvdLibvirtQmp *lq)
{
  return lq->active == 0 && lq->aside >= lq->pool_size;
}

gboolean
hmmvd_lq_pool_exhausted(HmmvdLibvirtQmp *lq)
{
  pool_kick(lq);
  return pool_exhausted(lq);
}

/* Under the lock: the earliest time an exchange under way becomes overdue (G_MAXINT64: none). */
static gint64
pool_next_overdue(const HmmvdLibvirtQmp *lq)
{
  gint64 next = G_MAXINT64;

  for (guint i = 0; i < lq->busy->len; i++) {
    const PoolThread *t = g_ptr_array_index(lq->busy, i);

    if (!t->aside)
      next = MIN(next, t->current->started_us + (gint64)lq->timeout_ms * 1000);
  }
  return next;
}

static gpointer
pool_thread_main(gpointer data)
{
  PoolThread *t = data;
  HmmvdLibvirtQmp *lq = t->lq;
  virConnectPtr conn = NULL;    /* this thread's own (see WORKER_KEEPALIVE_INTERVAL_S) */
  guint64 generation = 0;       /* lq->conn_generation it was opened for */
  gboolean counted = TRUE;      /* in lq->active and lq->idle */

  g_mutex_lock(&lq->lock);
  for (;;) {
    Worker *w;
    g_autofree char *uri = NULL;
    Job *job;

    /* the daemon's connection changed (libvirtd restarted) or is gone: so is this one. Closed
     * without the lock and before taking a job: the remote driver's close is a call to
     * libvirtd, which may not answer until keepalive gives up, and meanwhile the main thread
     * takes the lock (is_busy, sync_begin) and no job's deadline runs on it */
    if (conn != NULL && (generation != lq->conn_generation || lq->conn == NULL)) {
      virConnectPtr stale = g_steal_pointer(&conn);

      lq->connections--;
      g_mutex_unlock(&lq->lock);
      virConnectClose(stale);
      g_mutex_lock(&lq->lock);
    }
    w = g_queue_pop_head(&lq->ready);
    if (w == NULL) {
      gint64 until = g_get_monotonic_time() + POOL_IDLE_US;

      if (g_cond_wait_until(&lq->wake, &lq->lock, until) || !g_queue_is_empty(&lq->ready))
        continue;
      break;                                   /* idle for POOL_IDLE_US */
    }
    w->ready = FALSE;
    job = g_queue_pop_head(&w->jobs);          /* a ready domain has one */
    job->started_us = g_get_monotonic_time();
    w->current = job;
    t->current = job;
    lq->idle--;
    g_ptr_array_add(lq->busy, t);
    if (conn == NULL && lq->conn != NULL && lq->runner == NULL) {
      uri = g_strdup(lq->uri);
      generation = lq->conn_generation;
    }
    g_mutex_unlock(&lq->lock);

    if (lq->runner != NULL) {
      job->reply = lq->runner(w->uuid, job->command, lq->runner_data, &job->error);
    } else {
      if (uri != NULL && (conn = virConnectOpen(uri)) != NULL &&
          virConnectSetKeepAlive(conn, WORKER_KEEPALIVE_INTERVAL_S, WORKER_KEEPALIVE_COUNT) < 0)
        g_debug("domain %s: no keepalive on %s: %s", job->name, uri,
                hmmvd_libvirt_last_error_message());
      if (uri != NULL && conn == NULL)
        hmmvd_libvirt_set_error(&job->error, job->name);
      else
        job_run(conn, w->uuid, job);
    }

    g_mutex_lock(&lq->lock);
    if (uri != NULL && conn != NULL)
      lq->connections++;
    g_ptr_array_remove_fast(lq->busy, t);
    t->current = NULL;
    w->current = NULL;
    job_finish(lq, w, job);
    hmmvd_lq_job_unref(job);                            /* the queue's reference */
    if (!g_queue_is_empty(&w->jobs)) {
      w->ready = TRUE;
      g_queue_push_tail(&lq->ready, w);
    } else {
      worker_maybe_free(lq, w);
    }
    if (t->aside) {
      /* its QEMU answered at last: back in the pool if there is room, else this one ends */
      t->aside = FALSE;
      lq->aside--;
      if (lq->active >= lq->pool_size) {
        counted = FALSE;
        break;
      }
      lq->active++;
    }
    lq->idle++;
  }
  if (counted) {
    lq->active--;
    lq->idle--;
  }
  if (conn != NULL)
    lq->connections--;
  pool_kick(lq);                               /* work left for the pool (a rare race) */
  g_mutex_unlock(&lq->lock);
  if (conn != NULL)
    virConnectClose(conn);
  hmmvd_libvirt_qmp_unref(lq);
  g_free(t);
  return NULL;
}

/* Under the lock: queue a job on its domain (the queue takes its own reference); a pool
 * thread runs it in turn. */
void
hmmvd_lq_worker_queue(HmmvdLibvirtQmp *lq, Worker *w, Job *job)
{
  g_queue_push_tail(&w->jobs, job_ref(job));
  if (!w->ready && w->current == NULL) {
    w->ready = TRUE;
    g_queue_push_tail(&lq->ready, w);
  }
  pool_kick(lq);
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
  pool_kick(lq);                               /* sets aside the threads now overdue */
  if (kind == KIND_SYNC && fd < 0 && w->sync != NULL && w->sync_round == lq->round) {
    /* sent ahead by sync_begin, whose round is over: never wait for it here */
    job = g_steal_pointer(&w->sync);
    if (!job->done) {
      if (job_overdue(lq, job, now))
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                    "domain %s: QEMU did not answer hmmv-sync within %u ms (libvirt QMP)",
                    t->name, lq->timeout_ms);
      else if (job->started_us != 0)
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                    "domain %s: QEMU has not answered hmmv-sync yet; no harvest this "
                    "interval", t->name);
      else
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                    "domain %s: hmmv-sync not sent yet (every QMP connection busy); no "
                    "harvest this interval", t->name);
      hmmvd_lq_job_cancel(lq, w, job);
      g_mutex_unlock(&lq->lock);
      hmmvd_lq_job_unref(job);
      return NULL;
    }
  } else if (hmmvd_lq_worker_stuck(lq, w, now)) {
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
  } else if (pool_exhausted(lq)) {
    /* no thread can take it until a hung QEMU answers: not sent, and nobody waits for it */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                "domain %s: not sent: every QMP connection (%u) waits on a QEMU that does not "
                "answer (libvirt QMP)", t->name, lq->pool_size);
    g_mutex_unlock(&lq->lock);
    return NULL;
  } else {
    job = hmmvd_lq_job_new(lq, t, command, kind);
    if (fd >= 0 && (job->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "domain %s: dup: %s", t->name,
                  g_strerror(errno));
      g_mutex_unlock(&lq->lock);
      hmmvd_lq_job_unref(job);
      return NULL;
    }
    hmmvd_lq_worker_queue(lq, w, job);
  }
  /* Until the caller's deadline; a job a thread took by then gets its own full deadline from
   * when it was sent to QEMU (the time it waited for a thread is not its QEMU's doing), so
   * the caller waits at most about twice the deadline. A job not sent yet stops waiting once
   * no thread can take it (every one set aside) or its domain's exchange ahead of it is
   * overdue. Woken when an exchange under way turns overdue too: its thread is set aside
   * then, so a job queued behind a full pool gets a thread. */
  while (!job->done) {
    gint64 until = job->deadline_us;

    if (job->started_us != 0)
      until = MAX(until, job->started_us + (gint64)lq->timeout_ms * 1000);
    now = g_get_monotonic_time();
    if (now >= until)
      break;
    pool_kick(lq);
    if (job->started_us == 0 && (pool_exhausted(lq) || hmmvd_lq_worker_stuck(lq, w, now)))
      break;
    g_cond_wait_until(&lq->done, &lq->lock, MIN(until, pool_next_overdue(lq)));
  }
  if (!job->done && job_overdue(lq, job, now)) {
    /* its QEMU did not answer within a deadline of its own */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                "domain %s: QEMU did not answer within %u ms (libvirt QMP)", t->name,
                lq->timeout_ms);
  } else if (!job->done && hmmvd_lq_worker_stuck(lq, w, now)) {
    /* never sent: queued behind this domain's exchange its QEMU has not answered */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT,
                "domain %s: not sent: QEMU has not answered this domain's exchange ahead of it "
                "for over %u ms (libvirt QMP)", t->name, lq->timeout_ms);
    hmmvd_lq_job_cancel(lq, w, job);           /* never sent later */
  } else if (!job->done) {
    /* never sent (a sent one waits out its own deadline above): not this QEMU's doing */
    if (pool_exhausted(lq))
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                  "domain %s: not sent: every QMP connection (%u) waits on a QEMU that does "
                  "not answer (libvirt QMP)", t->name, lq->pool_size);
    else if (w->current != NULL)
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                  "domain %s: not sent within %u ms: queued behind this domain's exchange "
                  "still under way (libvirt QMP)", t->name, lq->timeout_ms);
    else
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY,
                  "domain %s: not sent within %u ms: every QMP connection was busy with other "
                  "domains (libvirt QMP)", t->name, lq->timeout_ms);
    hmmvd_lq_job_cancel(lq, w, job);
  } else if (job->error != NULL) {
    g_propagate_error(error, g_error_copy(job->error));
  } else {
    reply = g_strdup(job->reply);
  }
  g_mutex_unlock(&lq->lock);
  hmmvd_lq_job_unref(job);
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
  Job *job = hmmvd_lq_job_new(lq, t, command_json, kind);

  g_mutex_lock(&lq->lock);
  if (kind == KIND_STOP)
    t->worker->tracking = FALSE;
  hmmvd_lq_worker_queue(lq, t->worker, job);
  g_mutex_unlock(&lq->lock);
  hmmvd_lq_job_unref(job);
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
  pool_kick(lq);                               /* called periodically (libvirt.c) */
  g_mutex_unlock(&lq->lock);
  return busy;
}

gboolean
hmmvd_libvirt_qmp_is_overdue(HmmvdLibvirtQmp *lq, const char *uuid)
{
  Worker *w;
  gboolean overdue;

  g_mutex_lock(&lq->lock);
  w = g_hash_table_lookup(lq->workers, uuid);
  overdue = w != NULL && hmmvd_lq_worker_stuck(lq, w, g_get_monotonic_time());
  g_mutex_unlock(&lq->lock);
  return overdue;
}

/* ------------------------------------------------------------------------------------------
 * The registry
 */

HmmvdLibvirtQmp *
hmmvd_libvirt_qmp_new(guint timeout_ms, guint pool_size)
{
  HmmvdLibvirtQmp *lq = g_atomic_rc_box_new0(HmmvdLibvirtQmp);

  if (g_once_init_enter(&hmmvd_lq_sync_command)) {
    char *command = hmmv_qmp_build_command("hmmv-sync", NULL);

    g_once_init_leave(&hmmvd_lq_sync_command, command);
  }
  g_mutex_init(&lq->lock);
  g_cond_init(&lq->done);
  lq->timeout_ms = MAX(timeout_ms, 1);
  lq->pool_size = MAX(pool_size, 1);
  g_queue_init(&lq->ready);
  g_cond_init(&lq->wake);
  lq->busy = g_ptr_array_new();
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
  g_ptr_array_unref(lq->busy);
  g_cond_clear(&lq->wake);
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
hmmvd_libvirt_qmp_get_counts(HmmvdLibvirtQmp *lq, guint *active, guint *aside,
                             guint *aside_total, guint *connections)
{
  g_mutex_lock(&lq->lock);
  *active = lq->active;
  *aside = lq->aside;
  *aside_total = lq->aside_total;
  *connections = lq->connections;
  g_mutex_unlock(&lq->lock);
}

void
hmmvd_libvirt_qmp_set_runner(HmmvdLibvirtQmp *lq, HmmvdLibvirtQmpRunner runner, gpointer data)
{
  g_mutex_lock(&lq->lock);
  lq->runner = runner;
  lq->runner_data = data;
  g_mutex_unlock(&lq->lock);
}

void
hmmvd_libvirt_qmp_unref(HmmvdLibvirtQmp *lq)
{
  if (lq != NULL)
    g_atomic_rc_box_release_full(lq, registry_clear);
}
