/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv-corun: the co-run benchmark harness (issue 12).
 *
 *   hmmv-corun replay (--setup hmmv4|demeter9 | --traces DIR) --profile optane|cxl|FILE
 *              --dram FRACTION [--dram-of ram|touched] [--csv FILE] [--intervals-csv FILE]
 *              [--plots DIR] [--hmmv-interval-ms MS] [--hmmv-gate measured|hmmvd]
 *              [--hmmv-weights quota|misses] [--policies a,b]
 *   hmmv-corun live --setup NAME [ARGS...]      (corun-guest's recorder: tests/corun/corun-live)
 *   hmmv-corun gen --out DIR [--vms N] [--pages N] [--intervals N] [--seed N]
 *
 * replay runs the recorded traces of a setup through every policy side by side (see run.h)
 * on the tier model (model.h), prints progress on stderr and ends with a Markdown table.
 * A setup's traces live in ${HMMV_CORUN_CACHE:-/var/cache/hmmv/corun}/SETUP-HASH/, HASH from
 * `corun-live --hash SETUP`; when setup.json is missing there, replay records first.
 * hmmv's payback gate runs with the figures measured on the setup's traces at hmmv's core
 * interval (gate.h), or with --hmmv-gate hmmvd at hmmvd's defaults (set for 1 s intervals).
 * gen writes a SYNTHETIC setup for tests: never a BENCHMARKS figure.
 */
#include "gate.h"
#include "output.h"
#include "setup.h"

#include <errno.h>
#include <hmmv/error.h>
#include <hmmv/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_SKIP 77
#define CORUN_PLOTS_SCRIPT HMMV_SOURCE_ROOT "/tests/bench/corun/corun-plots.py"

static const char *
live_program(void)
{
  const char *env = g_getenv("HMMV_CORUN_LIVE");

  return env != NULL && *env ? env : HMMV_SOURCE_ROOT "/tests/corun/corun-live";
}

/* Runs argv; its stdout into *out when out is not NULL. Returns its exit status, -1 on spawn
 * failure (error set). */
static int
run_program(char **argv, char **out, GError **error)
{
  int status = 0;

  if (!g_spawn_sync(NULL, argv, NULL,
                    G_SPAWN_SEARCH_PATH | (out ? G_SPAWN_DEFAULT : G_SPAWN_CHILD_INHERITS_STDIN),
                    NULL, NULL, out, NULL, &status, error))
    return -1;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "%s died", argv[0]);
  return -1;
}

/* The cache dir of a recorded setup; NULL with error when the recorder cannot say. */
static char *
setup_dir(const char *setup, int *exit_code, GError **error)
{
  const char *cache = g_getenv("HMMV_CORUN_CACHE");
  char *argv[] = { (char *)live_program(), (char *)"--hash", (char *)setup, NULL };
  g_autofree char *hash = NULL;
  int rc;

  if (!g_file_test(argv[0], G_FILE_TEST_IS_EXECUTABLE)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "the live recorder %s is not there yet (issue 12, branch corun-guest): no "
                "recorded traces for setup %s; use --traces DIR", argv[0], setup);
    *exit_code = EXIT_SKIP;
    return NULL;
  }
  rc = run_program(argv, &hash, error);
  if (rc != 0) {
    if (rc > 0)
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED, "%s --hash %s exited %d", argv[0],
                  setup, rc);
    *exit_code = rc == EXIT_SKIP ? EXIT_SKIP : EXIT_FAILURE;
    return NULL;
  }
  g_strstrip(hash);
  if (*hash == '\0' || strchr(hash, '/') != NULL || strlen(hash) > 128) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL, "%s --hash %s printed '%s'", argv[0],
                setup, hash);
    *exit_code = EXIT_FAILURE;
    return NULL;
  }
  return g_strdup_printf("%s/%s-%s", cache && *cache ? cache : "/var/cache/hmmv/corun", setup,
                         hash);
}

static int
cmd_live(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new();
  int exit_code = EXIT_FAILURE;

  if (argc < 3 || g_strcmp0(argv[1], "--setup") != 0) {
    fprintf(stderr, "usage: hmmv-corun live --setup NAME [ARGS...]\n");
    return EXIT_FAILURE;
  }
  dir = setup_dir(argv[2], &exit_code, &error);
  if (dir == NULL) {
    fprintf(stderr, "hmmv-corun live: %s\n", error->message);
    return exit_code;
  }
  g_ptr_array_add(args, (char *)live_program());
  g_ptr_array_add(args, argv[2]);
  g_ptr_array_add(args, dir);
  for (int i = 3; i < argc; i++)
    g_ptr_array_add(args, argv[i]);
  g_ptr_array_add(args, NULL);
  fflush(NULL);
  execv(live_program(), (char **)args->pdata);
  fprintf(stderr, "hmmv-corun live: %s: %s\n", live_program(), g_strerror(errno));
  return EXIT_FAILURE;
}

