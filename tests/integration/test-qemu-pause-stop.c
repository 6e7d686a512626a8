/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A QEMU that stops answering QMP during the qemu-dirty tracker's pause cycle (issue 8), on
 * the pause bed (pause-bed.h: the patched QEMU under TCG, the test guest writing phase by
 * phase):
 *
 *   stopped   a QEMU stopped (SIGSTOP) while paused fails the next harvest (its hmmv-sync
 *             misses the deadline), and a resume it does not answer fails the harvest
 *             after it: as a missed hmmv-sync does; once it runs again (SIGCONT) and its
 *             late reply came, the tracker goes on with QEMU's real pause state
 *   missed    a hmmv-pause that misses its deadline (QEMU stopped right before it) is done
 *             by QEMU once it runs again, unknown to the tracker: the next harvest takes
 *             hmmv-sync's word (paused), so FINE resumes QEMU and the writes after show
 *
 * Skips (77) as test-qemu-pause.c does.
 */
#include "pause-bed.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* Until the socket transport has every reply due (the late one of a command that missed its
 * deadline), read without waiting; 60 s at most (liveness). */
static void
catch_up(HmmvQmp *qmp)
{
  g_autoptr(GError) error = NULL;
  guint polls = 0;

  while (!hmmv_qmp_catch_up(qmp, &error)) {
    ck_assert_msg(error == NULL, "%s", error->message);
    ck_assert_msg(++polls < 3000, "QEMU never answered the late command");
    g_usleep(20 * 1000);
  }
  printf("# caught up after %u polls\n", polls);
}

/* A QEMU that stops answering (SIGSTOP) while its export is paused: the tracker must find it
 * on the next harvest, as it does an unpaused one (its hmmv-sync misses the deadline), and a
 * resume it does not answer (set_watch FINE) must fail the harvest after it the same way.
 * Before, a paused harvest only checked kill(pid, 0), which a stopped QEMU passes, and a
 * missed hmmv-resume was only a warning: the VM was never reported not answering. Counted in
 * harvests: each of the two must fail. */
START_TEST(test_stopped)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *append =
    g_strdup_printf("phases=4 pages=300 pattern=random base=16M span=%u seed=34 wait=1", SPAN);
  HmmvQemuDirtyOptions options = { .interval_ms = 0, .pause_when_coarse = TRUE };
  gboolean ok;
  int pid;
  Pause p;

  pause_bed_boot(&p, append);
  pid = hmmv_qemu_proc_get_pid(p.proc);
  ck_assert_int_gt(pid, 1);
  vm = hmmv_qemu_vm_new(p.qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  tracker = hmmv_qemu_dirty_tracker_new(g_steal_pointer(&p.qmp), &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  p.qmp = hmmv_qemu_dirty_tracker_get_qmp(tracker);   /* borrowed from here on */
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);

  /* COARSE: one whole harvest, then the export is paused */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
  ck_assert(hmmv_tracker_is_paused(tracker));
  ck_assert(pause_bed_query_paused(&p));

  /* Stopped while paused: the very next harvest fails, on hmmv-sync's deadline. */
  ck_assert_int_eq(kill(pid, SIGSTOP), 0);
  hmmv_access_clear(acc);
  ok = hmmv_tracker_harvest(tracker, vm, acc, &error);
  printf("# stopped while paused, harvest 1: %s\n", ok ? "succeeded" : error->message);
  ck_assert_msg(!ok, "a harvest of a stopped, paused QEMU succeeded");
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO) ||
            g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(strstr(error->message, "hmmv-sync") != NULL);
  g_clear_error(&error);

  /* FINE while stopped: the resume misses its deadline, and the next harvest fails with it
   * (before any other exchange). */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  ck_assert(hmmv_tracker_is_paused(tracker));   /* QEMU was never told otherwise */
  hmmv_access_clear(acc);
  ok = hmmv_tracker_harvest(tracker, vm, acc, &error);
  printf("# stopped, resume on FINE, harvest 2: %s\n", ok ? "succeeded" : error->message);
  ck_assert_msg(!ok, "the harvest after a resume QEMU did not answer succeeded");
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_IO) ||
            g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(strstr(error->message, "hmmv-resume") != NULL);
  g_clear_error(&error);

  ck_assert_int_eq(kill(pid, SIGCONT), 0);
  /* Running again: the late hmmv-sync reply comes (the resume was never sent: nothing goes
   * while a reply is due), then the tracker works on: QEMU still paused as the tracker knows,
   * resumed at the end of the next harvest (FINE), the writes after it all seen. */
  catch_up(p.qmp);
  ck_assert(pause_bed_query_paused(&p));
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
  ck_assert(!hmmv_tracker_is_paused(tracker));
  ck_assert(!pause_bed_query_paused(&p));
  {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;

    pause_bed_run_phase(&p, 0, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    got = pause_bed_harvested(vm, acc);
    printf("# running again: %" G_GUINT64_FORMAT " interval(s), %u of %u written pages seen\n",
           (guint64)acc->intervals, g_hash_table_size(got), g_hash_table_size(wrote));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(pause_bed_same_set(got, wrote));
  }
  hmmv_tracker_stop(tracker);
  p.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  pause_bed_shutdown(&p);
}
END_TEST

