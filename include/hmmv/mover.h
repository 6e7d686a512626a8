/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: movers, how pages change nodes.
 *
 * Both hooks work on a VM's page indices and report, per page, the node the page is on after
 * the call or a negative errno (the move_pages(2) convention: -ENOENT not present, -EFAULT
 * unmapped, -EBUSY pinned, -ENOMEM target full, ...). The wrappers batch the calls, count
 * every failure kind into the VM's HmmvMoveStats and update the VM's page placement.
 *
 * Backends: numa (move_pages(2) on the VM's process through libnuma), sim (a modelled DRAM +
 * slow-tier host with no real memory behind it, for one-node hosts, tests and benchmarks).
 */
#pragma once

#include <glib.h>
#include <hmmv/access.h>
#include <hmmv/topology.h>
#include <hmmv/vm.h>

G_BEGIN_DECLS

typedef struct _HmmvMover HmmvMover;

struct hmmv_mover_ops {
  const char *name;
  /* required: status[i] = node of pages[i], or -errno */
  gboolean (*query)(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                    int *status, GError **error);
  /* required: move pages to dest_node; status[i] = resulting node or -errno. FALSE only when
   * the whole call failed (dead process, invalid node): then status is not meaningful. */
  gboolean (*move)(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                   int dest_node, int *status, GError **error);
  /* optional: the pages this harvest saw accessed. A modelled host uses it to place pages on
   * first touch, as the kernel does; a real host needs nothing. */
  void (*touch)(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc);
  /* optional */
  void (*destroy)(HmmvMover *mover);
};

struct _HmmvMover {
  const struct hmmv_mover_ops *ops;
  gpointer priv;
  const HmmvTopology *topo;   /* not owned; outlives the mover */
  guint batch_pages;          /* pages per backend call; default 512 */
};

HmmvMover *hmmv_mover_new(const struct hmmv_mover_ops *ops, gpointer priv,
                          const HmmvTopology *topo, GError **error);
void hmmv_mover_free(HmmvMover *mover);
const char *hmmv_mover_get_name(const HmmvMover *mover);

/* Calls ops->touch when the backend has it. */
void hmmv_mover_touch(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc);
/* Learn the node of each page and record it in the VM (unknown when not present). */
gboolean hmmv_mover_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                          GError **error);
/* Move pages to dest_node in batches; counts outcomes in the VM's stats and records the new
 * placement. *moved gets the pages that really are on dest_node afterwards. FALSE when a
 * whole call failed (the VM's process is gone, the node is invalid). */
gboolean hmmv_mover_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                         int dest_node, guint64 *moved, GError **error);

/* numa: move_pages(2) on the VM's pid (hmmv_vm_set_pid) at the regions' host addresses. */
HmmvMover *hmmv_numa_mover_new(const HmmvTopology *topo, GError **error);
/* The raw call under the numa mover, for tools and tests: one move_pages(2) per batch of
 * addresses; nodes NULL queries. status[i] as move_pages(2). */
gboolean hmmv_numa_move_addresses(int pid, void **addresses, gsize nr, int dest_node,
                                  int *status, GError **error);

/* sim: every node of topo is modelled with its total_bytes as capacity. The touch hook places
 * a page on its first access like the kernel's first touch does (first DRAM node with room,
 * else a slow node); until then query reports -ENOENT (not present). Moves fail per page with
 * -ENOMEM when the target is full, -ENOENT when the page was never touched. Cost is charged
 * per the tier model: sim_ns_per_page per moved page (default 3900 ns, a 512-page move_pages batch). */
HmmvMover *hmmv_sim_mover_new(const HmmvTopology *topo, GError **error);
guint64 hmmv_sim_mover_get_charged_ns(const HmmvMover *mover);
guint64 hmmv_sim_mover_get_used_pages(const HmmvMover *mover, int node_id);
/* Cost charged per moved page, in ns (the default is 3900). */
void hmmv_sim_mover_set_ns_per_page(HmmvMover *mover, guint64 ns_per_page);
/* The sim keeps each VM's modelled placement keyed by the HmmvVm pointer: call this before
 * freeing a VM it has seen, to release the pages it held on the modelled nodes. */
void hmmv_sim_mover_forget_vm(HmmvMover *mover, HmmvVm *vm);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvMover, hmmv_mover_free)

G_END_DECLS