static void
progress(guint64 interval, guint64 total, gpointer data)
{
  guint64 step = MAX(total / 20, 1);

  if (interval % step == 0 || interval == total)
    fprintf(stderr, "hmmv-corun: interval %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " (%3.0f%%)\n",
            interval, total, 100.0 * (double)interval / (double)total);
}

/* hmmv's payback gate for the replay: measured on the setup's traces at the core's interval
 * (gate.h), or hmmvd's defaults when gate_name is "hmmvd". Returns what to print, NULL with
 * error. */
static char *
hmmv_gate(CorunSetup *setup, const char *gate_name, guint64 max_intervals, GError **error)
{
  HmmvParams defaults;
  guint per_core = corun_gate_per_core(setup);
  CorunGate gate;

  if (g_strcmp0(gate_name, "hmmvd") == 0) {
    hmmv_params_init(&defaults);
    return g_strdup_printf("hmmv's payback gate: hmmvd's defaults (touch-saving-ns %u, "
                           "move-cost-ns %u)", defaults.touch_saving_ns, defaults.move_cost_ns);
  }
  if (!corun_gate_calibrate(setup, per_core, max_intervals, &gate, error))
    return NULL;
  setup->hmmv_touch_saving_ns = gate.touch_saving_ns;
  setup->hmmv_move_cost_ns = gate.move_cost_ns;
  return g_strdup_printf("hmmv's payback gate at its %u ms interval: touch-saving-ns %u (%.1f "
                         "misses a touched page and interval, measured), move-cost-ns %u",
                         setup->interval_ms * per_core, gate.touch_saving_ns,
                         gate.misses_per_touched, gate.move_cost_ns);
}

