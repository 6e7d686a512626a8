/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading /proc/PID/maps (see procmaps.h).
 */
#include "procmaps.h"

#include <errno.h>
#include <hmmv/error.h>
#include <stdlib.h>
#include <string.h>

GArray *
hmmv_proc_maps_parse(const char *text, gsize len, GError **error)
{
  g_autoptr(GArray) maps = g_array_new(FALSE, FALSE, sizeof(HmmvProcMapping));
  const char *p = text, *end = text + len;
  guint line = 0;

  while (p < end) {
    const char *eol = memchr(p, '\n', (gsize)(end - p));
    g_autofree char *copy = g_strndup(p, (gsize)((eol != NULL ? eol : end) - p));
    HmmvProcMapping m = { 0 };
    char *rest = NULL;

    line++;
    p = eol != NULL ? eol + 1 : end;
    if (copy[0] == '\0')
      continue;
    /* "start-end perms offset dev inode [path]", addresses in hex */
    errno = 0;
    m.start = g_ascii_strtoull(copy, &rest, 16);
    if (errno == 0 && rest != NULL && *rest == '-')
      m.end = g_ascii_strtoull(rest + 1, &rest, 16);
    if (errno != 0 || rest == NULL || *rest != ' ' || strlen(rest) < 5 || m.end <= m.start ||
        (maps->len > 0 && m.start < g_array_index(maps, HmmvProcMapping, maps->len - 1).end)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "maps line %u does not parse", line);
      return NULL;
    }
    m.writable = rest[1] == 'r' && rest[2] == 'w';
    g_array_append_val(maps, m);
  }
  return g_steal_pointer(&maps);
}

GArray *
hmmv_proc_maps_read(int pid, GError **error)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/maps", pid);
  g_autofree char *text = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize len = 0;
  GArray *maps;

  if (pid <= 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED, "QEMU's pid is unknown");
    return NULL;
  }
  /* At most max_map_count (65530) lines of ~100 bytes: a few MiB. */
  if (!g_file_get_contents(path, &text, &len, &local_error)) {
    g_set_error(error, HMMV_ERROR,
                g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT) ? HMMV_ERROR_GONE
                                                                              : HMMV_ERROR_IO,
                "%s", local_error->message);
    return NULL;
  }
  maps = hmmv_proc_maps_parse(text, len, error);
  if (maps == NULL)
    g_prefix_error(error, "%s: ", path);
  return maps;
}

gboolean
hmmv_proc_maps_cover(const GArray *maps, guint64 start, guint64 size)
{
  guint lo = 0, hi = maps->len;
  guint64 end;

  if (size == 0 || !g_uint64_checked_add(&end, start, size))
    return FALSE;
  /* The first mapping that ends after start. */
  while (lo < hi) {
    guint mid = lo + (hi - lo) / 2;

    if (g_array_index(maps, HmmvProcMapping, mid).end <= start)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (guint i = lo; i < maps->len; i++) {
    const HmmvProcMapping *m = &g_array_index(maps, HmmvProcMapping, i);

    if (m->start > start || !m->writable)
      return FALSE;   /* a hole, or memory QEMU cannot write */
    if (m->end >= end)
      return TRUE;
    start = m->end;
  }
  return FALSE;
}
