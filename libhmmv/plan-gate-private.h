/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The planner's payback gate (plan-gate.c), per key, for its decision (plan.c). */
#pragma once

#include "vm-private.h"

#include <hmmv/params.h>
#include <hmmv/temperature.h>

/* The payback gate on the tier model, per key (see plan.h). */
typedef struct {
  guint min_key;                 /* coldest key a promotion pays for */
  guint room_min_key;            /* coldest key promoted into free room (>= min_key) */
  int swap_max[HMMV_NR_KEYS];    /* hottest demotion key a promotion of key k may displace */
} PlanGate;

/* The gate of one plan of vm: params' costs, and the noise of vm's keys (its accessed pages'
 * weight, vm-private.h). */
void hmmv_plan_gate_init(PlanGate *gate, const HmmvParams *params, const HmmvVm *vm);
