/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Cost of the QEMU write export, measured on the patched QEMU (TCG unless --accel) with the
 * test guest:
 *
 *  1. one publication in QEMU (hmmv-sync's duration) and one harvest in the tracker, per GiB
 *     of guest RAM, with a guest that writes little (an 8 MiB hot set) and one that is idle;
 *  2. the guest's slowdown with tracking on (QEMU publishing every second, the tracker
 *     harvesting every second) vs off: the same workload (a fixed number of writes) timed from
 *     its BEGIN to its END line in QEMU's CPU time, runs alternating off/on, ratio of the
 *     medians.
 *
 * With --sizes GIB[,GIB...] (issue 9: 64, 256 and 1024 GiB), only 1. at each guest RAM size,
 * plus hmmv-start's QMP round trip (QEMU allocates the bitmaps and the region under the BQL).
 * Guest RAM is a memory-backend-ram with reserve=off: QEMU maps it with MAP_NORESERVE, so a
 * 1 TiB guest that touches a few MiB starts on a 24 GiB host.
 *
 * --accel tcg|kvm|kvm-log (before --sizes or --quick; default tcg): the accelerator, as the
 * integration suites name it: kvm is KVM with the dirty ring (dirty-ring-size=4096), kvm-log
 * KVM with the dirty log (KVM_GET_DIRTY_LOG). Under KVM a publication also syncs KVM's log (a
 * full-slot GET_DIRTY_LOG, or reaping the rings after kicking every vCPU), which TCG does
 * not have. Without a usable /dev/kvm a KVM mode exits 77 and says why.
 *
 * Needs HMMV_QEMU and HMMV_TEST_GUEST (as the integration suites). Prints a table, then
 * key=value lines.
 */
#include "../integration/qemu-harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RAM_MIB 4096
#define SYNC_ROUNDS 20
#define TIMEOUT_MS 120000

static char *qemu_path, *guest_path;
static const char *accel_mode = "tcg";

typedef struct {
  HmmvQemuProc *proc;
  HmmvVm *vm;
  HmmvTracker *tracker;
  HmmvAccess *acc;
  gint64 start_us;   /* hmmv_tracker_start(): hmmv-start's round trip and the region's mapping */
} Session;

/* Guest RAM as a backend QEMU maps without reserving it (sizes past the host's memory). */
static GStrv
big_ram_args(guint ram_mib)
{
  GStrv args = g_new0(char *, 7);

  args[0] = g_strdup("-object");
  args[1] = g_strdup_printf("memory-backend-ram,id=bench-ram,size=%uM,reserve=off", ram_mib);
  args[2] = g_strdup("-machine");
  args[3] = g_strdup("memory-backend=bench-ram");
  /* Above 4 GiB the RAM of a 1 TiB pc guest ends past 2^40: more physical address bits. */
  args[4] = g_strdup("-cpu");
  args[5] = g_strdup("qemu64,phys-bits=42");
  return args;
}

static gboolean
session_start(Session *s, guint ram_mib, const char *append, gboolean track, guint interval_ms,
              GError **error)
{
  g_autofree char *ready = NULL;
  g_auto(GStrv) extra = ram_mib > RAM_MIB ? big_ram_args(ram_mib) : NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = interval_ms };
  HmmvQmp *qmp;
  gint64 t0;

  memset(s, 0, sizeof(*s));
  s->proc = hmmv_qemu_proc_start(qemu_path, guest_path, hmmv_harness_accel(accel_mode), ram_mib,
                                 append,
                                 (const char *const *)extra, error);
  if (s->proc == NULL)
    return FALSE;
  ready = hmmv_qemu_proc_expect(s->proc, "HMMV-GUEST-READY", TIMEOUT_MS);
  if (ready == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "guest did not start");
    return FALSE;
  }
  if (!track)
    return TRUE;
  qmp = hmmv_qemu_proc_qmp(s->proc, error);
  if (qmp == NULL)
    return FALSE;
  s->vm = hmmv_qemu_vm_new(qmp, "bench", error);
  if (s->vm == NULL) {
    hmmv_qmp_free(qmp);
    return FALSE;
  }
  s->tracker = hmmv_qemu_dirty_tracker_new(qmp, &options, error);
  t0 = g_get_monotonic_time();
  if (s->tracker == NULL || !hmmv_tracker_start(s->tracker, s->vm, error))
    return FALSE;
  s->start_us = g_get_monotonic_time() - t0;
  s->acc = hmmv_access_new(hmmv_vm_get_nr_pages(s->vm), error);
  return s->acc != NULL;
}

static void
session_stop(Session *s)
{
  hmmv_tracker_free(s->tracker);
  hmmv_vm_free(s->vm);
  hmmv_access_free(s->acc);
  hmmv_qemu_proc_free(s->proc);
}

/* CPU seconds QEMU (all threads) has used: on a shared machine far steadier than wall time,
 * and under TCG it is the guest's run time. */
