/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "two-socket.h"

HmmvTopology *
two_socket_topology(void)
{
  return hmmv_test_topology_two_socket((guint64)DRAM_NODE_PAGES * HMMV_PAGE_SIZE,
                                       (guint64)SLOW_NODE_PAGES * HMMV_PAGE_SIZE);
}

void
two_socket_setup(HmmvTestCore *bed, guint64 pool_pages, gboolean cpu_nodes)
{
  hmmv_test_core_init(bed, two_socket_topology(), NULL, pool_pages);
  for (guint v = 0; v < NR_VMS; v++)
    hmmv_test_core_add_vm(bed, VM_PAGES, cpu_nodes ? (int)v : -1);
}

GArray *
two_socket_demoted_hot_set(HmmvTestCore *bed, HmmvIntervalReport *report)
{
  GArray *hot = g_array_new(FALSE, FALSE, sizeof(guint64));
  HmmvVm *vm0 = hmmv_core_get_vm(bed->core, 0);

  hmmv_core_set_pool_pages(bed->core, VM_PAGES);
  for (guint v = 0; v < NR_VMS; v++)
    hmmv_test_core_write(bed, v, 0, VM_PAGES);
  hmmv_test_core_run(bed, report);
  for (guint i = 0; i < 12; i++) {
    for (guint v = 0; v < NR_VMS; v++)
      hmmv_test_core_write(bed, v, 0, 128);
    hmmv_test_core_run(bed, report);
  }
  for (guint64 p = 0; p < VM_PAGES && hot->len < 128; p++)
    if (hmmv_vm_get_page_node(vm0, p) == 2)
      g_array_append_val(hot, p);
  ck_assert_uint_eq(hot->len, 128);
  hmmv_core_set_pool_pages(bed->core, 0);
  return hot;
}

void
two_socket_fill_node0(HmmvTestCore *bed)
{
  g_autoptr(GError) error = NULL;

  ck_assert(hmmv_topology_set_free(bed->topo, 0, 16 * HMMV_PAGE_SIZE, &error));
  ck_assert_msg(hmmv_core_set_node_pool(bed->core, 0, 0, 64, &error), "%s",
                error ? error->message : "");
}
