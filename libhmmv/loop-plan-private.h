/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One VM's plan for the interval (loop-plan.c). */
#pragma once

#include "core-private.h"

/* Cuts and plans one VM: fills cvm->plan and rep's hot and deferred figures, or keeps the last
 * plan (rep->plan_kept) when the VM is settled and this interval brought nothing new. */
void hmmv_core_plan(HmmvCore *core, CoreVm *cvm, HmmvVmReport *rep);
