/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun's policies (tests/bench/corun/) on small hand-made traces. setup.json and the
 * replay around the policies: test-corun-setup.c. */
#include "corun-test.h"

#include "run.h"
#include "setup.h"

#include <glib/gstdio.h>

/* A setup of VMs of nr_pages each, without traces (for the policies that need none). */
static CorunSetup
setup_of(guint nr_vms, guint64 nr_pages, guint64 dram_pages, CorunVmInfo *vms,
         const CorunProfile *p)
{
  CorunSetup s = { .nr_vms = nr_vms, .vms = vms, .dram_pages = dram_pages, .interval_ms = 100,
                   .profile = p };

  for (guint v = 0; v < nr_vms; v++) {
    vms[v].name = g_strdup_printf("vm%u", v);
    vms[v].nr_pages = nr_pages;
  }
  return s;
}

static void
setup_clear(CorunSetup *s)
{
  for (guint v = 0; v < s->nr_vms; v++) {
    g_free(s->vms[v].name);
    g_free(s->vms[v].trace_path);
  }
}

/* One interval: entries of pages [first, first + n) with r reads and w writes each. */
static CorunAccesses
range(HmmvTraceEntry *buf, guint64 first, guint64 n, guint32 r, guint32 w)
{
  CorunAccesses a = { .entries = buf, .nr_entries = n, .compute_ns = 1000 };

  for (guint64 i = 0; i < n; i++)
    buf[i] = (HmmvTraceEntry){ first + i, r, w, 0 };
  return a;
}

static void
run_one(CorunPolicy *pol, guint64 index, const CorunAccesses *now, CorunDemand *d, guint nr_vms)
{
  g_autoptr(GError) error = NULL;

  memset(d, 0, nr_vms * sizeof(*d));
  ck_assert_msg(pol->ops->interval(pol, index, now, d, &error), "%s",
                error ? error->message : "");
}

START_TEST(test_first_touch_fills_dram_then_slow)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[2] = { 0 };
  CorunSetup s = setup_of(2, 64, 16, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_first_touch, &s, NULL);
  HmmvTraceEntry b0[64], b1[64];
  CorunAccesses now[2];
  CorunDemand d[2];

  /* vm0 touches 10 pages, then vm1 10: DRAM (16) holds vm0's 10 and vm1's first 6 */
  now[0] = range(b0, 0, 10, 3, 1);
  now[1] = range(b1, 0, 10, 3, 1);
  run_one(pol, 0, now, d, 2);
  ck_assert_uint_eq(d[0].dram_reads, 30);
  ck_assert_uint_eq(d[0].slow_reads, 0);
  ck_assert_uint_eq(d[1].dram_reads, 18);
  ck_assert_uint_eq(d[1].slow_reads, 12);
  ck_assert_uint_eq(d[1].slow_writes, 4);
  /* vm0 goes hot on new pages: all slow, and nothing ever moves */
  now[0] = range(b0, 32, 8, 100, 0);
  now[1] = range(b1, 0, 0, 0, 0);
  run_one(pol, 1, now, d, 2);
  ck_assert_uint_eq(d[0].slow_reads, 800);
  run_one(pol, 2, now, d, 2);
  ck_assert_uint_eq(d[0].slow_reads, 800);
  ck_assert_uint_eq(d[0].promoted + d[0].demoted, 0);
  setup_clear(&s);
}
END_TEST

START_TEST(test_all_dram)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  CorunSetup s = setup_of(1, 64, 1, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_all_dram, &s, NULL);
  HmmvTraceEntry b[64];
  CorunAccesses now = range(b, 0, 64, 2, 2);
  CorunDemand d;

  run_one(pol, 0, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 128);
  ck_assert_uint_eq(d.dram_writes, 128);
  ck_assert_uint_eq(d.slow_reads + d.slow_writes, 0);
  setup_clear(&s);
}
END_TEST

START_TEST(test_interleave_by_fraction)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  /* DRAM is a quarter of the footprint: every 4th new page on DRAM */
  CorunSetup s = setup_of(1, 64, 16, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_interleave, &s, NULL);
  HmmvTraceEntry b[64];
  CorunAccesses now = range(b, 0, 40, 1, 0);
  CorunDemand d;

  run_one(pol, 0, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 10);
  ck_assert_uint_eq(d.slow_reads, 30);
  setup_clear(&s);
}
END_TEST

