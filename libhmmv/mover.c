/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mover vtable and the wrappers the core calls: they batch the backend calls, check every
 * per-page status, count each failure kind into the VM's HmmvMoveStats and record where each
 * page really is: after a short or failed move_pages(2) call the status array is not
 * believed (mover.h says why) and the pages it left unreported are queried. Cooldown bits
 * are the planner's and are left alone.
 */
#include <hmmv/error.h>
#include <hmmv/mover.h>

#include <errno.h>
#include <string.h>

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

guint64
hmmv_mover_clock_ns(HmmvMover *mover)
{
  if (mover->ops->clock_ns != NULL)
    return mover->ops->clock_ns(mover);
  return (guint64)g_get_monotonic_time() * 1000u;
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

/* The backoff cause of a per-page errno; -1 when the failure is not the page's own (not
 * present, no mapping, a full node). */
static int
backoff_cause(int status)
{
  switch (-status) {
  case ENOENT:
  case EFAULT:
  case ENOMEM:
    return -1;
  case EBUSY:
  case EAGAIN:
    return HMMV_UNMOVABLE_BUSY;
  case EACCES:
  case EPERM:
    return HMMV_UNMOVABLE_SHARED;
  default:
    return HMMV_UNMOVABLE_OTHER;
  }
}

/* A per-page errno from a move: counted, and the page backed off when it is its own. */
static void
page_failed(HmmvVm *vm, guint64 page, int status)
{
  int cause = backoff_cause(status);

  count_errno(hmmv_vm_get_move_stats(vm), status);
  if (cause >= 0)
    hmmv_vm_note_move_failed(vm, page, (HmmvUnmovableCause)cause);
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

/* A page the backend reports on dest_node: a migration unless the record had it there. */
static void
record_on_dest(HmmvVm *vm, guint64 page, int dest_node, HmmvTier dest_tier)
{
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);

  /* Promoted/demoted count real migrations, not pages that already were there. */
  if (hmmv_vm_get_page_node(vm, page) != dest_node) {
    if (dest_tier == HMMV_TIER_DRAM)
      stats->promoted++;
    else
      stats->demoted++;
  }
  hmmv_vm_set_page_node(vm, page, dest_node, dest_tier);
  hmmv_vm_note_moved(vm, page);
}

/* A status the wrapper does not believe: not written, or -EBUSY, which a THP's other
 * subpages read although they moved with it (mm/migrate.c: the folio is already isolated). */
static gboolean
status_needs_query(int status)
{
  return status == HMMV_MOVE_STATUS_UNWRITTEN || status == -EBUSY || status == -EAGAIN;
}

/* A status the kernel wrote and that is final; returns TRUE when the page is on dest_node. */
static gboolean
account_status(HmmvMover *mover, HmmvVm *vm, guint64 page, int dest_node, HmmvTier dest_tier,
               int status)
{
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);

  if (status == dest_node) {
    record_on_dest(vm, page, dest_node, dest_tier);
    return TRUE;
  }
  if (status >= 0) {
    stats->other++;
    record_node(mover, vm, page, status);
  } else {
    page_failed(vm, page, status);
    if (status == -ENOENT)
      hmmv_vm_set_page_node(vm, page, -1, HMMV_TIER_SLOW);
  }
  return FALSE;
}

/* At most this many backend calls per batch: after a short call the pages it never reached
 * are tried again while each call settles at least one page. A pinned page stops the
 * kernel's call only at the end of its group, so one retry usually finishes the batch. */
#define MAX_CALLS_PER_BATCH 4

typedef struct {
  int *status;              /* batch entries each */
  guint64 *todo;
  guint64 *asked;
  int *asked_status;
  int *query_status;
} BatchScratch;

/* One batch, with the retries above. Returns FALSE only for a whole-call failure other than
 * a full node; *full is set when the node was full (ENOMEM). Adds to *on_dest. */
