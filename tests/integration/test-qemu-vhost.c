/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A vhost-user-net device beside the write export, with the real patched QEMU (TCG) and a
 * real vhost-user back-end process (vhost-user-backend.py, QEMU's docs/interop/vhost-user.rst)
 * that logs every request QEMU sends it (issue 9, E4c: "migration blockers (a vhost device
 * without LOG_ALL aborts QEMU in vhost_log_global_start() today) make hmmv-start fail").
 *
 *   test-qemu-vhost BACKEND.py
 *     at-start     a VM started with -chardev socket -netdev vhost-user -device
 *                  virtio-net-pci whose back-end lacks VHOST_F_LOG_ALL: QEMU's own migration
 *                  blocker names vhost (query-migrate, migrate), hmmv-start fails naming
 *                  it, nothing is exported, the guest runs on, quit exits 0
 *     hot-plug     the same device hot-plugged (chardev-add, netdev_add, device_add) while
 *                  the export runs: netdev_add fails with QEMU's refusal naming hmmv (0017;
 *                  before it, QEMU reconnected to the back-end forever inside netdev_add),
 *                  the export publishes on (a guest phase harvested exactly), QEMU alive;
 *                  after hmmv-stop the same hot-plug works and hmmv-start then refuses;
 *                  quit exits 0
 *     log-all      a back-end that offers LOG_ALL blocks nothing: hmmv-start succeeds with
 *                  its NIC there, another hot-plugged while the export runs is accepted,
 *                  the export stays exact, and QEMU sets no vhost log up (it does so only
 *                  when a driver starts the device)
 *
 * Guest RAM is a shared memfd (vhost-user maps it in the back-end). The test guest has no
 * virtio driver, so the device never starts: QEMU's messages are those of device set-up.
 * Skips (77) with the reason without vhost-user in the QEMU build (qemu-patches/build.sh
 * enables it), without python3, or as non-root.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BASE_PFN 0x1000u    /* the guest's default window base, 16 MiB */
#define SPAN 2048
#define SERIAL_TIMEOUT_MS 60000
#define QMP_TIMEOUT_MS 60000     /* liveness: a hot-plug that never returns fails the test */
#define RAM_MIB 128

static char *qemu_path;
static char *guest_path;
static char *backend_script;
static char *scratch;       /* the back-ends' directories; removed after the suite, also on failure */

/* --- the back-end process ----------------------------------------------------------- */

typedef struct {
  GPid pid;
  char *dir;
  char *sock;
  char *log;
} Backend;

static void
backend_child_setup(gpointer data)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a test that crashed */
}

/* The events the back-end logged so far (JsonObject, one per line). */
static GPtrArray *
backend_events(Backend *be)
{
  GPtrArray *events = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents(be->log, &text, NULL, NULL))
    return events;
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) node = NULL;

    if (lines[i][0] == '\0' || lines[i + 1] == NULL)   /* a last line may be half written */
      continue;
    node = json_from_string(lines[i], &error);
    ck_assert_msg(node != NULL && JSON_NODE_HOLDS_OBJECT(node), "back-end log line %u: %s",
                  i, error ? error->message : lines[i]);
    g_ptr_array_add(events, json_object_ref(json_node_get_object(node)));
  }
  return events;
}

/* How many logged events are "event" (and, for requests, of request name; NULL: any), on
 * connection conn (0: any). */
static guint
backend_count(Backend *be, const char *event, const char *request, gint64 conn)
{
  g_autoptr(GPtrArray) events = backend_events(be);
  guint n = 0;

  for (guint i = 0; i < events->len; i++) {
    JsonObject *e = events->pdata[i];

    if (g_strcmp0(json_object_get_string_member_with_default(e, "event", ""), event) != 0)
      continue;
    if (request != NULL &&
        g_strcmp0(json_object_get_string_member_with_default(e, "request", ""), request) != 0)
      continue;
    if (conn != 0 && json_object_get_int_member_with_default(e, "conn", 0) != conn)
      continue;
    n++;
  }
  return n;
}

/* Fails the test on a request the back-end logged as an error (one it refused). */
static void
backend_assert_no_error(Backend *be)
{
  g_autoptr(GPtrArray) events = backend_events(be);

  for (guint i = 0; i < events->len; i++) {
    JsonObject *e = events->pdata[i];

    ck_assert_msg(!json_object_has_member(e, "error"), "the back-end refused %s: %s",
                  json_object_get_string_member_with_default(e, "request", "?"),
                  json_object_get_string_member_with_default(e, "error", "?"));
  }
}