START_TEST(test_memory_mode_cold_misses_and_thrash)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  /* 4 slots: pages 0 and 4 share slot 0 */
  CorunSetup s = setup_of(1, 8, 4, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_memory_mode, &s, NULL);
  HmmvTraceEntry b[2];
  CorunAccesses now = range(b, 0, 1, 100, 0);
  CorunDemand d;

  /* alone and cold: 64 line misses, 36 hits; 64 lines filled into DRAM */
  run_one(pol, 0, &now, &d, 1);
  ck_assert_uint_eq(d.slow_reads, 64);
  ck_assert_uint_eq(d.dram_reads, 36);
  ck_assert_double_eq_tol(d.extra_dram_write_bytes, 64 * 64, 1e-9);
  /* resident now: every access hits */
  run_one(pol, 1, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 100);
  ck_assert_uint_eq(d.slow_reads, 0);
  /* page 0 (resident, 30 accesses) and page 4 (cold, 10) share the slot: page 0 hits
   * 30 x 30/40 = 22, page 4 hits 10 x 10/40 = 2 (its 10 cold line misses allow none: 0) */
  b[0] = (HmmvTraceEntry){ 0, 30, 0, 0 };
  b[1] = (HmmvTraceEntry){ 4, 10, 0, 0 };
  now.nr_entries = 2;
  run_one(pol, 2, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 22);
  ck_assert_uint_eq(d.slow_reads, 18);
  ck_assert_uint_eq(d.promoted + d.demoted, 0);
  setup_clear(&s);
}
END_TEST

START_TEST(test_oracle_takes_the_hottest)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[2] = { 0 };
  CorunSetup s = setup_of(2, 64, 8, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_oracle, &s, NULL);
  HmmvTraceEntry b0[64], b1[64];
  CorunAccesses now[2];
  CorunDemand d[2];

  /* interval 0: vm0 fills DRAM with 8 lukewarm pages (first touch) */
  now[0] = range(b0, 0, 8, 1, 0);
  now[1] = range(b1, 0, 0, 0, 0);
  run_one(pol, 0, now, d, 2);
  ck_assert_uint_eq(d[0].dram_reads, 8);
  /* interval 1: vm1's 4 pages with 50 accesses and vm0's 8 with 1: the oracle knew, and
   * demoted 4 of vm0's to put vm1's on DRAM before the interval */
  now[0] = range(b0, 0, 8, 1, 0);
  now[1] = range(b1, 10, 4, 50, 0);
  run_one(pol, 1, now, d, 2);
  ck_assert_uint_eq(d[1].dram_reads, 200);
  ck_assert_uint_eq(d[0].dram_reads, 4);
  ck_assert_uint_eq(d[0].demoted, 4);
  setup_clear(&s);
}
END_TEST


/* NUMA balancing (tiering): slow pages marked by the scanner fault when touched and are
 * promoted; kswapd demotes the least recently used DRAM pages to make room. */
START_TEST(test_numa_balancing_hint_faults_promote)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  CorunSetup s = setup_of(1, 256, 64, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_numa_balancing, &s, NULL);
  HmmvTraceEntry b[64];
  CorunAccesses now;
  CorunDemand d;
  guint64 demoted = 0, promoted = 0;
  GString *faulted = g_string_new("");

  /* interval 0: the guest fills DRAM; nothing is marked (the scanner skips DRAM pages) */
  now = range(b, 0, 64, 1, 0);
  run_one(pol, 0, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 64);
  ck_assert_uint_eq(d.fault_ns, 0);
  /* interval 1: a hot set lands on the slow tier */
  now = range(b, 100, 8, 50, 0);
  run_one(pol, 1, &now, &d, 1);
  ck_assert_uint_eq(d.slow_reads, 400);
  ck_assert_uint_eq(d.fault_ns, 0);
  /* the first pass comes scan_delay (1 s, interval 10) after the start: marked pages fault
   * in the interval of the pass (they are touched in every one), the promotions need kswapd
   * to demote the old fill first (DRAM is full), and the pages whose promotion failed wait
   * for the next pass: 1 s later (the first pass promoted nothing before it ran), then 1.3 s
   * (+30%: the pass before promoted) */
  for (guint64 k = 2; k < 40; k++) {
    run_one(pol, k, &now, &d, 1);
    if (d.fault_ns != 0)
      g_string_append_printf(faulted, "%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT " ", k,
                             d.fault_ns / 1500);
    demoted += d.demoted;
    promoted += d.promoted;
  }
  ck_assert_str_eq(faulted->str, "10:8 20:4 33:2 ");
  run_one(pol, 40, &now, &d, 1);
  ck_assert_uint_eq(promoted, 7);
  ck_assert_uint_eq(d.dram_reads, 350);
  ck_assert_uint_ge(demoted, promoted);
  g_string_free(faulted, TRUE);
  setup_clear(&s);
}
END_TEST

