/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The nodes' free memory, re-read before every interval of a discovered topology (the
 * per-node pools follow what the host can give): not MemFree, but what a page migration to
 * the node can really get (issue 8: counting MemFree, hmmvd planned promotions into a nearly
 * full node 0 that move_pages(2) refused with ENOMEM).
 *
 * The kernel's rule (read in the kernel source, 6.1 to 6.18; facts, not code):
 * - move_pages(2) moves pages with migrate_pages() and alloc_migration_target()
 *   (mm/migrate.c do_move_pages_to_node), whose target is allocated with
 *   GFP_HIGHUSER_MOVABLE | __GFP_THISNODE on the target node; alloc_migration_target keeps
 *   that mask for a base page (a huge page goes to the hugetlb pool; a THP drops reclaim).
 * - __GFP_THISNODE: only that node's zones, no fallback to another node.
 * - gfp_zone(GFP_HIGHUSER_MOVABLE) is ZONE_MOVABLE (__GFP_HIGHMEM | __GFP_MOVABLE in
 *   GFP_ZONE_TABLE), so every zone of the node may serve it (Movable, Normal, DMA32, DMA)
 *   and each is held to its lowmem_reserve[ZONE_MOVABLE]: the Movable entry of the zone's
 *   "protection:" line in /proc/zoneinfo (since 5.8 the entry is gfp_zone's, not the
 *   preferred zone's). On the testbed (2node, 6.12) that entry keeps all of ZONE_DMA and a
 *   large part of DMA32 from user pages.
 * - The watermark: the fast path (get_page_from_freelist, ALLOC_WMARK_LOW) wants the low
 *   mark; the slow path (__alloc_pages_slowpath, gfp_to_alloc_flags: ALLOC_WMARK_MIN, kswapd
 *   woken) takes a page while __zone_watermark_ok / zone_watermark_fast hold:
 *   free > min_wmark_pages + lowmem_reserve[ZONE_MOVABLE]. min_wmark_pages includes
 *   watermark_boost, and zoneinfo's "min" prints it so. The mask has no __GFP_HIGH and may
 *   reclaim directly, so no ALLOC_MIN_RESERVE / ALLOC_NON_BLOCK discount: the whole min
 *   mark applies. Free CMA pages count (a movable allocation gets ALLOC_CMA); the
 *   high-atomic reserve (nr_reserved_highatomic, not in zoneinfo) is not subtracted here:
 *   it is 0 unless high-order atomic allocations failed, and at most about 1% of the zone.
 * - So a zone gives a migration max(0, free - min - protection[Movable]) pages, and a node
 *   the sum over its zones: that is this file's free figure.
 * - Reclaim: the mask may reclaim directly (try_to_free_pages on the node's zones, retried),
 *   so the node's page cache, and its anonymous pages where there is swap, can make room
 *   beyond this figure; this count does not take them (the host's caches are not room
 *   hmmv should plan with). When reclaim frees nothing, __alloc_pages_may_oom gives up for
 *   __GFP_THISNODE (no OOM kill): the page stays and move_pages reports ENOMEM.
 * - The kernel's own demotion (mm/vmscan.c demote_folio_list, alloc_demote_folio) asks the
 *   target node with (GFP_HIGHUSER_MOVABLE & ~__GFP_RECLAIM) | __GFP_NOMEMALLOC |
 *   GFP_NOWAIT | __GFP_THISNODE: the same zones, protection and min mark (GFP_NOWAIT gets no
 *   reserve below min), without reclaim.
 * Measured in the testbed (tests/testbed/zonefree-2026-12-03/, BENCHMARKS.md): the pages
 * move_pages put on a filled node 0 before its first ENOMEM, against this figure read just
 * before.
 *
 * Cost: /proc/zoneinfo stays open from the first refresh on and is read with pread(2) from
 * offset 0, which makes the kernel print it afresh (seq_file restarts at offset 0). A read
 * returns whole nodes, at most the seq_file buffer (a power of two fitting the largest
 * node), so the reads stop as soon as every node of the topology is complete: one read on
 * a one-node host, one a node at most elsewhere, as nodeN/meminfo took before (that file
 * had replaced libnuma's numa_node_size64, 5 calls a node). A failed read or a text that is
 * not the kernel's zoneinfo fails the refresh and changes no node (the caller keeps the last
 * figures and says so); the next refresh opens the file again.
 */
#include "topology-private.h"

#include <errno.h>
#include <fcntl.h>
#include <hmmv/error.h>
#include <string.h>
#include <unistd.h>

/* zoneinfo grows with CPUs x zones x nodes (a pageset per CPU and populated zone, ~150
 * bytes): 5 KiB on a 2-CPU one-node host, ~1 MiB with 256 CPUs on 8 nodes. The buffer starts
 * at 64 KiB and doubles up to 16 MiB; more is not the kernel's zoneinfo. */
#define ZONEINFO_FIRST_BYTES (64u * 1024u)
#define ZONEINFO_MAX_BYTES (16u * 1024u * 1024u)

void
hmmv_topology_close_free_files(HmmvTopology *topo)
{
  if (topo->zoneinfo_open)
    (void)close(topo->zoneinfo_fd);
  topo->zoneinfo_open = FALSE;
  topo->zoneinfo_fd = -1;
  g_clear_pointer(&topo->zoneinfo_buf, g_free);
  topo->zoneinfo_size = 0;
}

static char *
zoneinfo_path(const HmmvTopology *topo)
{
  if (topo->sysfs_root != NULL)
    return g_build_filename(topo->sysfs_root, "proc", "zoneinfo", NULL);
  return g_strdup("/proc/zoneinfo");
}

static gboolean
open_zoneinfo(HmmvTopology *topo, GError **error)
{
  g_autofree char *path = zoneinfo_path(topo);
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    int saved = errno;

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "%s: %s", path, g_strerror(saved));
    return FALSE;
  }
  topo->zoneinfo_fd = fd;
  topo->zoneinfo_open = TRUE;
  topo->zoneinfo_size = ZONEINFO_FIRST_BYTES;
  topo->zoneinfo_buf = g_malloc(topo->zoneinfo_size);
  topo->free_opens++;
  return TRUE;
}

