/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A TCG plugin for the qemu-plugin suite (test-qemu-plugin.sh): records the guest-physical
 * pages stored to inside a window (default: the test guest's, 16 MiB + 4 MiB) and prints, at
 * exit, how many distinct pages and the first and last pfn. It proves the patched QEMU loads
 * plugins built against the header build.sh copies beside it, and that a plugin sees guest
 * stores with physical addresses, which a write-trace recorder (issue 12) depends on.
 *
 *   -plugin PATH,base=0x1000000,pages=1024 -d plugin -D LOG
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t window_base = 0x1000000;
static uint64_t window_pages = 1024;
static uint8_t *seen;                 /* one byte per page of the window */
static GMutex lock;                   /* vCPU threads under MTTCG */

static void
on_store(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
  struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
  uint64_t pa;

  if (hw == NULL || qemu_plugin_hwaddr_is_io(hw))
    return;
  pa = qemu_plugin_hwaddr_phys_addr(hw);
  if (pa >= window_base && pa - window_base < window_pages * 4096) {
    g_mutex_lock(&lock);
    seen[(pa - window_base) / 4096] = 1;
    g_mutex_unlock(&lock);
  }
}

static void
on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
  size_t n = qemu_plugin_tb_n_insns(tb);

  for (size_t i = 0; i < n; i++)
    qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), on_store,
                                     QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_W, NULL);
}

static void
report(qemu_plugin_id_t id, void *udata)
{
  uint64_t count = 0, first = 0, last = 0;
  g_autofree char *line = NULL;

  for (uint64_t i = 0; i < window_pages; i++) {
    if (!seen[i])
      continue;
    if (count++ == 0)
      first = i;
    last = i;
  }
  line = g_strdup_printf("plugin-writes: pages=%" PRIu64 " first_pfn=0x%" PRIx64
                         " last_pfn=0x%" PRIx64 "\n", count,
                         window_base / 4096 + first, window_base / 4096 + last);
  qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int
qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "base=", 5) == 0)
      window_base = strtoull(argv[i] + 5, NULL, 0);
    else if (strncmp(argv[i], "pages=", 6) == 0)
      window_pages = strtoull(argv[i] + 6, NULL, 0);
    else
      return -1;
  }
  if (window_pages == 0 || window_pages > (1u << 20) || window_base % 4096 != 0)
    return -1;
  seen = g_malloc0(window_pages);
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_atexit_cb(id, report, NULL);
  return 0;
}