static int
cmd_replay(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *setup_name = NULL, *traces = NULL, *profile_name = NULL, *csv = NULL;
  g_autofree char *intervals_csv = NULL, *policies = NULL, *plots = NULL;
  g_autofree char *dir = NULL, *dram_of = NULL, *gate_name = NULL, *weights = NULL;
  g_autofree char *gate_text = NULL;
  double dram = 0;
  guint64 base_pages;
  gint64 max_intervals = 0;
  gint hmmv_interval_ms = 0;
  gboolean quiet = FALSE;
  GOptionEntry entries[] = {
    { "setup", 0, 0, G_OPTION_ARG_STRING, &setup_name, "Recorded setup (hmmv4, demeter9)", "NAME" },
    { "traces", 0, 0, G_OPTION_ARG_FILENAME, &traces, "A directory with setup.json", "DIR" },
    { "profile", 0, 0, G_OPTION_ARG_STRING, &profile_name, "Tier profile: optane, cxl or a file",
      "NAME" },
    { "dram", 0, 0, G_OPTION_ARG_DOUBLE, &dram, "DRAM as a fraction of the VMs' footprint",
      "FRACTION" },
    { "dram-of", 0, 0, G_OPTION_ARG_STRING, &dram_of,
      "The footprint --dram is a share of: ram (the VMs' RAM, the default) or touched (the "
      "pages the traces touch)", "ram|touched" },
    { "csv", 0, 0, G_OPTION_ARG_FILENAME, &csv, "Per policy and VM results", "FILE" },
    { "intervals-csv", 0, 0, G_OPTION_ARG_FILENAME, &intervals_csv,
      "Per interval, policy and VM (the plots' input)", "FILE" },
    { "policies", 0, 0, G_OPTION_ARG_STRING, &policies, "Comma-separated (default: all)", "LIST" },
    { "plots", 0, 0, G_OPTION_ARG_FILENAME, &plots,
      "PNG plots (gnuplot) and both CSVs into DIR", "DIR" },
    { "intervals", 0, 0, G_OPTION_ARG_INT64, &max_intervals, "At most N intervals", "N" },
    { "hmmv-interval-ms", 0, 0, G_OPTION_ARG_INT, &hmmv_interval_ms,
      "hmmv's core interval, a multiple of the trace's (default: the trace's; hmmvd's own "
      "default is 1000)", "MS" },
    { "hmmv-gate", 0, 0, G_OPTION_ARG_STRING, &gate_name,
      "hmmv's payback gate: measured (on the traces at hmmv's core interval, the default) or "
      "hmmvd (hmmvd's defaults, set for 1 s intervals)", "measured|hmmvd" },
    { "hmmv-weights", 0, 0, G_OPTION_ARG_STRING, &weights,
      "hmmv's balance weights: quota (setup.json's, the default) or misses (each VM's LLC "
      "misses per page its tracker saw, relative to the others', times its quota weight: a "
      "per-VM miss counter hmmvd does not have)", "quota|misses" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress", NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- replay a co-run through every policy");
  g_autoptr(CorunProfile) profile = NULL;
  g_autoptr(CorunSetupFile) sf = NULL;
  g_autoptr(CorunRun) run = NULL;
  g_auto(GStrv) names = NULL;
  int exit_code = EXIT_FAILURE;

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error))
    goto fail;
  if ((setup_name == NULL) == (traces == NULL) || profile_name == NULL || !(dram > 0 && dram <= 1) ||
      max_intervals < 0) {
    g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "needs --setup or --traces, --profile, and --dram in (0, 1]");
    goto fail;
  }
  if (gate_name != NULL && g_strcmp0(gate_name, "measured") != 0 &&
      g_strcmp0(gate_name, "hmmvd") != 0) {
    g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--hmmv-gate is measured or hmmvd, not '%s'", gate_name);
    goto fail;
  }
  if (weights != NULL && g_strcmp0(weights, "quota") != 0 && g_strcmp0(weights, "misses") != 0) {
    g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--hmmv-weights is quota or misses, not '%s'", weights);
    goto fail;
  }
  if (dram_of != NULL && g_strcmp0(dram_of, "ram") != 0 && g_strcmp0(dram_of, "touched") != 0) {
    g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--dram-of is ram or touched, not '%s'", dram_of);
    goto fail;
  }
  profile = corun_profile_load_named(HMMV_TIER_PROFILE_DIR, profile_name, &error);
  if (profile == NULL)
    goto fail;
  if (traces != NULL) {
    dir = g_strdup(traces);
  } else {
    g_autofree char *manifest = NULL;

    dir = setup_dir(setup_name, &exit_code, &error);
    if (dir == NULL)
      goto fail;
    manifest = g_build_filename(dir, "setup.json", NULL);
    if (!g_file_test(manifest, G_FILE_TEST_EXISTS)) {
      char *rec[] = { (char *)live_program(), setup_name, dir, NULL };
      int rc;

      fprintf(stderr, "hmmv-corun: no traces of %s in %s yet: recording them first (%s)\n",
              setup_name, dir, rec[0]);
      rc = run_program(rec, NULL, &error);
      if (rc != 0) {
        if (rc > 0)
          g_set_error(&error, HMMV_ERROR, HMMV_ERROR_FAILED, "recording %s: %s exited %d",
                      setup_name, rec[0], rc);
        exit_code = rc == EXIT_SKIP ? EXIT_SKIP : EXIT_FAILURE;
        goto fail;
      }
    }
  }
  sf = corun_setup_load(dir, &error);
  if (sf == NULL)
    goto fail;
  sf->setup.profile = profile;
  if (hmmv_interval_ms != 0 &&
      (hmmv_interval_ms < 0 || hmmv_interval_ms % (gint)sf->setup.interval_ms != 0)) {
    g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--hmmv-interval-ms %d is not a positive multiple of the trace's interval (%u "
                "ms)", hmmv_interval_ms, sf->setup.interval_ms);
    goto fail;
  }
  sf->setup.hmmv_interval_ms = (guint)hmmv_interval_ms;
  sf->setup.hmmv_miss_weights = g_strcmp0(weights, "misses") == 0;
  base_pages = sf->total_pages;
  if (g_strcmp0(dram_of, "touched") == 0 &&
      !corun_setup_touched_pages(&sf->setup, (guint64)max_intervals, &base_pages, &error))
    goto fail;
  sf->setup.dram_pages = MAX((guint64)(dram * (double)base_pages + 0.5), 1);
  if (policies != NULL) {
    names = g_strsplit(policies, ",", -1);
  } else {
    names = g_new0(char *, 32);
    for (guint i = 0; corun_policies[i] != NULL && i < 31; i++)
      names[i] = g_strdup(corun_policies[i]->name);
  }
  gate_text = hmmv_gate(&sf->setup, gate_name, (guint64)max_intervals, &error);
  if (gate_text == NULL)
    goto fail;
  if (!quiet)
    fprintf(stderr, "hmmv-corun: setup %s (%s), %u VMs, %" G_GUINT64_FORMAT " pages, DRAM %.0f%% "
            "of %" G_GUINT64_FORMAT " %s pages = %" G_GUINT64_FORMAT " pages, profile %s, %u "
            "policies\n", sf->name, dir, sf->setup.nr_vms, sf->total_pages, dram * 100,
            base_pages, g_strcmp0(dram_of, "touched") == 0 ? "touched" : "RAM",
            sf->setup.dram_pages, profile->name, g_strv_length(names));
  if (!quiet)
    fprintf(stderr, "hmmv-corun: %s\n", gate_text);
  run = corun_run(&sf->setup, (const char *const *)names, (guint64)max_intervals,
                  quiet ? NULL : progress, NULL, &error);
  if (run == NULL)
    goto fail;
  if (plots != NULL) {
    if (g_mkdir_with_parents(plots, 0755) != 0) {
      g_set_error(&error, HMMV_ERROR, HMMV_ERROR_IO, "%s: %s", plots, g_strerror(errno));
      goto fail;
    }
    if (csv == NULL)
      csv = g_build_filename(plots, "results.csv", NULL);
    if (intervals_csv == NULL)
      intervals_csv = g_build_filename(plots, "intervals.csv", NULL);
  }
  if (csv != NULL && !corun_write_csv(csv, run, &sf->setup, setup_name ? setup_name : sf->name,
                                      profile->name, dram, &error))
    goto fail;
  if (intervals_csv != NULL && !corun_write_intervals_csv(intervals_csv, run, &sf->setup, &error))
    goto fail;
  printf("\nhmmv-corun replay: setup %s, profile %s, DRAM %.0f%% of %" G_GUINT64_FORMAT
         " %s pages (%" G_GUINT64_FORMAT "), %" G_GUINT64_FORMAT " intervals; runtime / all-DRAM "
         "per VM (lower is better)\n\n", sf->name, profile->name, dram * 100, base_pages,
         g_strcmp0(dram_of, "touched") == 0 ? "touched" : "RAM", sf->setup.dram_pages,
         run->intervals);
  printf("%s\n\n", gate_text);
  if (sf->setup.hmmv_miss_weights)
    printf("hmmv's balance weights: each VM's LLC misses per page its tracker saw, relative to "
           "the others' (--hmmv-weights misses: a per-VM miss counter hmmvd does not have)\n\n");
  corun_print_table(stdout, run, &sf->setup);
  if (plots != NULL) {
    char *argv_plot[] = { (char *)"python3", (char *)CORUN_PLOTS_SCRIPT, csv, intervals_csv,
                          plots, NULL };
    int rc;

    printf("\nplots:\n");
    fflush(stdout);
    rc = run_program(argv_plot, NULL, &error);
    if (rc != 0) {
      if (rc > 0)
        g_set_error(&error, HMMV_ERROR, HMMV_ERROR_FAILED, "the plots failed (%s exited %d)",
                    CORUN_PLOTS_SCRIPT, rc);
      goto fail;
    }
  }
  return EXIT_SUCCESS;

