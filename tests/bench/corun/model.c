/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: tier profiles (GKeyFile) and the runtime model of one interval.
 *
 * Per VM v:  t_v = compute + (sum over tiers of misses x loaded latency) / mlp
 *                  + pages moved x move_ns_per_page + policy overhead (hint faults)
 * Loaded latency of a tier: idle x (1 + alpha x rho / (1 - rho)), the shape of a queue's
 * waiting time, where rho is the tier's utilization by ALL co-running VMs in the interval:
 *   rho = read bytes / (read bandwidth x T) + write bytes / (write bandwidth x T)
 * with T the interval's length at idle latencies (the longest VM's t_v at rho = 0). Bytes:
 * every miss reads a line (a store miss reads for ownership), every written line is written
 * back once, a migrated page is read on its source tier and written on its target, plus the
 * policy's own traffic (Memory Mode's fills). Separate read and write bandwidths carry
 * Optane's asymmetry (39.4 vs 13.9 GB/s).
 *
 * Simplified: rho is taken from the idle-latency length, not solved as a fixed point (slower
 * memory stretches the interval and lowers the real utilization: the model overstates
 * contention in intervals that the slow tier already stretches); rho is capped at rho_max.
 */
#include "model.h"

#include <hmmv/error.h>
#include <math.h>
#include <string.h>

#define PROFILE_GROUP_DRAM "dram"
#define PROFILE_GROUP_SLOW "slow"

static gboolean
get_double(GKeyFile *kf, const char *group, const char *key, double *out, GError **error)
{
  g_autoptr(GError) local = NULL;
  double value = g_key_file_get_double(kf, group, key, &local);

  if (local != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "[%s] %s: %s", group, key,
                local->message);
    return FALSE;
  }
  if (!isfinite(value)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "[%s] %s is not a number",
                group, key);
    return FALSE;
  }
  *out = value;
  return TRUE;
}

static gboolean
load_tier(GKeyFile *kf, const char *group, CorunTier *tier, GError **error)
{
  return get_double(kf, group, "read-ns", &tier->read_ns, error) &&
         get_double(kf, group, "write-ns", &tier->write_ns, error) &&
         get_double(kf, group, "read-gbps", &tier->read_gbps, error) &&
         get_double(kf, group, "write-gbps", &tier->write_gbps, error);
}

static gboolean
check_range(const char *what, double value, double min, double max, GError **error)
{
  if (!(value >= min && value <= max)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "%s = %g is outside %g..%g",
                what, value, min, max);
    return FALSE;
  }
  return TRUE;
}

gboolean
corun_profile_validate(const CorunProfile *p, GError **error)
{
  /* Bounds that catch unit mistakes (ns vs us, GB/s vs MB/s), not opinions. */
  return check_range("dram read-ns", p->dram.read_ns, 1, 10000, error) &&
         check_range("dram write-ns", p->dram.write_ns, 1, 10000, error) &&
         check_range("slow read-ns", p->slow.read_ns, 1, 100000, error) &&
         check_range("slow write-ns", p->slow.write_ns, 1, 100000, error) &&
         check_range("dram read-gbps", p->dram.read_gbps, 0.1, 10000, error) &&
         check_range("dram write-gbps", p->dram.write_gbps, 0.1, 10000, error) &&
         check_range("slow read-gbps", p->slow.read_gbps, 0.1, 10000, error) &&
         check_range("slow write-gbps", p->slow.write_gbps, 0.1, 10000, error) &&
         check_range("line-bytes", p->line_bytes, 8, 4096, error) &&
         check_range("mlp", p->mlp, 1, 64, error) &&
         check_range("move-ns-per-page", p->move_ns_per_page, 0, 1e7, error) &&
         check_range("alpha", p->alpha, 0, 100, error) &&
         check_range("rho-max", p->rho_max, 0, 0.999, error);
}

CorunProfile *
corun_profile_load(const char *path, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(CorunProfile) p = g_new0(CorunProfile, 1);

  if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, error)) {
    g_prefix_error(error, "tier profile %s: ", path);
    return NULL;
  }
  p->name = g_key_file_get_string(kf, "profile", "name", NULL);
  if (p->name == NULL || *p->name == '\0') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "tier profile %s: [profile] name is missing", path);
    return NULL;
  }
  if (!load_tier(kf, PROFILE_GROUP_DRAM, &p->dram, error) ||
      !load_tier(kf, PROFILE_GROUP_SLOW, &p->slow, error) ||
      !get_double(kf, "cpu", "line-bytes", &p->line_bytes, error) ||
      !get_double(kf, "cpu", "mlp", &p->mlp, error) ||
      !get_double(kf, "migration", "move-ns-per-page", &p->move_ns_per_page, error) ||
      !get_double(kf, "contention", "alpha", &p->alpha, error) ||
      !get_double(kf, "contention", "rho-max", &p->rho_max, error) ||
      !corun_profile_validate(p, error)) {
    g_prefix_error(error, "tier profile %s: ", path);
    return NULL;
  }
  return g_steal_pointer(&p);
}