static gboolean
move_batch(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize n, int dest_node,
           HmmvTier dest_tier, BatchScratch *sc, guint64 *on_dest, gboolean *full,
           GError **error)
{
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  gsize nr_todo = n;

  memcpy(sc->todo, pages, n * sizeof(guint64));
  for (guint call = 1;; call++) {
    g_autoptr(GError) call_error = NULL;
    gsize nr_asked = 0, nr_left = 0;
    gssize rc;

    for (gsize i = 0; i < nr_todo; i++)
      sc->status[i] = HMMV_MOVE_STATUS_UNWRITTEN;
    rc = mover->ops->move(mover, vm, sc->todo, nr_todo, dest_node, sc->status, &call_error);
    if (rc < 0) {
      if (!g_error_matches(call_error, HMMV_ERROR, HMMV_ERROR_NO_SPACE)) {
        stats->call_failures++;
        g_propagate_error(error, g_steal_pointer(&call_error));
        return FALSE;
      }
      *full = TRUE;
    }
    for (gsize i = 0; i < nr_todo; i++) {
      if (status_needs_query(sc->status[i])) {
        sc->asked[nr_asked] = sc->todo[i];
        sc->asked_status[nr_asked++] = sc->status[i];
      } else if (account_status(mover, vm, sc->todo[i], dest_node, dest_tier, sc->status[i])) {
        (*on_dest)++;
      }
    }
    if (nr_asked == 0)
      return TRUE;
    /* The placement of exactly those pages, from the backend, not from the status array. */
    if (!mover->ops->query(mover, vm, sc->asked, nr_asked, sc->query_status, error)) {
      stats->call_failures++;
      return FALSE;
    }
    for (gsize j = 0; j < nr_asked; j++) {
      guint64 page = sc->asked[j];
      int where = sc->query_status[j];

      if (where == dest_node) {
        record_on_dest(vm, page, dest_node, dest_tier);
        (*on_dest)++;
        continue;
      }
      if (where < 0)
        hmmv_vm_set_page_node(vm, page, -1, HMMV_TIER_SLOW);
      else
        record_node(mover, vm, page, where);
      if (where < 0 || sc->asked_status[j] != HMMV_MOVE_STATUS_UNWRITTEN)
        page_failed(vm, page, where < 0 ? where : sc->asked_status[j]);
      else
        sc->todo[nr_left++] = page;    /* unreported and still elsewhere: try again? */
    }
    if (nr_left == 0)
      return TRUE;
    if (*full || rc <= 0 || nr_left >= nr_todo || call == MAX_CALLS_PER_BATCH) {
      /* Not migrated: for lack of room on a full node; otherwise the kernel's migration
       * failed (a pinned page, an elevated refcount), counted with the busy pages. A backend
       * that returned 0 with statuses unwritten is counted as other. */
      if (*full) {
        stats->no_memory += nr_left;
        for (gsize j = 0; j < nr_left; j++)
          hmmv_vm_note_move_no_room(vm, sc->todo[j]);
        return TRUE;
      }
      for (gsize j = 0; j < nr_left; j++) {
        if (rc > 0) {
          stats->busy++;
          hmmv_vm_note_move_failed(vm, sc->todo[j], HMMV_UNMOVABLE_PINNED);
        } else {
          stats->other++;
          hmmv_vm_note_move_failed(vm, sc->todo[j], HMMV_UNMOVABLE_OTHER);
        }
      }
      return TRUE;
    }
    nr_todo = nr_left;
  }
}

gboolean
hmmv_mover_refresh_thp(HmmvMover *mover, HmmvVm *vm, guint64 first_block, guint64 nr,
                       guint64 *changed, GError **error)
{
  guint64 nr_blocks = hmmv_vm_get_nr_thp_blocks(vm);
  gsize batch = batch_size(mover);
  g_autofree guint64 *first_pages = NULL;
  g_autofree guint8 *is_thp = NULL;

  if (changed != NULL)
    *changed = 0;
  if (mover->ops->query_thp == NULL || nr == 0)
    return TRUE;
  if (first_block > nr_blocks || nr > nr_blocks - first_block) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: THP blocks %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " past its %"
                G_GUINT64_FORMAT, hmmv_vm_get_name(vm), first_block, nr, nr_blocks);
    return FALSE;
  }
  first_pages = g_new(guint64, MIN(batch, nr));
  is_thp = g_new(guint8, MIN(batch, nr));
  for (guint64 start = 0; start < nr; start += batch) {
    gsize n = (gsize)MIN(batch, nr - start);

    for (gsize i = 0; i < n; i++)
      first_pages[i] = hmmv_vm_thp_block_first_page(vm, first_block + start + i, NULL);
    if (!mover->ops->query_thp(mover, vm, first_pages, n, is_thp, error)) {
      g_prefix_error(error, "vm %s: THP state: ", hmmv_vm_get_name(vm));
      return FALSE;
    }
    for (gsize i = 0; i < n; i++)
      if (hmmv_vm_set_thp(vm, first_block + start + i, is_thp[i]) && changed != NULL)
        (*changed)++;
  }
  return TRUE;
}

gboolean
hmmv_mover_refresh_thp_of(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                          guint64 *changed, GError **error)
{
  guint64 last = G_MAXUINT64, total = 0;

  if (changed != NULL)
    *changed = 0;
  if (mover->ops->query_thp == NULL)
    return TRUE;
  for (gsize i = 0; i < nr_pages; i++) {
    guint64 block, n = 0;

    /* lists come in page order within a key: skip repeats of the last block */
    if (!hmmv_vm_page_thp_block(vm, pages[i], &block) || block == last)
      continue;
    last = block;
    if (!hmmv_mover_refresh_thp(mover, vm, block, 1, &n, error))
      return FALSE;
    total += n;
  }
  if (changed != NULL)
    *changed = total;
  return TRUE;
}

/* After a batch: every page of the huge units its entries stood for, from a query (the kernel
 * moved the unit whole, or split a THP and moved its pieces while the node had room). The
 * entry's own page was accounted from its status; the others are counted here. */
