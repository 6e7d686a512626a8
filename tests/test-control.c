/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The control socket: the request handler on its own, then a real Unix socket with a client
 * thread, bounds, and the refusal of a non-root peer (a forked child as nobody). Served while
 * the loop waits on moves or DAMON: test-control-served.c. */
#include "control-client.h"
#include "vms.h"

#include <errno.h>
#include <stdio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

static char *
handle(const char *line)
{
  return hmmvd_control_handle_request(control_fx.bed.vms, control_fx.bed.topo, "sim", line,
                                      strlen(line));
}

static const struct {
  const char *request;
  const char *reply_prefix;
} requests[] = {
  { "{\"command\":\"status\"}", "{\"return\":{\"interval-ms\":1000," },
  { "{\"command\":\"vms\"}", "{\"return\":[{\"name\":\"vm1\"," },
  { "{\"command\":\"pause\",\"vm\":\"vm1\"}", "{\"return\":{}}" },
  { "{\"command\":\"resume\",\"vm\":\"vm1\"}", "{\"return\":{}}" },
  { "{\"command\":\"pause\",\"vm\":\"nope\"}", "{\"error\":\"no VM named nope\"}" },
  { "{\"command\":\"pause\"}", "{\"error\":\"this command needs \\\"vm\\\"" },
  { "{\"command\":\"pause\",\"vm\":7}", "{\"error\":\"this command needs \\\"vm\\\"" },
  { "{\"command\":\"placement\"}", "{\"error\":\"this command needs \\\"vm\\\"" },
  { "{\"command\":\"placement\",\"vm\":\"nope\"}", "{\"error\":\"no VM named nope\"}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"dram-min-mib\":1,\"weight\":5}}",
    "{\"return\":{}}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"managed\":\"no\"}}",
    "{\"return\":{}}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"dram-min-mib\":3,"
    "\"dram-max-mib\":2}}", "{\"error\":\"vm vm1: dram-min-mib 3 is above dram-max-mib 2\"}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"dram-min-mib\":-1}}",
    "{\"error\":\"quota dram-min-mib = -1 is out of range" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"dram-min-mib\":\"1\"}}",
    "{\"error\":\"quota dram-min-mib must be a whole number of MiB\"}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"dram-min-mib\":1.5}}",
    "{\"error\":\"quota dram-min-mib must be a whole number of MiB\"}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"dram-min-mib\":99999999999999999}}",
    "{\"error\":\"quota dram-min-mib = 99999999999999999 is out of range" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"weight\":0}}",
    "{\"error\":\"quota weight must be a whole number in 1..10000\"}" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"managed\":1}}",
    "{\"error\":\"quota managed must be" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":{\"colour\":1}}",
    "{\"error\":\"unknown quota member colour" },
  { "{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":[]}",
    "{\"error\":\"set-quota needs a \\\"quota\\\" object\"}" },
  { "{\"command\":\"set-quota\",\"vm\":\"zz\",\"quota\":{}}", "{\"error\":\"no VM named zz\"}" },
  { "{\"command\":\"reboot\"}", "{\"error\":\"unknown command \\\"reboot\\\"" },
  { "{\"command\":42}", "{\"error\":\"missing \\\"command\\\"" },
  { "{}", "{\"error\":\"missing \\\"command\\\"" },
  { "{\"command\":\"vms\",\"extra\":1}", "{\"error\":\"unknown request member \\\"extra\\\"\"}" },
  { "[1,2]", "{\"error\":\"malformed request: expected a JSON object\"}" },
  { "\"status\"", "{\"error\":\"malformed request: expected a JSON object\"}" },
  { "{\"command\":", "{\"error\":\"malformed request: " },
  { "}}}}", "{\"error\":\"malformed request: " },
  { "", "{\"error\":\"malformed request: expected one JSON object" },
  { "{\"command\":\"\xff\"}", "{\"error\":\"malformed request: expected one JSON object" },
  /* issue 10: a trailing value was parsed, ignored and leaked (2.3 MiB a line) */
  { "{\"command\":\"status\"} [0,0,0]", "{\"error\":\"malformed request: trailing data" },
  { "{\"command\":\"status\"} /* */", "{\"error\":\"malformed request: JSON text has an "
    "unexpected byte" },
};

