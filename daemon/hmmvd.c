/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd: main. Options and configuration, topology and mover, the core and the VM table,
 * the control socket and metrics, the sources of VMs (libvirt, --qmp), one GLib main loop
 * with the interval timer. Runs in the foreground always (systemd Type=simple); --foreground
 * only sends the log to stderr instead of the journal.
 */
#include <errno.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "host-tiering.h"
#include "daemon.h"
#include "libvirt.h"
#include "metrics.h"
#include "standalone.h"

#define DEFAULT_CONFIG "/etc/hmmv/hmmvd.conf"
#define PAGES_PER_MIB 256             /* 4 KiB pages */

typedef struct {
  char *config_path;
  gboolean foreground;
  char **qmp;
  gboolean libvirt;
  gboolean no_libvirt;
  int interval_ms;
  char *mover;
  char *control_socket;
  char *pid_file;
  char *record_dir;
  gboolean version;
} Options;

typedef struct {
  gboolean to_stderr;
  GLogLevelFlags threshold;           /* the least severe level still logged */
} LogSettings;

typedef struct {
  HmmvdConfig config;
  Options options;
  HmmvTopology *topo;                 /* the core's: the host's, or the sim's modelled one */
  HmmvMover *mover;
  HmmvdReads *reads;
  HmmvCore *core;
  HmmvdVms *vms;
  HmmvdControl *control;
  HmmvdMetrics *metrics;
  HmmvdLibvirt *libvirt;
  HmmvdStandalone *standalone;
  GMainLoop *loop;
  gboolean metrics_failing;           /* log a failing textfile once, not every interval */
  gboolean free_failing;              /* the same for re-reading the nodes' free memory */
} Daemon;

/* ---- logging ---------------------------------------------------------------------------- */

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  const LogSettings *settings = user_data;
  GLogLevelFlags severity = level & G_LOG_LEVEL_MASK;

  /* GLib's levels grow less severe as their bit moves up: ERROR 1<<2 ... DEBUG 1<<7. */
  if (severity > settings->threshold && (level & G_LOG_FLAG_FATAL) == 0)
    return G_LOG_WRITER_HANDLED;
  if (!settings->to_stderr &&
      g_log_writer_journald(level, fields, n_fields, NULL) == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_standard_streams(level, fields, n_fields, NULL);
}

static GLogLevelFlags
log_threshold(const char *name)
{
  static const struct {
    const char *name;
    GLogLevelFlags level;
  } levels[] = {
    { "error", G_LOG_LEVEL_CRITICAL },  /* g_critical is an error too */
    { "critical", G_LOG_LEVEL_CRITICAL },
    { "warning", G_LOG_LEVEL_WARNING },
    { "message", G_LOG_LEVEL_MESSAGE },
    { "info", G_LOG_LEVEL_INFO },
    { "debug", G_LOG_LEVEL_DEBUG },
  };

  for (gsize i = 0; i < G_N_ELEMENTS(levels); i++)
    if (g_strcmp0(name, levels[i].name) == 0)
      return levels[i].level;
  return G_LOG_LEVEL_MESSAGE;
}

/* ---- options and configuration ---------------------------------------------------------- */

static gboolean
parse_options(Options *options, int *argc, char ***argv, GError **error)
{
  const GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &options->config_path,
      "Configuration file (default " DEFAULT_CONFIG ")", "FILE" },
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &options->foreground,
      "Log to stderr instead of the journal", NULL },
    { "qmp", 0, 0, G_OPTION_ARG_STRING_ARRAY, &options->qmp,
      "Manage the QEMU behind this QMP socket (repeatable; implies --no-libvirt unless "
      "--libvirt)", "NAME=SOCKET" },
    { "libvirt", 0, 0, G_OPTION_ARG_NONE, &options->libvirt,
      "Use libvirt even with --qmp", NULL },
    { "no-libvirt", 0, 0, G_OPTION_ARG_NONE, &options->no_libvirt, "Do not use libvirt", NULL },
    { "interval-ms", 'i', 0, G_OPTION_ARG_INT, &options->interval_ms,
      "Interval length, overrides the configuration", "MS" },
    { "mover", 'm', 0, G_OPTION_ARG_STRING, &options->mover,
      "auto, numa or sim; overrides the configuration", "MOVER" },
    { "control-socket", 's', 0, G_OPTION_ARG_FILENAME, &options->control_socket,
      "Control socket path; overrides the configuration", "PATH" },
    { "pid-file", 'p', 0, G_OPTION_ARG_FILENAME, &options->pid_file,
      "Write the daemon's pid here", "PATH" },
    { "record-dir", 0, 0, G_OPTION_ARG_FILENAME, &options->record_dir,
      "Write what each VM's tracker saw, per interval, as a trace DIR/NAME.trace "
      "(benchmarks)", "DIR" },
    { "version", 'V', 0, G_OPTION_ARG_NONE, &options->version,
      "Print hmmvd's version and exit", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new("- hmmv heterogeneous-memory daemon");

  g_option_context_add_main_entries(context, entries, NULL);
  if (!g_option_context_parse(context, argc, argv, error))
    return FALSE;
  if (*argc > 1) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "unexpected argument %s",
                (*argv)[1]);
    return FALSE;
  }
  if (options->libvirt && options->no_libvirt) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                "--libvirt and --no-libvirt contradict each other");
    return FALSE;
  }
  return TRUE;
}

