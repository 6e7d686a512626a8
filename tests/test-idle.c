/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The idle page tracking read tracker on the fake of idle-fake.c, which behaves like the
 * kernel's mm/page_idle.c and /proc/PID/pagemap where hmmv depends on them.
 */
#include "idle-fake.h"
#include "hmmv-test.h"

#include <errno.h>
#include <string.h>

#define HVA 0x7f0000000000ull
#define VPN0 (HVA >> 12)
#define NR_PAGES 1024u
#define PID 4242
/* not a multiple of 64: the kernel's last word is partial */
#define NR_FRAMES 200010u

typedef struct {
  IdleFake *fake;
  HmmvVm *vm;
  HmmvTracker *tracker;
  HmmvAccess *acc;
} Fixture;

/* VM page p on frame 1000 + 3p: two foreign frames between any two of the VM's. */
static guint64
frame_of(guint64 page)
{
  return 1000 + 3 * page;
}

static void
fixture_init(Fixture *f, guint8 key)
{
  g_autoptr(GError) error = NULL;
  HmmvIdleOptions options = { 0 };

  f->fake = idle_fake_new(NR_FRAMES);
  for (guint64 p = 0; p < NR_PAGES; p++)
    idle_fake_map(f->fake, PID, VPN0 + p, frame_of(p));
  f->vm = hmmv_vm_new("vm1");
  ck_assert(hmmv_vm_add_region(f->vm, "pc.ram", 0, HVA, NR_PAGES * 4096ull, 4096, &error));
  ck_assert(hmmv_vm_finalize_layout(f->vm, &error));
  hmmv_vm_set_pid(f->vm, PID);
  memset(hmmv_vm_get_temp_mut(f->vm), key, NR_PAGES);
  options.io = idle_fake_io(f->fake);
  f->tracker = hmmv_idle_tracker_new(&options, &error);
  ck_assert_ptr_nonnull(f->tracker);
  f->acc = hmmv_access_new(NR_PAGES, &error);
}

static void
fixture_clear(Fixture *f)
{
  hmmv_tracker_stop(f->tracker);
  hmmv_tracker_free(f->tracker);
  hmmv_access_free(f->acc);
  hmmv_vm_free(f->vm);
  ck_assert_uint_eq(idle_fake_stats(f->fake)->einval, 0);
  idle_fake_free(f->fake);
}

static void
harvest(Fixture *f)
{
  g_autoptr(GError) error = NULL;

  hmmv_access_clear(f->acc);
  ck_assert_msg(hmmv_tracker_harvest(f->tracker, f->vm, f->acc, &error), "%s",
                error != NULL ? error->message : "");
  ck_assert_uint_eq(f->acc->intervals, 1);
}

/* Hot pages are scanned every interval: exactly the pages touched since the last harvest
 * are read; frames of other processes keep their idle state (another user's included). */
START_TEST(test_exact_when_hot)
{
  Fixture f;
  g_autoptr(GError) error = NULL;

  fixture_init(&f, 200);
  idle_fake_set_frame_idle(f.fake, frame_of(10) + 1, TRUE);    /* another user's */
  idle_fake_set_frame_idle(f.fake, frame_of(11) + 1, FALSE);
  for (guint64 p = 0; p < NR_PAGES; p++)
    idle_fake_touch(f.fake, PID, VPN0 + p);      /* before start: not reported */
  ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
  harvest(&f);
  ck_assert_uint_eq(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 0);
  for (guint round = 0; round < 3; round++) {
    for (guint64 p = round; p < NR_PAGES; p += 5)
      idle_fake_touch(f.fake, PID, VPN0 + p);
    harvest(&f);
    for (guint64 p = 0; p < NR_PAGES; p++)
      ck_assert_msg(hmmv_bitmap_test(f.acc->reads, p) == (p % 5 == round), "page %" G_GUINT64_FORMAT
                    " round %u", p, round);
    ck_assert(f.acc->has_reads);
    ck_assert_uint_eq(hmmv_bitmap_count(f.acc->writes, f.acc->nr_words), 0);
  }
  harvest(&f);
  ck_assert_uint_eq(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 0);
  ck_assert(idle_fake_frame_idle(f.fake, frame_of(10) + 1));
  ck_assert(!idle_fake_frame_idle(f.fake, frame_of(11) + 1));
  fixture_clear(&f);
}
END_TEST

/* The multi-level queue decides how often: level >= 1 every interval, level 0's warm tail
 * every 2nd, cold pages every 8th, staggered by 64-page block (1,024 pages: 16 blocks). */
