/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The qemu-dirty tracker's state, shared by qemu-dirty.c (start, layout, harvest) and
 * qemu-dirty-pause.c (hmmv-pause / hmmv-resume while the core says COARSE). */
#pragma once

#include "../shm.h"

#include <hmmv/qemu.h>
#include <hmmv/qmp.h>
#include <hmmv/tracker.h>

G_BEGIN_DECLS

typedef struct {
  HmmvQmp *qmp;
  HmmvQemuDirtyOptions options;
  HmmvShm *shm;
  GArray *blocks;           /* BlockMap */
  guint64 last_generation;
  guint64 layout_generation;  /* the header's, when the blocks were last checked */
  GArray *block_layouts;      /* guint32 per region block: its layout generation then */
  HmmvQemuDirtyStats stats;
  gboolean active;
  gboolean prestarted;      /* started by hmmv_qemu_dirty_tracker_prestart(), not yet used */
  char **exclude;           /* NULL: export all */
  gboolean excluding;       /* the running export excludes them */
  gboolean no_exclude;      /* QEMU refused exclude (said once) */
  gboolean no_pause;        /* QEMU has no hmmv-pause (said once) */
  gboolean no_fdset;        /* hmmv-start takes no fd set here: the region goes with getfd */
  char *vm_name;
  HmmvPauseCycle cycle;
  gboolean qemu_paused;     /* what QEMU was last told */
  GError *missed;           /* a pause or resume QEMU did not answer: the harvest's error */
  gboolean pause_unsure;    /* since then, QEMU's pause may not be qemu_paused */
} QemuDirty;

/* QEMU's answer to a command it does not know, or to an argument it does not take. */
gboolean hmmv_qemu_dirty_lacks(const GError *error, const char *what);

/* The end of a successful harvest: pause or resume as the cycle says (pause_when_coarse).
 * FALSE, with the error, when QEMU did not answer the pause or resume. */
gboolean hmmv_qemu_dirty_pause_after_harvest(QemuDirty *qd, GError **error);

/* A daemon-paced harvest's hmmv-sync answered (sync_return: its "return"): QEMU's word on its
 * pause replaces what the tracker knew (qemu-dirty-pause.c, "stale"). */
void hmmv_qemu_dirty_pause_from_sync(QemuDirty *qd, JsonNode *sync_return);
/* A harvest without hmmv-sync (QEMU on its own timer) after a pause or resume that missed its
 * deadline: query-hmmv says whether QEMU is paused. FALSE, with the error, when QEMU did not
 * answer. */
gboolean hmmv_qemu_dirty_pause_check(QemuDirty *qd, GError **error);

/* hmmv_tracker_ops' set_watch and is_paused */
void hmmv_qemu_dirty_set_watch(HmmvTracker *tracker, HmmvWatch watch);
gboolean hmmv_qemu_dirty_is_paused(HmmvTracker *tracker);

G_END_DECLS
