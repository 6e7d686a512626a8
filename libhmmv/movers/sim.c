/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sim mover: a modelled host with no memory behind it. Each node of the topology holds
 * total_bytes / 4096 pages. The touch hook places a page on its first access as the kernel's
 * first touch does (the DRAM node nearest the VM's CPUs with room, else the nearest slow node
 * with room; lowest id first when the VM's CPUs are unknown;
 * with every node full the page stays unplaced, the model's stand-in for an OOM). Until then
 * query and move report -ENOENT. Every migration is charged ns_per_page.
 *
 * A move is one move_pages(2) call played as mm/migrate.c's do_pages_move plays it (mover.h):
 * pages are looked at in order; a page that cannot be queued (already on the target: its
 * node; not present: -ENOENT; shared: -EACCES; not isolatable: -EBUSY) gets its status and
 * flushes the group queued before it. A flush migrates the group: a pinned page fails and the
 * call returns the count of unmigrated pages plus the pages not looked at yet, with the
 * group's and every later status left unwritten; no room on the target fails the whole call
 * with ENOMEM after the pages before it in the group moved. Only a fully migrated group gets
 * its statuses written.
 */
#include <hmmv/error.h>
#include <hmmv/mover.h>

#include <errno.h>
#include <string.h>

/* tests/bench/tier-model.md: move_pages of 512 x 4 KiB in one call costs ~3.9 us per page. */
#define SIM_DEFAULT_NS_PER_PAGE 3900
#define SIM_UNPLACED 0xff
#define SIM_NR_NODES (HMMV_MAX_NODE_ID + 1)

/* Per page kind byte: the HmmvSimPageKind, plus a bit while the page is isolated in a call. */
#define SIM_KIND_MASK 0x0f
#define SIM_THP 0x40              /* the page is part of a transparent huge page */
#define SIM_HUGETLB 0x20          /* part of a 2 MiB hugetlbfs page: moves whole, never split */
#define SIM_HUGE (SIM_THP | SIM_HUGETLB)
#define SIM_ISOLATED 0x80         /* on a unit's first page while the unit is isolated */
/* A THP on x86-64: 2 MiB, 512 pages, at 512-page aligned indices of the VM */
#define SIM_THP_PAGES 512u

typedef struct {
  guint8 *node;             /* per page: node id, or SIM_UNPLACED */
  guint8 *kind;             /* per page: HmmvSimPageKind | SIM_ISOLATED */
  guint64 nr_pages;
  guint32 allowed;          /* the modelled process's cpuset.mems, bit per node; 0 = all */
} SimVm;

typedef struct {
  GHashTable *vms;          /* HmmvVm * -> SimVm * */
  guint64 capacity[SIM_NR_NODES];
  guint64 used[SIM_NR_NODES];
  guint64 ns_per_page;
  guint64 charged_ns;
  guint64 queried_pages;    /* pages asked by query calls, since the mover was made */
  gboolean move_all;        /* MPOL_MF_MOVE_ALL allowed (hmmvd is root): shared pages move */
} SimHost;

static void
sim_vm_free(gpointer data)
{
  SimVm *svm = data;

  g_free(svm->node);
  g_free(svm->kind);
  g_free(svm);
}

/* The VM's modelled placement, created all unplaced on first use. */
static SimVm *
sim_vm_get(SimHost *sim, HmmvVm *vm, GError **error)
{
  SimVm *svm = g_hash_table_lookup(sim->vms, vm);
  guint64 nr_pages = hmmv_vm_get_nr_pages(vm);

  if (svm != NULL)
    return svm;
  svm = g_new0(SimVm, 1);
  svm->nr_pages = nr_pages;
  svm->node = g_try_malloc(nr_pages > 0 ? nr_pages : 1);
  svm->kind = g_try_malloc0(nr_pages > 0 ? nr_pages : 1);
  if (svm->node == NULL || svm->kind == NULL) {
    sim_vm_free(svm);
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED,
                "out of memory modelling %" G_GUINT64_FORMAT " pages", nr_pages);
    return NULL;
  }
  memset(svm->node, SIM_UNPLACED, nr_pages);
  /* hugetlbfs regions of 2 MiB pages, in whole 512-page units of the VM's page indices */
  for (guint i = 0; i < hmmv_vm_get_nr_regions(vm); i++) {
    const HmmvRegion *region = hmmv_vm_get_region(vm, i);

    if (region->backing_page_size != (guint64)SIM_THP_PAGES * HMMV_PAGE_SIZE)
      continue;
    for (guint64 page = region->first_page; page < region->first_page + region->nr_pages;
         page++)
      svm->kind[page] |= SIM_HUGETLB;
  }
  g_hash_table_insert(sim->vms, vm, svm);
  return svm;
}

