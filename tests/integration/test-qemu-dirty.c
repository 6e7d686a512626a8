/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The qemu-dirty tracker against a real patched QEMU running the test guest.
 *
 *   test-qemu-dirty tcg   TCG: phases of known pages, precision and recall 1.0 each, the same
 *                         with writes never stopping across publications (union of the
 *                         harvests), a late
 *                         harvest that merges intervals loses nothing, QEMU killed mid-run
 *                         is reported as gone, live migration to a file while tracking runs,
 *                         and a migration blocker: hmmv-start refuses while one exists, and
 *                         device_add of one (an NVMe controller) fails while tracking runs
 *   test-qemu-dirty kvm   the same phase check under KVM with the dirty ring, small (this
 *                         host's paravirtual KVM runs guests slowly); skipped where KVM is
 *                         unusable
 *   test-qemu-dirty kvm-log  the same under KVM's dirty bitmap log (no ring)
 *
 * hmmvctl track against the same guest is in test-hmmvctl-track.c.
 *
 * The guest (tests/guest) waits for a byte on its serial port before each phase and prints
 * the pages it wrote; pages outside its test window (its stack, its image) are not counted.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_PFN 0x1000u    /* the guest's default window base, 16 MiB */
#define SERIAL_TIMEOUT_MS 60000

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

typedef struct {
  HmmvQemuProc *proc;
  HmmvVm *vm;               /* owned until handed to nobody: the tracker borrows it */
  HmmvTracker *tracker;
  HmmvAccess *acc;
} Run;

static void
run_start(Run *run, const char *append, guint interval_ms, const char *const *extra)
{
  g_autoptr(GError) error = NULL;
  const char *accel = hmmv_harness_accel(accel_mode);
  g_autofree char *ready = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = interval_ms };
  HmmvQmp *qmp;

  memset(run, 0, sizeof(*run));
  run->proc = hmmv_qemu_proc_start(qemu_path, guest_path, accel, 128, append, extra, &error);
  ck_assert_msg(run->proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(run->proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up");
  qmp = hmmv_qemu_proc_qmp(run->proc, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  run->vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert_msg(run->vm != NULL, "%s", error ? error->message : "");
  run->tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert_msg(run->tracker != NULL, "%s", error ? error->message : "");
  ck_assert_msg(hmmv_tracker_start(run->tracker, run->vm, &error), "%s",
                error ? error->message : "");
  run->acc = hmmv_access_new(hmmv_vm_get_nr_pages(run->vm), &error);
  ck_assert(run->acc != NULL);
}

static void
run_stop(Run *run)
{
  hmmv_tracker_free(run->tracker);   /* hmmv-stop, unless QEMU is gone */
  hmmv_vm_free(run->vm);
  hmmv_access_free(run->acc);
  hmmv_qemu_proc_free(run->proc);
}

/* Harvest into a fresh bitmap; returns the intervals merged. */
static guint64
harvest(Run *run)
{
  g_autoptr(GError) error = NULL;

  hmmv_access_clear(run->acc);
  ck_assert_msg(hmmv_tracker_harvest(run->tracker, run->vm, run->acc, &error), "%s",
                error ? error->message : "");
  return run->acc->intervals;
}

/* QEMU's publications so far (query-hmmv's generation), asked on the tracker's own QMP
 * connection (only used by the test's thread, between harvests). */
static guint64
published(Run *run)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = hmmv_qmp_execute(hmmv_qemu_dirty_tracker_get_qmp(run->tracker),
                                             "query-hmmv", NULL, &error);
  guint64 generation = 0;

  ck_assert_msg(ret != NULL && JSON_NODE_HOLDS_OBJECT(ret) &&
                hmmv_json_get_uint(json_node_get_object(ret), "generation", &generation,
                                   &error), "query-hmmv: %s", error ? error->message : "");
  return generation;
}

/* The publication the tracker's last harvest drained up to. */
static guint64
harvested_up_to(Run *run)
{
  HmmvQemuDirtyStats stats;

  ck_assert(hmmv_qemu_dirty_tracker_get_stats(run->tracker, &stats));
  return stats.generation;
}

/* Waits until QEMU has published at least once since it was called: counts the publications
 * of QEMU's own timer instead of sleeping through some (a loaded host runs that timer late).
 * The 60 s deadline is liveness only. */
static void
wait_publication(Run *run)
{
  guint64 from = published(run);
  gint64 deadline = g_get_monotonic_time() + (gint64)SERIAL_TIMEOUT_MS * 1000;

  while (published(run) <= from) {
    ck_assert_msg(g_get_monotonic_time() < deadline, "QEMU did not publish for 60 s");
    g_usleep(10000);
  }
}

/* Guest pfns written according to the harvest, restricted to [first, first + count). */
static GHashTable *
harvested_pfns(Run *run, guint64 first, guint64 count)
{
  return hmmv_harness_written_pfns(run->vm, run->acc, first, count);
}

/* Run phase k (the guest waits for a byte) and add the pfns it says it wrote to expected. */
static void
run_phase(Run *run, guint k, GHashTable *expected)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_qemu_proc_run_phase(run->proc, k, expected, SERIAL_TIMEOUT_MS, &error),
                "%s", error->message);
}

