/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's standalone source of VMs (see standalone.h).
 */
#include "standalone.h"
#include "pid.h"
#include "standalone-backoff.h"

#include <string.h>
#include <sys/stat.h>

/* Each QMP exchange (command, events, reply) is over within this: the harvest's hmmv-sync
 * (hmmvd paces QEMU's publication), the pause cycle, a VM's start and stop. A QEMU that misses
 * it while managed is frozen (vms-interval.c) and thawed by check_entry once it answered. */
#define STANDALONE_QMP_TIMEOUT_MS 2000
/* A start-up (connect, greeting, capabilities, layout, getfd, hmmv-start: 5 exchanges) runs
 * on a worker thread and is abandoned after this; the VM is retried after the backoff of
 * failed start-ups (note_failed_start). */
#define STANDALONE_START_DEADLINE_MS 10000
/* A VM whose QMP connection broke while its QEMU lives is tried again reconnect-ms x 2^(n-1)
 * later for its n-th such break in a row (counted in checks, one every reconnect-ms), at most
 * HMMVD_BACKOFF_MAX_MS (standalone-backoff.h), and so is one whose start-up failed after its
 * QEMU greeted (note_failed_start): a QEMU that breaks every connection costs a start-up (a
 * new region, the page arrays, the placement read again) and a few log lines per try, not
 * per reconnect-ms. */

/* The streak of breaks ends once the VM was seen managed, not frozen, with a usable connection
 * at as many checks in a row as the longest wait (HMMVD_BACKOFF_MAX_MS worth), and at
 * least this many. A QEMU that breaks each connection after G good checks costs a start-up
 * every G + wait checks: were the streak to end sooner than the longest wait, one whose G is
 * just past the end would stay at the first wait for ever (with the end at 10 checks and
 * reconnect-ms 1000: a start-up every ~11 s), and no rule that scales the end with the last
 * wait helps, as the first wait is 1 check. Ended so, any such QEMU costs at most about one
 * start-up a minute, the rate the longest wait allows; a VM that broke once for a passing
 * reason pays only with a longer wait (2 checks, not 1) should it break again within it. */
#define STANDALONE_STREAK_END_CHECKS 10

typedef struct _StandaloneStart StandaloneStart;

typedef struct {
  char *name;
  char *path;
  int pid;                      /* QEMU last connected to; -1 before */
  char *last_failure;           /* logged once, not at every retry */
  StandaloneStart *start;       /* the start-up under way, or NULL */
  guint broken_streak;          /* removals in a row for a connection broken after start */
  char *broken_reason;          /* the last one's: warned once a streak, or when it changes */
  guint wait_checks;            /* checks to let pass before the next try */
  guint good_checks;            /* checks in a row it was managed with a usable connection */
  int held_pid;                 /* QEMU whose DRAM the core keeps counted since a break
                                   (hmmv_core_hold_dram here, or adopted from the table when
                                   the interval found the VM gone first), -1 none */
  int broken_pid;               /* QEMU of the last break, held or not, -1 none */
  guint failed_streak;          /* start-ups in a row that failed after QEMU greeted */
  int failed_pid;               /* the QEMU of the last such failure (the last known), -1
                                   none or unknown */
  dev_t failed_dev;             /* its socket file then (failed_ino 0: none); ctime too, as a
                                   socket bound again at the path may get the same inode */
  ino_t failed_ino;
  struct timespec failed_ctime;
} StandaloneVm;

/* One start-up, shared by the worker thread (read-only fields and the results) and the main
 * thread (sa, entry, deadline), freed by the GTask. */
struct _StandaloneStart {
  HmmvdStandalone *sa;          /* NULL once hmmvd stops: then only clean up */
  StandaloneVm *entry;
  char *name;
  char *path;
  guint interval_ms;
  char **exclude;               /* hmmvd.conf [vm NAME] exclude */
  GCancellable *cancellable;
  guint deadline_source;
  gboolean timed_out;
  /* results */
  HmmvQmp *qmp;
  HmmvVm *vm;
  HmmvTracker *tracker;
  int pid;
  guint64 excluded_bytes;
  gboolean greeted;             /* QEMU's greeting was read (HmmvQmpPeer) */
  dev_t socket_dev;             /* the socket file just before connecting (ino 0: none) */
  ino_t socket_ino;
  struct timespec socket_ctime;
};

