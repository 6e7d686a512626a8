/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The interval's moves (loop-move.c). loop.c runs them in this order: demote (the demotions
 * that make room for promotions), and when the promotions want more than the pool has free,
 * the other demotions too (swap_demotions, demote, swap_demotions); limit_promotions;
 * promote; swap_demotions and demote (the demotions nothing waited for).
 */
#pragma once

#include "core-private.h"

/* Every VM's demote list (promote: promote list) spread over the slow (DRAM) nodes nearest
 * first, within each node's room now, and moved; what fits nowhere waits. A VM whose move
 * fails gets the error in its report and ok[i] FALSE; note names the nodes found full. */
void hmmv_core_demote(HmmvCore *core, gboolean *ok, HmmvIntervalReport *report, GString *note);
void hmmv_core_promote(HmmvCore *core, gboolean *ok, HmmvIntervalReport *report, GString *note);
/* Whether the VMs' promotions want more than the pool has free now. */
gboolean hmmv_core_promotions_wait(HmmvCore *core, const gboolean *ok);
/* Swaps every VM's demote list with its entry of later (GArray of guint64 per VM). */
void hmmv_core_swap_demotions(HmmvCore *core, GPtrArray *later);
/* Cuts the VMs' promotions to the pool's free DRAM, in proportion to what each wants (the
 * rest wait: deferred_room). */
void hmmv_core_limit_promotions(HmmvCore *core, const gboolean *ok, HmmvIntervalReport *report);

/* Pages that really reached dest_node start their cooldown (a huge unit as a whole); also
 * loop-home.c. */
void hmmv_core_start_cooldown(HmmvCore *core, HmmvVm *vm, const GArray *pages, int dest_node);
/* The failures a VM's move stats count, all causes; also loop-home.c. */
guint64 hmmv_core_move_failures(const HmmvMoveStats *stats);
