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
  /* a free one, whichever read off first (the scan passes over the hidden ones) */
  ck_assert_uint_ne(stats.kdamond, 0);
  {
    g_autofree char *state = g_strdup_printf("kdamonds/%u/state", stats.kdamond);

    ck_assert_str_eq(damon_fake_get(f.fake, state), "on");
  }
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

/* Eight kdamonds, seven of them someone's: 0 and 1 hmmv's (another VM of this hmmvd being
 * set up: its record, and for 0 its context already), 2-6 another user's paddr contexts (5 and
 * 6 running); 7 free. */
static void
make_taken_table(Fixture *f)
{
  GError *error = NULL;

  ck_assert(hmmv_sysfs_write(f->fs, "kdamonds/nr_kdamonds", "8", &error));
  write_record(f, 0, (int)getpid(), (int)getpid(), "vaddr");
  write_record(f, 1, (int)getpid(), (int)getpid(), "vaddr");
  ck_assert(hmmv_sysfs_write(f->fs, "kdamonds/0/contexts/nr_contexts", "1", &error));
  for (guint i = 2; i < 7; i++) {
    g_autofree char *contexts = g_strdup_printf("kdamonds/%u/contexts/nr_contexts", i);
    g_autofree char *ops = g_strdup_printf("kdamonds/%u/contexts/0/operations", i);
    g_autofree char *state = g_strdup_printf("kdamonds/%u/state", i);

    ck_assert(hmmv_sysfs_write(f->fs, contexts, "1", &error));
    ck_assert(hmmv_sysfs_write(f->fs, ops, "paddr", &error));
    ck_assert_msg(i < 5 || hmmv_sysfs_write(f->fs, state, "on", &error), "%s",
                  error != NULL ? error->message : "");
  }
}

/* What needs no DAMON lock decides first: of eight kdamonds, seven someone's by hmmv's record
 * or a context, only the eighth's state is read (6.12's state_show may fail EBUSY while
 * another VM's snapshot holds DAMON's lock, and was waited out for each kdamond in turn).
 * Until 2026-12-04 every kdamond's state was read first: 8 reads, and the setup's acquire
 * read the states of kdamonds 0-6 too. */
START_TEST(test_scan_reads_states_in_question_only)
{
  Fixture f;
  StateReads *counts;
  g_autoptr(HmmvSysfs) counted = NULL;
  HmmvDamonOptions options = { 0 };
  HmmvDamonStats stats;
  HmmvTracker *tracker;
  GError *error = NULL;
  guint writes[7];

  fixture_init(&f, "vaddr fvaddr paddr");
  make_taken_table(&f);
  counted = state_reads_new(f.fs, &counts);
  ck_assert_msg(hmmv_damon_can_acquire(counted, f.run_dir, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert_uint_eq(state_reads_of(counts, G_MAXUINT), 1);
  ck_assert_uint_eq(state_reads_of(counts, 7), 1);
  for (guint i = 0; i < 7; i++)
    writes[i] = damon_fake_writes_under(f.fake, i);
  options.ops = HMMV_DAMON_VADDR;
  options.interval_ms = 10;
  options.fs = counted;
  options.run_dir = f.run_dir;
  tracker = hmmv_damon_tracker_new(&options, &error);
  ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.kdamond, 7);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/7/state"), "on");
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  for (guint i = 0; i < 7; i++) {
    ck_assert_uint_eq(state_reads_of(counts, i), 0);
    ck_assert_uint_eq(damon_fake_writes_under(f.fake, i), writes[i]);
  }
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/5/state"), "on");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "8");
  fixture_clear(&f);
}
END_TEST

/* DAMON's lock held for good (every state read fails EBUSY) while hmmv looks for a kdamond:
 * the look ends after one patience (hmmv_damon_can_acquire()'s: 5 s, 250 tries of 20 ms) in
 * all, with a clear error, whether one kdamond is in question (_i 0: seven someone's, whose
 * states are never read) or all eight (_i 1: each pass reads the eight once). Counted in
 * passes over the table, not time. Until 2026-12-04 each state read waited out the patience
 * on its own: 8 x 250 reads in 2,000 passes (8 patiences, 40 s), and the look said "8
 * running". */
START_TEST(test_scan_under_held_lock_one_patience)
{
  Fixture f;
  StateReads *counts;
  g_autoptr(HmmvSysfs) counted = NULL;
  GError *error = NULL;
  guint open = _i == 0 ? 1 : 8;
  g_autofree char *says = g_strdup_printf("the state of %u of 8 kdamond(s) stayed hidden behind "
                                          "DAMON's sysfs lock (EBUSY) for 5000 ms", open);

  fixture_init(&f, "vaddr fvaddr paddr");
  if (_i == 0)
    make_taken_table(&f);
  else
    ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/nr_kdamonds", "8", &error));
  counted = state_reads_new(f.fs, &counts);
  damon_fake_hold_lock(f.fake, TRUE);
  ck_assert(!hmmv_damon_can_acquire(counted, f.run_dir, &error));
  ck_assert_msg(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BUSY), "%s", error->message);
  ck_assert_msg(strstr(error->message, says) != NULL, "%s", error->message);
  g_clear_error(&error);
  ck_assert_uint_eq(state_reads_passes(counts), 250);
  ck_assert_uint_eq(state_reads_of(counts, G_MAXUINT), 250 * open);
  ck_assert_uint_eq(state_reads_of(counts, 7), 250);
  /* the lock free again: the next look finds kdamond 7 (_i 0) or 0 (_i 1) free at once */
  damon_fake_hold_lock(f.fake, FALSE);
  ck_assert(hmmv_damon_can_acquire(counted, f.run_dir, &error));
  ck_assert_uint_eq(state_reads_passes(counts), 251);
  ck_assert_uint_eq(damon_fake_nr_writes(f.fake, "kdamonds/nr_kdamonds"), 1);
  fixture_clear(&f);
}
END_TEST

