/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The fake DAMON sysfs tree: see damon-fake.h. */
#include "damon-fake.h"

#include <errno.h>
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _DamonFake {
  GMutex lock;
  GHashTable *files;        /* path -> value */
  GHashTable *dead_pids;
  GArray *accessed;         /* guint64 pairs */
  GArray *counts;           /* guint64 nr_accesses per pair */
  GPtrArray *writes;        /* "path" of every successful write */
  char *avail;
  char *scratch;
  GCond cond;               /* races: held and released */
  guint racy_left;          /* update commands still to come out empty (a race) */
  gboolean hold_armed;      /* the update command after them waits for a release */
  gboolean held;            /* one waits now */
  guint busy_left;          /* writes of state and nr_* still to fail with EBUSY */
  gboolean lock_held;       /* damon_fake_hold_lock(): all of them fail until released */
  guint busy_refused;       /* writes (and state reads) refused with EBUSY so far */
  GHashTable *running;      /* kdamond index -> "SAMPLE AGGR" it runs with (on, commit) */
  gboolean refuse_commit;   /* damon_fake_refuse_commit() */
  GThread *watched;         /* damon_fake_watch_thread() */
  guint watched_attempts;   /* writes it tried, refused or not */
  guint busy_state_reads;   /* damon_fake_busy_state_reads(): state reads still to fail */
  char *recreate_after;     /* damon_fake_recreate_after(): the path's end, or NULL */
};

static gboolean
fail(GError **error, int code, const char *path, const char *value)
{
  g_set_error(error, G_IO_ERROR, g_io_error_from_errno(code), "fake %s <- %s: %s", path,
              value, g_strerror(code));
  return FALSE;
}

static void
set(DamonFake *fake, const char *path, const char *value)
{
  g_hash_table_insert(fake->files, g_strdup(path), g_strdup(value));
}

