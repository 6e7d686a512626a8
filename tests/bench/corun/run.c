/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun: the replay loop. */
#include "run.h"

#include <hmmv/error.h>
#include <string.h>

void
corun_run_free(CorunRun *run)
{
  if (run == NULL)
    return;
  for (guint p = 0; p < run->nr_policies; p++) {
    g_free(run->results[p].runtime_ns);
    g_free(run->results[p].accesses);
    g_free(run->results[p].dram_accesses);
    g_free(run->results[p].moved);
  }
  g_free(run->results);
  if (run->samples != NULL)
    g_array_unref(run->samples);
  g_free(run);
}

int
corun_run_find(const CorunRun *run, const char *policy)
{
  for (guint p = 0; p < run->nr_policies; p++)
    if (g_strcmp0(run->results[p].policy, policy) == 0)
      return (int)p;
  return -1;
}

double
corun_result_total_ns(const CorunRun *run, guint policy)
{
  double sum = 0;

  for (guint v = 0; v < run->nr_vms; v++)
    sum += run->results[policy].runtime_ns[v];
  return sum;
}

double
corun_result_dram_share(const CorunRun *run, guint policy, int vm)
{
  const CorunResult *r = &run->results[policy];
  guint64 acc = 0, dram = 0;

  for (guint v = 0; v < run->nr_vms; v++)
    if (vm < 0 || (guint)vm == v) {
      acc += r->accesses[v];
      dram += r->dram_accesses[v];
    }
  return acc ? (double)dram / (double)acc : 1.0;
}

guint64
corun_result_moved(const CorunRun *run, guint policy, int vm)
{
  guint64 sum = 0;

  for (guint v = 0; v < run->nr_vms; v++)
    if (vm < 0 || (guint)vm == v)
      sum += run->results[policy].moved[v];
  return sum;
}

typedef struct {
  const CorunSetup *setup;
  gboolean *ended;          /* a halted VM's trace ended: it idles from there */
  HmmvTraceReader **readers;
  GArray **entries;         /* a copy of each VM's interval (the reader owns its buffer) */
  CorunAccesses *now;
  guint nr_vms;
} Traces;

static void
traces_clear(Traces *t)
{
  for (guint v = 0; v < t->nr_vms; v++) {
    hmmv_trace_reader_free(t->readers[v]);
    if (t->entries[v] != NULL)
      g_array_unref(t->entries[v]);
  }
  g_free(t->readers);
  g_free(t->ended);
  g_free(t->entries);
  g_free(t->now);
}

/* TRUE with every VM's next interval in t->now; FALSE with no error when the trace of a VM
 * that did not halt ended. A halted VM's interval after its trace is empty: no instruction,
 * no miss. */
static gboolean
traces_next(Traces *t, GError **error)
{
  for (guint v = 0; v < t->nr_vms; v++) {
    const HmmvTraceEntry *entries = NULL;
    gsize n = 0;
    guint64 compute_ns = 0;
    GError *local = NULL;

    if (!t->ended[v] &&
        !hmmv_trace_reader_next(t->readers[v], &entries, &n, &compute_ns, &local)) {
      if (local != NULL) {
        g_propagate_prefixed_error(error, local, "vm %u: ", v);
        return FALSE;
      }
      if (!t->setup->vms[v].halted)
        return FALSE;
      t->ended[v] = TRUE;
    }
    if (t->ended[v]) {
      n = 0;
      compute_ns = 0;
    }
    g_array_set_size(t->entries[v], 0);
    g_array_append_vals(t->entries[v], entries, n);
    t->now[v].entries = (const HmmvTraceEntry *)t->entries[v]->data;
    t->now[v].nr_entries = n;
    t->now[v].compute_ns = compute_ns;
  }
  return TRUE;
}

/* The run's length: the shortest trace of a VM that did not halt (a halted VM idles after
 * its trace); the longest when every VM halted. */
static guint64
count_intervals(const CorunSetup *setup, GError **error)
{
  guint64 shortest = G_MAXUINT64, longest = 0;

  for (guint v = 0; v < setup->nr_vms; v++) {
    g_autoptr(HmmvTraceReader) r = hmmv_trace_reader_new(setup->vms[v].trace_path, error);
    const HmmvTraceEntry *e;
    gsize n;
    guint64 c, k = 0;

    if (r == NULL)
      return 0;
    while (hmmv_trace_reader_next(r, &e, &n, &c, error))
      k++;
    if (error != NULL && *error != NULL)
      return 0;
    longest = MAX(longest, k);
    if (!setup->vms[v].halted)
      shortest = MIN(shortest, k);
  }
  return shortest != G_MAXUINT64 ? shortest : longest;
}