/* The same through a tracker's setup (its patience shortened to 100 ms: 5 tries): while the
 * lock is held its setup says it is still trying, with the one kdamond in question hidden,
 * and never reads the others' states; once the lock is free it takes kdamond 7. */
START_TEST(test_setup_scan_under_held_lock)
{
  Fixture f;
  StateReads *counts;
  g_autoptr(HmmvSysfs) counted = NULL;
  HmmvDamonOptions options = { 0 };
  HmmvDamonStats stats;
  HmmvTracker *tracker;
  GError *error = NULL;

  fixture_init(&f, "vaddr fvaddr paddr");
  make_taken_table(&f);
  counted = state_reads_new(f.fs, &counts);
  damon_fake_hold_lock(f.fake, TRUE);
  options.ops = HMMV_DAMON_VADDR;
  options.interval_ms = 10;
  options.fs = counted;
  options.run_dir = f.run_dir;
  options.setup_patience_ms = 100;
  tracker = hmmv_damon_tracker_new(&options, &error);
  ck_assert(hmmv_tracker_start(tracker, f.vm, &error));
  /* two setups' looks at least (liveness bound: 60 s) */
  for (guint i = 0; i < 6000 && state_reads_of(counts, 7) < 10; i++)
    g_usleep(10000);
  ck_assert_uint_ge(state_reads_of(counts, 7), 10);
  ck_assert(!hmmv_damon_tracker_wait_setup(tracker, &error));
  ck_assert_msg(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BUSY), "%s", error->message);
  ck_assert_msg(strstr(error->message, "the state of 1 of 8 kdamond(s) stayed hidden") != NULL,
                "%s", error->message);
  g_clear_error(&error);
  ck_assert_uint_eq(state_reads_of(counts, G_MAXUINT), state_reads_of(counts, 7));
  damon_fake_hold_lock(f.fake, FALSE);
  for (guint i = 0; i < 6000 && !hmmv_damon_tracker_wait_setup(tracker, &error); i++) {
    ck_assert_msg(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BUSY), "%s", error->message);
    g_clear_error(&error);
    g_usleep(10000);
  }
  ck_assert_msg(error == NULL, "%s", error != NULL ? error->message : "");
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.kdamond, 7);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  for (guint i = 0; i < 7; i++)
    ck_assert_uint_eq(state_reads_of(counts, i), 0);
  fixture_clear(&f);
}
END_TEST

/* A killed hmmvd's three kdamonds, still on, cleaned up at the next start while DAMON's lock
 * is held for good: the whole cleanup has one patience (5 s, 250 tries of 20 ms), so the
 * first kdamond's "off" takes it and the others get one try; every record stays, for the next
 * start, and no state is read for the take-back (the kdamonds have contexts). Counted in
 * refusals: 1 state read, 250 tries of "off", 1 state read, then 3 for each of the others.
 * Until 2026-12-04 each kdamond's two state reads and its "off" waited 5 s each: 2,250
 * refusals (45 s). */
START_TEST(test_cleanup_under_held_lock_one_patience)
{
  Fixture f;
  GError *error = NULL;
  int dead = dead_pid();
  g_autofree char *added = NULL;
  guint refused;

  fixture_init(&f, "vaddr paddr");
  ck_assert(hmmv_sysfs_write(f.fs, "kdamonds/nr_kdamonds", "8", &error));
  for (guint i = 0; i < 3; i++) {
    g_autofree char *contexts = g_strdup_printf("kdamonds/%u/contexts/nr_contexts", i);
    g_autofree char *ops = g_strdup_printf("kdamonds/%u/contexts/0/operations", i);
    g_autofree char *targets = g_strdup_printf("kdamonds/%u/contexts/0/targets/nr_targets", i);
    g_autofree char *state = g_strdup_printf("kdamonds/%u/state", i);

    ck_assert(hmmv_sysfs_write(f.fs, contexts, "1", &error));
    ck_assert(hmmv_sysfs_write(f.fs, ops, "paddr", &error));
    ck_assert(hmmv_sysfs_write(f.fs, targets, "1", &error));
    ck_assert_msg(hmmv_sysfs_write(f.fs, state, "on", &error), "%s", error->message);
    write_record(&f, i, dead, getpid(), "paddr");
  }
  added = g_build_filename(f.run_dir, "added", NULL);
  ck_assert(g_file_set_contents(added, "before=0\n", -1, NULL));
  damon_fake_hold_lock(f.fake, TRUE);
  refused = damon_fake_busy_refused(f.fake);
  ck_assert_uint_eq(hmmv_damon_cleanup_stale(f.fs, f.run_dir, &error), 0);
  ck_assert_uint_eq(damon_fake_busy_refused(f.fake) - refused, 252 + 2 * 3);
  for (guint i = 0; i < 3; i++) {
    g_autofree char *state = g_strdup_printf("kdamonds/%u/state", i);

    ck_assert_str_eq(damon_fake_get(f.fake, state), "on");
    ck_assert(record_exists(&f, i));
  }
  /* the lock free again: the next start cleans them all up and takes back the eight */
  damon_fake_hold_lock(f.fake, FALSE);
  ck_assert_uint_eq(hmmv_damon_cleanup_stale(f.fs, f.run_dir, &error), 3);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
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
  tcase_add_test(tc, test_scan_reads_states_in_question_only);
  tcase_add_loop_test(tc, test_scan_under_held_lock_one_patience, 0, 2);
  tcase_add_test(tc, test_setup_scan_under_held_lock);
  tcase_add_test(tc, test_cleanup_under_held_lock_one_patience);
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