/* Where a VM's first touches go, nearest first: the nodes of each tier ranked from the node
 * whose CPUs run it (-1: lowest id first), as the kernel's zonelist falls back by distance. */
typedef struct {
  int rank[2][HMMV_MAX_NODE_ID + 1];   /* [0] DRAM, [1] slow */
  guint nr[2];
} TouchOrder;

static gboolean
node_allowed(const SimVm *svm, int node)
{
  return svm->allowed == 0 || (node >= 0 && node < 32 && (svm->allowed & (1u << node)) != 0);
}

/* The kernel allocates only on the nodes of the process's cpuset (cpuset.mems). */
static void
touch_order_init(TouchOrder *order, const HmmvTopology *topo, int from, const SimVm *svm)
{
  order->nr[0] = hmmv_topology_rank(topo, from, HMMV_TIER_DRAM, order->rank[0],
                                    G_N_ELEMENTS(order->rank[0]));
  order->nr[1] = hmmv_topology_rank(topo, from, HMMV_TIER_SLOW, order->rank[1],
                                    G_N_ELEMENTS(order->rank[1]));
  for (guint t = 0; t < 2; t++) {
    guint kept = 0;

    for (guint i = 0; i < order->nr[t]; i++)
      if (node_allowed(svm, order->rank[t][i]))
        order->rank[t][kept++] = order->rank[t][i];
    order->nr[t] = kept;
  }
}

static int
first_with_room(const SimHost *sim, const TouchOrder *order, guint tier, guint nr_pages)
{
  for (guint i = 0; i < order->nr[tier]; i++) {
    int id = order->rank[tier][i];

    if (id < SIM_NR_NODES && sim->used[id] + nr_pages <= sim->capacity[id])
      return id;
  }
  return -1;
}

/* The unit a page moves with: its THP, or itself. */
static guint64
unit_first(const SimVm *svm, guint64 page)
{
  return (svm->kind[page] & SIM_HUGE) != 0 ? page & ~(guint64)(SIM_THP_PAGES - 1) : page;
}

static guint
unit_pages(const SimVm *svm, guint64 page)
{
  return (svm->kind[page] & SIM_HUGE) != 0 ? SIM_THP_PAGES : 1;
}

static void
split_thp(SimVm *svm, guint64 first)
{
  for (guint64 q = first; q < first + SIM_THP_PAGES; q++)
    svm->kind[q] &= ~SIM_THP;
}

/* First touch: DRAM first, then the slow tier, each nearest the node whose CPUs run the VM
 * (hmmv_vm_set_cpu_node; unknown: lowest id first); FALSE when every node is full. A page of a
 * THP faults in its whole 2 MiB, or, with no node having room for that, 4 KiB alone (the
 * kernel falls back to a small page; the THP is gone). */
static gboolean
place_first_touch(SimHost *sim, const TouchOrder *order, SimVm *svm, guint64 page)
{
  guint64 first = unit_first(svm, page);
  guint n = unit_pages(svm, page);
  int node = first_with_room(sim, order, 0, n);

  if (node < 0)
    node = first_with_room(sim, order, 1, n);
  if (node < 0 && n > 1 && (svm->kind[first] & SIM_THP) != 0) {
    split_thp(svm, first);
    return place_first_touch(sim, order, svm, page);
  }
  if (node < 0)
    return FALSE;
  for (guint64 q = first; q < first + n; q++)
    svm->node[q] = (guint8)node;
  sim->used[node] += n;
  return TRUE;
}

/* Pages read or written for the first time get placed; a word at a time, as most are 0. */
static void
sim_touch(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc)
{
  SimHost *sim = mover->priv;
  SimVm *svm = sim_vm_get(sim, vm, NULL);
  TouchOrder order;

  if (svm == NULL)
    return;
  touch_order_init(&order, mover->topo, hmmv_vm_get_cpu_node(vm), svm);
  for (gsize w = 0; w < acc->nr_words; w++) {
    guint64 bits = acc->writes[w] | (acc->has_reads ? acc->reads[w] : 0);

    while (bits != 0) {
      guint64 page = w * 64 + (guint64)__builtin_ctzll(bits);

      bits &= bits - 1;
      if (page < svm->nr_pages && svm->node[page] == SIM_UNPLACED)
        place_first_touch(sim, &order, svm, page);
    }
  }
}

