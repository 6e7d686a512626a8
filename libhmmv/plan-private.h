/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Planner helpers shared with the core (loop.c). */
#pragma once

#include "vm-private.h"

/* Set the cooldown of a page's place byte to n intervals (capped at HMMV_PLACE_COOLDOWN_MAX).
 * The core calls it on every page the mover really moved, with params->cooldown_intervals;
 * the planner never sets it, it only ages it (one per hmmv_plan_build), and a page whose
 * cooldown was non-zero when the build started is not a candidate in that build. So n = 2
 * keeps a moved page out of the next two plans. It also tells the VM how many builds must
 * age cooldowns (vm->cooling_builds), so that builds with none skip the aging pass. */
static inline void
hmmv_place_set_cooldown(HmmvVm *vm, guint64 page, guint n)
{
  guint mask = HMMV_PLACE_COOLDOWN_MAX << HMMV_PLACE_COOLDOWN_SHIFT;

  n = MIN(n, HMMV_PLACE_COOLDOWN_MAX);
  vm->place[page] = (guint8)((vm->place[page] & ~mask) | (n << HMMV_PLACE_COOLDOWN_SHIFT));
  vm->cooling_builds = MAX(vm->cooling_builds, n);
}