static void
assert_exact(const char *what, GHashTable *expected, GHashTable *got)
{
  guint hits = 0;
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init(&iter, got);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    hits += g_hash_table_contains(expected, key);
  printf("# %s: guest wrote %u pages, harvest found %u in the window: precision %.3f, "
         "recall %.3f\n", what, g_hash_table_size(expected), g_hash_table_size(got),
         g_hash_table_size(got) ? (double)hits / g_hash_table_size(got) : 1.0,
         g_hash_table_size(expected) ? (double)hits / g_hash_table_size(expected) : 1.0);
  ck_assert_uint_gt(g_hash_table_size(expected), 0);
  ck_assert_uint_eq(hits, g_hash_table_size(expected));
  ck_assert_uint_eq(hits, g_hash_table_size(got));
}

#define SPAN 2048

/* Each phase's harvest holds exactly the pages the guest wrote in it. */
START_TEST(test_phases_exact)
{
  gboolean kvm = g_str_has_prefix(accel_mode, "kvm");
  guint phases = kvm ? 2 : 4;
  guint pages = kvm ? 64 : 300;
  g_autofree char *append = g_strdup_printf("phases=%u pages=%u pattern=random span=%u "
                                            "seed=7 wait=1", phases, pages, SPAN);
  Run run;

  run_start(&run, append, 0, NULL);
  harvest(&run);   /* boot noise */
  {
    HmmvQemuDirtyStats stats;

    ck_assert(hmmv_qemu_dirty_tracker_get_stats(run.tracker, &stats));
    printf("# write source: %s\n", stats.source);
    ck_assert_str_eq(stats.source, !kvm ? "tcg"
                                   : g_strcmp0(accel_mode, "kvm") == 0 ? "kvm-dirty-ring"
                                                                       : "kvm-dirty-log");
  }
  for (guint k = 0; k < phases; k++) {
    g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;
    g_autofree char *what = g_strdup_printf("%s phase %u", accel_mode, k);

    run_phase(&run, k, expected);
    ck_assert_uint_eq(harvest(&run), 1);
    got = harvested_pfns(&run, BASE_PFN, SPAN);
    assert_exact(what, expected, got);
  }
  run_stop(&run);
}
END_TEST

/* A consumer killed without hmmv-stop (hmmvd under SIGKILL) leaves the export active in
 * QEMU; the next one takes it over and is exact, instead of failing with "the export is
 * already active" and leaving the VM unmanaged (the testbed's fault test saw that). */