/* Waits (liveness bound) until the back-end logged at least n events "event". */
static void
backend_wait(Backend *be, const char *event, guint n)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)SERIAL_TIMEOUT_MS * 1000;

  while (backend_count(be, event, NULL, 0) < n) {
    ck_assert_msg(g_get_monotonic_time() < deadline, "the back-end never logged %u \"%s\"",
                  n, event);
    ck_assert_msg(waitpid(be->pid, NULL, WNOHANG) == 0, "the back-end exited");
    g_usleep(20000);
  }
}

static Backend *
backend_start(gboolean log_all)
{
  g_autoptr(GError) error = NULL;
  Backend *be = g_new0(Backend, 1);
  const char *argv[9];
  guint n = 0;

  be->dir = g_build_filename(scratch, "backend-XXXXXX", NULL);
  ck_assert_msg(g_mkdtemp(be->dir) != NULL, "%s: %s", be->dir, g_strerror(errno));
  be->sock = g_build_filename(be->dir, "vhost-user.sock", NULL);
  be->log = g_build_filename(be->dir, "requests.log", NULL);
  argv[n++] = "python3";
  argv[n++] = backend_script;
  argv[n++] = "--socket";
  argv[n++] = be->sock;
  argv[n++] = "--log";
  argv[n++] = be->log;
  argv[n++] = "--log-shmfd";           /* so the blocker QEMU adds is LOG_ALL's */
  if (log_all)
    argv[n++] = "--log-all";
  argv[n] = NULL;
  ck_assert_msg(g_spawn_async(NULL, (char **)argv, NULL,
                              G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                              backend_child_setup, NULL, &be->pid, &error),
                "cannot start the back-end: %s", error ? error->message : "");
  backend_wait(be, "listening", 1);
  return be;
}

static void
backend_free(Backend *be)
{
  if (be == NULL)
    return;
  if (be->pid > 0) {
    kill(be->pid, SIGKILL);
    waitpid(be->pid, NULL, 0);
  }
  g_unlink(be->sock);
  g_unlink(be->log);
  g_rmdir(be->dir);
  g_free(be->sock);
  g_free(be->log);
  g_free(be->dir);
  g_free(be);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Backend, backend_free)

/* --- QEMU ------------------------------------------------------------------------------ */

/* The shared-memory guest RAM vhost-user needs, plus more arguments (NULL-ended, may be
 * NULL): the QEMU with the test guest, up and its QMP connected (the caller's). */
static HmmvQemuProc *
qemu_start(const char *append, const char *const *more, HmmvQmp **qmp)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) extra = g_ptr_array_new_with_free_func(g_free);
  g_autofree char *ready = NULL;
  HmmvQemuProc *proc;

  g_ptr_array_add(extra, g_strdup("-object"));
  g_ptr_array_add(extra, g_strdup_printf("memory-backend-memfd,id=ram0,size=%uM,share=on",
                                         RAM_MIB));
  g_ptr_array_add(extra, g_strdup("-machine"));
  g_ptr_array_add(extra, g_strdup("memory-backend=ram0"));
  for (guint i = 0; more != NULL && more[i] != NULL; i++)
    g_ptr_array_add(extra, g_strdup(more[i]));
  g_ptr_array_add(extra, NULL);
  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", RAM_MIB, append,
                              (const char *const *)extra->pdata, &error);
  ck_assert_msg(proc != NULL, "%s", error ? error->message : "");
  ready = hmmv_qemu_proc_expect(proc, "HMMV-GUEST-READY", SERIAL_TIMEOUT_MS);
  ck_assert_msg(ready != NULL, "the guest did not come up (QEMU exit %d)",
                hmmv_qemu_proc_wait(proc, 0));
  *qmp = hmmv_qemu_proc_qmp(proc, &error);
  ck_assert_msg(*qmp != NULL, "%s", error ? error->message : "");
  hmmv_qmp_set_timeout_ms(*qmp, QMP_TIMEOUT_MS);
  return proc;
}

