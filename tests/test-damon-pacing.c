/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the DAMON read tracker costs (issue 8): its snapshots follow the harvests that want
 * them, the core's watch (COARSE / FINE) hands the running kdamond longer or its own
 * sampling intervals, and a VM whose reads add nothing to its writes makes it quiet (longer
 * intervals still, snapshots further apart); on the fake DAMON sysfs tree (damon-fake.c).
 */
#include "damon-bed.h"

/* Harvests-and-count helper for the pacing test: harvests n times, 2 ms apart, each giving
 * either nothing new or exactly the pages of want (want_pages of them). */
static void
harvest_n(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, guint n, guint64 want_pages)
{
  GError *error = NULL;

  for (guint i = 0; i < n; i++) {
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    if (acc->intervals > 0)
      ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), want_pages);
    g_usleep(2000);
  }
}

static guint64
settled_snapshots(HmmvTracker *tracker, HmmvDamonStats *stats)
{
  guint64 before;

  /* a snapshot a harvest asked for may still be under way: let it land */
  g_usleep(100000);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, stats));
  before = stats->snapshots;
  g_usleep(200000);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, stats));
  /* no harvest, no snapshot (before 2026-12-02 the thread took one after another) */
  ck_assert_uint_eq(stats->snapshots, before);
  return before;
}

/* Pacing (issue 8: the snapshots were most of hmmvd's CPU in the race): no snapshot without
 * a harvest that wants one; while the read set holds still, a snapshot every 2, 4, then 8
 * harvests, the harvests between given the last one as a new interval's reads; a changed
 * read set brings it back to every harvest. */
START_TEST(test_pacing_follows_harvests)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 second[] = { HVA + 1000 * 4096, HVA + 1064 * 4096 };
  HmmvTracker *tracker;
  GError *error = NULL;
  HmmvDamonStats stats;
  guint64 snaps, rested, seen_at = 0;

  tracker = start_steady_reader(&f, acc);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  /* the same read set: a snapshot every 2, 4, then 8 harvests (liveness bound) */
  for (guint i = 0; i < 6000 && stats.every < 8; i++) {
    harvest_n(tracker, f.vm, acc, 1, 16);
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  }
  ck_assert_uint_eq(stats.every, 8);
  snaps = settled_snapshots(tracker, &stats);
  rested = stats.rested_harvests;
  /* 32 harvests: at most one snapshot per 8 of them (and one they asked for at the end),
   * the harvests between given the last snapshot, 16 pages, as a new interval's reads */
  harvest_n(tracker, f.vm, acc, 32, 16);
  ck_assert_uint_le(settled_snapshots(tracker, &stats) - snaps, 32 / 8 + 1);
  ck_assert_uint_gt(stats.snapshots, snaps);
  ck_assert_uint_gt(stats.rested_harvests, rested);
  ck_assert_uint_eq(stats.every, 8);
  /* another read set: seen within the rest, and a snapshot every harvest again */
  damon_fake_set_accessed(f.fake, second, 1);
  for (guint i = 0; i < 6000 && seen_at == 0; i++) {
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, &error));
    if (acc->intervals > 0 && hmmv_bitmap_count(acc->reads, acc->nr_words) == 64)
      seen_at = i + 1;
    else if (acc->intervals > 0)
      ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 16);
    g_usleep(2000);
  }
  ck_assert_uint_gt(seen_at, 0);
  ck_assert(hmmv_bitmap_test(acc->reads, 1000) && !hmmv_bitmap_test(acc->reads, 16));
  /* the harvest that took the changed snapshot asked for the next at once (the same set
   * again: every 2 harvests from there) */
  (void)settled_snapshots(tracker, &stats);
  ck_assert_uint_eq(stats.every, 2);
  /* nothing written: every page read is beyond the writes, the kdamond never went quiet */
  ck_assert(!stats.quiet);
  ck_assert_uint_eq(stats.quiet_changes, 0);
  ck_assert_uint_eq(stats.beyond_writes, 64);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

/* Until the tracker's stats say coarse (or not), harvesting when harvest (liveness bound:
 * 60 s); the stats then. */
