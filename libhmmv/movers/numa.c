/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The numa mover: move_pages(2) through libnuma on the VM's (QEMU's) process, at the host
 * addresses of its RAM regions. Every page's status is reported back to the wrappers.
 */
#include <hmmv/error.h>
#include <hmmv/mover.h>

#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <unistd.h>

static void
set_call_error(GError **error, int errsv, int pid, int dest_node)
{
  switch (errsv) {
  case ESRCH:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_GONE, "process %d is gone", pid);
    break;
  case ENODEV:
  case EINVAL:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "move_pages(pid %d, node %d): invalid node or argument: %s", pid, dest_node,
                g_strerror(errsv));
    break;
  case EPERM:
  case EACCES:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PERMISSION,
                "move_pages(pid %d, node %d): not permitted: %s", pid, dest_node,
                g_strerror(errsv));
    break;
  case ENOMEM:
    /* __GFP_THISNODE allocation on the target failed: the node is full. The kernel fails the
     * whole call this way and never reports -ENOMEM per page. */
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NO_SPACE, "move_pages(pid %d): node %d is full",
                pid, dest_node);
    break;
  case ENOSYS:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "move_pages is not supported by this kernel");
    break;
  default:
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "move_pages(pid %d, node %d): %s",
                pid, dest_node, g_strerror(errsv));
    break;
  }
}

/* One move_pages(2) call: -1 with error, or the kernel's count of pages not migrated (> 0:
 * statuses from the first unmigrated group on are not written). */
static gssize
numa_call_kernel(int pid, void **addresses, gsize nr, int dest_node, int flags, int *status,
                 GError **error)
{
  g_autofree int *nodes = NULL;
  long rc;

  if (nr == 0)
    return 0;
  if (dest_node >= 0) {
    nodes = g_new(int, nr);
    for (gsize i = 0; i < nr; i++)
      nodes[i] = dest_node;
  }
  rc = numa_move_pages(pid, nr, addresses, nodes, status, flags);
  if (rc < 0) {
    set_call_error(error, errno, pid, dest_node);
    return -1;
  }
  return rc;
}

gboolean
hmmv_numa_move_addresses(int pid, void **addresses, gsize nr, int dest_node, int *status,
                         GError **error)
{
  return numa_call_kernel(pid, addresses, nr, dest_node, MPOL_MF_MOVE, status, error) >= 0;
}

/* Maps pages to addresses, asks the kernel about the mapped ones, scatters statuses back;
 * entries the kernel does not write keep what the caller put in status. */
static gssize
numa_call(HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node, int flags,
          int *status, GError **error)
{
  int pid = hmmv_vm_get_pid(vm);
  g_autofree void **addresses = NULL;
  g_autofree gsize *slots = NULL;
  g_autofree int *kernel_status = NULL;
  g_autoptr(GError) local_error = NULL;
  gsize nr = 0;
  gssize rc;

  if (pid <= 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s has no process id", hmmv_vm_get_name(vm));
    return -1;
  }
  addresses = g_new(void *, nr_pages);
  slots = g_new(gsize, nr_pages);
  kernel_status = g_new(int, nr_pages);
  for (gsize i = 0; i < nr_pages; i++) {
    guint64 hva = hmmv_vm_page_to_hva(vm, pages[i]);

    if (hva == 0) {
      /* No host address known: nothing the kernel could be asked about. */
      status[i] = -EFAULT;
      continue;
    }
    addresses[nr] = (void *)(guintptr)hva;
    kernel_status[nr] = status[i];
    slots[nr++] = i;
  }
  rc = numa_call_kernel(pid, addresses, nr, dest_node, flags, kernel_status, &local_error);
  if (rc < 0) {
    gboolean full = g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_NO_SPACE);

    g_propagate_error(error, g_steal_pointer(&local_error));
    if (!full)
      return -1;
  }
  for (gsize k = 0; k < nr; k++)
    status[slots[k]] = kernel_status[k];
  return rc;
}

