/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qemu-harness.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <hmmv/shm-abi.h>
#include <linux/kvm.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct _HmmvQemuProc {
  GPid pid;
  int stdin_fd;
  int stdout_fd;
  GThread *reader;
  GAsyncQueue *lines;       /* char *; an empty string marks EOF */
  char *dir;
  char *qmp_path;
  gboolean reaped;
  int status;
};

gboolean
hmmv_harness_find(char **qemu, char **guest, char **why)
{
  const char *q = g_getenv("HMMV_QEMU");
  const char *g = g_getenv("HMMV_TEST_GUEST");

  if (q == NULL || !g_file_test(q, G_FILE_TEST_IS_EXECUTABLE)) {
    *why = g_strdup_printf("no patched QEMU (HMMV_QEMU=%s; scripts/test builds it with "
                           "qemu-patches/build.sh)", q ? q : "unset");
    return FALSE;
  }
  if (g == NULL || !g_file_test(g, G_FILE_TEST_IS_REGULAR)) {
    *why = g_strdup_printf("no test guest (HMMV_TEST_GUEST=%s)", g ? g : "unset");
    return FALSE;
  }
  *qemu = g_strdup(q);
  *guest = g_strdup(g);
  return TRUE;
}

gboolean
hmmv_harness_prepare(const char *root_why, char **qemu, char **guest, char **why)
{
  if (root_why != NULL && geteuid() != 0) {
    *why = g_strdup(root_why);
    return FALSE;
  }
  if (!hmmv_harness_find(qemu, guest, why))
    return FALSE;
  signal(SIGPIPE, SIG_IGN);
  return TRUE;
}

gboolean
hmmv_harness_kvm_usable(char **why)
{
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  int vm;

  if (fd < 0) {
    *why = g_strdup_printf("/dev/kvm: %s", g_strerror(errno));
    return FALSE;
  }
  if (ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING) <= 0) {
    *why = g_strdup("KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)");
    close(fd);
    return FALSE;
  }
  vm = ioctl(fd, KVM_CREATE_VM, 0);
  if (vm < 0) {
    *why = g_strdup_printf("KVM_CREATE_VM: %s", g_strerror(errno));
    close(fd);
    return FALSE;
  }
  close(vm);
  close(fd);
  return TRUE;
}