/* QEMU is alive and its guest runs (query-status). */
static void
assert_running(HmmvQemuProc *proc, HmmvQmp *qmp)
{
  g_autoptr(JsonNode) ret = NULL;

  ck_assert_msg(hmmv_qemu_proc_wait(proc, 0) == -1, "QEMU exited");
  ret = hmmv_test_qmp_ok(qmp, "query-status", NULL);
  ck_assert_str_eq(json_object_get_string_member_with_default(json_node_get_object(ret),
                                                              "status", "?"), "running");
}

/* quit: QEMU exits 0 (it never aborted). */
static void
quit_clean(HmmvQemuProc *proc, HmmvQmp *qmp)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(qmp, "quit", NULL);
  int status = hmmv_qemu_proc_wait(proc, SERIAL_TIMEOUT_MS);

  printf("# quit: QEMU exit status %d\n", status);
  ck_assert_int_eq(status, 0);
}

/* QEMU's migration blockers (query-migrate's blocked-reasons), joined; "" when none. */
static char *
blocked_reasons(HmmvQmp *qmp)
{
  g_autoptr(JsonNode) ret = hmmv_test_qmp_ok(qmp, "query-migrate", NULL);
  JsonObject *info = json_node_get_object(ret);
  g_autoptr(GString) all = g_string_new(NULL);
  JsonArray *reasons;

  if (!json_object_has_member(info, "blocked-reasons"))
    return g_string_free(g_steal_pointer(&all), FALSE);
  reasons = json_object_get_array_member(info, "blocked-reasons");
  for (guint i = 0; i < json_array_get_length(reasons); i++)
    g_string_append_printf(all, "%s%s", i ? "; " : "", json_array_get_string_element(reasons, i));
  return g_string_free(g_steal_pointer(&all), FALSE);
}

/* The three hot-plug steps of a vhost-user NIC named id on the back-end's socket; NULL, or
 * the first error (the steps after it are not tried). *step says which failed. */
static GError *
hotplug(HmmvQmp *qmp, Backend *be, const char *id, const char **step)
{
  g_autofree char *chr_id = g_strdup_printf("%s-chr", id);
  g_autofree char *net_id = g_strdup_printf("%s-net", id);
  GError *error = NULL;

  {
    g_autoptr(JsonObject) args = json_object_new();
    JsonObject *backend = json_object_new();
    JsonObject *data = json_object_new();
    JsonObject *addr = json_object_new();
    JsonObject *unix_addr = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(unix_addr, "path", be->sock);
    json_object_set_string_member(addr, "type", "unix");
    json_object_set_object_member(addr, "data", unix_addr);
    json_object_set_object_member(data, "addr", addr);
    json_object_set_boolean_member(data, "server", FALSE);
    json_object_set_string_member(backend, "type", "socket");
    json_object_set_object_member(backend, "data", data);
    json_object_set_string_member(args, "id", chr_id);
    json_object_set_object_member(args, "backend", backend);
    *step = "chardev-add";
    ret = hmmv_qmp_execute(qmp, "chardev-add", args, &error);
    if (ret == NULL)
      return error;
  }
  {
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "type", "vhost-user");
    json_object_set_string_member(args, "id", net_id);
    json_object_set_string_member(args, "chardev", chr_id);
    *step = "netdev_add";
    ret = hmmv_qmp_execute(qmp, "netdev_add", args, &error);
    if (ret == NULL)
      return error;
  }
  {
    g_autoptr(JsonObject) args = json_object_new();
    g_autoptr(JsonNode) ret = NULL;

    json_object_set_string_member(args, "driver", "virtio-net-pci");
    json_object_set_string_member(args, "netdev", net_id);
    json_object_set_string_member(args, "id", id);
    *step = "device_add";
    ret = hmmv_qmp_execute(qmp, "device_add", args, &error);
    if (ret == NULL)
      return error;
  }
  *step = NULL;
  return NULL;
}

/* The chardev of a netdev that failed is gone (the netdev's clean-up deletes it) or free:
 * chardev-remove of it succeeds (not "busy"). */
static void
chardev_gone_or_free(HmmvQmp *qmp, const char *id)
{
  g_autoptr(JsonNode) list = hmmv_test_qmp_ok(qmp, "query-chardev", NULL);
  JsonArray *chardevs = json_node_get_array(list);

  for (guint i = 0; i < json_array_get_length(chardevs); i++) {
    JsonObject *c = json_array_get_object_element(chardevs, i);
    g_autoptr(JsonObject) args = NULL;
    g_autoptr(JsonNode) ret = NULL;

    if (g_strcmp0(json_object_get_string_member_with_default(c, "label", ""), id) != 0)
      continue;
    args = json_object_new();
    json_object_set_string_member(args, "id", id);
    ret = hmmv_test_qmp_ok(qmp, "chardev-remove", args);
    printf("# chardev %s was left, removed\n", id);
    return;
  }
  printf("# chardev %s went with the netdev\n", id);
}

