/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * DAMON's lock (damon_sysfs_lock, taken with mutex_trylock: EBUSY while another holds it):
 * the tracker's thread waits it out at setup, at each snapshot and at stop, off hmmvd's main
 * loop, and a stop cancels a setup still waiting; on the fake DAMON sysfs tree (damon-fake.c).
 */
#include "damon-bed.h"

/* Another holder of damon_sysfs_lock (a second VM's tracker asking for its regions, or
 * another tool): mm/damon/sysfs.c takes it with mutex_trylock, so state and nr_* writes fail
 * with EBUSY for a while. hmmv waits it out when it sets a kdamond up and at each snapshot
 * (the testbed, 2026-12-02: a restarted hmmvd lost read tracking to "nr_contexts: Device or
 * resource busy"; a snapshot thread that met it ended, and the VM was tracked for writes
 * only from then on). */
START_TEST(test_busy_lock_waited_out)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 accessed[] = { HVA + 16 * 4096, HVA + 32 * 4096 };
  HmmvDamonStats stats;
  HmmvTracker *tracker;
  GError *error = NULL;
  guint64 before;

  fixture_init(&f, "vaddr paddr");
  damon_fake_set_accessed(f.fake, accessed, 1);
  tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
  damon_fake_busy(f.fake, 5);
  ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  harvest_snapshot(tracker, f.vm, acc);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  before = stats.snapshots;
  /* the running snapshot thread meets the lock held: two more snapshots come all the same */
  damon_fake_busy(f.fake, 5);
  for (guint i = 0; i < 6000 && stats.snapshots < before + 2; i++) {
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, f.vm, acc, &error), "%s",
                  error != NULL ? error->message : "");
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
    g_usleep(10000);
  }
  ck_assert_uint_ge(stats.snapshots, before + 2);
  hmmv_access_clear(acc);
  harvest_snapshot(tracker, f.vm, acc);
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 16);
  stop_tracker(tracker);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

static HmmvTracker *
new_patient_tracker(Fixture *f, guint patience_ms, guint setup_patience_ms)
{
  HmmvDamonOptions options = {
    .ops = HMMV_DAMON_VADDR, .interval_ms = 10, .fs = f->fs, .run_dir = f->run_dir,
    .patience_ms = patience_ms, .setup_patience_ms = setup_patience_ms,
  };
  GError *error = NULL;
  HmmvTracker *tracker = hmmv_damon_tracker_new(&options, &error);

  ck_assert_ptr_nonnull(tracker);
  return tracker;
}

/* Harvests the combined tracker (one write a harvest) until its read source has taken n
 * more snapshots; the read source must never be dropped meanwhile. */
static void
harvest_until_snapshots(HmmvTracker *tracker, HmmvTracker *writes, HmmvVm *vm,
                        HmmvAccess *acc, guint64 n)
{
  HmmvDamonStats stats;
  guint64 before;
  GError *error = NULL;

  ck_assert(hmmv_damon_tracker_get_stats(hmmv_combined_tracker_get_reads(tracker), &stats));
  before = stats.snapshots;
  for (guint i = 0; i < 6000 && stats.snapshots < before + n; i++) {
    hmmv_fake_tracker_queue_write(writes, 1);
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(tracker));
    ck_assert(hmmv_damon_tracker_get_stats(hmmv_combined_tracker_get_reads(tracker), &stats));
    g_usleep(10000);
  }
  ck_assert_uint_ge(stats.snapshots, before + n);
}

/* DAMON's lock held by someone else for longer than a snapshot write's patience (in the
 * testbed's race modes another VM's command held it: "kdamonds/1/state: Device or resource
 * busy"): the snapshot thread pauses and tries again instead of ending, so the combined
 * tracker keeps the VM's reads and they come back once the lock is free. Before, the thread
 * ended with EBUSY and the VM was tracked for writes only for the rest of its life. Counts
 * refused writes (events), not time: the patience is shortened to 20 ms (one try). */
