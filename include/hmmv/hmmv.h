/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv: umbrella header of libhmmv. */
#pragma once

#include <hmmv/error.h>
#include <hmmv/topology.h>
#include <hmmv/params.h>
#include <hmmv/vm.h>
#include <hmmv/access.h>
#include <hmmv/temperature.h>
#include <hmmv/units.h>
#include <hmmv/classify.h>
#include <hmmv/plan.h>
#include <hmmv/balance.h>
#include <hmmv/tracker.h>
#include <hmmv/mover.h>
#include <hmmv/trace.h>
#include <hmmv/core.h>
#include <hmmv/json.h>
#include <hmmv/qmp.h>
#include <hmmv/qemu.h>
#include <hmmv/reads.h>