static void
options_clear(Options *options)
{
  g_free(options->config_path);
  g_strfreev(options->qmp);
  g_free(options->mover);
  g_free(options->control_socket);
  g_free(options->pid_file);
  g_free(options->record_dir);
}

static gboolean
load_config(Daemon *d, GError **error)
{
  Options *o = &d->options;
  HmmvdConfig *config = &d->config;

  hmmvd_config_init(config);
  /* The default file is optional (defaults apply); a file named on the command line is not. */
  if (o->config_path != NULL || g_file_test(DEFAULT_CONFIG, G_FILE_TEST_EXISTS)) {
    if (!hmmvd_config_load(config, o->config_path ? o->config_path : DEFAULT_CONFIG, error))
      return FALSE;
  }
  if (o->interval_ms < 0 || o->interval_ms > 3600 * 1000) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--interval-ms %d: must be 1 .. 3600000", o->interval_ms);
    return FALSE;
  }
  if (o->interval_ms > 0) {
    config->interval_ms = (guint)o->interval_ms;
    config->params.interval_ms = (guint)o->interval_ms;
    if (!hmmv_params_validate(&config->params, error)) {
      g_prefix_error(error, "--interval-ms: ");
      return FALSE;
    }
  }
  if (o->mover != NULL) {
    g_free(config->mover);
    config->mover = g_strdup(o->mover);
  }
  if (o->control_socket != NULL) {
    g_free(config->control_socket);
    config->control_socket = g_strdup(o->control_socket);
  }
  if (o->record_dir != NULL) {
    if (!g_file_test(o->record_dir, G_FILE_TEST_IS_DIR)) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "--record-dir %s: not a directory", o->record_dir);
      return FALSE;
    }
    config->record_dir = g_strdup(o->record_dir);
  }
  for (guint i = 0; o->qmp != NULL && o->qmp[i] != NULL; i++) {
    g_autofree char *name = NULL;
    g_autofree char *path = NULL;

    if (!hmmvd_standalone_parse_spec(o->qmp[i], &name, &path, error))
      return FALSE;
  }
  if (o->no_libvirt || (o->qmp != NULL && !o->libvirt))
    config->libvirt_enabled = FALSE;
  else if (o->libvirt)
    config->libvirt_enabled = TRUE;
  return TRUE;
}

/* ---- topology and mover ----------------------------------------------------------------- */

static gboolean
apply_tier_overrides(HmmvTopology *topo, char **nodes, HmmvTier tier, GError **error)
{
  for (guint i = 0; nodes != NULL && nodes[i] != NULL; i++) {
    guint64 id;

    if (!g_ascii_string_to_unsigned(nodes[i], 10, 0, HMMV_MAX_NODE_ID, &id, error) ||
        !hmmv_topology_set_tier(topo, (int)id, tier, error)) {
      g_prefix_error(error, "%s node override %s: ", hmmv_tier_to_string(tier), nodes[i]);
      return FALSE;
    }
  }
  return TRUE;
}

/* A modelled host: one DRAM node (sim_dram_mib, or the host's DRAM) and one slow node
 * (sim_slow_mib, or twice the modelled DRAM, a common DRAM:CXL ratio). */
static HmmvTopology *
sim_topology(const HmmvdConfig *config, const HmmvTopology *host, GError **error)
{
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();
  guint64 dram = config->sim_dram_mib != 0 ? config->sim_dram_mib * 1024 * 1024
                                           : hmmv_topology_tier_bytes(host, HMMV_TIER_DRAM);
  guint64 slow = config->sim_slow_mib != 0 ? config->sim_slow_mib * 1024 * 1024 : 2 * dram;

  if (!hmmv_topology_add_node(topo, 0, dram, g_get_num_processors(), HMMV_TIER_DRAM, error) ||
      !hmmv_topology_add_node(topo, 1, slow, 0, HMMV_TIER_SLOW, error))
    return NULL;
  return g_steal_pointer(&topo);
}