static void
setf(DamonFake *fake, const char *value, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
setf(DamonFake *fake, const char *value, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *path = NULL;

  va_start(ap, fmt);
  path = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  set(fake, path, value);
}

static const char *
get(DamonFake *fake, const char *path)
{
  return g_hash_table_lookup(fake->files, path);
}

static guint64
getu(DamonFake *fake, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static guint64
getu(DamonFake *fake, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *path = NULL;
  const char *value;

  va_start(ap, fmt);
  path = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  value = get(fake, path);
  return value != NULL ? g_ascii_strtoull(value, NULL, 10) : 0;
}

/* Removes every file under dir/ whose next component is a number (the children). */
static void
remove_children(DamonFake *fake, const char *dir)
{
  GHashTableIter iter;
  gpointer key;
  g_autofree char *prefix = g_strconcat(dir, "/", NULL);
  gsize len = strlen(prefix);

  g_hash_table_iter_init(&iter, fake->files);
  while (g_hash_table_iter_next(&iter, &key, NULL)) {
    const char *path = key;

    if (g_str_has_prefix(path, prefix) && g_ascii_isdigit(path[len]))
      g_hash_table_iter_remove(&iter);
  }
}

static void
make_range(DamonFake *fake, const char *dir, const char *max)
{
  setf(fake, "0", "%s/min", dir);
  setf(fake, max, "%s/max", dir);
}

static void
make_context(DamonFake *fake, const char *dir)
{
  setf(fake, fake->avail, "%s/avail_operations", dir);
  setf(fake, "vaddr", "%s/operations", dir);
  setf(fake, "5000", "%s/monitoring_attrs/intervals/sample_us", dir);
  setf(fake, "100000", "%s/monitoring_attrs/intervals/aggr_us", dir);
  setf(fake, "60000000", "%s/monitoring_attrs/intervals/update_us", dir);
  setf(fake, "10", "%s/monitoring_attrs/nr_regions/min", dir);
  setf(fake, "1000", "%s/monitoring_attrs/nr_regions/max", dir);
  setf(fake, "0", "%s/targets/nr_targets", dir);
  setf(fake, "0", "%s/schemes/nr_schemes", dir);
}

static void
make_scheme(DamonFake *fake, const char *dir)
{
  g_autofree char *sz = g_strconcat(dir, "/access_pattern/sz", NULL);
  g_autofree char *nr = g_strconcat(dir, "/access_pattern/nr_accesses", NULL);
  g_autofree char *age = g_strconcat(dir, "/access_pattern/age", NULL);

  setf(fake, "stat", "%s/action", dir);
  make_range(fake, sz, "0");
  make_range(fake, nr, "0");
  make_range(fake, age, "0");
  setf(fake, "0", "%s/tried_regions/total_bytes", dir);
}

static void
make_kdamond(DamonFake *fake, guint index)
{
  setf(fake, "off", "kdamonds/%u/state", index);
  setf(fake, "-1", "kdamonds/%u/pid", index);
  setf(fake, "0", "kdamonds/%u/contexts/nr_contexts", index);
}

static gboolean
any_running(DamonFake *fake)
{
  guint64 nr = getu(fake, "kdamonds/nr_kdamonds");

  for (guint i = 0; i < nr; i++) {
    g_autofree char *path = g_strdup_printf("kdamonds/%u/state", i);

    if (g_strcmp0(get(fake, path), "on") == 0)
      return TRUE;
  }
  return FALSE;
}

/* "kdamonds/N/..." -> N, or -1 */
static int
kdamond_of(const char *path)
{
  if (!g_str_has_prefix(path, "kdamonds/") || !g_ascii_isdigit(path[9]))
    return -1;
  return atoi(path + 9);
}

static void
fill_tried_regions(DamonFake *fake, guint k)
{
  g_autofree char *dir = g_strdup_printf("kdamonds/%u/contexts/0/schemes/0/tried_regions", k);
  guint64 lo = getu(fake, "kdamonds/%u/contexts/0/schemes/0/access_pattern/nr_accesses/min", k);
  guint64 hi = getu(fake, "kdamonds/%u/contexts/0/schemes/0/access_pattern/nr_accesses/max", k);
  guint64 nr_ranges = getu(fake, "kdamonds/%u/contexts/0/targets/0/regions/nr_regions", k);
  guint out = 0;
  guint64 total = 0;
  char buf[32];

  remove_children(fake, dir);
  if (getu(fake, "kdamonds/%u/contexts/0/schemes/nr_schemes", k) == 0)
    return;
  for (guint r = 0; r < nr_ranges; r++) {
    guint64 start = getu(fake, "kdamonds/%u/contexts/0/targets/0/regions/%u/start", k, r);
    guint64 end = getu(fake, "kdamonds/%u/contexts/0/targets/0/regions/%u/end", k, r);
    guint64 pos = start;

    /* accessed ranges sorted by the test; walk them, emitting gaps between */
    for (guint a = 0; a <= fake->accessed->len / 2 && pos < end; a++) {
      guint64 as = a < fake->accessed->len / 2 ? g_array_index(fake->accessed, guint64, 2 * a) : end;
      guint64 ae = a < fake->accessed->len / 2 ? g_array_index(fake->accessed, guint64, 2 * a + 1) : end;
      guint64 count = a < fake->counts->len ? g_array_index(fake->counts, guint64, a) : 10;
      guint64 pieces[2][3] = { { pos, MIN(MAX(as, pos), end), 0 },
                               { MAX(as, pos), MIN(ae, end), count } };

      for (guint p = 0; p < 2; p++) {
        if (pieces[p][0] >= pieces[p][1] || pieces[p][2] < lo || pieces[p][2] > hi)
          continue;
        g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, pieces[p][0]);
        setf(fake, buf, "%s/%u/start", dir, out);
        g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, pieces[p][1]);
        setf(fake, buf, "%s/%u/end", dir, out);
        g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, pieces[p][2]);
        setf(fake, buf, "%s/%u/nr_accesses", dir, out);
        setf(fake, "3", "%s/%u/age", dir, out);
        total += pieces[p][1] - pieces[p][0];
        out++;
      }
      pos = MAX(pos, MIN(ae, end));
    }
  }
  g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, total);
  setf(fake, buf, "%s/total_bytes", dir);
}