/* What a back-end saw of one device set-up on connection conn: the requests QEMU 10.0's
 * vhost_user_backend_init() and vhost_dev_init() send (vhost-user.rst), none refused, and
 * nothing of dirty logging: no SET_LOG_BASE, no SET_FEATURES (the device never started). */
static void
assert_setup_seen(Backend *be, gint64 conn)
{
  const char *const once[] = { "GET_PROTOCOL_FEATURES", "SET_PROTOCOL_FEATURES",
                               "GET_QUEUE_NUM", "SET_OWNER" };
  gint64 deadline = g_get_monotonic_time() + (gint64)SERIAL_TIMEOUT_MS * 1000;

  /* SET_VRING_ERR ends the set-up and wants no reply: QEMU may go on before the back-end
   * logged it, so wait for both (a liveness bound) before counting. */
  while (backend_count(be, "request", "SET_VRING_ERR", conn) < 2) {
    ck_assert_msg(g_get_monotonic_time() < deadline, "connection %" G_GINT64_FORMAT
                  " never got to SET_VRING_ERR", conn);
    g_usleep(20000);
  }
  ck_assert_uint_ge(backend_count(be, "request", "GET_FEATURES", conn), 1);
  for (guint i = 0; i < G_N_ELEMENTS(once); i++)
    ck_assert_msg(backend_count(be, "request", once[i], conn) == 1, "%s seen %u times on "
                  "connection %" G_GINT64_FORMAT, once[i],
                  backend_count(be, "request", once[i], conn), conn);
  /* a call and an error eventfd per vring of the queue pair (vhost_virtqueue_init) */
  ck_assert_uint_eq(backend_count(be, "request", "SET_VRING_CALL", conn), 2);
  ck_assert_uint_eq(backend_count(be, "request", "SET_VRING_ERR", conn), 2);
  ck_assert_uint_eq(backend_count(be, "request", "SET_LOG_BASE", 0), 0);
  ck_assert_uint_eq(backend_count(be, "request", "SET_FEATURES", 0), 0);
  backend_assert_no_error(be);
}

/* --- the cases ------------------------------------------------------------------------- */

/* A vhost-user NIC whose back-end lacks LOG_ALL, there from the start. */
START_TEST(test_vhost_at_start_blocks_hmmv)
{
  g_autoptr(Backend) be = backend_start(FALSE);
  g_autofree char *chardev = g_strdup_printf("socket,id=vu0,path=%s", be->sock);
  const char *const more[] = { "-chardev", chardev, "-netdev", "vhost-user,id=net0,chardev=vu0",
                               "-device", "virtio-net-pci,netdev=net0,id=nic0", NULL };
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(HmmvQmp) qmp = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) margs = json_object_new();
  g_autoptr(JsonNode) mret = NULL;
  g_autoptr(JsonNode) info = NULL;
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autofree char *reasons = NULL;
  g_autofree char *migfile = NULL;
  g_autofree char *uri = NULL;
  guint8 *map = NULL;
  gsize size = 0;
  int fd = -1;
  struct stat st;

  proc = qemu_start("phases=1 pages=64 pattern=random span=2048 seed=5 wait=1", more, &qmp);
  ck_assert_uint_eq(backend_count(be, "connected", NULL, 0), 1);
  assert_setup_seen(be, 1);

  /* QEMU's own blocker, from vhost_dev_init(): query-migrate names it, migrate refuses. */
  reasons = blocked_reasons(qmp);
  printf("# blocked-reasons: %s\n", reasons);
  ck_assert_msg(strstr(reasons, "vhost") != NULL && strstr(reasons, "LOG_ALL") != NULL,
                "blocked-reasons: '%s'", reasons);
  migfile = g_build_filename(hmmv_qemu_proc_get_dir(proc), "migration", NULL);
  uri = g_strdup_printf("file:%s", migfile);
  json_object_set_string_member(margs, "uri", uri);
  mret = hmmv_qmp_execute(qmp, "migrate", margs, &error);
  ck_assert_msg(mret == NULL && error != NULL,
                "migrate with a vhost back-end lacking LOG_ALL was accepted");
  printf("# migrate: %s\n", error->message);
  ck_assert_msg(strstr(error->message, "vhost") != NULL, "%s", error->message);
  g_clear_error(&error);

  /* hmmv-start refuses, naming the blocker; QEMU never sized or wrote the region. */
  ck_assert(!hmmv_harness_start_export(qmp, "hmmv-vhost", &fd, &map, &size, &error));
  printf("# %s\n", error->message);
  ck_assert_msg(strstr(error->message, "migration is blocked") != NULL &&
                strstr(error->message, "LOG_ALL") != NULL, "%s", error->message);
  ck_assert(fd >= 0 && fstat(fd, &st) == 0);
  ck_assert_int_eq(st.st_size, 0);
  close(fd);
  info = hmmv_test_qmp_ok(qmp, "query-hmmv", NULL);
  ck_assert(!json_object_get_boolean_member(json_node_get_object(info), "active"));

  /* The guest runs on: status running, and it runs a phase. */
  assert_running(proc, qmp);
  {
    g_autoptr(GError) perror = NULL;

    ck_assert_msg(hmmv_qemu_proc_run_phase(proc, 0, expected, SERIAL_TIMEOUT_MS, &perror),
                  "%s", perror ? perror->message : "");
  }
  ck_assert_uint_gt(g_hash_table_size(expected), 0);
  /* Still one connection, never a log: QEMU neither dropped nor re-initialised the device. */
  ck_assert_uint_eq(backend_count(be, "connected", NULL, 0), 1);
  assert_setup_seen(be, 1);
  quit_clean(proc, qmp);
}
END_TEST

