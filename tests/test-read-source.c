/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's read source (daemon/reads.c): which one [reads] source = auto picks from what the
 * kernel offers, the reason it keeps for the others, and the tracker it gives a VM, with
 * idle page tracking on the fake of idle-fake.c (this host's kernel has none).
 */
#include "gate-mover.h"
#include "idle-fake.h"
#include "hmmvd-test.h"
#include "reads.h"

#include <glib/gstdio.h>
#include <string.h>

#define HVA 0x7f0000000000ull
#define PID 4242

typedef struct {
  char *dir;                /* an empty DAMON sysfs root (no DAMON) and a stand-in bitmap */
  char *bitmap;
  HmmvSysfs *fs;
  HmmvdConfig config;
} Fixture;

static void
fixture_init(Fixture *f, const char *source, gboolean with_bitmap)
{
  g_autoptr(GError) error = NULL;

  f->dir = g_dir_make_tmp("hmmv-reads-XXXXXX", &error);
  ck_assert_ptr_nonnull(f->dir);
  f->bitmap = g_build_filename(f->dir, "bitmap", NULL);
  if (with_bitmap)
    ck_assert(g_file_set_contents(f->bitmap, "", 0, &error));
  f->fs = hmmv_sysfs_new_dir(f->dir);
  hmmvd_config_init(&f->config);
  g_free(f->config.reads_source);
  f->config.reads_source = g_strdup(source);
  g_free(f->config.reads_run_dir);
  f->config.reads_run_dir = g_build_filename(f->dir, "run", NULL);
}

static void
fixture_clear(Fixture *f)
{
  g_unlink(f->bitmap);
  g_rmdir(f->dir);
  g_free(f->bitmap);
  g_free(f->dir);
  hmmv_sysfs_unref(f->fs);
  hmmvd_config_clear(&f->config);
}

static HmmvIdleIo *
fake_io(gpointer data)
{
  return idle_fake_io(data);
}

/* No DAMON, idle page tracking present: auto takes it, says why not DAMON, and a VM's
 * tracker reports writes from the write source and reads from the idle bitmap. */
START_TEST(test_auto_takes_idle_page)
{
  Fixture f;
  IdleFake *fake = idle_fake_new(4096);
  g_autoptr(HmmvdReads) reads = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = hmmv_vm_new("vm1");
  g_autoptr(HmmvAccess) acc = hmmv_access_new(64, NULL);
  HmmvTracker *writes = hmmv_fake_tracker_new();
  HmmvTracker *tracker;

  fixture_init(&f, "auto", TRUE);
  reads = hmmvd_reads_new_full(&f.config, f.fs, f.bitmap, fake_io, fake);
  ck_assert_str_eq(hmmvd_reads_get_source(reads), "idle-page");
  ck_assert_ptr_nonnull(strstr(hmmvd_reads_get_reason(reads), "DAMON"));
  for (guint64 p = 0; p < 64; p++)
    idle_fake_map(fake, PID, (HVA >> 12) + p, 100 + p);
  ck_assert(hmmv_vm_add_region(vm, "pc.ram", 0, HVA, 64 * 4096ull, 4096, &error));
  ck_assert(hmmv_vm_finalize_layout(vm, &error));
  hmmv_vm_set_pid(vm, PID);
  memset(hmmv_vm_get_temp_mut(vm), 255, 64);
  tracker = hmmvd_reads_wrap(reads, writes);
  ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(tracker));
  ck_assert_str_eq(hmmv_tracker_get_name(hmmv_combined_tracker_get_reads(tracker)),
                   "idle-page");
  ck_assert(hmmv_tracker_start(tracker, vm, &error));
  idle_fake_touch(fake, PID, (HVA >> 12) + 7);
  hmmv_fake_tracker_queue_write(writes, 9);
  ck_assert(hmmv_tracker_harvest(tracker, vm, acc, &error));
  ck_assert_uint_eq(hmmv_bitmap_count(acc->reads, acc->nr_words), 1);
  ck_assert(hmmv_bitmap_test(acc->reads, 7));
  ck_assert_uint_eq(hmmv_bitmap_count(acc->writes, acc->nr_words), 1);
  ck_assert(hmmv_bitmap_test(acc->writes, 9));
  hmmv_tracker_stop(tracker);
  hmmv_tracker_free(tracker);
  ck_assert_uint_eq(idle_fake_stats(fake)->einval, 0);
  idle_fake_free(fake);
  fixture_clear(&f);
}
END_TEST

/* Neither: write-only tracking, and the reason names both (the kernel option included). */
START_TEST(test_auto_without_any_source)
{
  Fixture f;
  g_autoptr(HmmvdReads) reads = NULL;
  HmmvTracker *writes = hmmv_fake_tracker_new();
  HmmvTracker *tracker;

  fixture_init(&f, "auto", FALSE);
  reads = hmmvd_reads_new_full(&f.config, f.fs, f.bitmap, NULL, NULL);
  ck_assert_str_eq(hmmvd_reads_get_source(reads), "none");
  ck_assert_ptr_nonnull(strstr(hmmvd_reads_get_reason(reads), "DAMON"));
  ck_assert_ptr_nonnull(strstr(hmmvd_reads_get_reason(reads), "CONFIG_IDLE_PAGE_TRACKING"));
  tracker = hmmvd_reads_wrap(reads, writes);
  ck_assert_ptr_eq(tracker, writes);
  hmmv_tracker_free(tracker);
  fixture_clear(&f);
}
END_TEST

