/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QEMU 10.0 series beside calc-dirty-rate and beside loading a VM state, against a real
 * patched QEMU running the test guest (issue 9, "Exactness and coexistence").
 *
 *   test-qemu-coexist tcg      calc-dirty-rate's page sampling measures the same guest the
 *                              same with the export publishing every 10 ms as without it; its
 *                              dirty-ring mode refuses while the export runs; an incoming
 *                              migration (from a file) that ends under a running export
 *                              reports every exported page written, once; so do loadvm
 *                              (HMP) and snapshot-load (the job) of a snapshot in a qcow2
 *                              image
 *   test-qemu-coexist kvm-log  calc-dirty-rate's dirty-bitmap mode: the same rate with the
 *                              export publishing every 10 ms as without it (before, each
 *                              publication's sync and clear counted the pages again)
 *   test-qemu-coexist kvm      the dirty ring: calc-dirty-rate's dirty-ring mode and
 *                              hmmv-start refuse each other
 *
 * The guest writes random words all over a 32 MiB window, so every page of it changes many
 * times a second whatever the host's load: a measurement of about a second finds the window's
 * 32 MiB written, plus a little (its stack), and the export must not change that. Both
 * series carry these fixes (10.0: patches 0009-0011, 0008-0010 before the export core and its
 * QMP commands were split; 7.2: 0005).
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SERIAL_TIMEOUT_MS 60000
#define WINDOW_MIB 32
#define BASE_PFN 0x1000u    /* the guest's default window base, 16 MiB */
#define SPAN 2048

static const char *accel_mode = "tcg";
static char *qemu_path;
static char *guest_path;

/* The migration reached "completed" (60 s liveness bound). */
static void
migrated(HmmvQmp *qmp)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_harness_wait_migration(qmp, "completed", 60000, &error), "%s",
                error->message);
}

static HmmvQemuProc *
start_guest(const char *append, const char *const *extra, HmmvQmp **qmp)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ready = NULL;
  HmmvQemuProc *proc =
    hmmv_qemu_proc_start(qemu_path, guest_path, hmmv_harness_accel(accel_mode), 128, append, extra, &error);

  ck_assert_msg(proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  *qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(*qmp != NULL, "%s", error ? error->message : "");
  return proc;
}

/* A tracker with the export running (QEMU's timer publishing every interval_ms) on vm. It
 * takes qmp over (QEMU's monitor serves one client at a time): the test goes on talking to
 * QEMU through hmmv_qemu_dirty_tracker_get_qmp(), between harvests. */
static HmmvTracker *
start_export(HmmvQmp *qmp, guint interval_ms, HmmvVm **vm)
{
  g_autoptr(GError) error = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = interval_ms };
  HmmvTracker *tracker;

  *vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert_msg(*vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  ck_assert_msg(hmmv_tracker_start(tracker, *vm, &error), "%s", error ? error->message : "");
  return tracker;
}

/* calc-dirty-rate in mode for about a second; returns the error (NULL when it started). */
static GError *
calc_start(HmmvQmp *qmp, const char *mode)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  GError *error = NULL;

  json_object_set_int_member(args, "calc-time", 1);
  json_object_set_string_member(args, "mode", mode);
  if (g_strcmp0(mode, "page-sampling") == 0)
    json_object_set_int_member(args, "sample-pages", 10000);   /* the most: ~1250 here */
  ret = hmmv_qmp_execute(qmp, "calc-dirty-rate", args, &error);
  return error;
}

/* Waits for the measurement to end (polling query-dirty-rate; the deadline is liveness
 * only) and returns its rate in MB/s; *s: the seconds QEMU measured over. */
static gint64
calc_wait(HmmvQmp *qmp, gint64 *s)
{
  for (guint polls = 0; polls < 1200; polls++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = NULL;
    JsonObject *info;

    ret = hmmv_qmp_execute(qmp, "query-dirty-rate", NULL, &error);
    ck_assert_msg(ret != NULL, "query-dirty-rate: %s", error ? error->message : "");
    info = json_node_get_object(ret);
    if (g_strcmp0(json_object_get_string_member(info, "status"), "measured") == 0) {
      *s = json_object_get_int_member(info, "calc-time");
      return json_object_get_int_member(info, "dirty-rate");
    }
    g_usleep(50000);
  }
  ck_abort_msg("calc-dirty-rate did not end in 60 s");
  return -1;
}

