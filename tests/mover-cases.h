/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One set of mover cases, run against the sim mover (test-mover-sim) and against the numa
 * mover on a forked child (test-mover-numa: on this host and on real nodes in the testbed).
 * Each case states what the pages are (present on a node, never touched, pinned, ...); the
 * host builds a VM like that and hands over a mover; the case moves pages and checks the
 * outcome against what move_pages(2) really does, and the VM's record against a fresh query.
 */
#pragma once

#include "hmmv-test.h"

/* What a case wants of one page (node 0 is DRAM, node 1 the slow tier). */
enum {
  CASE_ABSENT,            /* mapped, never touched */
  CASE_NODE0,             /* touched, on node 0 */
  CASE_NODE1,             /* touched, on node 1 */
  CASE_PINNED0,           /* on node 0 with a reference migration cannot drop (vmsplice) */
  CASE_SHARED0,           /* on node 0, mapped by a second process too */
};

/* What a case needs of the host. */
enum {
  CASE_NEEDS_TWO_NODES = 1 << 0,
  CASE_NEEDS_SLOW_ROOM = 1 << 1,     /* a slow node with room for only about slow_room pages */
  CASE_NEEDS_THP = 1 << 2,           /* transparent huge pages (enabled: madvise or always) */
  CASE_NEEDS_HUGETLB = 1 << 3,       /* free 2 MiB hugetlbfs pages on both nodes (4 each) */
};

/* How a case's pages are backed. */
typedef enum {
  CASE_BACKING_4K,                   /* 4 KiB pages: THP off for the range (MADV_NOHUGEPAGE) */
  CASE_BACKING_THP,                  /* THPs: 2 MiB aligned, MADV_HUGEPAGE, faulted whole */
  CASE_BACKING_HUGETLB,              /* hugetlbfs 2 MiB pages (MAP_HUGETLB); the VM's region
                                      * says so (backing_page_size 2 MiB) */
} CaseBacking;

typedef struct {
  const char *name;
  guint supports;         /* CASE_NEEDS_* this host meets */
  gboolean move_all;      /* the mover may use MPOL_MF_MOVE_ALL (CAP_SYS_NICE) */
  gboolean exact_room;    /* slow_room is exact (a model); else about that much (a real node
                           * filled for the case: the kernel's reserves and per-CPU lists
                           * decide the rest) */
  /* build a VM of nr_pages laid out as spec (CASE_* per page); slow_room > 0 limits what
   * node 1 takes. Fills *vm and *mover (the host keeps ownership of neither). */
  void (*setup)(const guint8 *spec, guint64 nr_pages, guint64 slow_room, CaseBacking backing,
                HmmvVm **vm, HmmvMover **mover);
  void (*teardown)(void);
} MoverCaseHost;

/* Adds every case the host supports to tc; prints a TAP comment naming the others. */
void mover_cases_add(TCase *tc, const MoverCaseHost *host);