static gboolean
settle_units(HmmvMover *mover, HmmvVm *vm, const guint64 *entries, gsize n, int dest_node,
             HmmvTier dest_tier, int *query_status, guint64 *scratch, guint64 *on_dest,
             GError **error)
{
  gsize batch = batch_size(mover);

  for (gsize i = 0; i < n; i++) {
    const HmmvUnit *unit = hmmv_vm_unit_of(vm, entries[i]);
    guint64 first, end, block;
    gboolean thp;

    if (unit == NULL)
      continue;
    first = unit->first_page;
    end = first + unit->nr_pages;
    thp = unit->thp;
    for (guint64 start = first; start < end; start += batch) {
      gsize k = (gsize)MIN(batch, end - start), m = 0;

      for (gsize j = 0; j < k; j++)
        if (start + j != entries[i])
          scratch[m++] = start + j;
      if (!mover->ops->query(mover, vm, scratch, m, query_status, error)) {
        hmmv_vm_get_move_stats(vm)->call_failures++;
        return FALSE;
      }
      for (gsize j = 0; j < m; j++) {
        if (query_status[j] == dest_node) {
          record_on_dest(vm, scratch[j], dest_node, dest_tier);
          (*on_dest)++;
        } else if (query_status[j] < 0) {
          hmmv_vm_set_page_node(vm, scratch[j], -1, HMMV_TIER_SLOW);
        } else {
          record_node(mover, vm, scratch[j], query_status[j]);
        }
      }
    }
    /* unit is gone if the THP was split: refresh it last */
    if (thp && hmmv_vm_page_thp_block(vm, first, &block) &&
        !hmmv_mover_refresh_thp(mover, vm, block, 1, NULL, error))
      return FALSE;
  }
  return TRUE;
}

/* The entries with each page of a hugetlbfs unit replaced by the unit's first page. Linux 6.1
 * (bookworm's kernel) moves a hugetlbfs page only when move_pages(2) names its head:
 * add_page_for_migration() isolates a huge page only `if (PageHead(page))`, and for any other
 * of its 4 KiB pages reports the node it is on, with success, and moves nothing (found by the
 * testbed's kernel-6.1 test: 512 of 1,024 pages moved). 6.12 takes any page of the folio.
 * THP tails are moved whole by both (6.1 takes compound_head()), so they are left as named. */
static guint64 *
hugetlb_heads(HmmvVm *vm, const guint64 *pages, gsize nr_pages)
{
  guint64 *heads = g_memdup2(pages, nr_pages * sizeof(*pages));

  for (gsize i = 0; i < nr_pages; i++) {
    const HmmvUnit *unit = hmmv_vm_unit_of(vm, pages[i]);

    if (unit != NULL && !unit->thp)
      heads[i] = unit->first_page;
  }
  return heads;
}

gboolean
hmmv_mover_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                int dest_node, guint64 *moved, GError **error)
{
  const HmmvNode *dest = hmmv_topology_lookup(mover->topo, dest_node);
  gsize batch = batch_size(mover), alloc;
  g_autofree int *status = NULL, *asked_status = NULL, *query_status = NULL;
  g_autofree guint64 *todo = NULL, *asked = NULL, *unit_pages = NULL, *heads = NULL;
  g_autofree int *unit_status = NULL;
  guint64 nr_units;
  BatchScratch sc;
  guint64 on_dest = 0;
  gboolean full = FALSE;

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
  alloc = MIN(batch, MAX(nr_pages, 1));
  sc = (BatchScratch){
    .status = status = g_new(int, alloc),
    .todo = todo = g_new(guint64, alloc),
    .asked = asked = g_new(guint64, alloc),
    .asked_status = asked_status = g_new(int, alloc),
    .query_status = query_status = g_new(int, alloc),
  };
  hmmv_vm_get_units(vm, &nr_units);
  if (nr_units > 0) {
    unit_pages = g_new(guint64, batch);
    unit_status = g_new(int, batch);
    pages = heads = hugetlb_heads(vm, pages, nr_pages);
  }
  for (gsize start = 0; start < nr_pages; start += batch) {
    gsize n = MIN(batch, nr_pages - start);

    if (full) {
      /* The node had no room for the last batch; the later ones are not tried, and their
       * pages keep the node they are recorded on. */
      hmmv_vm_get_move_stats(vm)->no_memory += n;
      for (gsize i = 0; i < n; i++)
        hmmv_vm_note_move_no_room(vm, pages[start + i]);
      continue;
    }
    if (!move_batch(mover, vm, pages + start, n, dest_node, dest->tier, &sc, &on_dest, &full,
                    error) ||
        (nr_units > 0 && !settle_units(mover, vm, pages + start, n, dest_node, dest->tier,
                                       unit_status, unit_pages, &on_dest, error))) {
      g_prefix_error(error, "vm %s: move to node %d: ", hmmv_vm_get_name(vm), dest_node);
      if (moved != NULL)
        *moved = on_dest;
      return FALSE;
    }
  }
  if (moved != NULL)
    *moved = on_dest;
  return TRUE;
}