static void
wait_coarse(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, gboolean coarse,
            gboolean harvest, HmmvDamonStats *stats)
{
  for (guint i = 0; i < 6000; i++) {
    ck_assert(hmmv_damon_tracker_get_stats(tracker, stats));
    if (stats->coarse == coarse)
      return;
    if (harvest)
      harvest_n(tracker, vm, acc, 1, 16);
    else
      g_usleep(10000);
  }
  ck_abort_msg("the tracker's watch stayed %s for 60 s", coarse ? "fine" : "coarse");
}

/* The core's watch (issue 8: the kdamonds' sampling, 51 CPU s of 150 in the race, went on at
 * full rate after the VMs had settled): COARSE hands the running kdamond sampling and
 * aggregation intervals 4 times as long ("commit"), the reads still come; FINE gives its
 * own back, at once, even while the thread rests for the pacing (no harvest asks). */
START_TEST(test_watch_coarse_and_back)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvTracker *tracker;
  HmmvDamonStats stats;
  guint64 sample = 0, aggr = 0, commits, min_regions = 0, max_regions = 0;

  tracker = start_steady_reader(&f, acc);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  /* interval 10 ms: aggregations of 5 ms, 1 ms samples */
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 1000);
  ck_assert_uint_eq(aggr, 5000);
  ck_assert(!stats.coarse);
  commits = damon_fake_nr_writes(f.fake, "kdamonds/0/state");

  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  wait_coarse(tracker, f.vm, acc, TRUE, TRUE, &stats);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 4000);
  ck_assert_uint_eq(aggr, 20000);
  ck_assert_uint_eq(stats.sample_us, 4000);
  ck_assert_uint_eq(stats.aggr_us, 20000);
  ck_assert_uint_eq(stats.watch_changes, 1);
  /* the coarse watch keeps the kdamond's own regions (only quiet takes fewer) */
  ck_assert(damon_fake_running_nr_regions(f.fake, stats.kdamond, &min_regions, &max_regions));
  ck_assert_uint_eq(max_regions, 256);
  ck_assert_uint_eq(min_regions, 64);
  /* the reads go on: a fresh snapshot with the 16 pages */
  harvest_snapshot(tracker, f.vm, acc);
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 16);
  /* told again (every interval): nothing written for it */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  harvest_n(tracker, f.vm, acc, 4, 16);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.watch_changes, 1);

  /* the read set holds still: the thread rests for up to 8 harvests; FINE comes without one */
  for (guint i = 0; i < 6000 && stats.every < 8; i++) {
    harvest_n(tracker, f.vm, acc, 1, 16);
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  }
  ck_assert_uint_eq(stats.every, 8);
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  wait_coarse(tracker, f.vm, acc, FALSE, FALSE, &stats);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 1000);
  ck_assert_uint_eq(aggr, 5000);
  ck_assert_uint_eq(stats.watch_changes, 2);
  /* two commits, one per change, beside the snapshots' commands */
  ck_assert_uint_ge(damon_fake_nr_writes(f.fake, "kdamonds/0/state"), commits + 2);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

/* A kernel that refuses the commit (EINVAL, not its lock): the kdamond runs on as it was,
 * the VM keeps its reads, and the change is not tried again every snapshot. */
START_TEST(test_watch_refused_keeps_reads)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvTracker *tracker;
  HmmvDamonStats stats;
  guint64 sample = 0, aggr = 0, commits;

  tracker = start_steady_reader(&f, acc);
  damon_fake_refuse_commit(f.fake);
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  /* liveness bound: the snapshots go on after the refusal */
  for (guint i = 0; i < 6000; i++) {
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
    if (stats.snapshots >= 4 && damon_fake_nr_writes(f.fake, "kdamonds/0/state") > 0)
      break;
    harvest_n(tracker, f.vm, acc, 1, 16);
  }
  commits = damon_fake_nr_writes(f.fake, "kdamonds/0/state");
  harvest_snapshot(tracker, f.vm, acc);
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 16);
  harvest_n(tracker, f.vm, acc, 10, 16);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert(!stats.coarse);
  ck_assert_uint_eq(stats.watch_changes, 0);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 1000);
  ck_assert_uint_eq(aggr, 5000);
  /* the refused commit is not a state write the fake counts (it failed); snapshots are */
  ck_assert_uint_ge(damon_fake_nr_writes(f.fake, "kdamonds/0/state"), commits);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