/* "on" and "commit" hand the kdamond the intervals and the region limits written: EINVAL
 * when sample_us > aggr_us, min < 3 or min > max (damon_set_attrs()). */
static gboolean
take_intervals(DamonFake *fake, guint k, const char *path, const char *cmd, GError **error)
{
  guint64 sample = getu(fake, "kdamonds/%u/contexts/0/monitoring_attrs/intervals/sample_us", k);
  guint64 aggr = getu(fake, "kdamonds/%u/contexts/0/monitoring_attrs/intervals/aggr_us", k);
  guint64 min = getu(fake, "kdamonds/%u/contexts/0/monitoring_attrs/nr_regions/min", k);
  guint64 max = getu(fake, "kdamonds/%u/contexts/0/monitoring_attrs/nr_regions/max", k);

  if (sample > aggr || min < 3 || min > max)
    return fail(error, EINVAL, path, cmd);
  g_hash_table_insert(fake->running, GUINT_TO_POINTER(k),
                      g_strdup_printf("%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                                      " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                      sample, aggr, min, max));
  return TRUE;
}

static gboolean
state_command(DamonFake *fake, guint k, const char *path, const char *cmd, GError **error)
{
  gboolean on = g_strcmp0(get(fake, path), "on") == 0;

  if (strcmp(cmd, "on") == 0) {
    g_autofree char *ops = NULL;
    g_auto(GStrv) avail = g_strsplit(fake->avail, " ", -1);
    guint64 min, max;

    if (on)
      return fail(error, EBUSY, path, cmd);
    if (getu(fake, "kdamonds/%u/contexts/nr_contexts", k) != 1)
      return fail(error, EINVAL, path, cmd);
    ops = g_strdup_printf("kdamonds/%u/contexts/0/operations", k);
    if (!g_strv_contains((const char *const *)avail, get(fake, ops)))
      return fail(error, EINVAL, path, cmd);
    min = getu(fake, "kdamonds/%u/contexts/0/monitoring_attrs/nr_regions/min", k);
    max = getu(fake, "kdamonds/%u/contexts/0/monitoring_attrs/nr_regions/max", k);
    if (min < 3 || min > max)
      return fail(error, EINVAL, path, cmd);
    if (strcmp(get(fake, ops), "vaddr") == 0 || strcmp(get(fake, ops), "fvaddr") == 0) {
      guint64 nr = getu(fake, "kdamonds/%u/contexts/0/targets/nr_targets", k);

      for (guint t = 0; t < nr; t++) {
        guint64 pid = getu(fake, "kdamonds/%u/contexts/0/targets/%u/pid_target", k, t);

        if (pid == 0 || g_hash_table_contains(fake->dead_pids, GUINT_TO_POINTER((guint)pid)))
          return fail(error, ESRCH, path, cmd);
      }
    }
    if (!take_intervals(fake, k, path, cmd, error))
      return FALSE;
    set(fake, path, "on");
    setf(fake, "4242", "kdamonds/%u/pid", k);
    return TRUE;
  }
  if (strcmp(cmd, "off") == 0) {
    if (!on)
      return fail(error, EINVAL, path, cmd);
    set(fake, path, "off");
    setf(fake, "-1", "kdamonds/%u/pid", k);
    return TRUE;
  }
  if (strcmp(cmd, "commit") == 0 || strcmp(cmd, "update_schemes_tried_regions") == 0 ||
      strcmp(cmd, "clear_schemes_tried_regions") == 0 ||
      strcmp(cmd, "update_schemes_stats") == 0) {
    g_autofree char *dir = NULL;

    if (!on)
      return fail(error, EINVAL, path, cmd);
    if (strcmp(cmd, "commit") == 0 && fake->refuse_commit)
      return fail(error, EINVAL, path, cmd);
    if (strcmp(cmd, "commit") == 0 && !take_intervals(fake, k, path, cmd, error))
      return FALSE;
    if (strcmp(cmd, "update_schemes_tried_regions") == 0 && fake->racy_left > 0) {
      g_autofree char *tried = g_strdup_printf("kdamonds/%u/contexts/0/schemes/0/"
                                               "tried_regions", k);

      /* as the kernel's command that raced the kdamond's refill: no region at all */
      remove_children(fake, tried);
      fake->racy_left--;
    } else if (strcmp(cmd, "update_schemes_tried_regions") == 0) {
      fill_tried_regions(fake, k);
    }
    dir = g_strdup_printf("kdamonds/%u/contexts/0/schemes/0/tried_regions", k);
    if (strcmp(cmd, "clear_schemes_tried_regions") == 0)
      remove_children(fake, dir);
    return TRUE;
  }
  return fail(error, EINVAL, path, cmd);
}