static void
child_setup(gpointer data)
{
  /* QEMU must not outlive a test that crashed or timed out. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static gpointer
reader_thread(gpointer data)
{
  HmmvQemuProc *proc = data;
  g_autoptr(GString) line = g_string_new(NULL);
  char chunk[4096];

  for (;;) {
    gssize n = read(proc->stdout_fd, chunk, sizeof(chunk));

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    for (gssize i = 0; i < n; i++) {
      if (chunk[i] == '\n') {
        g_strchomp(line->str);
        if (g_getenv("HMMV_TEST_VERBOSE") != NULL)
          g_printerr("guest: %s\n", line->str);
        g_async_queue_push(proc->lines, g_strdup(line->str[0] ? line->str : " "));
        g_string_truncate(line, 0);
      } else if (chunk[i] != '\r') {
        g_string_append_c(line, chunk[i]);
      }
    }
  }
  g_async_queue_push(proc->lines, g_strdup(""));
  return NULL;
}

HmmvQemuProc *
hmmv_qemu_proc_start(const char *qemu, const char *guest, const char *accel, guint ram_mib,
                     const char *append, const char *const *extra, GError **error)
{
  g_autoptr(HmmvQemuProc) proc = g_new0(HmmvQemuProc, 1);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) local_error = NULL;

  proc->stdin_fd = proc->stdout_fd = -1;
  proc->lines = g_async_queue_new_full(g_free);
  proc->dir = g_dir_make_tmp("hmmv-qemu-XXXXXX", error);
  if (proc->dir == NULL)
    return NULL;
  proc->qmp_path = g_build_filename(proc->dir, "qmp.sock", NULL);
  g_ptr_array_add(argv, g_strdup(qemu));
  g_ptr_array_add(argv, g_strdup("-accel"));
  g_ptr_array_add(argv, g_strdup(accel));
  g_ptr_array_add(argv, g_strdup("-M"));
  g_ptr_array_add(argv, g_strdup("pc"));
  g_ptr_array_add(argv, g_strdup("-m"));
  g_ptr_array_add(argv, g_strdup_printf("%u", ram_mib));
  g_ptr_array_add(argv, g_strdup("-display"));
  g_ptr_array_add(argv, g_strdup("none"));
  g_ptr_array_add(argv, g_strdup("-nic"));
  g_ptr_array_add(argv, g_strdup("none"));
  g_ptr_array_add(argv, g_strdup("-serial"));
  g_ptr_array_add(argv, g_strdup("stdio"));
  g_ptr_array_add(argv, g_strdup("-monitor"));
  g_ptr_array_add(argv, g_strdup("none"));
  g_ptr_array_add(argv, g_strdup("-qmp"));
  g_ptr_array_add(argv, g_strdup_printf("unix:%s,server=on,wait=off", proc->qmp_path));
  g_ptr_array_add(argv, g_strdup("-device"));
  g_ptr_array_add(argv, g_strdup("isa-debug-exit,iobase=0xf4,iosize=0x04"));
  g_ptr_array_add(argv, g_strdup("-kernel"));
  g_ptr_array_add(argv, g_strdup(guest));
  g_ptr_array_add(argv, g_strdup("-append"));
  g_ptr_array_add(argv, g_strdup(append));
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add(argv, g_strdup(extra[i]));
  g_ptr_array_add(argv, NULL);

  if (!g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL,
                                G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDERR_TO_DEV_NULL,
                                child_setup, NULL, &proc->pid, &proc->stdin_fd,
                                &proc->stdout_fd, NULL, &local_error)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "cannot start %s: %s", qemu,
                local_error->message);
    return NULL;
  }
  proc->reader = g_thread_new("qemu-serial", reader_thread, proc);
  return g_steal_pointer(&proc);
}

void
hmmv_qemu_proc_kill(HmmvQemuProc *proc)
{
  if (proc->pid > 0 && !proc->reaped) {
    kill(proc->pid, SIGKILL);
    waitpid(proc->pid, &proc->status, 0);
    proc->reaped = TRUE;
  }
}

void
hmmv_qemu_proc_free(HmmvQemuProc *proc)
{
  if (proc == NULL)
    return;
  hmmv_qemu_proc_kill(proc);
  if (proc->stdin_fd >= 0)
    close(proc->stdin_fd);
  if (proc->reader != NULL)
    g_thread_join(proc->reader);
  if (proc->stdout_fd >= 0)
    close(proc->stdout_fd);
  g_async_queue_unref(proc->lines);
  if (proc->qmp_path != NULL)
    g_unlink(proc->qmp_path);
  if (proc->dir != NULL) {
    g_autoptr(GDir) dir = g_dir_open(proc->dir, 0, NULL);
    const char *name;

    while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
      g_autofree char *path = g_build_filename(proc->dir, name, NULL);

      g_unlink(path);
    }
    g_rmdir(proc->dir);
  }
  g_free(proc->qmp_path);
  g_free(proc->dir);
  g_free(proc);
}

const char *
hmmv_qemu_proc_get_qmp_path(HmmvQemuProc *proc)
{
  return proc->qmp_path;
}

const char *
hmmv_qemu_proc_get_dir(HmmvQemuProc *proc)
{
  return proc->dir;
}

int
hmmv_qemu_proc_get_pid(HmmvQemuProc *proc)
{
  return proc->pid;
}

char *
hmmv_qemu_proc_read_line(HmmvQemuProc *proc, guint timeout_ms)
{
  char *line = g_async_queue_timeout_pop(proc->lines, (guint64)timeout_ms * 1000);

  if (line != NULL && line[0] == '\0') {
    /* EOF: leave the marker for later readers. */
    g_async_queue_push_front(proc->lines, line);
    return NULL;
  }
  return line;
}

char *
hmmv_qemu_proc_expect(HmmvQemuProc *proc, const char *prefix, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

  for (;;) {
    gint64 left = deadline - g_get_monotonic_time();
    char *line;

    if (left <= 0)
      return NULL;
    line = hmmv_qemu_proc_read_line(proc, (guint)(left / 1000) + 1);
    if (line == NULL)
      return NULL;
    if (g_str_has_prefix(line, prefix))
      return line;
    g_free(line);
  }
}