/* A QMP transport around QEMU's socket that stops QEMU (SIGSTOP, waited for) right before it
 * forwards the first command containing stop_before: that command then misses its deadline,
 * and QEMU does it once it runs again. */
typedef struct {
  HmmvQmp *inner;
  int pid;
  const char *stop_before;
} StopQmp;

static gboolean
process_stopped(int pid)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *stat = NULL;
  const char *paren;

  if (!g_file_get_contents(path, &stat, NULL, NULL) || (paren = strrchr(stat, ')')) == NULL)
    return FALSE;
  return paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't');
}

static char *
stop_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  StopQmp *sq = qmp->priv;

  if (sq->stop_before != NULL && strstr(command_json, sq->stop_before) != NULL) {
    sq->stop_before = NULL;
    ck_assert_int_eq(kill(sq->pid, SIGSTOP), 0);
    for (guint i = 0; !process_stopped(sq->pid); i++) {
      ck_assert_msg(i < 6000, "QEMU did not stop");   /* 60 s: liveness */
      g_usleep(10 * 1000);
    }
  }
  return sq->inner->ops->transact(sq->inner, command_json, error);
}

static char *
stop_transact_fd(HmmvQmp *qmp, const char *command_json, int fd, GError **error)
{
  return hmmv_qmp_transact_fd(((StopQmp *)qmp->priv)->inner, command_json, fd, error);
}

static void
stop_destroy(HmmvQmp *qmp)
{
  StopQmp *sq = qmp->priv;

  hmmv_qmp_free(sq->inner);
  g_free(sq);
}

static const struct hmmv_qmp_ops stop_ops = {
  .name = "stop-before",
  .transact = stop_transact,
  .transact_fd = stop_transact_fd,
  .destroy = stop_destroy,
};

/* issue 8: a hmmv-pause that missed its deadline (QEMU stopped as it was sent) is done by QEMU
 * once it runs again; the tracker, which took it as not done, thought QEMU tracking. FINE then
 * resumed nothing (the tracker resumes only what it knows paused): QEMU stayed paused, every
 * harvest counted 0 intervals and the guest's writes went unseen. Now the harvest after takes
 * QEMU's word (hmmv-sync: paused), the cycle resumes it, and the next phase's writes are all
 * seen. Counted in harvests. */
