/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * DAMON shared with its other users: hmmv takes only a free kdamond and writes nothing under
 * another user's, cleans up after a killed hmmvd (its records in the run directory), and
 * probes what the kernel offers without writing; on the fake DAMON sysfs tree (damon-fake.c).
 */
#include "damon-bed.h"

#include <glib/gstdio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Another user's kdamond runs and none is free: nothing is written at all. */
START_TEST(test_foreign_running_untouched)
{
  Fixture f;
  HmmvTracker *tracker;
  GError *error = NULL;
  gboolean running = _i == 0;

  fixture_init(&f, "vaddr paddr");
  damon_fake_add_foreign(f.fake, running);
  ck_assert(!hmmv_damon_can_acquire(f.fs, f.run_dir, &error));
  g_clear_error(&error);
  tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
  ck_assert(!start_tracker(tracker, f.vm, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED), "%s",
                error->message);
  ck_assert(strstr(error->message, "no free kdamond") != NULL);
  g_clear_error(&error);
  ck_assert_uint_eq(damon_fake_writes_under(f.fake, 0), 0);
  ck_assert_uint_eq(damon_fake_nr_writes(f.fake, "kdamonds/nr_kdamonds"), 0);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), running ? "on" : "off");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/contexts/0/operations"), "paddr");
  ck_assert(!record_exists(&f, 0));
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_uint_eq(damon_fake_writes_under(f.fake, 0), 0);
  fixture_clear(&f);
}
END_TEST

/* A free kdamond beside a running foreign one: hmmv takes the free one and only that. */
START_TEST(test_free_kdamond_beside_foreign)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 accessed[] = { HVA, HVA + 4096 };
  HmmvTracker *tracker;
  GError *error = NULL;

  fixture_init(&f, "vaddr paddr");
  /* kdamonds 0 (foreign, on) and 1 (free): as after "echo 2 > nr_kdamonds" by its user */
  damon_fake_add_foreign(f.fake, FALSE);
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/nr_kdamonds", "2", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/contexts/nr_contexts", "1", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/contexts/0/operations", "paddr", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/state", "on", &error));
  {
    guint before = damon_fake_writes_under(f.fake, 0);

    damon_fake_set_accessed(f.fake, accessed, 1);
    tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
    ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s",
                  error != NULL ? error->message : "");
    ck_assert(record_exists(&f, 1));
    harvest_snapshot(tracker, f.vm, acc);
    ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 1);
    /* a second VM finds no free kdamond and cannot add one while kdamond 0 runs */
    {
      HmmvTracker *second = new_tracker(&f, HMMV_DAMON_VADDR, NULL);

      ck_assert(!start_tracker(second, f.vm, &error));
      g_clear_error(&error);
      hmmv_tracker_free(second);
    }
    stop_tracker(tracker);
    hmmv_tracker_free(tracker);
    ck_assert_uint_eq(damon_fake_writes_under(f.fake, 0), before);
  }
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "2");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/1/state"), "off");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/1/contexts/nr_contexts"), "0");
  fixture_clear(&f);
}
END_TEST

static int
dead_pid(void)
{
  pid_t pid = fork();

  if (pid == 0)
    _exit(0);
  ck_assert_int_gt(pid, 0);
  waitpid(pid, NULL, 0);
  return pid;
}

