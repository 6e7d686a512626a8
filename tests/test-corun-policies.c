/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-corun's policies (tests/bench/corun/) on small hand-made traces. */
#include "hmmv-test.h"

#include "run.h"
#include "setup.h"

#include <glib/gstdio.h>

static CorunProfile *
profile(void)
{
  g_autoptr(GError) error = NULL;
  CorunProfile *p = corun_profile_load_named(HMMV_TIER_PROFILE_DIR, "optane", &error);

  ck_assert_msg(p != NULL, "%s", error ? error->message : "");
  return p;
}

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
    buf[i] = (HmmvTraceEntry){ first + i, r, w };
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
  g_autoptr(CorunProfile) p = profile();
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
  g_autoptr(CorunProfile) p = profile();
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
  g_autoptr(CorunProfile) p = profile();
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
  g_autoptr(CorunProfile) p = profile();
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
  b[0] = (HmmvTraceEntry){ 0, 30, 0 };
  b[1] = (HmmvTraceEntry){ 4, 10, 0 };
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
  g_autoptr(CorunProfile) p = profile();
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
  g_autoptr(CorunProfile) p = profile();
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
  g_autoptr(CorunProfile) p = profile();

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

/* memtierd: the hottest claim DRAM in the walk; warm DRAM pages beyond it go down. */
START_TEST(test_memtierd_heat_walk)
{
  g_autoptr(CorunProfile) p = profile();
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
  /* heat 1.0 for pages 20..27, 0.95 (class 9 too) for 0..7: the first 8 of the walk win */
  now = range(b, 20, 8, 1, 0);
  run_one(pol, 1, &now, &d, 1);
  ck_assert_uint_eq(d.slow_reads, 8);
  ck_assert_uint_eq(d.demoted, 8);
  ck_assert_uint_eq(d.promoted, 8);
  run_one(pol, 2, &now, &d, 1);
  ck_assert_uint_eq(d.dram_reads, 8);
  setup_clear(&s);
}
END_TEST

