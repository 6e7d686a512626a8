/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmvd-test.h"

#include <string.h>

void
hmmvd_test_bed_init(HmmvdTestBed *bed, guint64 dram_bytes, guint64 slow_bytes,
                    const HmmvParams *params)
{
  g_autoptr(GError) error = NULL;

  memset(bed, 0, sizeof(*bed));
  hmmvd_config_init(&bed->config);
  if (params != NULL)
    bed->config.params = *params;
  bed->topo = hmmv_test_topology_two_tier(dram_bytes, slow_bytes);
  bed->mover = hmmv_sim_mover_new(bed->topo, &error);
  ck_assert_msg(bed->mover != NULL, "%s", error ? error->message : "");
  bed->core = hmmv_core_new(bed->topo, bed->mover, &bed->config.params, 0, &error);
  ck_assert_msg(bed->core != NULL, "%s", error ? error->message : "");
  bed->vms = hmmvd_vms_new(bed->core, &bed->config);
  hmmvd_vms_set_mover(bed->vms, bed->mover);
}

void
hmmvd_test_bed_clear(HmmvdTestBed *bed)
{
  g_clear_pointer(&bed->vms, hmmvd_vms_free);
  g_clear_pointer(&bed->core, hmmv_core_free);
  g_clear_pointer(&bed->mover, hmmv_mover_free);
  g_clear_pointer(&bed->topo, hmmv_topology_free);
  hmmvd_config_clear(&bed->config);
}