/* Harvests n times, 2 ms apart, with the pages [first, first + count) written in each (as
 * the write source, harvested first, leaves them in acc); each harvest with something new
 * gives exactly want_pages read. */
static void
harvest_written(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, guint n, guint64 first,
                guint64 count, guint64 want_pages)
{
  GError *error = NULL;

  for (guint i = 0; i < n; i++) {
    hmmv_access_clear(acc);
    for (guint64 p = first; p < first + count; p++)
      acc->writes[p >> 6] |= G_GUINT64_CONSTANT(1) << (p & 63);
    ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
    if (acc->intervals > 0)
      ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), want_pages);
    g_usleep(2000);
  }
}

/* Quiet (issue 8, claim 4: on the race's write-only guests the kdamonds and the snapshot
 * threads took 87 CPU s in 150 s and told the core nothing its writes had not): a VM whose
 * reads fall on the pages it writes goes quiet after 4 fresh snapshots, the kdamond at 8
 * times its intervals and the snapshots up to 16 harvests apart; a read beyond the writes
 * ends it, the kdamond's own intervals back. Counted in snapshots and harvests. */
START_TEST(test_quiet_when_reads_add_nothing)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  guint64 second[] = { HVA + 1000 * 4096, HVA + 1064 * 4096 };
  HmmvTracker *tracker;
  GError *error = NULL;
  HmmvDamonStats stats;
  guint64 sample = 0, aggr = 0, snaps, quiet_harvests, seen_at = 0;
  guint64 min_regions = 0, max_regions = 0;
  guint i;

  tracker = start_steady_reader(&f, acc);
  /* pages 16..31 read and written: quiet (liveness bound: 6000 harvests) */
  for (i = 0; i < 6000; i++) {
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
    if (stats.quiet)
      break;
    harvest_written(tracker, f.vm, acc, 1, 16, 16, 16);
  }
  ck_assert(stats.quiet);
  ck_assert_uint_eq(stats.quiet_changes, 1);
  ck_assert_uint_eq(stats.beyond_writes, 0);
  /* at least 4 fresh snapshots came before it (the one of the start, and 3 more at least) */
  ck_assert_uint_ge(stats.snapshots, 4);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 8000);
  ck_assert_uint_eq(aggr, 40000);
  ck_assert_uint_eq(stats.sample_us, 8000);
  ck_assert_uint_eq(stats.aggr_us, 40000);
  ck_assert(!stats.coarse);
  ck_assert_uint_eq(stats.watch_changes, 0);
  /* and an eighth of its regions: 32 at most, 8 at least (its own 256 and 64), committed
   * with the intervals */
  ck_assert(damon_fake_running_nr_regions(f.fake, stats.kdamond, &min_regions, &max_regions));
  ck_assert_uint_eq(max_regions, 32);
  ck_assert_uint_eq(min_regions, 8);
  ck_assert_uint_eq(stats.max_nr_regions, 256);
  ck_assert_uint_eq(stats.min_nr_regions, 64);
  /* the pacing rests up to 16 harvests while quiet */
  for (i = 0; i < 6000 && stats.every < 16; i++) {
    harvest_written(tracker, f.vm, acc, 1, 16, 16, 16);
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  }
  ck_assert_uint_eq(stats.every, 16);
  snaps = settled_snapshots(tracker, &stats);
  quiet_harvests = stats.quiet_harvests;
  harvest_written(tracker, f.vm, acc, 64, 16, 16, 16);
  ck_assert_uint_le(settled_snapshots(tracker, &stats) - snaps, 64 / 16 + 1);
  ck_assert_uint_eq(stats.quiet_harvests - quiet_harvests, 64);
  ck_assert(stats.quiet);
  /* the COARSE watch changes nothing while quiet: the quiet intervals are longer */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  harvest_written(tracker, f.vm, acc, 40, 16, 16, 16);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 8000);
  ck_assert_uint_eq(aggr, 40000);
  ck_assert(damon_fake_running_nr_regions(f.fake, stats.kdamond, &min_regions, &max_regions));
  ck_assert_uint_eq(max_regions, 32);
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);

  /* a read set beyond the writes: seen, and the quiet ends */
  damon_fake_set_accessed(f.fake, second, 1);
  for (i = 0; i < 6000 && seen_at == 0; i++) {
    hmmv_access_clear(acc);
    for (guint64 p = 16; p < 32; p++)
      acc->writes[p >> 6] |= G_GUINT64_CONSTANT(1) << (p & 63);
    ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, &error));
    if (acc->intervals > 0 && hmmv_bitmap_count(acc->reads, acc->nr_words) == 64)
      seen_at = i + 1;
    g_usleep(2000);
  }
  ck_assert_uint_gt(seen_at, 0);
  ck_assert(hmmv_bitmap_test(acc->reads, 1000) && !hmmv_bitmap_test(acc->reads, 16));
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert_uint_eq(stats.beyond_writes, 64);
  /* its own intervals back before the next snapshot, without waiting for the pacing */
  for (i = 0; i < 6000; i++) {
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
    if (!stats.quiet)
      break;
    g_usleep(10000);
  }
  ck_assert(!stats.quiet);
  ck_assert_uint_eq(stats.quiet_changes, 2);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 1000);
  ck_assert_uint_eq(aggr, 5000);
  /* its own regions too, in the same commit */
  ck_assert(damon_fake_running_nr_regions(f.fake, stats.kdamond, &min_regions, &max_regions));
  ck_assert_uint_eq(max_regions, 256);
  ck_assert_uint_eq(min_regions, 64);
  /* and it stays so while the reads go beyond the writes */
  harvest_written(tracker, f.vm, acc, 40, 16, 16, 64);
  ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
  ck_assert(!stats.quiet);
  ck_assert_uint_eq(stats.quiet_changes, 2);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

