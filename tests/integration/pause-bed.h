/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The bed of the pause suites (test-qemu-pause.c, test-qemu-pause-stop.c): the patched QEMU
 * under TCG with the test guest on two memory backends, m0 at guest-physical 0-64 MiB and m1
 * at 64-128 MiB (one NUMA node each), the guest writing random pages in a window across both
 * (16-112 MiB), phase by phase.
 */
#pragma once

#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <hmmv/qemu.h>

#define SERIAL_TIMEOUT_MS 60000
#define RAM_MIB 128
#define BASE_PFN 0x1000u    /* 16 MiB */
#define SPAN 24576u         /* 96 MiB: 16-112 MiB, across m0 and m1 */
#define M1_FIRST_PFN 0x4000u /* 64 MiB */

typedef struct {
  HmmvQemuProc *proc;
  HmmvQmp *qmp;
  int fd;                   /* the region the test maps, or -1 */
  guint8 *map;
  gsize size;
} Pause;

/* main(): FALSE with why when the suite must skip (not root, no patched QEMU, or one whose
 * BUILD-INFO lists neither pause patch). */
gboolean pause_bed_prepare(char **why);
/* Boot the guest with append (its kernel command line) and connect to QMP. */
void pause_bed_boot(Pause *p, const char *append);
/* Unmap and close the test's region, if any. */
void pause_bed_unmap(Pause *p);
void pause_bed_shutdown(Pause *p);
/* Run the guest's phase k; wrote gets the pfns it wrote. */
void pause_bed_run_phase(Pause *p, guint k, GHashTable *wrote);
/* query-hmmv's paused (the export must be active). */
gboolean pause_bed_query_paused(Pause *p);
/* Guest pfns in the window that the harvest marked written (a new set). */
GHashTable *pause_bed_harvested(HmmvVm *vm, HmmvAccess *acc);
gboolean pause_bed_same_set(GHashTable *a, GHashTable *b);
