/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The core's table of VMs: adding, removing and finding them, and the two controls (pause,
 * quota) other threads may set while an interval runs (core-private.h says how they meet it).
 * Split out of loop.c, which keeps the interval itself.
 */
#include "core-private.h"
#include "plan-private.h"
#include "vm-private.h"

#include <hmmv/core.h>
#include <hmmv/error.h>
#include <hmmv/units.h>

/* Calls that change which VMs the core has wait until no interval runs. */
static gboolean
core_check_idle(const HmmvCore *core, const char *what, GError **error)
{
  if (!hmmv_core_is_running(core))
    return TRUE;
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_BUSY, "%s: an interval is running", what);
  return FALSE;
}

static CoreVm *
core_find(HmmvCore *core, const char *name, guint *index)
{
  for (guint i = 0; i < core->vms->len; i++) {
    CoreVm *cvm = g_ptr_array_index(core->vms, i);

    if (g_strcmp0(hmmv_vm_get_name(cvm->vm), name) == 0) {
      if (index != NULL)
        *index = i;
      return cvm;
    }
  }
  return NULL;
}

gboolean
hmmv_core_add_vm(HmmvCore *core, HmmvVm *vm_in, HmmvTracker *tracker_in, GError **error)
{
  g_autoptr(HmmvVm) vm = vm_in;
  g_autoptr(HmmvTracker) tracker = tracker_in;
  g_autoptr(HmmvAccess) acc = NULL;
  CoreVm *cvm;

  if (!core_check_idle(core, "adding a VM", error))
    return FALSE;
  if (core_find(core, hmmv_vm_get_name(vm), NULL) != NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "vm %s is already managed",
                hmmv_vm_get_name(vm));
    return FALSE;
  }
  if (!vm->finalized) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "vm %s: layout is not finalized", hmmv_vm_get_name(vm));
    return FALSE;
  }
  acc = hmmv_access_new(hmmv_vm_get_nr_pages(vm), error);
  if (acc == NULL)
    return FALSE;
  if (!hmmv_tracker_start(tracker, vm, error)) {
    g_prefix_error(error, "vm %s: tracker %s: ", hmmv_vm_get_name(vm),
                   hmmv_tracker_get_name(tracker));
    return FALSE;
  }
  /* Pages the guest touched before hmmv came are already somewhere: the intervals learn
   * where, a slice at a time (hmmv_core_read_placement), not here. */
  cvm = g_new0(CoreVm, 1);
  cvm->vm = g_steal_pointer(&vm);
  cvm->tracker = g_steal_pointer(&tracker);
  cvm->acc = g_steal_pointer(&acc);
  hmmv_plan_init(&cvm->plan);
  hmmv_temperature_histogram(cvm->vm, &cvm->hist);
  hmmv_units_aggregate(cvm->vm, &cvm->hist);
  cvm->first_seen = cvm->vm->first_seen;
  cvm->ctl_quota = *hmmv_vm_get_quota(cvm->vm);
  g_ptr_array_add(core->vms, cvm);
  return TRUE;
}

gboolean
hmmv_core_remove_vm(HmmvCore *core, const char *name, GError **error)
{
  guint index;

  if (!core_check_idle(core, "removing a VM", error))
    return FALSE;
  if (core_find(core, name, &index) == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "vm %s is not managed", name);
    return FALSE;
  }
  hmmv_core_holds_on_remove(core, g_ptr_array_index(core->vms, index));
  g_ptr_array_remove_index(core->vms, index);
  return TRUE;
}

HmmvVm *
hmmv_core_lookup_vm(HmmvCore *core, const char *name)
{
  CoreVm *cvm = core_find(core, name, NULL);

  return cvm != NULL ? cvm->vm : NULL;
}

guint
hmmv_core_get_nr_vms(const HmmvCore *core)
{
  return core->vms->len;
}

HmmvVm *
hmmv_core_get_vm(HmmvCore *core, guint index)
{
  g_return_val_if_fail(index < core->vms->len, NULL);
  return ((CoreVm *)g_ptr_array_index(core->vms, index))->vm;
}

gboolean
hmmv_core_set_paused(HmmvCore *core, const char *name, gboolean paused, GError **error)
{
  CoreVm *cvm = core_find(core, name, NULL);

  if (cvm == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "vm %s is not managed", name);
    return FALSE;
  }
  g_mutex_lock(&core->lock);
  cvm->ctl_paused = paused;
  g_mutex_unlock(&core->lock);
  return TRUE;
}

gboolean
hmmv_core_set_frozen(HmmvCore *core, const char *name, gboolean frozen, GError **error)
{
  CoreVm *cvm = core_find(core, name, NULL);

  if (cvm == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "vm %s is not managed", name);
    return FALSE;
  }
  g_mutex_lock(&core->lock);
  cvm->ctl_frozen = frozen;
  g_mutex_unlock(&core->lock);
  return TRUE;
}

/* A VM thawed: the interval about to run reads its placement again from the first page (as
 * for a VM just added: pages may have moved while its QEMU did not answer), and what the core
 * had decided from its old picture goes: its plan, its lists of pages away from home, its
 * rescan windows, its settled run (its tracker is told FINE again). */
void
hmmv_core_thaw(HmmvCore *core, CoreVm *cvm)
{
  cvm->frozen = FALSE;
  cvm->place_next = 0;
  cvm->place_thp_next = 0;
  cvm->rescan_next = 0;
  cvm->rescan_gap = 0;
  cvm->rescan_due = core->interval_index;
  cvm->thp_next = 0;
  hmmv_plan_clear(&cvm->plan);
  hmmv_plan_init(&cvm->plan);
  cvm->plan_empty = FALSE;
  cvm->settled_run = 0;
  for (guint t = 0; t < G_N_ELEMENTS(cvm->away); t++)
    g_clear_pointer(&cvm->away[t].pages, g_array_unref);
}

gboolean
hmmv_core_set_quota(HmmvCore *core, const char *name, const HmmvQuota *quota, GError **error)
{
  CoreVm *cvm = core_find(core, name, NULL);

  if (cvm == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_FOUND, "vm %s is not managed", name);
    return FALSE;
  }
  g_mutex_lock(&core->lock);
  cvm->ctl_quota = *quota;
  cvm->ctl_quota_set = TRUE;
  g_mutex_unlock(&core->lock);
  return TRUE;
}