static gboolean
sim_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int *status,
          GError **error)
{
  SimHost *sim = mover->priv;
  SimVm *svm = sim_vm_get(sim, vm, error);

  if (svm == NULL)
    return FALSE;
  sim->queried_pages += nr_pages;
  for (gsize i = 0; i < nr_pages; i++) {
    guint64 page = pages[i];

    if (page >= svm->nr_pages)
      status[i] = -EFAULT;
    else if (svm->node[page] == SIM_UNPLACED)
      status[i] = -ENOENT;
    else
      status[i] = svm->node[page];
  }
  return TRUE;
}

/* What a lookup of one page decides (add_page_for_migration): queue it, or a final status. */
#define SIM_QUEUE G_MININT

static int
sim_lookup(const SimHost *sim, SimVm *svm, guint64 page, int dest_node)
{
  guint kind;

  if (page >= svm->nr_pages)
    return -EFAULT;
  if (svm->node[page] == SIM_UNPLACED)
    return -ENOENT;
  /* As move_pages(2): a page already on the target reports it, at no cost. */
  if (svm->node[page] == dest_node)
    return dest_node;
  kind = svm->kind[page];
  if ((kind & SIM_KIND_MASK) == HMMV_SIM_PAGE_SHARED && !sim->move_all)
    return -EACCES;
  /* Another subpage of a THP already queued in this call: the folio is off the LRU, so the
   * kernel says -EBUSY, although the page will move with it. */
  if ((kind & SIM_KIND_MASK) == HMMV_SIM_PAGE_BUSY ||
      (svm->kind[unit_first(svm, page)] & SIM_ISOLATED) != 0)
    return -EBUSY;
  svm->kind[unit_first(svm, page)] |= SIM_ISOLATED;
  return SIM_QUEUE;
}

/* Migrates the queued pages [first, end) of the call (the non-queued ones in it were left
 * alone). Returns 0, the number not migrated (> 0), or -1 when the target filled up. */
static gssize
sim_flush(SimHost *sim, SimVm *svm, const guint64 *pages, gsize first, gsize end, int dest_node,
          const int *status)
{
  gssize failed = 0;
  gboolean full = FALSE;

  for (gsize i = first; i < end; i++) {
    guint64 unit;
    guint n;
    gboolean pinned = FALSE;

    if (status[i] != SIM_QUEUE)
      continue;
    unit = unit_first(svm, pages[i]);
    n = unit_pages(svm, pages[i]);
    svm->kind[unit] &= ~SIM_ISOLATED;
    if (full)
      continue;       /* put back unmigrated, as migrate_pages() does after ENOMEM */
    /* a pin on any 4 KiB of a THP holds the whole folio */
    for (guint64 q = unit; q < unit + n; q++)
      pinned |= (svm->kind[q] & SIM_KIND_MASK) == HMMV_SIM_PAGE_PINNED;
    if (pinned) {
      failed++;
      continue;
    }
    /* No room for 2 MiB: the kernel splits the THP and migrates its 4 KiB pages while the
     * node has room for them; a hugetlbfs page cannot be split, and the call fails with
     * ENOMEM (migrate_hugetlbs). */
    if (n > 1 && sim->used[dest_node] + n > sim->capacity[dest_node]) {
      if ((svm->kind[unit] & SIM_HUGETLB) != 0) {
        full = TRUE;
        continue;
      }
      split_thp(svm, unit);
    }
    for (guint64 q = unit; q < unit + n; q++) {
      int from = svm->node[q];

      if (sim->used[dest_node] >= sim->capacity[dest_node]) {
        full = TRUE;
        break;
      }
      sim->used[from]--;
      sim->used[dest_node]++;
      svm->node[q] = (guint8)dest_node;
      sim->charged_ns += sim->ns_per_page;
    }
  }
  return full ? -1 : failed;
}