static gboolean
setup_mover(Daemon *d, GError **error)
{
  const HmmvdConfig *config = &d->config;
  g_autoptr(HmmvTopology) host = hmmv_topology_new_from_host(NULL, error);
  gboolean tiered;
  g_autofree char *described = NULL;

  if (host == NULL || !apply_tier_overrides(host, config->slow_nodes, HMMV_TIER_SLOW, error) ||
      !apply_tier_overrides(host, config->dram_nodes, HMMV_TIER_DRAM, error))
    return FALSE;
  tiered = hmmv_topology_has_tier(host, HMMV_TIER_SLOW) &&
           hmmv_topology_has_tier(host, HMMV_TIER_DRAM);
  if (strcmp(config->mover, "numa") == 0 && !tiered) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "mover numa: the host has no slow tier next to its DRAM; use mover auto or sim");
    return FALSE;
  }
  if (strcmp(config->mover, "numa") == 0 || (strcmp(config->mover, "auto") == 0 && tiered)) {
    d->topo = g_steal_pointer(&host);
    d->mover = hmmv_numa_mover_new(d->topo, error);
  } else if (strcmp(config->mover, "sim") == 0 || strcmp(config->mover, "auto") == 0) {
    if (!tiered)
      g_message("one NUMA node: slow tier is MODELLED (sim mover); no page really moves");
    else
      g_message("sim mover chosen: slow tier is MODELLED; no page really moves");
    d->topo = sim_topology(config, host, error);
    d->mover = d->topo != NULL ? hmmv_sim_mover_new(d->topo, error) : NULL;
  } else {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "mover %s: expected auto, numa or sim", config->mover);
    return FALSE;
  }
  if (d->mover == NULL)
    return FALSE;
  described = g_strchomp(hmmv_topology_describe(d->topo));
  g_message("mover %s; %s", hmmv_mover_get_name(d->mover), described);
  return TRUE;
}

/* ---- the running daemon ----------------------------------------------------------------- */

/* The per-node pools: node-pool-mib where configured; on real nodes (numa) each node also
 * keeps node-reserve-mib free for the host, from its free memory re-read every interval. The
 * sim mover's modelled nodes have no other users: no reserve. */
static gboolean
setup_node_pools(Daemon *d, GError **error)
{
  gboolean real = g_strcmp0(hmmv_mover_get_name(d->mover), "numa") == 0;

  for (int id = 0; id <= HMMV_MAX_NODE_ID; id++) {
    guint64 configured = d->config.node_pool_pages[id];

    if (hmmv_topology_lookup(d->topo, id) == NULL) {
      if (configured != 0) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                    "node-pool-mib: node %d is not a node of this host (or of the modelled "
                    "one)", id);
        return FALSE;
      }
      continue;
    }
    if (!hmmv_core_set_node_pool(d->core, id, configured,
                                 real ? d->config.node_reserve_pages : 0, error))
      return FALSE;
  }
  return TRUE;
}

static void
interval_done(gpointer data)
{
  Daemon *d = data;
  g_autoptr(GError) local_error = NULL;

  hmmvd_libvirt_sync_end(d->libvirt);   /* the harvest has read the round: late answers void */
  if (d->metrics != NULL && !hmmvd_metrics_interval_done(d->metrics, &local_error)) {
    if (!d->metrics_failing)
      g_warning("metrics: %s", local_error->message);
    d->metrics_failing = TRUE;
  } else {
    d->metrics_failing = FALSE;
  }
}

/* The interval runs on the core's worker; this thread keeps serving libvirt events, the
 * control socket and metrics meanwhile. A tick that finds the last interval still moving is
 * skipped (counted in hmmvctl status): the next one starts it. */
static gboolean
run_interval(gpointer data)
{
  Daemon *d = data;
  g_autoptr(GError) local_error = NULL;

  /* the worker reads the nodes' free memory: refreshed only while no interval runs */
  if (hmmvd_vms_interval_running(d->vms)) {
    /* skipped (and counted): the next tick starts it */
  } else if (g_strcmp0(hmmv_mover_get_name(d->mover), "numa") == 0 &&
      !hmmv_topology_refresh_free(d->topo, &local_error)) {
    if (!d->free_failing)
      g_warning("free memory per node: %s; the node pools keep the last figures",
                local_error->message);
    d->free_failing = TRUE;
    g_clear_error(&local_error);
  } else {
    d->free_failing = FALSE;
  }
  (void)hmmvd_vms_start_interval(d->vms, interval_done, d);   /* FALSE: skipped, counted */
  return G_SOURCE_REMOVE;
}