static gint64
measure(HmmvQmp *qmp, const char *mode, const char *what)
{
  g_autoptr(GError) error = calc_start(qmp, mode);
  gint64 s = 0, rate;

  ck_assert_msg(error == NULL, "calc-dirty-rate %s: %s", mode, error ? error->message : "");
  rate = calc_wait(qmp, &s);
  printf("# %s, %s: %" G_GINT64_FORMAT " MB/s over %" G_GINT64_FORMAT " s (the guest "
         "rewrites %u MiB)\n", mode, what, rate, s, WINDOW_MIB);
  return rate;
}

/* QEMU's publications so far (query-hmmv). */
static guint64
publications(HmmvQmp *qmp)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = hmmv_qmp_execute(qmp, "query-hmmv", NULL, &error);
  guint64 generation = 0;

  ck_assert_msg(ret != NULL && JSON_NODE_HOLDS_OBJECT(ret) &&
                hmmv_json_get_uint(json_node_get_object(ret), "generation", &generation,
                                   &error), "query-hmmv: %s", error ? error->message : "");
  return generation;
}

/* The guest's dirty rate, measured without the export and with it publishing every 10 ms
 * (QEMU published during the measurement: counted): both see some of the window and at most
 * twice its size (its stack and a little more are written too; a measurement of more than a
 * second only lowers the rate). Before the fix of the dirty-bitmap mode, each of the ~100
 * publications a second counted the window again, ~50 times the bound. No lower bound: under
 * a loaded host the guest's own pace varies (page sampling, TCG, load 15-18: 10 to 33 MB/s for
 * the same 32 MiB window, with and without the export). */
static void
check_rate_with_and_without(const char *mode)
{
  g_autofree char *append = g_strdup_printf("mode=workload hot_mib=%u cold_mib=0 "
                                            "hot_ratio=100 report_every=0", WINDOW_MIB);
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  HmmvQmp *qmp;
  HmmvTracker *tracker;
  gint64 without, with;
  guint64 before, after;

  proc = start_guest(append, NULL, &qmp);
  without = measure(qmp, mode, "no export");
  tracker = start_export(qmp, 10, &vm);
  qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  before = publications(qmp);
  with = measure(qmp, mode, "export publishing every 10 ms");
  after = publications(qmp);
  printf("# the export published %" G_GUINT64_FORMAT " times during that measurement\n",
         after - before);
  ck_assert_uint_gt(after, before);
  ck_assert_int_gt(without, 0);
  ck_assert_int_le(without, 2 * WINDOW_MIB);
  ck_assert_int_gt(with, 0);
  ck_assert_int_le(with, 2 * WINDOW_MIB);
  hmmv_tracker_free(tracker);
}

START_TEST(test_rate_page_sampling)
{
  check_rate_with_and_without("page-sampling");
}
END_TEST

START_TEST(test_rate_dirty_bitmap)
{
  check_rate_with_and_without("dirty-bitmap");
}
END_TEST

/* While the export runs, the dirty-ring mode refuses and says why (under TCG too: the check
 * comes before the one for the dirty ring). */
START_TEST(test_dirty_ring_mode_refused)
{
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp;
  HmmvTracker *tracker;

  proc = start_guest("phases=1 pages=16 wait=1", NULL, &qmp);
  tracker = start_export(qmp, 10, &vm);
  qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  error = calc_start(qmp, "dirty-ring");
  ck_assert(error != NULL);
  printf("# calc-dirty-rate mode=dirty-ring while hmmv exports: %s\n", error->message);
  /* QEMU's own refusal, not a dead QEMU (7.2 without the fix dies here under TCG). */
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL) &&
                strstr(error->message, "while hmmv exports") != NULL, "%s", error->message);
  {
    g_autoptr(JsonNode) ret = hmmv_qmp_execute(qmp, "query-hmmv", NULL, NULL);

    ck_assert_msg(ret != NULL && JSON_NODE_HOLDS_OBJECT(ret) &&
                  json_object_get_boolean_member_with_default(json_node_get_object(ret),
                                                              "active", FALSE),
                  "the export is no longer active after the refusal");
  }
  hmmv_tracker_free(tracker);
}
END_TEST

/* The other way round (the dirty ring only): hmmv-start refuses while a dirty-ring
 * measurement runs, then starts once it is over. */