/* issue 10: a line of 60,000 '[' (under the 64 KiB line limit) overflowed json-glib's stack
 * within ~12% of the limit. */
START_TEST(test_deep_request)
{
  g_autofree char *deep = g_strnfill(60000, '[');
  g_autofree char *reply = handle(deep);

  ck_assert_msg(g_str_has_prefix(reply, "{\"error\":\"malformed request: JSON nested deeper "
                                        "than 32 levels"), "%s", reply);
}
END_TEST

START_TEST(test_requests)
{
  g_autofree char *reply = handle(requests[_i].request);

  ck_assert_msg(g_str_has_prefix(reply, requests[_i].reply_prefix), "%s -> %s",
                requests[_i].request, reply);
  ck_assert(strchr(reply, '\n') == NULL);
}
END_TEST

/* placement: hmmvd's own view of each page, one character a page (tests/testbed compares it
 * with the kernel's). */
START_TEST(test_placement)
{
  HmmvVm *vm = hmmv_core_lookup_vm(hmmvd_vms_get_core(control_fx.bed.vms), "vm1");
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autofree char *reply = NULL;
  JsonObject *ret, *region;
  const char *nodes;

  ck_assert_ptr_nonnull(vm);
  hmmv_vm_set_page_node(vm, 0, 0, HMMV_TIER_DRAM);
  hmmv_vm_set_page_node(vm, 1, 1, HMMV_TIER_SLOW);
  hmmv_vm_set_page_node(vm, 1023, 30, HMMV_TIER_SLOW);
  reply = handle("{\"command\":\"placement\",\"vm\":\"vm1\"}");
  ck_assert_msg(json_parser_load_from_data(parser, reply, -1, NULL), "%s", reply);
  ret = json_object_get_object_member(json_node_get_object(json_parser_get_root(parser)),
                                      "return");
  ck_assert_msg(ret != NULL, "%s", reply);
  ck_assert_str_eq(json_object_get_string_member(ret, "name"), "vm1");
  ck_assert_int_eq(json_object_get_int_member(ret, "nr-pages"), 1024);
  region = json_array_get_object_element(json_object_get_array_member(ret, "regions"), 0);
  ck_assert_int_eq(json_object_get_int_member(region, "first-page"), 0);
  ck_assert_int_eq(json_object_get_int_member(region, "pages"), 1024);
  nodes = json_object_get_string_member(ret, "nodes");
  ck_assert_uint_eq(strlen(nodes), 1024);
  ck_assert(g_str_has_prefix(nodes, "01--"));
  ck_assert_int_eq(nodes[1023], 'u');   /* node 30 in base 32 */
}
END_TEST

START_TEST(test_set_quota_applies)
{
  g_autofree char *a = handle("{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":"
                              "{\"dram-min-mib\":2,\"dram-max-mib\":3,\"weight\":5,"
                              "\"managed\":false}}");
  g_autofree char *b = handle("{\"command\":\"set-quota\",\"vm\":\"vm1\",\"quota\":"
                              "{\"weight\":6}}");
  const HmmvdVmInfo *info = hmmvd_vms_lookup(control_fx.bed.vms, "vm1");

  ck_assert_str_eq(a, "{\"return\":{}}");
  ck_assert_str_eq(b, "{\"return\":{}}");
  /* Members left out keep their value. */
  ck_assert_uint_eq(info->quota.min_pages, 2 * 256);
  ck_assert_uint_eq(info->quota.max_pages, 3 * 256);
  ck_assert_uint_eq(info->quota.weight, 6);
  ck_assert(!info->quota.managed);
}
END_TEST

/* ---- the socket ---- */

