/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmv-test.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
hmmv_test_run(Suite *suite)
{
  SRunner *runner = srunner_create(suite);
  int failed;

  srunner_run_all(runner, CK_SILENT);
  failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int
hmmv_test_skip_all(const char *reason)
{
  printf("1..0 # SKIP %s\n", reason);
  fprintf(stderr, "skipped: %s\n", reason);
  return EXIT_SUCCESS;
}

HmmvVm *
hmmv_test_vm_new(const char *name, guint64 nr_pages)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvVm) vm = hmmv_vm_new(name);

  if (!hmmv_vm_add_region(vm, "ram", 0, 0, nr_pages * HMMV_PAGE_SIZE, HMMV_PAGE_SIZE, &error) ||
      !hmmv_vm_finalize_layout(vm, &error))
    g_error("test vm: %s", error->message);
  return g_steal_pointer(&vm);
}

HmmvTopology *
hmmv_test_topology_two_tier(guint64 dram_bytes, guint64 slow_bytes)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();

  if (!hmmv_topology_add_node(topo, 0, dram_bytes, 2, HMMV_TIER_DRAM, &error) ||
      !hmmv_topology_add_node(topo, 1, slow_bytes, 0, HMMV_TIER_SLOW, &error))
    g_error("test topology: %s", error->message);
  return g_steal_pointer(&topo);
}

HmmvTopology *
hmmv_test_topology_two_socket(guint64 dram_node_bytes, guint64 slow_node_bytes)
{
  static const guint dist[4][4] = {
    { 10, 21, 17, 28 }, { 21, 10, 28, 17 }, { 17, 28, 10, 28 }, { 28, 17, 28, 10 },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvTopology) topo = hmmv_topology_new();

  for (int id = 0; id < 4; id++) {
    gboolean dram = id < 2;

    if (!hmmv_topology_add_node(topo, id, dram ? dram_node_bytes : slow_node_bytes,
                                dram ? 4 : 0, dram ? HMMV_TIER_DRAM : HMMV_TIER_SLOW, &error))
      g_error("test topology: %s", error->message);
  }
  if (!hmmv_topology_set_cpus(topo, 0, "0-3", &error) ||
      !hmmv_topology_set_cpus(topo, 1, "4-7", &error))
    g_error("test topology: %s", error->message);
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++)
      if (!hmmv_topology_set_distance(topo, a, b, dist[a][b], &error))
        g_error("test topology: %s", error->message);
  return g_steal_pointer(&topo);
}

void
hmmv_test_core_init(HmmvTestCore *bed, HmmvTopology *topo, const HmmvParams *params,
                    guint64 pool_pages)
{
  g_autoptr(GError) error = NULL;
  HmmvParams defaults;

  memset(bed, 0, sizeof(*bed));
  bed->topo = topo;
  bed->mover = hmmv_sim_mover_new(bed->topo, &error);
  ck_assert_msg(bed->mover != NULL, "%s", error ? error->message : "");
  if (params == NULL) {
    hmmv_params_init(&defaults);
    defaults.migrate_mbps = 0;
    params = &defaults;
  }
  bed->core = hmmv_core_new(bed->topo, bed->mover, params, pool_pages, &error);
  ck_assert_msg(bed->core != NULL, "%s", error ? error->message : "");
}

void
hmmv_test_core_add(HmmvTestCore *bed, HmmvVm *vm)
{
  g_autoptr(GError) error = NULL;

  ck_assert_uint_lt(bed->nr_vms, HMMV_TEST_MAX_VMS);
  bed->trackers[bed->nr_vms] = hmmv_fake_tracker_new();
  ck_assert_msg(hmmv_core_add_vm(bed->core, vm, bed->trackers[bed->nr_vms], &error), "%s",
                error ? error->message : "");
  bed->nr_vms++;
}

HmmvVm *
hmmv_test_core_add_vm(HmmvTestCore *bed, guint64 nr_pages, int cpu_node)
{
  g_autofree char *name = g_strdup_printf("vm%u", bed->nr_vms);
  HmmvVm *vm = hmmv_test_vm_new(name, nr_pages);

  hmmv_vm_set_cpu_node(vm, cpu_node);
  hmmv_test_core_add(bed, vm);
  return vm;
}

void
hmmv_test_core_clear(HmmvTestCore *bed)
{
  hmmv_core_free(bed->core);
  hmmv_mover_free(bed->mover);
  hmmv_topology_free(bed->topo);
  memset(bed, 0, sizeof(*bed));
}

void
hmmv_test_core_write(HmmvTestCore *bed, guint vm, guint64 first, guint64 nr)
{
  for (guint64 p = first; p < first + nr; p++)
    hmmv_fake_tracker_queue_write(bed->trackers[vm], p);
}

void
hmmv_test_core_write_pages(HmmvTestCore *bed, guint vm, const GArray *pages)
{
  for (guint i = 0; i < pages->len; i++)
    hmmv_fake_tracker_queue_write(bed->trackers[vm], g_array_index(pages, guint64, i));
}

void
hmmv_test_core_run(HmmvTestCore *bed, HmmvIntervalReport *report)
{
  g_autoptr(GError) error = NULL;

  ck_assert_msg(hmmv_core_run_interval(bed->core, report, &error), "%s",
                error ? error->message : "");
  for (guint i = 0; i < report->vms->len; i++) {
    const HmmvVmReport *rep = hmmv_test_vm_report(report, i);

    ck_assert_msg(rep->error == NULL, "%s", rep->error ? rep->error->message : "");
  }
}

const HmmvVmReport *
hmmv_test_vm_report(const HmmvIntervalReport *report, guint vm)
{
  return &g_array_index(report->vms, HmmvVmReport, vm);
}

/* Remove a test's scratch tree (files and directories below path, then path). */
void
hmmv_test_remove_tree(const char *path)
{
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    g_autofree char *child = g_build_filename(path, name, NULL);

    if (g_file_test(child, G_FILE_TEST_IS_DIR))
      hmmv_test_remove_tree(child);
    else
      g_unlink(child);
  }
  g_rmdir(path);
}

JsonNode *
hmmv_test_qmp_ok(HmmvQmp *qmp, const char *command, JsonObject *args)
{
  g_autoptr(GError) error = NULL;
  JsonNode *ret = hmmv_qmp_execute(qmp, command, args, &error);

  ck_assert_msg(ret != NULL, "%s: %s", command, error ? error->message : "");
  return ret;
}