gboolean
hmmv_qemu_proc_send(HmmvQemuProc *proc, const char *bytes, GError **error)
{
  gsize len = strlen(bytes);

  if (write(proc->stdin_fd, bytes, len) != (gssize)len) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "serial write: %s", g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

HmmvQmp *
hmmv_qemu_proc_qmp(HmmvQemuProc *proc, GError **error)
{
  for (guint attempt = 0;; attempt++) {
    g_autoptr(GError) local_error = NULL;
    HmmvQmp *qmp = hmmv_qmp_connect_unix(proc->qmp_path, 5000, &local_error);

    if (qmp != NULL)
      return qmp;
    if (attempt >= 100) {
      g_propagate_error(error, g_steal_pointer(&local_error));
      return NULL;
    }
    g_usleep(50000);
  }
}

int
hmmv_qemu_proc_wait(HmmvQemuProc *proc, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

  while (!proc->reaped) {
    pid_t r = waitpid(proc->pid, &proc->status, WNOHANG);

    if (r == proc->pid) {
      proc->reaped = TRUE;
      break;
    }
    if (g_get_monotonic_time() > deadline)
      return -1;
    g_usleep(10000);
  }
  return WIFEXITED(proc->status) ? WEXITSTATUS(proc->status) : 128 + WTERMSIG(proc->status);
}

gboolean
hmmv_qemu_proc_run_phase(HmmvQemuProc *proc, guint k, GHashTable *expected, guint timeout_ms,
                         GError **error)
{
  g_autofree char *prefix_wait = g_strdup_printf("HMMV-WAIT phase %u", k);
  g_autofree char *wait = hmmv_qemu_proc_expect(proc, prefix_wait, timeout_ms);

  if (wait == NULL) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "the guest never said \"%s\"",
                prefix_wait);
    return FALSE;
  }
  if (!hmmv_qemu_proc_send(proc, "g", error))
    return FALSE;
  for (;;) {
    g_autofree char *line = hmmv_qemu_proc_read_line(proc, timeout_ms);
    g_auto(GStrv) words = NULL;

    if (line == NULL) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "phase %u did not end", k);
      return FALSE;
    }
    if (g_str_has_prefix(line, "HMMV-PHASE-END"))
      return TRUE;
    if (!g_str_has_prefix(line, "HMMV-PHASE-PAGES"))
      continue;
    words = g_strsplit(line, " ", -1);
    for (guint i = 2; words[i] != NULL; i++)
      if (words[i][0] != '\0')
        g_hash_table_add(expected, GSIZE_TO_POINTER(g_ascii_strtoull(words[i], NULL, 16)));
  }
}

gboolean
hmmv_harness_built_with(const char *qemu, const char *const *patches, gsize n,
                        const char *what, char **why)
{
  g_autofree char *bin = g_path_get_dirname(qemu);
  g_autofree char *top = g_path_get_dirname(bin);
  g_autofree char *info_path = g_build_filename(top, "BUILD-INFO", NULL);
  g_autofree char *info = NULL;

  if (!g_file_get_contents(info_path, &info, NULL, NULL))
    return TRUE;
  for (gsize i = 0; i < n; i++)
    if (strstr(info, patches[i]) != NULL)
      return TRUE;
  *why = g_strdup_printf("%s was built without %s (see its BUILD-INFO)", qemu, what);
  return FALSE;
}

const char *
hmmv_harness_accel(const char *mode)
{
  return g_strcmp0(mode, "kvm") == 0       ? "kvm,dirty-ring-size=4096"
         : g_strcmp0(mode, "kvm-log") == 0 ? "kvm"
                                           : "tcg";
}

gboolean
hmmv_harness_wait_migration(HmmvQmp *qmp, const char *want, guint timeout_ms, GError **error)
{
  for (guint waited = 0; waited < timeout_ms; waited += 100) {
    g_autoptr(JsonNode) ret = hmmv_qmp_execute(qmp, "query-migrate", NULL, error);
    const char *status;

    if (ret == NULL)
      return FALSE;
    status = json_object_get_string_member_with_default(json_node_get_object(ret), "status",
                                                        "none");
    if (g_strcmp0(status, "failed") == 0) {
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "migration failed");
      return FALSE;
    }
    if (g_strcmp0(status, want) == 0)
      return TRUE;
    g_usleep(100000);
  }
  g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "migration did not reach %s", want);
  return FALSE;
}

