/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The fake idle page tracking of idle-fake.h. */
#include "idle-fake.h"

#include <errno.h>
#include <string.h>

#define PM_PRESENT (G_GUINT64_CONSTANT(1) << 63)

typedef struct {
  gboolean user;            /* on the LRU: idle tracking only sees user pages */
  gboolean idle;            /* PG_idle */
  gboolean young;           /* the accessed bit of the pte mapping it */
} FakeFrame;

struct _IdleFake {
  guint64 nr_frames;
  FakeFrame *frames;
  GHashTable *maps;         /* pid -> GHashTable (vpn -> pfn + 1) */
  gboolean privileged;
  IdleFakeStats stats;
};

static GHashTable *
pid_map(IdleFake *fake, int pid, gboolean create)
{
  GHashTable *map = g_hash_table_lookup(fake->maps, GINT_TO_POINTER(pid));

  if (map == NULL && create) {
    map = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    g_hash_table_insert(fake->maps, GINT_TO_POINTER(pid), map);
  }
  return map;
}

/* page_idle_clear_pte_refs: a set accessed bit is cleared and clears the idle flag */
static void
clear_refs(FakeFrame *f)
{
  if (f->young) {
    f->young = FALSE;
    f->idle = FALSE;
  }
}

static gssize
fake_read_bitmap(HmmvIdleIo *io, guint64 *out, gsize count, guint64 pos)
{
  IdleFake *fake = io->priv;
  guint64 pfn, end;
  gsize done = 0;

  fake->stats.bitmap_reads++;
  if (pos % 8 || count % 8) {
    fake->stats.einval++;
    return -EINVAL;
  }
  pfn = pos * 8;
  if (pfn >= fake->nr_frames)
    return 0;
  end = MIN(pfn + count * 8, fake->nr_frames);
  for (; pfn < end; pfn++) {
    guint bit = pfn % 64;
    FakeFrame *f = &fake->frames[pfn];

    if (bit == 0)
      out[done] = 0;
    fake->stats.frames_walked++;
    if (f->user && f->idle) {
      clear_refs(f);
      if (f->idle)
        out[done] |= G_GUINT64_CONSTANT(1) << bit;
    }
    if (bit == 63)
      done++;
  }
  return (gssize)(done * 8);   /* a last, partial word is not counted */
}

static gssize
fake_write_bitmap(HmmvIdleIo *io, const guint64 *in, gsize count, guint64 pos)
{
  IdleFake *fake = io->priv;
  guint64 pfn, end;
  gsize done = 0;

  fake->stats.bitmap_writes++;
  if (pos % 8 || count % 8) {
    fake->stats.einval++;
    return -EINVAL;
  }
  pfn = pos * 8;
  if (pfn >= fake->nr_frames)
    return -ENXIO;
  end = MIN(pfn + count * 8, fake->nr_frames);
  for (; pfn < end; pfn++) {
    guint bit = pfn % 64;
    FakeFrame *f = &fake->frames[pfn];

    fake->stats.frames_walked++;
    if (((in[done] >> bit) & 1) && f->user) {
      clear_refs(f);
      f->young = FALSE;
      f->idle = TRUE;
    }
    if (bit == 63)
      done++;
  }
  return (gssize)(done * 8);
}

static gssize
fake_read_pagemap(HmmvIdleIo *io, int pid, guint64 *out, gsize count, guint64 pos)
{
  IdleFake *fake = io->priv;
  GHashTable *map = pid_map(fake, pid, FALSE);

  fake->stats.pagemap_reads++;
  if (map == NULL)
    return -ESRCH;
  if (pos % 8 || count % 8) {
    fake->stats.einval++;
    return -EINVAL;
  }
  for (gsize i = 0; i < count / 8; i++) {
    gint64 vpn = (gint64)(pos / 8 + i);
    guint64 *pfn1 = g_hash_table_lookup(map, &vpn);

    out[i] = pfn1 == NULL ? 0 : PM_PRESENT | (fake->privileged ? *pfn1 - 1 : 0);
  }
  return (gssize)count;
}

static const struct hmmv_idle_io_ops fake_ops = {
  .name = "idle-fake",
  .read_bitmap = fake_read_bitmap,
  .write_bitmap = fake_write_bitmap,
  .read_pagemap = fake_read_pagemap,
};

IdleFake *
idle_fake_new(guint64 nr_frames)
{
  IdleFake *fake = g_new0(IdleFake, 1);

  fake->nr_frames = nr_frames;
  fake->frames = g_new0(FakeFrame, nr_frames);
  fake->maps = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                     (GDestroyNotify)g_hash_table_unref);
  fake->privileged = TRUE;
  return fake;
}

HmmvIdleIo *
idle_fake_io(IdleFake *fake)
{
  return hmmv_idle_io_new(&fake_ops, fake);
}

void
idle_fake_free(IdleFake *fake)
{
  g_hash_table_unref(fake->maps);
  g_free(fake->frames);
  g_free(fake);
}

void
idle_fake_map(IdleFake *fake, int pid, guint64 vpn, guint64 pfn)
{
  gint64 *key = g_new(gint64, 1);
  guint64 *value = g_new(guint64, 1);

  g_assert(pfn < fake->nr_frames);
  *key = (gint64)vpn;
  *value = pfn + 1;
  g_hash_table_replace(pid_map(fake, pid, TRUE), key, value);
  fake->frames[pfn] = (FakeFrame){ .user = TRUE };
}

void
idle_fake_unmap(IdleFake *fake, int pid, guint64 vpn)
{
  gint64 key = (gint64)vpn;
  guint64 *pfn1 = g_hash_table_lookup(pid_map(fake, pid, TRUE), &key);

  if (pfn1 != NULL) {
    fake->frames[*pfn1 - 1] = (FakeFrame){ 0 };
    g_hash_table_remove(pid_map(fake, pid, TRUE), &key);
  }
}

void
idle_fake_migrate(IdleFake *fake, int pid, guint64 vpn, guint64 new_pfn)
{
  gint64 key = (gint64)vpn;
  guint64 *pfn1 = g_hash_table_lookup(pid_map(fake, pid, TRUE), &key);

  g_assert(pfn1 != NULL && new_pfn < fake->nr_frames && !fake->frames[new_pfn].user);
  fake->frames[new_pfn] = fake->frames[*pfn1 - 1];
  fake->frames[*pfn1 - 1] = (FakeFrame){ 0 };
  *pfn1 = new_pfn + 1;
}

void
idle_fake_touch(IdleFake *fake, int pid, guint64 vpn)
{
  gint64 key = (gint64)vpn;
  guint64 *pfn1 = g_hash_table_lookup(pid_map(fake, pid, TRUE), &key);

  g_assert(pfn1 != NULL);
  fake->frames[*pfn1 - 1].young = TRUE;
}

void
idle_fake_set_frame_idle(IdleFake *fake, guint64 pfn, gboolean idle)
{
  fake->frames[pfn].user = TRUE;
  fake->frames[pfn].idle = idle;
}

gboolean
idle_fake_frame_idle(IdleFake *fake, guint64 pfn)
{
  return fake->frames[pfn].idle;
}

void
idle_fake_set_privileged(IdleFake *fake, gboolean privileged)
{
  fake->privileged = privileged;
}

void
idle_fake_kill(IdleFake *fake, int pid)
{
  g_hash_table_remove(fake->maps, GINT_TO_POINTER(pid));
}

const IdleFakeStats *
idle_fake_stats(IdleFake *fake)
{
  return &fake->stats;
}