/* The scanner's passes (6.12's task_numa_work and update_task_scan_period in tiering mode):
 * the first scan_delay (1 s) after the start, then every scan period, which grows by 30%
 * after each pass that promoted and never shrinks. A VM touches 8 more pages of its
 * start_slow range every interval (of 100 ms) and every page it touched before: the pages
 * that came after the last pass are promoted at the next, so promotions happen only in the
 * intervals of the passes: 1000, 2000, 3300 (1300 ms), 4990 (1690), 7187 (2197), 10044 ms
 * (2857). With setup.json's scan_period_ms (a testbed's running QEMU) the first pass is in
 * the second interval (100 ms: the pages exist) and the next a period (5 s) later. The
 * policy before this scanned 256 MB a second without passes and promoted in every interval. */
START_TEST(test_numa_balancing_scan_passes)
{
  g_autoptr(CorunProfile) p = corun_test_profile();

  for (guint knob = 0; knob < 2; knob++) {
    CorunVmInfo vms[1] = { 0 };
    CorunSetup s = setup_of(1, 1024, 2048, vms, p);
    g_autoptr(CorunPolicy) pol = NULL;
    g_autofree HmmvTraceEntry *b = g_new0(HmmvTraceEntry, 1024);
    GString *promoted = g_string_new("");
    CorunAccesses now;
    CorunDemand d;

    vms[0].start_slow_pages = 1024;
    if (knob)
      s.nb.scan_period_ms = 5000;
    pol = corun_policy_new(&corun_policy_numa_balancing, &s, NULL);
    for (guint64 k = 0; k < 101; k++) {
      now = range(b, 0, 8 * (k + 1), 1, 1);
      run_one(pol, k, &now, &d, 1);
      if (d.promoted != 0)
        g_string_append_printf(promoted, "%" G_GUINT64_FORMAT " ", k);
    }
    ck_assert_str_eq(promoted->str, (knob ? "1 51 " : "10 20 33 49 71 100 "));
    g_string_free(promoted, TRUE);
    setup_clear(&s);
  }
}
END_TEST

/* memtierd's startMovesFillFastFree: hot pages go up only into free room (two pages free for
 * a one-page range, as memtierd counts it), nothing is demoted to make room, a page of a
 * "don't care" class stays, and a page goes down only once its heat is in a slow class
 * (0.9513^11 < 0.6: 11 s after its last access). The policy before 2026-12-03 demoted the
 * hot pages 0..7 for 20..27 at once (8 down, 8 up in interval 1). */
START_TEST(test_memtierd_fills_free_dram_only)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  CorunSetup s = setup_of(1, 64, 8, vms, p);
  g_autoptr(CorunPolicy) pol = NULL;
  HmmvTraceEntry b[8];
  CorunAccesses now;
  CorunDemand d;

  s.interval_ms = 1000;
  pol = corun_policy_new(&corun_policy_memtierd, &s, NULL);
  now = range(b, 0, 8, 1, 0);
  run_one(pol, 0, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 8);
  ck_assert_uint_eq(d.promoted + d.demoted, 0);
  /* 20..27 first-touched on the slow tier, all class 9, DRAM full: nothing moves, in the
   * intervals where 0..7 are still class 8-9 (to 4 s) nor where they are "don't care"
   * (6-7, to 10 s) */
  now = range(b, 20, 8, 1, 0);
  for (guint64 i = 1; i <= 10; i++) {
    run_one(pol, i, &now, &d, 1);
    ck_assert_uint_eq(d.slow_reads, 8);
    ck_assert_msg(d.promoted + d.demoted == 0, "interval %" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT
                  " up, %" G_GUINT64_FORMAT " down", i, d.promoted, d.demoted);
  }
  /* 11 s: 0..7 are slow-class and go down; the walk met 20..27 first, with no room then */
  run_one(pol, 11, &now, &d, 1);
  ck_assert_uint_eq(d.demoted, 8);
  ck_assert_uint_eq(d.promoted, 0);
  /* then 20..27 go up while two pages are free: 7 of them */
  run_one(pol, 12, &now, &d, 1);
  ck_assert_uint_eq(d.promoted, 7);
  ck_assert_uint_eq(d.demoted, 0);
  run_one(pol, 13, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 7);
  ck_assert_uint_eq(d.slow_reads, 1);
  ck_assert_uint_eq(d.promoted + d.demoted, 0);
  setup_clear(&s);
}
END_TEST

