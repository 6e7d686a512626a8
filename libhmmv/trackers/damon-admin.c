/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which kdamond is hmmv's. The DAMON sysfs interface has no owner field, and other users
 * (damo, a node-level policy, the host's own tools) configure kdamonds too, so:
 *
 *  - hmmv only takes a kdamond that is free: state "off" and no context (nr_contexts 0),
 *    and not recorded by hmmv for another VM;
 *  - it adds kdamonds only when there is none: writing nr_kdamonds removes and re-creates
 *    every kdamond directory (mm/damon/sysfs.c, damon_sysfs_kdamonds_add_dirs()), refused
 *    with EBUSY only while one of them runs, so it would also wipe the configuration of a
 *    kdamond that is being set up (another VM's, off until its last write). Anything else:
 *    no kdamond for hmmv, and nothing written;
 *  - before writing anything into a kdamond it writes a record run_dir/kdamond-N (its own
 *    pid, the target pid, the operations), and run_dir/added (the count before) when it
 *    added kdamonds, so that a later hmmvd can clean up after one that was killed, and
 *    check, before touching the kdamond, that it still is as hmmv left it.
 */
#include "damon-private.h"

#include <errno.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <hmmv/error.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* Kdamonds hmmv adds at once when it must add: up to this many VMs before the next add,
 * which needs every kdamond stopped (including hmmv's own). */
#define DAMON_ADD_BATCH 8u
/* More kdamonds than this is not a DAMON tree we understand. */
#define DAMON_MAX_KDAMONDS 1024u

char *
hmmv_damon_path(guint index, const char *rest)
{
  return g_strdup_printf("kdamonds/%u/%s", index, rest);
}

/* A write refused with EBUSY is tried again every 20 ms, for patience_ms in all
 * (HMMV_DAMON_PATIENCE_MS: 250 tries). */
#define DAMON_BUSY_SLEEP_US 20000u

/* What one whole operation may wait for DAMON's lock: a scan of the kdamond table, a release,
 * a cleanup, each with one patience for all its reads and writes, not one per read. Counted in
 * tries of DAMON_BUSY_SLEEP_US (patience_ms / 20 ms, at least one), so that a lock held for
 * good costs the operation its patience once. */
typedef struct {
  guint waits_left;           /* pauses still allowed before the next try */
  GCancellable *cancellable;  /* cancelled: no more pauses */
} Patience;

static void
patience_init(Patience *patience, guint patience_ms, GCancellable *cancellable)
{
  guint64 tries = (guint64)patience_ms * 1000u / DAMON_BUSY_SLEEP_US;

  patience->waits_left = (guint)CLAMP(tries, 1u, G_MAXUINT) - 1u;
  patience->cancellable = cancellable;
}

/* Pauses before the next try: FALSE, without pausing, once the patience is spent or the
 * operation cancelled. */
static gboolean
patience_wait(Patience *patience)
{
  if (patience->waits_left == 0 || g_cancellable_is_cancelled(patience->cancellable))
    return FALSE;
  patience->waits_left--;
  g_usleep(DAMON_BUSY_SLEEP_US);
  return TRUE;
}

static gboolean
write_patiently(HmmvSysfs *fs, const char *path, const char *value, Patience *patience,
                GError **error)
{
  for (;;) {
    g_autoptr(GError) local_error = NULL;

    if (hmmv_sysfs_write(fs, path, value, &local_error))
      return TRUE;
    if (!g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_BUSY) ||
        patience->waits_left == 0) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return FALSE;
    }
    if (g_cancellable_set_error_if_cancelled(patience->cancellable, error))
      return FALSE;
    (void)patience_wait(patience);
  }
}

gboolean
hmmv_damon_write_full(HmmvSysfs *fs, const char *path, const char *value, guint patience_ms,
                      GCancellable *cancellable, GError **error)
{
  Patience patience;

  patience_init(&patience, patience_ms, cancellable);
  return write_patiently(fs, path, value, &patience, error);
}

gboolean
hmmv_damon_write(HmmvSysfs *fs, const char *path, const char *value, GError **error)
{
  return hmmv_damon_write_full(fs, path, value, HMMV_DAMON_PATIENCE_MS, NULL, error);
}

const char *
hmmv_damon_ops_name(HmmvDamonOps ops)
{
  return ops == HMMV_DAMON_PADDR ? "paddr" : "vaddr";
}

static char *
record_path(const char *run_dir, guint index)
{
  return g_strdup_printf("%s/kdamond-%u", run_dir, index);
}

static gboolean
read_nr_kdamonds(HmmvSysfs *fs, guint *nr, GError **error)
{
  guint64 value;

  if (!hmmv_sysfs_read_u64(fs, "kdamonds/nr_kdamonds", &value, error)) {
    g_prefix_error(error, "DAMON sysfs: ");
    return FALSE;
  }
  if (value > DAMON_MAX_KDAMONDS) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "DAMON sysfs: %" G_GUINT64_FORMAT
                " kdamonds", value);
    return FALSE;
  }
  *nr = (guint)value;
  return TRUE;
}

