/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The numa mover's host for the shared mover cases: split out of test-mover-numa.c, which
 * keeps the numa mover's own tests and its suite.
 */
#include "mover-numa-host.h"

#include <errno.h>
#include <fcntl.h>   /* vmsplice, open */
#include <numa.h>
#include <numaif.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* This host's one node as DRAM, and a node 1 it does not have as the slow tier. */
HmmvTopology *
mover_numa_host_topology(void)
{
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();

  ck_assert(hmmv_topology_add_node(topo, 0, G_GUINT64_CONSTANT(4) << 30, 2, HMMV_TIER_DRAM,
                                   NULL));
  /* node 1 is in the topology, but not on this host: the kernel must refuse it */
  ck_assert(hmmv_topology_add_node(topo, 1, G_GUINT64_CONSTANT(4) << 30, 0, HMMV_TIER_SLOW,
                                   NULL));
  return g_steal_pointer(&topo);
}

/* The shared cases' host: a child process per case plays QEMU. It maps the case's pages
 * (4 KiB pages: MADV_NOHUGEPAGE), touches the present ones, puts them on their node with
 * move_pages(2) on itself, and gives pinned pages a reference migration cannot drop by
 * vmsplice()ing them into a pipe it never reads. */
static pid_t case_child = -1;
static HmmvTopology *case_topo;
static HmmvVm *case_vm;
static HmmvMover *case_mover;

static gboolean
read_full(int fd, void *buffer, gsize size)
{
  char *p = buffer;

  while (size > 0) {
    ssize_t n = read(fd, p, size);

    if (n <= 0)
      return FALSE;
    p += n;
    size -= (gsize)n;
  }
  return TRUE;
}

static int
place_own_pages(char *buffer, const guint8 *spec, guint64 nr, guint8 kind, int node)
{
  g_autofree void **addresses = g_new(void *, nr);
  g_autofree int *nodes = g_new(int, nr);
  g_autofree int *status = g_new(int, nr);
  guint64 n = 0;

  for (guint64 p = 0; p < nr; p++) {
    if (spec[p] == kind) {
      addresses[n] = buffer + p * 4096;
      nodes[n++] = node;
    }
  }
  return n == 0 ? 0 : (int)numa_move_pages(0, n, addresses, nodes, status, MPOL_MF_MOVE);
}

