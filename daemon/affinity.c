/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Which socket a VM runs on, from what the kernel enforces for its QEMU process: the same
 * answer for libvirt domains (vcpupin, emulatorpin, <vcpu cpuset>, numatune: libvirt applies
 * them with sched_setaffinity and the cpuset cgroup) and standalone VMs (taskset, numactl,
 * systemd's AllowedCPUs).
 *
 * Each thread whose allowed CPUs (sched_getaffinity(2) of the thread; a fake tree's
 * /proc/PID/task/TID/status Cpus_allowed_list in the tests) lie within one node's CPUs votes
 * for that node; the node with the most votes wins (vCPU threads pinned to a socket
 * outvote an unpinned emulator thread, and a VM pinned as a whole gets all votes). No thread
 * confined to one node: Mems_allowed_list, when it holds exactly one DRAM node (numatune
 * strict). Else -1: the core then promotes to the DRAM node holding most of the VM's pages.
 *
 * hmmvd asks every 8 intervals for every VM: on the real host one system call a thread, where
 * reading each thread's status file took five (openat, newfstatat, two reads, close) and made
 * the kernel print ~55 lines; the status file is read once, and only when no thread votes.
 */
#include "affinity.h"

#include <sched.h>
#include <string.h>

/* Status files read by hmmvd_affinity_cpu_node (the tests count them). */
static guint64 status_reads;

/* A QEMU has a few threads per vCPU plus I/O threads; a VM with more than this many threads
 * is sampled (the first ones are the main thread and, in QEMU's order, the vCPUs). */
#define AFFINITY_MAX_THREADS 1024
/* /proc/PID/task/TID/status is ~1.5 KiB. */
#define AFFINITY_MAX_STATUS_BYTES (64u * 1024u)

/* Ids of a kernel list ("0-3,8"), as a bitmap of max_id + 1 bits; FALSE if malformed. */
static gboolean
parse_ids(const char *text, guint max_id, GArray *bits)
{
  g_auto(GStrv) parts = g_strsplit(text, ",", -1);

  g_array_set_size(bits, 0);
  g_array_set_size(bits, max_id + 1);
  for (guint i = 0; parts[i] != NULL; i++) {
    g_auto(GStrv) ends = g_strsplit(g_strstrip(parts[i]), "-", 3);
    guint64 first, last;

    if (parts[i][0] == '\0')
      continue;
    if (ends[0] == NULL || !g_ascii_string_to_unsigned(ends[0], 10, 0, max_id, &first, NULL))
      return FALSE;
    last = first;
    if (ends[1] != NULL &&
        (ends[2] != NULL || !g_ascii_string_to_unsigned(ends[1], 10, first, max_id, &last,
                                                        NULL)))
      return FALSE;
    for (guint64 id = first; id <= last; id++)
      g_array_index(bits, gboolean, id) = TRUE;
  }
  return TRUE;
}

/* The value of "Key:\tvalue" in a status text, or NULL. */
static char *
status_value(const char *text, const char *key)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++) {
    if (g_str_has_prefix(lines[i], key) && lines[i][strlen(key)] == ':')
      return g_strstrip(g_strdup(lines[i] + strlen(key) + 1));
  }
  return NULL;
}

/* The node all of a thread's allowed CPUs (bits, HMMVD_AFFINITY_MAX_CPU + 1 gbooleans) belong
 * to, -1 when they span nodes or none. */
static int
bits_node(GArray *bits, const HmmvTopology *topo)
{
  int node = -1;

  for (guint cpu = 0; cpu <= HMMVD_AFFINITY_MAX_CPU; cpu++) {
    int here;

    if (!g_array_index(bits, gboolean, cpu))
      continue;
    here = hmmv_topology_cpu_node(topo, cpu);
    if (here < 0 || (node >= 0 && here != node))
      return -1;
    node = here;
  }
  return node;
}

/* The same from a status file's Cpus_allowed_list. */
static int
thread_node(const char *cpus_text, const HmmvTopology *topo, GArray *bits)
{
  if (cpus_text == NULL || !parse_ids(cpus_text, HMMVD_AFFINITY_MAX_CPU, bits))
    return -1;
  return bits_node(bits, topo);
}

/* The same from the kernel (sched_getaffinity(2) of thread tid): -1 when the thread ended or
 * the kernel's CPU mask is wider than HMMVD_AFFINITY_MAX_CPU + 1 bits. */
static int
tid_node(int tid, const HmmvTopology *topo, GArray *bits)
{
  gsize size = CPU_ALLOC_SIZE(HMMVD_AFFINITY_MAX_CPU + 1);
  cpu_set_t *set = CPU_ALLOC(HMMVD_AFFINITY_MAX_CPU + 1);
  int node = -1;

  if (set == NULL)
    return -1;
  CPU_ZERO_S(size, set);
  if (sched_getaffinity(tid, size, set) == 0) {
    g_array_set_size(bits, 0);
    g_array_set_size(bits, HMMVD_AFFINITY_MAX_CPU + 1);
    for (guint cpu = 0; cpu <= HMMVD_AFFINITY_MAX_CPU; cpu++)
      if (CPU_ISSET_S(cpu, size, set))
        g_array_index(bits, gboolean, cpu) = TRUE;
    node = bits_node(bits, topo);
  }
  CPU_FREE(set);
  return node;
}