START_TEST(test_socket_modes_and_requests)
{
  g_autoptr(HmmvdControl) control = control_fixture_start();
  const char *const reqs[] = { "{\"command\":\"status\"}\n{\"command\":\"vms\"}\n",
                               "not json\r\n", "{\"command\":\"pause\",\"vm\":\"vm1\"}\n" };
  g_autofree char *response = NULL;
  g_auto(GStrv) lines = NULL;
  struct stat st;

  ck_assert_int_eq(stat(control_fx.sock_dir, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0700);
  ck_assert_int_eq(stat(control_fx.path, &st), 0);
  ck_assert(S_ISSOCK(st.st_mode));
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  response = control_talk(reqs, G_N_ELEMENTS(reqs), 4, 0);
  lines = g_strsplit(response, "\n", -1);
  ck_assert_uint_eq(g_strv_length(lines), 5);
  ck_assert(g_str_has_prefix(lines[0], "{\"return\":{\"interval-ms\""));
  ck_assert(g_str_has_prefix(lines[1], "{\"return\":[{\"name\":\"vm1\""));
  ck_assert(g_str_has_prefix(lines[2], "{\"error\":\"malformed request"));
  ck_assert_str_eq(lines[3], "{\"return\":{}}");
  ck_assert(hmmvd_vms_lookup(control_fx.bed.vms, "vm1")->paused);
}
END_TEST

/* issue 7: status carries Linux's own tiering as it is at the request (a fake root with
 * NUMA balancing in tiering mode), and only when hmmvd set a root. */
START_TEST(test_status_host_tiering)
{
  g_autoptr(HmmvdControl) control = control_fixture_start();
  const char *const reqs[] = { "{\"command\":\"status\"}\n" };
  g_autofree char *root = g_dir_make_tmp("hmmv-control-tiering-XXXXXX", NULL);
  g_autofree char *dir = g_build_filename(root, "proc/sys/kernel", NULL);
  g_autofree char *file = g_build_filename(dir, "numa_balancing", NULL);
  g_autofree char *plain = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  ck_assert(g_file_set_contents(file, "2\n", -1, NULL));
  plain = control_talk(reqs, 1, 1, 0);
  ck_assert_ptr_null(strstr(plain, "host-tiering"));
  hmmvd_control_set_host_tiering(control, root, NULL);
  first = control_talk(reqs, 1, 1, 0);
  ck_assert_msg(strstr(first, "\"host-tiering\":{\"active\":true,\"numa-balancing\":2,") != NULL,
                "%s", first);
  ck_assert(strstr(first, "sysctl kernel.numa_balancing=0") != NULL);
  ck_assert(g_file_set_contents(file, "0\n", -1, NULL));
  second = control_talk(reqs, 1, 1, 0);
  ck_assert(strstr(second, "\"host-tiering\":{\"active\":false,\"numa-balancing\":0,") != NULL);
  hmmv_test_remove_tree(root);
}
END_TEST

/* issue 10, item 7: 16 root clients sending a byte every 5 s held every slot (the timeout
 * was per read). Each request now has a deadline: all 16 tricklers are dropped, and then a
 * client is served. */
START_TEST(test_trickling_clients_dropped)
{
  g_autoptr(HmmvdControl) control = control_fixture_start();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(control_fx.path);
  const char *const reqs[] = { "{\"command\":\"vms\"}\n" };
  g_autofree char *response = NULL;
  guint bytes = 0;

  hmmvd_control_set_request_deadline_ms(control, 500);
  ck_assert_uint_eq(hmmvd_test_trickle(address, HMMVD_CONTROL_MAX_CLIENTS, &bytes),
                    HMMVD_CONTROL_MAX_CLIENTS);
  printf("# %u trickling clients dropped, the longest after %u bytes (1 every 100 ms)\n",
         HMMVD_CONTROL_MAX_CLIENTS, bytes);
  /* The real request after them gets a deadline that load does not decide. */
  hmmvd_control_set_request_deadline_ms(control, 30000);
  response = control_talk(reqs, 1, 1, 0);
  ck_assert_msg(g_str_has_prefix(response, "{\"return\":[{\"name\":\"vm1\""), "%s", response);
}
END_TEST

START_TEST(test_oversize_line)
{
  g_autoptr(HmmvdControl) control = control_fixture_start();
  g_autofree char *big = g_strnfill(HMMVD_CONTROL_MAX_LINE + 4096, ' ');
  const char *const reqs[] = { big };
  g_autofree char *response = control_talk(reqs, 1, 1, 0);
  const char *const after[] = { "{\"command\":\"status\"}\n" };
  g_autofree char *still = NULL;

  ck_assert_msg(g_str_has_prefix(response, "{\"error\":\"request line longer than 65536"),
                "%s", response);
  /* The daemon serves the next client as usual. */
  still = control_talk(after, 1, 1, 0);
  ck_assert(g_str_has_prefix(still, "{\"return\":"));
}
END_TEST

START_TEST(test_too_many_clients)
{
  g_autoptr(HmmvdControl) control = control_fixture_start();
  const char *const reqs[] = { "{\"command\":\"status\"}\n" };
  g_autofree char *response = control_talk(reqs, 1, 1, HMMVD_CONTROL_MAX_CLIENTS);
  g_autofree char *later = NULL;

  ck_assert_msg(g_str_has_prefix(response, "{\"error\":\"too many clients"), "%s", response);
  control_drain_main_context();
  later = control_talk(reqs, 1, 1, 0);   /* the held connections closed: room again */
  ck_assert_msg(g_str_has_prefix(later, "{\"return\":"), "%s", later);
}
END_TEST

START_TEST(test_stale_and_foreign_paths)
{
  g_autoptr(GError) error = NULL;
  HmmvdControl *control = control_fixture_start();
  HmmvdControl *second;
  int fd;

  /* Another hmmvd answers: refused, the live socket untouched. */
  second = hmmvd_control_new(control_fx.bed.vms, control_fx.bed.topo, "sim", control_fx.path,
                             &error);
  ck_assert(second == NULL);
  ck_assert(strstr(error->message, "another hmmvd answers") != NULL);
  g_clear_error(&error);
  hmmvd_control_free(control);
  control_drain_main_context();
  /* A stale socket (nobody listening) is replaced. */
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  {
    struct sockaddr_un sun = { .sun_family = AF_UNIX };

    g_strlcpy(sun.sun_path, control_fx.path, sizeof(sun.sun_path));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    close(fd);
  }
  control = control_fixture_start();
  hmmvd_control_free(control);
  control_drain_main_context();
  /* A regular file is not ours to remove. */
  ck_assert(g_file_set_contents(control_fx.path, "precious", -1, NULL));
  ck_assert(hmmvd_control_new(control_fx.bed.vms, control_fx.bed.topo, "sim", control_fx.path,
                              &error) == NULL);
  ck_assert(strstr(error->message, "is not a socket") != NULL);
  g_clear_error(&error);
  g_unlink(control_fx.path);
  /* A directory others can write is refused. */
  ck_assert_int_eq(chmod(control_fx.sock_dir, 0777), 0);
  ck_assert(hmmvd_control_new(control_fx.bed.vms, control_fx.bed.topo, "sim", control_fx.path,
                              &error) == NULL);
  ck_assert(strstr(error->message, "mode 0700") != NULL);
  g_clear_error(&error);
  ck_assert(hmmvd_control_new(control_fx.bed.vms, control_fx.bed.topo, "sim", "relative.sock",
                              &error) == NULL);
}
END_TEST

/* The forked child's exit status. Under valgrind the child is a copy of a process whose
 * worker threads (the interval's GTask) were mid-run at fork: their memory is unreachable in
 * the copy, valgrind's exit-time leak check calls it lost and replaces the status with its
 * --error-exitcode (1; CI of ecca3cf). exec drops the copy, and valgrind does not trace
 * children, so the status is the test's own. */
static G_GNUC_NORETURN void
child_exit(int code)
{
  if (g_getenv("HMMV_UNDER_VALGRIND") != NULL) {
    char arg[32];

    snprintf(arg, sizeof(arg), "exit %d", code);
    execl("/bin/sh", "sh", "-c", arg, (char *)NULL);
  }
  _exit(code);
}

/* In a forked child, as nobody: raw syscalls only. Exit 0: got the JSON permission error;
 * 2: connect() refused with EACCES by the file modes; other: something else happened. */
static G_GNUC_NORETURN void
child_as_nobody(const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct timeval tv = { .tv_sec = 10 };
  char buf[512] = { 0 };
  gsize len = 0;
  int fd;

  if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
    child_exit(10);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  g_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
    child_exit(errno == EACCES ? 2 : 11);
  while (len < sizeof(buf) - 1) {
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

    if (n <= 0)
      break;
    len += (gsize)n;
  }
  child_exit(strstr(buf, "{\"error\":\"permission denied: ") == buf &&
             strstr(buf, "root only (peer uid 65534)") != NULL ? 0 : 12);
}

static int
run_child_as_nobody(void)
{
  gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
  int status = 0;
  pid_t pid;

  fflush(NULL);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0)
    child_as_nobody(control_fx.path);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    ck_assert(g_get_monotonic_time() < deadline);
    g_main_context_iteration(NULL, FALSE);
    g_usleep(1000);
  }
  control_drain_main_context();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_non_root_peer_refused)
{
  g_autoptr(HmmvdControl) control = control_fixture_start();

  /* As installed: the modes alone keep nobody out. */
  ck_assert_int_eq(run_child_as_nobody(), 2);
  /* Modes opened up: the peer-credential check still refuses, with a JSON error line. */
  ck_assert_int_eq(chmod(control_fx.tmpdir, 0711), 0);
  ck_assert_int_eq(chmod(control_fx.sock_dir, 0711), 0);
  ck_assert_int_eq(chmod(control_fx.path, 0666), 0);
  ck_assert_int_eq(run_child_as_nobody(), 0);
  /* And root is still served. */
  {
    const char *const reqs[] = { "{\"command\":\"status\"}\n" };
    g_autofree char *response = control_talk(reqs, 1, 1, 0);

    ck_assert(g_str_has_prefix(response, "{\"return\":"));
  }
}
END_TEST

