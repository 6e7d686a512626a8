/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The numa mover against the real kernel: a child process plays the VM's QEMU, with a
 * buffer of 64 pages where some pages are touched, some never touched and some unmapped.
 */
#include "hmmv-test.h"

#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_PAGES 64
/* pages [HOLE_FIRST, HOLE_END) are unmapped after the child set up its buffer */
#define HOLE_FIRST 48
#define HOLE_END 56
/* extra VM pages in a region with no known host address */
#define NR_ROM_PAGES 4

static pid_t child = -1;
static guint64 child_buffer;

static gboolean
is_touched(guint page)
{
  return page % 3 == 0 && !(page >= HOLE_FIRST && page < HOLE_END);
}

static gboolean
is_hole(guint page)
{
  return page >= HOLE_FIRST && page < HOLE_END;
}

static G_GNUC_NORETURN void
child_main(int fd)
{
  long page_size = 4096;
  char *buffer;
  guint64 address;

  /* Never outlive the test: die with it, and after 2 minutes in any case. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(120);
  buffer = mmap(NULL, NR_PAGES * page_size, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffer == MAP_FAILED)
    _exit(1);
  /* 4 KiB folios only, so per-page presence is what the test set up */
  madvise(buffer, NR_PAGES * page_size, MADV_NOHUGEPAGE);
  for (guint page = 0; page < NR_PAGES; page++) {
    if (is_touched(page))
      buffer[page * page_size] = 1;
  }
  /* Nothing is mapped after this, so the hole stays a hole. */
  munmap(buffer + HOLE_FIRST * page_size, (HOLE_END - HOLE_FIRST) * page_size);
  address = (guint64)(guintptr)buffer;
  if (write(fd, &address, sizeof(address)) != sizeof(address))
    _exit(1);
  for (;;)
    pause();
}

static void
setup(void)
{
  int fds[2];

  ck_assert_int_eq(pipe(fds), 0);
  child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    close(fds[0]);
    child_main(fds[1]);
  }
  close(fds[1]);
  ck_assert_int_eq(read(fds[0], &child_buffer, sizeof(child_buffer)), sizeof(child_buffer));
  close(fds[0]);
}

static void
kill_child(void)
{
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = -1;
  }
}

static void
teardown(void)
{
  kill_child();
}

static void
child_addresses(void **addresses)
{
  for (guint page = 0; page < NR_PAGES; page++)
    addresses[page] = (void *)(guintptr)(child_buffer + page * 4096);
}

START_TEST(test_raw_query_and_move)
{
  void *addresses[NR_PAGES];
  int status[NR_PAGES];
  g_autoptr(GError) error = NULL;

  child_addresses(addresses);
  for (int dest = -1; dest <= 0; dest++) {
    ck_assert_msg(hmmv_numa_move_addresses(child, addresses, NR_PAGES, dest, status, &error),
                  "%s", error ? error->message : "");
    for (guint page = 0; page < NR_PAGES; page++) {
      int expected = is_touched(page) ? 0 : is_hole(page) ? -EFAULT : -ENOENT;

      ck_assert_msg(status[page] == expected, "dest %d page %u: status %d, expected %d",
                    dest, page, status[page], expected);
    }
  }
  /* an empty call does not reach the kernel */
  ck_assert(hmmv_numa_move_addresses(child, addresses, 0, 0, status, &error));
}
END_TEST

START_TEST(test_raw_errors)
{
  void *addresses[NR_PAGES];
  int status[NR_PAGES];
  g_autoptr(GError) error = NULL;

  child_addresses(addresses);
  /* node 63: beyond anything this host has; the kernel says ENODEV */
  ck_assert(!hmmv_numa_move_addresses(child, addresses, NR_PAGES, 63, status, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT), "%s",
                error->message);
  ck_assert_ptr_nonnull(strstr(error->message, "node 63"));
}
END_TEST

static HmmvTopology *
host_topology(void)
{
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();

  ck_assert(hmmv_topology_add_node(topo, 0, G_GUINT64_CONSTANT(4) << 30, 2, HMMV_TIER_DRAM,
                                   NULL));
  /* node 1 is in the topology, but not on this host: the kernel must refuse it */
  ck_assert(hmmv_topology_add_node(topo, 1, G_GUINT64_CONSTANT(4) << 30, 0, HMMV_TIER_SLOW,
                                   NULL));
  return g_steal_pointer(&topo);
}