/* libvirt domains get their hmmv-sync first, on their QMP workers, and the interval starts
 * on the core's worker when all answered or missed the deadline: the main loop never waits
 * for a QEMU. A tick that comes while either is under way is skipped (an interval still
 * running is counted in hmmvctl status), so a sync round never overlaps the harvest that
 * reads its answers. */
static gboolean
on_interval(gpointer data)
{
  Daemon *d = data;

  if (hmmvd_vms_interval_running(d->vms)) {
    (void)hmmvd_vms_start_interval(d->vms, interval_done, d);   /* counts the skip */
    return G_SOURCE_CONTINUE;
  }
  if (hmmvd_libvirt_sync_pending(d->libvirt))
    return G_SOURCE_CONTINUE;
  if (!hmmvd_libvirt_sync_begin(d->libvirt, run_interval, d))
    run_interval(d);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_signal(gpointer data)
{
  Daemon *d = data;

  g_message("signal received: stopping");
  g_main_loop_quit(d->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
write_pid_file(const char *path, GError **error)
{
  g_autofree char *text = g_strdup_printf("%d\n", (int)getpid());

  return g_file_set_contents(path, text, -1, error);
}

/* Linux's own tiering moves the same pages (host-tiering.h): said once here, and shown by
 * `hmmvctl status` as it is at each request. After hmmvd_reads_new(), which drops the
 * records of kdamonds a killed hmmvd left. */
static void
warn_host_tiering(const HmmvdConfig *config)
{
  g_autoptr(HmmvdHostTiering) tiering = hmmvd_host_tiering_detect("/", config->reads_run_dir);

  if (hmmvd_host_tiering_warn(tiering) > 0)
    g_warning("host tiering: hmmvd keeps running, but pages it places may be moved again "
              "behind its back until the above is turned off (`hmmvctl status` shows it)");
}

static gboolean
start(Daemon *d, GError **error)
{
  HmmvdConfig *config = &d->config;

  if (!setup_mover(d, error))
    return FALSE;
  d->core = hmmv_core_new(d->topo, d->mover, &config->params,
                          config->dram_pool_mib * PAGES_PER_MIB, error);
  if (d->core == NULL || !setup_node_pools(d, error))
    return FALSE;
  d->vms = hmmvd_vms_new(d->core, config);
  d->reads = hmmvd_reads_new(config, NULL);  /* logs which read source, or why none */
  hmmvd_vms_set_reads(d->vms, d->reads);
  hmmvd_vms_set_mover(d->vms, d->mover);  /* quotas checked against its DRAM; sim forgets */
  d->control = hmmvd_control_new(d->vms, d->topo, hmmv_mover_get_name(d->mover),
                                 config->control_socket, error);
  if (d->control == NULL)
    return FALSE;
  warn_host_tiering(config);
  hmmvd_control_set_host_tiering(d->control, "/", config->reads_run_dir);
  if ((config->metrics_listen[0] != '\0' || config->metrics_textfile[0] != '\0') &&
      (d->metrics = hmmvd_metrics_new(d->vms, d->topo, config->metrics_listen,
                                      config->metrics_textfile, error)) == NULL)
    return FALSE;
  if (d->options.pid_file != NULL && !write_pid_file(d->options.pid_file, error))
    return FALSE;
  if (config->libvirt_enabled &&
      (d->libvirt = hmmvd_libvirt_new(d->vms, config, d->topo, error)) == NULL)
    return FALSE;
  d->standalone = hmmvd_standalone_new(d->vms, config);
  for (guint i = 0; d->options.qmp != NULL && d->options.qmp[i] != NULL; i++)
    if (!hmmvd_standalone_add(d->standalone, d->options.qmp[i], error))
      return FALSE;
  return TRUE;
}

/* How long a stopping hmmvd waits for its read trackers to give their kdamonds back (each
 * write waits out DAMON's lock for up to 60 s): under systemd's default 90 s stop timeout.
 * A kdamond not given back by then keeps its record, and the next start turns it off. */
#define HMMVD_DAMON_RELEASE_WAIT_MS 80000u

/* How long, in all, a stopping hmmvd keeps its standalone VMs' QMP connections open for QEMU to
 * answer their hmmv-stop (QEMU drops what it has not run when the connection closes): one
 * standalone exchange deadline, shared by all VMs, not one per VM in turn. */
#define HMMVD_STOP_LINGER_MS 2000

/* Stop tracking every VM (hmmv-stop while libvirt is still connected), then tear down in
 * the reverse order of start. */
static void
stop(Daemon *d)
{
  if (d->vms != NULL)
    hmmvd_vms_wait_idle(d->vms);   /* its remaining moves cancelled */
  hmmv_qmp_set_linger_deadline(g_get_monotonic_time() + HMMVD_STOP_LINGER_MS * 1000);
  if (d->vms != NULL) {
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *list = hmmvd_vms_list(d->vms);

    for (guint i = 0; i < list->len; i++)
      g_ptr_array_add(names, g_strdup(((HmmvdVmInfo *)g_ptr_array_index(list, i))->name));
    for (guint i = 0; i < names->len; i++)
      hmmvd_vms_remove(d->vms, g_ptr_array_index(names, i));
  }
  g_clear_pointer(&d->standalone, hmmvd_standalone_free);
  g_clear_pointer(&d->libvirt, hmmvd_libvirt_free);
  g_clear_pointer(&d->metrics, hmmvd_metrics_free);
  g_clear_pointer(&d->control, hmmvd_control_free);
  g_clear_pointer(&d->vms, hmmvd_vms_free);
  /* Every VM's read tracker is stopped; their threads turn the kdamonds off and give them
   * back (DAMON writes that may wait out its lock, 60 s each). Exiting before they are done
   * would leave kdamonds running; one that cannot be turned off keeps its record for the
   * next start. */
  if (!hmmv_damon_wait_released(HMMVD_DAMON_RELEASE_WAIT_MS))
    g_warning("reads: kdamonds still being given back after %u s; their records stay under "
              "%s, and the next hmmvd turns them off", HMMVD_DAMON_RELEASE_WAIT_MS / 1000,
              d->config.reads_run_dir);
  g_clear_pointer(&d->reads, hmmvd_reads_free);
  g_clear_pointer(&d->core, hmmv_core_free);
  g_clear_pointer(&d->mover, hmmv_mover_free);
  g_clear_pointer(&d->topo, hmmv_topology_free);
  if (d->options.pid_file != NULL)
    unlink(d->options.pid_file);
}

int
main(int argc, char **argv)
{
  Daemon d = { 0 };
  LogSettings log = { .to_stderr = TRUE, .threshold = G_LOG_LEVEL_MESSAGE };
  g_autoptr(GError) error = NULL;
  int status = 0;

  g_log_set_writer_func(log_writer, &log, NULL);
  /* --version answers before the configuration is read: a broken file must not hide it. */
  if (parse_options(&d.options, &argc, &argv, &error) && d.options.version) {
    printf("hmmvd %s\n", PACKAGE_VERSION);
    options_clear(&d.options);
    return 0;
  }
  if (error != NULL || !load_config(&d, &error)) {
    g_printerr("hmmvd: %s\n", error->message);
    options_clear(&d.options);
    hmmvd_config_clear(&d.config);
    return 2;
  }
  log.to_stderr = d.options.foreground;
  log.threshold = log_threshold(d.config.log_level);
  /* A client that hangs up must not kill the daemon; GIO sockets use MSG_NOSIGNAL, the rest
   * (pipes, libvirt) may not. */
  signal(SIGPIPE, SIG_IGN);
  d.loop = g_main_loop_new(NULL, FALSE);
  if (!start(&d, &error)) {
    g_critical("hmmvd: cannot start: %s", error->message);
    status = 1;
  } else {
    guint interval = g_timeout_add(d.config.interval_ms, on_interval, &d);
    guint term = g_unix_signal_add(SIGTERM, on_signal, &d);
    guint intr = g_unix_signal_add(SIGINT, on_signal, &d);

    g_message("hmmvd %s running: interval %u ms, control socket %s", PACKAGE_VERSION,
              d.config.interval_ms, d.config.control_socket);
    g_main_loop_run(d.loop);
    g_source_remove(interval);
    g_source_remove(term);
    g_source_remove(intr);
  }
  stop(&d);
  g_main_loop_unref(d.loop);
  options_clear(&d.options);
  hmmvd_config_clear(&d.config);
  if (status == 0)
    g_message("hmmvd stopped");
  return status;
}