/* The socket cases need root: the server serves root only, and the refusal test runs a
 * client as nobody. */
static Suite *
control_suite(gboolean root)
{
  Suite *s = suite_create("control");
  TCase *handler = tcase_create("handler");
  TCase *socket_tc;

  tcase_add_checked_fixture(handler, control_fixture_setup, control_fixture_teardown);
  tcase_add_loop_test(handler, test_requests, 0, G_N_ELEMENTS(requests));
  tcase_add_test(handler, test_placement);
  tcase_add_test(handler, test_deep_request);
  tcase_add_test(handler, test_set_quota_applies);
  suite_add_tcase(s, handler);
  if (!root) {
    fprintf(stderr, "# socket tests skipped: they need root\n");
    return s;
  }
  socket_tc = tcase_create("socket");
  tcase_add_checked_fixture(socket_tc, control_fixture_setup, control_fixture_teardown);
  tcase_set_timeout(socket_tc, 90);
  tcase_add_test(socket_tc, test_socket_modes_and_requests);
  tcase_add_test(socket_tc, test_status_host_tiering);
  tcase_add_test(socket_tc, test_oversize_line);
  tcase_add_test(socket_tc, test_trickling_clients_dropped);
  tcase_add_test(socket_tc, test_too_many_clients);
  tcase_add_test(socket_tc, test_stale_and_foreign_paths);
  tcase_add_test(socket_tc, test_non_root_peer_refused);
  suite_add_tcase(s, socket_tc);
  return s;
}

int
main(void)
{
  return hmmv_test_run(control_suite(geteuid() == 0));
}
