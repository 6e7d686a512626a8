/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-sync sent ahead of the interval to every tracking domain (libvirt-qmp.h), and the
 * round trips' figures (an info line every STATS_ROUNDS rounds).
 */
#include "libvirt-qmp-private.h"

/* Sync rounds summed up in one info line (hmmvd's QMP round trips, for operators and the
 * fleet benchmark, tests/bench/libvirt-fleet.sh). */
#define STATS_ROUNDS 30

static gboolean sync_finish(gpointer data);

/* Under the lock: the last sync of a round is done, the round is over. */
void
hmmvd_lq_sync_round_done(HmmvdLibvirtQmp *lq)
{
  GSource *idle = g_idle_source_new();

  g_source_set_callback(idle, sync_finish, g_atomic_rc_box_acquire(lq),
                        (GDestroyNotify)hmmvd_libvirt_qmp_unref);
  g_source_attach(idle, lq->sync_context);
  g_source_unref(idle);
}

/* ------------------------------------------------------------------------------------------
 * hmmv-sync ahead of the interval
 */

/* Under the lock: a round is over (sync_pending: those that did not answer in it). Every
 * STATS_ROUNDS rounds an info line sums them up. */
static void
stats_round_over(HmmvdLibvirtQmp *lq)
{
  gint64 end = lq->round_done_us != 0 ? lq->round_done_us : g_get_monotonic_time();
  gint64 took = end - lq->round_start_us;

  lq->stat_rounds++;
  lq->stat_missed += lq->sync_pending;
  lq->stat_round_sum_us += took;
  lq->stat_round_max_us = MAX(lq->stat_round_max_us, took);
  if (lq->stat_rounds < STATS_ROUNDS)
    return;
  g_info("libvirt QMP: %u hmmv-sync rounds of up to %u domains: mean %.1f ms, slowest round "
         "%.1f ms, slowest exchange %.1f ms, %u not answered in their round; %u QMP threads "
         "(pool of %u, %u set aside, %u ever), %u libvirt connections of theirs",
         lq->stat_rounds, lq->stat_domains, lq->stat_round_sum_us / 1000.0 / lq->stat_rounds,
         lq->stat_round_max_us / 1000.0, lq->stat_exchange_max_us / 1000.0, lq->stat_missed,
         lq->active + lq->aside, lq->pool_size, lq->aside, lq->aside_total, lq->connections);
  lq->stat_rounds = lq->stat_domains = lq->stat_missed = 0;
  lq->stat_round_sum_us = lq->stat_round_max_us = lq->stat_exchange_max_us = 0;
}

/* Under the lock, iterating lq->workers: a domain's sync sent ahead is dropped (cancelled if
 * no thread took it yet); the domain goes if nothing else holds it. */
static void
sync_drop(HmmvdLibvirtQmp *lq, GHashTableIter *iter, Worker *w)
{
  if (w->sync == NULL)
    return;
  hmmvd_lq_job_cancel(lq, w, w->sync);
  g_clear_pointer(&w->sync, hmmvd_lq_job_unref);
  if (w->users == 0 && w->current == NULL && g_queue_is_empty(&w->jobs) && !w->ready)
    g_hash_table_iter_remove(iter);            /* frees it */
}

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
  if (done != NULL)
    stats_round_over(lq);
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
  gboolean exhausted;

  g_mutex_lock(&lq->lock);
  lq->round++;
  /* no thread to send anything until a hung QEMU answers: no round (the interval would wait
   * it out for nothing), each harvest fails BUSY at once (exchange()) */
  exhausted = hmmvd_lq_pool_exhausted(lq);
  g_hash_table_iter_init(&iter, lq->workers);
  while (g_hash_table_iter_next(&iter, NULL, &value)) {
    Worker *w = value;
    Transport fake = { .name = w->name, .id = w->id };
    Job *job;

    sync_drop(lq, &iter, w);
    /* a domain stuck in an exchange fails its harvest at once (exchange()) */
    if (exhausted || !w->tracking || w->users == 0 || hmmvd_lq_worker_stuck(lq, w, now))
      continue;
    job = hmmvd_lq_job_new(lq, &fake, hmmvd_lq_sync_command, KIND_SYNC);
    job->round = lq->round;
    if (w->current != NULL || !g_queue_is_empty(&w->jobs)) {
      /* another exchange first (a start-up, a stop, a slow sync): this interval's harvest
       * gets no data (exchange()) */
      hmmvd_lq_job_unref(job);
      continue;
    }
    hmmvd_lq_worker_queue(lq, w, job);
    w->sync = job;                             /* the reference hmmvd_lq_job_new gave */
    w->sync_round = lq->round;
    sent++;
  }
  if (sent == 0) {
    g_mutex_unlock(&lq->lock);
    return FALSE;
  }
  lq->sync_pending = sent;
  lq->round_start_us = now;
  lq->round_done_us = 0;
  lq->stat_domains = MAX(lq->stat_domains, sent);
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
    sync_drop(lq, &iter, value);
  g_mutex_unlock(&lq->lock);
}