/* memtis: the histogram's hot bins sized to DRAM; sampled-often pages displace cold ones. */
START_TEST(test_memtis_histogram)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  CorunSetup s = setup_of(1, 64, 8, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_memtis, &s, NULL);
  HmmvTraceEntry b[8];
  CorunAccesses now;
  CorunDemand d;

  now = range(b, 0, 8, 1, 0);          /* 1 miss: 0.005 samples, bin 0 */
  run_one(pol, 0, &now, &d, 1);
  now = range(b, 20, 8, 400, 0);       /* 400 misses: 2 samples, bin 2 */
  run_one(pol, 1, &now, &d, 1);
  ck_assert_uint_eq(d.slow_reads, 3200);
  ck_assert_uint_eq(d.promoted, 8);
  ck_assert_uint_eq(d.demoted, 8);
  run_one(pol, 2, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 3200);
  setup_clear(&s);
}
END_TEST


/* DAMOS: the quota feedback starts at one byte and at most doubles per reset, so nothing
 * moves for the first ~12 resets; then the idle fill is demoted (DRAM free below 0.5%) and
 * the hot pages promoted (DRAM used below 99.7%). */
START_TEST(test_damos_quota_feedback)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  CorunVmInfo vms[1] = { 0 };
  CorunSetup s = setup_of(1, 64, 8, vms, p);
  g_autoptr(CorunPolicy) pol = corun_policy_new(&corun_policy_damos, &s, NULL);
  HmmvTraceEntry b[8];
  CorunAccesses now = range(b, 0, 8, 1, 0);
  CorunDemand d;
  guint64 k, first_move = 0;

  run_one(pol, 0, &now, &d, 1);
  now = range(b, 20, 8, 50, 0);
  for (k = 1; k < 200; k++) {
    run_one(pol, k, &now, &d, 1);
    if (first_move == 0 && d.promoted + d.demoted > 0)
      first_move = k;
    if (d.dram_reads == 400)
      break;
  }
  ck_assert_uint_ge(first_move, 11);
  ck_assert_uint_lt(k, 200);
  setup_clear(&s);
}
END_TEST

/* A trace of nr_pages pages: interval 0 touches pages [0, fill) once (they take DRAM on
 * first touch); then every interval pages [32, 40) are written 50 times and pages [40, 48)
 * read 50 times. (Were [0, fill) read once every interval, they would be as hot as the
 * 50-read pages to the core, which sees one bit a page an interval, not counts.) */