CorunProfile *
corun_profile_load_named(const char *dir, const char *name, GError **error)
{
  g_autofree char *path = NULL;

  if (strchr(name, '/') != NULL)
    return corun_profile_load(name, error);
  path = g_strdup_printf("%s/%s.conf", dir, name);
  if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND,
                "no tier profile '%s' (looked for %s)", name, path);
    return NULL;
  }
  return corun_profile_load(path, error);
}

void
corun_profile_free(CorunProfile *profile)
{
  if (profile == NULL)
    return;
  g_free(profile->name);
  g_free(profile);
}

static double
vm_time(const CorunProfile *p, const CorunDemand *d, double dr, double dw, double sr, double sw)
{
  double stall = ((double)d->dram_reads * dr + (double)d->dram_writes * dw +
                  (double)d->slow_reads * sr + (double)d->slow_writes * sw) / p->mlp;

  return (double)d->compute_ns + stall +
         (double)(d->promoted + d->demoted) * p->move_ns_per_page + (double)d->fault_ns;
}

static double
utilization(const CorunTier *tier, double read_bytes, double write_bytes, double interval_ns,
            double rho_max)
{
  /* GB/s is bytes per ns */
  double rho;

  if (interval_ns <= 0)
    return 0;
  rho = read_bytes / (tier->read_gbps * interval_ns) + write_bytes / (tier->write_gbps * interval_ns);
  return MIN(rho, rho_max);
}

static double
loaded(double idle_ns, double alpha, double rho)
{
  return idle_ns * (1 + alpha * rho / (1 - rho));
}

void
corun_model_interval(const CorunProfile *p, const CorunDemand *demand, guint nr_vms,
                     double *time_ns, CorunModelStats *stats)
{
  double dram_rd = 0, dram_wr = 0, slow_rd = 0, slow_wr = 0, longest = 0;
  CorunModelStats local;

  if (stats == NULL)
    stats = &local;
  for (guint v = 0; v < nr_vms; v++) {
    const CorunDemand *d = &demand[v];
    double t0 = vm_time(p, d, p->dram.read_ns, p->dram.write_ns, p->slow.read_ns,
                        p->slow.write_ns);

    longest = MAX(longest, t0);
    /* A store miss reads its line (for ownership) and writes it back later. */
    dram_rd += p->line_bytes * (double)(d->dram_reads + d->dram_writes) +
               d->extra_dram_read_bytes + CORUN_PAGE_BYTES * (double)d->demoted;
    dram_wr += p->line_bytes * (double)d->dram_writes + d->extra_dram_write_bytes +
               CORUN_PAGE_BYTES * (double)d->promoted;
    slow_rd += p->line_bytes * (double)(d->slow_reads + d->slow_writes) +
               d->extra_slow_read_bytes + CORUN_PAGE_BYTES * (double)d->promoted;
    slow_wr += p->line_bytes * (double)d->slow_writes + d->extra_slow_write_bytes +
               CORUN_PAGE_BYTES * (double)d->demoted;
  }
  stats->idle_interval_ns = longest;
  stats->rho_dram = utilization(&p->dram, dram_rd, dram_wr, longest, p->rho_max);
  stats->rho_slow = utilization(&p->slow, slow_rd, slow_wr, longest, p->rho_max);
  stats->dram_read_ns = loaded(p->dram.read_ns, p->alpha, stats->rho_dram);
  stats->dram_write_ns = loaded(p->dram.write_ns, p->alpha, stats->rho_dram);
  stats->slow_read_ns = loaded(p->slow.read_ns, p->alpha, stats->rho_slow);
  stats->slow_write_ns = loaded(p->slow.write_ns, p->alpha, stats->rho_slow);
  for (guint v = 0; v < nr_vms; v++)
    time_ns[v] = vm_time(p, &demand[v], stats->dram_read_ns, stats->dram_write_ns,
                         stats->slow_read_ns, stats->slow_write_ns);
}