static gboolean
numa_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int *status,
           GError **error)
{
  return numa_call(vm, pages, nr_pages, -1, MPOL_MF_MOVE, status, error) == 0;
}

/* MPOL_MF_MOVE_ALL also moves pages other processes map: guest RAM shared with a vhost-user
 * backend or virtiofsd, and KSM-merged pages (QEMU asks for merging by default), which
 * MPOL_MF_MOVE refuses with -EACCES for good. It needs CAP_SYS_NICE, which hmmvd has as root;
 * without it the kernel fails the whole call with EPERM, and the mover falls back to
 * MPOL_MF_MOVE for the rest of its life. */
typedef struct {
  int flags;
  gboolean told_smaps;      /* the smaps fallback of numa_query_thp was logged */
} NumaMover;

static gssize
numa_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node,
          int *status, GError **error)
{
  NumaMover *numa = mover->priv;
  g_autoptr(GError) local_error = NULL;
  gssize rc = numa_call(vm, pages, nr_pages, dest_node, numa->flags, status, &local_error);

  if (rc < 0 && (numa->flags & MPOL_MF_MOVE_ALL) != 0 &&
      g_error_matches(local_error, HMMV_ERROR, HMMV_ERROR_PERMISSION)) {
    g_debug("mover numa: MPOL_MF_MOVE_ALL refused (%s): pages shared with other processes "
            "stay where they are", local_error->message);
    numa->flags = MPOL_MF_MOVE;
    g_clear_error(&local_error);
    rc = numa_call(vm, pages, nr_pages, dest_node, numa->flags, status, &local_error);
  }
  if (local_error != NULL)
    g_propagate_error(error, g_steal_pointer(&local_error));
  return rc;
}

/* THP state. pagemap gives each page's frame (root only: CAP_SYS_ADMIN, else frames read 0)
 * and kpageflags the frame's flags (include/uapi/linux/kernel-page-flags.h). A 2 MiB block is
 * one THP when its first page is a THP's head, its last page a THP's tail, and their frames
 * are 511 apart: the one PMD-sized folio (an mTHP of 64 KiB would not span the block). */
#define PM_PRESENT (G_GUINT64_CONSTANT(1) << 63)
#define PM_PFN_MASK ((G_GUINT64_CONSTANT(1) << 55) - 1)
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_THP 22

static gboolean
read_u64(int fd, guint64 index, guint64 *value)
{
  return pread(fd, value, sizeof(*value), (off_t)(index * sizeof(*value))) ==
         (ssize_t)sizeof(*value);
}

/* 1 THP, 0 not, -1 cannot tell (no frame numbers or flags here). */
static int
block_is_thp(int pagemap, int kpageflags, guint64 hva)
{
  guint64 first, last, flags_first, flags_last;

  if (!read_u64(pagemap, hva >> 12, &first) ||
      !read_u64(pagemap, (hva >> 12) + HMMV_THP_PAGES - 1, &last))
    return -1;
  if ((first & PM_PRESENT) == 0 || (last & PM_PRESENT) == 0)
    return 0;                      /* not faulted in: no THP there */
  if ((first & PM_PFN_MASK) == 0 || kpageflags < 0)
    return -1;
  if ((last & PM_PFN_MASK) != (first & PM_PFN_MASK) + HMMV_THP_PAGES - 1 ||
      !read_u64(kpageflags, first & PM_PFN_MASK, &flags_first) ||
      !read_u64(kpageflags, last & PM_PFN_MASK, &flags_last))
    return 0;
  return ((flags_first >> KPF_THP) & (flags_first >> KPF_COMPOUND_HEAD) &
          (flags_last >> KPF_THP) & (flags_last >> KPF_COMPOUND_TAIL) & 1) != 0;
}

/* The fallback without frame numbers: /proc/PID/smaps' AnonHugePages per mapping. A block of
 * a mapping with any THP counts as one ("in doubt, a unit"): its move is then charged 512
 * pages against the cap, and the query after the move records what really moved. */