START_TEST(test_start_refused_while_ring_measures)
{
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 10 };
  HmmvQmp *qmp;
  gint64 s;

  proc = start_guest("phases=1 pages=16 wait=1", NULL, &qmp);
  vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert(tracker != NULL);
  qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  error = calc_start(qmp, "dirty-ring");
  ck_assert_msg(error == NULL, "%s", error ? error->message : "");
  ck_assert(!hmmv_tracker_start(tracker, vm, &error));
  ck_assert_msg(strstr(error->message, "while calc-dirty-rate measures") != NULL, "%s",
                error->message);
  printf("# hmmv-start while calc-dirty-rate measures in dirty-ring mode: %s\n",
         error->message);
  g_clear_error(&error);
  calc_wait(qmp, &s);
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
}
END_TEST

static guint64
harvest_count(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, guint64 *in_window)
{
  g_autoptr(GError) error = NULL;

  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s",
                error ? error->message : "");
  *in_window = 0;
  for (guint64 page = 0; page < acc->nr_pages; page++) {
    guint64 pfn;

    if (!hmmv_bitmap_test(acc->writes, page))
      continue;
    pfn = hmmv_vm_page_to_gpa(vm, page) >> HMMV_PAGE_SHIFT;
    *in_window += pfn >= BASE_PFN && pfn < BASE_PFN + SPAN;
  }
  return hmmv_bitmap_count(acc->writes, acc->nr_words);
}

/* A VM loaded from a migration stream has new memory that no dirty-tracking producer saw
 * being written. The destination's export, started before migrate-incoming (as hmmvd does on
 * a domain that libvirt starts with -incoming), reports every page written when the load
 * ends, and only then: the harvest after it holds only what the guest itself writes (nothing
 * in the test window: it waits on its serial port). */
START_TEST(test_incoming_migration_reported)
{
  const char *append = "phases=2 pages=200 pattern=random span=2048 seed=5 wait=1";
  const char *const incoming[] = { "-incoming", "defer", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) src = NULL, dst = NULL;
  g_autoptr(HmmvQmp) src_qmp = NULL;
  HmmvQmp *dst_qmp;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autofree char *image = NULL, *uri = NULL, *in_uri = NULL;
  guint64 total, in_window;

  src = start_guest(append, NULL, &src_qmp);
  ck_assert_msg(hmmv_qemu_proc_run_phase(src, 0, expected, SERIAL_TIMEOUT_MS, &error), "%s",
                error ? error->message : "");
  image = g_build_filename(hmmv_qemu_proc_get_dir(src), "migration.img", NULL);
  uri = g_strdup_printf("exec:cat > %s", image);
  {
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "uri", uri);
    ret = hmmv_qmp_execute(src_qmp, "migrate", args, &error);
    ck_assert_msg(ret != NULL, "migrate: %s", error ? error->message : "");
  }
  migrated(src_qmp);

  dst = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128, append, incoming, &error);
  ck_assert_msg(dst != NULL, "%s", error ? error->message : "");
  dst_qmp = hmmv_qemu_proc_qmp(dst, &error);
  ck_assert_msg(dst_qmp != NULL, "%s", error ? error->message : "");
  tracker = start_export(dst_qmp, 0, &vm);
  dst_qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# destination before the load: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
         " pages written\n", total, acc->nr_pages);
  ck_assert_uint_eq(in_window, 0);

  in_uri = g_strdup_printf("exec:cat %s", image);
  {
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "uri", in_uri);
    ret = hmmv_qmp_execute(dst_qmp, "migrate-incoming", args, &error);
    ck_assert_msg(ret != NULL, "migrate-incoming: %s", error ? error->message : "");
  }
  migrated(dst_qmp);
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# destination after the load: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
         " pages written, %" G_GUINT64_FORMAT " of the %u-page test window\n", total,
         acc->nr_pages, in_window, SPAN);
  ck_assert_uint_eq(total, acc->nr_pages);
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# the next harvest: %" G_GUINT64_FORMAT " pages written, %" G_GUINT64_FORMAT
         " in the test window\n", total, in_window);
  ck_assert_uint_lt(total, acc->nr_pages / 2);
  ck_assert_uint_eq(in_window, 0);
  g_unlink(image);
}
END_TEST

/* Runs the job QMP command command (args gets job-id) and waits for it to conclude (polling
 * query-jobs; the deadline is liveness only); fails the test when the job failed. */