gboolean
hmmv_harness_start_export(HmmvQmp *qmp, const char *memfd_name, int *fd, guint8 **map,
                          gsize *size, GError **error)
{
  return hmmv_harness_start_export_full(qmp, memfd_name, 0, NULL, fd, map, size, error);
}

gboolean
hmmv_harness_start_export_full(HmmvQmp *qmp, const char *memfd_name, guint interval_ms,
                               const char *const *exclude, int *fd, guint8 **map, gsize *size,
                               GError **error)
{
  g_autoptr(JsonObject) args = json_object_new();
  g_autoptr(JsonNode) ret = NULL;
  struct stat st;
  void *m;

  *fd = memfd_create(memfd_name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (*fd < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "memfd_create: %s",
                g_strerror(errno));
    return FALSE;
  }
  if (!hmmv_qmp_send_fd(qmp, *fd, "region", error)) {
    g_prefix_error(error, "getfd: ");
    return FALSE;
  }
  json_object_set_string_member(args, "fdname", "region");
  json_object_set_int_member(args, "interval-ms", interval_ms);
  if (exclude != NULL) {
    JsonArray *names = json_array_new();

    for (guint i = 0; exclude[i] != NULL; i++)
      json_array_add_string_element(names, exclude[i]);
    json_object_set_array_member(args, "exclude", names);
  }
  ret = hmmv_qmp_execute(qmp, "hmmv-start", args, error);
  if (ret == NULL) {
    g_prefix_error(error, "hmmv-start: ");
    return FALSE;
  }
  if (fstat(*fd, &st) != 0 || (gsize)st.st_size < HMMV_SHM_BITMAPS_OFFSET) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "the region is %lld bytes",
                (long long)st.st_size);
    return FALSE;
  }
  m = mmap(NULL, (gsize)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  if (m == MAP_FAILED) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "mmap: %s", g_strerror(errno));
    return FALSE;
  }
  *map = m;
  *size = (gsize)st.st_size;
  if (((const struct hmmv_shm_header *)m)->magic != HMMV_SHM_MAGIC) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "the region's magic is wrong");
    return FALSE;
  }
  return TRUE;
}

gboolean
hmmv_harness_events_connect(const char *sock, guint timeout_s, GSocketConnection **conn,
                            GDataInputStream **in, GError **error)
{
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(sock);
  g_autoptr(GSocketConnection) c = NULL;
  g_autoptr(GDataInputStream) d = NULL;
  g_autofree char *greeting = NULL, *reply = NULL;
  const char *caps = "{\"execute\": \"qmp_capabilities\"}\n";

  c = g_socket_client_connect(client, G_SOCKET_CONNECTABLE(address), NULL, error);
  if (c == NULL) {
    g_prefix_error(error, "events monitor: ");
    return FALSE;
  }
  g_socket_set_timeout(g_socket_connection_get_socket(c), timeout_s);
  d = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(c)));
  greeting = g_data_input_stream_read_line(d, NULL, NULL, error);
  if (greeting == NULL) {
    if (error != NULL && *error == NULL)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "closed");
    g_prefix_error(error, "events monitor greeting: ");
    return FALSE;
  }
  if (!g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(c)), caps,
                                 strlen(caps), NULL, NULL, error))
    return FALSE;
  reply = g_data_input_stream_read_line(d, NULL, NULL, error);
  if (reply == NULL || strstr(reply, "\"return\"") == NULL) {
    if (error != NULL && *error == NULL)
      g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s", reply ? reply : "closed");
    g_prefix_error(error, "qmp_capabilities: ");
    return FALSE;
  }
  *conn = g_steal_pointer(&c);
  *in = g_steal_pointer(&d);
  return TRUE;
}

GHashTable *
hmmv_harness_written_pfns(HmmvVm *vm, const HmmvAccess *acc, guint64 first, guint64 count)
{
  GHashTable *set = g_hash_table_new(g_direct_hash, g_direct_equal);

  for (guint64 page = 0; page < acc->nr_pages; page++) {
    guint64 pfn;

    if (!hmmv_bitmap_test(acc->writes, page))
      continue;
    pfn = hmmv_vm_page_to_gpa(vm, page) >> HMMV_PAGE_SHIFT;
    if (pfn >= first && pfn < first + count)
      g_hash_table_add(set, GSIZE_TO_POINTER(pfn));
  }
  return set;
}