typedef struct {
  HmmvQemuProc *proc;
  HmmvVm *vm;
  HmmvTracker *tracker;     /* owns its QMP connection */
  HmmvAccess *acc;
} Run;

static void
run_start(Run *run, const char *append, const char *const *more)
{
  g_autoptr(GError) error = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  HmmvQmp *qmp = NULL;

  memset(run, 0, sizeof(*run));
  run->proc = qemu_start(append, more, &qmp);
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
  g_clear_pointer(&run->tracker, hmmv_tracker_free);   /* hmmv-stop, unless QEMU is gone */
  hmmv_vm_free(run->vm);
  hmmv_access_free(run->acc);
  hmmv_qemu_proc_free(run->proc);
}

/* Harvest (hmmv-sync and the region) into a fresh bitmap: the guest pfns written in
 * [BASE_PFN, BASE_PFN + SPAN), as a set. */
static GHashTable *
harvest_window(Run *run)
{
  g_autoptr(GError) error = NULL;

  hmmv_access_clear(run->acc);
  ck_assert_msg(hmmv_tracker_harvest(run->tracker, run->vm, run->acc, &error), "%s",
                error ? error->message : "");
  return hmmv_harness_written_pfns(run->vm, run->acc, BASE_PFN, SPAN);
}

static void
assert_same_set(const char *what, GHashTable *expected, GHashTable *got)
{
  GHashTableIter iter;
  gpointer key;
  guint hits = 0;

  g_hash_table_iter_init(&iter, got);
  while (g_hash_table_iter_next(&iter, &key, NULL))
    hits += g_hash_table_contains(expected, key);
  printf("# %s: the guest wrote %u pages, the export reported %u of the window, %u of them "
         "written\n", what, g_hash_table_size(expected), g_hash_table_size(got), hits);
  ck_assert_uint_gt(g_hash_table_size(expected), 0);
  ck_assert_uint_eq(hits, g_hash_table_size(expected));
  ck_assert_uint_eq(hits, g_hash_table_size(got));
}

