/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: one VM's guest RAM and its per-page state.
 *
 * Guest RAM is a list of regions (a QEMU RAMBlock mapped at a guest-physical range, backed at a
 * host virtual address inside the QEMU process). Every 4 KiB guest page gets an index
 * 0 .. nr_pages-1, regions laid end to end in the order they were added.
 *
 * Per page hmmv keeps exactly two bytes (see BENCHMARKS.md for the measured total):
 *
 *   temp  (the temperature key, also the bucket-sort key; 0 = coldest, 255 = hottest)
 *     bits 7..4  level 0..15 of the multi-level queue
 *     bits 3..0  freshness 15..0: 15 right after an access, one less per idle interval
 *
 *   place
 *     bits 4..0  node slot: the kernel node id, or HMMV_PLACE_NODE_UNKNOWN (31) when the page
 *                is not present or its node was never learnt
 *     bit  5     HMMV_PLACE_SLOW: the node is in the slow tier (also set for unknown pages, so
 *                that "cold and settled" is one word compare for 8 pages at a time)
 *     bits 7..6  cooldown: intervals before the planner may move the page again (hysteresis)
 */
#pragma once

#include <glib.h>
#include <hmmv/topology.h>

G_BEGIN_DECLS

#define HMMV_PAGE_SHIFT 12
#define HMMV_PAGE_SIZE (1u << HMMV_PAGE_SHIFT)

#define HMMV_TEMP_LEVEL(t) ((guint)(t) >> 4)
#define HMMV_TEMP_FRESH(t) ((guint)(t) & 0xfu)
#define HMMV_TEMP_MAKE(level, fresh) ((guint8)(((level) << 4) | (fresh)))
#define HMMV_NR_KEYS 256
#define HMMV_NR_LEVELS 16

#define HMMV_PLACE_NODE_MASK 0x1fu
#define HMMV_PLACE_NODE_UNKNOWN 31u
#define HMMV_PLACE_SLOW 0x20u
#define HMMV_PLACE_COOLDOWN_SHIFT 6
#define HMMV_PLACE_COOLDOWN_MAX 3u
#define HMMV_PLACE_NODE(p) ((guint)(p) & HMMV_PLACE_NODE_MASK)
#define HMMV_PLACE_IS_SLOW(p) (((p) & HMMV_PLACE_SLOW) != 0)
#define HMMV_PLACE_COOLDOWN(p) ((guint)(p) >> HMMV_PLACE_COOLDOWN_SHIFT)
/* Highest kernel node id a page can be recorded on (slot 31 means unknown). */
#define HMMV_PLACE_MAX_NODE_ID 30

typedef struct {
  char *name;               /* RAMBlock id, e.g. "pc.ram" */
  guint64 gpa;              /* guest-physical start */
  guint64 hva;              /* host virtual address in the VM's process; 0 if unknown */
  guint64 nr_pages;         /* 4 KiB pages */
  guint64 first_page;       /* index of the region's first page in the VM's arrays */
  guint64 backing_page_size;/* QEMU's RAMBlock page size: 4096 (anonymous memory, where
                             * the kernel may still make THPs), or the hugetlbfs page size
                             * (2 MiB, 1 GiB) */
} HmmvRegion;

/* The backing unit: what one move_pages(2) entry moves. A 4 KiB page, or a huge page of the
 * VM's backing, which the kernel moves whole (any 4 KiB of it moves all of it): a hugetlbfs
 * page (the region's backing_page_size), or a transparent huge page (2 MiB) where the kernel
 * made one of an aligned 2 MiB block of anonymous RAM. The core keeps the huge units of each
 * VM (hugetlbfs: fixed; THP: refreshed from the mover as THPs form and split) and decides,
 * moves and accounts them whole. */
#define HMMV_THP_PAGES 512u
#define HMMV_THP_SIZE ((guint64)HMMV_THP_PAGES << HMMV_PAGE_SHIFT)

typedef struct {
  guint64 first_page;
  guint64 nr_pages;
  guint8 key;               /* the unit's decision key: the mean of its pages' keys (units.h) */
  gboolean thp;             /* a THP (the kernel may split it), else a hugetlbfs page */
} HmmvUnit;

/* Per-VM DRAM quota, in 4 KiB pages. max_pages == 0 means "no limit". */
typedef struct {
  guint64 min_pages;
  guint64 max_pages;
  guint weight;             /* relative share of lent DRAM; 100 is the default */
  gboolean managed;         /* FALSE: hmmv tracks but never moves this VM's pages */
} HmmvQuota;

/* What the mover reported, cumulated since the VM was added. */
typedef struct {
  guint64 promoted;         /* pages moved to DRAM */
  guint64 demoted;          /* pages moved to the slow tier */
  guint64 not_present;      /* -ENOENT: page not (yet) backed */
  guint64 busy;             /* -EBUSY / -EAGAIN: pinned or under I/O */
  guint64 no_memory;        /* -ENOMEM: target node full */
  guint64 fault;            /* -EFAULT: unmapped address */
  guint64 access;           /* -EACCES / -EPERM / -EINVAL: refused by policy */
  guint64 other;            /* anything else */
  guint64 call_failures;    /* whole calls that failed (dead pid, invalid node) */
} HmmvMoveStats;