struct _HmmvdStandalone {
  HmmvdVms *vms;
  const HmmvdConfig *config;
  GPtrArray *entries;           /* StandaloneVm */
  guint check_source;
};

static void
start_free(gpointer data)
{
  StandaloneStart *start = data;

  if (start->deadline_source != 0)
    g_source_remove(start->deadline_source);
  if (start->tracker != NULL)
    hmmv_tracker_stop(start->tracker);   /* abandoned after it started: stop the export */
  hmmv_tracker_free(start->tracker);
  hmmv_vm_free(start->vm);
  hmmv_qmp_free(start->qmp);
  g_object_unref(start->cancellable);
  g_free(start->name);
  g_free(start->path);
  g_strfreev(start->exclude);
  g_free(start);
}

static void
standalone_vm_free(gpointer data)
{
  StandaloneVm *entry = data;

  if (entry->start != NULL) {   /* hmmvd stops: the worker ends at once, nothing is added */
    entry->start->sa = NULL;
    entry->start->entry = NULL;
    g_cancellable_cancel(entry->start->cancellable);
  }

  g_free(entry->name);
  g_free(entry->path);
  g_free(entry->last_failure);
  g_free(entry->broken_reason);
  g_free(entry);
}

gboolean
hmmvd_standalone_parse_spec(const char *spec, char **name, char **path, GError **error)
{
  const char *equals = strchr(spec, '=');

  if (equals == NULL || equals == spec || equals[1] == '\0') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--qmp %s: expected NAME=SOCKET", spec);
    return FALSE;
  }
  if (strcspn(spec, "/ \t\n") < (gsize)(equals - spec)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--qmp %s: a VM name cannot hold '/' or spaces", spec);
    return FALSE;
  }
  *name = g_strndup(spec, (gsize)(equals - spec));
  *path = g_strdup(equals + 1);
  return TRUE;
}

/* Listed as unmanaged with the reason and how it is retried (backed_off: note_failed_start);
 * vms logs it. A retry that fails the same way says nothing new: FALSE then. */
static gboolean
note_failure(HmmvdStandalone *sa, StandaloneVm *entry, const char *message, gboolean backed_off)
{
  g_autofree char *retry = hmmvd_backoff_retry_text(sa->config->reconnect_ms, backed_off);
  g_autofree char *reason = g_strdup_printf("%s (%s)", message, retry);

  if (g_strcmp0(entry->last_failure, reason) == 0 &&
      hmmvd_vms_lookup(sa->vms, entry->name) != NULL)
    return FALSE;
  g_free(entry->last_failure);
  entry->last_failure = g_steal_pointer(&reason);
  hmmvd_vms_add_unmanaged(sa->vms, entry->name, HMMVD_SOURCE_STANDALONE, entry->last_failure);
  return TRUE;
}

/* The core holds the DRAM of the QEMU last removed for a broken connection until that VM is
 * back with its placement read (the core ends the hold itself), or until this: that QEMU is
 * gone, or will not be managed. */
static void
release_held(HmmvdStandalone *sa, StandaloneVm *entry)
{
  if (entry->held_pid <= 0)
    return;
  hmmv_core_release_dram(hmmvd_vms_get_core(sa->vms), entry->name, entry->held_pid);
  entry->held_pid = -1;
}

/* The checks (reconnect-ms each) of the longest wait, HMMVD_BACKOFF_MAX_MS worth. */
static guint
max_wait_checks(HmmvdStandalone *sa)
{
  return hmmvd_backoff_max_checks(sa->config->reconnect_ms);
}

/* The checks (reconnect-ms each) a VM waits after its n-th break, or failed start-up, in a
 * row: 1, 2, 4, ..., at most HMMVD_BACKOFF_MAX_MS worth. */
static guint
backoff_checks(HmmvdStandalone *sa, guint streak)
{
  return hmmvd_backoff_checks(sa->config->reconnect_ms, streak);
}

/* The socket file dev, ino, ctime is another one than at the last failed start-up (none
 * known: no): QEMU unlinks and binds its path again when it starts, and the file system may
 * hand the same inode number out again (ext4 does, at once), but not the same ctime (review
 * 19b, F2). */
