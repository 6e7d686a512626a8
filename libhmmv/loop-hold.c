/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * DRAM the core keeps counted for a VM that left it while its QEMU lives on (core.h,
 * hmmv_core_hold_dram): standalone hmmvd removes a VM whose QMP connection broke and connects
 * it again later, backing off up to 60 s; meanwhile its pages are still on their nodes, so they
 * stay out of the others' pools, as a frozen VM's do (review 17b, finding E).
 *
 * A hold is keyed by the VM's name and its QEMU's pid when it left (hmmv_vm_get_pid): only
 * that QEMU back under that name ends it by reading its placement, or absorbs it (counts its
 * own pages against it), and only its own removal or release drops it. Before, the name alone
 * keyed it, so another VM of that name (a libvirt domain beside a standalone --qmp VM) ended
 * or absorbed a hold whose pages were still on their nodes (review 18b, F5). A pid <= 0 on
 * either side (unknown: no peer credentials; the core tests' VMs) falls back to the name
 * alone, as before.
 *
 * The holds are changed and read under HmmvCore.lock: the daemon releases one from its main
 * thread while an interval may run on a worker.
 */
#include "core-private.h"
#include "vm-private.h"

#include <hmmv/error.h>

#include <string.h>

typedef struct {
  char *name;
  int pid;                                  /* its QEMU when it left the core, <= 0 unknown */
  guint64 node_pages[HMMV_NR_NODE_SLOTS];   /* its pages per node when it left the core */
  guint64 dram_pages;
} CoreHold;

static void
core_hold_free(gpointer data)
{
  CoreHold *hold = data;

  g_free(hold->name);
  g_free(hold);
}

void
hmmv_core_holds_init(HmmvCore *core)
{
  core->holds = g_ptr_array_new_with_free_func(core_hold_free);
}

void
hmmv_core_holds_clear(HmmvCore *core)
{
  g_clear_pointer(&core->holds, g_ptr_array_unref);
}

static CoreVm *
hold_find_vm(HmmvCore *core, const char *name)
{
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (g_strcmp0(hmmv_vm_get_name(cvm->vm), name) == 0)
      return cvm;
  }
  return NULL;
}

/* The same name, and the same QEMU unless a pid is unknown (<= 0) on either side. */
static gboolean
hold_matches(const CoreHold *hold, const char *name, int pid)
{
  return g_strcmp0(hold->name, name) == 0 && (hold->pid <= 0 || pid <= 0 || hold->pid == pid);
}

/* The VM in the core that is the hold's VM back again, or NULL. */
static CoreVm *
hold_find_own_vm(HmmvCore *core, const CoreHold *hold)
{
  CoreVm *cvm = hold_find_vm(core, hold->name);

  return cvm != NULL && hold_matches(hold, hold->name, hmmv_vm_get_pid(cvm->vm)) ? cvm : NULL;
}

/* Under the lock: every hold of name and that QEMU (every hold of the name for pid <= 0). */
static void
hold_drop_locked(HmmvCore *core, const char *name, int pid)
{
  for (guint i = core->holds->len; i-- > 0;) {
    if (hold_matches(g_ptr_array_index(core->holds, i), name, pid))
      g_ptr_array_remove_index(core->holds, i);
  }
}

gboolean
hmmv_core_hold_dram(HmmvCore *core, const char *name, GError **error)
{
  CoreVm *cvm = hold_find_vm(core, name);

  if (cvm == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "vm %s is not managed", name);
    return FALSE;
  }
  g_mutex_lock(&core->lock);
  cvm->ctl_hold = TRUE;
  g_mutex_unlock(&core->lock);
  return TRUE;
}

void
hmmv_core_release_dram(HmmvCore *core, const char *name, int pid)
{
  /* its removal may still be pending (marked while an interval ran): unmark it too, or the
   * deferred removal would leave a hold nothing ever releases (review 18b, F1); but not
   * another QEMU's VM that has the name now */
  CoreVm *cvm = hold_find_vm(core, name);

  g_mutex_lock(&core->lock);
  if (cvm != NULL && (pid <= 0 || hmmv_vm_get_pid(cvm->vm) <= 0 ||
                      hmmv_vm_get_pid(cvm->vm) == pid))
    cvm->ctl_hold = FALSE;
  hold_drop_locked(core, name, pid);
  g_mutex_unlock(&core->lock);
}

/* hmmv_core_remove_vm, no interval running: a VM marked by hmmv_core_hold_dram leaves a hold
 * of what it holds now, keyed by its name and pid (the larger per node, when one is left from
 * an earlier removal of that QEMU and its placement was still being read again); any other
 * removal ends that QEMU's hold, not another's of the same name. */
