/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The numa mover against the real kernel: a child process plays the VM's QEMU, with a
 * buffer of 64 pages where some pages are touched, some never touched and some unmapped.
 */
#include "hmmv-test.h"
#include "mover-cases.h"
#include "mover-numa-host.h"

#include <errno.h>
#include <stdio.h>
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
  g_autoptr(HmmvTopology) topo = mover_numa_host_topology();
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
  g_autoptr(HmmvTopology) topo = mover_numa_host_topology();
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

/* Two nodes (the testbed guest, or a real NUMA host): a child fills TWO_NODE_PAGES pages with
 * a known pattern, the numa mover moves them all to node 1 and back, and the child checks its
 * own memory after each move. 2048 pages = 8 MiB: ~0.1 s of moves at the ~40 us/page TCG
 * measured, and a few million writes to fill and check under TCG. */
#define TWO_NODE_PAGES 2048
#define WORDS_PER_PAGE (4096 / sizeof(guint64))

/* what the child answers after checking its memory */
typedef struct {
  guint32 bad_pages;       /* pages whose data is not what it wrote */
  guint32 on_node;         /* pages the kernel says are on the node the parent named */
} TwoNodeReply;

static pid_t two_child = -1;
static int two_cmd_fd = -1;    /* parent -> child: the node to check, one byte */
static int two_reply_fd = -1;  /* child -> parent: the buffer address, then TwoNodeReply */
static guint64 two_buffer;

static guint64
pattern_word(guint page, guint word)
{
  return (page * G_GUINT64_CONSTANT(0x9E3779B97F4A7C15)) ^ (word * 0x2545F491u) ^ 0x5a5a;
}

static TwoNodeReply
two_child_check(guint64 *buffer, int node)
{
  g_autofree void **addresses = g_new(void *, TWO_NODE_PAGES);
  g_autofree int *status = g_new(int, TWO_NODE_PAGES);
  TwoNodeReply reply = { 0, 0 };

  for (guint page = 0; page < TWO_NODE_PAGES; page++) {
    const guint64 *words = buffer + page * WORDS_PER_PAGE;

    addresses[page] = (void *)words;
    for (guint word = 0; word < WORDS_PER_PAGE; word++) {
      if (words[word] != pattern_word(page, word)) {
        reply.bad_pages++;
        break;
      }
    }
  }
  /* the kernel's own answer for this process, independent of hmmv */
  if (numa_move_pages(0, TWO_NODE_PAGES, addresses, NULL, status, 0) == 0) {
    for (guint page = 0; page < TWO_NODE_PAGES; page++)
      reply.on_node += status[page] == node;
  }
  return reply;
}

static G_GNUC_NORETURN void
two_child_main(int cmd_fd, int reply_fd)
{
  gsize bytes = (gsize)TWO_NODE_PAGES * 4096;
  guint64 *buffer;
  guint64 address;
  unsigned char node;

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(120);
  buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffer == MAP_FAILED)
    _exit(1);
  madvise(buffer, bytes, MADV_NOHUGEPAGE);
  for (guint page = 0; page < TWO_NODE_PAGES; page++) {
    for (guint word = 0; word < WORDS_PER_PAGE; word++)
      buffer[page * WORDS_PER_PAGE + word] = pattern_word(page, word);
  }
  address = (guint64)(guintptr)buffer;
  if (write(reply_fd, &address, sizeof(address)) != sizeof(address))
    _exit(1);
  while (read(cmd_fd, &node, 1) == 1) {
    TwoNodeReply reply = two_child_check(buffer, node);

    if (write(reply_fd, &reply, sizeof(reply)) != sizeof(reply))
      _exit(1);
  }
  _exit(0);
}

static void
two_setup(void)
{
  int cmd[2], reply[2];

  ck_assert_int_eq(pipe(cmd), 0);
  ck_assert_int_eq(pipe(reply), 0);
  two_child = fork();
  ck_assert_int_ge(two_child, 0);
  if (two_child == 0) {
    close(cmd[1]);
    close(reply[0]);
    two_child_main(cmd[0], reply[1]);
  }
  close(cmd[0]);
  close(reply[1]);
  two_cmd_fd = cmd[1];
  two_reply_fd = reply[0];
  ck_assert_int_eq(read(two_reply_fd, &two_buffer, sizeof(two_buffer)), sizeof(two_buffer));
}