/* Only written when no kdamond runs, so EBUSY here is the lock held by another writer. */
static gboolean
write_nr_kdamonds(HmmvSysfs *fs, guint nr, Patience *patience, GError **error)
{
  char buf[16];

  g_snprintf(buf, sizeof(buf), "%u", nr);
  return write_patiently(fs, "kdamonds/nr_kdamonds", buf, patience, error);
}

/* Whether kdamond index runs, from one read of its state. That read fails with EBUSY while
 * another user holds DAMON's sysfs lock (6.12's state_show takes it with mutex_trylock, and a
 * kdamond answering update_schemes_tried_regions holds it across aggregations): HIDDEN, for
 * the caller to try again within its patience. Until 2026-12-04 a busy read counted as
 * running: a VM whose tracker looked for a kdamond while another VM's snapshot held the lock
 * found "8 kdamond(s), 8 running, none free" and was tracked for writes only for good (the
 * race of issue 8: one or two VMs of three in most hmmvd modes). Unreadable otherwise: assume
 * it runs, which only ever makes hmmv do less. */
typedef enum {
  KDAMOND_OFF,
  KDAMOND_RUNNING,
  KDAMOND_HIDDEN,
} KdamondState;

static KdamondState
kdamond_state_now(HmmvSysfs *fs, guint index)
{
  g_autofree char *path = hmmv_damon_path(index, "state");
  g_autoptr(GError) local_error = NULL;
  g_autofree char *state = NULL;

  if (hmmv_sysfs_read(fs, path, &state, &local_error))
    return g_strcmp0(state, "off") != 0 ? KDAMOND_RUNNING : KDAMOND_OFF;
  return g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_BUSY) ? KDAMOND_HIDDEN
                                                                   : KDAMOND_RUNNING;
}

/* The same, trying again while the state is hidden, within patience (HIDDEN once spent). */
static KdamondState
kdamond_state(HmmvSysfs *fs, guint index, Patience *patience)
{
  KdamondState state;

  while ((state = kdamond_state_now(fs, index)) == KDAMOND_HIDDEN && patience_wait(patience))
    ;
  return state;
}

/* Someone's, as far as what needs no DAMON lock tells: hmmv's record of it, or a context
 * (6.12's nr_contexts_show takes no lock; unreadable counts as someone's). Checked before the
 * state, whose read may wait out the lock: a kdamond that is someone's is never waited on. */
static gboolean
kdamond_claimed(HmmvSysfs *fs, const char *run_dir, guint index)
{
  g_autofree char *contexts = hmmv_damon_path(index, "contexts/nr_contexts");
  g_autofree char *record = record_path(run_dir, index);
  guint64 nr_contexts;

  if (g_file_test(record, G_FILE_TEST_EXISTS))
    return TRUE;
  return !hmmv_sysfs_read_u64(fs, contexts, &nr_contexts, NULL) || nr_contexts != 0;
}

static gboolean
ensure_run_dir(const char *run_dir, GError **error)
{
  if (g_mkdir_with_parents(run_dir, 0700) != 0) {
    int saved = errno;

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "%s: %s", run_dir, g_strerror(saved));
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmv_damon_write_record(const char *run_dir, guint index, const char *ops, int target_pid,
                        GError **error)
{
  g_autofree char *path = record_path(run_dir, index);
  g_autofree char *text = g_strdup_printf("owner_pid=%d\ntarget_pid=%d\nops=%s\n", getpid(),
                                          target_pid, ops);

  if (!ensure_run_dir(run_dir, error))
    return FALSE;
  return g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                  error);
}

typedef struct {
  int owner_pid;
  int target_pid;
  char *ops;
} Record;