/* memtis: the histogram's hot bins sized to DRAM; sampled-often pages displace cold ones. */
START_TEST(test_memtis_histogram)
{
  g_autoptr(CorunProfile) p = profile();
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
  g_autoptr(CorunProfile) p = profile();
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
      HmmvTraceEntry x = { p, 1, 0 };
      g_array_append_val(e, x);
    }
    for (guint64 p = 32; k > 0 && p < 48; p++) {
      HmmvTraceEntry x = { p, p < 40 ? 0 : 50, p < 40 ? 50 : 0 };
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
  g_autoptr(CorunProfile) p = profile();
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

/* A VM of nr_pages whose first hot pages are written in every interval. */
static void
write_hot_trace(const char *path, guint64 nr_pages, guint64 hot, guint intervals)
{
  HmmvTraceInfo info = { .nr_pages = nr_pages, .interval_ms = 100,
                         .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(path, &info, &error);
  g_autofree HmmvTraceEntry *e = g_new0(HmmvTraceEntry, hot);

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint64 p = 0; p < hot; p++)
    e[p] = (HmmvTraceEntry){ p, 0, 20 };
  for (guint k = 0; k < intervals; k++)
    ck_assert(hmmv_trace_writer_add_interval(w, 100000, e, hot, &error));
  ck_assert(hmmv_trace_writer_close(w, &error));
}

/* DRAM pages VM vm of policy name held after the last interval. */
static guint64
last_dram_pages(const CorunRun *run, const char *name, guint vm)
{
  int pi = corun_run_find(run, name);
  guint64 pages = G_MAXUINT64;

  ck_assert_int_ge(pi, 0);
  for (guint i = 0; i < run->samples->len; i++) {
    const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

    if (smp->policy == (guint)pi && smp->vm == vm && smp->interval == run->intervals - 1)
      pages = smp->dram_pages;
  }
  ck_assert_uint_ne(pages, G_MAXUINT64);
  return pages;
}

/* setup.json's quotas (dram_min_mib, dram_max_mib, weight) reach hmmv's balance, and only
 * hmmv's: two VMs of 4 MiB, each writing a hot set of 2 MiB in every interval, share 3 MiB
 * of DRAM. First touch gives vm0 its whole hot set and vm1 the last 1 MiB; hmmv alone evens
 * them (1.5 MiB each); a min of 2 MiB for vm1, or a max of 1 MiB for vm0, or weight 300 for
 * vm1 gives vm1 its whole hot set. first-touch, which knows no quota, ends the same in all. */
START_TEST(test_hmmv_honours_setup_quotas)
{
  g_autoptr(CorunProfile) p = profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  const char *policies[] = { "all-dram", "first-touch", "hmmv-writes", NULL };
  const struct {
    const char *vm0, *vm1;
    guint64 vm1_min_dram;     /* vm1's DRAM at the end: at least */
    guint64 vm1_max_dram;     /* and at most */
  } cases[] = {
    { "", "", 384 - 8, 384 + 8 },
    { "", ", \"dram_min_mib\": 2", 512, 512 },
    { ", \"dram_max_mib\": 1", "", 512, 512 },
    { "", ", \"weight\": 300", 512, 512 },
  };

  for (guint v = 0; v < 2; v++) {
    g_autofree char *file = g_strdup_printf("%s/vm%u.trace", dir, v);

    write_hot_trace(file, 1024, 512, 40);
  }
  for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"quotas\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"%s}, "
      "{\"name\": \"vm1\", \"trace\": \"vm1.trace\"%s}]}", cases[c].vm0, cases[c].vm1);
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;
    g_autoptr(CorunRun) run = NULL;
    guint64 vm0, vm1;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
    sf->setup.profile = p;
    sf->setup.dram_pages = 768;
    run = corun_run(&sf->setup, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(last_dram_pages(run, "first-touch", 0), 512);
    ck_assert_uint_eq(last_dram_pages(run, "first-touch", 1), 256);
    vm0 = last_dram_pages(run, "hmmv-writes", 0);
    vm1 = last_dram_pages(run, "hmmv-writes", 1);
    ck_assert_msg(vm1 >= cases[c].vm1_min_dram && vm1 <= cases[c].vm1_max_dram,
                  "case %u: vm1 holds %" G_GUINT64_FORMAT " DRAM pages, vm0 %" G_GUINT64_FORMAT,
                  c, vm1, vm0);
    ck_assert_uint_le(vm0 + vm1, 768);
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

/* setup.json's "halted": a VM whose guest halted before the others idles after its trace ends
 * (no instruction, no miss) and the replay runs to the end of the others' traces; without
 * it the shortest trace ends the run, as before. */
START_TEST(test_halted_vm_idles_after_its_trace)
{
  g_autoptr(CorunProfile) p = profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *t0 = g_build_filename(dir, "vm0.trace", NULL);
  g_autofree char *t1 = g_build_filename(dir, "vm1.trace", NULL);
  const char *policies[] = { "all-dram", "first-touch", "hmmv-writes", NULL };

  write_hot_trace(t0, 1024, 512, 20);
  write_hot_trace(t1, 1024, 256, 5);
  for (guint halted = 0; halted < 2; halted++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"halt\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"}, "
      "{\"name\": \"vm1\", \"trace\": \"vm1.trace\", \"halted\": %s}]}",
      halted ? "true" : "false");
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;
    g_autoptr(CorunRun) run = NULL;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
    sf->setup.profile = p;
    sf->setup.dram_pages = 512;
    run = corun_run(&sf->setup, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(run->intervals, halted ? 20 : 5);
    for (guint pi = 0; pi < run->nr_policies; pi++) {
      /* vm1's misses are its 5 intervals' in both cases; vm0's are its whole trace's */
      ck_assert_uint_eq(run->results[pi].accesses[1], 5 * 256 * 20);
      ck_assert_uint_eq(run->results[pi].accesses[0], run->intervals * 512 * 20);
    }
    for (guint i = 0; i < run->samples->len; i++) {
      const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

      if (smp->vm == 1 && smp->interval >= 5 && smp->policy == 0)
        ck_assert_double_eq(smp->time_ns, 0);   /* all-DRAM: an idle VM takes no time */
    }
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

/* setup.json's "start_slow": the pages of the range are first touched on the slow tier even
 * while DRAM has room (the testbed's starting placement: the hot set moved to the slow node
 * before the mechanism starts); first-touch then serves them from the slow tier for good, and
 * numa-balancing's hint faults bring them up, which the per-interval start_slow_dram shows.
 * Without the field every page fits in DRAM and nothing is slow. Bad ranges are refused. */
START_TEST(test_start_slow_first_touch)
{
  g_autoptr(CorunProfile) p = profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *t0 = g_build_filename(dir, "vm0.trace", NULL);
  const char *policies[] = { "all-dram", "first-touch", "numa-balancing", NULL };
  const char *bad[] = { "[0, 257]", "[200, 57]", "[-1, 4]", "[0]", "\"0-8\"", "[0, 1.5]" };

  write_hot_trace(t0, 256, 64, 40);
  for (guint with = 0; with < 2; with++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"slow\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"%s}]}",
      with ? ", \"start_slow\": [16, 32]" : "");
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;
    g_autoptr(CorunRun) run = NULL;
    int ft, nb;
    gint64 first = -2, last = -2;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(sf->setup.vms[0].start_slow_first, (with ? 16 : 0));
    ck_assert_uint_eq(sf->setup.vms[0].start_slow_pages, (with ? 32 : 0));
    sf->setup.profile = p;
    sf->setup.dram_pages = 128;   /* room for the whole hot set of 64 */
    run = corun_run(&sf->setup, policies, 0, NULL, NULL, &error);
    ck_assert_msg(run != NULL, "%s", error ? error->message : "");
    ft = corun_run_find(run, "first-touch");
    nb = corun_run_find(run, "numa-balancing");
    /* 32 of the 64 pages on the slow tier from the start: half of first-touch's misses */
    ck_assert_double_eq_tol(corun_result_dram_share(run, (guint)ft, -1), (with ? 0.5 : 1.0),
                            1e-9);
    ck_assert_uint_eq(last_dram_pages(run, "first-touch", 0), (with ? 32 : 64));
    for (guint i = 0; i < run->samples->len; i++) {
      const CorunSample *smp = &g_array_index(run->samples, CorunSample, i);

      if (smp->policy != (guint)nb)
        continue;
      if (smp->interval == 0)
        first = smp->start_slow_dram;
      if (smp->interval == run->intervals - 1)
        last = smp->start_slow_dram;
    }
    /* numa-balancing: none of the range on DRAM after the first interval, all of it at the
     * end (DRAM has room: pgdat_free_space_enough is false at 128 pages, but every fault is
     * well under the 1 s threshold); -1 without a range */
    ck_assert_int_eq(first, (with ? 0 : -1));
    ck_assert_int_eq(last, (with ? 32 : -1));
    ck_assert_uint_eq(last_dram_pages(run, "numa-balancing", 0), 64);
  }
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *json = g_strdup_printf(
      "{\"setup\": \"slow\", \"interval_ms\": 100, \"vms\": ["
      "{\"name\": \"vm0\", \"trace\": \"vm0.trace\", \"start_slow\": %s}]}", bad[i]);
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;

    ck_assert(g_file_set_contents(path, json, -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf == NULL, "accepted start_slow %s", bad[i]);
    ck_assert_msg(strstr(error->message, "\"start_slow\" must be [first, count]") != NULL,
                  "%s", error->message);
  }
  hmmv_test_remove_tree(dir);
}
END_TEST