static void
write_trace(const char *path, guint64 nr_pages, guint64 fill, guint intervals)
{
  HmmvTraceInfo info = { .nr_pages = nr_pages, .interval_ms = 100,
                         .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(path, &info, &error);

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < intervals; k++) {
    g_autoptr(GArray) e = g_array_new(FALSE, FALSE, sizeof(HmmvTraceEntry));

    for (guint64 p = 0; k == 0 && p < fill; p++) {
      HmmvTraceEntry x = { p, 1, 0, 0 };
      g_array_append_val(e, x);
    }
    for (guint64 p = 32; k > 0 && p < 48; p++) {
      HmmvTraceEntry x = { p, p < 40 ? 0 : 50, p < 40 ? 50 : 0, 0 };
      g_array_append_val(e, x);
    }
    ck_assert(hmmv_trace_writer_add_interval(w, 100000, (HmmvTraceEntry *)e->data, e->len,
                                             &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));
}

/* The hmmv policies run the real core: write-hot pages are promoted by all three; read-hot
 * ones by those whose tracker shows reads (hmmv-reads-writes: on the idle-page tracker's
 * schedule, once the pages are warm every interval). */
START_TEST(test_hmmv_sees_what_its_tracker_sees)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  const char *names[] = { "hmmv-writes", "hmmv-reads-writes", "hmmv-ideal", NULL };
  CorunVmInfo vms[1] = { 0 };
  CorunSetup s = setup_of(1, 64, 16, vms, p);
  g_autoptr(GError) error = NULL;
  g_autoptr(CorunRun) run = NULL;
  const char *policies[] = { "all-dram", "hmmv-writes", "hmmv-reads-writes", "hmmv-ideal",
                             NULL };

  vms[0].trace_path = g_build_filename(dir, "vm0.trace", NULL);
  write_trace(vms[0].trace_path, 64, 16, 30);
  run = corun_run(&s, policies, 0, NULL, NULL, &error);
  ck_assert_msg(run != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(run->intervals, 30);
  for (guint n = 0; names[n] != NULL; n++) {
    int pi = corun_run_find(run, names[n]);
    guint64 written_dram = 0, read_dram = 0;

    ck_assert_int_ge(pi, 0);
    /* the last interval's DRAM-served misses of the written and the read pages */
    for (guint i = 0; i < run->samples->len; i++) {
      const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

      if (smp->policy == (guint)pi && smp->interval == 29) {
        ck_assert_uint_le(smp->dram_pages, 16);
        written_dram = smp->dram_accesses;
      }
    }
    ck_assert_uint_gt(corun_result_moved(run, (guint)pi, -1), 0);
    read_dram = written_dram; /* for the message */
    ck_assert_msg(written_dram >= 400, "%s: only %" G_GUINT64_FORMAT " DRAM misses", names[n],
                  read_dram);
    if (n == 0)
      /* writes-only: the 8 read-hot pages (400 misses) stay slow */
      ck_assert_uint_eq(written_dram, 400);
    else
      /* reads seen: the read-hot pages are promoted too */
      ck_assert_uint_eq(written_dram, 800);
  }
  hmmv_test_remove_tree(dir);
  setup_clear(&s);
}
END_TEST

/* The trace's stored bit (version 3): 8 pages read-modify-written in every interval, their
 * loads missing and their stores hitting the cache (reads 50, writes 0), after 16 pages
 * read once filled DRAM. hmmv-writes sees them written (hmmvd's dirty bitmap would) and
 * promotes them when the trace carries the bit; from the same trace without it (version 2:
 * stored = writes > 0) it sees nothing and moves nothing. */
static void
write_rmw_trace(const char *path, gboolean stored)
{
  HmmvTraceInfo info = { .nr_pages = 64, .interval_ms = 100,
                         .flags = HMMV_TRACE_HAS_READS | HMMV_TRACE_HAS_INSTRUCTIONS |
                                  (stored ? HMMV_TRACE_HAS_STORED : 0) };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(path, &info, &error);
  HmmvTraceEntry e[16];

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 30; k++) {
    HmmvTraceInterval head = { .compute_ns = 100000, .instructions = 200000 };
    guint n = k == 0 ? 16 : 8;

    for (guint i = 0; i < n; i++)
      e[i] = k == 0 ? (HmmvTraceEntry){ i, 1, 0, 0 }
                    : (HmmvTraceEntry){ 32 + i, 50, 0, stored };
    ck_assert(hmmv_trace_writer_add_interval_full(w, &head, e, n, &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));
}

START_TEST(test_hmmv_writes_sees_stored_pages)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  const char *policies[] = { "all-dram", "hmmv-writes", NULL };
  guint64 moved[2];

  for (int stored = 0; stored <= 1; stored++) {
    CorunVmInfo vms[1] = { 0 };
    CorunSetup s = setup_of(1, 64, 16, vms, p);
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunRun) run = NULL;
    int pi;

    vms[0].trace_path = g_build_filename(dir, stored ? "v3.trace" : "v2.trace", NULL);
    write_rmw_trace(vms[0].trace_path, stored);
    run = corun_run(&s, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    pi = corun_run_find(run, "hmmv-writes");
    ck_assert_int_ge(pi, 0);
    moved[stored] = corun_result_moved(run, (guint)pi, -1);
    if (stored)
      ck_assert_double_gt(corun_result_dram_share(run, (guint)pi, -1), 0.5);
    else
      ck_assert_double_eq(corun_result_dram_share(run, (guint)pi, -1), 16.0 / (16 + 29 * 400));
    setup_clear(&s);
  }
  ck_assert_uint_eq(moved[0], 0);
  ck_assert_uint_ge(moved[1], 16);   /* the 8 promoted, as many demoted for their room */
  hmmv_test_remove_tree(dir);
}
END_TEST

