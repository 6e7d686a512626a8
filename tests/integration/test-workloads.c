/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The co-run workloads of the test guest (tests/guest/workloads.c, issue 12) on a real
 * patched QEMU under TCG, each checked against the QEMU write export (the qemu-dirty
 * tracker): the initialisation writes exactly the footprint the guest announces (no page of
 * the window outside it), the steady state writes only inside the write set it announces
 * (and some of it), and the guest reports operations per second twice, above zero.
 *
 * The guest waits (wait=1) after HMMV-WL-BEGIN, so tracking runs before the initialisation.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_PFN 0x1000u   /* the guest's default base, 16 MiB: its image lies below */
#define RAM_MIB 64
#define SERIAL_TIMEOUT_MS 60000   /* a liveness guard, not a speed limit */

static char *qemu_path;
static char *guest_path;

static const char *const workloads[] = {
  "mode=gups dist=zipf",
  "mode=gups dist=uniform",
  "mode=kv get_ratio=95",
  "mode=kv get_ratio=50",
  "mode=hotshift hot_mib=1 shift_every=100000",
  "mode=stream",
  "mode=chase log_mib=1",
  "mode=btree insert_ratio=20",
};

/* KEY=value (hex or decimal) out of a serial line; fails the test when absent. */
static guint64
line_value(const char *line, const char *key)
{
  g_auto(GStrv) words = g_strsplit(line, " ", -1);
  size_t klen = strlen(key);

  for (guint i = 0; words[i] != NULL; i++)
    if (strncmp(words[i], key, klen) == 0 && words[i][klen] == '=')
      return g_ascii_strtoull(words[i] + klen + 1, NULL, 0);
  ck_abort_msg("no %s= in \"%s\"", key, line);
  return 0;
}

/* A fresh harvest: the window's written pfns (pfn >= WINDOW_PFN). */
static GHashTable *
harvest_window(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc)
{
  g_autoptr(GError) error = NULL;
  GHashTable *set = g_hash_table_new(g_direct_hash, g_direct_equal);

  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                error ? error->message : "");
  for (guint64 page = 0; page < acc->nr_pages; page++) {
    guint64 pfn;

    if (!hmmv_bitmap_test(acc->writes, page))
      continue;
    pfn = hmmv_vm_page_to_gpa(vm, page) >> HMMV_PAGE_SHIFT;
    if (pfn >= WINDOW_PFN)
      g_hash_table_add(set, GSIZE_TO_POINTER(pfn));
  }
  return set;
}

/* How many of set's pfns lie in [first, first + count). */
static guint
count_in(GHashTable *set, guint64 first, guint64 count)
{
  GHashTableIter iter;
  gpointer key;
  guint n = 0;

  g_hash_table_iter_init(&iter, set);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    n += GPOINTER_TO_SIZE(key) >= first && GPOINTER_TO_SIZE(key) < first + count;
  return n;
}

START_TEST(test_workload)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(GHashTable) init_set = NULL;
  g_autoptr(GHashTable) steady_set = NULL;
  g_autoptr(GHashTable) boot = NULL;
  g_autofree char *append = g_strdup_printf("%s mib=4 wait=1 seed=3", workloads[_i]);
  g_autofree char *ready = NULL, *begin = NULL, *wait = NULL, *wl_ready = NULL, *end = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  guint64 base, pages, wfirst, wpages;
  HmmvQmp *qmp;

  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", RAM_MIB, append, NULL, &error);
  ck_assert_msg(proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  begin = hmmv_qemu_proc_expect(proc, "HMMV-WL-BEGIN", SERIAL_TIMEOUT_MS);
  ck_assert_msg(begin != NULL, "%s: no HMMV-WL-BEGIN", append);
  wait = hmmv_qemu_proc_expect(proc, "HMMV-WAIT workload 0", SERIAL_TIMEOUT_MS);
  ck_assert(wait != NULL);
  base = line_value(begin, "base_pfn");
  pages = line_value(begin, "pages");
  wfirst = line_value(begin, "write_first_pfn");
  wpages = line_value(begin, "write_pages");
  ck_assert_uint_eq(base, WINDOW_PFN);
  ck_assert(wfirst >= base && wfirst + wpages <= base + pages && wpages > 0);

  qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);
  boot = harvest_window(tracker, vm, acc);   /* nothing yet: the guest waits */
  ck_assert_uint_eq(g_hash_table_size(boot), 0);

  /* the initialisation writes the whole footprint, and nothing else in the window */
  ck_assert(hmmv_qemu_proc_send(proc, "g", &error));
  wl_ready = hmmv_qemu_proc_expect(proc, "HMMV-WL-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(wl_ready != NULL, "%s: no HMMV-WL-READY", append);
  init_set = harvest_window(tracker, vm, acc);
  printf("# %s: footprint %" G_GUINT64_FORMAT " pages, %u written at initialisation, %u of "
         "them inside it\n", append, pages, g_hash_table_size(init_set),
         count_in(init_set, base, pages));
  ck_assert_uint_eq(count_in(init_set, base, pages), pages);
  ck_assert_uint_eq(g_hash_table_size(init_set), pages);

  /* the steady state: progress lines, writes inside the announced write set only */
  for (guint s = 0; s < 2; s++) {
    g_autofree char *ops = hmmv_qemu_proc_expect(proc, "HMMV-OPS", SERIAL_TIMEOUT_MS);

    ck_assert_msg(ops != NULL, "%s: no HMMV-OPS line", append);
    ck_assert_uint_eq(line_value(ops, "second"), s + 1);
    ck_assert_uint_gt(line_value(ops, "ops"), 0);
    printf("# %s\n", ops);
  }
  steady_set = harvest_window(tracker, vm, acc);
  printf("# %s: steady state wrote %u pages of the window, %u inside the write set of %"
         G_GUINT64_FORMAT "\n", append, g_hash_table_size(steady_set),
         count_in(steady_set, wfirst, wpages), wpages);
  ck_assert_uint_gt(g_hash_table_size(steady_set), 0);
  ck_assert_uint_eq(count_in(steady_set, wfirst, wpages), g_hash_table_size(steady_set));

  ck_assert(hmmv_qemu_proc_send(proc, "q", &error));
  end = hmmv_qemu_proc_expect(proc, "HMMV-WL-END", SERIAL_TIMEOUT_MS);
  ck_assert_msg(end != NULL, "%s: no HMMV-WL-END after q", append);
  ck_assert_uint_gt(line_value(end, "ops"), 0);
  ck_assert(hmmv_qemu_proc_expect(proc, "HMMV-WAIT exit", SERIAL_TIMEOUT_MS) != NULL);
  ck_assert(hmmv_qemu_proc_send(proc, "g", &error));
  ck_assert_int_eq(hmmv_qemu_proc_wait(proc, SERIAL_TIMEOUT_MS), 1);   /* exit code 0 */
}
END_TEST

static Suite *
workloads_suite(void)
{
  Suite *suite = suite_create("workloads");
  TCase *tc = tcase_create("tcg");

  tcase_set_timeout(tc, 300);
  tcase_add_loop_test(tc, test_workload, 0, G_N_ELEMENTS(workloads));
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare("needs root: the tracker maps regions QEMU created",
                            &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(workloads_suite());
}
