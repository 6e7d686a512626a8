/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The co-run trace recorder's core (issue 12), apart from QEMU so it can be unit-tested:
 * guest-physical accesses go through the LLC model, the misses are counted per guest page
 * (loads as reads, stores as writes), every store also sets the page's stored bit (hit or
 * miss: what a dirty bitmap sees), and every interval_insns guest instructions the
 * counts become one interval of a version 3 trace (trace.h), with the instructions and
 * compute_ns = instructions * ns_per_insn.  recorder-plugin.c is the QEMU TCG plugin around it.
 *
 * Page = guest-physical address >> 12, for pages below ram_bytes; the pc machine's legacy
 * hole (0xa0000-0xfffff: VGA memory, option ROMs, BIOS) is not RAM and is dropped, as is
 * everything at or above ram_bytes (ROM and RAM above 4 GiB: small VMs have none).
 */
#pragma once

#include "llc.h"

#include <hmmv/trace.h>

typedef struct {
  const char *trace_path;
  guint64 ram_bytes;         /* guest RAM below 4 GiB: the trace's nr_pages * 4096 */
  guint64 llc_bytes;         /* default 4 MiB */
  guint llc_ways;            /* default 16 */
  guint64 interval_insns;    /* default 50,000,000 */
  double ns_per_insn;        /* default 0.5 (2 GHz at one instruction a cycle) */
  guint64 max_intervals;     /* 0: no limit; else the trace is complete (closed) after N */
} HmmvRecorderOptions;

typedef struct {
  guint64 accesses;          /* RAM accesses seen */
  guint64 misses;            /* of them, LLC misses (counted in the trace) */
  guint64 dropped;           /* not RAM: the legacy hole, at or above ram_bytes */
  guint64 instructions;
  guint64 intervals;         /* written */
  guint64 saturated;         /* page counts that stopped at 2^32 - 1 */
} HmmvRecorderStats;

typedef struct _HmmvRecorder HmmvRecorder;

HmmvRecorder *hmmv_recorder_new(const HmmvRecorderOptions *options, GError **error);
void hmmv_recorder_access(HmmvRecorder *rec, guint64 phys_addr, gboolean is_store);
/* n more instructions; writes an interval each time interval_insns are complete. */
gboolean hmmv_recorder_add_insns(HmmvRecorder *rec, guint64 n, GError **error);
/* TRUE once max_intervals are written: the trace is closed, later accesses and instructions
 * are not counted (a co-run stops its VMs then; all its traces have the same length). */
gboolean hmmv_recorder_is_complete(const HmmvRecorder *rec);
/* Writes what is left as a last interval (if it executed anything) and closes the trace;
 * nothing more once complete. */
gboolean hmmv_recorder_finish(HmmvRecorder *rec, GError **error);
void hmmv_recorder_get_stats(const HmmvRecorder *rec, HmmvRecorderStats *stats);
void hmmv_recorder_free(HmmvRecorder *rec);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvRecorder, hmmv_recorder_free)