CorunRun *
corun_run(const CorunSetup *setup, const char *const *policies, guint64 max_intervals,
          CorunProgressFunc progress, gpointer data, GError **error)
{
  g_autoptr(CorunRun) run = g_new0(CorunRun, 1);
  g_autoptr(GPtrArray) pols = g_ptr_array_new_with_free_func((GDestroyNotify)corun_policy_free);
  Traces t = { 0 };
  g_autofree CorunDemand *demand = g_new0(CorunDemand, setup->nr_vms);
  g_autofree double *time_ns = g_new0(double, setup->nr_vms);
  g_autofree guint64 *vm_dram = g_new0(guint64, setup->nr_vms);
  gboolean ok = FALSE, have_all_dram = FALSE;
  guint64 total;

  run->nr_vms = setup->nr_vms;
  run->nr_policies = policies ? g_strv_length((char **)policies) : 0;
  run->results = g_new0(CorunResult, run->nr_policies);
  run->samples = g_array_new(FALSE, FALSE, sizeof(CorunSample));
  for (guint p = 0; p < run->nr_policies; p++) {
    const struct corun_policy_ops *ops = corun_policy_lookup(policies[p]);
    CorunPolicy *pol;

    if (ops == NULL) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "no policy '%s'", policies[p]);
      return NULL;
    }
    have_all_dram |= ops == &corun_policy_all_dram;
    pol = corun_policy_new(ops, setup, error);
    if (pol == NULL)
      return NULL;
    g_ptr_array_add(pols, pol);
    run->results[p].policy = ops->name;
    run->results[p].runtime_ns = g_new0(double, setup->nr_vms);
    run->results[p].accesses = g_new0(guint64, setup->nr_vms);
    run->results[p].dram_accesses = g_new0(guint64, setup->nr_vms);
    run->results[p].moved = g_new0(guint64, setup->nr_vms);
  }
  if (!have_all_dram) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "all-dram must run: it is every VM's reference");
    return NULL;
  }
  total = count_intervals(setup, error);
  if (error != NULL && *error != NULL)
    return NULL;
  if (max_intervals != 0)
    total = MIN(total, max_intervals);
  t.nr_vms = setup->nr_vms;
  t.setup = setup;
  t.ended = g_new0(gboolean, setup->nr_vms);
  t.readers = g_new0(HmmvTraceReader *, setup->nr_vms);
  t.entries = g_new0(GArray *, setup->nr_vms);
  t.now = g_new0(CorunAccesses, setup->nr_vms);
  for (guint v = 0; v < setup->nr_vms; v++) {
    t.entries[v] = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));
    t.readers[v] = hmmv_trace_reader_new(setup->vms[v].trace_path, error);
    if (t.readers[v] == NULL)
      goto out;
  }
  for (guint64 k = 0; k < total; k++) {
    if (!traces_next(&t, error)) {
      if (error != NULL && *error != NULL)
        goto out;
      break;
    }
    for (guint p = 0; p < pols->len; p++) {
      CorunPolicy *pol = g_ptr_array_index(pols, p);
      CorunResult *r = &run->results[p];
      CorunModelStats stats = { 0 };

      memset(demand, 0, setup->nr_vms * sizeof(CorunDemand));
      for (guint v = 0; v < setup->nr_vms; v++)
        demand[v].compute_ns = t.now[v].compute_ns;
      if (!pol->ops->interval(pol, k, t.now, demand, error)) {
        g_prefix_error(error, "policy %s, interval %" G_GUINT64_FORMAT ": ", pol->ops->name, k);
        goto out;
      }
      corun_model_interval(setup->profile, demand, setup->nr_vms, time_ns, &stats);
      memset(vm_dram, 0, setup->nr_vms * sizeof(guint64));
      if (pol->ops->dram_pages != NULL)
        pol->ops->dram_pages(pol, vm_dram);
      for (guint v = 0; v < setup->nr_vms; v++) {
        const CorunDemand *d = &demand[v];
        CorunSample s = {
          .interval = k, .policy = p, .vm = v, .time_ns = time_ns[v],
          .accesses = d->dram_reads + d->dram_writes + d->slow_reads + d->slow_writes,
          .dram_accesses = d->dram_reads + d->dram_writes,
          .moved = d->promoted + d->demoted, .dram_pages = vm_dram[v],
          .promoted = d->promoted, .demoted = d->demoted, .start_slow_dram = -1,
          .rho_dram = stats.rho_dram, .rho_slow = stats.rho_slow,
        };

        if (pol->ops->placement != NULL && setup->vms[v].start_slow_pages != 0)
          s.start_slow_dram =
            (gint64)corun_placement_start_slow_dram(pol->ops->placement(pol), v);
        r->runtime_ns[v] += time_ns[v];
        r->accesses[v] += s.accesses;
        r->dram_accesses[v] += s.dram_accesses;
        r->moved[v] += s.moved;
        g_array_append_val(run->samples, s);
      }
    }
    run->intervals = k + 1;
    if (progress != NULL)
      progress(k + 1, total, data);
  }
  ok = TRUE;
out:
  traces_clear(&t);
  return ok ? g_steal_pointer(&run) : NULL;
}
