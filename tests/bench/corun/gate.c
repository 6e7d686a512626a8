/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: the payback gate's figures at the core's interval (see gate.h). */
#include "gate.h"

#include <hmmv/hmmv.h>

guint
corun_gate_per_core(const CorunSetup *setup)
{
  return setup->hmmv_interval_ms > 0 && setup->interval_ms > 0
           ? MAX(setup->hmmv_interval_ms / setup->interval_ms, 1u) : 1u;
}

typedef struct {
  guint64 *reads, *writes;  /* per page, summed over the core interval so far */
  GArray *touched;          /* pages with a miss in it, each once */
} Block;

typedef struct {
  double saving_ns;         /* summed over the touched pairs */
  double weight;            /* their weights summed */
  guint64 touched, misses;
} Sums;

static void
block_close(Block *b, const CorunProfile *p, const HmmvParams *params, Sums *sums)
{
  double read_gap = MAX(p->slow.read_ns - p->dram.read_ns, 0.0) / p->mlp;
  double write_gap = MAX(p->slow.write_ns - p->dram.write_ns, 0.0) / p->mlp;

  for (guint i = 0; i < b->touched->len; i++) {
    guint64 page = g_array_index(b->touched, guint64, i);

    sums->saving_ns += (double)b->reads[page] * read_gap + (double)b->writes[page] * write_gap;
    sums->weight += b->writes[page] > 0 ? params->write_weight : params->read_weight;
    sums->misses += b->reads[page] + b->writes[page];
    sums->touched++;
    b->reads[page] = b->writes[page] = 0;
  }
  g_array_set_size(b->touched, 0);
}

static gboolean
calibrate_vm(const CorunVmInfo *vm, const CorunProfile *p, const HmmvParams *params,
             guint per_core, guint64 max_intervals, Sums *sums, GError **error)
{
  g_autoptr(HmmvTraceReader) r = hmmv_trace_reader_new(vm->trace_path, error);
  g_autofree guint64 *reads = NULL, *writes = NULL;
  g_autoptr(GArray) touched = g_array_new(FALSE, FALSE, sizeof(guint64));
  Block b;
  const HmmvTraceEntry *e;
  gsize n;
  guint64 c, k = 0;

  if (r == NULL)
    return FALSE;
  /* nr_pages was checked against the trace's header when the setup was loaded; the reader
   * checks every entry's page against it */
  if (hmmv_trace_reader_get_info(r)->nr_pages != vm->nr_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "%s: %" G_GUINT64_FORMAT " pages, the "
                "setup says %" G_GUINT64_FORMAT, vm->trace_path,
                hmmv_trace_reader_get_info(r)->nr_pages, vm->nr_pages);
    return FALSE;
  }
  reads = g_new0(guint64, vm->nr_pages);
  writes = g_new0(guint64, vm->nr_pages);
  b = (Block){ reads, writes, touched };
  while ((max_intervals == 0 || k < max_intervals) && hmmv_trace_reader_next(r, &e, &n, &c,
                                                                              error)) {
    for (gsize i = 0; i < n; i++) {
      if (e[i].reads + e[i].writes == 0)
        continue;
      if (reads[e[i].page] + writes[e[i].page] == 0)
        g_array_append_val(touched, e[i].page);
      reads[e[i].page] += e[i].reads;
      writes[e[i].page] += e[i].writes;
    }
    if (++k % per_core == 0)
      block_close(&b, p, params, sums);
  }
  if (error != NULL && *error != NULL)
    return FALSE;
  /* a last, partial core interval: the core does not act on it (hmmv.c) */
  return TRUE;
}

gboolean
corun_gate_calibrate(const CorunSetup *setup, guint per_core, guint64 max_intervals,
                     CorunGate *gate, GError **error)
{
  HmmvParams params;
  Sums sums = { 0 };

  g_return_val_if_fail(setup->profile != NULL && per_core > 0, FALSE);
  hmmv_params_init(&params);
  for (guint v = 0; v < setup->nr_vms; v++)
    if (!calibrate_vm(&setup->vms[v], setup->profile, &params, per_core, max_intervals, &sums,
                      error)) {
      g_prefix_error(error, "vm %s: ", setup->vms[v].name);
      return FALSE;
    }
  *gate = (CorunGate){ 0 };
  gate->move_cost_ns = (guint)CLAMP(setup->profile->move_ns_per_page + 0.5, 0, 1000000);
  gate->touched = sums.touched;
  gate->misses_per_touched = sums.touched ? (double)sums.misses / (double)sums.touched : 0;
  /* no touched interval at all: nothing to promote, the figure does not matter (>= 1 keeps
   * the gate on) */
  gate->touch_saving_ns = (guint)CLAMP(sums.weight > 0 ? sums.saving_ns / sums.weight + 0.5 : 1,
                                       1, 1000000);
  return TRUE;
}