/* A status file (bounded), counted; NULL when it cannot be read. */
static char *
read_status(const char *path)
{
  g_autofree char *text = NULL;
  gsize length = 0;

  status_reads++;
  if (!g_file_get_contents(path, &text, &length, NULL) || length > AFFINITY_MAX_STATUS_BYTES)
    return NULL;
  return g_steal_pointer(&text);
}

guint64
hmmvd_affinity_get_status_reads(void)
{
  return status_reads;
}

/* The one DRAM node of a Mems_allowed_list, -1 when it holds none or several. */
static int
mems_node(const char *mems_text, const HmmvTopology *topo, GArray *bits)
{
  int node = -1;

  if (mems_text == NULL || !parse_ids(mems_text, HMMV_MAX_NODE_ID, bits))
    return -1;
  for (guint id = 0; id <= HMMV_MAX_NODE_ID; id++) {
    const HmmvNode *n;

    if (!g_array_index(bits, gboolean, id) || (n = hmmv_topology_lookup(topo, (int)id)) == NULL ||
        n->tier != HMMV_TIER_DRAM)
      continue;
    if (node >= 0)
      return -1;
    node = (int)id;
  }
  return node;
}

gboolean
hmmvd_affinity_mems_allowed(const char *proc_root, int pid, guint32 *mask)
{
  g_autofree char *path = g_strdup_printf("%s/%d/status", proc_root != NULL ? proc_root
                                                                             : "/proc", pid);
  g_autoptr(GArray) bits = g_array_new(FALSE, TRUE, sizeof(gboolean));
  g_autofree char *text = NULL;
  g_autofree char *mems = NULL;
  gsize length = 0;

  *mask = 0;
  if (pid <= 0 || !g_file_get_contents(path, &text, &length, NULL) ||
      length > AFFINITY_MAX_STATUS_BYTES)
    return FALSE;
  mems = status_value(text, "Mems_allowed_list");
  /* ids above HMMV_MAX_NODE_ID are not nodes hmmv places pages on: a list naming one
   * (a 64-node host) is refused rather than read wrong */
  if (mems == NULL || !parse_ids(mems, HMMV_MAX_NODE_ID, bits))
    return FALSE;
  for (guint id = 0; id <= HMMV_MAX_NODE_ID; id++)
    if (g_array_index(bits, gboolean, id))
      *mask |= 1u << id;
  return *mask != 0;
}

int
hmmvd_affinity_cpu_node(const char *proc_root, int pid, const HmmvTopology *topo,
                        const char **source)
{
  g_autofree char *task_dir = g_strdup_printf("%s/%d/task", proc_root != NULL ? proc_root
                                                                               : "/proc", pid);
  g_autoptr(GDir) dir = g_dir_open(task_dir, 0, NULL);
  g_autoptr(GArray) bits = g_array_new(FALSE, TRUE, sizeof(gboolean));
  g_autofree char *mems = NULL;
  guint votes[HMMV_MAX_NODE_ID + 1] = { 0 };
  const char *name;
  g_autofree char *first = NULL;   /* the first thread listed: its status has the mems */
  guint threads = 0, best = 0;
  int node = -1;

  *source = "pages";
  if (pid <= 0 || dir == NULL)
    return -1;
  while ((name = g_dir_read_name(dir)) != NULL && threads < AFFINITY_MAX_THREADS) {
    guint64 tid;
    int here;

    if (!g_ascii_string_to_unsigned(name, 10, 1, G_MAXINT, &tid, NULL))
      continue;
    if (first == NULL)
      first = g_strdup(name);
    if (proc_root == NULL) {
      here = tid_node((int)tid, topo, bits);
    } else {
      g_autofree char *path = g_build_filename(task_dir, name, "status", NULL);
      g_autofree char *text = read_status(path);
      g_autofree char *cpus = NULL;

      if (text == NULL)
        continue;   /* the thread ended meanwhile */
      cpus = status_value(text, "Cpus_allowed_list");
      here = thread_node(cpus, topo, bits);
    }
    threads++;
    if (here >= 0 && here <= HMMV_MAX_NODE_ID)
      votes[here]++;
  }
  for (int id = 0; id <= HMMV_MAX_NODE_ID; id++) {
    if (votes[id] > best) {
      best = votes[id];
      node = id;
    }
  }
  if (node >= 0) {
    *source = "cpu-affinity";
    return node;
  }
  /* no thread confined to one node: the cpuset's memory, from the first thread's status */
  if (first != NULL) {
    g_autofree char *path = g_build_filename(task_dir, first, "status", NULL);
    g_autofree char *text = read_status(path);

    if (text != NULL)
      mems = status_value(text, "Mems_allowed_list");
  }
  node = mems_node(mems, topo, bits);
  if (node >= 0)
    *source = "mems-allowed";
  return node;
}