/* hmmv-corun replay --dram-of touched: the pages the traces touch in the intervals replayed,
 * each counted once per VM: vm0 touches page 2k (and page 0 again) in interval k of 20,
 * vm1 its 256 first pages in each of 5 intervals. */
START_TEST(test_touched_pages)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  g_autofree char *t0 = g_build_filename(dir, "vm0.trace", NULL);
  g_autofree char *t1 = g_build_filename(dir, "vm1.trace", NULL);
  HmmvTraceInfo info = { .nr_pages = 1024, .interval_ms = 100, .flags = HMMV_TRACE_HAS_READS };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTraceWriter) w = hmmv_trace_writer_new(t0, &info, &error);
  g_autoptr(CorunSetupFile) sf = NULL;
  guint64 touched = 0;

  ck_assert_msg(w != NULL, "%s", error ? error->message : "");
  for (guint k = 0; k < 20; k++) {
    HmmvTraceEntry e[2] = { { 0, 1, 0 }, { 2 * k + 2, 0, 1 } };

    ck_assert(hmmv_trace_writer_add_interval(w, 1000, e, 2, &error));
  }
  ck_assert(hmmv_trace_writer_close(w, &error));
  write_hot_trace(t1, 512, 256, 5);
  ck_assert(g_file_set_contents(path, "{\"setup\": \"t\", \"interval_ms\": 100, \"vms\": ["
                                "{\"name\": \"vm0\", \"trace\": \"vm0.trace\"}, "
                                "{\"name\": \"vm1\", \"trace\": \"vm1.trace\"}]}", -1, NULL));
  sf = corun_setup_load(dir, &error);
  ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
  ck_assert_uint_eq(sf->total_pages, 1024 + 512);
  ck_assert(corun_setup_touched_pages(&sf->setup, 0, &touched, &error));
  ck_assert_uint_eq(touched, 21 + 256);
  ck_assert(corun_setup_touched_pages(&sf->setup, 3, &touched, &error));
  ck_assert_uint_eq(touched, 4 + 256);
  hmmv_test_remove_tree(dir);
}
END_TEST