static gboolean
nr_write(DamonFake *fake, const char *path, guint64 nr, GError **error)
{
  g_autofree char *dir = g_path_get_dirname(path);
  const char *base = strrchr(path, '/') + 1;
  int k = kdamond_of(path);

  if (strcmp(path, "kdamonds/nr_kdamonds") == 0) {
    if (any_running(fake))
      return fail(error, EBUSY, path, "nr");
    remove_children(fake, "kdamonds");
    for (guint i = 0; i < nr; i++)
      make_kdamond(fake, i);
  } else if (strcmp(base, "nr_contexts") == 0) {
    if (nr > 1)
      return fail(error, EINVAL, path, "nr");
    remove_children(fake, dir);
    if (nr == 1) {
      g_autofree char *ctx = g_strconcat(dir, "/0", NULL);

      make_context(fake, ctx);
    }
  } else {
    remove_children(fake, dir);
    for (guint i = 0; i < nr; i++) {
      g_autofree char *child = g_strdup_printf("%s/%u", dir, i);

      if (strcmp(base, "nr_targets") == 0) {
        setf(fake, "0", "%s/pid_target", child);
        setf(fake, "0", "%s/regions/nr_regions", child);
      } else if (strcmp(base, "nr_regions") == 0) {
        setf(fake, "0", "%s/start", child);
        setf(fake, "0", "%s/end", child);
      } else if (strcmp(base, "nr_schemes") == 0) {
        make_scheme(fake, child);
      }
    }
  }
  (void)k;
  {
    char buf[32];

    g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, nr);
    set(fake, path, buf);
  }
  return TRUE;
}

static gboolean
fake_write(HmmvSysfs *fs, const char *path, const char *value, GError **error)
{
  DamonFake *fake = fs->priv;
  g_autofree char *v = g_strstrip(g_strdup(value));
  const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
  int k = kdamond_of(path);
  guint64 sleep_us;
  gboolean ok;

  g_mutex_lock(&fake->lock);
  if (fake->watched != NULL && g_thread_self() == fake->watched)
    fake->watched_attempts++;
  /* damon_fake_race(): the command after the racy ones waits for damon_fake_release() */
  while (strcmp(base, "state") == 0 && strcmp(v, "update_schemes_tried_regions") == 0 &&
         fake->hold_armed && fake->racy_left == 0) {
    fake->held = TRUE;
    g_cond_broadcast(&fake->cond);
    g_cond_wait(&fake->cond, &fake->lock);
  }
  if ((fake->lock_held || fake->busy_left > 0) &&
      (strcmp(base, "state") == 0 ||
       (g_str_has_prefix(base, "nr_") && strcmp(base, "nr_accesses") != 0))) {
    if (!fake->lock_held)
      fake->busy_left--;
    fake->busy_refused++;
    ok = fail(error, EBUSY, path, v);
  } else if (get(fake, path) == NULL || strcmp(base, "avail_operations") == 0 ||
      strcmp(base, "pid") == 0 || strcmp(base, "total_bytes") == 0 ||
      strstr(path, "tried_regions/") != NULL) {
    ok = fail(error, get(fake, path) == NULL ? ENOENT : EACCES, path, v);
  } else if (strcmp(base, "state") == 0) {
    ok = state_command(fake, (guint)k, path, v, error);
  } else if (g_str_has_prefix(base, "nr_") && strcmp(base, "nr_accesses") != 0) {
    guint64 nr;

    ok = g_ascii_string_to_unsigned(v, 10, 0, 100000, &nr, NULL)
           ? nr_write(fake, path, nr, error) : fail(error, EINVAL, path, v);
  } else if (strcmp(base, "operations") == 0) {
    g_auto(GStrv) avail = g_strsplit(fake->avail, " ", -1);

    ok = g_strv_contains((const char *const *)avail, v) ? (set(fake, path, v), TRUE)
                                                        : fail(error, EINVAL, path, v);
  } else if (strcmp(base, "action") == 0) {
    ok = (set(fake, path, v), TRUE);
  } else {
    guint64 number;

    ok = g_ascii_string_to_unsigned(v, 10, 0, G_MAXUINT64, &number, NULL)
           ? (set(fake, path, v), TRUE) : fail(error, EINVAL, path, v);
  }
  if (ok)
    g_ptr_array_add(fake->writes, g_strdup(path));
  if (ok && fake->recreate_after != NULL && g_str_has_suffix(path, fake->recreate_after)) {
    /* another user's write of nr_kdamonds, the count unchanged: every kdamond made again */
    guint64 nr = getu(fake, "kdamonds/nr_kdamonds");

    g_clear_pointer(&fake->recreate_after, g_free);
    remove_children(fake, "kdamonds");
    for (guint i = 0; i < nr; i++)
      make_kdamond(fake, i);
  }
  sleep_us = ok && strcmp(v, "update_schemes_tried_regions") == 0
               ? MIN(getu(fake, "kdamonds/%d/contexts/0/monitoring_attrs/intervals/aggr_us", k),
                     20000u)
               : 0;
  g_mutex_unlock(&fake->lock);
  /* the kernel's command waits for the kdamond's next aggregation */
  if (sleep_us > 0)
    g_usleep(sleep_us);
  return ok;
}

