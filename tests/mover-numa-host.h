/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The numa mover's host for the shared mover cases (mover-cases.h), used by test-mover-numa:
 * a forked child per case plays QEMU and lays its pages out as the case says.
 */
#pragma once

#include "mover-cases.h"

/* This host's one node as DRAM, and a node 1 it does not have as the slow tier. */
HmmvTopology *mover_numa_host_topology(void);

/* setup/teardown of the cases' child; supports and move_all are the caller's to fill */
extern const MoverCaseHost mover_numa_case_host;

/* Reads node 1's 2 MiB hugetlbfs pool as found (call it in the runner, before the cases fork)
 * and has tc put it back before each of its units and after its last: case_full_target_node
 * fills node 1 by growing that pool, and whatever becomes of that case, the cases after it and
 * the host get node 1 as it was. Needed by any tc that runs that case. */
void mover_numa_host_keep_node1_pool(TCase *tc);

/* CASE_NEEDS_THP and CASE_NEEDS_HUGETLB where this host can give them */
guint mover_numa_host_huge_support(void);