START_TEST(test_missed_pause)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvAccess) acc = NULL;
  g_autoptr(HmmvTracker) tracker = NULL;
  g_autofree char *append =
    g_strdup_printf("phases=4 pages=300 pattern=random base=16M span=%u seed=35 wait=1", SPAN);
  HmmvQemuDirtyOptions options = { .interval_ms = 0, .pause_when_coarse = TRUE };
  HmmvQemuDirtyStats stats;
  StopQmp *sq = g_new0(StopQmp, 1);
  HmmvQmp *socket_qmp;
  HmmvQmp *wrapped;
  gboolean ok;
  Pause p;

  pause_bed_boot(&p, append);
  sq->pid = hmmv_qemu_proc_get_pid(p.proc);
  ck_assert_int_gt(sq->pid, 1);
  vm = hmmv_qemu_vm_new(p.qmp, "guest", &error);
  ck_assert_msg(vm != NULL, "%s", error ? error->message : "");
  hmmv_vm_set_pid(vm, sq->pid);   /* the wrapper has no peer credentials */
  socket_qmp = sq->inner = g_steal_pointer(&p.qmp);
  wrapped = hmmv_qmp_new(&stop_ops, sq, &error);
  ck_assert(wrapped != NULL);
  tracker = hmmv_qemu_dirty_tracker_new(wrapped, &options, &error);
  ck_assert_msg(tracker != NULL, "%s", error ? error->message : "");
  p.qmp = wrapped;   /* borrowed from here on */
  ck_assert_msg(hmmv_tracker_start(tracker, vm, &error), "%s", error ? error->message : "");
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), &error);
  ck_assert(acc != NULL);

  /* COARSE: a whole harvest, then hmmv-pause, which QEMU, stopped, does not answer */
  hmmv_qmp_set_timeout_ms(socket_qmp, 1000);
  sq->stop_before = "\"hmmv-pause\"";
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_COARSE);
  ok = hmmv_tracker_harvest(tracker, vm, acc, &error);
  printf("# hmmv-pause sent to a stopped QEMU: %s\n", ok ? "succeeded" : error->message);
  ck_assert_msg(!ok && sq->stop_before == NULL, "the pause was not missed");
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT));
  ck_assert(strstr(error->message, "hmmv-pause") != NULL);
  g_clear_error(&error);
  ck_assert(!hmmv_tracker_is_paused(tracker));   /* as far as the tracker knows */

  /* Running again: QEMU does the pause late; its reply is dropped. */
  ck_assert_int_eq(kill(sq->pid, SIGCONT), 0);
  hmmv_qmp_set_timeout_ms(socket_qmp, 5000);
  catch_up(socket_qmp);
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(socket_qmp), 1);
  ck_assert(pause_bed_query_paused(&p));

  /* FINE (a thawed VM's placement is read again; the core may watch it closely): the next
   * harvest learns QEMU is paused and resumes it at its end */
  hmmv_tracker_set_watch(tracker, HMMV_WATCH_FINE);
  hmmv_access_clear(acc);
  ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
  ck_assert(hmmv_qemu_dirty_tracker_get_stats(tracker, &stats));
  printf("# the harvest after: %" G_GUINT64_FORMAT " pause resync(s); QEMU %s, the tracker "
         "says %s\n", stats.pause_resyncs, pause_bed_query_paused(&p) ? "paused" : "tracking",
         hmmv_tracker_is_paused(tracker) ? "paused" : "tracking");
  ck_assert_uint_eq(stats.pause_resyncs, 1);
  ck_assert(!pause_bed_query_paused(&p));
  ck_assert(!hmmv_tracker_is_paused(tracker));
  {
    g_autoptr(GHashTable) wrote = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;

    pause_bed_run_phase(&p, 0, wrote);
    hmmv_access_clear(acc);
    ck_assert_msg(hmmv_tracker_harvest(tracker, vm, acc, &error), "%s", error->message);
    got = pause_bed_harvested(vm, acc);
    printf("# after the resync: %" G_GUINT64_FORMAT " interval(s), %u of %u written pages "
           "seen\n", (guint64)acc->intervals, g_hash_table_size(got), g_hash_table_size(wrote));
    ck_assert_uint_eq(acc->intervals, 1);
    ck_assert(g_hash_table_size(wrote) > 0 && pause_bed_same_set(got, wrote));
  }
  hmmv_tracker_stop(tracker);
  p.qmp = NULL;   /* the tracker's */
  g_clear_pointer(&tracker, hmmv_tracker_free);
  pause_bed_shutdown(&p);
}
END_TEST

static Suite *
pause_stop_suite(void)
{
  Suite *suite = suite_create("qemu-pause-stop");
  TCase *tc = tcase_create("tcg");

  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_stopped);
  tcase_add_test(tc, test_missed_pause);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!pause_bed_prepare(&why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(pause_stop_suite());
}
