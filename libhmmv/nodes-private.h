/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Per-node pools and where each VM's moves go (nodes.c), for the interval loop. */
#pragma once

#include <hmmv/core.h>

#define HMMV_NR_NODE_SLOTS (HMMV_MAX_NODE_ID + 1)

typedef struct {
  guint64 configured_pages; /* the operator's pool for this node; 0 = none */
  guint64 reserve_pages;    /* free memory left to the host */
  guint64 capacity_pages;   /* what the VMs may hold here this interval */
  guint64 used_pages;       /* what they hold at the interval's start */
  guint64 fallback_in_pages;/* cumulative: placed here because a nearer node was full */
  gboolean full;            /* this interval: room wanted here and none left */
} HmmvNodeState;

/* One VM's moves of one kind, to be spread over nodes nearest first. */
typedef struct {
  guint64 want;             /* pages */
  int rank[HMMV_NR_NODE_SLOTS];  /* target nodes, nearest first */
  guint nr_rank;
  guint64 granted[HMMV_NR_NODE_SLOTS]; /* out: pages for rank[i] */
} HmmvNodeRequest;

/* Capacity of every node from the topology's free memory (the caller refreshes it), what the
 * VMs hold there (used, by node id) and the settings; returns the DRAM nodes' total. */
guint64 hmmv_nodes_update(const HmmvTopology *topo, HmmvNodeState *nodes, const guint64 *used);

/* A VM's targets: DRAM nodes nearest its vCPUs' node first (else nearest the DRAM node that
 * holds most of its pages, else the node that holds most), and slow nodes nearest the first of
 * those. Returns the home DRAM node. */
int hmmv_nodes_targets(const HmmvTopology *topo, const HmmvVm *vm, HmmvNodeRequest *dram,
                       HmmvNodeRequest *slow);
/* NULL, or why the VM's allowed nodes (hmmv_vm_set_allowed_nodes) leave hmmv nothing to move
 * its pages between: no DRAM or no slow node among them (targets as hmmv_nodes_targets made
 * them). Such a VM is left alone: outside the balance, keeping what it holds. Static. */
const char *hmmv_nodes_left_alone(const HmmvVm *vm, const HmmvNodeRequest *dram,
                                  const HmmvNodeRequest *slow);

/* Spreads the requests over room (pages free per node id; decremented), rank by rank: at each
 * rank the VMs that want the same node share its room in proportion to what they still want
 * (rounding down, the pages left one each in request order), and what does not fit goes on to
 * each VM's next node. Marks nodes that ran out of room as full. */
void hmmv_nodes_assign(HmmvNodeRequest *requests, guint nr_requests, gint64 *room,
                       HmmvNodeState *nodes);

/* The DRAM nodes' pools for the balance (hmmv_balance_nodes), ascending node id: each DRAM
 * node's capacity, scaled down in proportion when pool_pages (the core's pool, at most their
 * sum) is below their sum, less what VMs outside the balance hold there (outside, by node
 * id); a node whose outside holders exceed its pool takes the difference from the other DRAM
 * nodes, nearest first. ids[p] is pool p's node id (room for HMMV_NR_NODE_SLOTS). Returns
 * how many pools. */
guint hmmv_nodes_dram_pools(const HmmvTopology *topo, const HmmvNodeState *nodes,
                            guint64 pool_pages, const guint64 *outside, int *ids,
                            guint64 *pools);
/* A VM's DRAM targets (hmmv_nodes_targets) as pool indices, nearest first, G_MAXUINT after
 * the last: nr_pools entries. */
void hmmv_nodes_pool_ranks(const HmmvNodeRequest *dram, const int *ids, guint nr_pools,
                           guint *ranks);