/* Every node of the topology complete in what was read so far. */
static gboolean
all_complete(const HmmvTopology *topo, const HmmvZoneinfoNode *nodes)
{
  for (guint i = 0; i < topo->nodes->len; i++) {
    if (!nodes[hmmv_topology_entry_at(topo, i)->node.id].complete)
      return FALSE;
  }
  return TRUE;
}

/* Reads zoneinfo from offset 0 until the topology's nodes are complete or the end, and
 * parses it into nodes. */
static gboolean
read_zoneinfo(HmmvTopology *topo, HmmvZoneinfoNode *nodes, GError **error)
{
  gsize len = 0;

  for (;;) {
    ssize_t n;

    if (len == topo->zoneinfo_size) {
      if (topo->zoneinfo_size == ZONEINFO_MAX_BYTES) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT,
                    "zoneinfo: more than %u MiB: not the kernel's zoneinfo",
                    ZONEINFO_MAX_BYTES >> 20);
        return FALSE;
      }
      topo->zoneinfo_size *= 2;
      topo->zoneinfo_buf = g_realloc(topo->zoneinfo_buf, topo->zoneinfo_size);
    }
    do {
      n = pread(topo->zoneinfo_fd, topo->zoneinfo_buf + len, topo->zoneinfo_size - len,
                (off_t)len);
    } while (n < 0 && errno == EINTR);
    topo->free_reads++;
    if (n < 0) {
      int saved = errno;

      g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "zoneinfo: %s", g_strerror(saved));
      return FALSE;
    }
    len += (gsize)n;
    if (n == 0)
      return hmmv_zoneinfo_parse(topo->zoneinfo_buf, len, TRUE, nodes, error);
    if (!hmmv_zoneinfo_parse(topo->zoneinfo_buf, len, FALSE, nodes, error))
      return FALSE;
    if (all_complete(topo, nodes))
      return TRUE;
  }
}

gboolean
hmmv_topology_refresh_free(HmmvTopology *topo, GError **error)
{
  g_autofree HmmvZoneinfoNode *nodes = NULL;
  guint64 page_bytes = (guint64)sysconf(_SC_PAGESIZE);

  if (!topo->from_host)
    return TRUE;
  if (!topo->zoneinfo_open && !open_zoneinfo(topo, error))
    return FALSE;
  nodes = g_new0(HmmvZoneinfoNode, HMMV_MAX_NODE_ID + 1);
  if (!read_zoneinfo(topo, nodes, error)) {
    hmmv_topology_close_free_files(topo);   /* opened again by the next refresh */
    return FALSE;
  }
  for (guint i = 0; i < topo->nodes->len; i++) {
    int id = hmmv_topology_entry_at(topo, i)->node.id;

    if (!nodes[id].complete) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "zoneinfo: node %d is not in it",
                  id);
      hmmv_topology_close_free_files(topo);
      return FALSE;
    }
  }
  /* all nodes read: only now is any figure replaced (zoneinfo counts the kernel's pages) */
  for (guint i = 0; i < topo->nodes->len; i++) {
    NodeEntry *entry = hmmv_topology_entry_at(topo, i);
    guint64 usable = nodes[entry->node.id].usable_pages;

    entry->node.free_bytes = MIN(usable * page_bytes, entry->node.total_bytes);
  }
  return TRUE;
}