static G_GNUC_NORETURN void
case_child_main(int cmd_fd, int reply_fd)
{
  guint64 nr, address, backing, bytes;
  g_autofree guint8 *spec = NULL;
  int pins[2];
  char *buffer;

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(120);
  if (!read_full(cmd_fd, &nr, sizeof(nr)) || nr > (1u << 20) ||
      !read_full(cmd_fd, &backing, sizeof(backing)))
    _exit(1);
  spec = g_malloc(nr);
  if (!read_full(cmd_fd, spec, nr) || pipe(pins) != 0)
    _exit(1);
  bytes = nr * 4096;
  if (backing == CASE_BACKING_HUGETLB) {
    buffer = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
  } else {
    /* THPs need 2 MiB-aligned addresses: map 2 MiB more and round up */
    char *raw = mmap(NULL, bytes + (2u << 20), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    buffer = raw == MAP_FAILED ? raw
                               : (char *)(((guintptr)raw + (2u << 20) - 1) & ~(guintptr)((2u << 20) - 1));
  }
  if (buffer == MAP_FAILED)
    _exit(1);
  /* the second process below gets only the shared pages */
  if (backing == CASE_BACKING_4K)
    madvise(buffer, bytes, MADV_NOHUGEPAGE);
  else if (backing == CASE_BACKING_THP)
    madvise(buffer, bytes, MADV_HUGEPAGE);
  madvise(buffer, bytes, MADV_DONTFORK);
  for (guint64 p = 0; p < nr; p++) {
    if (spec[p] == CASE_SHARED0 &&
        mmap(buffer + p * 4096, 4096, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
      _exit(1);
    if (spec[p] != CASE_ABSENT)
      buffer[p * 4096] = 1;
  }
  if (memchr(spec, CASE_SHARED0, nr) != NULL) {
    int ready[2];
    char byte = 0;
    pid_t sharer;

    if (pipe(ready) != 0 || (sharer = fork()) < 0)
      _exit(1);
    if (sharer == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      /* fork copies no page tables of shared mappings: map the pages by touching them */
      for (guint64 p = 0; p < nr; p++) {
        if (spec[p] == CASE_SHARED0)
          byte += ((volatile char *)buffer)[p * 4096];
      }
      if (write(ready[1], &byte, 1) != 1)
        _exit(1);
      for (;;)
        pause();
    }
    if (read(ready[0], &byte, 1) != 1)
      _exit(1);
  }
  if (numa_max_node() >= 1 &&
      (place_own_pages(buffer, spec, nr, CASE_NODE0, 0) < 0 ||
       place_own_pages(buffer, spec, nr, CASE_PINNED0, 0) < 0 ||
       place_own_pages(buffer, spec, nr, CASE_SHARED0, 0) < 0 ||
       place_own_pages(buffer, spec, nr, CASE_NODE1, 1) < 0))
    _exit(1);
  for (guint64 p = 0; p < nr; p++) {
    struct iovec iov = { buffer + p * 4096, 4096 };

    if (spec[p] == CASE_PINNED0 && vmsplice(pins[1], &iov, 1, 0) != 4096)
      _exit(1);
  }
  address = (guint64)(guintptr)buffer;
  if (write(reply_fd, &address, sizeof(address)) != sizeof(address))
    _exit(1);
  for (;;)
    pause();
}

/* Node 1's 2 MiB hugetlbfs pool as the run found it: read by the runner before any case
 * process forks (mover_numa_host_keep_node1_pool), so every case has it; -1: not kept, and
 * no case may fill node 1. */
#define NODE1_HUGEPAGES "/sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages"
static gint64 node1_pool_found = -1;

static gint64
node1_hugepages(void)
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents(NODE1_HUGEPAGES, &text, NULL, NULL))
    return -1;
  return g_ascii_strtoll(text, NULL, 10);
}

/* Not g_file_set_contents: sysfs and procfs take a write, not a renamed temporary file. */
static gboolean
write_knob(const char *path, guint64 value)
{
  g_autofree char *text = g_strdup_printf("%" G_GUINT64_FORMAT "\n", value);
  int fd = open(path, O_WRONLY);
  gboolean ok;

  if (fd < 0)
    return FALSE;
  ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
  close(fd);
  return ok;
}

/* Node 1's pool back as the run found it, if it is not; *was gets what it was. TRUE when it
 * is as found (or not kept). Pages of the pool in use are none by then: the cases' own pages
 * are not from node 1's pool, and the case's child is gone or going (it dies with the case). */
static gboolean
node1_pool_put_back(gint64 *was)
{
  *was = node1_pool_found;
  if (node1_pool_found < 0)
    return TRUE;
  *was = node1_hugepages();
  if (*was == node1_pool_found)
    return TRUE;
  return write_knob(NODE1_HUGEPAGES, (guint64)node1_pool_found) &&
         node1_hugepages() == node1_pool_found;
}

/* Before each case, in the case's process: a case whose assertion failed ends its process
 * there, and neither its own teardown nor Check's checked teardown runs, so its fill would
 * stay for every case after it (last session's CI: all of them failed for want of room on
 * node 1, not for their own reasons). */
static void
node1_pool_before_case(void)
{
  gint64 was;

  ck_assert_msg(node1_pool_put_back(&was), "node 1's hugetlbfs pool is %" G_GINT64_FORMAT
                " 2 MiB pages and could not be put back to the %" G_GINT64_FORMAT " found: %s",
                was, node1_pool_found, g_strerror(errno));
  if (was != node1_pool_found) {
    printf("# node 1's hugetlbfs pool put back to %" G_GINT64_FORMAT " 2 MiB pages (a case "
           "before this one left %" G_GINT64_FORMAT ")\n", node1_pool_found, was);
    fflush(stdout);
  }
}

/* After the test case's last unit, in the runner (Check's unchecked teardown): the last one
 * may have failed too. */
static void
node1_pool_after_all(void)
{
  gint64 was;

  if (!node1_pool_put_back(&was))
    g_printerr("test-mover-numa: could not put %s back to %" G_GINT64_FORMAT " (it is %"
               G_GINT64_FORMAT "): %s\n", NODE1_HUGEPAGES, node1_pool_found, was,
               g_strerror(errno));
}

void
mover_numa_host_keep_node1_pool(TCase *tc)
{
  node1_pool_found = node1_hugepages();
  if (node1_pool_found < 0)
    return;   /* then fill_node1 fails the case that asks for it, saying so */
  tcase_add_checked_fixture(tc, node1_pool_before_case, NULL);
  tcase_add_unchecked_fixture(tc, NULL, node1_pool_after_all);
}

/* Takes node 1 down to about room pages of free memory: its 2 MiB hugetlbfs pool is grown
 * until the kernel has no more to give (it stops at the zone's min watermark, and its
 * allocations for the pool never call the OOM killer, which a process filling the node with
 * locked memory did), then shrunk by room's worth of 2 MiB pages. What is left above that
 * (pages on per-CPU lists, fragments no 2 MiB page could be made of) is the kernel's to decide,
 * so the room is about, not exact. The pool is put back as found in case_teardown when the
 * case gets there, else before the next case or after the last
 * (mover_numa_host_keep_node1_pool). */
static void
fill_node1(guint64 room)
{
  guint64 huge_room = (room + 511) / 512;
  gint64 got;
  int fd;

  ck_assert_msg(node1_pool_found >= 0, "node 1's hugetlbfs pool (%s) was not read before the "
                "cases ran (mover_numa_host_keep_node1_pool): nothing would put it back",
                NODE1_HUGEPAGES);
  ck_assert_msg(node1_hugepages() == node1_pool_found, "node 1's hugetlbfs pool is not as found");
  sync();
  fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  ck_assert_msg(fd >= 0 && write(fd, "3", 1) == 1, "cannot drop caches: %s", g_strerror(errno));
  close(fd);
  /* ask for all of node 1: the kernel gives what it can */
  ck_assert_msg(write_knob(NODE1_HUGEPAGES, node1_pool_found + 1024 * 1024),
                "cannot write %s: %s", NODE1_HUGEPAGES, g_strerror(errno));
  got = node1_hugepages();
  ck_assert_msg(got > node1_pool_found + (gint64)huge_room,
                "node 1's hugetlbfs pool grew from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT
                " pages only", node1_pool_found, got);
  ck_assert_msg(write_knob(NODE1_HUGEPAGES, got - huge_room), "cannot write %s: %s",
                NODE1_HUGEPAGES, g_strerror(errno));
  printf("# node 1 filled: %" G_GINT64_FORMAT " of its 2 MiB pages taken (%" G_GINT64_FORMAT
         " before), %" G_GUINT64_FORMAT " given back\n", got - huge_room, node1_pool_found,
         huge_room);
  fflush(stdout);
}

static void
case_teardown(void)
{
  gint64 was;

  if (case_child > 0) {
    kill(case_child, SIGKILL);
    waitpid(case_child, NULL, 0);
    case_child = -1;
  }
  /* as found: the case's own pages are not from the pool */
  if (!node1_pool_put_back(&was))
    g_printerr("test-mover-numa: could not put %s back to %" G_GINT64_FORMAT " (it is %"
               G_GINT64_FORMAT "): %s\n", NODE1_HUGEPAGES, node1_pool_found, was,
               g_strerror(errno));
  g_clear_pointer(&case_vm, hmmv_vm_free);
  g_clear_pointer(&case_mover, hmmv_mover_free);
  g_clear_pointer(&case_topo, hmmv_topology_free);
}

static void
case_setup(const guint8 *spec, guint64 nr, guint64 slow_room, CaseBacking backing, HmmvVm **vm,
           HmmvMover **mover)
{
  g_autoptr(GError) error = NULL;
  int cmd[2], reply[2];
  guint64 address = 0, backing64 = backing;

  ck_assert_int_eq(pipe(cmd), 0);
  ck_assert_int_eq(pipe(reply), 0);
  case_child = fork();
  ck_assert_int_ge(case_child, 0);
  if (case_child == 0) {
    close(cmd[1]);
    close(reply[0]);
    case_child_main(cmd[0], reply[1]);
  }
  close(cmd[0]);
  close(reply[1]);
  ck_assert_int_eq(write(cmd[1], &nr, sizeof(nr)), sizeof(nr));
  ck_assert_int_eq(write(cmd[1], &backing64, sizeof(backing64)), sizeof(backing64));
  ck_assert_int_eq(write(cmd[1], spec, nr), (ssize_t)nr);
  ck_assert_msg(read_full(reply[0], &address, sizeof(address)), "the case's child failed");
  close(cmd[1]);
  close(reply[0]);
  if (slow_room > 0)  /* the case's pages are on node 0 by now */
    fill_node1(slow_room);
  case_topo = numa_max_node() >= 1 ? hmmv_topology_new_from_host(NULL, &error)
                                   : mover_numa_host_topology();
  ck_assert_msg(case_topo != NULL, "%s", error ? error->message : "");
  case_vm = hmmv_vm_new("case");
  ck_assert(hmmv_vm_add_region(case_vm, "ram", 0, address, nr * 4096,
                               backing == CASE_BACKING_HUGETLB ? 2u << 20 : 4096, NULL));
  ck_assert(hmmv_vm_finalize_layout(case_vm, NULL));
  hmmv_vm_set_pid(case_vm, case_child);
  case_mover = hmmv_numa_mover_new(case_topo, &error);
  ck_assert_msg(case_mover != NULL, "%s", error ? error->message : "");
  *vm = case_vm;
  *mover = case_mover;
}

const MoverCaseHost mover_numa_case_host = {
  .name = "the numa mover",
  .setup = case_setup,
  .teardown = case_teardown,
};

/* Huge pages this host can give the cases: THPs unless they are off, hugetlbfs when nodes 0
 * and 1 each have 4 free 2 MiB pages (tests/testbed/mover-two-node.sh reserves them). */
guint
mover_numa_host_huge_support(void)
{
  g_autofree char *thp = NULL;
  guint support = 0;

  if (g_file_get_contents("/sys/kernel/mm/transparent_hugepage/enabled", &thp, NULL, NULL) &&
      strstr(thp, "[never]") == NULL)
    support |= CASE_NEEDS_THP;
  support |= CASE_NEEDS_HUGETLB;
  for (int node = 0; node <= 1; node++) {
    g_autofree char *path = g_strdup_printf("/sys/devices/system/node/node%d/hugepages/"
                                            "hugepages-2048kB/free_hugepages", node);
    g_autofree char *text = NULL;

    if (!g_file_get_contents(path, &text, NULL, NULL) || g_ascii_strtoull(text, NULL, 10) < 4)
      support &= ~(guint)CASE_NEEDS_HUGETLB;
  }
  return support;
}
