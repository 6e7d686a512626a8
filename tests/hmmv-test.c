/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "hmmv-test.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>

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