static gboolean
socket_other(const StandaloneVm *entry, dev_t dev, ino_t ino, const struct timespec *ctime)
{
  return entry->failed_ino != 0 &&
         (ino != entry->failed_ino || dev != entry->failed_dev ||
          ctime->tv_sec != entry->failed_ctime.tv_sec ||
          ctime->tv_nsec != entry->failed_ctime.tv_nsec);
}

static void
end_failed_streak(StandaloneVm *entry)
{
  entry->failed_streak = 0;
  entry->failed_pid = -1;
  entry->failed_ino = 0;
}

/* A start-up failed. FALSE when no greeting was read (no such file, nobody listening, no
 * greeting within STANDALONE_QMP_TIMEOUT_MS, its listen queue full, closed before the
 * greeting): a QEMU not started yet, still in its init (preallocating its memory) or
 * stopped (SIGSTOP: it listens, the kernel queues the connection, nobody greets), its one
 * monitor connection held by another client, or exiting. The next check tries again: such a
 * try costs a connect() and at most STANDALONE_QMP_TIMEOUT_MS of one worker, one at a time,
 * so a VM started or resumed later is picked up within reconnect-ms of its greeting (review
 * 19b, F1: backed off, a QEMU that took a while to greet was managed up to 60 s late). The
 * streak of failures is left as it is (a QEMU alternating refusals with silence does not end
 * it), but ended when nobody listens.
 * Otherwise QEMU greeted and then refused or failed the start-up (an error reply, what is not
 * QMP, closed or missed the deadline after the greeting): each such try costs a worker thread
 * for up to STANDALONE_START_DEADLINE_MS, a region and page arrays, and before it came every
 * reconnect-ms for ever. So the n-th failure in a row waits as the n-th break does
 * (reconnect-ms x 2^(n-1), at most 60 s). The streak ends when a start-up succeeds, when
 * nobody listens, and (check_failed) when that QEMU exits or the socket file is another one:
 * a QEMU started again is tried at the next check. */
static gboolean
note_failed_start(HmmvdStandalone *sa, StandaloneVm *entry, const StandaloneStart *start,
                  const GError *error)
{
  gboolean other_socket = socket_other(entry, start->socket_dev, start->socket_ino,
                                       &start->socket_ctime);

  if (!start->greeted) {
    if (start->pid <= 0 && g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE))
      end_failed_streak(entry);   /* nobody listens: that QEMU is gone */
    return FALSE;
  }
  if ((start->pid > 0 && entry->failed_pid > 0 && start->pid != entry->failed_pid) ||
      other_socket) {
    entry->failed_streak = 0;   /* another QEMU: its first failure */
    entry->failed_pid = -1;
  }
  entry->failed_streak++;
  if (start->pid > 0)
    entry->failed_pid = start->pid;   /* the last known: a failure without one keeps it */
  entry->failed_dev = start->socket_dev;
  entry->failed_ino = start->socket_ino;
  entry->failed_ctime = start->socket_ctime;
  entry->wait_checks = backoff_checks(sa, entry->failed_streak);
  return TRUE;
}

/* Each failed start-up in a row after the first (the first is in the status) is logged while
 * the wait grows, and once when it reached the longest: not a line a minute for a QEMU that
 * refuses for ever (review 19b, F7). */
static void
note_failed_again(HmmvdStandalone *sa, StandaloneVm *entry, int pid)
{
  HmmvdBackoffNote note = hmmvd_backoff_note(sa->config->reconnect_ms, entry->failed_streak);
  g_autofree char *qemu = NULL;

  if (note == HMMVD_BACKOFF_QUIET)
    return;
  qemu = pid > 0 ? g_strdup_printf("QEMU pid %d", pid) : g_strdup("QEMU's pid unknown");
  g_message("vm %s: start-up failed again (%u times in a row), %s: next try in %.1f s%s",
            entry->name, entry->failed_streak, qemu,
            entry->wait_checks * MAX(sa->config->reconnect_ms, 100) / 1000.0,
            note == HMMVD_BACKOFF_AT_CAP ? "; the longest wait: further failures in a row are "
                                           "not logged until one succeeds or QEMU changes" : "");
}

/* Worker thread: every QMP round trip of a start-up, each exchange under its deadline, all
 * of them cancelled at the start-up's deadline or when hmmvd stops. */
