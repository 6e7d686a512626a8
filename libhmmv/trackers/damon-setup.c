/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The DAMON read tracker's setup (see damon.c for the tracker): the sizes chosen from the VM,
 * the monitored space (guest RAM's host ranges for vaddr, the runs of its frames for paddr)
 * and the kdamond's configuration. It runs on the tracker's thread: its writes may wait out
 * DAMON's sysfs lock, and hmmvd's main loop must not.
 */
#include "../vm-private.h"
#include "damon-tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <hmmv/error.h>
#include <string.h>
#include <unistd.h>

static gboolean
write_attr(HmmvDamonTracker *damon, const char *rest, const char *value, GError **error)
{
  g_autofree char *path = hmmv_damon_path(damon->index, rest);

  /* the thread alone writes, and setting_up changes only on it once it runs */
  if (!hmmv_damon_write_full(damon->fs, path, value,
                             damon->setting_up ? damon->setup_patience_ms
                                               : damon->patience_ms,
                             damon->cancel, error)) {
    g_prefix_error(error, "kdamond %u: ", damon->index);
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmv_damon_write_attr(HmmvDamonTracker *damon, const char *rest, const char *value,
                      GError **error)
{
  return write_attr(damon, rest, value, error);
}

static gboolean
write_attr_u64(HmmvDamonTracker *damon, const char *rest, guint64 value, GError **error)
{
  char buf[32];

  g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, value);
  return write_attr(damon, rest, buf, error);
}

static gint
pfn_cmp(gconstpointer a, gconstpointer b)
{
  guint64 x = ((const PfnPage *)a)->pfn, y = ((const PfnPage *)b)->pfn;

  return x < y ? -1 : x > y;
}

/* guest pages -> frames, sorted by frame. Pages not present are left out. */
gboolean
hmmv_damon_read_pfns(HmmvDamonTracker *damon, GError **error)
{
  g_autofree char *path = g_strdup_printf("%s/%d/pagemap", damon->proc_dir, damon->target_pid);
  g_autofree guint64 *buf = g_new(guint64, 4096);
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    int saved = errno;

    g_set_error(error, HMMV_ERROR, saved == ENOENT || saved == ESRCH ? HMMV_ERROR_GONE
                                                                     : HMMV_ERROR_IO,
                "%s: %s", path, g_strerror(saved));
    return FALSE;
  }
  g_array_set_size(damon->pfns, 0);
  for (guint r = 0; r < damon->ranges->len; r++) {
    const HvaRange *range = &g_array_index(damon->ranges, HvaRange, r);

    for (guint64 done = 0; done < range->nr_pages;) {
      guint64 count = MIN(range->nr_pages - done, 4096u);
      off_t offset = (off_t)(((range->hva >> HMMV_PAGE_SHIFT) + done) * 8);
      ssize_t n = pread(fd, buf, count * 8, offset);

      if (n <= 0) {
        int saved = n < 0 ? errno : EIO;

        close(fd);
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "%s: %s", path, g_strerror(saved));
        return FALSE;
      }
      count = (guint64)n / 8;
      for (guint64 i = 0; i < count; i++) {
        PfnPage entry = { buf[i] & PAGEMAP_PFN_MASK, range->first_page + done + i };

        /* without CAP_SYS_ADMIN the kernel reports frame 0 */
        if ((buf[i] & PAGEMAP_PRESENT) && entry.pfn != 0)
          g_array_append_val(damon->pfns, entry);
      }
      done += count;
    }
  }
  close(fd);
  g_array_sort(damon->pfns, pfn_cmp);
  return TRUE;
}

void
hmmv_damon_choose_sizes(HmmvDamonTracker *damon)
{
  HmmvDamonStats *stats = &damon->stats;
  guint interval_ms = MAX(damon->options.interval_ms, 10u);

  stats->aggr_us = interval_ms * 500u;
  stats->sample_us = damon->options.sample_us != 0 ? damon->options.sample_us
                                                   : MAX(stats->aggr_us / 10u, 1000u);
  stats->sample_us = MIN(stats->sample_us, stats->aggr_us);
  stats->max_nr_regions = damon->options.max_nr_regions != 0
                            ? damon->options.max_nr_regions
                            : (guint)CLAMP(damon->nr_pages / 16, 100, 10000);
  stats->max_nr_regions = MAX(stats->max_nr_regions, 10u);
  stats->min_nr_regions = MAX(stats->max_nr_regions / 4, 10u);
  stats->min_accesses = MAX(damon->options.min_accesses, 1u);
  stats->min_nr_regions = MIN(stats->min_nr_regions, stats->max_nr_regions);
  damon->fine_sample_us = stats->sample_us;
  damon->fine_aggr_us = stats->aggr_us;
  damon->fine_min_nr_regions = stats->min_nr_regions;
  damon->fine_max_nr_regions = stats->max_nr_regions;
}

