/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The DAMON suites' bed: see damon-bed.h. */
#include "damon-bed.h"

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