static gssize
sim_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node,
         int *status, GError **error)
{
  SimHost *sim = mover->priv;
  g_autofree int *lookup = NULL;
  gsize group = 0;
  SimVm *svm;

  if (hmmv_topology_lookup(mover->topo, dest_node) == NULL || dest_node >= SIM_NR_NODES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "no modelled node %d",
                dest_node);
    return -1;
  }
  svm = sim_vm_get(sim, vm, error);
  if (svm == NULL)
    return -1;
  /* do_pages_move: a target outside the process's cpuset.mems fails the call with EACCES
   * (the pages before it with another target are flushed; a call here has one target) */
  if (!node_allowed(svm, dest_node)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PERMISSION,
                "move_pages(node %d): not permitted: the node is outside the process's "
                "cpuset (modelled EACCES)", dest_node);
    return -1;
  }
  lookup = g_new(int, nr_pages + 1);
  for (gsize i = 0; i <= nr_pages; i++) {
    gssize rc;

    if (i < nr_pages) {
      lookup[i] = sim_lookup(sim, svm, pages[i], dest_node);
      if (lookup[i] == SIM_QUEUE)
        continue;
      /* The kernel stores a non-queued page's status before it flushes the group. */
      status[i] = lookup[i];
    }
    rc = sim_flush(sim, svm, pages, group, i, dest_node, lookup);
    if (rc != 0) {
      /* Nothing of this group is written, and the pages after i are not looked at. */
      if (rc < 0) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_NO_SPACE, "modelled node %d is full",
                    dest_node);
        return -1;
      }
      /* page i's status is written, so it is not counted (do_pages_move: err--) */
      return rc + (gssize)(nr_pages - MIN(i + 1, nr_pages));
    }
    for (gsize k = group; k < i; k++)
      status[k] = dest_node;
    group = i + 1;
  }
  return 0;
}

/* A block is a THP when the model made one there and it is faulted in (the kernel has no THP
 * where nothing was touched). */
static gboolean
sim_query_thp(HmmvMover *mover, HmmvVm *vm, const guint64 *first_pages, gsize n,
              guint8 *is_thp, GError **error)
{
  SimHost *sim = mover->priv;
  SimVm *svm = sim_vm_get(sim, vm, error);

  if (svm == NULL)
    return FALSE;
  for (gsize i = 0; i < n; i++) {
    guint64 page = first_pages[i];

    is_thp[i] = page < svm->nr_pages && page % SIM_THP_PAGES == 0 &&
                (svm->kind[page] & SIM_THP) != 0 && svm->node[page] != SIM_UNPLACED;
  }
  return TRUE;
}

static void
sim_destroy(HmmvMover *mover)
{
  SimHost *sim = mover->priv;

  g_hash_table_unref(sim->vms);
  g_free(sim);
}

/* The sim's clock is what it charged: the core learns the modelled speed (mover.h). */
static guint64
sim_clock_ns(HmmvMover *mover)
{
  return ((SimHost *)mover->priv)->charged_ns;
}

static const struct hmmv_mover_ops sim_ops = {
  .name = "sim",
  .query = sim_query,
  .move = sim_move,
  .query_thp = sim_query_thp,
  .touch = sim_touch,
  .clock_ns = sim_clock_ns,
  .destroy = sim_destroy,
};

HmmvMover *
hmmv_sim_mover_new(const HmmvTopology *topo, GError **error)
{
  SimHost *sim;
  guint nr_nodes;

  if (topo == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "mover sim: no topology");
    return NULL;
  }
  sim = g_new0(SimHost, 1);
  sim->vms = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, sim_vm_free);
  sim->ns_per_page = SIM_DEFAULT_NS_PER_PAGE;
  sim->move_all = TRUE;
  nr_nodes = hmmv_topology_get_nr_nodes(topo);
  for (guint i = 0; i < nr_nodes; i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);

    if (node->id >= 0 && node->id < SIM_NR_NODES)
      sim->capacity[node->id] = node->total_bytes / HMMV_PAGE_SIZE;
  }
  return hmmv_mover_new(&sim_ops, sim, topo, error);
}

static SimHost *
sim_host(const HmmvMover *mover)
{
  g_return_val_if_fail(mover != NULL && mover->ops == &sim_ops, NULL);
  return mover->priv;
}

guint64
hmmv_sim_mover_get_charged_ns(const HmmvMover *mover)
{
  SimHost *sim = sim_host(mover);

  return sim != NULL ? sim->charged_ns : 0;
}

guint64
hmmv_sim_mover_get_used_pages(const HmmvMover *mover, int node_id)
{
  SimHost *sim = sim_host(mover);

  if (sim == NULL || node_id < 0 || node_id >= SIM_NR_NODES)
    return 0;
  return sim->used[node_id];
}

guint64
hmmv_sim_mover_get_queried_pages(const HmmvMover *mover)
{
  SimHost *sim = sim_host(mover);

  return sim != NULL ? sim->queried_pages : 0;
}

