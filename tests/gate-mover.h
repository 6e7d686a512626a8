/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A test mover behind the mover vtable: the sim mover (which fails the way the kernel's
 * move_pages does) with a gate in front of every move call, and optionally the real time a
 * move takes. Closed, the gate holds each move call in flight (on whatever thread made it)
 * until it is opened: tests use it to hold an interval's move batch while they check that
 * the main loop still serves. ns_per_page > 0 makes each call sleep that long per page (the
 * tier model's 3900 ns for move_pages in 512-page batches), so a benchmark sees moves take
 * real time at the cap.
 */
#pragma once

#include <hmmv/hmmv.h>

HmmvMover *hmmv_gate_mover_new(const HmmvTopology *topo, guint64 ns_per_page, GError **error);
/* The sim mover inside (for hmmv_sim_mover_* calls). */
HmmvMover *hmmv_gate_mover_get_sim(HmmvMover *mover);
void hmmv_gate_mover_close(HmmvMover *mover);
void hmmv_gate_mover_open(HmmvMover *mover);
/* Move calls held at the gate now. Wakes the default main context when one arrives. */
guint hmmv_gate_mover_get_blocked(HmmvMover *mover);
/* Move calls made so far (held or not). */
guint64 hmmv_gate_mover_get_calls(HmmvMover *mover);
