/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's read source (daemon/reads.c): which one [reads] source = auto picks from what the
 * kernel offers, the reason it keeps for the others, and the tracker it gives a VM, with
 * idle page tracking on the fake of idle-fake.c (this host's kernel has none).
 */
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

static Suite *
reads_suite(void)
{
  Suite *s = suite_create("reads");
  TCase *tc = tcase_create("source");

  tcase_add_test(tc, test_auto_takes_idle_page);
  tcase_add_test(tc, test_auto_without_any_source);
  tcase_add_test(tc, test_named_idle_page);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(reads_suite());
}