/* The same NIC hot-plugged while the export runs, then after hmmv-stop. */
START_TEST(test_vhost_hotplug_refused_while_exporting)
{
  g_autoptr(Backend) be = backend_start(FALSE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
  g_autoptr(GHashTable) got = NULL;
  g_autoptr(HmmvQmp) client = NULL;
  g_autoptr(HmmvTracker) again = NULL;
  g_autofree char *reasons = NULL;
  HmmvQemuDirtyOptions options = { .interval_ms = 0 };
  const char *step = NULL;
  guint conns;
  Run run;

  run_start(&run, "phases=2 pages=200 pattern=random span=2048 seed=13 wait=1", NULL);
  g_hash_table_unref(harvest_window(&run));   /* boot noise */

  error = hotplug(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), be, "nic-late", &step);
  ck_assert_msg(error != NULL, "hot-plug of a vhost-user NIC without LOG_ALL succeeded "
                "while hmmv exports");
  printf("# hot-plug while hmmv exports: %s: %s\n", step, error->message);
  /* QEMU's refusal (0006's migrate_add_blocker), not a QMP time-out */
  ck_assert_msg(g_strcmp0(step, "netdev_add") == 0 &&
                strstr(error->message, "hmmv exports guest writes") != NULL &&
                strstr(error->message, "LOG_ALL") != NULL, "%s: %s", step, error->message);
  g_clear_error(&error);
  chardev_gone_or_free(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), "nic-late-chr");
  conns = backend_count(be, "connected", NULL, 0);
  printf("# the back-end saw %u connection(s) from the refused hot-plug\n", conns);
  /* one set-up, refused: without 0017 QEMU connected again and again (~110000 in 30 s) */
  ck_assert_uint_eq(conns, 1);
  ck_assert_uint_eq(backend_count(be, "request", "SET_LOG_BASE", 0), 0);
  backend_assert_no_error(be);
  ck_assert_int_eq(hmmv_qemu_proc_wait(run.proc, 0), -1);   /* QEMU still runs */

  /* The export goes on: the next phase is harvested exactly. */
  {
    g_autoptr(GError) perror = NULL;

    ck_assert_msg(hmmv_qemu_proc_run_phase(run.proc, 0, expected, SERIAL_TIMEOUT_MS, &perror),
                  "%s", perror ? perror->message : "");
  }
  got = harvest_window(&run);
  assert_same_set("phase 0 after the refused hot-plug", expected, got);

  /* After hmmv-stop the same hot-plug works, and hmmv-start refuses as at start. */
  g_clear_pointer(&run.tracker, hmmv_tracker_free);
  client = hmmv_qemu_proc_qmp(run.proc, &error);
  ck_assert_msg(client != NULL, "%s", error ? error->message : "");
  hmmv_qmp_set_timeout_ms(client, QMP_TIMEOUT_MS);
  assert_running(run.proc, client);
  error = hotplug(client, be, "nic-late", &step);
  ck_assert_msg(error == NULL, "hot-plug after hmmv-stop: %s: %s", step,
                error ? error->message : "");
  printf("# hot-plug after hmmv-stop: ok\n");
  ck_assert_uint_eq(backend_count(be, "connected", NULL, 0), conns + 1);
  assert_setup_seen(be, conns + 1);
  reasons = blocked_reasons(client);
  printf("# blocked-reasons: %s\n", reasons);
  ck_assert_msg(strstr(reasons, "LOG_ALL") != NULL, "blocked-reasons: '%s'", reasons);

  again = hmmv_qemu_dirty_tracker_new(g_steal_pointer(&client), &options, &error);
  ck_assert_msg(again != NULL, "%s", error ? error->message : "");
  ck_assert(!hmmv_tracker_start(again, run.vm, &error));
  ck_assert_msg(strstr(error->message, "migration is blocked") != NULL, "%s", error->message);
  printf("# hmmv-start after the hot-plug: %s\n", error->message);
  g_clear_error(&error);
  assert_running(run.proc, hmmv_qemu_dirty_tracker_get_qmp(again));
  quit_clean(run.proc, hmmv_qemu_dirty_tracker_get_qmp(again));
  g_clear_pointer(&again, hmmv_tracker_free);
  run_stop(&run);
}
END_TEST

/* The opposite case: a back-end that offers LOG_ALL (and LOG_SHMFD) blocks nothing. hmmv-start
 * succeeds with its NIC there from the start, another such NIC hot-plugged while the export
 * runs is accepted, the export stays exact, and QEMU sets up no vhost log: the log (SET_LOG_BASE,
 * SET_FEATURES with LOG_ALL) only comes when a guest driver starts the device, which the test
 * guest never does. */
