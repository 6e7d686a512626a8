/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP pool's insides, shared by libvirt-qmp.c (jobs, pool, transport) and
 * libvirt-qmp-sync.c (hmmv-sync ahead of the interval, figures). Not for other modules.
 */
#pragma once

#include "libvirt-qmp.h"

G_BEGIN_DECLS

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
  gint64 sent_us;               /* queued, monotonic */
  gint64 started_us;            /* taken by a pool thread (0: still queued) */
  guint64 round;                /* KIND_SYNC sent ahead: its sync round, else 0 */
  /* results, under lq->lock */
  gboolean done;
  char *reply;
  GError *error;
} Job;

/* A domain's exchanges: queued in order, one under way at a time on some pool thread. */
typedef struct {
  char *uuid;
  char *name;                   /* of the newest transport, with its run id */
  int id;
  guint users;                  /* transports */
  GQueue jobs;                  /* references */
  gboolean ready;               /* listed in lq->ready (jobs queued, none under way) */
  Job *current;                 /* the exchange under way, or NULL */
  gboolean tracking;            /* hmmv-start succeeded and no hmmv-stop since */
  Job *sync;                    /* sent ahead for round sync_round (a reference) */
  guint64 sync_round;
} Worker;

/* A pool thread, with its own libvirt connection. */
typedef struct {
  HmmvdLibvirtQmp *lq;          /* a reference */
  Job *current;                 /* under way, or NULL */
  gboolean aside;               /* its exchange is overdue: it no longer counts in the pool */
} PoolThread;

struct _HmmvdLibvirtQmp {
  GMutex lock;
  GCond done;                   /* some job is done */
  guint timeout_ms;
  virConnectPtr conn;
  char *uri;                    /* conn's, for the workers' own connections */
  guint64 conn_generation;      /* counts set_connection calls */
  GHashTable *workers;          /* uuid -> Worker */
  /* the pool */
  guint pool_size;              /* most threads active at once */
  guint active;                 /* threads alive and not set aside */
  guint idle;                   /* of them, not under an exchange */
  guint aside;                  /* threads set aside: their exchange overdue */
  GQueue ready;                 /* Worker: jobs queued, none under way */
  GCond wake;                   /* work for idle threads */
  GPtrArray *busy;              /* PoolThread under an exchange, set aside or not */
  HmmvdLibvirtQmpRunner runner; /* tests: instead of libvirt */
  gpointer runner_data;
  /* the sync round under way */
  guint64 round;
  guint sync_pending;
  GSourceFunc sync_done;
  gpointer sync_data;
  GMainContext *sync_context;
  GSource *sync_deadline;
  gint64 round_start_us;        /* the round under way: sent */
  gint64 round_done_us;         /* its last answer, or 0 */
  /* figures, under the lock */
  guint connections;            /* the pool threads' libvirt connections open */
  guint aside_total;            /* threads ever set aside */
  guint stat_rounds;            /* since the last info line */
  guint stat_domains;           /* most domains asked in one of them */
  guint stat_missed;            /* syncs not answered by their round's end */
  gint64 stat_round_sum_us;
  gint64 stat_round_max_us;
  gint64 stat_exchange_max_us;
};

typedef struct {
  HmmvdLibvirtQmp *lq;          /* a reference */
  Worker *worker;
  char *name;
  int id;
} Transport;

extern char *hmmvd_lq_sync_command;

/* All under lq->lock. */
Job *hmmvd_lq_job_new(HmmvdLibvirtQmp *lq, const Transport *t, const char *command,
                      JobKind kind);
void hmmvd_lq_job_unref(Job *job);
void hmmvd_lq_job_cancel(HmmvdLibvirtQmp *lq, Worker *w, Job *job);
void hmmvd_lq_worker_queue(HmmvdLibvirtQmp *lq, Worker *w, Job *job);
gboolean hmmvd_lq_worker_stuck(const HmmvdLibvirtQmp *lq, const Worker *w, gint64 now);
/* Every thread the pool may have is set aside (overdue ones set aside first): no job can be
 * sent until a hung QEMU answers. */
gboolean hmmvd_lq_pool_exhausted(HmmvdLibvirtQmp *lq);
void hmmvd_lq_sync_round_done(HmmvdLibvirtQmp *lq);

G_END_DECLS
