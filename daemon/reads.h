/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's read source: chosen once at start-up from what the kernel offers ([reads] source
 * = auto tries DAMON vaddr, then idle page tracking, then DAMON paddr), said in the log and
 * in `hmmvctl status`, and combined with each VM's qemu-dirty tracker. Deciding writes
 * nothing: DAMON's sysfs is only written when a VM's tracker takes a kdamond that is free,
 * the idle bitmap only by a VM's tracker.
 */
#pragma once

#include "config.h"

G_BEGIN_DECLS

typedef struct _HmmvdReads HmmvdReads;

/* Never fails: with no usable source, the reason is kept and VMs get writes only. */
HmmvdReads *hmmvd_reads_new(const HmmvdConfig *config, HmmvSysfs *fs);
/* The same choice, not logged (hmmvctl track --reads prints it its own way). */
HmmvdReads *hmmvd_reads_new_quiet(const HmmvdConfig *config, HmmvSysfs *fs);
/* The same with the idle page tracking files elsewhere (tests): bitmap_path NULL is the
 * kernel's; make_idle_io, when set, makes each VM's tracker's files. */
HmmvdReads *hmmvd_reads_new_full(const HmmvdConfig *config, HmmvSysfs *fs,
                                 const char *bitmap_path,
                                 HmmvIdleIo *(*make_idle_io)(gpointer data), gpointer data);
void hmmvd_reads_free(HmmvdReads *reads);
/* "damon-vaddr", "idle-page", "damon-paddr" or "none" */
const char *hmmvd_reads_get_source(const HmmvdReads *reads);
/* Why not a better source (NULL when the first choice is in use). */
const char *hmmvd_reads_get_reason(const HmmvdReads *reads);
/* The tracker for a VM: writes alone, or writes combined with a new read tracker. Takes
 * writes. */
HmmvTracker *hmmvd_reads_wrap(HmmvdReads *reads, HmmvTracker *writes);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdReads, hmmvd_reads_free)

G_END_DECLS
