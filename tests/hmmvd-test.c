/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmvd-test.h"

#include <string.h>

void
hmmvd_test_bed_init(HmmvdTestBed *bed, guint64 dram_bytes, guint64 slow_bytes,
                    const HmmvParams *params)
{
  hmmvd_test_bed_init_topology(bed, hmmv_test_topology_two_tier(dram_bytes, slow_bytes),
                               params);
}

void
hmmvd_test_bed_init_topology(HmmvdTestBed *bed, HmmvTopology *topo, const HmmvParams *params)
{
  g_autoptr(GError) error = NULL;

  memset(bed, 0, sizeof(*bed));
  hmmvd_config_init(&bed->config);
  if (params != NULL)
    bed->config.params = *params;
  bed->topo = topo;
  bed->mover = hmmv_sim_mover_new(bed->topo, &error);
  ck_assert_msg(bed->mover != NULL, "%s", error ? error->message : "");
  bed->core = hmmv_core_new(bed->topo, bed->mover, &bed->config.params, 0, &error);
  ck_assert_msg(bed->core != NULL, "%s", error ? error->message : "");
  bed->vms = hmmvd_vms_new(bed->core, &bed->config);
  hmmvd_vms_set_mover(bed->vms, bed->mover);
}

void
hmmvd_test_bed_clear(HmmvdTestBed *bed)
{
  g_clear_pointer(&bed->vms, hmmvd_vms_free);
  g_clear_pointer(&bed->core, hmmv_core_free);
  g_clear_pointer(&bed->mover, hmmv_mover_free);
  g_clear_pointer(&bed->topo, hmmv_topology_free);
  hmmvd_config_clear(&bed->config);
}

typedef struct {
  GSocketAddress *address;
  guint nr_connections;
  guint closed;
  guint max_bytes;
  gint done;
} Trickle;

static gpointer
trickle_thread(gpointer data)
{
  Trickle *t = data;
  g_autoptr(GPtrArray) sockets = g_ptr_array_new_with_free_func(g_object_unref);
  g_autofree guint *sent = g_new0(guint, t->nr_connections);
  g_autofree gboolean *closed = g_new0(gboolean, t->nr_connections);
  gint64 give_up = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  for (guint i = 0; i < t->nr_connections; i++) {
    GSocket *sock = g_socket_new(g_socket_address_get_family(t->address), G_SOCKET_TYPE_STREAM,
                                 G_SOCKET_PROTOCOL_DEFAULT, NULL);

    g_assert(sock != NULL);
    if (!g_socket_connect(sock, t->address, NULL, NULL))
      closed[i] = TRUE;
    g_socket_set_blocking(sock, FALSE);
    g_ptr_array_add(sockets, sock);
  }
  while (t->closed < t->nr_connections && g_get_monotonic_time() < give_up) {
    for (guint i = 0; i < t->nr_connections; i++) {
      GSocket *sock = g_ptr_array_index(sockets, i);
      g_autoptr(GError) error = NULL;
      char buf[4096];
      gssize n;

      if (closed[i])
        continue;
      /* A request that never ends: spaces, no newline. */
      if (g_socket_send(sock, " ", 1, NULL, NULL) == 1)
        sent[i]++;
      while ((n = g_socket_receive(sock, buf, sizeof(buf), NULL, &error)) > 0)
        ;   /* an answer ("too many clients") before the end */
      if (n == 0 || !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        closed[i] = TRUE;
        t->closed++;
        t->max_bytes = MAX(t->max_bytes, sent[i]);
      }
    }
    g_usleep(100 * 1000);
  }
  g_atomic_int_set(&t->done, 1);
  g_main_context_wakeup(NULL);
  return NULL;
}

guint
hmmvd_test_trickle(GSocketAddress *address, guint nr_connections, guint *bytes_sent)
{
  Trickle t = { .address = address, .nr_connections = nr_connections };
  GThread *thread = g_thread_new("trickle", trickle_thread, &t);

  while (!g_atomic_int_get(&t.done))
    g_main_context_iteration(NULL, TRUE);
  g_thread_join(thread);
  if (bytes_sent != NULL)
    *bytes_sent = t.max_bytes;
  return t.closed;
}

HmmvTracker *
hmmvd_test_bed_add_vm(HmmvdTestBed *bed, const char *name, guint64 nr_pages,
                      HmmvdSource source)
{
  g_autoptr(GError) error = NULL;
  HmmvTracker *tracker = hmmv_fake_tracker_new();

  ck_assert_msg(hmmvd_vms_add_with_tracker(bed->vms, name, source, 4242, NULL,
                                           hmmv_test_vm_new(name, nr_pages), tracker, &error),
                "%s", error ? error->message : "");
  return tracker;
}

void
hmmvd_test_write_pages(HmmvTracker *tracker, guint64 first, guint64 nr)
{
  for (guint64 p = first; p < first + nr; p++)
    hmmv_fake_tracker_queue_write(tracker, p);
}
