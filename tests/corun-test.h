/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Helpers shared by the co-run suites (test-corun-policies.c, test-corun-setup.c). */
#pragma once

#include "hmmv-test.h"
#include "model.h"

/* The optane tier profile of tests/bench/corun/profiles (the test fails without it). */
CorunProfile *corun_test_profile(void);
