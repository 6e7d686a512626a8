/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mover vtable and the wrappers the core calls: they batch the backend calls, check every
 * per-page status, count each failure kind into the VM's HmmvMoveStats and record where each
 * page really is. Cooldown bits are the planner's and are left alone.
 */
#include <hmmv/error.h>
#include <hmmv/mover.h>

#include <errno.h>

/* 512 pages per call: move_pages(2) costs ~62 us for a lone page but ~3.9 us/page in a
 * batch of 512 (tests/bench/tier-model.md); larger batches gain little and hold mmap_lock longer. */
#define DEFAULT_BATCH_PAGES 512

HmmvMover *
hmmv_mover_new(const struct hmmv_mover_ops *ops, gpointer priv, const HmmvTopology *topo,
               GError **error)
{
  HmmvMover *mover;

  if (ops == NULL || ops->name == NULL || ops->query == NULL || ops->move == NULL ||
      topo == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "mover %s: needs a name, query and move hooks and a topology",
                ops != NULL && ops->name != NULL ? ops->name : "(unnamed)");
    /* Ownership of priv was handed over: release it even though registration failed. */
    if (ops != NULL && ops->destroy != NULL) {
      HmmvMover doomed = { .ops = ops, .priv = priv, .topo = topo };

      ops->destroy(&doomed);
    }
    return NULL;
  }
  mover = g_new0(HmmvMover, 1);
  mover->ops = ops;
  mover->priv = priv;
  mover->topo = topo;
  mover->batch_pages = DEFAULT_BATCH_PAGES;
  return mover;
}

void
hmmv_mover_free(HmmvMover *mover)
{
  if (mover == NULL)
    return;
  if (mover->ops->destroy != NULL)
    mover->ops->destroy(mover);
  g_free(mover);
}

const char *
hmmv_mover_get_name(const HmmvMover *mover)
{
  return mover->ops->name;
}

void
hmmv_mover_touch(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc)
{
  g_return_if_fail(acc->nr_pages == hmmv_vm_get_nr_pages(vm));
  if (mover->ops->touch != NULL)
    mover->ops->touch(mover, vm, acc);
}

static guint
batch_size(const HmmvMover *mover)
{
  return mover->batch_pages > 0 ? mover->batch_pages : DEFAULT_BATCH_PAGES;
}

static gboolean
check_pages(HmmvVm *vm, const guint64 *pages, gsize nr_pages, GError **error)
{
  guint64 vm_pages = hmmv_vm_get_nr_pages(vm);

  for (gsize i = 0; i < nr_pages; i++) {
    if (pages[i] >= vm_pages) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "vm %s: page %" G_GUINT64_FORMAT " is past its %" G_GUINT64_FORMAT " pages",
                  hmmv_vm_get_name(vm), pages[i], vm_pages);
      return FALSE;
    }
  }
  return TRUE;
}

/* Records a page on node_id; FALSE (and the page unknown) when topo does not know the node. */
static gboolean
record_node(HmmvMover *mover, HmmvVm *vm, guint64 page, int node_id)
{
  const HmmvNode *node = hmmv_topology_lookup(mover->topo, node_id);

  if (node == NULL || node_id > HMMV_PLACE_MAX_NODE_ID) {
    hmmv_vm_set_page_node(vm, page, -1, HMMV_TIER_SLOW);
    return FALSE;
  }
  hmmv_vm_set_page_node(vm, page, node_id, node->tier);
  return TRUE;
}

static void
count_errno(HmmvMoveStats *stats, int status)
{
  switch (-status) {
  case ENOENT:
    stats->not_present++;
    break;
  case EBUSY:
  case EAGAIN:
    stats->busy++;
    break;
  case ENOMEM:
    stats->no_memory++;
    break;
  case EFAULT:
    stats->fault++;
    break;
  case EACCES:
  case EPERM:
  case EINVAL:
    stats->access++;
    break;
  default:
    stats->other++;
    break;
  }
}

gboolean
hmmv_mover_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                 GError **error)
{
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  g_autofree int *status = NULL;
  gsize batch = batch_size(mover);

  if (!check_pages(vm, pages, nr_pages, error))
    return FALSE;
  status = g_new(int, MIN(batch, MAX(nr_pages, 1)));
  for (gsize start = 0; start < nr_pages; start += batch) {
    gsize n = MIN(batch, nr_pages - start);

    if (!mover->ops->query(mover, vm, pages + start, n, status, error)) {
      stats->call_failures++;
      g_prefix_error(error, "vm %s: query: ", hmmv_vm_get_name(vm));
      return FALSE;
    }
    for (gsize i = 0; i < n; i++) {
      if (status[i] < 0)
        hmmv_vm_set_page_node(vm, pages[start + i], -1, HMMV_TIER_SLOW);
      else if (!record_node(mover, vm, pages[start + i], status[i]))
        stats->other++;
    }
  }
  return TRUE;
}

/* One batch's outcome; returns the pages now on dest_node. */
static guint64
account_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize n, int dest_node,
             HmmvTier dest_tier, const int *status)
{
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  guint64 on_dest = 0;

  for (gsize i = 0; i < n; i++) {
    if (status[i] == dest_node) {
      /* Promoted/demoted count real migrations, not pages that already were there. */
      if (hmmv_vm_get_page_node(vm, pages[i]) != dest_node) {
        if (dest_tier == HMMV_TIER_DRAM)
          stats->promoted++;
        else
          stats->demoted++;
      }
      hmmv_vm_set_page_node(vm, pages[i], dest_node, dest_tier);
      on_dest++;
    } else if (status[i] >= 0) {
      stats->other++;
      record_node(mover, vm, pages[i], status[i]);
    } else {
      count_errno(stats, status[i]);
      if (status[i] == -ENOENT)
        hmmv_vm_set_page_node(vm, pages[i], -1, HMMV_TIER_SLOW);
    }
  }
  return on_dest;
}

gboolean
hmmv_mover_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                int dest_node, guint64 *moved, GError **error)
{
  const HmmvNode *dest = hmmv_topology_lookup(mover->topo, dest_node);
  g_autofree int *status = NULL;
  gsize batch = batch_size(mover);
  guint64 on_dest = 0;

  if (moved != NULL)
    *moved = 0;
  if (dest == NULL || dest_node > HMMV_PLACE_MAX_NODE_ID) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: move to node %d: no such node in the topology (or id above %d)",
                hmmv_vm_get_name(vm), dest_node, HMMV_PLACE_MAX_NODE_ID);
    return FALSE;
  }
  if (!check_pages(vm, pages, nr_pages, error))
    return FALSE;
  status = g_new(int, MIN(batch, MAX(nr_pages, 1)));
  for (gsize start = 0; start < nr_pages; start += batch) {
    gsize n = MIN(batch, nr_pages - start);

    if (!mover->ops->move(mover, vm, pages + start, n, dest_node, status, error)) {
      hmmv_vm_get_move_stats(vm)->call_failures++;
      g_prefix_error(error, "vm %s: move to node %d: ", hmmv_vm_get_name(vm), dest_node);
      if (moved != NULL)
        *moved = on_dest;
      return FALSE;
    }
    on_dest += account_move(mover, vm, pages + start, n, dest_node, dest->tier, status);
  }
  if (moved != NULL)
    *moved = on_dest;
  return TRUE;
}