/* Every policy on a generated co-run: the assertions of the corun suite, in small. */
START_TEST(test_bounds_on_generated_setup)
{
  g_autoptr(CorunProfile) p = profile();
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(CorunSetupFile) sf = NULL;
  g_autoptr(CorunRun) run = NULL;
  g_autofree char **names = g_new0(char *, 32);
  int ref, oracle;

  ck_assert_msg(corun_setup_generate(dir, 3, 1024, 12, 7, &error), "%s",
                error ? error->message : "");
  sf = corun_setup_load(dir, &error);
  ck_assert_msg(sf != NULL, "%s", error ? error->message : "");
  sf->setup.profile = p;
  sf->setup.dram_pages = sf->total_pages / 4;
  for (guint i = 0; corun_policies[i] != NULL; i++)
    names[i] = (char *)corun_policies[i]->name;
  run = corun_run(&sf->setup, (const char *const *)names, 0, NULL, NULL, &error);
  ck_assert_msg(run != NULL, "%s", error ? error->message : "");
  ref = corun_run_find(run, "all-dram");
  oracle = corun_run_find(run, "oracle");
  for (guint pi = 0; pi < run->nr_policies; pi++) {
    ck_assert(corun_result_dram_share(run, (guint)oracle, -1) + 1e-12 >=
              corun_result_dram_share(run, pi, -1));
    ck_assert(corun_result_total_ns(run, (guint)ref) <= corun_result_total_ns(run, pi) + 1e-6);
    /* one VM may gain a little from neighbours on the slow tier (shared bandwidth) */
    for (guint v = 0; v < run->nr_vms; v++)
      ck_assert(run->results[ref].runtime_ns[v] <= run->results[pi].runtime_ns[v] * 1.01);
  }
  ck_assert_double_eq_tol(corun_result_dram_share(run, (guint)ref, -1), 1.0, 1e-12);
  hmmv_test_remove_tree(dir);
}
END_TEST

START_TEST(test_bad_setups)
{
  g_autofree char *dir = g_dir_make_tmp("hmmv-test-corun-XXXXXX", NULL);
  g_autofree char *path = g_build_filename(dir, "setup.json", NULL);
  const char *bad[][2] = {
    { "[]", "not a JSON object" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": []}", "\"vms\" must be an array" },
    { "{\"setup\": \"x\", \"vms\": [{}]}", "interval_ms" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"../a\", \"trace\": \"t\"}]}",
      "VM name" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"nope\"}]}",
      "vm a" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\"}]}", "\"trace\"" },
    { "{\"setup\": \"x\", \"interval_ms\": 10} trailing", "" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"t\", "
      "\"dram_min_mib\": 2, \"dram_max_mib\": 1}]}", "dram_min_mib 2 is above dram_max_mib 1" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"t\", "
      "\"dram_max_mib\": -1}]}", "\"dram_max_mib\" must be an integer" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"vms\": [{\"name\": \"a\", \"trace\": \"t\", "
      "\"halted\": 1}]}", "\"halted\" must be true or false" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"numa_balancing\": 3, \"vms\": []}",
      "\"numa_balancing\" must be an object" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"numa_balancing\": {\"scan_period_ms\": -1}}",
      "numa_balancing: \"scan_period_ms\" must be an integer" },
    { "{\"setup\": \"x\", \"interval_ms\": 10, \"numa_balancing\": {\"high_wmark_pages\": 9, "
      "\"promo_wmark_pages\": 8}}", "promo_wmark_pages 8 is below high_wmark_pages 9" },
  };

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(CorunSetupFile) sf = NULL;

    ck_assert(g_file_set_contents(path, bad[i][0], -1, NULL));
    sf = corun_setup_load(dir, &error);
    ck_assert_msg(sf == NULL, "accepted %s", bad[i][0]);
    ck_assert_msg(strstr(error->message, bad[i][1]) != NULL, "'%s' lacks '%s'", error->message,
                  bad[i][1]);
  }
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
  tcase_add_test(tc, test_memtierd_heat_walk);
  tcase_add_test(tc, test_memtis_histogram);
  tcase_add_test(tc, test_damos_quota_feedback);
  tcase_add_test(tc, test_hmmv_sees_what_its_tracker_sees);
  tcase_add_test(tc, test_hmmv_honours_setup_quotas);
  tcase_add_test(tc, test_halted_vm_idles_after_its_trace);
  tcase_add_test(tc, test_start_slow_first_touch);
  tcase_add_test(tc, test_touched_pages);
  tcase_add_test(tc, test_bounds_on_generated_setup);
  tcase_add_test(tc, test_bad_setups);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(corun_policies_suite());
}