static void
write_record(Fixture *f, guint index, int owner, int target, const char *ops)
{
  g_autofree char *path = g_strdup_printf("%s/kdamond-%u", f->run_dir, index);
  g_autofree char *text = g_strdup_printf("owner_pid=%d\ntarget_pid=%d\nops=%s\n", owner,
                                          target, ops);

  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

/* An hmmvd was killed: its kdamond still runs. The next start turns it off and frees it;
 * a record whose kdamond changed hands since is dropped and the kdamond left alone; a
 * record of a live hmmvd is left alone. */
START_TEST(test_cleanup_stale)
{
  Fixture f;
  HmmvTracker *tracker;
  GError *error = NULL;
  g_autofree char *added = NULL;
  int dead = dead_pid();

  fixture_init(&f, "vaddr paddr");
  tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
  ck_assert(start_tracker(tracker, f.vm, &error));
  /* simulate the kill: the records now name a dead owner, the kdamond stays on */
  write_record(&f, 0, dead, getpid(), "vaddr");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert_uint_eq(hmmv_damon_cleanup_stale(f.fs, f.run_dir, &error), 1);
  ck_assert_uint_eq(damon_fake_nr_writes(f.fake, "kdamonds/0/contexts/nr_contexts"), 2);
  ck_assert(!record_exists(&f, 0));
  /* and the kdamonds it had added are taken back (the fake, as the kernel, refuses that
   * with EBUSY while one runs: so it was turned off) */
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  added = g_build_filename(f.run_dir, "added", NULL);
  ck_assert(!g_file_test(added, G_FILE_TEST_EXISTS));
  stop_tracker(tracker);   /* its kdamond was taken away: stop must cope */
  hmmv_tracker_free(tracker);

  /* changed hands: someone else now runs kdamond 0 with paddr */
  damon_fake_add_foreign(f.fake, TRUE);
  write_record(&f, 0, dead, getpid(), "vaddr");
  {
    guint before = damon_fake_writes_under(f.fake, 0);

    ck_assert_uint_eq(hmmv_damon_cleanup_stale(f.fs, f.run_dir, &error), 0);
    ck_assert_uint_eq(damon_fake_writes_under(f.fake, 0), before);
  }
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert(!record_exists(&f, 0));
  /* a live owner (this process's parent stands for a running hmmvd) */
  write_record(&f, 0, getppid(), getpid(), "paddr");
  ck_assert_uint_eq(hmmv_damon_cleanup_stale(f.fs, f.run_dir, &error), 0);
  ck_assert(record_exists(&f, 0));
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  fixture_clear(&f);
}
END_TEST

/* The probe decides without writing: an existing context's avail_operations, else the
 * kernel's symbols. */
START_TEST(test_probe_reads_only)
{
  Fixture f;
  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp("hmmv-kallsyms-XXXXXX", NULL);
  g_autofree char *kallsyms = g_build_filename(dir, "kallsyms", NULL);

  fixture_init(&f, "paddr");
  ck_assert(g_file_set_contents(kallsyms, "ffffffff81000000 t damon_va_check_accesses\n", -1,
                                NULL));
  /* no kdamond: the symbols say vaddr is there, paddr is not */
  ck_assert(hmmv_damon_probe(f.fs, HMMV_DAMON_VADDR, kallsyms, &error));
  ck_assert(!hmmv_damon_probe(f.fs, HMMV_DAMON_PADDR, kallsyms, &error));
  g_clear_error(&error);
  /* a context says paddr only (as this project's build host does) */
  damon_fake_add_foreign(f.fake, TRUE);
  ck_assert(!hmmv_damon_probe(f.fs, HMMV_DAMON_VADDR, kallsyms, &error));
  ck_assert(strstr(error->message, "offers \"paddr\"") != NULL);
  g_clear_error(&error);
  ck_assert(hmmv_damon_probe(f.fs, HMMV_DAMON_PADDR, kallsyms, &error));
  ck_assert_uint_eq(damon_fake_writes_under(f.fake, 0), 0);
  g_unlink(kallsyms);
  g_rmdir(dir);
  fixture_clear(&f);
}
END_TEST

/* Without DAMON's sysfs at all, the real seam on an empty directory says so. */
START_TEST(test_probe_no_damon)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-nodamon-XXXXXX", NULL);
  g_autoptr(HmmvSysfs) fs = hmmv_sysfs_new_dir(dir);
  GError *error = NULL;

  ck_assert(!hmmv_damon_probe(fs, HMMV_DAMON_VADDR, "/nonexistent", &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED));
  ck_assert(strstr(error->message, "no DAMON sysfs") != NULL);
  g_clear_error(&error);
  g_rmdir(dir);
}
END_TEST

