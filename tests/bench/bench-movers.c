/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv's numa mover against the plain tools, on a host with a DRAM node 0 and a slow node 1
 * (the testbed: tests/testbed/testbed run -- build/tests/bench/bench-movers). The same
 * pages of this process (--mib, 4 KiB pages: MADV_NOHUGEPAGE, so every method moves the same
 * base pages) go to node 1 and back, each round by each of:
 *   hmmv      hmmv_mover_move(): what hmmvd runs (move_pages(2) in batches of 512 through
 *             libnuma, MPOL_MF_MOVE_ALL, statuses checked, short calls queried and retried,
 *             the VM's placement map and counters updated);
 *   loop      one plain loop of move_pages(2) calls, --batch pages each, statuses ignored;
 *   migratepages  numactl's migratepages PID 0 1 (migrate_pages(2): every page of the
 *             process on node 0, its code, stack and libraries too: counted apart from
 *             /proc/vmstat's pgmigrate_success).
 * Methods take turns (the first of a round changes each round), after each move every page
 * is checked on the target by a status query, after each round every word of the buffer is
 * checked. Printed per method: the median cost of a move in us per page each way, and its
 * ratio to the plain loop; then one line a method for scripts ("movers: ..."). A figure of
 * the machine it ran on, not a limit.
 *
 * usage: bench-movers [--mib N] [--rounds R] [--batch PAGES]; exit 77 with one node.
 */
#include <hmmv/hmmv.h>

#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { M_HMMV, M_LOOP, M_MIGRATEPAGES, NR_METHODS };
static const char *const method_names[NR_METHODS] = { "hmmv", "loop", "migratepages" };
#define MAX_ROUNDS 32

static guint64 *buffer;
static gsize nr_pages;
static void **addresses;
static int *status;
static int *nodes;

static double
now_s(void)
{
  struct timespec t;

  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static guint64
vmstat(const char *key)
{
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  gsize len = strlen(key);

  if (!g_file_get_contents("/proc/vmstat", &text, NULL, NULL))
    return 0;
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (strncmp(lines[i], key, len) == 0 && lines[i][len] == ' ')
      return g_ascii_strtoull(lines[i] + len + 1, NULL, 10);
  return 0;
}

static guint64
pattern(gsize word)
{
  return (guint64)word * 0x9e3779b97f4a7c15ull ^ 0x5eed;
}

/* Pages of the buffer on node (status query), and the first one elsewhere. */
static gsize
pages_on(int node, gsize *first_elsewhere)
{
  gsize on = 0;

  if (syscall(SYS_move_pages, 0, nr_pages, addresses, NULL, status, 0) != 0) {
    perror("bench-movers: move_pages status query");
    exit(EXIT_FAILURE);
  }
  *first_elsewhere = nr_pages;
  for (gsize i = 0; i < nr_pages; i++) {
    if (status[i] == node)
      on++;
    else if (*first_elsewhere == nr_pages)
      *first_elsewhere = i;
  }
  return on;
}

static gboolean
move_loop(int dest, gsize batch)
{
  for (gsize i = 0; i < nr_pages; i++)
    nodes[i] = dest;
  for (gsize i = 0; i < nr_pages; i += batch) {
    gsize n = MIN(batch, nr_pages - i);

    if (syscall(SYS_move_pages, 0, n, addresses + i, nodes + i, status + i,
                MPOL_MF_MOVE_ALL) < 0) {
      perror("bench-movers: move_pages");
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
move_migratepages(int from, int to)
{
  char pid[24], f[16], t[16];
  pid_t child;
  int wstatus;

  g_snprintf(pid, sizeof(pid), "%d", (int)getpid());
  g_snprintf(f, sizeof(f), "%d", from);
  g_snprintf(t, sizeof(t), "%d", to);
  child = fork();
  if (child == 0) {
    execlp("migratepages", "migratepages", pid, f, t, (char *)NULL);
    _exit(127);
  }
  if (child < 0 || waitpid(child, &wstatus, 0) != child)
    return FALSE;
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    fprintf(stderr, "bench-movers: migratepages %s %s %s: exit %d\n", pid, f, t,
            WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
    return FALSE;
  }
  return TRUE;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static double
median(double *v, guint n)
{
  qsort(v, n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
  gint mib = 128, rounds = 5, batch = 512;
  const GOptionEntry entries[] = {
    { "mib", 0, 0, G_OPTION_ARG_INT, &mib, "buffer size (default 128)", "N" },
    { "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "rounds (default 5)", "R" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &batch, "pages per move_pages call of the loop", "N" },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new("- numa mover vs the plain tools");
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = NULL;
  g_autoptr(HmmvVm) vm = NULL;
  g_autoptr(HmmvMover) mover = NULL;
  g_autofree guint64 *indices = NULL;
  double cost[NR_METHODS][2][MAX_ROUNDS];   /* [method][0: to node 1, 1: to node 0] us/page */
  guint64 migrated[NR_METHODS] = { 0 };
  double med[NR_METHODS][2];
  gsize words;

  g_option_context_add_main_entries(context, entries, NULL);
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    fprintf(stderr, "bench-movers: %s\n", error->message);
    return 2;
  }
  if (mib < 1 || mib > 4096 || rounds < 1 || rounds > MAX_ROUNDS || batch < 1 ||
      batch > 65536) {
    fprintf(stderr, "bench-movers: --mib 1..4096, --rounds 1..%d, --batch 1..65536\n",
            MAX_ROUNDS);
    return 2;
  }
  topo = hmmv_topology_new_from_host(NULL, &error);
  if (topo == NULL || hmmv_topology_is_single_node(topo) ||
      hmmv_topology_lookup(topo, 0) == NULL || hmmv_topology_lookup(topo, 1) == NULL) {
    printf("SKIP: needs nodes 0 and 1 (run it in tests/testbed/testbed)%s%s\n",
           error ? ": " : "", error ? error->message : "");
    return 77;
  }
  if (g_find_program_in_path("migratepages") == NULL) {
    printf("SKIP: no migratepages (Debian package numactl)\n");
    return 77;
  }
  nr_pages = (gsize)mib << 8;
  words = nr_pages * (HMMV_PAGE_SIZE / 8);
  buffer = mmap(NULL, nr_pages * HMMV_PAGE_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffer == MAP_FAILED) {
    perror("bench-movers: mmap");
    return EXIT_FAILURE;
  }
  madvise(buffer, nr_pages * HMMV_PAGE_SIZE, MADV_NOHUGEPAGE);
  for (gsize w = 0; w < words; w++)
    buffer[w] = pattern(w);
  addresses = g_new(void *, nr_pages);
  status = g_new(int, nr_pages);
  nodes = g_new(int, nr_pages);
  indices = g_new(guint64, nr_pages);
  for (gsize i = 0; i < nr_pages; i++) {
    addresses[i] = (char *)buffer + i * HMMV_PAGE_SIZE;
    indices[i] = i;
  }
  vm = hmmv_vm_new("bench");
  if (!hmmv_vm_add_region(vm, "ram", 0, (guint64)(guintptr)buffer, nr_pages * HMMV_PAGE_SIZE,
                          HMMV_PAGE_SIZE, &error) ||
      !hmmv_vm_finalize_layout(vm, &error)) {
    fprintf(stderr, "bench-movers: %s\n", error->message);
    return EXIT_FAILURE;
  }
  hmmv_vm_set_pid(vm, getpid());
  mover = hmmv_numa_mover_new(topo, &error);
  if (mover == NULL) {
    fprintf(stderr, "bench-movers: %s\n", error->message);
    return EXIT_FAILURE;
  }
  /* start on node 0, known to the mover */
  if (!move_loop(0, 512) || !hmmv_mover_query(mover, vm, indices, nr_pages, &error)) {
    fprintf(stderr, "bench-movers: %s\n", error ? error->message : "cannot start on node 0");
    return EXIT_FAILURE;
  }
  printf("bench-movers: %zu pages (%d MiB, 4 KiB) of pid %d, node 0 <-> node 1, %d rounds, "
         "loop batch %d, hmmv batch %u\n", nr_pages, mib, (int)getpid(), rounds, batch,
         mover->batch_pages);
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < NR_METHODS; k++) {
      int m = (r + k) % NR_METHODS;

      for (int dir = 0; dir < 2; dir++) {
        int dest = dir == 0 ? 1 : 0;
        guint64 before = vmstat("pgmigrate_success");
        gsize on, elsewhere;
        gboolean ok = TRUE;
        guint64 moved = 0;
        double t0 = now_s();

        if (m == M_HMMV)
          ok = hmmv_mover_move(mover, vm, indices, nr_pages, dest, &moved, &error);
        else if (m == M_LOOP)
          ok = move_loop(dest, (gsize)batch);
        else
          ok = move_migratepages(1 - dest, dest);
        cost[m][dir][r] = (now_s() - t0) * 1e6 / (double)nr_pages;
        migrated[m] += vmstat("pgmigrate_success") - before;
        on = pages_on(dest, &elsewhere);
        if (!ok || on != nr_pages) {
          fprintf(stderr, "bench-movers: round %d, %s to node %d: %s; %zu of %zu pages there "
                  "(page %zu status %d)\n", r, method_names[m], dest,
                  error ? error->message : ok ? "ok" : "failed", on, nr_pages, elsewhere,
                  elsewhere < nr_pages ? status[elsewhere] : 0);
          return EXIT_FAILURE;
        }
        if (m == M_HMMV && moved != nr_pages) {
          fprintf(stderr, "bench-movers: hmmv says %" G_GUINT64_FORMAT " moved of %zu\n",
                  moved, nr_pages);
          return EXIT_FAILURE;
        }
        if (m != M_HMMV && !hmmv_mover_query(mover, vm, indices, nr_pages, &error)) {
          fprintf(stderr, "bench-movers: %s\n", error->message);
          return EXIT_FAILURE;
        }
      }
    }
    for (gsize w = 0; w < words; w++)
      if (buffer[w] != pattern(w)) {
        fprintf(stderr, "bench-movers: round %d: word %zu corrupt\n", r, w);
        return EXIT_FAILURE;
      }
  }
  for (int m = 0; m < NR_METHODS; m++)
    for (int dir = 0; dir < 2; dir++)
      med[m][dir] = median(cost[m][dir], (guint)rounds);   /* sorts: [0] min, [rounds-1] max */
  printf("%-13s %22s %22s %10s %10s %15s\n", "method", "to node1 us/pg (range)",
         "to node0 us/pg (range)", "x loop(1)", "x loop(0)", "migrated/moved");
  for (int m = 0; m < NR_METHODS; m++) {
    g_autofree char *to1 = g_strdup_printf("%.1f (%.0f-%.0f)", med[m][0], cost[m][0][0],
                                           cost[m][0][rounds - 1]);
    g_autofree char *to0 = g_strdup_printf("%.1f (%.0f-%.0f)", med[m][1], cost[m][1][0],
                                           cost[m][1][rounds - 1]);

    printf("%-13s %22s %22s %10.2f %10.2f %15.3f\n", method_names[m], to1, to0,
           med[m][0] / med[M_LOOP][0], med[m][1] / med[M_LOOP][1],
           (double)migrated[m] / (2.0 * (double)rounds * (double)nr_pages));
  }
  printf("(median of %d rounds; migrated/moved: the kernel's pgmigrate_success over the buffer "
         "pages moved; every page checked on its node after each move, every word after each "
         "round)\n", rounds);
  for (int m = 0; m < NR_METHODS; m++)
    printf("movers: method=%s demote_us_per_page=%.2f promote_us_per_page=%.2f "
           "ratio_to_loop=%.2f/%.2f\n", method_names[m], med[m][0], med[m][1],
           med[m][0] / med[M_LOOP][0], med[m][1] / med[M_LOOP][1]);
  return EXIT_SUCCESS;
}
