/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The nodes' free memory, re-read before every interval of a discovered topology (the
 * per-node pools follow what the host can give).
 *
 * Each node's nodeN/meminfo stays open from the first refresh on and is read again with one
 * pread(2) at offset 0, which makes the kernel print the attribute afresh (kernfs): one system
 * call a node and interval, where opening it each time (libnuma's numa_node_size64, which
 * this replaces here) took five (openat, newfstatat, two reads, close). The figures are as
 * fresh as before: read at every refresh. A failed read closes them all; the next refresh
 * opens them again.
 */
#include "topology-private.h"

#include <errno.h>
#include <fcntl.h>
#include <hmmv/error.h>
#include <string.h>
#include <unistd.h>

/* A sysfs attribute is at most one page; a longer read is not the kernel's nodeN/meminfo. */
#define FREE_MAX_BYTES 4096u

void
hmmv_topology_close_free_files(HmmvTopology *topo)
{
  if (topo->free_files == NULL)
    return;
  for (guint i = 0; i < topo->free_files->len; i++)
    if (g_array_index(topo->free_files, int, i) >= 0)
      (void)close(g_array_index(topo->free_files, int, i));
  g_clear_pointer(&topo->free_files, g_array_unref);
}

static gboolean
open_free_files(HmmvTopology *topo, GError **error)
{
  g_autofree char *node_dir = g_build_filename(
      topo->sysfs_root != NULL ? topo->sysfs_root : "/sys", "devices", "system", "node", NULL);

  hmmv_topology_close_free_files(topo);
  topo->free_files = g_array_sized_new(FALSE, FALSE, sizeof(int), topo->nodes->len);
  for (guint i = 0; i < topo->nodes->len; i++) {
    int id = hmmv_topology_entry_at(topo, i)->node.id;
    g_autofree char *path = g_strdup_printf("%s/node%d/meminfo", node_dir, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
      int saved = errno;

      g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "%s: %s", path,
                  g_strerror(saved));
      hmmv_topology_close_free_files(topo);
      return FALSE;
    }
    g_array_append_val(topo->free_files, fd);
    topo->free_opens++;
  }
  return TRUE;
}

static gboolean
read_free(HmmvTopology *topo, guint index, GError **error)
{
  NodeEntry *entry = hmmv_topology_entry_at(topo, index);
  char text[FREE_MAX_BYTES + 1];
  guint64 total = 0, free_bytes = 0;
  ssize_t n;

  do {
    n = pread(g_array_index(topo->free_files, int, index), text, sizeof(text) - 1, 0);
  } while (n < 0 && errno == EINTR);
  topo->free_reads++;
  if (n < 0) {
    int saved = errno;

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "node%d/meminfo: %s",
                entry->node.id, g_strerror(saved));
    return FALSE;
  }
  if ((gsize)n >= FREE_MAX_BYTES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                "node%d/meminfo: %u bytes or more: not a sysfs attribute", entry->node.id,
                FREE_MAX_BYTES);
    return FALSE;
  }
  text[n] = '\0';
  if (!hmmv_topology_parse_meminfo(text, (guint)entry->node.id, &total, &free_bytes, error)) {
    g_prefix_error(error, "node%d/meminfo: ", entry->node.id);
    return FALSE;
  }
  entry->node.free_bytes = MIN(free_bytes, entry->node.total_bytes);
  return TRUE;
}

gboolean
hmmv_topology_refresh_free(HmmvTopology *topo, GError **error)
{
  if (!topo->from_host)
    return TRUE;
  if ((topo->free_files == NULL || topo->free_files->len != topo->nodes->len) &&
      !open_free_files(topo, error))
    return FALSE;
  for (guint i = 0; i < topo->nodes->len; i++) {
    if (!read_free(topo, i, error)) {
      hmmv_topology_close_free_files(topo);   /* opened again by the next refresh */
      return FALSE;
    }
  }
  return TRUE;
}