START_TEST(test_busy_beyond_patience_keeps_reads)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 accessed[] = { HVA + 16 * 4096, HVA + 48 * 4096 };
  HmmvTracker *writes = hmmv_fake_tracker_new();
  HmmvTracker *tracker;
  HmmvDamonStats stats;
  GError *error = NULL;
  guint refused;

  fixture_init(&f, "vaddr paddr");
  damon_fake_set_accessed(f.fake, accessed, 1);
  tracker = hmmv_combined_tracker_new(writes, new_patient_tracker(&f, 20, 0));
  ck_assert_msg(hmmv_tracker_start(tracker, f.vm, &error) &&
                hmmv_damon_tracker_wait_setup(hmmv_combined_tracker_get_reads(tracker),
                                              &error),
                "%s", error != NULL ? error->message : "");
  harvest_until_snapshots(tracker, writes, f.vm, acc, 1);

  damon_fake_hold_lock(f.fake, TRUE);
  refused = damon_fake_busy_refused(f.fake);
  for (guint i = 0; i < 6000 && damon_fake_busy_refused(f.fake) < refused + 5; i++) {
    hmmv_fake_tracker_queue_write(writes, 1);
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, &error));
    ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(tracker));
    g_usleep(10000);
  }
  ck_assert_uint_ge(damon_fake_busy_refused(f.fake), refused + 5);
  hmmv_fake_tracker_queue_write(writes, 1);
  hmmv_access_clear(acc);
  ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, &error));
  ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(tracker));
  ck_assert(hmmv_damon_tracker_get_stats(hmmv_combined_tracker_get_reads(tracker), &stats));
  ck_assert_uint_ge(stats.busy_retries, 1);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");

  damon_fake_hold_lock(f.fake, FALSE);
  harvest_until_snapshots(tracker, writes, f.vm, acc, 2);
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 32);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  fixture_clear(&f);
}
END_TEST

/* The same at setup: the lock held for longer than the setup's patience (shortened to 20 ms)
 * is waited out, with what was taken given back between tries; wait_setup() says it is
 * still trying, and once the lock is free the kdamond is set up and the reads arrive.
 * Before, the setup's EBUSY ended the thread and the VM lost its reads for good. */
START_TEST(test_setup_busy_beyond_patience_retried)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 accessed[] = { HVA + 16 * 4096, HVA + 48 * 4096 };
  HmmvTracker *writes = hmmv_fake_tracker_new();
  HmmvTracker *tracker;
  HmmvDamonStats stats;
  GError *error = NULL;

  fixture_init(&f, "vaddr paddr");
  damon_fake_set_accessed(f.fake, accessed, 1);
  tracker = hmmv_combined_tracker_new(writes, new_patient_tracker(&f, 0, 20));
  damon_fake_hold_lock(f.fake, TRUE);
  ck_assert(hmmv_tracker_start(tracker, f.vm, &error));
  ck_assert(!hmmv_damon_tracker_wait_setup(hmmv_combined_tracker_get_reads(tracker), &error));
  ck_assert_msg(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_BUSY), "%s", error->message);
  ck_assert_ptr_nonnull(strstr(error->message, "still trying"));
  g_clear_error(&error);
  for (guint i = 0; i < 6000 && damon_fake_busy_refused(f.fake) < 5; i++) {
    hmmv_fake_tracker_queue_write(writes, 1);
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, &error));
    ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(tracker));
    g_usleep(10000);
  }
  ck_assert_uint_ge(damon_fake_busy_refused(f.fake), 5);
  ck_assert(hmmv_damon_tracker_get_stats(hmmv_combined_tracker_get_reads(tracker), &stats));
  ck_assert_uint_ge(stats.busy_retries, 1);

  damon_fake_hold_lock(f.fake, FALSE);
  harvest_until_snapshots(tracker, writes, f.vm, acc, 1);
  ck_assert(hmmv_damon_tracker_wait_setup(hmmv_combined_tracker_get_reads(tracker), &error));
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 32);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  ck_assert(!record_exists(&f, 0));
  fixture_clear(&f);
}
END_TEST

