/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "gate-mover.h"

#include <time.h>

typedef struct {
  HmmvMover *sim;
  guint64 ns_per_page;
  GMutex lock;
  GCond cond;
  gboolean closed;
  guint blocked;
  guint64 calls;
} Gate;

static gboolean
gate_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int *status,
           GError **error)
{
  Gate *gate = mover->priv;

  return gate->sim->ops->query(gate->sim, vm, pages, nr_pages, status, error);
}

static gssize
gate_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node,
          int *status, GError **error)
{
  Gate *gate = mover->priv;

  g_mutex_lock(&gate->lock);
  gate->calls++;
  if (gate->closed) {
    gate->blocked++;
    g_main_context_wakeup(NULL);
    while (gate->closed)
      g_cond_wait(&gate->cond, &gate->lock);
    gate->blocked--;
  }
  g_mutex_unlock(&gate->lock);
  if (gate->ns_per_page > 0) {
    guint64 ns = gate->ns_per_page * nr_pages;
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
                           .tv_nsec = (long)(ns % 1000000000u) };

    while (nanosleep(&ts, &ts) != 0)
      ;
  }
  return gate->sim->ops->move(gate->sim, vm, pages, nr_pages, dest_node, status, error);
}

static void
gate_touch(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc)
{
  Gate *gate = mover->priv;

  hmmv_mover_touch(gate->sim, vm, acc);
}

/* The inner sim's charged cost, not the time a call was held at the gate or slept: the core
 * learns the modelled speed, and a test that holds the gate does not teach it a slow mover. */
static guint64
gate_clock_ns(HmmvMover *mover)
{
  Gate *gate = mover->priv;

  return hmmv_mover_clock_ns(gate->sim);
}

static void
gate_destroy(HmmvMover *mover)
{
  Gate *gate = mover->priv;

  hmmv_mover_free(gate->sim);
  g_mutex_clear(&gate->lock);
  g_cond_clear(&gate->cond);
  g_free(gate);
}

static const struct hmmv_mover_ops gate_ops = {
  .name = "gate",
  .query = gate_query,
  .move = gate_move,
  .touch = gate_touch,
  .clock_ns = gate_clock_ns,
  .destroy = gate_destroy,
};

HmmvMover *
hmmv_gate_mover_new(const HmmvTopology *topo, guint64 ns_per_page, GError **error)
{
  Gate *gate;
  HmmvMover *sim = hmmv_sim_mover_new(topo, error);

  if (sim == NULL)
    return NULL;
  gate = g_new0(Gate, 1);
  gate->sim = sim;
  gate->ns_per_page = ns_per_page;
  g_mutex_init(&gate->lock);
  g_cond_init(&gate->cond);
  return hmmv_mover_new(&gate_ops, gate, topo, error);
}

HmmvMover *
hmmv_gate_mover_get_sim(HmmvMover *mover)
{
  return ((Gate *)mover->priv)->sim;
}

void
hmmv_gate_mover_close(HmmvMover *mover)
{
  Gate *gate = mover->priv;

  g_mutex_lock(&gate->lock);
  gate->closed = TRUE;
  g_mutex_unlock(&gate->lock);
}

void
hmmv_gate_mover_open(HmmvMover *mover)
{
  Gate *gate = mover->priv;

  g_mutex_lock(&gate->lock);
  gate->closed = FALSE;
  g_cond_broadcast(&gate->cond);
  g_mutex_unlock(&gate->lock);
}

guint
hmmv_gate_mover_get_blocked(HmmvMover *mover)
{
  Gate *gate = mover->priv;
  guint blocked;

  g_mutex_lock(&gate->lock);
  blocked = gate->blocked;
  g_mutex_unlock(&gate->lock);
  return blocked;
}

guint64
hmmv_gate_mover_get_calls(HmmvMover *mover)
{
  Gate *gate = mover->priv;
  guint64 calls;

  g_mutex_lock(&gate->lock);
  calls = gate->calls;
  g_mutex_unlock(&gate->lock);
  return calls;
}