static void
run_job(HmmvQmp *qmp, const char *command, JsonObject *args)
{
  static guint n;
  g_autofree char *id = g_strdup_printf("job%u", ++n);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_string_member(args, "job-id", id);
  ret = hmmv_qmp_execute(qmp, command, args, &error);
  ck_assert_msg(ret != NULL, "%s: %s", command, error ? error->message : "");
  for (guint polls = 0; polls < 1200; polls++) {
    g_autoptr(JsonNode) jobs = hmmv_qmp_execute(qmp, "query-jobs", NULL, &error);

    ck_assert_msg(jobs != NULL && JSON_NODE_HOLDS_ARRAY(jobs), "query-jobs: %s",
                  error ? error->message : "");
    for (guint i = 0; i < json_array_get_length(json_node_get_array(jobs)); i++) {
      JsonObject *job = json_array_get_object_element(json_node_get_array(jobs), i);
      g_autoptr(JsonObject) dismiss = NULL;
      g_autoptr(JsonNode) dret = NULL;

      if (g_strcmp0(json_object_get_string_member(job, "id"), id) != 0 ||
          g_strcmp0(json_object_get_string_member(job, "status"), "concluded") != 0)
        continue;
      ck_assert_msg(!json_object_has_member(job, "error"), "%s: %s", command,
                    json_object_get_string_member(job, "error"));
      dismiss = json_object_new();
      json_object_set_string_member(dismiss, "id", id);
      dret = hmmv_qmp_execute(qmp, "job-dismiss", dismiss, &error);
      ck_assert_msg(dret != NULL, "job-dismiss: %s", error ? error->message : "");
      return;
    }
    g_usleep(50000);
  }
  ck_abort_msg("%s did not conclude in 60 s", command);
}

/* An HMP command that must succeed: HMP prints its errors as "Error: ...". What it prints
 * otherwise (loadvm: hmmv's info that the load remapped pc.ram, PAM) becomes TAP comments. */
static void
hmp(HmmvQmp *qmp, const char *line)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) lines = NULL;
  const char *out;

  json_object_set_string_member(args, "command-line", line);
  ret = hmmv_qmp_execute(qmp, "human-monitor-command", args, &error);
  ck_assert_msg(ret != NULL, "%s: %s", line, error ? error->message : "");
  out = JSON_NODE_HOLDS_VALUE(ret) ? json_node_get_string(ret) : NULL;
  ck_assert_msg(out == NULL || strstr(out, "Error") == NULL, "%s: %s", line, out);
  lines = g_strsplit(out ? out : "", "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (*g_strstrip(lines[i]) != '\0')
      printf("# %s: %s\n", line, lines[i]);
}

/* A qcow2 image at path, 16 MiB, created and added with blockdev-create / blockdev-add (no
 * qemu-img needed) as node "snap": where savevm keeps the snapshot and the VM state. */
static void
add_qcow2(HmmvQmp *qmp, const char *path)
{
  g_autoptr(GError) error = NULL;

  {
    g_autoptr(JsonObject) args = json_object_new();
    JsonObject *opts = json_object_new();

    json_object_set_string_member(opts, "driver", "file");
    json_object_set_string_member(opts, "filename", path);
    json_object_set_int_member(opts, "size", 0);
    json_object_set_object_member(args, "options", opts);
    run_job(qmp, "blockdev-create", args);
  }
  {
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "driver", "file");
    json_object_set_string_member(args, "node-name", "snap-file");
    json_object_set_string_member(args, "filename", path);
    ret = hmmv_qmp_execute(qmp, "blockdev-add", args, &error);
    ck_assert_msg(ret != NULL, "blockdev-add file: %s", error ? error->message : "");
  }
  {
    g_autoptr(JsonObject) args = json_object_new();
    JsonObject *opts = json_object_new();

    json_object_set_string_member(opts, "driver", "qcow2");
    json_object_set_string_member(opts, "file", "snap-file");
    json_object_set_int_member(opts, "size", 16 << 20);
    json_object_set_object_member(args, "options", opts);
    run_job(qmp, "blockdev-create", args);
  }
  {
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "driver", "qcow2");
    json_object_set_string_member(args, "node-name", "snap");
    json_object_set_string_member(args, "file", "snap-file");
    ret = hmmv_qmp_execute(qmp, "blockdev-add", args, &error);
    ck_assert_msg(ret != NULL, "blockdev-add qcow2: %s", error ? error->message : "");
  }
}

/* Loading a snapshot (issue 9, E4d) replaces guest RAM behind every dirty-tracking producer,
 * as an incoming migration does: with the export running, the harvest after HMP loadvm holds
 * every exported page (0011's hook in ram_load_cleanup()), and the harvest after it only what
 * the guest itself writes (nothing in the test window: it waits on its serial port). The same
 * for snapshot-load, the job form. The snapshot is taken before the export starts, the guest
 * then writes a phase the load undoes. */
