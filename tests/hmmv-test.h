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

/* Remove a test's scratch tree (files and directories below path, then path). */
void hmmv_test_remove_tree(const char *path);
