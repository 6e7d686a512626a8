/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The fake two-socket Optane host of the nodes suites (test-nodes.c, test-loop-home.c): DRAM
 * nodes 0 and 1 with CPUs, CPU-less slow nodes 2 (socket 0) and 3 (socket 1) (SLIT 10 own
 * node, 21 the other DRAM, 17 own slow node, 28 the other socket's), a core on the sim mover
 * and NR_VMS VMs with fake trackers.
 */
#pragma once

#include "hmmv-test.h"

#define VM_PAGES 1024           /* each VM's */
#define DRAM_NODE_PAGES 2048    /* nodes 0 and 1 */
#define SLOW_NODE_PAGES 8192    /* nodes 2 and 3 */
#define NR_VMS 2

HmmvTopology *two_socket_topology(void);
/* The host with a pool of pool_pages (0: the DRAM nodes'); vm i runs on socket i (cpu_node
 * i), or nowhere known when cpu_nodes is FALSE. */
void two_socket_setup(HmmvTestCore *bed, guint64 pool_pages, gboolean cpu_nodes);
/* vm0's hot set, demoted to its slow node 2: under a pool of VM_PAGES every page of both VMs
 * is touched, then pages 0..127 are written for 12 intervals while the rest goes cold; the
 * 128 pages of vm0 then on node 2 (the test fails when there are fewer). The pool is the
 * DRAM nodes' again after it. */
GArray *two_socket_demoted_hot_set(HmmvTestCore *bed, HmmvIntervalReport *report);
/* Another process fills DRAM node 0: 16 pages free, 64 kept for the host. */
void two_socket_fill_node0(HmmvTestCore *bed);