START_TEST(test_loadvm_reported)
{
  const char *append = "phases=2 pages=200 pattern=random span=2048 seed=5 wait=1";
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autofree char *image = NULL;
  HmmvQmp *qmp;
  guint64 total, in_window;

  proc = start_guest(append, NULL, &qmp);
  image = g_build_filename(hmmv_qemu_proc_get_dir(proc), "snap.qcow2", NULL);
  add_qcow2(qmp, image);
  hmp(qmp, "savevm before-phase-0");
  tracker = start_export(qmp, 0, &vm);
  qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);
  harvest_count(tracker, vm, acc, &in_window);
  ck_assert_msg(hmmv_qemu_proc_run_phase(proc, 0, expected, SERIAL_TIMEOUT_MS, &error), "%s",
                error ? error->message : "");
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# phase 0 after savevm: %" G_GUINT64_FORMAT " pages written, %" G_GUINT64_FORMAT
         " in the test window (the guest wrote %u)\n", total, in_window,
         g_hash_table_size(expected));
  ck_assert_uint_eq(in_window, g_hash_table_size(expected));
  ck_assert_uint_lt(total, acc->nr_pages / 2);

  hmp(qmp, "loadvm before-phase-0");
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# after loadvm: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " pages written\n",
         total, acc->nr_pages);
  ck_assert_uint_eq(total, acc->nr_pages);
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# the next harvest: %" G_GUINT64_FORMAT " pages written, %" G_GUINT64_FORMAT
         " in the test window\n", total, in_window);
  ck_assert_uint_lt(total, acc->nr_pages / 2);
  ck_assert_uint_eq(in_window, 0);

  {
    g_autoptr(JsonObject) args = json_object_new();
    JsonArray *devices = json_array_new();

    json_object_set_string_member(args, "tag", "before-phase-0");
    json_object_set_string_member(args, "vmstate", "snap");
    json_array_add_string_element(devices, "snap");
    json_object_set_array_member(args, "devices", devices);
    run_job(qmp, "snapshot-load", args);
  }
  total = harvest_count(tracker, vm, acc, &in_window);
  printf("# after snapshot-load: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
         " pages written\n", total, acc->nr_pages);
  ck_assert_uint_eq(total, acc->nr_pages);
  total = harvest_count(tracker, vm, acc, &in_window);
  ck_assert_uint_lt(total, acc->nr_pages / 2);
  ck_assert_uint_eq(in_window, 0);
  g_clear_pointer(&tracker, hmmv_tracker_free);
  g_unlink(image);
}
END_TEST

static Suite *
coexist_suite(void)
{
  Suite *suite = suite_create("qemu-coexist");
  TCase *tc = tcase_create(accel_mode);

  tcase_set_timeout(tc, g_str_has_prefix(accel_mode, "kvm") ? 600 : 180);
  if (g_strcmp0(accel_mode, "tcg") == 0) {
    tcase_add_test(tc, test_rate_page_sampling);
    tcase_add_test(tc, test_dirty_ring_mode_refused);
    tcase_add_test(tc, test_incoming_migration_reported);
    tcase_add_test(tc, test_loadvm_reported);
  } else if (g_strcmp0(accel_mode, "kvm-log") == 0) {
    tcase_add_test(tc, test_rate_dirty_bitmap);
  } else {
    tcase_add_test(tc, test_dirty_ring_mode_refused);
    tcase_add_test(tc, test_start_refused_while_ring_measures);
  }
  suite_add_tcase(suite, tc);
  return suite;
}

/* Patches that carry the fixes under test, by series (qemu-patches/series, 10.0/series). */
static const char *const fix_patches[] = {
  "0005-hmmv-keep-calc-dirty-rate-exact-and-report-loadvm-s-.patch",       /* 7.2 */
  "0010-hmmv-report-the-writes-of-loadvm-and-incoming-migrat.patch",       /* 10.0 */
  "0011-hmmv-report-the-writes-of-loadvm-and-incoming-migrat.patch",       /* 10.0, core split */
};

int
main(int argc, char **argv)
{
  g_autofree char *why = NULL;

  if (argc > 1)
    accel_mode = argv[1];
  if (!hmmv_harness_prepare("needs root: the tracker maps regions QEMU created",
                            &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (!hmmv_harness_built_with(qemu_path, fix_patches, G_N_ELEMENTS(fix_patches),
                               "the series' calc-dirty-rate and loadvm fixes (7.2: 0005; "
                               "10.0: 0009-0011)", &why))
    return hmmv_test_skip_all(why);
  if (g_str_has_prefix(accel_mode, "kvm") && !hmmv_harness_kvm_usable(&why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(coexist_suite());
}
