/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control socket's request handler on one line, against a table with one VM listed: every
 * reply must be one line of JSON. */
#include "config.h"
#include "control.h"
#include "fuzz-common.h"
#include "vms.h"

#include <string.h>

typedef struct {
  HmmvdConfig config;
  HmmvTopology *topo;
  HmmvMover *mover;
  HmmvCore *core;
  HmmvdVms *vms;
} Bed;

static Bed *
bed_get(void)
{
  static Bed bed;

  if (bed.vms == NULL) {
    hmmvd_config_init(&bed.config);
    bed.topo = hmmv_topology_new();
    g_assert(hmmv_topology_add_node(bed.topo, 0, 64u << 20, 2, HMMV_TIER_DRAM, NULL));
    g_assert(hmmv_topology_add_node(bed.topo, 1, 256u << 20, 0, HMMV_TIER_SLOW, NULL));
    bed.mover = hmmv_sim_mover_new(bed.topo, NULL);
    bed.core = hmmv_core_new(bed.topo, bed.mover, &bed.config.params, 0, NULL);
    g_assert(bed.core != NULL);
    bed.vms = hmmvd_vms_new(bed.core, &bed.config);
    hmmvd_vms_set_mover(bed.vms, bed.mover);
    hmmvd_vms_add_unmanaged(bed.vms, "vm1", HMMVD_SOURCE_LIBVIRT, "fuzz");
  }
  return &bed;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  Bed *bed;
  g_autofree char *reply = NULL;

  fuzz_quiet();
  bed = bed_get();
  if (size > HMMVD_CONTROL_MAX_LINE)
    return 0;   /* the socket refuses longer lines before the handler sees them */
  reply = hmmvd_control_handle_request(bed->vms, bed->topo, "sim", (const char *)data, size);
  if (reply == NULL || strchr(reply, '\n') != NULL ||
      !hmmv_json_check_text(reply, strlen(reply), HMMV_JSON_MAX_DEPTH, NULL))
    __builtin_trap();
  return 0;
}