void
hmmv_damon_quiet_nr_regions(guint min_nr_regions, guint max_nr_regions, guint *quiet_min,
                            guint *quiet_max)
{
  /* at least 10 as choose_sizes() has it, never more than its own; DAMON wants min >= 3 */
  *quiet_max = MIN(MAX(max_nr_regions / HMMV_DAMON_QUIET_REGIONS_SHARE, 10u), max_nr_regions);
  *quiet_min = MIN(MAX(min_nr_regions / HMMV_DAMON_QUIET_REGIONS_SHARE, 3u), *quiet_max);
}

/* paddr: the physical ranges to monitor, the runs of the VM's frames (sorted), at most
 * max_runs of them: runs closer than a gap are joined, the gap doubling (1, 2, 4.. frames)
 * until they fit. One span from the lowest frame to the highest, as before, put the frames
 * of every other process in between into DAMON's regions: a 64 MiB guest on tmpfs in the
 * 2 GiB testbed had its regions spread over the whole span, each region's one sampled frame
 * mostly not the VM's, and recall 0.045-0.82. DAMON never merges regions that do not touch,
 * so it spends its regions on guest frames only. */
static void
frame_runs(HmmvDamonTracker *damon, guint max_runs, GArray *out)
{
  guint64 gap = 0;

  max_runs = MAX(max_runs, 1u);
  for (;;) {
    g_array_set_size(out, 0);
    for (guint i = 0; i < damon->pfns->len; i++) {
      guint64 pfn = g_array_index(damon->pfns, PfnPage, i).pfn;
      guint64 *last = out->len > 0 ? &g_array_index(out, guint64, out->len - 2) : NULL;

      if (last != NULL && pfn <= (last[1] >> HMMV_PAGE_SHIFT) + gap) {
        last[1] = MAX(last[1], (pfn + 1) << HMMV_PAGE_SHIFT);
      } else {
        guint64 run[2] = { pfn << HMMV_PAGE_SHIFT, (pfn + 1) << HMMV_PAGE_SHIFT };

        g_array_append_vals(out, run, 2);
      }
    }
    if (out->len / 2 <= max_runs)
      return;
    gap = gap == 0 ? 1 : gap * 2;
  }
}

/* paddr: VM frames outside the monitored ranges (hmmv moved them, or the guest touched new
 * pages). */
guint64
hmmv_damon_frames_outside(HmmvDamonTracker *damon)
{
  guint64 outside = 0;
  guint s = 0;

  for (guint i = 0; i < damon->pfns->len; i++) {
    guint64 addr = g_array_index(damon->pfns, PfnPage, i).pfn << HMMV_PAGE_SHIFT;

    while (s < damon->spans->len / 2 && g_array_index(damon->spans, guint64, 2 * s + 1) <= addr)
      s++;
    outside += s >= damon->spans->len / 2 || g_array_index(damon->spans, guint64, 2 * s) > addr;
  }
  return outside;
}

/* Cuts the spans into pieces of one size, page aligned, at least min_pieces in all. DAMON
 * starts from the regions it is given and at most doubles or triples their number each
 * aggregation: from one region over 64 MiB it took 6-8 aggregations to split down to its
 * 256-region floor, and the snapshots until then marked all or most of guest RAM read (the
 * testbed, loaded: 3,000-8,000 pages of a 2,048-page read set in the first 8 intervals,
 * which kept them warm for the rest of a 30-interval run: precision 0.450). */
static GArray *
split_spans(GArray *spans, guint min_pieces)
{
  GArray *out = g_array_new(FALSE, FALSE, sizeof(guint64) * 2);
  guint64 total = 0, piece;

  for (guint i = 0; i < spans->len; i++)
    total += g_array_index(spans, guint64, 2 * i + 1) - g_array_index(spans, guint64, 2 * i);
  piece = MAX(total / MAX(min_pieces, 1u) & ~(guint64)(HMMV_PAGE_SIZE - 1), HMMV_PAGE_SIZE);
  for (guint i = 0; i < spans->len; i++) {
    guint64 start = g_array_index(spans, guint64, 2 * i);
    guint64 end = g_array_index(spans, guint64, 2 * i + 1);

    while (start < end) {
      guint64 cut[2] = { start, end - start > piece + piece / 2 ? start + piece : end };

      g_array_append_val(out, cut);
      start = cut[1];
    }
  }
  g_array_unref(spans);
  return out;
}