static GArray *
smaps_thp_mappings(int pid, GError **error)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/smaps", pid);
  g_autofree char *text = NULL;
  g_autoptr(GArray) out = g_array_new(FALSE, FALSE, sizeof(guint64) * 2);
  g_auto(GStrv) lines = NULL;
  guint64 range[2] = { 0, 0 };

  if (!g_file_get_contents(path, &text, NULL, error))
    return NULL;
  lines = g_strsplit(text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++) {
    unsigned long long start, end, kb;

    if (sscanf(lines[i], "%llx-%llx ", &start, &end) == 2) {
      range[0] = start;
      range[1] = end;
    } else if (sscanf(lines[i], "AnonHugePages: %llu kB", &kb) == 1 && kb > 0) {
      g_array_append_vals(out, range, 1);
    }
  }
  return g_steal_pointer(&out);
}

static gboolean
numa_query_thp(HmmvMover *mover, HmmvVm *vm, const guint64 *first_pages, gsize n,
               guint8 *is_thp, GError **error)
{
  NumaMover *numa = mover->priv;
  int pid = hmmv_vm_get_pid(vm);
  g_autofree char *path = g_strdup_printf("/proc/%d/pagemap", pid);
  g_autoptr(GArray) smaps = NULL;
  int pagemap, kpageflags;
  gboolean ok = TRUE;

  if (pid <= 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "vm %s has no process id",
                hmmv_vm_get_name(vm));
    return FALSE;
  }
  pagemap = open(path, O_RDONLY | O_CLOEXEC);
  if (pagemap < 0) {
    int errsv = errno;

    g_set_error(error, HMMV_ERROR, errsv == ENOENT ? HMMV_ERROR_GONE : HMMV_ERROR_FAILED,
                "%s: %s", path, g_strerror(errsv));
    return FALSE;
  }
  kpageflags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
  for (gsize i = 0; ok && i < n; i++) {
    /* the block's start: a block at a range's edge starts before its first page */
    guint64 hva = hmmv_vm_page_to_hva(vm, first_pages[i]) & ~(HMMV_THP_SIZE - 1);
    int thp = hva == 0 ? 0 : block_is_thp(pagemap, kpageflags, hva);

    if (thp < 0 && smaps == NULL) {
      smaps = smaps_thp_mappings(pid, error);
      ok = smaps != NULL;
      if (ok && !numa->told_smaps) {
        g_message("mover numa: no page frame numbers or /proc/kpageflags (not root?): THP "
                  "state from /proc/%d/smaps, every 2 MiB block of a mapping with "
                  "AnonHugePages counted as a THP", pid);
        numa->told_smaps = TRUE;
      }
    }
    if (thp < 0 && ok) {
      thp = 0;
      for (guint m = 0; m < smaps->len; m++) {
        const guint64 *range = &g_array_index(smaps, guint64, 2 * m);

        if (hva >= range[0] && hva + HMMV_THP_SIZE <= range[1])
          thp = 1;
      }
    }
    is_thp[i] = thp > 0;
  }
  if (kpageflags >= 0)
    close(kpageflags);
  close(pagemap);
  return ok;
}

static void
numa_destroy(HmmvMover *mover)
{
  g_free(mover->priv);
}

static const struct hmmv_mover_ops numa_ops = {
  .name = "numa",
  .query = numa_query,
  .move = numa_move,
  .query_thp = numa_query_thp,
  .destroy = numa_destroy,
};

HmmvMover *
hmmv_numa_mover_new(const HmmvTopology *topo, GError **error)
{
  NumaMover *numa;

  if (numa_available() < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "mover numa: the kernel has no NUMA support (numa_available() < 0)");
    return NULL;
  }
  numa = g_new0(NumaMover, 1);
  numa->flags = MPOL_MF_MOVE_ALL;
  return hmmv_mover_new(&numa_ops, numa, topo, error);
}
