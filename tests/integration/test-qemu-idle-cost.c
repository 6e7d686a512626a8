/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A VM that never starts the write export pays nothing for its bitmap (issue 9, "Cost"):
 * the patched QEMU allocates the DIRTY_MEMORY_EXPORT bitmap (one bit per 4 KiB page: 8 MiB
 * for 256 GiB) when hmmv-start asks for it, not when RAM blocks are added.
 *
 *   bitmap-at-start  a 256 GiB guest (memory-backend-ram with reserve=off: the host has
 *                    less) under TCG, idle. QEMU's anonymous resident memory (RssAnon in
 *                    /proc/PID/status) is read before hmmv-start, then after hmmv-start and
 *                    one hmmv-sync until it has grown by 7/8 of the bitmap's size (10.0's
 *                    0015 populates the bitmap on a thread of QEMU's after hmmv-start
 *                    returns; QEMU before it, at hmmv-start), at most POLLS times 100 ms
 *                    apart. It must grow so: a QEMU that allocated (and, as ram_block_add
 *                    does for every client, filled) the bitmap at boot would grow by about
 *                    nothing. The region is a memfd, shared memory: it is not in RssAnon.
 *
 * A bound is asserted on memory, not on time. Skips (77) on a QEMU whose BUILD-INFO lists
 * no dirty-client patch (0001 of either series).
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <hmmv/qemu.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SERIAL_TIMEOUT_MS 120000
/* RssAnon reads after hmmv-start, 100 ms apart, before the test gives up on its growth. */
#define POLLS 300
#define GUEST_GIB 256u
/* One bit per 4 KiB page. */
#define BITMAP_BYTES ((guint64)GUEST_GIB << 30 >> 12 >> 3)

static char *qemu_path;
static char *guest_path;

/* RssAnon of pid, in bytes. */
static guint64
rss_anon(int pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/status", pid);
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  const char *line;
  guint64 kib;

  ck_assert_msg(g_file_get_contents(path, &text, NULL, &error), "%s", error->message);
  line = strstr(text, "\nRssAnon:");
  ck_assert_msg(line != NULL, "%s has no RssAnon", path);
  ck_assert_int_eq(sscanf(line, "\nRssAnon: %" G_GUINT64_FORMAT " kB", &kib), 1);
  return kib << 10;
}

START_TEST(test_bitmap_at_start)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *backend =
    g_strdup_printf("memory-backend-ram,id=big,size=%uG,reserve=off", GUEST_GIB);
  const char *const extra[] = { "-object", backend, "-machine", "memory-backend=big", NULL };
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvQmp) qmp = NULL;
  g_autofree char *ready = NULL;
  g_autoptr(JsonNode) synced = NULL;
  g_autoptr(JsonNode) stopped = NULL;
  guint64 before, after, stopped_rss;
  guint polls = 0;
  guint8 *map = NULL;
  gsize size = 0;
  int fd = -1;

  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", GUEST_GIB * 1024,
                              "phases=1 pages=10 wait=1", extra, &error);
  ck_assert_msg(proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");

  before = rss_anon(hmmv_qemu_proc_get_pid(proc));
  ck_assert_msg(hmmv_harness_start_export(qmp, "hmmv-test-idle-cost", &fd, &map, &size, &error),
                "%s", error->message);
  synced = hmmv_test_qmp_ok(qmp, "hmmv-sync", NULL);
  after = rss_anon(hmmv_qemu_proc_get_pid(proc));
  while (after < before + BITMAP_BYTES / 8 * 7 && ++polls < POLLS) {
    g_usleep(100000);
    after = rss_anon(hmmv_qemu_proc_get_pid(proc));
  }
  stopped = hmmv_test_qmp_ok(qmp, "hmmv-stop", NULL);
  stopped_rss = rss_anon(hmmv_qemu_proc_get_pid(proc));
  munmap(map, size);
  close(fd);
  printf("# %u GiB guest: RssAnon %" G_GUINT64_FORMAT " KiB before hmmv-start, %"
         G_GUINT64_FORMAT " KiB after it and a sync (+%" G_GINT64_FORMAT " KiB, reads: %u"
         "), %" G_GUINT64_FORMAT " KiB after hmmv-stop; the bitmap is %" G_GUINT64_FORMAT
         " KiB\n",
         GUEST_GIB, before >> 10, after >> 10, ((gint64)after - (gint64)before) / 1024,
         polls + 1, stopped_rss >> 10, BITMAP_BYTES >> 10);
  ck_assert_msg(after >= before + BITMAP_BYTES / 8 * 7,
                "RssAnon grew by %" G_GINT64_FORMAT " KiB after hmmv-start (reads: %u), "
                "less than 7/8 of the %" G_GUINT64_FORMAT " KiB bitmap: was it there before "
                "the export started?",
                ((gint64)after - (gint64)before) / 1024, polls + 1, BITMAP_BYTES >> 10);
}
END_TEST

static Suite *
idle_cost_suite(void)
{
  Suite *s = suite_create("qemu-idle-cost");
  TCase *tc = tcase_create("idle-cost");

  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_bitmap_at_start);
  suite_add_tcase(s, tc);
  return s;
}

static const char *const patches[] = {
  "0001-memory-add-the-DIRTY_MEMORY_HMMV-dirty-client.patch",   /* 7.2 */
  "0001-memory-add-the-DIRTY_MEMORY_EXPORT-dirty-client.patch", /* 10.0 */
};

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare(NULL, &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (!hmmv_harness_built_with(qemu_path, patches, G_N_ELEMENTS(patches),
                               "the export's dirty client (0001)", &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(idle_cost_suite());
}