/* stop() (a VM removed, hmmvd stopping) writes nothing itself: the tracker's thread turns
 * the kdamond off and gives it back, waiting out DAMON's lock for as long as it is held.
 * Before, stop() made those writes on its caller's thread (hmmvd's main loop), gave up on
 * "off" after 1 s of EBUSY, dropped the record all the same: the kdamond ran on, and no
 * hmmvd would ever turn it off. */
START_TEST(test_stop_gives_back_on_thread_despite_lock)
{
  Fixture f;
  HmmvTracker *tracker;
  GError *error = NULL;
  guint refused;

  fixture_init(&f, "vaddr paddr");
  tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
  ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  damon_fake_hold_lock(f.fake, TRUE);
  refused = damon_fake_busy_refused(f.fake);
  damon_fake_watch_thread(f.fake, g_thread_self());
  hmmv_tracker_stop(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_uint_eq(damon_fake_watched_attempts(f.fake), 0);
  /* the thread is refused (events, not time): more than the old 50 tries of "off" */
  for (guint i = 0; i < 6000 && damon_fake_busy_refused(f.fake) < refused + 60; i++)
    g_usleep(10000);
  ck_assert_uint_ge(damon_fake_busy_refused(f.fake), refused + 60);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert(record_exists(&f, 0));
  damon_fake_hold_lock(f.fake, FALSE);
  ck_assert(hmmv_damon_wait_released(60000));
  damon_fake_watch_thread(f.fake, NULL);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  ck_assert(!record_exists(&f, 0));
  fixture_clear(&f);
}
END_TEST

/* The kdamond's setup runs on the tracker's thread (hmmvd's main loop must not wait out
 * DAMON's lock): start() returns while the lock is held, harvests find nothing until the
 * setup is done, and a stop() meanwhile cancels the setup between two tries instead of
 * waiting out its 60 s patience (3,000 tries of 20 ms): the tree is left as it was. */
START_TEST(test_setup_off_caller_and_cancelled)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvTracker *tracker;
  GError *error = NULL;
  guint refused;

  fixture_init(&f, "vaddr paddr");
  tracker = new_tracker(&f, HMMV_DAMON_VADDR, NULL);
  damon_fake_hold_lock(f.fake, TRUE);
  ck_assert(hmmv_tracker_start(tracker, f.vm, &error));
  for (guint i = 0; i < 6000 && damon_fake_busy_refused(f.fake) < 3; i++)
    g_usleep(10000);
  ck_assert_uint_ge(damon_fake_busy_refused(f.fake), 3);
  ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, &error));
  ck_assert(!acc->has_reads);
  ck_assert_uint_eq(acc->intervals, 0);
  stop_tracker(tracker);
  refused = damon_fake_busy_refused(f.fake);
  ck_assert_uint_lt(refused, 3000);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  ck_assert(!record_exists(&f, 0));
  g_usleep(100000);
  ck_assert_uint_eq(damon_fake_busy_refused(f.fake), refused);   /* nobody tries any more */
  /* started again once the lock is free: set up, and its error-free wait says so */
  damon_fake_hold_lock(f.fake, FALSE);
  ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s", error != NULL ? error->message : "");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "0");
  fixture_clear(&f);
}
END_TEST

/* A second VM's tracker looking for a kdamond while another user holds DAMON's lock (6.12's
 * state_show takes it with trylock: the states read EBUSY) waits it out and takes a free
 * kdamond. Until 2026-12-04 a busy state counted as running: "no free kdamond: 8 kdamond(s),
 * 8 running", and the VM was tracked for writes only for good (the race of issue 8). */