START_TEST(test_takeover_of_an_abandoned_export)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *second_sock = NULL;
  g_autofree char *second_arg = NULL;
  g_autofree char *append = g_strdup_printf("phases=2 pages=300 pattern=random span=%u "
                                            "seed=11 wait=1", SPAN);
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  g_autofree char *dir = g_dir_make_tmp("hmmv-takeover-XXXXXX", &error);
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  HmmvTracker *second;
  HmmvQmp *qmp;
  Run run;

  ck_assert_msg(dir != NULL, "%s", error ? error->message : "");
  second_sock = g_build_filename(dir, "qmp2.sock", NULL);
  second_arg = g_strdup_printf("unix:%s,server=on,wait=off", second_sock);
  {
    const char *extra[] = { "-qmp", second_arg, NULL };

    run_start(&run, append, 0, extra);   /* the first consumer: its export is active */
  }
  run_phase(&run, 0, expected);
  /* The second consumer, on QEMU's second monitor, while the first never stopped. */
  qmp = hmmv_qmp_connect_unix(second_sock, 5000, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  second = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert_msg(second != NULL, "%s", error ? error->message : "");
  ck_assert_msg(hmmv_tracker_start(second, run.vm, &error), "took over: %s",
                error ? error->message : "");
  g_hash_table_remove_all(expected);
  run_phase(&run, 1, expected);
  hmmv_access_clear(run.acc);
  ck_assert_msg(hmmv_tracker_harvest(second, run.vm, run.acc, &error), "%s",
                error ? error->message : "");
  got = harvested_pfns(&run, BASE_PFN, SPAN);
  assert_exact("after takeover, phase 1", expected, got);
  hmmv_tracker_free(second);   /* hmmv-stop */
  run_stop(&run);              /* its hmmv-stop finds nothing active: harmless */
  g_unlink(second_sock);
  g_rmdir(dir);
}
END_TEST

/* Writes never stop while QEMU publishes (its timer, every 1 ms) and the daemon harvests
 * (as fast as it can): each phase writes the same pages over and over, so publications land
 * between writes to pages already reported, which is where a late KVM log clear or an early
 * TLB reset loses writes. The union of the harvests taken during a phase and right after it
 * must be exactly the phase's pages, phase after phase (pages recur across phases, so a page
 * left unarmed by one phase shows up missing in a later one). Each harvest while the guest
 * writes waits for two publications since the one before (counted with query-hmmv), so the
 * harvests merge more than one publication each however late a loaded host runs QEMU's
 * timer; before, that rested on a 1 ms timer against 5 ms polls. */
START_TEST(test_continuous_union)
{
  gboolean kvm = g_str_has_prefix(accel_mode, "kvm");
  guint phases = kvm ? 2 : 6;
  guint passes = kvm ? 20 : 4000;
  g_autofree char *append = g_strdup_printf("phases=%u pages=256 pattern=random span=%u "
                                            "seed=17 passes=%u wait=1", phases, SPAN, passes);
  guint64 total_harvests = 0, total_merged = 0;
  Run run;

  run_start(&run, append, 1, NULL);
  harvest(&run);   /* boot noise */
  for (guint k = 0; k < phases; k++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autofree char *prefix_wait = g_strdup_printf("HMMV-WAIT phase %u", k);
    g_autofree char *wait = hmmv_qemu_proc_expect(run.proc, prefix_wait, SERIAL_TIMEOUT_MS);
    g_autofree char *what = g_strdup_printf("%s continuous phase %u (%u passes)", accel_mode,
                                            k, passes);
    gint64 deadline = g_get_monotonic_time() + (gint64)SERIAL_TIMEOUT_MS * 1000;
    guint harvests = 0;
    gboolean ended = FALSE;
    guint64 last = harvested_up_to(&run);

    ck_assert_msg(wait != NULL, "no %s", prefix_wait);
    ck_assert(hmmv_qemu_proc_send(run.proc, "g", &error));
    while (!ended) {
      GHashTableIter iter;
      gpointer key;
      g_autoptr(GHashTable) part = NULL;

      /* Drain what the guest prints until it ends the phase or QEMU published twice since
       * the last harvest. */
      while (!ended && published(&run) < last + 2) {
        g_autofree char *line = hmmv_qemu_proc_read_line(run.proc, 1);
        g_auto(GStrv) words = NULL;

        ck_assert_msg(g_get_monotonic_time() < deadline, "phase %u did not end", k);
        if (line == NULL)
          continue;
        if (g_str_has_prefix(line, "HMMV-PHASE-END"))
          ended = TRUE;
        if (g_str_has_prefix(line, "HMMV-PHASE-PAGES")) {
          words = g_strsplit(line, " ", -1);
          for (guint i = 2; words[i] != NULL; i++)
            if (words[i][0] != '\0')
              g_hash_table_add(expected,
                               GSIZE_TO_POINTER(g_ascii_strtoull(words[i], NULL, 16)));
        }
      }
      if (ended)
        break;   /* the harvest after the end, below, collects the rest */
      total_merged += harvest(&run);
      last = harvested_up_to(&run);
      harvests++;
      part = harvested_pfns(&run, BASE_PFN, SPAN);
      g_hash_table_iter_init(&iter, part);
      while (g_hash_table_iter_next(&iter, &key, NULL))
        g_hash_table_add(got, key);
    }
    /* The writes are over: one more harvest collects the last interval. */
    {
      GHashTableIter iter;
      gpointer key;
      g_autoptr(GHashTable) part = NULL;

      total_merged += harvest(&run);
      harvests++;
      part = harvested_pfns(&run, BASE_PFN, SPAN);
      g_hash_table_iter_init(&iter, part);
      while (g_hash_table_iter_next(&iter, &key, NULL))
        g_hash_table_add(got, key);
    }
    total_harvests += harvests;
    printf("# %s: %u harvests while the guest wrote\n", what, harvests);
    assert_exact(what, expected, got);
  }
  printf("# %u phases: %" G_GUINT64_FORMAT " harvests, %" G_GUINT64_FORMAT
         " publications merged into them\n", phases, total_harvests, total_merged);
  /* Publications really happened while the guest wrote (more than one per harvest). */
  ck_assert_uint_gt(total_merged, total_harvests);
  run_stop(&run);
}
END_TEST