static double
qemu_cpu_seconds(HmmvQemuProc *proc)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", hmmv_qemu_proc_get_pid(proc));
  g_autofree char *text = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after_comm;

  if (!g_file_get_contents(path, &text, NULL, NULL) ||
      (after_comm = strrchr(text, ')')) == NULL)
    return -1;
  /* Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15. */
  fields = g_strsplit(after_comm + 2, " ", -1);
  if (g_strv_length(fields) < 13)
    return -1;
  return (double)(g_ascii_strtoull(fields[11], NULL, 10) + g_ascii_strtoull(fields[12], NULL, 10)) /
         (double)sysconf(_SC_CLK_TCK);
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double
median(double *v, guint n)
{
  qsort(v, n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Publication (QEMU) and harvest (tracker) cost per GiB, median of SYNC_ROUNDS. */
static gboolean
measure_sync(guint ram_mib, const char *append, double *publish_us_gib, double *harvest_us_gib,
             double *dirty_pages, double *start_ms, GError **error)
{
  Session s;
  double publish[SYNC_ROUNDS], harvest[SYNC_ROUNDS], dirty[SYNC_ROUNDS];
  double gib = (double)ram_mib / 1024;

  if (!session_start(&s, ram_mib, append, TRUE, 0, error)) {
    session_stop(&s);
    return FALSE;
  }
  for (guint i = 0; i < SYNC_ROUNDS + 2; i++) {
    HmmvQemuDirtyStats stats;

    g_usleep(100000);
    hmmv_access_clear(s.acc);
    /* The tracker's harvest calls hmmv-sync first (interval 0): both are timed. */
    if (!hmmv_tracker_harvest(s.tracker, s.vm, s.acc, error)) {
      session_stop(&s);
      return FALSE;
    }
    hmmv_qemu_dirty_tracker_get_stats(s.tracker, &stats);
    if (i < 2)
      continue;   /* boot and the first full publication */
    publish[i - 2] = (double)stats.last_publish_ns / 1000 / gib;
    harvest[i - 2] = (double)(stats.last_harvest_ns) / 1000 / gib;
    dirty[i - 2] = (double)hmmv_bitmap_count(s.acc->writes, s.acc->nr_words);
  }
  *publish_us_gib = median(publish, SYNC_ROUNDS);
  *harvest_us_gib = median(harvest, SYNC_ROUNDS);
  *dirty_pages = median(dirty, SYNC_ROUNDS);
  if (start_ms != NULL)
    *start_ms = (double)s.start_us / 1000;
  session_stop(&s);
  return TRUE;
}

#define BUSY_APPEND "mode=workload hot_mib=8 cold_mib=0 hot_ratio=100 report_every=0"
#define IDLE_APPEND "phases=1 pages=1 wait=1"

/* --sizes: publication and harvest per GiB, idle and busy, at each guest RAM size. */
static int
run_sizes(const char *list)
{
  g_auto(GStrv) sizes = g_strsplit(list, ",", -1);
  g_autoptr(GError) error = NULL;

  printf("accel %s\n", accel_mode);
  printf("%-10s %-28s %14s %14s %12s %14s\n", "guest RAM", "guest", "publish us/GiB",
         "harvest us/GiB", "dirty pages", "hmmv-start ms");
  for (guint i = 0; sizes[i] != NULL; i++) {
    guint64 gib = 0;
    double pub[2], harv[2], dirty[2], start[2];
    char label[32];

    if (!g_ascii_string_to_unsigned(sizes[i], 10, 1, 4096, &gib, &error)) {
      fprintf(stderr, "bench-qemu-dirty: --sizes: %s\n", error->message);
      return EXIT_FAILURE;
    }
    for (guint busy = 0; busy < 2; busy++) {
      if (!measure_sync((guint)gib * 1024, busy ? BUSY_APPEND : IDLE_APPEND, &pub[busy],
                        &harv[busy], &dirty[busy], &start[busy], &error)) {
        fprintf(stderr, "bench-qemu-dirty: %" G_GUINT64_FORMAT " GiB: %s\n", gib,
                error->message);
        return EXIT_FAILURE;
      }
      g_snprintf(label, sizeof(label), "%" G_GUINT64_FORMAT " GiB", gib);
      printf("%-10s %-28s %14.2f %14.2f %12.0f %14.1f\n", label, busy ? "writing an 8 MiB set" : "idle", pub[busy], harv[busy], dirty[busy],
             start[busy]);
      fflush(stdout);
    }
    printf("publish_us_per_gib_idle_%sg=%.2f\npublish_us_per_gib_busy_%sg=%.2f\n", sizes[i],
           pub[0], sizes[i], pub[1]);
    printf("harvest_us_per_gib_idle_%sg=%.2f\nharvest_us_per_gib_busy_%sg=%.2f\n", sizes[i],
           harv[0], sizes[i], harv[1]);
    printf("hmmv_start_ms_%sg=%.1f\n", sizes[i], MIN(start[0], start[1]));
  }
  return EXIT_SUCCESS;
}

/* QEMU CPU seconds the guest's workload takes, with or without tracking at 1 s (QEMU's own
 * publications are inside QEMU, so they count). */
static gboolean
time_workload(gboolean track, guint64 writes, double *seconds, GError **error)
{
  g_autofree char *append = g_strdup_printf("mode=workload hot_mib=8 cold_mib=56 hot_ratio=90 "
                                            "writes=%" G_GUINT64_FORMAT " report_every=0",
                                            writes);
  g_autofree char *begin = NULL, *end = NULL;
  Session s;
  gint64 t0, next_harvest;
  double cpu0;

  if (!session_start(&s, 256, append, track, 1000, error)) {
    session_stop(&s);
    return FALSE;
  }
  begin = hmmv_qemu_proc_expect(s.proc, "HMMV-WORKLOAD-BEGIN", TIMEOUT_MS);
  t0 = g_get_monotonic_time();
  cpu0 = qemu_cpu_seconds(s.proc);
  next_harvest = t0 + G_USEC_PER_SEC;
  while (begin != NULL && end == NULL) {
    end = hmmv_qemu_proc_expect(s.proc, "HMMV-WORKLOAD-END", 200);
    if (track && g_get_monotonic_time() >= next_harvest) {
      hmmv_access_clear(s.acc);
      if (!hmmv_tracker_harvest(s.tracker, s.vm, s.acc, error)) {
        session_stop(&s);
        return FALSE;
      }
      next_harvest += G_USEC_PER_SEC;
    }
    if (g_get_monotonic_time() - t0 > (gint64)TIMEOUT_MS * 1000)
      break;
  }
  *seconds = qemu_cpu_seconds(s.proc) - cpu0;
  session_stop(&s);
  if (begin == NULL || end == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "the workload did not finish");
    return FALSE;
  }
  return TRUE;
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *why = NULL;
  gboolean quick;
  guint rounds;
  guint64 writes;
  double busy_pub, busy_harv, busy_dirty, idle_pub, idle_harv, idle_dirty;
  double off[5], on[5];

  if (argc > 2 && strcmp(argv[1], "--accel") == 0) {
    accel_mode = argv[2];
    if (strcmp(accel_mode, "tcg") != 0 && strcmp(accel_mode, "kvm") != 0 &&
        strcmp(accel_mode, "kvm-log") != 0) {
      fprintf(stderr, "bench-qemu-dirty: --accel: tcg, kvm or kvm-log, not '%s'\n",
              accel_mode);
      return EXIT_FAILURE;
    }
    argc -= 2;
    argv += 2;
  }
  quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  rounds = quick ? 1 : 5;
  writes = quick ? 2000000 : 8000000;
  if (!hmmv_harness_find(&qemu_path, &guest_path, &why)) {
    printf("bench-qemu-dirty: skipped: %s\n", why);
    return 77;
  }
  if (strcmp(accel_mode, "tcg") != 0 && !hmmv_harness_kvm_usable(&why)) {
    printf("bench-qemu-dirty: skipped: --accel %s needs KVM: %s\n", accel_mode, why);
    return 77;
  }
  if (argc > 2 && strcmp(argv[1], "--sizes") == 0)
    return run_sizes(argv[2]);
  if (!measure_sync(RAM_MIB, BUSY_APPEND, &busy_pub, &busy_harv, &busy_dirty, NULL, &error) ||
      !measure_sync(RAM_MIB, IDLE_APPEND, &idle_pub, &idle_harv, &idle_dirty, NULL, &error))
    goto fail;
  printf("4 GiB guest (%s), 100 ms apart\n", accel_mode);
  printf("%-34s %14s %14s %12s\n", "", "publish us/GiB",
         "harvest us/GiB", "dirty pages");
  printf("%-34s %14.1f %14.1f %12.0f\n", "idle guest", idle_pub, idle_harv, idle_dirty);
  printf("%-34s %14.1f %14.1f %12.0f\n", "guest writing an 8 MiB set", busy_pub, busy_harv,
         busy_dirty);

  for (guint r = 0; r < rounds; r++) {
    /* Alternate which goes first, so drift on a shared machine does not favour one. */
    gboolean on_first = r % 2 == 1;

    if (!time_workload(on_first, writes, on_first ? &on[r] : &off[r], &error) ||
        !time_workload(!on_first, writes, on_first ? &off[r] : &on[r], &error))
      goto fail;
    printf("workload of %" G_GUINT64_FORMAT " writes: QEMU CPU off %.2f s, tracked at 1 s "
           "%.2f s\n",
           writes, off[r], on[r]);
  }
  {
    double m_off = median(off, rounds), m_on = median(on, rounds);

    printf("guest slowdown with tracking at 1 s: %.3fx (median of %u pairs)\n", m_on / m_off,
           rounds);
    printf("publish_us_per_gib_idle=%.2f\nharvest_us_per_gib_idle=%.2f\n", idle_pub, idle_harv);
    printf("publish_us_per_gib_busy=%.2f\nharvest_us_per_gib_busy=%.2f\n", busy_pub, busy_harv);
    printf("guest_slowdown_tracking_1s=%.4f\n", m_on / m_off);
  }
  return EXIT_SUCCESS;

fail:
  fprintf(stderr, "bench-qemu-dirty: %s\n", error ? error->message : "failed");
  return EXIT_FAILURE;
}
