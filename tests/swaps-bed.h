/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The squeeze in a unit test (test-loop-batch.c, test-loop-backoff.c): three VMs whose hot
 * sets must reach a DRAM node full of their cold pages by swaps, the node's free count
 * showing room the kernel will not give (ENOMEM), on the sim mover. */
#pragma once

#include "hmmv-test.h"

typedef struct {
  gboolean hog;        /* another process takes node 0's free pages (swaps-bed.c: Hog) */
  guint busy_from;     /* a fifth of each hot set is EBUSY from this interval... */
  guint busy_to;       /* ...to this one (excluded); 0: never busy */
  guint max_intervals; /* the run stops here at the latest */
} SwapsOpts;

typedef struct {
  guint64 promoted, demoted;
  guint64 stolen;      /* node-0 pages the other process took */
  guint64 must_free;   /* pages the budgets made the VMs free (the E's, swaps-bed.c) */
  guint done_at;       /* the interval after which every hot page was on DRAM; 0: never */
  guint full_tries;    /* intervals after vm0's first ENOMEM */
  guint hot_left;      /* hot pages not on DRAM at the end */
  guint64 stuck_page;  /* one of them (vm, page below): the last one seen */
  guint stuck_vm;
} SwapsResult;

/* Runs the squeeze; asserts, every interval and VM, that no demotion was for nothing (the
 * bound in swaps-bed.c) and that nothing else failed. */
void swaps_run(const SwapsOpts *opts, SwapsResult *res);
