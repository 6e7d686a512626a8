/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket's response time while the mover works at its cap (issue 7, the loop at
 * fleet scale; goal: under 50 ms). hmmvd's own pieces: the VM table (daemon/vms.c) running
 * each interval on the core's worker, ticked every interval as hmmvd ticks it, and the
 * control socket (daemon/control.c) on the main loop. The mover is the gate mover
 * (tests/gate-mover.c): the sim mover taking 3,900 ns of real time per page, what
 * move_pages(2) takes in 512-page batches (tests/bench/tier-model.md), so an interval's moves
 * at the host cap (1000 MB/s: 244,140 pages, ~0.95 s) keep the worker busy nearly all the
 * time. Five VMs of 256 MiB, 128 MiB of DRAM each, each writing one half of its RAM, then
 * the other, in turn (generated on the worker, in the tracker's harvest, as the real
 * trackers do); the payback gate, hysteresis and cooldown off, so the half just written
 * outranks the other: each VM wants 32,768 promotions and as many demotions every interval,
 * over its 200 MB/s cap (48,828 pages), and the five over the host's (measured: 244,140
 * pages moved an interval).
 *
 * A client thread asks {"command":"status"} the way hmmvctl does (connect, one line, the
 * reply, close) every 20 ms and times each round trip. Printed: the samples, how many met an
 * interval running, the pages moved per interval, p50/p99/max in ms, then
 * control_p99_ms= for scripts. A figure, never an assertion.
 *
 *   bench-control [--seconds N]   (default 30)
 */
#include "config.h"
#include "control.h"
#include "gate-mover.h"
#include "vms.h"

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NR_VMS 5u
#define VM_PAGES (64u * 1024u)         /* 256 MiB */
#define DRAM_PAGES_PER_VM (32u * 1024u) /* 128 MiB */
#define MOVE_NS_PER_PAGE 3900u
#define ASK_EVERY_US 20000u

/* A tracker that writes a window of half the VM every harvest, moved on by its size. */
typedef struct {
  guint64 next;
} Window;

static gboolean
window_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  Window *window = tracker->priv;
  guint64 nr_pages = hmmv_vm_get_nr_pages(vm);

  (void)error;
  for (guint64 i = 0; i < nr_pages / 2; i++)
    hmmv_access_mark_write(acc, (window->next + i) % nr_pages);
  window->next = (window->next + nr_pages / 2) % nr_pages;
  acc->intervals = 1;
  return TRUE;
}

static void
window_destroy(HmmvTracker *tracker)
{
  g_free(tracker->priv);
}

static const struct hmmv_tracker_ops window_ops = {
  .name = "window",
  .harvest = window_harvest,
  .destroy = window_destroy,
};

typedef struct {
  const char *path;
  gint64 until_us;
  GArray *ms;               /* double: each round trip */
  guint running;            /* replies that said an interval was running */
  guint failed;
  gint done;
} Client;

static gpointer
client_thread(gpointer data)
{
  Client *client = data;
  g_autoptr(GSocketClient) socket_client = g_socket_client_new();
  g_autoptr(GSocketAddress) address = g_unix_socket_address_new(client->path);
  static const char request[] = "{\"command\":\"status\"}\n";

  g_socket_client_set_timeout(socket_client, 60);
  while (g_get_monotonic_time() < client->until_us) {
    g_autoptr(GSocketConnection) connection = NULL;
    g_autoptr(GString) reply = g_string_new(NULL);
    gint64 t0 = g_get_monotonic_time();
    char buf[4096];
    gssize n = 0;

    connection = g_socket_client_connect(socket_client, G_SOCKET_CONNECTABLE(address), NULL,
                                         NULL);
    if (connection != NULL &&
        g_output_stream_write_all(g_io_stream_get_output_stream(G_IO_STREAM(connection)),
                                  request, strlen(request), NULL, NULL, NULL)) {
      while (strchr(reply->str, '\n') == NULL &&
             (n = g_input_stream_read(g_io_stream_get_input_stream(G_IO_STREAM(connection)),
                                      buf, sizeof(buf), NULL, NULL)) > 0)
        g_string_append_len(reply, buf, n);
    }
    if (strchr(reply->str, '\n') != NULL && g_str_has_prefix(reply->str, "{\"return\"")) {
      double ms = (double)(g_get_monotonic_time() - t0) / 1000.0;

      g_array_append_val(client->ms, ms);
      client->running += strstr(reply->str, "\"interval-running\":true") != NULL;
    } else {
      client->failed++;
    }
    g_usleep(ASK_EVERY_US);
  }
  g_atomic_int_set(&client->done, 1);
  g_main_context_wakeup(NULL);
  return NULL;
}

typedef struct {
  HmmvdVms *vms;
  guint ticks, started, finished;
} Ticker;

static void
interval_done(gpointer data)
{
  ((Ticker *)data)->finished++;
}