/* QEMU publishes on its own timer; the daemon harvests only after several phases: the
 * harvest holds their union and says how many intervals it merged. QEMU publishes at least
 * once after the first harvest and after each phase (counted with query-hmmv, not 150 ms
 * sleeps that a loaded host's late timer did not fill), so it merged at least 4. */
START_TEST(test_late_harvest_loses_nothing)
{
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  Run run;
  guint64 merged;

  run_start(&run, "phases=3 pages=200 pattern=random span=2048 seed=11 wait=1", 50, NULL);
  wait_publication(&run);
  harvest(&run);
  wait_publication(&run);
  for (guint k = 0; k < 3; k++) {
    run_phase(&run, k, expected);
    wait_publication(&run);
  }
  merged = harvest(&run);
  got = harvested_pfns(&run, BASE_PFN, SPAN);
  printf("# late harvest merged %" G_GUINT64_FORMAT " publications\n", merged);
  ck_assert_uint_ge(merged, 4);
  assert_exact("late harvest of 3 phases", expected, got);
  run_stop(&run);
}
END_TEST

/* QEMU dying under the tracker is an error of that VM, never a crash. */
START_TEST(test_qemu_dies)
{
  g_autoptr(GError) error = NULL;
  Run run;

  run_start(&run, "phases=1 pages=10 wait=1", 0, NULL);
  hmmv_qemu_proc_kill(run.proc);
  hmmv_access_clear(run.acc);
  ck_assert(!hmmv_tracker_harvest(run.tracker, run.vm, run.acc, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE) ||
                  g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO), "%s", error->message);
  printf("# harvest after QEMU died: %s\n", error->message);
  g_clear_error(&error);

  /* Same with QEMU's own timer: the harvest notices the pid is gone. */
  run_stop(&run);
  run_start(&run, "phases=1 pages=10 wait=1", 100, NULL);
  hmmv_qemu_proc_kill(run.proc);
  ck_assert(!hmmv_tracker_harvest(run.tracker, run.vm, run.acc, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE), "%s", error->message);
  run_stop(&run);
}
END_TEST

static JsonNode *
qmp(Run *run, const char *command, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  JsonNode *ret = hmmv_qmp_execute(hmmv_qemu_dirty_tracker_get_qmp(run->tracker), command,
                                   args, &error);

  ck_assert_msg(ret != NULL, "%s: %s", command, error ? error->message : "");
  return ret;
}

static void
pmemsave(HmmvQmp *client, const char *path)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = NULL;

  json_object_set_int_member(args, "val", (gint64)BASE_PFN << HMMV_PAGE_SHIFT);
  json_object_set_int_member(args, "size", (gint64)SPAN << HMMV_PAGE_SHIFT);
  json_object_set_string_member(args, "filename", path);
  ret = hmmv_qmp_execute(client, "pmemsave", args, &error);
  ck_assert_msg(ret != NULL, "%s", error ? error->message : "");
}

/* Live migration to a file while tracking runs: both keep working, and the VM restored from
 * the file has the same memory as the source. */
