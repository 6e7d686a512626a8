/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: movers, how pages change nodes.
 *
 * Both hooks work on a VM's page indices and report, per page, the node the page is on after
 * the call or a negative errno (the move_pages(2) convention: -ENOENT not present, -EFAULT
 * unmapped, -EBUSY not isolatable, -EACCES shared with another process, ...). The wrappers
 * batch the calls, count every failure kind into the VM's HmmvMoveStats and update the VM's
 * page placement.
 *
 * What move_pages(2) really answers (mm/migrate.c, do_pages_move), and so what every backend
 * must answer: pages are isolated in order and migrated in groups; a page that cannot be
 * queued (already on the target, not present, shared, not isolatable) gets its status and
 * flushes the group before it. When a group's migration leaves pages behind (pinned pages,
 * elevated refcounts), the call stops there and returns a POSITIVE count of pages not
 * migrated: that group's statuses and every later one are never written. When the target
 * node has no room, the whole call fails with ENOMEM (the kernel never reports -ENOMEM per
 * page), after it may have migrated part of the group. A transparent huge page moves whole:
 * every 4 KiB page of its 2 MiB changes node with the one asked for, and its other subpages
 * in the same call may read -EBUSY (the folio was already isolated) although they moved.
 * So after any short or failed call, and for pages reported -EBUSY, the wrapper asks the
 * backend where exactly those pages are (query) instead of believing the status array.
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

/* The value a status entry keeps when the backend did not write it. move_pages(2) writes
 * node ids (>= 0) and negative errnos (>= -4095), never this. */
#define HMMV_MOVE_STATUS_UNWRITTEN G_MININT

struct hmmv_mover_ops {
  const char *name;
  /* required: status[i] = node of pages[i], or -errno */
  gboolean (*query)(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                    int *status, GError **error);
  /* required: one move_pages(2) call moving pages to dest_node. Returns as the kernel does:
   * 0 when every status[i] was written (node or -errno); a positive count of pages not
   * migrated when the call stopped short: then any status[i] may be left unwritten (the
   * wrapper fills status with HMMV_MOVE_STATUS_UNWRITTEN first and queries what stayed so);
   * -1 with error when the whole call failed: HMMV_ERROR_NO_SPACE when dest_node is full
   * (ENOMEM: pages may have moved before the failure, statuses may be unwritten), anything
   * else (dead process, invalid node) ends the wrapper's move with that error. */
  gssize (*move)(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                 int dest_node, int *status, GError **error);
  /* optional: whether the 2 MiB block of host address space holding page first_pages[i] (the
   * block's first page of the VM) is one transparent huge page now: is_thp[i] = 1, else 0.
   * Without it every block counts as 4 KiB pages. */
  gboolean (*query_thp)(HmmvMover *mover, HmmvVm *vm, const guint64 *first_pages, gsize n,
                        guint8 *is_thp, GError **error);
  /* optional: the pages this harvest saw accessed. A modelled host uses it to place pages on
   * first touch, as the kernel does; a real host needs nothing. */
  void (*touch)(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc);
  /* optional: the mover's clock, in ns, which the core times its move calls with to learn
   * the mover's speed (libhmmv/loop-batch.c). Without it, the monotonic clock. A modelled
   * mover returns the cost it has charged so far, so the core learns the modelled speed and
   * tests count it instead of timing it. */
  guint64 (*clock_ns)(HmmvMover *mover);
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

/* ops->clock_ns when the backend has it, else the monotonic clock in ns. */
guint64 hmmv_mover_clock_ns(HmmvMover *mover);
/* Calls ops->touch when the backend has it. */
void hmmv_mover_touch(HmmvMover *mover, HmmvVm *vm, const HmmvAccess *acc);
/* Learn the node of each page and record it in the VM (unknown when not present). */
gboolean hmmv_mover_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                          GError **error);
/* Learn whether THP blocks [first_block, first_block + nr) of the VM are THPs now (a backend
 * without query_thp: nothing changes) and record it; *changed (may be NULL) gets the blocks
 * whose state changed. */
gboolean hmmv_mover_refresh_thp(HmmvMover *mover, HmmvVm *vm, guint64 first_block, guint64 nr,
                                guint64 *changed, GError **error);
/* The same for the blocks holding the given pages (pages in no block are skipped). */
gboolean hmmv_mover_refresh_thp_of(HmmvMover *mover, HmmvVm *vm, const guint64 *pages,
                                   gsize nr_pages, guint64 *changed, GError **error);

/* Move pages to dest_node in batches. An entry that is a page of a huge unit (hmmv_vm_unit_of)
 * stands for the whole unit, as in the kernel: afterwards every page of the unit is queried
 * and recorded where it is (its THP state refreshed: the kernel splits a THP it cannot place
 * whole), and *moved and the promoted/demoted counts include them; counts outcomes in the VM's stats and records the new
 * placement: pages a short call left unreported (or reported -EBUSY) are queried, and the
 * rest of such a batch is tried again while each try settles some (at most 4 calls a batch).
 * A full target node (whole-call ENOMEM) ends the move successfully: the pages it left and
 * the batches not tried are counted as no_memory and keep their recorded node. *moved gets
 * the pages that really are on dest_node afterwards. FALSE when a whole call failed for
 * another reason (the VM's process is gone, the node is invalid). */