static void
start_run(GTask *task, gpointer source_object, gpointer task_data, GCancellable *cancellable)
{
  StandaloneStart *start = task_data;
  GError *error = NULL;
  HmmvQmpPeer peer;
  struct stat st;

  if (stat(start->path, &st) == 0) {   /* before connecting: a socket bound later differs */
    start->socket_dev = st.st_dev;
    start->socket_ino = st.st_ino;
    start->socket_ctime = st.st_ctim;
  }
  /* QEMU's pid is known once connected, before it accepts or greets, also when the start-up
   * fails: check_failed watches that QEMU (review 19b, F2) */
  start->qmp = hmmv_qmp_connect_unix_full(start->path, STANDALONE_QMP_TIMEOUT_MS, cancellable,
                                          &peer, &error);
  start->pid = peer.pid;
  start->greeted = peer.greeted;
  if (start->qmp == NULL) {
    g_task_return_error(task, error);
    return;
  }
  if (!hmmvd_vm_build_started(start->name, start->qmp, start->pid, 0, start->interval_ms,
                              (const char *const *)start->exclude, &start->excluded_bytes,
                              &start->vm, &start->tracker, &error)) {
    g_task_return_error(task, error);
    return;
  }
  g_task_return_boolean(task, TRUE);
}

static gboolean
start_deadline(gpointer data)
{
  StandaloneStart *start = data;

  start->deadline_source = 0;
  start->timed_out = TRUE;
  g_cancellable_cancel(start->cancellable);
  return G_SOURCE_REMOVE;
}

/* Main thread: the worker is done. */
static void
start_done(GObject *source_object, GAsyncResult *result, gpointer user_data)
{
  StandaloneStart *start = g_task_get_task_data(G_TASK(result));
  HmmvdStandalone *sa = start->sa;
  StandaloneVm *entry = start->entry;
  g_autoptr(GError) local_error = NULL;
  gboolean backed_off;
  HmmvQmp *qmp;

  if (sa == NULL)
    return;   /* hmmvd is stopping; start_free cleans up */
  entry->start = NULL;
  if (!g_task_propagate_boolean(G_TASK(result), &local_error)) {
    g_autofree char *message = NULL;

    if (start->timed_out)
      message = g_strdup_printf("QEMU did not complete start-up within %u ms (%s)",
                                STANDALONE_START_DEADLINE_MS, local_error->message);
    if (start->qmp != NULL && g_error_matches(local_error, HMMV_ERROR,
                                              HMMV_ERROR_INVALID_ARGUMENT)) {
      /* hmmvd.conf's exclusion names no backend of this VM, or all of them: listed with the
       * reason, the VM left alone, not asked again while this QEMU runs */
      g_autofree char *status = g_strdup_printf("[vm %s] in hmmvd.conf rejected: %s; not "
                                                "managed", entry->name, local_error->message);

      entry->pid = start->pid;
      release_held(sa, entry);
      end_failed_streak(entry);
      hmmvd_vms_remove(sa->vms, entry->name);
      hmmvd_vms_add_unmanaged(sa->vms, entry->name, HMMVD_SOURCE_STANDALONE, status);
      return;
    }
    if (start->qmp != NULL && g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_PROTOCOL) &&
        strstr(local_error->message, "CommandNotFound") != NULL) {
      /* An unpatched QEMU is listed with the reason and not asked again while it runs. */
      entry->pid = start->pid;
      release_held(sa, entry);
      end_failed_streak(entry);
      hmmvd_vms_remove(sa->vms, entry->name);
      g_autofree char *status = g_strdup_printf("QEMU lacks the hmmv patches: %s",
                                                local_error->message);

      hmmvd_vms_add_unmanaged(sa->vms, entry->name, HMMVD_SOURCE_STANDALONE, status);
      return;
    }
    /* the status says how it is retried; each try after the first in a row says when the
     * next one comes */
    backed_off = note_failed_start(sa, entry, start, local_error);
    note_failure(sa, entry, message != NULL ? message : local_error->message, backed_off);
    if (backed_off)
      note_failed_again(sa, entry, start->pid);
    return;
  }
  end_failed_streak(entry);
  if (start->pid <= 0)
    g_warning("vm %s: QEMU's pid is unknown (no peer credentials on %s): pages cannot move",
              entry->name, entry->path);
  entry->pid = start->pid;
  if (entry->held_pid != start->pid)
    release_held(sa, entry);                 /* another QEMU: the old one's pages are gone */
  hmmvd_vms_remove(sa->vms, entry->name);   /* the "not reachable" entry, if any */
  qmp = g_steal_pointer(&start->qmp);
  hmmv_qmp_set_cancellable(qmp, NULL);       /* from now on each exchange has its deadline */
  /* On failure vms lists the VM with the reason and logs it. */
  if (hmmvd_vms_add_started(sa->vms, entry->name, HMMVD_SOURCE_STANDALONE, entry->pid, NULL,
                            qmp, 0, (const char *const *)start->exclude, start->excluded_bytes,
                            g_steal_pointer(&start->vm),
                            g_steal_pointer(&start->tracker), &local_error)) {
    g_clear_pointer(&entry->last_failure, g_free);
    return;
  }
  /* The core refused it (already managed, no access to its memory): listed "not managed"
   * with a connection that is not broken, it is not tried again while this QEMU runs, so a
   * hold kept above would count its DRAM out of the others' budgets until it exits (review
   * 19, finding 2). A layout that moved during the start is tried again at the next interval
   * (vms.c, retry_layout): its hold stays, ended by the core once its placement is read. */
  if (!g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED))
    release_held(sa, entry);
}