static gboolean
read_record(const char *path, Record *record)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  memset(record, 0, sizeof(*record));
  record->owner_pid = -1;
  record->target_pid = -1;
  if (!g_file_get_contents(path, &text, NULL, NULL))
    return FALSE;
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    gint64 value;

    if (g_str_has_prefix(lines[i], "owner_pid=") &&
        g_ascii_string_to_signed(lines[i] + 10, 10, 1, G_MAXINT, &value, NULL))
      record->owner_pid = (int)value;
    else if (g_str_has_prefix(lines[i], "target_pid=") &&
             g_ascii_string_to_signed(lines[i] + 11, 10, 0, G_MAXINT, &value, NULL))
      record->target_pid = (int)value;
    else if (g_str_has_prefix(lines[i], "ops="))
      record->ops = g_strdup(lines[i] + 4);
  }
  return record->owner_pid > 0 && record->ops != NULL;
}

static gboolean
write_added(const char *run_dir, guint before, GError **error)
{
  g_autofree char *path = g_build_filename(run_dir, "added", NULL);
  g_autofree char *text = NULL;

  /* the first add knows the count before hmmv; later ones must not overwrite it */
  if (g_file_test(path, G_FILE_TEST_EXISTS))
    return TRUE;
  if (!ensure_run_dir(run_dir, error))
    return FALSE;
  text = g_strdup_printf("before=%u\n", before);
  return g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                  error);
}

/* One look at the kdamond table: the first free kdamond found (G_MAXUINT: none); how many
 * were someone's by their record or context, how many ran, and how many hid their state
 * behind DAMON's lock for the whole patience. */
typedef struct {
  guint nr;
  guint free_index;
  guint claimed;
  guint running;
  guint hidden;
} TableLook;

/* What needs no DAMON lock first: each kdamond's record and context. Then the states of the
 * kdamonds still in question only, in passes over them: each pass reads each of them once, a
 * hidden one is read again in the next pass, and the passes share one patience (the scan's
 * deadline). Until 2026-12-04 each kdamond's state was read first and waited out for the
 * whole patience on its own (60 s while setting up), also for kdamonds already someone's: a
 * lock held by other VMs' snapshots cost a setup up to 8 patiences, under the table's lock. */
static gboolean
look_at_table(HmmvSysfs *fs, const char *run_dir, Patience *patience, TableLook *look,
              GError **error)
{
  g_autoptr(GArray) open = NULL;

  memset(look, 0, sizeof(*look));
  look->free_index = G_MAXUINT;
  if (!read_nr_kdamonds(fs, &look->nr, error))
    return FALSE;
  open = g_array_sized_new(FALSE, FALSE, sizeof(guint), look->nr);
  for (guint i = 0; i < look->nr; i++) {
    if (kdamond_claimed(fs, run_dir, i))
      look->claimed++;
    else
      g_array_append_val(open, i);
  }
  while (open->len > 0) {
    for (guint k = 0; k < open->len;) {
      guint i = g_array_index(open, guint, k);
      KdamondState state = kdamond_state_now(fs, i);

      if (state == KDAMOND_HIDDEN) {
        k++;
        continue;
      }
      g_array_remove_index(open, k);
      if (state == KDAMOND_RUNNING)
        look->running++;
      else if (kdamond_claimed(fs, run_dir, i))   /* taken while its state was hidden */
        look->claimed++;
      else {
        look->free_index = i;
        return TRUE;
      }
    }
    if (open->len > 0 && !patience_wait(patience))
      break;
  }
  look->hidden = open->len;
  return TRUE;
}

/* No free kdamond decided by this look: FALSE and why. Hidden states are EBUSY (the tracker's
 * thread tries again); none free at all is final. */
static gboolean
look_found_none(const TableLook *look, guint patience_ms, GError **error)
{
  if (look->hidden > 0) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_BUSY,
                "no free kdamond yet: the state of %u of %u kdamond(s) stayed hidden behind "
                "DAMON's sysfs lock (EBUSY) for %u ms", look->hidden, look->nr, patience_ms);
    return FALSE;
  }
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
              "no free kdamond: %u kdamond(s), none free (%u with a context or hmmv's record, "
              "%u more running); adding one would reset them (DAMON re-creates every kdamond "
              "on nr_kdamonds), so hmmv leaves them alone", look->nr, look->claimed,
              look->running);
  return FALSE;
}

gboolean
hmmv_damon_can_acquire(HmmvSysfs *fs, const char *run_dir, GError **error)
{
  Patience patience;
  TableLook look;

  patience_init(&patience, HMMV_DAMON_PATIENCE_MS, NULL);
  if (!look_at_table(fs, run_dir != NULL ? run_dir : HMMV_DAMON_RUN_DIR, &patience, &look,
                     error))
    return FALSE;
  if (look.free_index != G_MAXUINT || look.nr == 0)
    return TRUE;
  return look_found_none(&look, HMMV_DAMON_PATIENCE_MS, error);
}