static void
two_teardown(void)
{
  if (two_child > 0) {
    kill(two_child, SIGKILL);
    waitpid(two_child, NULL, 0);
    two_child = -1;
  }
  if (two_cmd_fd >= 0)
    close(two_cmd_fd);
  if (two_reply_fd >= 0)
    close(two_reply_fd);
  two_cmd_fd = two_reply_fd = -1;
}

/* The child checks its data and counts its pages on node. */
static TwoNodeReply
two_child_ask(int node)
{
  unsigned char byte = (unsigned char)node;
  TwoNodeReply reply;

  ck_assert_int_eq(write(two_cmd_fd, &byte, 1), 1);
  ck_assert_int_eq(read(two_reply_fd, &reply, sizeof(reply)), sizeof(reply));
  return reply;
}

/* every page on node per the VM's record, then per a fresh query through the mover, then per
 * a raw move_pages(2) query, then per the child itself; its data intact */
static void
check_all_on(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, int node)
{
  g_autofree void **addresses = g_new(void *, TWO_NODE_PAGES);
  g_autofree int *status = g_new(int, TWO_NODE_PAGES);
  g_autoptr(GError) error = NULL;
  TwoNodeReply reply;

  for (guint page = 0; page < TWO_NODE_PAGES; page++)
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, page), node);
  ck_assert_msg(hmmv_mover_query(mover, vm, pages, TWO_NODE_PAGES, &error), "%s",
                error ? error->message : "");
  for (guint page = 0; page < TWO_NODE_PAGES; page++) {
    ck_assert_int_eq(hmmv_vm_get_page_node(vm, page), node);
    addresses[page] = (void *)(guintptr)(two_buffer + page * 4096);
  }
  ck_assert(hmmv_numa_move_addresses(two_child, addresses, TWO_NODE_PAGES, -1, status, &error));
  for (guint page = 0; page < TWO_NODE_PAGES; page++)
    ck_assert_msg(status[page] == node, "page %u: status %d, expected node %d", page,
                  status[page], node);
  reply = two_child_ask(node);
  ck_assert_uint_eq(reply.bad_pages, 0);
  ck_assert_uint_eq(reply.on_node, TWO_NODE_PAGES);
}

/* Moves every page to node, checks, and prints the cost per page as a TAP diagnostic. */
static void
move_all_to(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, int node)
{
  g_autoptr(GError) error = NULL;
  guint64 moved = 0;
  gint64 start = g_get_monotonic_time();
  gint64 elapsed_us;

  ck_assert_msg(hmmv_mover_move(mover, vm, pages, TWO_NODE_PAGES, node, &moved, &error),
                "%s", error ? error->message : "");
  elapsed_us = g_get_monotonic_time() - start;
  ck_assert_uint_eq(moved, TWO_NODE_PAGES);
  printf("# two-node: moved %" G_GUINT64_FORMAT " pages to node %d in %" G_GINT64_FORMAT
         " us: %.1f us/page (batches of %u)\n", moved, node, elapsed_us,
         (double)elapsed_us / (double)moved, mover->batch_pages);
  fflush(stdout);
  check_all_on(mover, vm, pages, node);
}