/* Starts a VM's start-up on a worker thread; the main loop goes on serving meanwhile (a QEMU
 * trickling events used to stop hmmvd's intervals, control socket and SIGTERM). */
static void
try_connect(HmmvdStandalone *sa, StandaloneVm *entry)
{
  StandaloneStart *start;
  g_autoptr(GTask) task = NULL;

  if (entry->start != NULL)
    return;
  start = g_new0(StandaloneStart, 1);
  start->sa = sa;
  start->entry = entry;
  start->name = g_strdup(entry->name);
  start->path = g_strdup(entry->path);
  start->interval_ms = sa->config->interval_ms;
  start->exclude = g_strdupv((char **)hmmvd_config_get_exclude(sa->config, entry->name));
  start->cancellable = g_cancellable_new();
  start->pid = -1;
  start->deadline_source = g_timeout_add(STANDALONE_START_DEADLINE_MS, start_deadline, start);
  entry->start = start;
  task = g_task_new(NULL, start->cancellable, start_done, NULL);
  g_task_set_task_data(task, start, start_free);
  g_task_set_return_on_cancel(task, FALSE);
  g_task_run_in_thread(task, start_run);
}

/* A frozen VM (its QEMU missed a QMP deadline while managed): its socket is read without
 * waiting, a budget at a time (qmp.h: a QEMU flooding events holds the main loop no longer),
 * and once QEMU answered every command that missed its deadline (the late replies dropped by
 * their ids), it is thawed, its placement read again. The core does not touch a frozen VM's
 * tracker, so nothing else uses the socket meanwhile (and the transport has its own lock).
 * FALSE when the socket failed (QEMU closed it, or sent what is not QMP): why in *reason. */
static gboolean
check_frozen(HmmvdStandalone *sa, StandaloneVm *entry, HmmvQmp *qmp, char **reason)
{
  g_autoptr(GError) local_error = NULL;

  if (hmmv_qmp_catch_up(qmp, &local_error)) {
    (void)hmmvd_vms_thaw(sa->vms, entry->name);
    return TRUE;
  }
  if (local_error == NULL)
    return TRUE;   /* not yet */
  *reason = g_strdup(local_error->message);
  return FALSE;
}

/* The connection of a VM whose QEMU lives: FALSE when it can carry no exchange any more
 * (QEMU closed it, or sent a message that is not QMP: the stream is out of step for good),
 * frozen or not, in the core or left it as gone; only a new connection brings the stream
 * back in step. Why in *reason. */
static gboolean
connection_usable(HmmvdStandalone *sa, StandaloneVm *entry, HmmvdVmInfo *info, char **reason)
{
  HmmvQmp *qmp = hmmvd_vms_get_qmp(sa->vms, entry->name);
  g_autofree char *failed = NULL;
  const char *broken = NULL;

  if (qmp == NULL)
    return TRUE;   /* listed unmanaged: an unpatched QEMU, a rejected [vm] section */
  if (info->frozen && info->in_core && check_frozen(sa, entry, qmp, &failed))
    return TRUE;
  if (failed == NULL && !hmmv_qmp_is_broken(qmp, &broken))
    return TRUE;
  *reason = failed != NULL ? g_steal_pointer(&failed) : g_strdup(broken);
  return FALSE;
}