/* An idle VM (nothing read, nothing written) goes quiet as well, and a read ends it. */
START_TEST(test_quiet_when_idle)
{
  Fixture f;
  g_autoptr(HmmvAccess) acc = hmmv_access_new(NR_PAGES, NULL);
  HmmvTracker *tracker;
  HmmvDamonStats stats;
  guint64 range[] = { HVA + 16 * 4096, HVA + 32 * 4096 };
  guint64 sample = 0, aggr = 0, min_regions = 0, max_regions = 0;
  guint i;

  tracker = start_steady_reader(&f, acc);
  damon_fake_set_accessed(f.fake, NULL, 0);
  for (i = 0; i < 6000; i++) {
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
    if (stats.quiet)
      break;
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, NULL));
    g_usleep(2000);
  }
  ck_assert(stats.quiet);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 8000);
  ck_assert(damon_fake_running_nr_regions(f.fake, stats.kdamond, &min_regions, &max_regions));
  ck_assert_uint_eq(max_regions, 32);
  damon_fake_set_accessed(f.fake, range, 1);
  for (i = 0; i < 6000; i++) {
    ck_assert(hmmv_damon_tracker_get_stats(tracker, &stats));
    if (!stats.quiet)
      break;
    hmmv_access_clear(acc);
    ck_assert(hmmv_tracker_harvest(tracker, f.vm, acc, NULL));
    g_usleep(2000);
  }
  ck_assert(!stats.quiet);
  ck_assert_uint_eq(stats.beyond_writes, 16);
  ck_assert(damon_fake_running_intervals(f.fake, stats.kdamond, &sample, &aggr));
  ck_assert_uint_eq(sample, 1000);
  ck_assert(damon_fake_running_nr_regions(f.fake, stats.kdamond, &min_regions, &max_regions));
  ck_assert_uint_eq(max_regions, 256);
  stop_tracker(tracker);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

static Suite *
damon_pacing_suite(void)
{
  Suite *s = suite_create("damon-pacing");
  TCase *tc = tcase_create("damon-pacing");

  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_pacing_follows_harvests);
  tcase_add_test(tc, test_watch_coarse_and_back);
  tcase_add_test(tc, test_watch_refused_keeps_reads);
  tcase_add_test(tc, test_quiet_when_reads_add_nothing);
  tcase_add_test(tc, test_quiet_when_idle);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(damon_pacing_suite());
}