/* Why a page does not move (what the mover saw), for its backoff and for operators. */
typedef enum {
  HMMV_UNMOVABLE_BUSY,      /* -EBUSY / -EAGAIN: could not be isolated (off the LRU, I/O) */
  HMMV_UNMOVABLE_PINNED,    /* isolated, but migration failed: pinned (VFIO, io_uring, vhost
                             * zero-copy) or referenced; the kernel's positive return */
  HMMV_UNMOVABLE_SHARED,    /* -EACCES / -EPERM: mapped by another process (vhost-user,
                             * virtiofsd, KSM) and MPOL_MF_MOVE_ALL not allowed */
  HMMV_UNMOVABLE_OTHER,     /* any other per-page errno */
  HMMV_NR_UNMOVABLE_CAUSES,
} HmmvUnmovableCause;

/* Pages that failed their last move and are backed off, by cause. */
typedef struct {
  guint64 pages[HMMV_NR_UNMOVABLE_CAUSES];
} HmmvUnmovable;

typedef struct _HmmvVm HmmvVm;

HmmvVm *hmmv_vm_new(const char *name);
void hmmv_vm_free(HmmvVm *vm);

/* Layout: add regions, then finalize (allocates the page state; fails cleanly on huge or
 * overflowing sizes). Sizes must be multiples of 4 KiB. */
gboolean hmmv_vm_add_region(HmmvVm *vm, const char *name, guint64 gpa, guint64 hva,
                            guint64 size_bytes, guint64 backing_page_size, GError **error);
gboolean hmmv_vm_finalize_layout(HmmvVm *vm, GError **error);

const char *hmmv_vm_get_name(const HmmvVm *vm);
guint64 hmmv_vm_get_nr_pages(const HmmvVm *vm);
guint hmmv_vm_get_nr_regions(const HmmvVm *vm);
const HmmvRegion *hmmv_vm_get_region(const HmmvVm *vm, guint index);
/* Region holding a page index, or NULL when out of range. */
const HmmvRegion *hmmv_vm_region_of_page(const HmmvVm *vm, guint64 page);
/* Host virtual address of a page, 0 when unknown. */
guint64 hmmv_vm_page_to_hva(const HmmvVm *vm, guint64 page);
/* Page index of a guest-physical address; FALSE when no region holds it. */
gboolean hmmv_vm_gpa_to_page(const HmmvVm *vm, guint64 gpa, guint64 *page);
guint64 hmmv_vm_page_to_gpa(const HmmvVm *vm, guint64 page);

void hmmv_vm_set_pid(HmmvVm *vm, int pid);
int hmmv_vm_get_pid(const HmmvVm *vm);

void hmmv_vm_set_quota(HmmvVm *vm, const HmmvQuota *quota);
const HmmvQuota *hmmv_vm_get_quota(const HmmvVm *vm);
void hmmv_vm_set_budget_pages(HmmvVm *vm, guint64 budget_pages);
guint64 hmmv_vm_get_budget_pages(const HmmvVm *vm);

/* Page state (arrays of nr_pages bytes; valid after finalize). */
const guint8 *hmmv_vm_get_temp(const HmmvVm *vm);
const guint8 *hmmv_vm_get_place(const HmmvVm *vm);
/* For writing keys outside hmmv_temperature_update (tests, tools): the next update then
 * reads every block again, as what it knew of cold blocks may no longer hold. */
guint8 *hmmv_vm_get_temp_mut(HmmvVm *vm);
guint8 *hmmv_vm_get_place_mut(HmmvVm *vm);
/* Record that a page now lives on node_id (negative: unknown / not present). Keeps the
 * per-tier counters right. tier is the node's tier (ignored for unknown). */
void hmmv_vm_set_page_node(HmmvVm *vm, guint64 page, int node_id, HmmvTier tier);
int hmmv_vm_get_page_node(const HmmvVm *vm, guint64 page);

/* Pages the VM has on DRAM / slow / unknown, kept up to date by hmmv_vm_set_page_node(). */
guint64 hmmv_vm_get_dram_pages(const HmmvVm *vm);
guint64 hmmv_vm_get_slow_pages(const HmmvVm *vm);
/* Pages on one node, kept up to date like the tier counters (0 for an id out of range). */
guint64 hmmv_vm_get_node_pages(const HmmvVm *vm, int node_id);
/* The node whose CPUs run the VM's vCPUs (libvirt's vcpupin/numatune, or where its QEMU
 * threads may run), -1 when unknown (the default): its pages are promoted to the DRAM node
 * nearest it, else to the DRAM node holding most of them. */
