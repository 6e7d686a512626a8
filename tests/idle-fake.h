/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A fake of the kernel's idle page tracking for the unit tests: mm/page_idle.c's bitmap
 * (64-bit words of frame bits, 8-byte aligned offsets and sizes or EINVAL, reads past the
 * last frame return 0 bytes and count only whole words below it, writes there fail with
 * ENXIO, writing 1 marks a user frame idle and 0 does nothing, reading clears the frame's
 * page-table accessed bit and its idle flag when the bit was set) and fs/proc/task_mmu.c's
 * pagemap (8-byte entries, EINVAL when misaligned, ESRCH for a process that is gone,
 * present bit 63, frame number 0 without CAP_SYS_ADMIN).
 */
#pragma once

#include <hmmv/reads.h>

typedef struct _IdleFake IdleFake;

/* A fake machine of nr_frames frames (need not be a multiple of 64). The HmmvIdleIo returned
 * is owned by the caller (the tracker, once given to it); the IdleFake lives until
 * idle_fake_free, after the io. */
IdleFake *idle_fake_new(guint64 nr_frames);
HmmvIdleIo *idle_fake_io(IdleFake *fake);
void idle_fake_free(IdleFake *fake);

/* Maps virtual page vpn of pid to frame pfn (a user page on the LRU). */
void idle_fake_map(IdleFake *fake, int pid, guint64 vpn, guint64 pfn);
void idle_fake_unmap(IdleFake *fake, int pid, guint64 vpn);
/* Moves the page to frame new_pfn, carrying its idle flag and accessed bit, as migration
 * does (folio_migrate_flags). */
void idle_fake_migrate(IdleFake *fake, int pid, guint64 vpn, guint64 new_pfn);
/* The CPU touches the page: its page-table accessed bit is set. */
void idle_fake_touch(IdleFake *fake, int pid, guint64 vpn);
/* Another user of the bitmap (or a frame of another process) */
void idle_fake_set_frame_idle(IdleFake *fake, guint64 pfn, gboolean idle);
gboolean idle_fake_frame_idle(IdleFake *fake, guint64 pfn);
void idle_fake_set_privileged(IdleFake *fake, gboolean privileged);
void idle_fake_kill(IdleFake *fake, int pid);

typedef struct {
  guint64 einval;           /* calls refused for alignment */
  guint64 bitmap_reads, bitmap_writes, pagemap_reads;
  guint64 frames_walked;    /* frames the bitmap calls went through */
} IdleFakeStats;

const IdleFakeStats *idle_fake_stats(IdleFake *fake);