START_TEST(test_acquire_waits_out_lock_on_state)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvTracker *first, *second;
  HmmvDamonStats stats;
  GError *error = NULL;
  guint refused;

  first = start_steady_reader(&f, acc);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/nr_kdamonds"), "8");
  refused = damon_fake_busy_refused(f.fake);
  damon_fake_hold_lock(f.fake, TRUE);
  second = new_patient_tracker(&f, 0, 0);
  ck_assert(hmmv_tracker_start(second, f.vm, &error));
  /* the second's setup reads busy states (liveness bound: 60 s) */
  for (guint i = 0; i < 6000 && damon_fake_busy_refused(f.fake) < refused + 5; i++)
    g_usleep(10000);
  ck_assert_uint_ge(damon_fake_busy_refused(f.fake), refused + 5);
  damon_fake_hold_lock(f.fake, FALSE);
  ck_assert_msg(hmmv_damon_tracker_wait_setup(second, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert(hmmv_damon_tracker_get_stats(second, &stats));
  ck_assert_uint_eq(stats.kdamond, 1);
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/1/state"), "on");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  /* stop_tracker() waits for every tracker's thread: both stopped first */
  hmmv_tracker_stop(second);
  stop_tracker(first);
  hmmv_tracker_free(second);
  hmmv_tracker_free(first);
  fixture_clear(&f);
}
END_TEST

/* A VM's kdamond given back while DAMON's lock is held for good: turning it off, dropping
 * its context and taking back share the release's one patience (the setup's, shortened to
 * 100 ms: 5 tries of "off"), and the release gives up with the record kept. Its state is
 * read twice: before "off" and after it was refused to the end (one more if a snapshot read
 * it as the lock was taken). Until 2026-12-04 each of those two reads waited out 5 s on its
 * own (250 tries each) besides the write's patience: 500 reads. Counted, not timed. */
START_TEST(test_release_under_held_lock_one_patience)
{
  Fixture f;
  StateReads *counts;
  g_autoptr(HmmvSysfs) counted = NULL;
  HmmvDamonOptions options = { 0 };
  HmmvTracker *tracker;
  GError *error = NULL;
  guint reads, offs;

  fixture_init(&f, "vaddr paddr");
  counted = state_reads_new(f.fs, &counts);
  options.ops = HMMV_DAMON_VADDR;
  options.interval_ms = 10;
  options.fs = counted;
  options.run_dir = f.run_dir;
  options.setup_patience_ms = 100;
  tracker = hmmv_damon_tracker_new(&options, &error);
  ck_assert_msg(start_tracker(tracker, f.vm, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  damon_fake_hold_lock(f.fake, TRUE);
  reads = state_reads_of(counts, 0);
  offs = damon_fake_nr_writes(f.fake, "kdamonds/0/state");
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_uint_ge(state_reads_of(counts, 0) - reads, 2);
  ck_assert_uint_le(state_reads_of(counts, 0) - reads, 3);
  ck_assert_uint_eq(damon_fake_nr_writes(f.fake, "kdamonds/0/state"), offs);   /* no "off" */
  ck_assert_str_eq(damon_fake_get(f.fake, "kdamonds/0/state"), "on");
  ck_assert(record_exists(&f, 0));
  damon_fake_hold_lock(f.fake, FALSE);
  fixture_clear(&f);
}
END_TEST

static Suite *
damon_lock_suite(void)
{
  Suite *s = suite_create("damon-lock");
  TCase *tc = tcase_create("damon-lock");

  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_busy_lock_waited_out);
  tcase_add_test(tc, test_busy_beyond_patience_keeps_reads);
  tcase_add_test(tc, test_setup_busy_beyond_patience_retried);
  tcase_add_test(tc, test_stop_gives_back_on_thread_despite_lock);
  tcase_add_test(tc, test_setup_off_caller_and_cancelled);
  tcase_add_test(tc, test_acquire_waits_out_lock_on_state);
  tcase_add_test(tc, test_release_under_held_lock_one_patience);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(damon_lock_suite());
}