void
hmmv_core_holds_on_remove(HmmvCore *core, CoreVm *cvm)
{
  const char *name = hmmv_vm_get_name(cvm->vm);
  int pid = hmmv_vm_get_pid(cvm->vm);
  CoreHold *hold = NULL;

  g_mutex_lock(&core->lock);
  if (!cvm->ctl_hold) {
    hold_drop_locked(core, name, pid);
    g_mutex_unlock(&core->lock);
    return;
  }
  for (guint i = 0; i < core->holds->len && hold == NULL; i++) {
    if (hold_matches(g_ptr_array_index(core->holds, i), name, pid))
      hold = g_ptr_array_index(core->holds, i);
  }
  if (hold == NULL) {
    hold = g_new0(CoreHold, 1);
    hold->name = g_strdup(name);
    hold->pid = pid;
    g_ptr_array_add(core->holds, hold);
  }
  for (int node = 0; node < HMMV_NR_NODE_SLOTS; node++)
    hold->node_pages[node] = MAX(hold->node_pages[node], cvm->vm->node_pages[node]);
  hold->dram_pages = MAX(hold->dram_pages, hmmv_vm_get_dram_pages(cvm->vm));
  g_mutex_unlock(&core->lock);
}

/* At the start of an interval (its thread): a hold ends once its VM (that name, that QEMU) is
 * back in the core with its placement read whole; from then on the VM counts its own pages. */
void
hmmv_core_holds_settle(HmmvCore *core)
{
  g_mutex_lock(&core->lock);
  for (guint i = core->holds->len; i-- > 0;) {
    CoreHold *hold = g_ptr_array_index(core->holds, i);
    CoreVm *cvm = hold_find_own_vm(core, hold);

    if (cvm != NULL && cvm->place_next >= hmmv_vm_get_nr_pages(cvm->vm))
      g_ptr_array_remove_index(core->holds, i);
  }
  g_mutex_unlock(&core->lock);
}

/* The interval's thread (or no interval running): per node, what the holds keep counted
 * beyond what their VMs, when back in the core and still reading their placement, already
 * count themselves. Returns the DRAM part (node_pages of the DRAM nodes summed). */
guint64
hmmv_core_holds_count(HmmvCore *core, guint64 *node_pages)
{
  guint64 dram = 0;

  g_mutex_lock(&core->lock);
  for (guint i = 0; i < core->holds->len; i++) {
    CoreHold *hold = g_ptr_array_index(core->holds, i);
    CoreVm *cvm = hold_find_own_vm(core, hold);

    for (int node = 0; node < HMMV_NR_NODE_SLOTS; node++) {
      guint64 own = cvm != NULL ? cvm->vm->node_pages[node] : 0;
      guint64 extra = hold->node_pages[node] > own ? hold->node_pages[node] - own : 0;
      const HmmvNode *n = extra > 0 ? hmmv_topology_lookup(core->topo, node) : NULL;

      node_pages[node] += extra;
      if (n != NULL && n->tier == HMMV_TIER_DRAM)
        dram += extra;
    }
  }
  g_mutex_unlock(&core->lock);
  return dram;
}

/* Under the lock, any thread (hmmv_core_get_pool_usage): the DRAM the holds keep counted,
 * from what the last interval left (a VM back in the core counts its own DRAM as seen). */
guint64
hmmv_core_holds_dram_locked(HmmvCore *core)
{
  guint64 dram = 0;

  for (guint i = 0; i < core->holds->len; i++) {
    CoreHold *hold = g_ptr_array_index(core->holds, i);
    CoreVm *cvm = hold_find_own_vm(core, hold);
    guint64 own = cvm != NULL ? cvm->seen_dram_pages : 0;

    dram += hold->dram_pages > own ? hold->dram_pages - own : 0;
  }
  return dram;
}

guint64
hmmv_core_get_held_dram_pages(HmmvCore *core)
{
  guint64 dram;

  g_mutex_lock(&core->lock);
  dram = hmmv_core_holds_dram_locked(core);
  g_mutex_unlock(&core->lock);
  return dram;
}

static void
held_dram_clear(gpointer data)
{
  g_free(((HmmvHeldDram *)data)->name);
}

/* Any thread (status, metrics): each hold as hmmv_core_holds_dram_locked counts it, so the
 * listing sums to hmmv_core_get_held_dram_pages. A VM of the hold's name and QEMU in the core
 * is one connected again whose placement is still being read (the hold ends once it is read
 * whole). Holds of two QEMUs under one name (a standalone VM's QEMU that left, then another
 * that left too before the first was released, or a libvirt domain's beside it) are two
 * entries: merged, one QEMU back showed the other's pages as being read too (review 19,
 * finding 4). The pool usage comes from the same lock section (review 19, finding 5). */
GArray *
hmmv_core_list_held_dram(HmmvCore *core, HmmvPoolUsage *usage)
{
  GArray *list = g_array_new(FALSE, TRUE, sizeof(HmmvHeldDram));

  g_array_set_clear_func(list, held_dram_clear);
  g_mutex_lock(&core->lock);
  for (guint i = 0; i < core->holds->len; i++) {
    CoreHold *hold = g_ptr_array_index(core->holds, i);
    CoreVm *cvm = hold_find_own_vm(core, hold);
    guint64 own = cvm != NULL ? cvm->seen_dram_pages : 0;
    HmmvHeldDram held = {
      .name = g_strdup(hold->name),
      .pid = hold->pid,
      .dram_pages = hold->dram_pages > own ? hold->dram_pages - own : 0,
      .in_core = cvm != NULL,
    };

    g_array_append_val(list, held);
  }
  if (usage != NULL)
    hmmv_core_pool_usage_locked(core, NULL, NULL, usage);
  g_mutex_unlock(&core->lock);
  return list;
}