void hmmv_vm_set_cpu_node(HmmvVm *vm, int node_id);
int hmmv_vm_get_cpu_node(const HmmvVm *vm);
/* The nodes the VM's memory may be on (bit n = node n; 0, the default: any), from its QEMU's
 * cpuset (Mems_allowed_list: libvirt's numatune mode strict or restrictive). move_pages(2)
 * refuses any other node with EACCES, so a full node never falls back outside them. */
void hmmv_vm_set_allowed_nodes(HmmvVm *vm, guint32 mask);
guint32 hmmv_vm_get_allowed_nodes(const HmmvVm *vm);
/* Pages per kernel node id (0 .. HMMV_PLACE_MAX_NODE_ID), recomputed by a scan. */
void hmmv_vm_count_nodes(const HmmvVm *vm, guint64 counts[HMMV_PLACE_MAX_NODE_ID + 1]);

/* Bytes of page state held per guest page, measured from the allocations. */
double hmmv_vm_bytes_per_page(const HmmvVm *vm);

HmmvMoveStats *hmmv_vm_get_move_stats(HmmvVm *vm);

/* Huge units (see HmmvUnit). THP state is kept per 2 MiB block of host address space that
 * holds pages of the 4 KiB-backed regions, in page order, not a THP until the mover says so.
 * A block is the VM's pages in it: all 512, or fewer at a range's edge (pc's RAM below 640 KiB
 * and from 1 MiB share one block: one block of 160 + 256 pages, as the kernel's THP there
 * moves all of them). Likewise a hugetlbfs page split between two ranges is one unit. */
guint64 hmmv_vm_get_nr_thp_blocks(const HmmvVm *vm);
/* First page of a block; G_MAXUINT64 when out of range. *nr_pages (may be NULL) gets its
 * pages. */
guint64 hmmv_vm_thp_block_first_page(const HmmvVm *vm, guint64 block, guint64 *nr_pages);
/* The block holding a page; FALSE when the page is in none (hugetlbfs). */
gboolean hmmv_vm_page_thp_block(const HmmvVm *vm, guint64 page, guint64 *block);
/* TRUE when the block's THP state changed. */
gboolean hmmv_vm_set_thp(HmmvVm *vm, guint64 block, gboolean thp);
gboolean hmmv_vm_get_thp(const HmmvVm *vm, guint64 block);
/* The huge units in page order (rebuilt after THP changes); *nr gets their count. */
HmmvUnit *hmmv_vm_get_units(HmmvVm *vm, guint64 *nr);
/* The huge unit holding page, NULL when the page is its own 4 KiB unit. */
const HmmvUnit *hmmv_vm_unit_of(HmmvVm *vm, guint64 page);
/* Pages a move of page moves: the pages of its unit (1 for a 4 KiB page). */
guint64 hmmv_vm_unit_pages(HmmvVm *vm, guint64 page);
/* Pages in THPs and in hugetlbfs pages. */
void hmmv_vm_get_huge_pages(HmmvVm *vm, guint64 *thp_pages, guint64 *hugetlb_pages);

/* Per-page failure backoff, so that pages that never move do not take the bandwidth cap
 * every interval. A page that failed its k-th move in a row (k <= 7) is tried again only in
 * intervals i with (i + page) % 2^k == 0: on average once in 2^k intervals, staggered over
 * pages. A move that lands resets it. The state is one byte a page, allocated at the VM's
 * first failure. Failures that are not the page's own (a full node, a page not present) are
 * not noted as failures; but a backed-off page refused for lack of room (its move in a call
 * that met ENOMEM or not tried after one, or its promotion left waiting for room) is no longer
 * held to its phase: it is not backed off until its next move is noted (it moved, or failed
 * again on its own). Its phase could fall on the intervals that try a full node again
 * (loop-batch.c's pause, both periods powers of two): one hot page stayed on the slow node
 * for 250 intervals (test-loop-backoff.c). */
void hmmv_vm_note_move_failed(HmmvVm *vm, guint64 page, HmmvUnmovableCause cause);
void hmmv_vm_note_move_no_room(HmmvVm *vm, guint64 page);
void hmmv_vm_note_moved(HmmvVm *vm, guint64 page);
/* TRUE when the page is backed off in interval `interval`. */
gboolean hmmv_vm_page_backed_off(const HmmvVm *vm, guint64 page, guint64 interval);
/* TRUE when the page's last move failed, counted as its own (noted above, not moved since):
 * what explains, page by page, a node the kernel reports other than the VM's record. */
gboolean hmmv_vm_page_move_failed(const HmmvVm *vm, guint64 page);
/* Pages currently backed off (0 when none: no scan is needed). */
guint64 hmmv_vm_get_nr_backed_off(const HmmvVm *vm);
void hmmv_vm_get_unmovable(const HmmvVm *vm, HmmvUnmovable *unmovable);
/* The string for a cause: "busy", "pinned", "shared", "other". */
const char *hmmv_unmovable_cause_to_string(HmmvUnmovableCause cause);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvVm, hmmv_vm_free)

G_END_DECLS