fail:
  fprintf(stderr, "hmmv-corun replay: %s\n", error ? error->message : "failed");
  return exit_code;
}

static int
cmd_gen(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  gint vms = 4, intervals = 50;
  gint64 pages = 4096, seed = 1;
  GOptionEntry entries[] = {
    { "out", 0, 0, G_OPTION_ARG_FILENAME, &out, "Directory to write", "DIR" },
    { "vms", 0, 0, G_OPTION_ARG_INT, &vms, "VMs (4)", "N" },
    { "pages", 0, 0, G_OPTION_ARG_INT64, &pages, "Pages per VM (4096)", "N" },
    { "intervals", 0, 0, G_OPTION_ARG_INT, &intervals, "Intervals (50)", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Seed (1)", "N" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- a SYNTHETIC setup for tests");

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) ||
      (out == NULL && (g_set_error(&error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                                   "--out is required"), TRUE)) ||
      vms <= 0 || pages <= 0 || intervals <= 0 || pages > (1 << 24) ||
      !corun_setup_generate(out, (guint)vms, (guint64)pages, (guint)intervals, (guint64)seed,
                            &error)) {
    fprintf(stderr, "hmmv-corun gen: %s\n",
            error ? error->message : "--vms, --pages (up to 2^24), --intervals must be positive");
    return EXIT_FAILURE;
  }
  printf("hmmv-corun gen: SYNTHETIC setup in %s (for tests, never for BENCHMARKS.md)\n", out);
  return EXIT_SUCCESS;
}

int
main(int argc, char **argv)
{
  /* corun-live runs what this build built (hmmvd, the guest, the recorder plugin) */
  g_setenv("HMMV_BUILD_DIR", HMMV_BUILD_ROOT, FALSE);
  if (argc >= 2 && strcmp(argv[1], "replay") == 0)
    return cmd_replay(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "live") == 0)
    return cmd_live(argc - 1, argv + 1);
  if (argc >= 2 && strcmp(argv[1], "gen") == 0)
    return cmd_gen(argc - 1, argv + 1);
  fprintf(stderr, "usage: hmmv-corun replay|live|gen ... (hmmv-corun CMD --help)\n");
  return EXIT_FAILURE;
}