/* hmmvd's tick: start an interval, or skip it while one runs */
static gboolean
tick(gpointer data)
{
  Ticker *ticker = data;

  ticker->ticks++;
  ticker->started += hmmvd_vms_start_interval(ticker->vms, interval_done, ticker);
  return G_SOURCE_CONTINUE;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  g_autofree char *dir = g_dir_make_tmp("hmmv-bench-control-XXXXXX", NULL);
  g_autofree char *path = NULL;
  HmmvdConfig config;
  HmmvMover *gate;
  HmmvCore *core;
  HmmvdVms *vms;
  HmmvdControl *control;
  Ticker ticker = { 0 };
  Client client = { 0 };
  GThread *thread;
  guint seconds = 30, tick_id;
  guint64 moved = 0;
  double *ms;

  if (argc == 3 && strcmp(argv[1], "--seconds") == 0)
    seconds = (guint)CLAMP(atoi(argv[2]), 2, 3600);
  if (dir == NULL)
    return EXIT_FAILURE;
  path = g_build_filename(dir, "hmmvd.sock", NULL);
  if (!hmmv_topology_add_node(topo, 0, (guint64)NR_VMS * DRAM_PAGES_PER_VM * HMMV_PAGE_SIZE,
                              2, HMMV_TIER_DRAM, &error) ||
      !hmmv_topology_add_node(topo, 1, (guint64)NR_VMS * VM_PAGES * HMMV_PAGE_SIZE, 0,
                              HMMV_TIER_SLOW, &error)) {
    fprintf(stderr, "bench-control: %s\n", error->message);
    return EXIT_FAILURE;
  }
  hmmvd_config_init(&config);
  /* the gate, hysteresis and cooldown off: the half just written outranks the other, and
   * the two swap every interval, at the caps */
  config.params.move_cost_ns = 0;
  config.params.hysteresis_keys = 0;
  config.params.cooldown_intervals = 0;
  gate = hmmv_gate_mover_new(topo, MOVE_NS_PER_PAGE, &error);
  core = gate != NULL ? hmmv_core_new(topo, gate, &config.params, 0, &error) : NULL;
  if (core == NULL) {
    fprintf(stderr, "bench-control: %s\n", error->message);
    return EXIT_FAILURE;
  }
  vms = hmmvd_vms_new(core, &config);
  for (guint v = 0; v < NR_VMS; v++) {
    g_autofree char *name = g_strdup_printf("vm%u", v);
    g_autoptr(HmmvVm) vm = hmmv_vm_new(name);
    HmmvTracker *tracker = hmmv_tracker_new(&window_ops, g_new0(Window, 1), &error);

    if (tracker == NULL ||
        !hmmv_vm_add_region(vm, "ram", 0, 0, (guint64)VM_PAGES * HMMV_PAGE_SIZE,
                            HMMV_PAGE_SIZE, &error) ||
        !hmmv_vm_finalize_layout(vm, &error) ||
        !hmmvd_vms_add_with_tracker(vms, name, HMMVD_SOURCE_STANDALONE, getpid(), NULL,
                                    g_steal_pointer(&vm), tracker, &error)) {
      fprintf(stderr, "bench-control: %s\n", error->message);
      return EXIT_FAILURE;
    }
  }
  control = hmmvd_control_new(vms, topo, "gate", path, &error);
  if (control == NULL) {
    fprintf(stderr, "bench-control: %s\n", error->message);
    return EXIT_FAILURE;
  }

  ticker.vms = vms;
  tick_id = g_timeout_add(config.interval_ms, tick, &ticker);
  /* two intervals to fill DRAM and reach the caps before the first sample */
  while (ticker.finished < 2)
    g_main_context_iteration(NULL, TRUE);
  for (guint v = 0; v < NR_VMS; v++) {
    g_autofree char *name = g_strdup_printf("vm%u", v);

    const HmmvdVmInfo *info = hmmvd_vms_lookup(vms, name);

    moved -= info->moves.promoted + info->moves.demoted;
  }
  {
    guint finished0 = ticker.finished;

    client.path = path;
    client.until_us = g_get_monotonic_time() + (gint64)seconds * G_USEC_PER_SEC;
    client.ms = g_array_new(FALSE, FALSE, sizeof(double));
    thread = g_thread_new("bench-client", client_thread, &client);
    while (!g_atomic_int_get(&client.done))
      g_main_context_iteration(NULL, TRUE);
    g_thread_join(thread);
    g_source_remove(tick_id);
    hmmvd_vms_wait_idle(vms);
    for (guint v = 0; v < NR_VMS; v++) {
      g_autofree char *name = g_strdup_printf("vm%u", v);

      const HmmvdVmInfo *info = hmmvd_vms_lookup(vms, name);

      moved += info->moves.promoted + info->moves.demoted;
    }
    ms = (double *)client.ms->data;
    qsort(ms, client.ms->len, sizeof(double), cmp_double);
    printf("bench-control: %u VMs x %u MiB, DRAM %u MiB each, caps %u MB/s a VM and %u MB/s "
           "the host, moves %u ns a page (gate mover)\n", NR_VMS, VM_PAGES / 256,
           DRAM_PAGES_PER_VM / 256, config.params.migrate_mbps,
           config.params.host_migrate_mbps, MOVE_NS_PER_PAGE);
    printf("bench-control: %u s: %u intervals done (%u ticks skipped), %.0f pages moved an "
           "interval; %u status requests answered, %u while an interval ran, %u failed\n",
           seconds, ticker.finished - finished0, ticker.ticks - ticker.started,
           ticker.finished > finished0 ? (double)moved / (ticker.finished - finished0) : 0.0,
           client.ms->len, client.running, client.failed);
    if (client.ms->len == 0) {
      fprintf(stderr, "bench-control: no request answered\n");
      return EXIT_FAILURE;
    }
    printf("bench-control: status round trip p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           ms[client.ms->len / 2], ms[(client.ms->len * 99) / 100], ms[client.ms->len - 1]);
    printf("control_p99_ms=%.2f\n", ms[(client.ms->len * 99) / 100]);
  }
  hmmvd_control_free(control);
  hmmvd_vms_free(vms);
  hmmv_core_free(core);
  hmmv_mover_free(gate);
  hmmvd_config_clear(&config);
  g_array_unref(client.ms);
  g_unlink(path);
  g_rmdir(dir);
  return EXIT_SUCCESS;
}
