/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The DAMON suites' bed: see damon-bed.h. */
#include "damon-bed.h"

#include <string.h>
#include <unistd.h>

void
fixture_init(Fixture *f, const char *avail)
{
  GError *error = NULL;

  f->fs = damon_fake_new(avail, &f->fake);
  f->run_dir = g_dir_make_tmp("hmmv-damon-XXXXXX", &error);
  ck_assert_ptr_nonnull(f->run_dir);
  f->vm = hmmv_vm_new("vm1");
  ck_assert(hmmv_vm_add_region(f->vm, "pc.ram", 0, HVA, NR_PAGES * 4096ull, 4096, &error));
  ck_assert(hmmv_vm_finalize_layout(f->vm, &error));
  hmmv_vm_set_pid(f->vm, getpid());
}

void
fixture_clear(Fixture *f)
{
  /* every tracker's thread has given its kdamond back (liveness bound: 60 s) */
  ck_assert(hmmv_damon_wait_released(60000));
  hmmv_sysfs_unref(f->fs);
  hmmv_test_remove_tree(f->run_dir);
  g_free(f->run_dir);
  hmmv_vm_free(f->vm);
}

HmmvTracker *
new_tracker(Fixture *f, HmmvDamonOps ops, const char *proc_dir)
{
  HmmvDamonOptions options = {
    .ops = ops, .interval_ms = 10, .fs = f->fs, .run_dir = f->run_dir, .proc_dir = proc_dir,
  };
  GError *error = NULL;
  HmmvTracker *tracker = hmmv_damon_tracker_new(&options, &error);

  ck_assert_ptr_nonnull(tracker);
  return tracker;
}

void
stop_tracker(HmmvTracker *tracker)
{
  hmmv_tracker_stop(tracker);
  ck_assert(hmmv_damon_wait_released(60000));
}

gboolean
start_tracker(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  return hmmv_tracker_start(tracker, vm, error) && hmmv_damon_tracker_wait_setup(tracker, error);
}

void
harvest_snapshot(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc)
{
  GError *error = NULL;

  for (guint i = 0; i < 6000; i++) {
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                  error != NULL ? error->message : "");
    if (acc->intervals > 0)
      return;
    g_usleep(10000);
  }
  ck_abort_msg("no DAMON snapshot within 60 s");
}

HmmvTracker *
start_steady_reader(Fixture *f, HmmvAccess *acc)
{
  guint64 range[] = { HVA + 16 * 4096, HVA + 32 * 4096 };
  HmmvTracker *tracker;
  GError *error = NULL;

  fixture_init(f, "vaddr fvaddr paddr");
  damon_fake_set_accessed(f->fake, range, 1);
  tracker = new_tracker(f, HMMV_DAMON_VADDR, NULL);
  ck_assert_msg(start_tracker(tracker, f->vm, &error), "%s",
                error != NULL ? error->message : "");
  harvest_snapshot(tracker, f->vm, acc);
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 16);
  return tracker;
}

gboolean
record_exists(Fixture *f, guint index)
{
  g_autofree char *path = g_strdup_printf("%s/kdamond-%u", f->run_dir, index);

  return g_file_test(path, G_FILE_TEST_EXISTS);
}

struct _StateReads {
  HmmvSysfs *inner;
  GMutex lock;
  GArray *reads;   /* guint per kdamond */
  guint passes;
  gint last;       /* the kdamond read last, or -1 */
};

/* "kdamonds/N/state": N, or -1 */
static gint
state_of(const char *path)
{
  guint64 index;
  const char *end;

  if (!g_str_has_prefix(path, "kdamonds/"))
    return -1;
  index = g_ascii_strtoull(path + 9, (char **)&end, 10);
  if (end == path + 9 || strcmp(end, "/state") != 0 || index > G_MAXINT)
    return -1;
  return (gint)index;
}

static gboolean
counting_read(HmmvSysfs *fs, const char *path, char **contents, GError **error)
{
  StateReads *counts = fs->priv;
  gint index = state_of(path);

  if (index >= 0) {
    g_mutex_lock(&counts->lock);
    if ((guint)index >= counts->reads->len)
      g_array_set_size(counts->reads, (guint)index + 1);
    g_array_index(counts->reads, guint, index)++;
    counts->passes += counts->last < 0 || index <= counts->last;
    counts->last = index;
    g_mutex_unlock(&counts->lock);
  }
  return hmmv_sysfs_read(counts->inner, path, contents, error);
}

static gboolean
counting_write(HmmvSysfs *fs, const char *path, const char *value, GError **error)
{
  StateReads *counts = fs->priv;

  return hmmv_sysfs_write(counts->inner, path, value, error);
}

static gboolean
counting_exists(HmmvSysfs *fs, const char *path)
{
  StateReads *counts = fs->priv;

  return hmmv_sysfs_exists(counts->inner, path);
}

static void
counting_destroy(HmmvSysfs *fs)
{
  StateReads *counts = fs->priv;

  hmmv_sysfs_unref(counts->inner);
  g_array_unref(counts->reads);
  g_mutex_clear(&counts->lock);
  g_free(counts);
}

static const struct hmmv_sysfs_ops counting_ops = {
  .name = "damon-fake-counting",
  .read = counting_read,
  .write = counting_write,
  .exists = counting_exists,
  .destroy = counting_destroy,
};

HmmvSysfs *
state_reads_new(HmmvSysfs *fs, StateReads **counts)
{
  StateReads *c = g_new0(StateReads, 1);

  c->inner = hmmv_sysfs_ref(fs);
  g_mutex_init(&c->lock);
  c->reads = g_array_new(FALSE, TRUE, sizeof(guint));
  c->last = -1;
  *counts = c;
  return hmmv_sysfs_new(&counting_ops, c);
}

guint
state_reads_of(StateReads *counts, guint index)
{
  guint count = 0;

  g_mutex_lock(&counts->lock);
  for (guint i = 0; i < counts->reads->len; i++) {
    if (index == G_MAXUINT || i == index)
      count += g_array_index(counts->reads, guint, i);
  }
  g_mutex_unlock(&counts->lock);
  return count;
}

guint
state_reads_passes(StateReads *counts)
{
  guint passes;

  g_mutex_lock(&counts->lock);
  passes = counts->passes;
  g_mutex_unlock(&counts->lock);
  return passes;
}