/* A connection broke while its QEMU lives: the streak grows and the next try waits for it.
 * Warned at the first break of a streak and when the reason changes; the repeats are
 * messages that count them. */
static void
note_broken(HmmvdStandalone *sa, StandaloneVm *entry, const char *reason, gboolean frozen)
{
  guint period_ms = MAX(sa->config->reconnect_ms, 100);
  double wait_s;

  entry->broken_streak++;
  entry->good_checks = 0;
  entry->wait_checks = backoff_checks(sa, entry->broken_streak);
  wait_s = entry->wait_checks * (double)period_ms / 1000.0;
  if (entry->broken_streak == 1 || g_strcmp0(entry->broken_reason, reason) != 0)
    g_warning("vm %s: its QMP connection failed while QEMU pid %d runs (%s): removed%s, "
              "connecting again in %.1f s", entry->name, entry->pid, reason,
              frozen ? " (it was frozen)" : "", wait_s);
  else
    g_message("vm %s: its QMP connection failed again (%u times), QEMU pid %d still runs: "
              "removed%s, next try in %.1f s", entry->name, entry->broken_streak, entry->pid,
              frozen ? " (it was frozen)" : "", wait_s);
  g_free(entry->broken_reason);
  entry->broken_reason = g_strdup(reason);
}

/* Checked managed with a usable connection: a streak of breaks ends after as many of these
 * in a row as the longest wait has checks, at least STANDALONE_STREAK_END_CHECKS (why there). */
static void
note_usable(HmmvdStandalone *sa, StandaloneVm *entry, const HmmvdVmInfo *info)
{
  if (entry->broken_streak == 0)
    return;
  if (!info->in_core || info->frozen) {
    entry->good_checks = 0;
    return;
  }
  if (++entry->good_checks < MAX(max_wait_checks(sa), STANDALONE_STREAK_END_CHECKS))
    return;
  g_message("vm %s: managed for %u checks without a break after %u in a row: the next one "
            "is tried again within %u ms", entry->name, entry->good_checks,
            entry->broken_streak, MAX(sa->config->reconnect_ms, 100));
  entry->broken_streak = 0;
  entry->good_checks = 0;
  g_clear_pointer(&entry->broken_reason, g_free);
}

/* The QEMU of the last break (broken_pid; held_pid, whose DRAM the core holds, is the same
 * QEMU or none) is gone: the hold ends, and so does the backoff (a QEMU started again on the
 * socket is connected at once). Also for a break without a hold (hmmv_core_hold_dram
 * refused, or the interval found the VM gone first with its QEMU already exited). */
static void
check_held(HmmvdStandalone *sa, StandaloneVm *entry)
{
  int pid = entry->held_pid > 0 ? entry->held_pid : entry->broken_pid;

  if (pid <= 0 || hmmvd_pid_alive(pid))
    return;
  if (entry->pid <= 0)
    g_message("vm %s: QEMU pid %d is gone; waiting for it on %s", entry->name, pid,
              entry->path);
  release_held(sa, entry);
  entry->broken_pid = -1;
  entry->broken_streak = 0;
  entry->wait_checks = 0;
  entry->good_checks = 0;
  g_clear_pointer(&entry->broken_reason, g_free);
}

/* The QEMU of the last failed start-up (failed_pid, when known) exited, or the socket file is
 * another one than at that try, or gone: the streak of failed start-ups ends with its wait,
 * so a QEMU started again is tried at once (see note_failed_start). */
static void
check_failed(StandaloneVm *entry)
{
  struct stat st;
  gboolean socket_changed;

  if (entry->failed_streak == 0)
    return;
  socket_changed = entry->failed_ino != 0 &&
                   (stat(entry->path, &st) != 0 ||
                    socket_other(entry, st.st_dev, st.st_ino, &st.st_ctim));
  if (!socket_changed && (entry->failed_pid <= 0 || hmmvd_pid_alive(entry->failed_pid)))
    return;
  g_message("vm %s: after %u failed start-up(s) in a row, %s: tried again now", entry->name,
            entry->failed_streak,
            socket_changed ? "its QMP socket is another one or gone" : "that QEMU is gone");
  end_failed_streak(entry);
  entry->wait_checks = 0;
}