START_TEST(test_two_node_round_trip)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new_from_host(NULL, &error);
  g_autoptr(HmmvVm) vm = hmmv_vm_new("two-node");
  g_autoptr(HmmvMover) mover = NULL;
  g_autofree guint64 *pages = g_new(guint64, TWO_NODE_PAGES);
  g_autofree char *description = NULL;
  g_auto(GStrv) lines = NULL;
  HmmvMoveStats *stats = hmmv_vm_get_move_stats(vm);
  const HmmvNode *slow;

  ck_assert_msg(topo != NULL, "%s", error ? error->message : "");
  description = hmmv_topology_describe(topo);
  lines = g_strsplit(description, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    if (lines[i][0] != '\0')
      printf("# topology: %s\n", lines[i]);
  }
  fflush(stdout);
  /* the testbed's node 1 has memory and no CPUs: slow, like KMEM-DAX or CXL memory */
  ck_assert(!hmmv_topology_is_single_node(topo));
  slow = hmmv_topology_lookup(topo, 1);
  ck_assert_ptr_nonnull(slow);
  if (slow->nr_cpus == 0) {
    ck_assert_int_eq(slow->tier, HMMV_TIER_SLOW);
    ck_assert(slow->tier_source == HMMV_TIER_SOURCE_CPULESS ||
              slow->tier_source == HMMV_TIER_SOURCE_KERNEL);
  }
  ck_assert_int_eq(hmmv_topology_lookup(topo, 0)->tier, HMMV_TIER_DRAM);

  ck_assert(hmmv_vm_add_region(vm, "ram", 0, two_buffer, TWO_NODE_PAGES * 4096, 4096, NULL));
  ck_assert(hmmv_vm_finalize_layout(vm, NULL));
  hmmv_vm_set_pid(vm, two_child);
  mover = hmmv_numa_mover_new(topo, &error);
  ck_assert_msg(mover != NULL, "%s", error ? error->message : "");
  for (guint page = 0; page < TWO_NODE_PAGES; page++)
    pages[page] = page;
  /* first touch by a CPU of node 0 put every page there */
  ck_assert(hmmv_mover_query(mover, vm, pages, TWO_NODE_PAGES, &error));
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), TWO_NODE_PAGES);

  move_all_to(mover, vm, pages, 1);
  ck_assert_uint_eq(hmmv_vm_get_slow_pages(vm), TWO_NODE_PAGES);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), 0);
  ck_assert_uint_eq(stats->demoted, TWO_NODE_PAGES);
  move_all_to(mover, vm, pages, 0);
  ck_assert_uint_eq(hmmv_vm_get_dram_pages(vm), TWO_NODE_PAGES);
  ck_assert_uint_eq(stats->promoted, TWO_NODE_PAGES);
  ck_assert_uint_eq(stats->busy + stats->no_memory + stats->access + stats->other +
                    stats->fault + stats->not_present + stats->call_failures, 0);
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
  suite_add_tcase(suite, tc);
  if (numa_max_node() < 1) {
    TCase *shared = tcase_create("shared");
    static MoverCaseHost one_node;

    one_node = mover_numa_case_host;
    /* the numa mover uses MPOL_MF_MOVE_ALL where the kernel allows it: CAP_SYS_NICE */
    one_node.move_all = geteuid() == 0;
    mover_cases_add(shared, &one_node);
    suite_add_tcase(suite, shared);
    /* it checks that the kernel refuses node 1 */
    tcase_add_test(tc, test_vm_errors);
    printf("# one NUMA node (numa_max_node() = %d): the two-node round trip is not run; "
           "the testbed suite runs it in a two-node guest\n", numa_max_node());
  } else {
    TCase *two = tcase_create("two-node");
    static MoverCaseHost two_nodes;

    two_nodes = mover_numa_case_host;
    two_nodes.supports = CASE_NEEDS_TWO_NODES | mover_numa_host_huge_support();
    /* a node 1 filled for a moment (its hugetlbfs pool grown to all it can take, as root):
     * only where asked, as the testbed does, never by default on a host that runs things */
    if (geteuid() == 0 && g_strcmp0(g_getenv("HMMV_MOVER_FILL_NODE1"), "1") == 0) {
      two_nodes.supports |= CASE_NEEDS_SLOW_ROOM;
      /* and put back whatever becomes of the case that fills it */
      mover_numa_host_keep_node1_pool(two);
    }
    two_nodes.move_all = geteuid() == 0;

    /* test_vm_errors expects the kernel to refuse node 1, which this host has */
    printf("# %d NUMA nodes: test_vm_errors is not run (it needs a host without node 1)\n",
           numa_max_node() + 1);
    tcase_add_checked_fixture(two, two_setup, two_teardown);
    /* under TCG a fill, four checks and two moves of 8 MiB take seconds, not Check's 4 */
    tcase_set_timeout(two, 120);
    tcase_add_test(two, test_two_node_round_trip);
    /* the shared cases run in this case, which the testbed's verdict is made of */
    mover_cases_add(two, &two_nodes);
    suite_add_tcase(suite, two);
  }
  fflush(stdout);
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