START_TEST(test_scan_follows_levels)
{
  static const struct { guint8 key; guint64 per_harvest; } cases[] = {
    { 16, NR_PAGES }, { 255, NR_PAGES }, { 15, NR_PAGES / 2 }, { 1, NR_PAGES / 2 },
    { 0, NR_PAGES / 8 },
  };

  for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
    Fixture f;
    g_autoptr(GError) error = NULL;
    HmmvIdleStats stats;
    guint64 words = 0;

    fixture_init(&f, cases[c].key);
    ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
    for (guint i = 0; i < 8; i++) {
      harvest(&f);
      ck_assert(hmmv_idle_tracker_get_stats(f.tracker, &stats));
      ck_assert_uint_eq(stats.last_scanned, cases[c].per_harvest);
      words += stats.last_words;
    }
    ck_assert_uint_eq(stats.scanned, 8 * cases[c].per_harvest);
    /* 3 frames a page: a block of 64 pages spans 3 words, the VM 48 (+1 at the edges);
     * cold pages: 2 blocks 8 apart an interval, read apart, so ~8 words, not 49 */
    ck_assert_uint_le(words, 8 * (cases[c].key == 0 ? 8 : 49));
    fixture_clear(&f);
  }
}
END_TEST

/* A cold page read once is reported once, within cold_period harvests, and not before its
 * turn; nothing is lost while it waits. */
START_TEST(test_cold_page_reported_at_its_turn)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  guint seen = 0, at = 0;

  fixture_init(&f, 0);
  ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
  idle_fake_touch(f.fake, PID, VPN0 + 700);   /* block 10 */
  for (guint i = 0; i < 16; i++) {
    harvest(&f);
    if (hmmv_bitmap_test(f.acc->reads, 700)) {
      seen++;
      at = i;
    }
    ck_assert_uint_le(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 1);
  }
  ck_assert_uint_eq(seen, 1);
  ck_assert_uint_eq((at + 10) % 8, 0);
  fixture_clear(&f);
}
END_TEST

/* The kernel carries the idle flag and the accessed bit across a migration: a page hmmv
 * moves is reported read only when it was. */
START_TEST(test_migrated_pages_keep_state)
{
  Fixture f;
  g_autoptr(GError) error = NULL;

  fixture_init(&f, 255);
  ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
  idle_fake_touch(f.fake, PID, VPN0 + 3);
  idle_fake_migrate(f.fake, PID, VPN0 + 3, 150000);
  idle_fake_migrate(f.fake, PID, VPN0 + 4, 150001);
  harvest(&f);
  ck_assert(hmmv_bitmap_test(f.acc->reads, 3));
  ck_assert(!hmmv_bitmap_test(f.acc->reads, 4));
  ck_assert_uint_eq(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 1);
  idle_fake_touch(f.fake, PID, VPN0 + 4);
  harvest(&f);
  ck_assert(hmmv_bitmap_test(f.acc->reads, 4));
  ck_assert_uint_eq(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 1);
  fixture_clear(&f);
}
END_TEST

/* Pages not present are skipped; a page first touched after start (a frame never marked
 * idle) is read. */
START_TEST(test_not_present_and_first_touch)
{
  Fixture f;
  g_autoptr(GError) error = NULL;

  fixture_init(&f, 255);
  idle_fake_unmap(f.fake, PID, VPN0 + 20);
  ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
  harvest(&f);
  ck_assert_uint_eq(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 0);
  idle_fake_map(f.fake, PID, VPN0 + 20, 190000);
  harvest(&f);
  ck_assert(hmmv_bitmap_test(f.acc->reads, 20));
  ck_assert_uint_eq(hmmv_bitmap_count(f.acc->reads, f.acc->nr_words), 1);
  fixture_clear(&f);
}
END_TEST

/* A frame in the kernel's last, partial word: the kernel never hands that word out, so the
 * page is neither read nor idle (counted as unknown); the others are tracked. */
START_TEST(test_last_partial_word)
{
  Fixture f;
  g_autoptr(GError) error = NULL;
  HmmvIdleStats stats;
  guint64 last = NR_FRAMES - 2;    /* word NR_FRAMES / 64, which holds 10 frames */

  fixture_init(&f, 255);
  idle_fake_migrate(f.fake, PID, VPN0 + 5, last);
  ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
  idle_fake_touch(f.fake, PID, VPN0 + 5);
  idle_fake_touch(f.fake, PID, VPN0 + 6);
  harvest(&f);
  ck_assert(!hmmv_bitmap_test(f.acc->reads, 5));
  ck_assert(hmmv_bitmap_test(f.acc->reads, 6));
  ck_assert(hmmv_idle_tracker_get_stats(f.tracker, &stats));
  ck_assert_uint_ge(stats.unknown, 1);
  fixture_clear(&f);
}
END_TEST