gboolean hmmv_mover_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages,
                         int dest_node, guint64 *moved, GError **error);

/* numa: move_pages(2) on the VM's pid (hmmv_vm_set_pid) at the regions' host addresses, with
 * MPOL_MF_MOVE_ALL (pages shared with other processes move too) while the kernel allows it
 * (CAP_SYS_NICE), else MPOL_MF_MOVE. */
HmmvMover *hmmv_numa_mover_new(const HmmvTopology *topo, GError **error);
/* The raw call under the numa mover, for tools and tests: one move_pages(2) per batch of
 * addresses; nodes NULL queries. status[i] as move_pages(2). */
gboolean hmmv_numa_move_addresses(int pid, void **addresses, gsize nr, int dest_node,
                                  int *status, GError **error);

/* sim: every node of topo is modelled with its total_bytes as capacity. The touch hook places
 * a page on its first access like the kernel's first touch does (first DRAM node with room,
 * else a slow node); until then query reports -ENOENT (not present). A move answers as one
 * move_pages(2) call does (see above): a full target fails the whole call with ENOMEM, a
 * pinned page makes it return a positive count with statuses unwritten. Cost is charged per
 * the tier model: sim_ns_per_page per moved page (default 3900 ns, a 512-page batch), and
 * that charged cost is the sim's clock (hmmv_mover_clock_ns). */
HmmvMover *hmmv_sim_mover_new(const HmmvTopology *topo, GError **error);
guint64 hmmv_sim_mover_get_charged_ns(const HmmvMover *mover);
guint64 hmmv_sim_mover_get_used_pages(const HmmvMover *mover, int node_id);
/* Pages asked where they are (query calls: the core's first-touch lookups and rescans, the
 * checks after a move), since the mover was made: the status queries a numa mover would make. */
guint64 hmmv_sim_mover_get_queried_pages(const HmmvMover *mover);
/* Moves the placed pages of [first, first + nr) to node_id behind hmmv's back, as NUMA
 * balancing, demotion or compaction on the host would: no capacity check, nothing recorded
 * in the VM; only a query shows it. */
gboolean hmmv_sim_mover_kernel_move(HmmvMover *mover, HmmvVm *vm, guint64 first, guint64 nr,
                                    int node_id, GError **error);
/* Cost charged per moved page, in ns (the default is 3900). */
void hmmv_sim_mover_set_ns_per_page(HmmvMover *mover, guint64 ns_per_page);
/* The sim keeps each VM's modelled placement keyed by the HmmvVm pointer: call this before
 * freeing a VM it has seen, to release the pages it held on the modelled nodes. */
void hmmv_sim_mover_forget_vm(HmmvMover *mover, HmmvVm *vm);

/* What the modelled kernel finds when it looks at a page: the real reasons pages do not move. */
typedef enum {
  HMMV_SIM_PAGE_MOVABLE,    /* an ordinary anonymous page (the default) */
  HMMV_SIM_PAGE_BUSY,       /* cannot be isolated (off the LRU, under I/O): status -EBUSY */
  HMMV_SIM_PAGE_PINNED,     /* isolated, but migration fails (VFIO or io_uring pin, vmsplice):
                             * the call stops short, statuses unwritten */
  HMMV_SIM_PAGE_SHARED,     /* mapped by another process too (vhost-user, virtiofsd, KSM):
                             * -EACCES without MPOL_MF_MOVE_ALL */
} HmmvSimPageKind;

/* Whether the modelled mover may use MPOL_MF_MOVE_ALL (as the numa mover does when it has
 * CAP_SYS_NICE, as hmmvd as root has): TRUE by default; FALSE makes shared pages -EACCES. */
void hmmv_sim_mover_set_move_all(HmmvMover *mover, gboolean allowed);
/* Makes pages [first, first + nr) (whole 512-page units, not yet touched) transparent huge
 * pages: the first touch of any page places its whole 2 MiB, a move of any page moves all
 * 512 (its other subpages in the same call read -EBUSY), a pin on one holds all, and with no
 * room for 2 MiB on the target the THP is split and moved 4 KiB at a time while room lasts,
 * as the kernel does. */
gboolean hmmv_sim_mover_set_thp(HmmvMover *mover, HmmvVm *vm, guint64 first, guint64 nr,
                                GError **error);
/* The modelled process's cpuset.mems (bit n = node n; 0, the default: every node): its first
 * touches go only to those nodes, and a move to any other fails the whole call with EACCES,
 * as do_pages_move(mm/migrate.c) refuses a node outside cpuset_mems_allowed(task). */
gboolean hmmv_sim_mover_set_allowed_nodes(HmmvMover *mover, HmmvVm *vm, guint32 mask,
                                          GError **error);
/* Gives pages [first, first + nr) of vm that kind. */
gboolean hmmv_sim_mover_set_page_kind(HmmvMover *mover, HmmvVm *vm, guint64 first, guint64 nr,
                                      HmmvSimPageKind kind, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvMover, hmmv_mover_free)

G_END_DECLS
