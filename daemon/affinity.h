/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Which node's CPUs run a VM (affinity.c). */
#pragma once

#include <hmmv/hmmv.h>

G_BEGIN_DECLS

/* CPU ids looked at in a Cpus_allowed_list (NR_CPUS is at most 8192 on x86-64). */
#define HMMVD_AFFINITY_MAX_CPU 8191u

/* The node whose CPUs run the QEMU process pid, or -1. *source says how it was found:
 * "cpu-affinity" (threads pinned within one node), "mems-allowed" (the cpuset's memory holds
 * one DRAM node), or "pages" (-1: the core uses where most of the VM's pages are).
 * proc_root: NULL for /proc; tests pass a fake tree. */
int hmmvd_affinity_cpu_node(const char *proc_root, int pid, const HmmvTopology *topo,
                            const char **source);

/* The nodes QEMU's memory may be on: the Mems_allowed_list of pid's task (its cpuset.mems:
 * libvirt's numatune strict or restrictive, numactl --membind under a cpuset, systemd's
 * AllowedMemoryNodes), as a bit per node id 0..HMMV_MAX_NODE_ID. move_pages(2) checks exactly
 * this task's set (cpuset_mems_allowed) and refuses any other node with EACCES. FALSE when
 * the file cannot be read (the process is gone) or the list is malformed. */
gboolean hmmvd_affinity_mems_allowed(const char *proc_root, int pid, guint32 *mask);

/* Status files hmmvd_affinity_cpu_node has read so far (the tests count them). */
guint64 hmmvd_affinity_get_status_reads(void);

G_END_DECLS
