/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The libvirt XML helpers: a domain's numatune against the host, and nodesets. */
#include "fuzz-common.h"
#include "libvirt.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static HmmvTopology *topo;
  g_autofree char *text = g_strndup((const char *)data, size);
  g_autofree char *conflict = NULL;
  guint64 mask;

  fuzz_quiet();
  if (topo == NULL) {
    topo = hmmv_topology_new();
    g_assert(hmmv_topology_add_node(topo, 0, 64u << 20, 2, HMMV_TIER_DRAM, NULL));
    g_assert(hmmv_topology_add_node(topo, 1, 256u << 20, 0, HMMV_TIER_SLOW, NULL));
  }
  (void)hmmvd_libvirt_parse_nodeset(text, &mask, NULL);
  conflict = hmmvd_libvirt_numatune_conflict(text, topo);
  return 0;
}
