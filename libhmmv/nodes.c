/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Several sockets: which node each VM's pages go to, and how much each node can take.
 *
 * A page promoted to the other socket's DRAM costs every access the remote latency (on a
 * two-socket Optane host about 140 ns against 80 ns locally, see tests/testbed's HMAT), and
 * one demoted to the other socket's Optane about 360 ns against 300 ns. So a VM's promotions
 * go to the DRAM node nearest its vCPUs and its demotions to the slow node nearest that DRAM
 * node (topology rank: HMAT initiators, SLIT distance, latency), and only when a node is full
 * to the next in rank, which the loop reports.
 *
 * A node's capacity is what the host can give, re-read each interval: what the VMs hold there
 * plus its free memory minus a reserve kept for the host (page cache, QEMU, other processes),
 * never more than the node, and never more than the operator's pool for that node when one is
 * configured. A node below its reserve (another process filled it) has a capacity under what
 * the VMs hold: nothing more goes there, and the DRAM pool shrinks by the difference.
 */
#include "nodes-private.h"
#include "vm-private.h"

#include <string.h>

guint64
hmmv_nodes_update(const HmmvTopology *topo, HmmvNodeState *nodes, const guint64 *used)
{
  guint64 dram = 0;

  for (guint i = 0; i < hmmv_topology_get_nr_nodes(topo); i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);
    HmmvNodeState *state = &nodes[node->id];
    guint64 total = node->total_bytes >> HMMV_PAGE_SHIFT;
    guint64 free_pages = node->free_bytes >> HMMV_PAGE_SHIFT;
    guint64 have = used[node->id] + free_pages;
    guint64 cap = have > state->reserve_pages ? have - state->reserve_pages : 0;

    cap = MIN(cap, total);
    if (state->configured_pages != 0)
      cap = MIN(cap, state->configured_pages);
    state->capacity_pages = cap;
    state->used_pages = used[node->id];
    if (node->tier == HMMV_TIER_DRAM)
      dram += cap;
  }
  return dram;
}

/* The node of the tier holding most of the VM's pages, -1 when it holds none there. */
static int
majority_node(const HmmvTopology *topo, const HmmvVm *vm, gboolean any_tier)
{
  guint64 best = 0;
  int node = -1;

  for (guint i = 0; i < hmmv_topology_get_nr_nodes(topo); i++) {
    const HmmvNode *n = hmmv_topology_get_node(topo, i);

    if ((any_tier || n->tier == HMMV_TIER_DRAM) && vm->node_pages[n->id] > best) {
      best = vm->node_pages[n->id];
      node = n->id;
    }
  }
  return node;
}

/* Drops the nodes the VM's cpuset forbids (strict numatune): the kernel would refuse them
 * with EACCES, counted as failed moves every interval; what does not fit in the allowed
 * nodes waits instead. */
static void
keep_allowed(const HmmvVm *vm, HmmvNodeRequest *request)
{
  guint kept = 0;

  if (vm->allowed_nodes == 0)
    return;
  for (guint r = 0; r < request->nr_rank; r++)
    if (request->rank[r] >= 0 && request->rank[r] < 32 &&
        (vm->allowed_nodes & (1u << request->rank[r])) != 0)
      request->rank[kept++] = request->rank[r];
  request->nr_rank = kept;
}

int
hmmv_nodes_targets(const HmmvTopology *topo, const HmmvVm *vm, HmmvNodeRequest *dram,
                   HmmvNodeRequest *slow)
{
  int from = vm->cpu_node;

  if (from < 0)
    from = majority_node(topo, vm, FALSE);
  if (from < 0)
    from = majority_node(topo, vm, TRUE);
  /* -1 (nothing known): rank by id, as a one-socket host does */
  dram->nr_rank = hmmv_topology_rank(topo, from, HMMV_TIER_DRAM, dram->rank,
                                     G_N_ELEMENTS(dram->rank));
  keep_allowed(vm, dram);
  slow->nr_rank = hmmv_topology_rank(topo, dram->nr_rank > 0 ? dram->rank[0] : from,
                                     HMMV_TIER_SLOW, slow->rank, G_N_ELEMENTS(slow->rank));
  keep_allowed(vm, slow);
  return dram->nr_rank > 0 ? dram->rank[0] : -1;
}