/* Trackers set up on their own threads (damon.c), so two VMs may look for a free kdamond
 * at once: both would find the same one free before either wrote its record, or both add
 * kdamonds (the second nr_kdamonds write re-creating the directory the first is setting
 * up). Taking a kdamond, giving back added ones and cleaning up stale records hold this
 * lock: hmmv's own view of the kdamond table changes under it only. */
G_LOCK_DEFINE_STATIC(kdamond_table);

/* Takes the first free kdamond of one look at the table, or adds kdamonds when there is none
 * at all. Until 2026-12-04 a look that found none free was followed by a second one
 * (can_acquire), and a kdamond found free there was taken for "every kdamond is free": hmmv
 * wrote nr_kdamonds, which the kernel does whenever no kdamond runs, and so re-created the
 * kdamonds that other VMs' trackers were still setting up (off until their last write): their
 * next write found its file gone ("kdamonds/0/contexts/0/targets/0/pid_target: No such file
 * or directory", the race of issue 8, hmmvd-base run 1) and they were tracked for writes only.
 * A kdamond whose state DAMON's lock hid for all of patience_ms may be free: that is EBUSY,
 * tried again by the tracker's thread, not "none free". */
static gboolean
acquire_locked(HmmvSysfs *fs, const char *run_dir, HmmvDamonOps ops, int target_pid,
               guint patience_ms, GCancellable *cancellable, guint *index, GError **error)
{
  Patience patience;
  TableLook look;

  patience_init(&patience, patience_ms, cancellable);
  if (!look_at_table(fs, run_dir, &patience, &look, error))
    return FALSE;
  if (look.free_index == G_MAXUINT && look.nr > 0)
    return look_found_none(&look, patience_ms, error);
  if (look.free_index == G_MAXUINT) {
    /* No kdamond at all: writing nr_kdamonds re-creates nobody's. */
    if (!write_added(run_dir, 0, error) ||
        !write_nr_kdamonds(fs, DAMON_ADD_BATCH, &patience, error)) {
      g_prefix_error(error, "adding kdamonds: ");
      return FALSE;
    }
    look.free_index = 0;
  }
  if (!hmmv_damon_write_record(run_dir, look.free_index, hmmv_damon_ops_name(ops), target_pid,
                               error))
    return FALSE;
  *index = look.free_index;
  return TRUE;
}

gboolean
hmmv_damon_acquire(HmmvSysfs *fs, const char *run_dir, HmmvDamonOps ops, int target_pid,
                   guint patience_ms, GCancellable *cancellable, guint *index, GError **error)
{
  gboolean ok;

  G_LOCK(kdamond_table);
  ok = acquire_locked(fs, run_dir, ops, target_pid, patience_ms, cancellable, index, error);
  G_UNLOCK(kdamond_table);
  return ok;
}

/* "off", waiting out DAMON's lock (another state command holds it) within the caller's
 * patience. Until 2026-12-02 this gave up after 50 tries of 20 ms and the caller dropped the
 * record all the same: a VM removed while another VM's command held the lock for more than a
 * second left its kdamond running, and nobody would ever turn it off. Until 2026-12-04 each
 * of its two state reads waited 5 s on its own besides the write's patience. A state hidden
 * by the lock is not waited on: the write waits it out, and a kdamond that is off already
 * refuses "off" with another error than EBUSY (6.12: EINVAL or EPERM), read back after. */
static gboolean
turn_off(HmmvSysfs *fs, guint index, Patience *patience, GError **error)
{
  g_autofree char *path = hmmv_damon_path(index, "state");
  g_autoptr(GError) local_error = NULL;

  if (kdamond_state_now(fs, index) == KDAMOND_OFF)
    return TRUE;
  if (write_patiently(fs, path, "off", patience, &local_error))
    return TRUE;
  /* it ended by itself meanwhile (its target exited) */
  if (kdamond_state(fs, index, patience) == KDAMOND_OFF)
    return TRUE;
  g_propagate_error(error, g_steal_pointer(&local_error));
  return FALSE;
}