START_TEST(test_migration_while_tracking)
{
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autoptr(HmmvQemuProc) dest = NULL;
  g_autoptr(HmmvQmp) dest_qmp = NULL;
  g_autofree char *image = NULL, *uri = NULL, *src_dump = NULL, *dst_dump = NULL;
  g_autofree char *src_bytes = NULL, *dst_bytes = NULL;
  gsize src_len = 0, dst_len = 0;
  const char *const incoming[] = { "-incoming", "defer", NULL };
  Run run;

  run_start(&run, "phases=2 pages=200 pattern=random span=2048 seed=5 wait=1", 0, NULL);
  image = g_build_filename(hmmv_qemu_proc_get_dir(run.proc), "migration.img", NULL);
  harvest(&run);
  run_phase(&run, 0, expected);

  uri = g_strdup_printf("exec:cat > %s", image);
  json_object_set_string_member(args, "uri", uri);
  ret = qmp(&run, "migrate", args);
  migrated(hmmv_qemu_dirty_tracker_get_qmp(run.tracker));
  /* Tracking kept working through the migration. */
  ck_assert_uint_ge(harvest(&run), 1);
  got = harvested_pfns(&run, BASE_PFN, SPAN);
  assert_exact("phase 0 across a migration", expected, got);

  /* The destination restores the image and has the source's memory. */
  dest = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128,
                              "phases=2 pages=200 pattern=random span=2048 seed=5 wait=1",
                              incoming, &error);
  ck_assert(dest != NULL);
  dest_qmp = hmmv_qemu_proc_qmp(dest, &error);
  ck_assert_msg(dest_qmp != NULL, "%s", error ? error->message : "");
  {
    g_autoptr(JsonObject) in_args = json_object_new();
    g_autofree char *in_uri = g_strdup_printf("exec:cat %s", image);
    g_autoptr(JsonNode) in_ret = NULL;

    json_object_set_string_member(in_args, "uri", in_uri);
    in_ret = hmmv_qmp_execute(dest_qmp, "migrate-incoming", in_args, &error);
    ck_assert_msg(in_ret != NULL, "%s", error ? error->message : "");
  }
  migrated(dest_qmp);
  src_dump = g_build_filename(hmmv_qemu_proc_get_dir(run.proc), "src.mem", NULL);
  dst_dump = g_build_filename(hmmv_qemu_proc_get_dir(dest), "dst.mem", NULL);
  pmemsave(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), src_dump);
  pmemsave(dest_qmp, dst_dump);
  ck_assert(g_file_get_contents(src_dump, &src_bytes, &src_len, NULL));
  ck_assert(g_file_get_contents(dst_dump, &dst_bytes, &dst_len, NULL));
  ck_assert_uint_eq(src_len, (gsize)SPAN << HMMV_PAGE_SHIFT);
  ck_assert_uint_eq(src_len, dst_len);
  ck_assert_msg(memcmp(src_bytes, dst_bytes, src_len) == 0, "migrated memory differs");
  printf("# migration to a file while tracking: %" G_GSIZE_FORMAT " bytes of the test window "
         "identical on the destination\n", src_len);
  g_unlink(image);
  run_stop(&run);
}
END_TEST


/* Memory hot-plugged under the tracker: the next harvest says the layout changed; a VM
 * rebuilt from QEMU's new layout has the DIMM's range, and tracking restarted on it sees
 * the guest's writes again. */
START_TEST(test_layout_change)
{
  const char *const dimm_ram[] = { "-m", "128,slots=2,maxmem=512M", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  g_autoptr(JsonObject) obj = json_object_new();
  g_autoptr(JsonObject) dev = json_object_new();
  g_autoptr(JsonNode) r1 = NULL, r2 = NULL;
  guint regions_before;
  Run run;

  run_start(&run, "phases=1 pages=100 pattern=random span=2048 seed=3 wait=1", 0, dimm_ram);
  regions_before = hmmv_vm_get_nr_regions(run.vm);
  harvest(&run);
  json_object_set_string_member(obj, "qom-type", "memory-backend-ram");
  json_object_set_string_member(obj, "id", "hotmem");
  json_object_set_int_member(obj, "size", 64 << 20);
  r1 = qmp(&run, "object-add", obj);
  json_object_set_string_member(dev, "driver", "pc-dimm");
  json_object_set_string_member(dev, "id", "hotdimm");
  json_object_set_string_member(dev, "memdev", "hotmem");
  r2 = qmp(&run, "device_add", dev);

  hmmv_access_clear(run.acc);
  ck_assert(!hmmv_tracker_harvest(run.tracker, run.vm, run.acc, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED), "%s",
                error->message);
  printf("# after a DIMM hot-plug: %s\n", error->message);
  g_clear_error(&error);

  /* What the daemon does: rebuild the VM from the new layout and restart tracking. */
  hmmv_vm_free(run.vm);
  run.vm = hmmv_qemu_vm_new(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), "guest", &error);
  ck_assert_msg(run.vm != NULL, "%s", error ? error->message : "");
  ck_assert_uint_gt(hmmv_vm_get_nr_regions(run.vm), regions_before);
  ck_assert_msg(hmmv_tracker_start(run.tracker, run.vm, &error), "%s",
                error ? error->message : "");
  hmmv_access_free(run.acc);
  run.acc = hmmv_access_new(hmmv_vm_get_nr_pages(run.vm), &error);
  harvest(&run);
  run_phase(&run, 0, expected);
  harvest(&run);
  got = harvested_pfns(&run, BASE_PFN, SPAN);
  assert_exact("after restarting on the new layout", expected, got);
  run_stop(&run);
}
END_TEST

