/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The balance suites' cases (test-balance.c, test-balance-nodes.c): VMs with histograms and
 * quotas, random ones, and the invariants every balance keeps. */
#pragma once

#include "hmmv-test.h"

#define MAX_TEST_VMS 5
#define SENTINEL G_GUINT64_CONSTANT(0xdeadbeef)   /* a budget the balance has not written */

/* Keys with distinct benefits, from cold to hot, plus neighbours that may tie. */
#define NR_TEST_KEYS 9
extern const guint test_keys[NR_TEST_KEYS];

typedef struct {
  HmmvHistogram hist[MAX_TEST_VMS];
  HmmvBalanceVm vms[MAX_TEST_VMS];
  guint nr_vms;
  guint64 pool;
} Case;

/* A VM's max, or all its pages without one. */
guint64 effective_max(const HmmvBalanceVm *vm);
/* Points each VM at its histogram (after the case is filled or copied). */
void case_link(Case *c);
/* 1..max_vms random VMs of up to max_pages each (histograms over test_keys, sometimes short
 * of nr_pages; min/max/weight/prev), and a pool of at least their mins. */
void random_case(GRand *rand, Case *c, guint max_vms, guint max_pages);
/* hmmv_balance over the case's pool; the test fails on an error. */
void balance_ok(Case *c);
/* Mins kept, no budget above its max, the pool not exceeded and idle only when every VM is
 * at its max. */
void check_invariants(const Case *c);
/* check_invariants with the mins as granted (they may be scaled). */
void check_invariants_scaled(const Case *c);
