/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Which node runs a VM (daemon/affinity.c), on fake /proc trees of a two-socket host. */
#include "hmmv-test.h"
#include "affinity.h"

#include <glib/gstdio.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#define PID 4242

typedef struct {
  char *root;
} FakeProc;

static void
fake_proc_free(FakeProc *proc)
{
  hmmv_test_remove_tree(proc->root);
  g_free(proc->root);
  g_free(proc);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FakeProc, fake_proc_free)

static FakeProc *
fake_proc_new(void)
{
  FakeProc *proc = g_new0(FakeProc, 1);

  proc->root = g_dir_make_tmp("hmmv-proc-XXXXXX", NULL);
  ck_assert_ptr_nonnull(proc->root);
  return proc;
}

/* One thread's status, as the kernel prints the lines that matter. */
static void
fake_thread(FakeProc *proc, int tid, const char *cpus, const char *mems)
{
  g_autofree char *dir = g_strdup_printf("%s/%d/task/%d", proc->root, PID, tid);
  g_autofree char *path = g_build_filename(dir, "status", NULL);
  g_autofree char *text = g_strdup_printf("Name:\tqemu-system-x86\nPid:\t%d\n"
                                          "Cpus_allowed:\tff\nCpus_allowed_list:\t%s\n"
                                          "Mems_allowed_list:\t%s\nvoluntary_ctxt_switches:\t9\n",
                                          PID, cpus, mems);

  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

/* Nodes 0 and 1: DRAM with CPUs 0-3 and 4-7; nodes 2 and 3: slow, CPU-less. */
static HmmvTopology *
two_sockets(void)
{
  HmmvTopology *topo = hmmv_topology_new();

  for (int id = 0; id < 4; id++)
    ck_assert(hmmv_topology_add_node(topo, id, 1 << 30, id < 2 ? 4 : 0,
                                     id < 2 ? HMMV_TIER_DRAM : HMMV_TIER_SLOW, NULL));
  ck_assert(hmmv_topology_set_cpus(topo, 0, "0-3", NULL));
  ck_assert(hmmv_topology_set_cpus(topo, 1, "4-7", NULL));
  return topo;
}

static void
assert_node(FakeProc *proc, const HmmvTopology *topo, int want, const char *want_source)
{
  const char *source = NULL;
  int node = hmmvd_affinity_cpu_node(proc->root, PID, topo, &source);

  ck_assert_int_eq(node, want);
  ck_assert_str_eq(source, want_source);
}

/* A VM pinned whole (taskset -c 4-7), and vCPUs pinned (vcpupin) beside an unpinned main
 * thread. */
START_TEST(test_pinned_threads)
{
  g_autoptr(FakeProc) whole = fake_proc_new();
  g_autoptr(FakeProc) vcpus = fake_proc_new();
  g_autoptr(HmmvTopology) topo = two_sockets();

  fake_thread(whole, PID, "4-7", "0-3");
  fake_thread(whole, PID + 1, "4-7", "0-3");
  assert_node(whole, topo, 1, "cpu-affinity");
  fake_thread(vcpus, PID, "0-7", "0-3");
  fake_thread(vcpus, PID + 1, "0-3", "0-3");
  fake_thread(vcpus, PID + 2, "1", "0-3");
  fake_thread(vcpus, PID + 3, "6", "0-3");
  assert_node(vcpus, topo, 0, "cpu-affinity");
}
END_TEST

/* Nothing pinned: numatune's one DRAM node (with its slow node), else unknown. */
START_TEST(test_unpinned)
{
  g_autoptr(FakeProc) numatune = fake_proc_new();
  g_autoptr(FakeProc) free_vm = fake_proc_new();
  g_autoptr(FakeProc) bad = fake_proc_new();
  g_autoptr(HmmvTopology) topo = two_sockets();

  fake_thread(numatune, PID, "0-7", "1,3");
  assert_node(numatune, topo, 1, "mems-allowed");
  fake_thread(free_vm, PID, "0-7", "0-3");
  assert_node(free_vm, topo, -1, "pages");
  fake_thread(bad, PID, "7-x", "0-3");        /* malformed: no vote */
  assert_node(bad, topo, -1, "pages");
  assert_node(bad, topo, -1, "pages");
  ck_assert_int_eq(hmmvd_affinity_cpu_node(free_vm->root, PID + 99, topo, &(const char *){ 0 }),
                   -1);    /* gone */
}
END_TEST

/* /proc/PID/status of the process itself (its main thread: the task move_pages(2) checks). */
static void
fake_process(FakeProc *proc, const char *mems)
{
  g_autofree char *dir = g_strdup_printf("%s/%d", proc->root, PID);
  g_autofree char *path = g_build_filename(dir, "status", NULL);
  g_autofree char *text = g_strdup_printf("Name:\tqemu-system-x86\nPid:\t%d\n"
                                          "Mems_allowed:\t00000000,0000000a\n"
                                          "Mems_allowed_list:\t%s\n", PID, mems);

  ck_assert_int_eq(g_mkdir_with_parents(dir, 0700), 0);
  ck_assert(g_file_set_contents(path, text, -1, NULL));
}

/* The nodes QEMU's memory may be on (strict numatune: cpuset.mems), as a mask. */
START_TEST(test_mems_allowed)
{
  static const struct {
    const char *list;
    gboolean ok;
    guint32 mask;
  } cases[] = {
    { "1,3", TRUE, 0xa }, { "0-3", TRUE, 0xf }, { "0", TRUE, 0x1 }, { "2-3,0", TRUE, 0xd },
    { "0-30", TRUE, 0x7fffffff },
    { "0-63", FALSE, 0 },     /* ids past hmmv's: refused, not read wrong */
    { "1,x", FALSE, 0 }, { "3-1", FALSE, 0 }, { "", FALSE, 0 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(FakeProc) proc = fake_proc_new();
    guint32 mask = 0xdead;

    fake_process(proc, cases[i].list);
    ck_assert_msg(hmmvd_affinity_mems_allowed(proc->root, PID, &mask) == cases[i].ok,
                  "case %zu (%s)", i, cases[i].list);
    ck_assert_msg(mask == cases[i].mask, "case %zu (%s): mask %#x", i, cases[i].list, mask);
  }
  {
    g_autoptr(FakeProc) proc = fake_proc_new();
    guint32 mask = 0xdead;

    ck_assert(!hmmvd_affinity_mems_allowed(proc->root, PID, &mask));   /* gone */
    ck_assert_uint_eq(mask, 0);
    ck_assert(!hmmvd_affinity_mems_allowed(proc->root, 0, &mask));
  }
}
END_TEST

/* Every thread of this process pinned to the CPUs of cpus (a two-CPU mask). */
static void
pin_threads(const char *cpus)
{
  g_autoptr(GDir) dir = g_dir_open("/proc/self/task", 0, NULL);
  const char *name;
  cpu_set_t set;

  ck_assert_ptr_nonnull(dir);
  CPU_ZERO(&set);
  for (guint cpu = 0; cpus[cpu] != '\0'; cpu++)
    if (cpus[cpu] == '1')
      CPU_SET(cpu, &set);
  while ((name = g_dir_read_name(dir)) != NULL)
    ck_assert_int_eq(sched_setaffinity((pid_t)g_ascii_strtoll(name, NULL, 10), sizeof(set),
                                       &set), 0);
}

/* On the real /proc (this process, its threads pinned with sched_setaffinity(2)): the threads'
 * CPUs come from the kernel, one system call a thread, and no status file is read while a
 * thread votes (every 8 intervals hmmvd read one a thread: five system calls each); the one
 * status read is the cpuset's memory, when no thread is confined to one node. */
START_TEST(test_real_threads)
{
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  const char *source = NULL;
  guint64 reads;

  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
    g_message("test_real_threads: needs two online CPUs; left out");
    return;
  }
  /* CPU 0 on node 0, CPU 1 on node 1: both DRAM */
  ck_assert(hmmv_topology_add_node(topo, 0, 1 << 30, 1, HMMV_TIER_DRAM, NULL));
  ck_assert(hmmv_topology_add_node(topo, 1, 1 << 30, 1, HMMV_TIER_DRAM, NULL));
  ck_assert(hmmv_topology_set_cpus(topo, 0, "0", NULL));
  ck_assert(hmmv_topology_set_cpus(topo, 1, "1", NULL));

  pin_threads("01");
  reads = hmmvd_affinity_get_status_reads();
  ck_assert_int_eq(hmmvd_affinity_cpu_node(NULL, getpid(), topo, &source), 1);
  ck_assert_str_eq(source, "cpu-affinity");
  pin_threads("10");
  ck_assert_int_eq(hmmvd_affinity_cpu_node(NULL, getpid(), topo, &source), 0);
  ck_assert_str_eq(source, "cpu-affinity");
  ck_assert_uint_eq(hmmvd_affinity_get_status_reads(), reads);

  /* spanning both nodes: no vote; the first thread's status gives the cpuset's memory */
  pin_threads("11");
  (void)hmmvd_affinity_cpu_node(NULL, getpid(), topo, &source);
  ck_assert_uint_eq(hmmvd_affinity_get_status_reads(), reads + 1);
  ck_assert(strcmp(source, "mems-allowed") == 0 || strcmp(source, "pages") == 0);
  /* a process that is gone */
  ck_assert_int_eq(hmmvd_affinity_cpu_node(NULL, G_MAXINT - 1, topo, &source), -1);
  ck_assert_str_eq(source, "pages");
}
END_TEST

static Suite *
affinity_suite(void)
{
  Suite *suite = suite_create("affinity");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_pinned_threads);
  tcase_add_test(tc, test_unpinned);
  tcase_add_test(tc, test_mems_allowed);
  tcase_add_test(tc, test_real_threads);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(affinity_suite());
}