/* Another VM's kdamond is being set up (configured, still off, recorded) beside free ones,
 * and DAMON's lock hides every kdamond's state from a second VM's first look (its patience
 * 0 here: the lock held longer than it waits). Until 2026-12-04 the second look that found
 * kdamond 1 free was taken for "every kdamond free" and nr_kdamonds was written (the kernel
 * allows that while none runs): kdamond 0's setup vanished under it, "pid_target: No such
 * file or directory" (the race of issue 8, hmmvd-base run 1). Now a hidden state is tried
 * again and kdamond 0 is left as it was. */
START_TEST(test_acquire_never_recreates_a_setup)
{
  Fixture f;
  HmmvDamonOptions options = { 0 };
  g_autofree char *pid = g_strdup_printf("%d", (int)getpid());
  HmmvDamonStats stats;
  HmmvTracker *tracker;
  GError *error = NULL;

  fixture_init(&f, "vaddr fvaddr paddr");
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/nr_kdamonds", "8", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/contexts/nr_contexts", "1", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/contexts/0/operations", "fvaddr", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/contexts/0/targets/nr_targets", "1", &error));
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/0/contexts/0/targets/0/pid_target", pid,
                             &error));
  write_record(&f, 0, (int)getpid(), (int)getpid(), "fvaddr");
  damon_fake_busy_state_reads(f.fake, 8);
  options.ops = HMMV_DAMON_VADDR;
  options.interval_ms = 10;
  options.fs = f.fs;
  options.run_dir = f.run_dir;
  options.patience_ms = 1;
  options.setup_patience_ms = 1;
  tracker = hmmv_damon_tracker_new(&options, &error);
  ck_assert(hmmv_tracker_start(tracker, f.vm, &error));
  /* the setup says it is still trying while it waits out the lock (liveness bound: 60 s) */
  for (guint i = 0; i < 6000 && !hmmv_damon_tracker_wait_setup(tracker, &error); i++) {
    ck_assert_msg(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BUSY), "%s", error->message);
    g_clear_error(&error);
    g_usleep(10000);
  }
  ck_assert_msg(error == NULL, "%s", error != NULL ? error->message : "");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "8");
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.kdamond, 1);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/1/state"), "on");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/contexts/nr_contexts"), "1");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/contexts/0/targets/0/pid_target"), pid);
  ck_assert_uint_eq(damon_fake_nr_writes(f.fake, "kdamonds/nr_kdamonds"), 1);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

/* Another user writes nr_kdamonds while hmmv sets its kdamond up (off until the last
 * write): every kdamond directory is made again, empty, and the setup's next write finds
 * its file gone. Until 2026-12-04 that ended the VM's read tracking for good; now the kdamond
 * is given back and set up again. */
START_TEST(test_setup_recreated_under_it_set_up_again)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 accessed[] = { HVA + 16 * 4096, HVA + 32 * 4096 };
  g_autofree char *pid = g_strdup_printf("%d", (int)getpid());
  HmmvTracker *tracker;
  GError *error = NULL;

  fixture_init(&f, "vaddr fvaddr paddr");
  damon_fake_set_accessed(f.fake, accessed, 1);
  damon_fake_recreate_after(f.fake, "/contexts/0/targets/nr_targets");
  tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
  ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/contexts/0/targets/0/pid_target"), pid);
  ck_assert_uint_ge(damon_fake_nr_writes(f.fake, "kdamonds/0/contexts/0/targets/nr_targets"),
                    2);
  harvest_snapshot(tracker, f.vm, acc);
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 16);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  ck_assert(!record_exists(&f, 0));
  fixture_clear(&f);
}
END_TEST

static Suite *
damon_kdamonds_suite(void)
{
  Suite *s = suite_create("damon-kdamonds");
  TCase *tc = tcase_create("damon-kdamonds");

  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_foreign_running_untouched, 0, 2);
  tcase_add_test(tc, test_free_kdamond_beside_foreign);
  tcase_add_test(tc, test_cleanup_stale);
  tcase_add_test(tc, test_acquire_never_recreates_a_setup);
  tcase_add_test(tc, test_setup_recreated_under_it_set_up_again);
  tcase_add_test(tc, test_probe_reads_only);
  tcase_add_test(tc, test_probe_no_damon);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(damon_kdamonds_suite());
}