/* Asked for by name: idle-page is taken when present, and only it is tried. */
START_TEST(test_named_idle_page)
{
  Fixture f;
  g_autoptr(HmmvdReads) present = NULL;
  g_autoptr(HmmvdReads) missing = NULL;

  fixture_init(&f, "idle-page", TRUE);
  present = hmmvd_reads_new_full(&f.config, f.fs, f.bitmap, NULL, NULL);
  ck_assert_str_eq(hmmvd_reads_get_source(present), "idle-page");
  ck_assert_ptr_null(hmmvd_reads_get_reason(present));
  g_unlink(f.bitmap);
  missing = hmmvd_reads_new_full(&f.config, f.fs, f.bitmap, NULL, NULL);
  ck_assert_str_eq(hmmvd_reads_get_source(missing), "none");
  ck_assert_ptr_null(strstr(hmmvd_reads_get_reason(missing), "DAMON"));
  fixture_clear(&f);
}
END_TEST

/* make_idle_io that counts the read trackers made (one per hmmvd_reads_wrap) */
typedef struct {
  IdleFake *fake;
  guint made;
} CountedIo;

static HmmvIdleIo *
counted_io(gpointer data)
{
  CountedIo *counted = data;

  counted->made++;
  return idle_fake_io(counted->fake);
}

static void
interval_finished(gpointer data)
{
  (*(guint *)data)++;
}

/* A VM whose start-up completes while an interval runs joins the core after it, with one read
 * source beside its writes. Until 2026-12-04 its tracker was wrapped with the read source when
 * it was put aside and again when it joined: two read trackers for one VM (with DAMON, two
 * kdamonds on one QEMU: twice the cost, and one more VM's setup racing the others' for
 * kdamonds: the race of issue 8, hmmvd-base run 1, where vm0 reported two read trackers
 * failing 23 ms apart). The gate mover holds the running interval's moves while the VM comes;
 * counts events, the 60 s deadline is a liveness guard. */
START_TEST(test_vm_joining_after_interval_gets_one_read_source)
{
  Fixture f;
  CountedIo counted = { idle_fake_new(4096), 0 };
  g_autoptr(HmmvdReads) reads = NULL;
  g_autoptr(GError) error = NULL;
  HmmvdTestBed bed;
  HmmvdConfig config;
  HmmvMover *gate;
  HmmvCore *core;
  HmmvdVms *vms;
  HmmvTracker *first = hmmv_fake_tracker_new();
  HmmvVm *vm = hmmv_vm_new("late");
  const HmmvdVmInfo *info;
  guint finished = 0;
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  fixture_init(&f, "idle-page", TRUE);
  reads = hmmvd_reads_new_full(&f.config, f.fs, f.bitmap, counted_io, &counted);
  ck_assert_str_eq(hmmvd_reads_get_source(reads), "idle-page");
  /* 2 MiB of DRAM: the first VM's 512 written pages fill it, its quota of 128 moves 384 */
  hmmvd_test_bed_init(&bed, 512u * HMMV_PAGE_SIZE, 64u * 1024 * HMMV_PAGE_SIZE, NULL);
  hmmvd_config_init(&config);
  config.params.migrate_mbps = 0;
  config.params.host_migrate_mbps = 0;
  config.default_quota.max_pages = 128;
  gate = hmmv_gate_mover_new(bed.topo, 0, &error);
  ck_assert_msg(gate != NULL, "%s", error ? error->message : "");
  core = hmmv_core_new(bed.topo, gate, &config.params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  vms = hmmvd_vms_new(core, &config);
  ck_assert(hmmvd_vms_add_with_tracker(vms, "first", HMMVD_SOURCE_STANDALONE, 1, NULL,
                                       hmmv_test_vm_new("first", 1024), first, &error));
  hmmvd_test_write_pages(first, 0, 512);
  hmmvd_vms_set_reads(vms, reads);

  hmmv_gate_mover_close(gate);
  ck_assert(hmmvd_vms_start_interval(vms, interval_finished, &finished));
  while (hmmv_gate_mover_get_blocked(gate) == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(hmmv_gate_mover_get_blocked(gate), 1);
  /* the late VM's start-up completes now */
  for (guint64 p = 0; p < 64; p++)
    idle_fake_map(counted.fake, PID, (HVA >> 12) + p, 100 + p);
  ck_assert(hmmv_vm_add_region(vm, "pc.ram", 0, HVA, 64 * 4096ull, 4096, &error));
  ck_assert(hmmv_vm_finalize_layout(vm, &error));
  ck_assert(hmmvd_vms_add_with_tracker(vms, "late", HMMVD_SOURCE_STANDALONE, PID, NULL, vm,
                                       hmmv_fake_tracker_new(), &error));
  info = hmmvd_vms_lookup(vms, "late");
  ck_assert(!info->in_core);
  hmmv_gate_mover_open(gate);
  while (finished == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(finished, 1);
  info = hmmvd_vms_lookup(vms, "late");
  ck_assert(info->in_core);
  ck_assert_uint_eq(counted.made, 1);

  hmmvd_vms_free(vms);
  hmmv_core_free(core);
  hmmv_mover_free(gate);
  hmmvd_config_clear(&config);
  hmmvd_test_bed_clear(&bed);
  idle_fake_free(counted.fake);
  fixture_clear(&f);
}
END_TEST

static Suite *
reads_suite(void)
{
  Suite *s = suite_create("reads");
  TCase *tc = tcase_create("source");

  tcase_add_test(tc, test_auto_takes_idle_page);
  tcase_add_test(tc, test_auto_without_any_source);
  tcase_add_test(tc, test_named_idle_page);
  tcase_add_test(tc, test_vm_joining_after_interval_gets_one_read_source);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(reads_suite());
}