/* The child's buffer as a VM's "ram" region, plus a "rom" region with no host address. */
static HmmvVm *
child_vm(void)
{
  g_autoptr(HmmvVm) vm = hmmv_vm_new("child");

  ck_assert(hmmv_vm_add_region(vm, "ram", 0, child_buffer, NR_PAGES * 4096, 4096, NULL));
  ck_assert(hmmv_vm_add_region(vm, "rom", 1u << 20, 0, NR_ROM_PAGES * 4096, 4096, NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  hmmv_vm_set_pid(vm, child);
  return g_steal_pointer(&vm);
}

static guint64 *
all_pages(void)
{
  guint64 *pages = g_new(guint64, NR_PAGES + NR_ROM_PAGES);

  for (guint page = 0; page < NR_PAGES + NR_ROM_PAGES; page++)
    pages[page] = page;
  return pages;
}

static guint
count_touched(void)
{
  guint touched = 0;

  for (guint page = 0; page < NR_PAGES; page++)
    touched += is_touched(page);
  return touched;
}

START_TEST(test_vm_move)
{
  g_autoptr(HmmvTopology) topo = host_topology();
  g_autoptr(HmmvVm) vm = child_vm();
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_numa_mover_new(topo, &error);
  g_autofree guint64 *pages = all_pages();
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  guint touched = count_touched();
  guint holes = HOLE_END - HOLE_FIRST;
  guint64 moved = 0;

  ck_assert_msg(mover != NULL, "%s", error ? error->message : "");
  ck_assert_str_eq(hmmv_mover_get_name(mover), "numa");
  mover->batch_pages = 10;
  /* every present page is on node 0 already; the VM had them unknown, so they count as
   * promoted once, and only then */
  ck_assert_msg(hmmv_mover_move(mover, vm, pages, NR_PAGES + NR_ROM_PAGES, 0, &moved, &error),
                "%s", error ? error->message : "");
  ck_assert_uint_eq(moved, touched);
  ck_assert_uint_eq(stats->promoted, touched);  /* the VM had them as unknown before */
  ck_assert_uint_eq(stats->not_present, NR_PAGES - touched - holes);
  ck_assert_uint_eq(stats->fault, holes + NR_ROM_PAGES);
  ck_assert_uint_eq(stats->busy + stats->no_memory + stats->access + stats->other, 0);
  ck_assert_uint_eq(stats->call_failures, 0);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), touched);
  for (guint page = 0; page < NR_PAGES + NR_ROM_PAGES; page++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, page), page < NR_PAGES && is_touched(page) ? 0 : -1);
  /* moving again: nothing really moves, so nothing more is promoted */
  ck_assert(hmmv_mover_move(mover, vm, pages, NR_PAGES, 0, &moved, &error));
  ck_assert_uint_eq(moved, touched);
  ck_assert_uint_eq(stats->promoted, touched);
  /* query agrees */
  ck_assert(hmmv_mover_query(mover, vm, pages, NR_PAGES + NR_ROM_PAGES, &error));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), touched);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), 0);
}
END_TEST

START_TEST(test_vm_errors)
{
  g_autoptr(HmmvTopology) topo = host_topology();
  g_autoptr(HmmvVm) vm = child_vm();
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvMover) mover = hmmv_numa_mover_new(topo, &error);
  g_autofree guint64 *pages = all_pages();
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  g_autofree char *gone = NULL;
  guint64 moved = 99;
  int pid = child;

  ck_assert_ptr_nonnull(mover);
  /* node 7 is not in the topology: refused before any call */
  ck_assert(!hmmv_mover_move(mover, vm, pages, NR_PAGES, 7, &moved, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_uint_eq(stats->call_failures, 0);
  g_clear_error(&error);
  /* node 1 is in the topology but the kernel has no such node */
  ck_assert(!hmmv_mover_move(mover, vm, pages, NR_PAGES, 1, &moved, &error));
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT), "%s",
                error->message);
  ck_assert_msg(g_str_has_prefix(error->message, "vm child: move to node 1: "), "%s",
                error->message);
  ck_assert_uint_eq(stats->call_failures, 1);
  g_clear_error(&error);
  /* a VM without a pid */
  hmmv_vm_set_pid(vm, 0);
  ck_assert(!hmmv_mover_query(mover, vm, pages, 1, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT));
  ck_assert_uint_eq(stats->call_failures, 2);
  g_clear_error(&error);
  hmmv_vm_set_pid(vm, pid);
  /* only rom pages: answered without the kernel, even for a dead process */
  kill_child();
  ck_assert(hmmv_mover_move(mover, vm, pages + NR_PAGES, NR_ROM_PAGES, 0, &moved, &error));
  ck_assert_uint_eq(stats->fault, NR_ROM_PAGES);
  /* the process is gone */
  ck_assert(!hmmv_mover_move(mover, vm, pages, NR_PAGES, 0, &moved, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
  gone = g_strdup_printf("vm child: move to node 0: process %d is gone", pid);
  ck_assert_str_eq(error->message, gone);
  ck_assert_uint_eq(moved, 0);
  ck_assert_uint_eq(stats->call_failures, 3);
  g_clear_error(&error);
  ck_assert(!hmmv_mover_query(mover, vm, pages, NR_PAGES, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
  ck_assert_uint_eq(stats->call_failures, 4);
}
END_TEST

START_TEST(test_raw_gone)
{
  void *addresses[NR_PAGES];
  int status[NR_PAGES];
  g_autoptr(GError) error = NULL;
  int pid = child;

  child_addresses(addresses);
  kill_child();
  ck_assert(!hmmv_numa_move_addresses(pid, addresses, NR_PAGES, -1, status, &error));
  ck_assert(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_GONE));
}
END_TEST

/* The kernel must have move_pages(2): probe it on this process's own memory. */
static gboolean
move_pages_works(void)
{
  static char page[4096] __attribute__((aligned(4096)));
  void *address = page;
  int status;

  page[0] = 1;
  return numa_move_pages(0, 1, &address, NULL, &status, 0) == 0 || errno != ENOSYS;
}

static Suite *
numa_suite(void)
{
  Suite *suite = suite_create("mover-numa");
  TCase *tc = tcase_create("mover-numa");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_raw_query_and_move);
  tcase_add_test(tc, test_raw_errors);
  tcase_add_test(tc, test_raw_gone);
  tcase_add_test(tc, test_vm_move);
  tcase_add_test(tc, test_vm_errors);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  if (numa_available() < 0)
    return hmmv_test_skip_all("no NUMA support in this kernel (numa_available() < 0)");
  if (!move_pages_works())
    return hmmv_test_skip_all("move_pages(2) is not implemented (ENOSYS)");
  return hmmv_test_run(numa_suite());
}
