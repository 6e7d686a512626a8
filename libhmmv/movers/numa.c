/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The numa mover: move_pages(2) through libnuma on the VM's (QEMU's) process, at the host
 * addresses of its RAM regions. Every page's status is reported back to the wrappers.
 */
#include <hmmv/error.h>
#include <hmmv/mover.h>

#include <errno.h>
#include <numa.h>
#include <numaif.h>

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

gboolean
hmmv_numa_move_addresses(int pid, void **addresses, gsize nr, int dest_node, int *status,
                         GError **error)
{
  g_autofree int *nodes = NULL;
  long rc;

  if (nr == 0)
    return TRUE;
  if (dest_node >= 0) {
    nodes = g_new(int, nr);
    for (gsize i = 0; i < nr; i++)
      nodes[i] = dest_node;
  }
  /* A positive result (pages not migrated, Linux >= 4.17) still leaves a status per page. */
  rc = numa_move_pages(pid, nr, addresses, nodes, status, MPOL_MF_MOVE);
  if (rc < 0) {
    set_call_error(error, errno, pid, dest_node);
    return FALSE;
  }
  return TRUE;
}

/* Maps pages to addresses, asks the kernel about the mapped ones, scatters statuses back. */
static gboolean
numa_call(HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node, int *status,
          GError **error)
{
  int pid = hmmv_vm_get_pid(vm);
  g_autofree void **addresses = NULL;
  g_autofree gsize *slots = NULL;
  g_autofree int *kernel_status = NULL;
  gsize nr = 0;

  if (pid <= 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s has no process id", hmmv_vm_get_name(vm));
    return FALSE;
  }
  addresses = g_new(void *, nr_pages);
  slots = g_new(gsize, nr_pages);
  kernel_status = g_new(int, nr_pages);
  for (gsize i = 0; i < nr_pages; i++) {
    guint64 hva = hmmv_vm_page_to_hva(vm, pages[i]);

    /* No host address known: nothing the kernel could be asked about. */
    status[i] = -EFAULT;
    if (hva == 0)
      continue;
    addresses[nr] = (void *)(guintptr)hva;
    slots[nr++] = i;
  }
  if (!hmmv_numa_move_addresses(pid, addresses, nr, dest_node, kernel_status, error))
    return FALSE;
  for (gsize k = 0; k < nr; k++)
    status[slots[k]] = kernel_status[k];
  return TRUE;
}

static gboolean
numa_query(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int *status,
           GError **error)
{
  return numa_call(vm, pages, nr_pages, -1, status, error);
}

static gboolean
numa_move(HmmvMover *mover, HmmvVm *vm, const guint64 *pages, gsize nr_pages, int dest_node,
          int *status, GError **error)
{
  return numa_call(vm, pages, nr_pages, dest_node, status, error);
}

static const struct hmmv_mover_ops numa_ops = {
  .name = "numa",
  .query = numa_query,
  .move = numa_move,
};

HmmvMover *
hmmv_numa_mover_new(const HmmvTopology *topo, GError **error)
{
  if (numa_available() < 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "mover numa: the kernel has no NUMA support (numa_available() < 0)");
    return NULL;
  }
  return hmmv_mover_new(&numa_ops, NULL, topo, error);
}