START_TEST(test_vhost_log_all_coexists)
{
  g_autoptr(Backend) be = backend_start(TRUE);
  g_autofree char *chardev = g_strdup_printf("socket,id=vu0,path=%s", be->sock);
  const char *const more[] = { "-chardev", chardev, "-netdev", "vhost-user,id=net0,chardev=vu0",
                               "-device", "virtio-net-pci,netdev=net0,id=nic0", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *reasons = NULL;
  const char *step = NULL;
  Run run;

  run_start(&run, "phases=2 pages=200 pattern=random span=2048 seed=19 wait=1", more);
  assert_setup_seen(be, 1);
  reasons = blocked_reasons(hmmv_qemu_dirty_tracker_get_qmp(run.tracker));
  printf("# blocked-reasons with a LOG_ALL back-end: '%s'\n", reasons);
  ck_assert_msg(strstr(reasons, "vhost") == NULL, "blocked-reasons: '%s'", reasons);
  g_hash_table_unref(harvest_window(&run));   /* boot noise */

  error = hotplug(hmmv_qemu_dirty_tracker_get_qmp(run.tracker), be, "nic-late", &step);
  ck_assert_msg(error == NULL, "hot-plug of a LOG_ALL NIC while hmmv exports: %s: %s", step,
                error ? error->message : "");
  ck_assert_uint_eq(backend_count(be, "connected", NULL, 0), 2);
  assert_setup_seen(be, 2);

  for (guint k = 0; k < 2; k++) {
    g_autoptr(GError) perror = NULL;
    g_autoptr(GHashTable) expected = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GHashTable) got = NULL;
    g_autofree char *what = g_strdup_printf("phase %u beside LOG_ALL vhost NICs", k);

    ck_assert_msg(hmmv_qemu_proc_run_phase(run.proc, k, expected, SERIAL_TIMEOUT_MS, &perror),
                  "%s", perror ? perror->message : "");
    got = harvest_window(&run);
    assert_same_set(what, expected, got);
  }
  /* Still no log on either connection: the devices never started. */
  assert_setup_seen(be, 1);
  assert_setup_seen(be, 2);
  assert_running(run.proc, hmmv_qemu_dirty_tracker_get_qmp(run.tracker));
  quit_clean(run.proc, hmmv_qemu_dirty_tracker_get_qmp(run.tracker));
  run_stop(&run);
}
END_TEST

/* --- main ------------------------------------------------------------------------------ */

/* TRUE when qemu lists the vhost-user netdev (-netdev help); why says otherwise. */
static gboolean
qemu_has_vhost_user(const char *qemu, char **why)
{
  const char *argv[] = { qemu, "-netdev", "help", NULL };
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                    NULL, NULL, &error)) {
    *why = g_strdup_printf("%s -netdev help: %s", qemu, error->message);
    return FALSE;
  }
  lines = g_strsplit(out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_strcmp0(g_strstrip(lines[i]), "vhost-user") == 0)
      return TRUE;
  *why = g_strdup_printf("%s was built without vhost-user (-netdev help lists no vhost-user; "
                         "qemu-patches/build.sh configures --enable-vhost-user)", qemu);
  return FALSE;
}

/* An unchecked fixture: runs in the parent, so the tree goes even when a case failed (a failed
 * case's process exits without its cleanups; its back-end dies with it, PR_SET_PDEATHSIG). */
static void
scratch_setup(void)
{
  g_autoptr(GError) error = NULL;

  scratch = g_dir_make_tmp("hmmv-vhost-XXXXXX", &error);
  ck_assert_msg(scratch != NULL, "%s", error ? error->message : "");
}

static void
scratch_teardown(void)
{
  hmmv_test_remove_tree(scratch);
  g_clear_pointer(&scratch, g_free);
}

static Suite *
qemu_vhost_suite(void)
{
  Suite *suite = suite_create("qemu-vhost");
  TCase *tc = tcase_create("tcg");

  tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_vhost_at_start_blocks_hmmv);
  tcase_add_test(tc, test_vhost_hotplug_refused_while_exporting);
  tcase_add_test(tc, test_vhost_log_all_coexists);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(int argc, char **argv)
{
  g_autofree char *why = NULL;
  g_autofree char *python = g_find_program_in_path("python3");

  if (argc < 2) {
    g_printerr("usage: test-qemu-vhost VHOST-USER-BACKEND.py\n");
    return 2;
  }
  backend_script = argv[1];
  if (!hmmv_harness_prepare("needs root: the tracker maps regions QEMU created",
                            &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  if (python == NULL)
    return hmmv_test_skip_all("no python3 for the vhost-user back-end");
  if (!qemu_has_vhost_user(qemu_path, &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(qemu_vhost_suite());
}