const char *
hmmv_nodes_left_alone(const HmmvVm *vm, const HmmvNodeRequest *dram,
                      const HmmvNodeRequest *slow)
{
  if (vm->allowed_nodes == 0)
    return NULL;
  if (dram->nr_rank == 0)
    return "its allowed nodes hold no DRAM node";
  if (slow->nr_rank == 0)
    return "its allowed nodes hold no slow node";
  return NULL;
}

void
hmmv_nodes_assign(HmmvNodeRequest *requests, guint nr_requests, gint64 *room,
                  HmmvNodeState *nodes)
{
  g_autofree guint64 *left = g_new0(guint64, MAX(nr_requests, 1));
  guint max_rank = 0;

  for (guint v = 0; v < nr_requests; v++) {
    left[v] = requests[v].want;
    memset(requests[v].granted, 0, sizeof(requests[v].granted));
    max_rank = MAX(max_rank, requests[v].nr_rank);
  }
  for (guint r = 0; r < max_rank; r++) {
    guint64 demand[HMMV_NR_NODE_SLOTS] = { 0 }, given[HMMV_NR_NODE_SLOTS] = { 0 };

    for (guint v = 0; v < nr_requests; v++) {
      if (r < requests[v].nr_rank)
        demand[requests[v].rank[r]] += left[v];
    }
    for (guint pass = 0; pass < 2; pass++) {
      for (guint v = 0; v < nr_requests; v++) {
        int node;
        guint64 avail, g;

        if (r >= requests[v].nr_rank || left[v] == 0)
          continue;
        node = requests[v].rank[r];
        avail = room[node] > 0 ? (guint64)room[node] : 0;
        if (pass == 0) {
          g = demand[node] <= avail
                ? left[v] : (guint64)((unsigned __int128)left[v] * avail / demand[node]);
        } else {
          g = given[node] < MIN(avail, demand[node]) ? 1 : 0;
        }
        requests[v].granted[r] += g;
        left[v] -= g;
        given[node] += g;
      }
    }
    for (int node = 0; node < HMMV_NR_NODE_SLOTS; node++) {
      if (demand[node] == 0)
        continue;
      room[node] -= (gint64)given[node];
      if (given[node] < demand[node])
        nodes[node].full = TRUE;
    }
  }
}

guint
hmmv_nodes_dram_pools(const HmmvTopology *topo, const HmmvNodeState *nodes, guint64 pool_pages,
                      const guint64 *outside, int *ids, guint64 *pools)
{
  guint64 sum = 0, given = 0;
  guint n = 0;

  for (guint i = 0; i < hmmv_topology_get_nr_nodes(topo); i++) {
    const HmmvNode *node = hmmv_topology_get_node(topo, i);

    if (node->tier != HMMV_TIER_DRAM)
      continue;
    ids[n] = node->id;
    pools[n] = nodes[node->id].capacity_pages;
    sum += pools[n++];
  }
  /* a pool limited below the nodes' capacities: each node's share in proportion, the pages
   * rounding leaves one each from the lowest id */
  if (pool_pages < sum) {
    for (guint p = 0; p < n; p++) {
      pools[p] = (guint64)((unsigned __int128)pools[p] * pool_pages / sum);
      given += pools[p];
    }
    for (guint p = 0; p < n && given < pool_pages; p++, given++)
      pools[p]++;
  }
  /* what VMs outside the balance hold: from their node, the excess from the nearest others */
  for (guint p = 0; p < n; p++) {
    guint64 held = outside[ids[p]], take = MIN(held, pools[p]);
    int near[HMMV_NR_NODE_SLOTS];
    guint nr_near;

    pools[p] -= take;
    held -= take;
    if (held == 0)
      continue;
    nr_near = hmmv_topology_rank(topo, ids[p], HMMV_TIER_DRAM, near, G_N_ELEMENTS(near));
    for (guint r = 0; r < nr_near && held > 0; r++) {
      for (guint q = 0; q < n; q++) {
        if (ids[q] != near[r])
          continue;
        take = MIN(held, pools[q]);
        pools[q] -= take;
        held -= take;
      }
    }
  }
  return n;
}

void
hmmv_nodes_pool_ranks(const HmmvNodeRequest *dram, const int *ids, guint nr_pools,
                      guint *ranks)
{
  guint k = 0;

  for (guint r = 0; r < dram->nr_rank && k < nr_pools; r++)
    for (guint p = 0; p < nr_pools; p++)
      if (ids[p] == dram->rank[r])
        ranks[k++] = p;
  for (; k < nr_pools; k++)
    ranks[k] = G_MAXUINT;
}