START_TEST(test_unprivileged_fails_clearly)
{
  Fixture f;
  g_autoptr(GError) error = NULL;

  fixture_init(&f, 255);
  idle_fake_set_privileged(f.fake, FALSE);
  ck_assert(!hmmv_tracker_start(f.tracker, f.vm, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED));
  ck_assert_ptr_nonnull(strstr(error->message, "CAP_SYS_ADMIN"));
  fixture_clear(&f);
}
END_TEST

START_TEST(test_gone_process)
{
  Fixture f;
  g_autoptr(GError) error = NULL;

  fixture_init(&f, 255);
  ck_assert(hmmv_tracker_start(f.tracker, f.vm, &error));
  idle_fake_kill(f.fake, PID);
  hmmv_access_clear(f.acc);
  ck_assert(!hmmv_tracker_harvest(f.tracker, f.vm, f.acc, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
  fixture_clear(&f);
}
END_TEST

/* The fake refuses what the kernel refuses (so the tracker's einval count of 0, checked in
 * every case, means something). */
START_TEST(test_fake_is_strict)
{
  IdleFake *fake = idle_fake_new(130);
  g_autoptr(HmmvIdleIo) io = idle_fake_io(fake);
  guint64 buf[4] = { 0 };

  idle_fake_map(fake, PID, 7, 3);
  ck_assert_int_eq(io->ops->read_bitmap(io, buf, 8, 4), -EINVAL);
  ck_assert_int_eq(io->ops->read_bitmap(io, buf, 12, 0), -EINVAL);
  ck_assert_int_eq(io->ops->write_bitmap(io, buf, 4, 0), -EINVAL);
  ck_assert_int_eq(io->ops->read_pagemap(io, PID, buf, 8, 3), -EINVAL);
  ck_assert_int_eq(io->ops->read_pagemap(io, PID + 1, buf, 8, 0), -ESRCH);
  ck_assert_uint_eq(idle_fake_stats(fake)->einval, 4);
  /* 130 frames: two whole words and a partial one that is never counted */
  ck_assert_int_eq(io->ops->read_bitmap(io, buf, 32, 0), 16);
  ck_assert_int_eq(io->ops->read_bitmap(io, buf, 8, 24), 0);
  ck_assert_int_eq(io->ops->write_bitmap(io, buf, 8, 24), -ENXIO);
  ck_assert_int_eq(io->ops->read_pagemap(io, PID, buf, 16, 7 * 8), 16);
  ck_assert(buf[0] == ((G_GUINT64_CONSTANT(1) << 63) | 3));
  ck_assert(buf[1] == 0);
  idle_fake_set_privileged(fake, FALSE);
  ck_assert_int_eq(io->ops->read_pagemap(io, PID, buf, 8, 7 * 8), 8);
  ck_assert(buf[0] == (G_GUINT64_CONSTANT(1) << 63));
  /* writing 1 marks idle, 0 changes nothing; a touch clears it at the next read */
  buf[0] = G_GUINT64_CONSTANT(1) << 3;
  ck_assert_int_eq(io->ops->write_bitmap(io, buf, 8, 0), 8);
  ck_assert(idle_fake_frame_idle(fake, 3));
  buf[0] = 0;
  ck_assert_int_eq(io->ops->write_bitmap(io, buf, 8, 0), 8);
  ck_assert(idle_fake_frame_idle(fake, 3));
  idle_fake_touch(fake, PID, 7);
  ck_assert_int_eq(io->ops->read_bitmap(io, buf, 8, 0), 8);
  ck_assert(buf[0] == 0);
  g_clear_pointer(&io, hmmv_idle_io_free);
  idle_fake_free(fake);
}
END_TEST

START_TEST(test_probe_missing_bitmap)
{
  g_autoptr(GError) error = NULL;

  ck_assert(!hmmv_idle_probe("/nonexistent/page_idle/bitmap", &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED));
  ck_assert_ptr_nonnull(strstr(error->message, "CONFIG_IDLE_PAGE_TRACKING"));
}
END_TEST

static Suite *
idle_suite(void)
{
  Suite *s = suite_create("idle");
  TCase *tc = tcase_create("idle");

  tcase_add_test(tc, test_exact_when_hot);
  tcase_add_test(tc, test_scan_follows_levels);
  tcase_add_test(tc, test_cold_page_reported_at_its_turn);
  tcase_add_test(tc, test_migrated_pages_keep_state);
  tcase_add_test(tc, test_not_present_and_first_touch);
  tcase_add_test(tc, test_last_partial_word);
  tcase_add_test(tc, test_unprivileged_fails_clearly);
  tcase_add_test(tc, test_gone_process);
  tcase_add_test(tc, test_fake_is_strict);
  tcase_add_test(tc, test_probe_missing_bitmap);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(idle_suite());
}
