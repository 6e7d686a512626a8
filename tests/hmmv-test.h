/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the Check suites. */
#pragma once

#include <check.h>
#include <hmmv/hmmv.h>

/* Run a suite with TAP on stdout; returns the process exit code. */
int hmmv_test_run(Suite *suite);
/* Print a TAP plan that skips the whole program, with the reason; returns 0. Meson's TAP
 * parser reports it as SKIP. */
int hmmv_test_skip_all(const char *reason);
/* A VM of nr_pages pages in one region at guest-physical 0, host address 0, finalized. */
HmmvVm *hmmv_test_vm_new(const char *name, guint64 nr_pages);
/* A topology with one DRAM node 0 and one slow node 1 of the given sizes. */
HmmvTopology *hmmv_test_topology_two_tier(guint64 dram_bytes, guint64 slow_bytes);
/* A two-socket host with Optane-like slow memory: DRAM nodes 0 and 1 with CPUs 0-3 and 4-7,
 * CPU-less slow nodes 2 (socket 0) and 3 (socket 1); SLIT 10 own node, 21 the other DRAM
 * node, 17 own slow node, 28 the other socket's. */
HmmvTopology *hmmv_test_topology_two_socket(guint64 dram_node_bytes, guint64 slow_node_bytes);

/* A core on the sim mover, fed by fake trackers: what the core's suites run intervals on. */
#define HMMV_TEST_MAX_VMS 8
typedef struct {
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvTracker *trackers[HMMV_TEST_MAX_VMS];   /* borrowed: the core owns them */
  guint nr_vms;
} HmmvTestCore;

/* A core on topo (the bed then owns it) with the sim mover and a pool of pool_pages (0: the
 * DRAM nodes' total); params NULL: the defaults without a migration cap (placement, not
 * pacing). */
void hmmv_test_core_init(HmmvTestCore *bed, HmmvTopology *topo, const HmmvParams *params,
                         guint64 pool_pages);
/* Adds vm (the core owns it) with a fake tracker, bed->trackers[bed->nr_vms]. */
void hmmv_test_core_add(HmmvTestCore *bed, HmmvVm *vm);
/* Adds VM "vm<index>" of nr_pages with a fake tracker, its vCPUs on cpu_node (-1: unknown). */
HmmvVm *hmmv_test_core_add_vm(HmmvTestCore *bed, guint64 nr_pages, int cpu_node);
void hmmv_test_core_clear(HmmvTestCore *bed);
/* Queues writes of pages [first, first + nr) of VM vm for the next interval. */
void hmmv_test_core_write(HmmvTestCore *bed, guint vm, guint64 first, guint64 nr);
/* Queues writes of the pages (guint64 page numbers) of VM vm. */
void hmmv_test_core_write_pages(HmmvTestCore *bed, guint vm, const GArray *pages);
/* Runs one interval; fails the test on any VM's error. */
void hmmv_test_core_run(HmmvTestCore *bed, HmmvIntervalReport *report);
const HmmvVmReport *hmmv_test_vm_report(const HmmvIntervalReport *report, guint vm);

/* Remove a test's scratch tree (files and directories below path, then path). */
void hmmv_test_remove_tree(const char *path);
/* command's return (the caller's to unref); the test fails when QMP or QEMU refuses it. */
JsonNode *hmmv_test_qmp_ok(HmmvQmp *qmp, const char *command, JsonObject *args);