/* The monitored space: vaddr, guest RAM's host ranges; paddr, the runs of its frames. */
gboolean
hmmv_damon_write_regions(HmmvDamonTracker *damon, GError **error)
{
  g_autoptr(GArray) spans = g_array_new(FALSE, FALSE, sizeof(guint64) * 2);


  if (damon->options.ops == HMMV_DAMON_PADDR) {
    if (!hmmv_damon_read_pfns(damon, error))
      return FALSE;
    if (damon->pfns->len == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                  "no frame of guest RAM is visible in /proc/%d/pagemap (none present, or "
                  "no CAP_SYS_ADMIN)", damon->target_pid);
      return FALSE;
    }
    frame_runs(damon, damon->stats.max_nr_regions / 2, damon->spans);
    g_array_append_vals(spans, damon->spans->data, damon->spans->len / 2);
    g_mutex_lock(&damon->lock);
    damon->stats.monitored_ranges = damon->spans->len / 2;
    g_mutex_unlock(&damon->lock);
  } else {
    for (guint r = 0; r < damon->ranges->len; r++) {
      const HvaRange *range = &g_array_index(damon->ranges, HvaRange, r);
      guint64 span[2] = { range->hva, range->hva + (range->nr_pages << HMMV_PAGE_SHIFT) };

      g_array_append_val(spans, span);
    }
  }
  spans = split_spans(spans, damon->stats.min_nr_regions);
  if (!write_attr_u64(damon, "contexts/0/targets/0/regions/nr_regions", spans->len, error))
    return FALSE;
  for (guint i = 0; i < spans->len; i++) {
    const guint64 *span = &g_array_index(spans, guint64, 2 * i);
    g_autofree char *start = g_strdup_printf("contexts/0/targets/0/regions/%u/start", i);
    g_autofree char *end = g_strdup_printf("contexts/0/targets/0/regions/%u/end", i);

    /* end first: the kernel does not check the pair until "on" */
    if (!write_attr_u64(damon, end, span[1], error) ||
        !write_attr_u64(damon, start, span[0], error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
configure(HmmvDamonTracker *damon, GError **error)
{
  const char *ops = hmmv_damon_ops_name(damon->options.ops);
  const char *kernel_ops;
  HmmvDamonStats *s = &damon->stats;
  g_autofree char *avail = NULL;
  g_autofree char *avail_path = hmmv_damon_path(damon->index, "contexts/0/avail_operations");
  g_auto(GStrv) words = NULL;

  if (!write_attr(damon, "contexts/nr_contexts", "1", error))
    return FALSE;
  if (!hmmv_sysfs_read(damon->fs, avail_path, &avail, error))
    return FALSE;
  words = g_strsplit_set(avail, " \n", -1);
  if (!g_strv_contains((const char *const *)words, ops)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "DAMON here offers \"%s\", not %s", avail, ops);
    return FALSE;
  }
  /* fvaddr (6.1+) is vaddr over the ranges given, which stay put; vaddr proper replaces
   * them every update interval with three regions spanning the whole process (heap, mmap
   * area, stack), spreading its regions over QEMU's gigabytes of address space instead of
   * guest RAM. */
  kernel_ops = damon->options.ops == HMMV_DAMON_VADDR &&
               g_strv_contains((const char *const *)words, "fvaddr") ? "fvaddr" : ops;
  if (!hmmv_damon_write_record(damon->run_dir, damon->index, kernel_ops, damon->target_pid,
                               error))
    return FALSE;
  if (!write_attr(damon, "contexts/0/operations", kernel_ops, error) ||
      !write_attr_u64(damon, "contexts/0/monitoring_attrs/intervals/sample_us", s->sample_us,
                      error) ||
      !write_attr_u64(damon, "contexts/0/monitoring_attrs/intervals/aggr_us", s->aggr_us,
                      error) ||
      /* vaddr re-reads the mappings this often: once a second is plenty for guest RAM */
      !write_attr_u64(damon, "contexts/0/monitoring_attrs/intervals/update_us",
                      MAX(s->aggr_us, 1000000u), error) ||
      !write_attr_u64(damon, "contexts/0/monitoring_attrs/nr_regions/max", s->max_nr_regions,
                      error) ||
      !write_attr_u64(damon, "contexts/0/monitoring_attrs/nr_regions/min", s->min_nr_regions,
                      error) ||
      !write_attr(damon, "contexts/0/targets/nr_targets", "1", error))
    return FALSE;
  if (damon->options.ops == HMMV_DAMON_VADDR &&
      !write_attr_u64(damon, "contexts/0/targets/0/pid_target", (guint64)damon->target_pid,
                      error))
    return FALSE;
  if (!hmmv_damon_write_regions(damon, error) ||
      !write_attr(damon, "contexts/0/schemes/nr_schemes", "1", error) ||
      !write_attr(damon, "contexts/0/schemes/0/action", "stat", error) ||
      !write_attr(damon, "contexts/0/schemes/0/access_pattern/sz/max",
                  "18446744073709551615", error) ||
      !write_attr(damon, "contexts/0/schemes/0/access_pattern/sz/min", "0", error) ||
      !write_attr(damon, "contexts/0/schemes/0/access_pattern/nr_accesses/max", "4294967295",
                  error) ||
      !write_attr(damon, "contexts/0/schemes/0/access_pattern/nr_accesses/min", "1", error) ||
      !write_attr(damon, "contexts/0/schemes/0/access_pattern/age/max", "4294967295", error) ||
      !write_attr(damon, "contexts/0/schemes/0/access_pattern/age/min", "0", error) ||
      !write_attr(damon, "state", "on", error))
    return FALSE;
  return TRUE;
}

/* Setups of one run that may find their kdamond's directories re-created under them. */
#define DAMON_SETUP_TRIES 4u

/* Takes a kdamond, configures it and turns it on (FALSE: damon->acquired says whether one
 * was taken, for the caller to give back): what start() did on its caller's thread
 * until 2026-12-02. Some 20 writes, up to 5,000 with the regions; 5 or 6 of them (nr_* and
 * state) take DAMON's sysfs lock with mutex_trylock, and each waited it out for up to 5 s:
 * hmmvd's main loop, which starts trackers as VMs join the core, went unanswered for as
 * long as another kdamond's user held the lock (up to 30 s), and then the VM lost its
 * reads. On the tracker's thread it holds nobody, and so waits longer (60 s a write). */
gboolean
hmmv_damon_setup(HmmvDamonTracker *damon, GError **error)
{
  g_autofree char *pid_path = NULL;
  guint64 kdamond_pid = 0;

  for (guint attempt = 1;; attempt++) {
    g_autoptr(GError) local_error = NULL;

    if (!hmmv_damon_acquire(damon->fs, damon->run_dir, damon->options.ops,
                            damon->target_pid, damon->setup_patience_ms, damon->cancel,
                            &damon->index, error))
      return FALSE;
    damon->acquired = TRUE;
    if (configure(damon, &local_error))
      break;
    /* A file the setup writes is gone: the kdamond's directories were removed and made
     * again under it (whoever writes nr_kdamonds, or this kdamond's nr_contexts or
     * nr_targets, re-creates them empty; the kernel refuses that only while the kdamond
     * runs, and it is off until the setup's last write). Give it back and set up again,
     * DAMON_SETUP_TRIES times in all: a file missing for good fails as it did. */
    if (!g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
        attempt >= DAMON_SETUP_TRIES) {
      /* a kdamond taken but not configured stays acquired: the thread gives it back */
      g_propagate_error(error, g_steal_pointer(&local_error));
      return FALSE;
    }
    g_message("reads: %s: set up again (%u of %u)", local_error->message, attempt + 1,
              DAMON_SETUP_TRIES);
    if (!hmmv_damon_release(damon->fs, damon->run_dir, damon->index,
                            damon->setup_patience_ms, error))
      return FALSE;   /* its record stays: not taken again, cleaned up by the next hmmvd */
    damon->acquired = FALSE;
  }
  pid_path = hmmv_damon_path(damon->index, "pid");
  (void)hmmv_sysfs_read_u64(damon->fs, pid_path, &kdamond_pid, NULL);
  g_mutex_lock(&damon->lock);
  damon->stats.kdamond = damon->index;
  damon->stats.kdamond_pid = (int)kdamond_pid;
  g_mutex_unlock(&damon->lock);
  return TRUE;
}
