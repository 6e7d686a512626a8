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

G_END_DECLS