void
damon_fake_busy(DamonFake *fake, guint nr_writes)
{
  g_mutex_lock(&fake->lock);
  fake->busy_left = nr_writes;
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_hold_lock(DamonFake *fake, gboolean held)
{
  g_mutex_lock(&fake->lock);
  fake->lock_held = held;
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_busy_state_reads(DamonFake *fake, guint nr_reads)
{
  g_mutex_lock(&fake->lock);
  fake->busy_state_reads = nr_reads;
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_recreate_after(DamonFake *fake, const char *path_end)
{
  g_mutex_lock(&fake->lock);
  g_free(fake->recreate_after);
  fake->recreate_after = g_strdup(path_end);
  g_mutex_unlock(&fake->lock);
}

guint
damon_fake_busy_refused(DamonFake *fake)
{
  guint refused;

  g_mutex_lock(&fake->lock);
  refused = fake->busy_refused;
  g_mutex_unlock(&fake->lock);
  return refused;
}

static gboolean
fake_read(HmmvSysfs *fs, const char *path, char **contents, GError **error)
{
  DamonFake *fake = fs->priv;
  const char *value;

  const char *base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
  gboolean busy;

  g_mutex_lock(&fake->lock);
  /* 6.12's state_show takes damon_sysfs_lock with mutex_trylock */
  busy = (fake->lock_held || fake->busy_state_reads > 0) && strcmp(base, "state") == 0 &&
         kdamond_of(path) >= 0;
  if (busy && !fake->lock_held)
    fake->busy_state_reads--;
  value = busy ? NULL : get(fake, path);
  if (value != NULL)
    *contents = g_strdup(value);
  g_mutex_unlock(&fake->lock);
  if (busy) {
    g_mutex_lock(&fake->lock);
    fake->busy_refused++;
    g_mutex_unlock(&fake->lock);
    return fail(error, EBUSY, path, "(read)");
  }
  if (value == NULL)
    return fail(error, ENOENT, path, "(read)");
  return TRUE;
}

static gboolean
fake_exists(HmmvSysfs *fs, const char *path)
{
  DamonFake *fake = fs->priv;
  g_autofree char *prefix = g_strconcat(path, "/", NULL);
  GHashTableIter iter;
  gpointer key;
  gboolean found = FALSE;

  g_mutex_lock(&fake->lock);
  g_hash_table_iter_init(&iter, fake->files);
  while (!found && g_hash_table_iter_next(&iter, &key, NULL))
    found = strcmp(key, path) == 0 || g_str_has_prefix(key, prefix);
  g_mutex_unlock(&fake->lock);
  return found;
}

static void
fake_destroy(HmmvSysfs *fs)
{
  DamonFake *fake = fs->priv;

  g_hash_table_unref(fake->files);
  g_hash_table_unref(fake->dead_pids);
  g_hash_table_unref(fake->running);
  g_array_unref(fake->accessed);
  g_array_unref(fake->counts);
  g_ptr_array_unref(fake->writes);
  g_mutex_clear(&fake->lock);
  g_cond_clear(&fake->cond);
  g_free(fake->avail);
  g_free(fake->scratch);
  g_free(fake->recreate_after);
  g_free(fake);
}

static const struct hmmv_sysfs_ops fake_ops = {
  .name = "damon-fake",
  .read = fake_read,
  .write = fake_write,
  .exists = fake_exists,
  .destroy = fake_destroy,
};

HmmvSysfs *
damon_fake_new(const char *avail, DamonFake **out)
{
  DamonFake *fake = g_new0(DamonFake, 1);

  g_mutex_init(&fake->lock);
  g_cond_init(&fake->cond);
  fake->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  fake->dead_pids = g_hash_table_new(g_direct_hash, g_direct_equal);
  fake->running = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
  fake->accessed = g_array_new(FALSE, FALSE, sizeof(guint64));
  fake->counts = g_array_new(FALSE, FALSE, sizeof(guint64));
  fake->writes = g_ptr_array_new_with_free_func(g_free);
  fake->avail = g_strdup(avail);
  set(fake, "kdamonds/nr_kdamonds", "0");
  *out = fake;
  return hmmv_sysfs_new(&fake_ops, fake);
}

void
damon_fake_add_foreign(DamonFake *fake, gboolean running)
{
  guint64 nr;

  g_mutex_lock(&fake->lock);
  nr = getu(fake, "kdamonds/nr_kdamonds");
  /* as another tool would: kdamonds re-created (all off), then its own set up */
  remove_children(fake, "kdamonds");
  for (guint i = 0; i <= nr; i++)
    make_kdamond(fake, i);
  {
    char buf[32];

    g_snprintf(buf, sizeof(buf), "%" G_GUINT64_FORMAT, nr + 1);
    set(fake, "kdamonds/nr_kdamonds", buf);
  }
  setf(fake, "1", "kdamonds/%u/contexts/nr_contexts", (guint)nr);
  {
    g_autofree char *ctx = g_strdup_printf("kdamonds/%u/contexts/0", (guint)nr);

    make_context(fake, ctx);
  }
  setf(fake, "paddr", "kdamonds/%u/contexts/0/operations", (guint)nr);
  setf(fake, running ? "on" : "off", "kdamonds/%u/state", (guint)nr);
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_set_accessed_counts(DamonFake *fake, const guint64 *ranges, const guint64 *counts,
                               guint nr_ranges)
{
  g_mutex_lock(&fake->lock);
  g_array_set_size(fake->accessed, 0);
  g_array_append_vals(fake->accessed, ranges, nr_ranges * 2);
  g_array_set_size(fake->counts, 0);
  if (counts != NULL)
    g_array_append_vals(fake->counts, counts, nr_ranges);
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_set_accessed(DamonFake *fake, const guint64 *ranges, guint nr_ranges)
{
  damon_fake_set_accessed_counts(fake, ranges, NULL, nr_ranges);
}

void
damon_fake_set_pid_alive(DamonFake *fake, int pid, gboolean alive)
{
  g_mutex_lock(&fake->lock);
  if (alive)
    g_hash_table_remove(fake->dead_pids, GUINT_TO_POINTER((guint)pid));
  else
    g_hash_table_add(fake->dead_pids, GUINT_TO_POINTER((guint)pid));
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_end_kdamond(DamonFake *fake, guint index)
{
  g_mutex_lock(&fake->lock);
  setf(fake, "off", "kdamonds/%u/state", index);
  g_mutex_unlock(&fake->lock);
}

guint
damon_fake_writes_under(DamonFake *fake, guint index)
{
  g_autofree char *prefix = g_strdup_printf("kdamonds/%u/", index);
  guint count = 0;

  g_mutex_lock(&fake->lock);
  for (guint i = 0; i < fake->writes->len; i++)
    count += g_str_has_prefix(g_ptr_array_index(fake->writes, i), prefix);
  g_mutex_unlock(&fake->lock);
  return count;
}

guint
damon_fake_nr_writes(DamonFake *fake, const char *path)
{
  guint count = 0;

  g_mutex_lock(&fake->lock);
  for (guint i = 0; i < fake->writes->len; i++)
    count += strcmp(g_ptr_array_index(fake->writes, i), path) == 0;
  g_mutex_unlock(&fake->lock);
  return count;
}

const char *
damon_fake_get(DamonFake *fake, const char *path)
{
  g_mutex_lock(&fake->lock);
  g_free(fake->scratch);
  fake->scratch = g_strdup(get(fake, path));
  g_mutex_unlock(&fake->lock);
  return fake->scratch;
}

void
damon_fake_race(DamonFake *fake, guint nr_empty)
{
  g_mutex_lock(&fake->lock);
  fake->racy_left = nr_empty;
  fake->hold_armed = TRUE;
  fake->held = FALSE;
  g_mutex_unlock(&fake->lock);
}

gboolean
damon_fake_wait_held(DamonFake *fake)
{
  gint64 deadline = g_get_monotonic_time() + 60 * G_TIME_SPAN_SECOND;
  gboolean held;

  g_mutex_lock(&fake->lock);
  while (!fake->held && g_cond_wait_until(&fake->cond, &fake->lock, deadline))
    ;
  held = fake->held;
  g_mutex_unlock(&fake->lock);
  return held;
}

gboolean
damon_fake_is_held(DamonFake *fake)
{
  gboolean held;

  g_mutex_lock(&fake->lock);
  held = fake->held;
  g_mutex_unlock(&fake->lock);
  return held;
}

void
damon_fake_release(DamonFake *fake)
{
  g_mutex_lock(&fake->lock);
  fake->hold_armed = FALSE;
  fake->held = FALSE;
  g_cond_broadcast(&fake->cond);
  g_mutex_unlock(&fake->lock);
}

void
damon_fake_watch_thread(DamonFake *fake, GThread *thread)
{
  g_mutex_lock(&fake->lock);
  fake->watched = thread;
  fake->watched_attempts = 0;
  g_mutex_unlock(&fake->lock);
}

guint
damon_fake_watched_attempts(DamonFake *fake)
{
  guint attempts;

  g_mutex_lock(&fake->lock);
  attempts = fake->watched_attempts;
  g_mutex_unlock(&fake->lock);
  return attempts;
}

gboolean
damon_fake_running_intervals(DamonFake *fake, guint index, guint64 *sample_us,
                             guint64 *aggr_us)
{
  const char *value;
  gboolean found;

  g_mutex_lock(&fake->lock);
  value = g_hash_table_lookup(fake->running, GUINT_TO_POINTER(index));
  found = value != NULL && sscanf(value, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                  sample_us, aggr_us) == 2;
  g_mutex_unlock(&fake->lock);
  return found;
}

gboolean
damon_fake_running_nr_regions(DamonFake *fake, guint index, guint64 *min, guint64 *max)
{
  const char *value;
  guint64 sample_us, aggr_us;
  gboolean found;

  g_mutex_lock(&fake->lock);
  value = g_hash_table_lookup(fake->running, GUINT_TO_POINTER(index));
  found = value != NULL && sscanf(value, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT
                                  " %" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT,
                                  &sample_us, &aggr_us, min, max) == 4;
  g_mutex_unlock(&fake->lock);
  return found;
}

void
damon_fake_refuse_commit(DamonFake *fake)
{
  g_mutex_lock(&fake->lock);
  fake->refuse_commit = TRUE;
  g_mutex_unlock(&fake->lock);
}