/* With dirtylimit in service (KVM dirty ring only), hmmv-start refuses, saying why, and the
 * tracker reports that error instead of tracking half-blind. */
START_TEST(test_refuses_with_dirtylimit)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  g_autofree char *ready = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  HmmvQmp *qmp;

  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "kvm,dirty-ring-size=4096", 128,
                              "phases=1 pages=16 wait=1", NULL, &error);
  ck_assert(proc != NULL);
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert(ready != NULL);
  qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  json_object_set_int_member(args, "dirty-rate", 200);
  ret = hmmv_qmp_execute(qmp, "set-vcpu-dirty-limit", args, &error);
  ck_assert_msg(ret != NULL, "set-vcpu-dirty-limit: %s", error ? error->message : "");
  vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert(vm != NULL);
  tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert(tracker != NULL);
  ck_assert(!hmmv_tracker_start(tracker, vm, &error));
  ck_assert_msg(strstr(error->message, "dirty") != NULL, "%s", error->message);
  printf("# hmmv-start with dirtylimit in service: %s\n", error->message);
}
END_TEST

/* Coexistence, the other way round: while hmmv tracks, set-vcpu-dirty-limit refuses and says
 * why (checked before its KVM-only test, so TCG shows it too). */
START_TEST(test_dirtylimit_refused_while_tracking)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  Run run;

  run_start(&run, "phases=1 pages=16 wait=1", 0, NULL);
  json_object_set_int_member(args, "dirty-rate", 200);
  ret = hmmv_qmp_execute(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), "set-vcpu-dirty-limit",
                         args, &error);
  ck_assert(ret == NULL);
  ck_assert_msg(strstr(error->message, "hmmv") != NULL, "%s", error->message);
  printf("# set-vcpu-dirty-limit while hmmv tracks: %s\n", error->message);
  run_stop(&run);
}
END_TEST

/* A device that blocks migration (an NVMe controller: its state cannot be migrated) blocks
 * dirty logging too, since a device that cannot log its DMA would make the log lie (a vhost
 * backend without LOG_ALL aborted QEMU): hmmv-start fails and says which device. */
START_TEST(test_refuses_with_migration_blocker)
{
  const char *const nvme[] = { "-device", "nvme,serial=hmmv0", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *ready = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  HmmvQmp *qmp;

  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128, "phases=1 pages=16 wait=1",
                              nvme, &error);
  ck_assert_msg(proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert(ready != NULL);
  qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  vm = hmmv_qemu_vm_new(qmp, "guest", &error);
  ck_assert(vm != NULL);
  tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, &error);
  ck_assert(tracker != NULL);
  ck_assert(!hmmv_tracker_start(tracker, vm, &error));
  ck_assert_msg(strstr(error->message, "migration is blocked") != NULL, "%s", error->message);
  printf("# hmmv-start with an NVMe controller: %s\n", error->message);
  ck_assert_int_eq(hmmv_qemu_proc_wait(proc, 0), -1);   /* QEMU still runs */
}
END_TEST