gboolean
hmmv_sim_mover_kernel_move(HmmvMover *mover, HmmvVm *vm, guint64 first, guint64 nr, int node_id,
                           GError **error)
{
  SimHost *sim = sim_host(mover);
  SimVm *svm = sim != NULL ? sim_vm_get(sim, vm, error) : NULL;

  if (svm == NULL)
    return FALSE;
  if (first > svm->nr_pages || nr > svm->nr_pages - first || node_id < 0 ||
      node_id >= SIM_NR_NODES || sim->capacity[node_id] == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: pages %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                " past its %" G_GUINT64_FORMAT " pages, or node %d not modelled",
                hmmv_vm_get_name(vm), first, nr, svm->nr_pages, node_id);
    return FALSE;
  }
  for (guint64 page = first; page < first + nr; page++) {
    if (svm->node[page] == SIM_UNPLACED || svm->node[page] == node_id)
      continue;
    sim->used[svm->node[page]]--;
    svm->node[page] = (guint8)node_id;
    sim->used[node_id]++;
  }
  return TRUE;
}

void
hmmv_sim_mover_set_ns_per_page(HmmvMover *mover, guint64 ns_per_page)
{
  SimHost *sim = sim_host(mover);

  if (sim != NULL)
    sim->ns_per_page = ns_per_page;
}

gboolean
hmmv_sim_mover_set_thp(HmmvMover *mover, HmmvVm *vm, guint64 first, guint64 nr, GError **error)
{
  SimHost *sim = sim_host(mover);
  SimVm *svm = sim != NULL ? sim_vm_get(sim, vm, error) : NULL;

  if (svm == NULL)
    return FALSE;
  if (first % SIM_THP_PAGES != 0 || nr % SIM_THP_PAGES != 0 || first > svm->nr_pages ||
      nr > svm->nr_pages - first) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: THP pages %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                " not whole 512-page units inside its %" G_GUINT64_FORMAT " pages",
                hmmv_vm_get_name(vm), first, nr, svm->nr_pages);
    return FALSE;
  }
  for (guint64 page = first; page < first + nr; page++) {
    if (svm->node[page] != SIM_UNPLACED) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "vm %s: page %" G_GUINT64_FORMAT " is placed already: a THP is made at "
                  "first touch", hmmv_vm_get_name(vm), page);
      return FALSE;
    }
  }
  for (guint64 page = first; page < first + nr; page++)
    svm->kind[page] |= SIM_THP;
  return TRUE;
}

void
hmmv_sim_mover_set_move_all(HmmvMover *mover, gboolean allowed)
{
  SimHost *sim = sim_host(mover);

  if (sim != NULL)
    sim->move_all = allowed;
}

gboolean
hmmv_sim_mover_set_page_kind(HmmvMover *mover, HmmvVm *vm, guint64 first, guint64 nr,
                             HmmvSimPageKind kind, GError **error)
{
  SimHost *sim = sim_host(mover);
  SimVm *svm = sim != NULL ? sim_vm_get(sim, vm, error) : NULL;

  if (svm == NULL)
    return FALSE;
  if (first > svm->nr_pages || nr > svm->nr_pages - first || kind > HMMV_SIM_PAGE_SHARED) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: pages %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                " past its %" G_GUINT64_FORMAT " pages, or kind %d unknown",
                hmmv_vm_get_name(vm), first, nr, svm->nr_pages, kind);
    return FALSE;
  }
  for (guint64 page = first; page < first + nr; page++)
    svm->kind[page] = (guint8)((svm->kind[page] & SIM_HUGE) | kind);
  return TRUE;
}

void
hmmv_sim_mover_forget_vm(HmmvMover *mover, HmmvVm *vm)
{
  SimHost *sim = sim_host(mover);
  SimVm *svm;

  if (sim == NULL)
    return;
  svm = g_hash_table_lookup(sim->vms, vm);
  if (svm == NULL)
    return;
  for (guint64 page = 0; page < svm->nr_pages; page++) {
    if (svm->node[page] != SIM_UNPLACED)
      sim->used[svm->node[page]]--;
  }
  g_hash_table_remove(sim->vms, vm);
}

gboolean
hmmv_sim_mover_set_allowed_nodes(HmmvMover *mover, HmmvVm *vm, guint32 mask, GError **error)
{
  SimHost *sim = sim_host(mover);
  SimVm *svm = sim != NULL ? sim_vm_get(sim, vm, error) : NULL;

  if (svm == NULL)
    return FALSE;
  svm->allowed = mask;
  return TRUE;
}