/* Gives back the kdamonds hmmv added once no hmmv kdamond is left, nothing runs and every
 * kdamond is free: then nr_kdamonds back to the count before loses nobody's setup. Records
 * and contexts first (no DAMON lock): any kdamond someone's, and no state is read at all.
 * Whatever the lock hides within the caller's patience is left for the next release or the
 * next hmmvd's cleanup (the file "added" stays). */
static void
maybe_take_back_added(HmmvSysfs *fs, const char *run_dir, Patience *patience)
{
  g_autofree char *added = g_build_filename(run_dir, "added", NULL);
  g_autofree char *text = NULL;
  guint64 before;
  guint nr;

  if (!g_file_get_contents(added, &text, NULL, NULL))
    return;
  if (!g_str_has_prefix(text, "before=") ||
      !g_ascii_string_to_unsigned(g_strstrip(text + 7), 10, 0, DAMON_MAX_KDAMONDS, &before,
                                  NULL) ||
      !read_nr_kdamonds(fs, &nr, NULL))
    return;
  for (guint i = 0; i < nr; i++) {
    if (kdamond_claimed(fs, run_dir, i))
      return;
  }
  for (guint i = 0; i < nr; i++) {
    if (kdamond_state(fs, i, patience) != KDAMOND_OFF || kdamond_claimed(fs, run_dir, i))
      return;
  }
  if (nr > before && !write_nr_kdamonds(fs, (guint)before, patience, NULL))
    return;
  (void)g_unlink(added);
}

/* One patience for the whole release: turning off, dropping the context, taking back. */
static gboolean
release_locked(HmmvSysfs *fs, const char *run_dir, guint index, guint patience_ms,
               GError **error)
{
  g_autofree char *contexts = hmmv_damon_path(index, "contexts/nr_contexts");
  g_autofree char *state = hmmv_damon_path(index, "state");
  g_autofree char *record = record_path(run_dir, index);
  Patience patience;
  Record mine;
  gboolean ours;

  /* Only while the record still names this process: a cleanup (hmmv_damon_cleanup_stale())
   * may have taken the kdamond back, and it may be someone else's by now. */
  ours = read_record(record, &mine) && mine.owner_pid == getpid();
  g_free(mine.ops);
  if (!ours)
    return TRUE;
  /* gone (nr_kdamonds was written since): nothing left to do */
  if (!hmmv_sysfs_exists(fs, state)) {
    (void)g_unlink(record);
    return TRUE;
  }
  patience_init(&patience, patience_ms, NULL);
  if (!turn_off(fs, index, &patience, error) ||
      !write_patiently(fs, contexts, "0", &patience, error)) {
    /* the record stays: the kdamond is still hmmv's, for the next hmmvd's cleanup */
    g_prefix_error(error, "kdamond %u not given back: ", index);
    return FALSE;
  }
  (void)g_unlink(record);
  maybe_take_back_added(fs, run_dir, &patience);
  return TRUE;
}

/* On the tracker's thread (damon.c), so it may wait: for DAMON's lock, and for the table's,
 * which another tracker's setup may hold while it waits out DAMON's lock. */
gboolean
hmmv_damon_release(HmmvSysfs *fs, const char *run_dir, guint index, guint patience_ms,
                   GError **error)
{
  gboolean ok;

  G_LOCK(kdamond_table);
  ok = release_locked(fs, run_dir, index, patience_ms, error);
  G_UNLOCK(kdamond_table);
  return ok;
}

static gboolean
owner_alive(int pid)
{
  return pid == getpid() || kill(pid, 0) == 0 || errno == EPERM;
}

/* The kdamond is as hmmv configured it: one context with the recorded operations and, for
 * vaddr, one target with the recorded pid. */
static gboolean
still_ours(HmmvSysfs *fs, guint index, const Record *record)
{
  g_autofree char *contexts = hmmv_damon_path(index, "contexts/nr_contexts");
  g_autofree char *ops_path = hmmv_damon_path(index, "contexts/0/operations");
  g_autofree char *targets = hmmv_damon_path(index, "contexts/0/targets/nr_targets");
  g_autofree char *pid_path = hmmv_damon_path(index, "contexts/0/targets/0/pid_target");
  g_autofree char *ops = NULL;
  guint64 value;

  if (!hmmv_sysfs_read_u64(fs, contexts, &value, NULL) || value != 1)
    return FALSE;
  if (!hmmv_sysfs_read(fs, ops_path, &ops, NULL) || g_strcmp0(ops, record->ops) != 0)
    return FALSE;
  if (!hmmv_sysfs_read_u64(fs, targets, &value, NULL) || value != 1)
    return FALSE;
  if ((g_strcmp0(record->ops, "vaddr") == 0 || g_strcmp0(record->ops, "fvaddr") == 0) &&
      (!hmmv_sysfs_read_u64(fs, pid_path, &value, NULL) || value != (guint64)record->target_pid))
    return FALSE;
  return TRUE;
}