/* --hmmv-weights misses (setup hmmv_miss_weights): two VMs store to 32 pages each every
 * interval, so every bit hmmv sees is alike, but vm0's pages miss once an interval and vm1's
 * 40 times; vm0 first-touched the 32 pages of DRAM in interval 0. With the quota's weights
 * (100 each) the balance splits DRAM between the two; with each VM's misses per seen page as
 * its weight, vm1 gets most of it and the DRAM serves more of the misses. */
static void
write_density_trace(const char *path, guint32 misses, gboolean first)
{
  HmmvTraceInfo info = { .nr_pages = 64, .interval_ms = 100,
                         .flags = HMMV_TRACE_HAS_READS | HMMV_TRACE_HAS_INSTRUCTIONS |
                                  HMMV_TRACE_HAS_STORED };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(path, &info, &error);
  HmmvTraceEntry e[32];

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 40; k++) {
    HmmvTraceInterval head = { .compute_ns = 100000, .instructions = 200000 };
    guint n = k == 0 && !first ? 0 : 32;

    for (guint i = 0; i < n; i++)
      e[i] = (HmmvTraceEntry){ i, misses, 0, TRUE };
    ck_assert(hmmv_trace_writer_add_interval_full(w, &head, e, n, &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));
}

START_TEST(test_hmmv_miss_weights)
{
  g_autoptr(CorunProfile) p = corun_test_profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  const char *policies[] = { "all-dram", "hmmv-writes", NULL };
  guint64 vm1_dram[2] = { 0, 0 };
  double share[2];

  for (int misses = 0; misses <= 1; misses++) {
    CorunVmInfo vms[2] = { 0 };
    CorunSetup s = setup_of(2, 64, 32, vms, p);
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunRun) run = NULL;
    int pi;

    s.hmmv_miss_weights = misses;
    vms[0].trace_path = g_build_filename(dir, "vm0.trace", NULL);
    vms[1].trace_path = g_build_filename(dir, "vm1.trace", NULL);
    write_density_trace(vms[0].trace_path, 1, TRUE);
    write_density_trace(vms[1].trace_path, 40, FALSE);
    run = corun_run(&s, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    pi = corun_run_find(run, "hmmv-writes");
    ck_assert_int_ge(pi, 0);
    for (guint i = 0; i < run->samples->len; i++) {
      const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

      if (smp->policy == (guint)pi && smp->vm == 1 && smp->interval == run->intervals - 1)
        vm1_dram[misses] = smp->dram_pages;
    }
    share[misses] = corun_result_dram_share(run, (guint)pi, -1);
    setup_clear(&s);
  }
  /* the quota's weights: DRAM split between two VMs of equal demand (16 each, give or take
   * the first-touch headroom); the misses' weights: vm1 (40x the misses a page) nearly all */
  ck_assert_msg(vm1_dram[0] >= 8 && vm1_dram[0] <= 24, "quota weights: vm1 holds %"
                G_GUINT64_FORMAT " of 32", vm1_dram[0]);
  ck_assert_msg(vm1_dram[1] >= 28, "miss weights: vm1 holds %" G_GUINT64_FORMAT " of 32",
                vm1_dram[1]);
  ck_assert_double_gt(share[1], share[0]);
  hmmv_test_remove_tree(dir);
}
END_TEST

static Suite *
corun_policies_suite(void)
{
  Suite *s = suite_create("corun-policies");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_first_touch_fills_dram_then_slow);
  tcase_add_test(tc, test_all_dram);
  tcase_add_test(tc, test_interleave_by_fraction);
  tcase_add_test(tc, test_memory_mode_cold_misses_and_thrash);
  tcase_add_test(tc, test_oracle_takes_the_hottest);
  tcase_add_test(tc, test_numa_balancing_hint_faults_promote);
  tcase_add_test(tc, test_numa_balancing_scan_passes);
  tcase_add_test(tc, test_memtierd_fills_free_dram_only);
  tcase_add_test(tc, test_memtis_histogram);
  tcase_add_test(tc, test_damos_quota_feedback);
  tcase_add_test(tc, test_hmmv_sees_what_its_tracker_sees);
  tcase_add_test(tc, test_hmmv_writes_sees_stored_pages);
  tcase_add_test(tc, test_hmmv_miss_weights);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(corun_policies_suite());
}