/* A VM whose QEMU we connected to and which is still alive is left alone (managed or not:
 * an unpatched QEMU is not asked again), a frozen one thawed once its QEMU answers, unless
 * its connection failed: then it is removed, its DRAM kept counted by the core while its QEMU
 * lives, and tried again after the backoff. Anything else is tried again now. */
static void
check_entry(HmmvdStandalone *sa, StandaloneVm *entry)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(sa->vms, entry->name);

  if (info != NULL && info->held_pid > 0) {
    /* the interval found it gone first (its QEMU closed the QMP socket) and left the core
     * holding its DRAM (vms-interval.c, handle_gone): the hold is ours from now on, ended as
     * ours are (review 18b, F2) */
    if (entry->held_pid != info->held_pid)
      release_held(sa, entry);
    entry->held_pid = info->held_pid;
    info->held_pid = 0;
  }
  check_held(sa, entry);
  check_failed(entry);
  if (info != NULL && entry->pid > 0 && hmmvd_pid_alive(entry->pid)) {
    g_autofree char *reason = NULL;

    if (connection_usable(sa, entry, info, &reason)) {
      note_usable(sa, entry, info);
      return;
    }
    note_broken(sa, entry, reason, info->frozen);
    entry->broken_pid = entry->pid;
    if (info->in_core &&
        hmmv_core_hold_dram(hmmvd_vms_get_core(sa->vms), entry->name, NULL))
      entry->held_pid = entry->pid;
    hmmvd_vms_remove(sa->vms, entry->name);
    entry->pid = -1;
    return;
  } else if (info != NULL && entry->pid > 0) {
    g_message("vm %s: QEMU pid %d is gone; waiting for it on %s", entry->name, entry->pid,
              entry->path);
    release_held(sa, entry);   /* held_pid, if any, is this QEMU's */
    hmmvd_vms_remove(sa->vms, entry->name);
    entry->broken_streak = 0;   /* a QEMU started again is connected at once */
    entry->wait_checks = 0;
    entry->broken_pid = -1;
  }
  entry->pid = -1;
  if (entry->wait_checks > 0 && --entry->wait_checks > 0)
    return;
  try_connect(sa, entry);
}

static gboolean
check_all(gpointer data)
{
  HmmvdStandalone *sa = data;

  for (guint i = 0; i < sa->entries->len; i++)
    check_entry(sa, g_ptr_array_index(sa->entries, i));
  return G_SOURCE_CONTINUE;
}

HmmvdStandalone *
hmmvd_standalone_new(HmmvdVms *vms, const HmmvdConfig *config)
{
  HmmvdStandalone *sa = g_new0(HmmvdStandalone, 1);

  sa->vms = vms;
  sa->config = config;
  sa->entries = g_ptr_array_new_with_free_func(standalone_vm_free);
  return sa;
}

gboolean
hmmvd_standalone_add(HmmvdStandalone *sa, const char *spec, GError **error)
{
  StandaloneVm *entry;
  char *name, *path;

  if (!hmmvd_standalone_parse_spec(spec, &name, &path, error))
    return FALSE;
  for (guint i = 0; i < sa->entries->len; i++) {
    StandaloneVm *other = g_ptr_array_index(sa->entries, i);

    if (strcmp(other->name, name) == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "--qmp %s: the name %s is given twice", spec, name);
      g_free(name);
      g_free(path);
      return FALSE;
    }
  }
  entry = g_new0(StandaloneVm, 1);
  entry->name = name;
  entry->path = path;
  entry->pid = -1;
  entry->held_pid = -1;
  entry->broken_pid = -1;
  entry->failed_pid = -1;
  g_ptr_array_add(sa->entries, entry);
  try_connect(sa, entry);
  if (sa->check_source == 0)
    sa->check_source = g_timeout_add(MAX(sa->config->reconnect_ms, 100), check_all, sa);
  return TRUE;
}

void
hmmvd_standalone_free(HmmvdStandalone *sa)
{
  if (sa == NULL)
    return;
  if (sa->check_source != 0)
    g_source_remove(sa->check_source);
  g_ptr_array_unref(sa->entries);
  g_free(sa);
}