/* device_add of nvme (an NVMe controller, non-migratable) with id; NULL, or the error. */
static GError *
add_nvme(HmmvQmp *client, const char *id)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  GError *error = NULL;

  json_object_set_string_member(args, "driver", "nvme");
  json_object_set_string_member(args, "serial", id);
  json_object_set_string_member(args, "id", id);
  ret = hmmv_qmp_execute(client, "device_add", args, &error);
  return error;
}

/* A blocker that appears after hmmv-start (issue 9, E4c): while the export runs, QEMU refuses
 * it as it refuses one while a migration runs. device_add of an NVMe controller fails with an
 * error naming hmmv; the guest and the export keep running (the next phase is harvested
 * exactly); after hmmv-stop the same device_add works, and hmmv-start then refuses as in
 * test_refuses_with_migration_blocker. */
START_TEST(test_blocker_after_start_refused)
{
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQmp) client = NULL;
  g_autoptr(HmmvTracker) again = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  Run run;

  run_start(&run, "phases=2 pages=200 pattern=random span=2048 seed=9 wait=1", 0, NULL);
  harvest(&run);
  error = add_nvme(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), "nvme-late");
  ck_assert_msg(error != NULL, "device_add of an NVMe controller succeeded while hmmv tracks");
  ck_assert_msg(strstr(error->message, "hmmv") != NULL, "%s", error->message);
  printf("# device_add nvme while hmmv tracks: %s\n", error->message);
  g_clear_error(&error);
  ck_assert_int_eq(hmmv_qemu_proc_wait(run.proc, 0), -1);   /* QEMU still runs */

  /* The guest and the export go on: the next phase is harvested exactly. */
  run_phase(&run, 0, expected);
  ck_assert_uint_ge(harvest(&run), 1);
  got = harvested_pfns(&run, BASE_PFN, SPAN);
  assert_exact("phase 0 after the refused device_add", expected, got);

  /* After hmmv-stop the same hot-plug works; then the blocker keeps hmmv-start out. */
  hmmv_tracker_free(g_steal_pointer(&run.tracker));
  client = hmmv_qemu_proc_qmp(run.proc, &error);
  ck_assert_msg(client != NULL, "%s", error ? error->message : "");
  error = add_nvme(client, "nvme-late");
  ck_assert_msg(error == NULL, "device_add after hmmv-stop: %s", error ? error->message : "");
  printf("# device_add nvme after hmmv-stop: ok\n");
  again = hmmv_qemu_dirty_tracker_new(g_steal_pointer(&client), &options, &error);
  ck_assert_msg(again != NULL, "%s", error ? error->message : "");
  ck_assert(!hmmv_tracker_start(again, run.vm, &error));
  ck_assert_msg(strstr(error->message, "migration is blocked") != NULL, "%s", error->message);
  printf("# hmmv-start after the hot-plug: %s\n", error->message);
  g_clear_pointer(&again, hmmv_tracker_free);
  run_stop(&run);
}
END_TEST

static Suite *
qemu_dirty_suite(void)
{
  Suite *suite = suite_create("qemu-dirty");
  TCase *tc = tcase_create(accel_mode);

  /* KVM on this host emulates guests ~100x slower than TCG. */
  tcase_set_timeout(tc, g_str_has_prefix(accel_mode, "kvm") ? 600 : 180);
  tcase_add_test(tc, test_phases_exact);
  tcase_add_test(tc, test_continuous_union);
  if (g_strcmp0(accel_mode, "kvm") == 0)
    tcase_add_test(tc, test_refuses_with_dirtylimit);
  if (g_strcmp0(accel_mode, "tcg") == 0) {
    tcase_add_test(tc, test_late_harvest_loses_nothing);
    tcase_add_test(tc, test_takeover_of_an_abandoned_export);
    tcase_add_test(tc, test_qemu_dies);
    tcase_add_test(tc, test_migration_while_tracking);
    tcase_add_test(tc, test_layout_change);
    tcase_add_test(tc, test_dirtylimit_refused_while_tracking);
    tcase_add_test(tc, test_refuses_with_migration_blocker);
    tcase_add_test(tc, test_blocker_after_start_refused);
  }
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(int argc, char **argv)
{
  g_autofree char *why = NULL;

  if (argc > 1)
    accel_mode = argv[1];
  if (!hmmv_harness_prepare("needs root: the tracker maps regions QEMU created",
                            &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (g_str_has_prefix(accel_mode, "kvm") && !hmmv_harness_kvm_usable(&why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(qemu_dirty_suite());
}