static guint
cleanup_stale_locked(HmmvSysfs *fs, const char *run_dir, GError **error)
{
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *name;
  guint cleaned = 0, nr = 0;
  Patience patience;

  if (run_dir == NULL)
    run_dir = HMMV_DAMON_RUN_DIR;
  dir = g_dir_open(run_dir, 0, &local_error);
  if (dir == NULL) {
    if (g_error_matches(local_error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
      return 0;
    g_propagate_error(error, g_steal_pointer(&local_error));
    return 0;
  }
  if (!read_nr_kdamonds(fs, &nr, error))
    return 0;
  /* one patience for the whole cleanup: a record it could not clean stays for the next start */
  patience_init(&patience, HMMV_DAMON_PATIENCE_MS, NULL);
  while ((name = g_dir_read_name(dir)) != NULL) {
    g_autofree char *path = g_build_filename(run_dir, name, NULL);
    Record record;
    guint64 index;

    if (!g_str_has_prefix(name, "kdamond-") ||
        !g_ascii_string_to_unsigned(name + 8, 10, 0, DAMON_MAX_KDAMONDS, &index, NULL))
      continue;
    if (!read_record(path, &record)) {
      g_free(record.ops);
      continue;
    }
    if (owner_alive(record.owner_pid)) {
      g_free(record.ops);
      continue;
    }
    if (index < nr && still_ours(fs, (guint)index, &record)) {
      g_autofree char *contexts = hmmv_damon_path((guint)index, "contexts/nr_contexts");

      if (!turn_off(fs, (guint)index, &patience, NULL) ||
          !write_patiently(fs, contexts, "0", &patience, NULL)) {
        g_free(record.ops);
        continue;   /* the record stays: tried again at the next start */
      }
      cleaned++;
    }
    /* Changed hands (or gone): the record is stale either way, the kdamond is not ours. */
    (void)g_unlink(path);
    g_free(record.ops);
  }
  maybe_take_back_added(fs, run_dir, &patience);
  return cleaned;
}

guint
hmmv_damon_cleanup_stale(HmmvSysfs *fs, const char *run_dir, GError **error)
{
  guint cleaned;

  G_LOCK(kdamond_table);
  cleaned = cleanup_stale_locked(fs, run_dir, error);
  G_UNLOCK(kdamond_table);
  return cleaned;
}

/* Kernel symbols of the operations (mm/damon/vaddr.c, paddr.c): present when built in. */
static gboolean
kallsyms_has(const char *path, const char *symbol)
{
  g_autofree char *text = NULL;
  g_autofree char *needle = g_strdup_printf(" %s\n", symbol);

  if (!g_file_get_contents(path, &text, NULL, NULL))
    return FALSE;
  return strstr(text, needle) != NULL;
}

gboolean
hmmv_damon_probe(HmmvSysfs *fs, HmmvDamonOps ops, const char *kallsyms_path, GError **error)
{
  const char *name = hmmv_damon_ops_name(ops);
  guint nr;

  if (!hmmv_sysfs_exists(fs, "kdamonds/nr_kdamonds")) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "the kernel has no DAMON sysfs interface");
    return FALSE;
  }
  if (!read_nr_kdamonds(fs, &nr, error))
    return FALSE;
  for (guint i = 0; i < nr; i++) {
    g_autofree char *path = hmmv_damon_path(i, "contexts/0/avail_operations");
    g_autofree char *avail = NULL;
    g_auto(GStrv) words = NULL;

    if (!hmmv_sysfs_read(fs, path, &avail, NULL))
      continue;
    words = g_strsplit_set(avail, " \n", -1);
    if (g_strv_contains((const char *const *)words, name))
      return TRUE;
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "DAMON here offers \"%s\", not %s", g_strstrip(avail), name);
    return FALSE;
  }
  if (kallsyms_has(kallsyms_path != NULL ? kallsyms_path : "/proc/kallsyms",
                   ops == HMMV_DAMON_PADDR ? "damon_pa_check_accesses"
                                           : "damon_va_check_accesses"))
    return TRUE;
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
              "the kernel's DAMON has no %s operations", name);
  return FALSE;
}
