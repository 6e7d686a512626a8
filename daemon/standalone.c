/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's standalone source of VMs (see standalone.h).
 */
#include "standalone.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

/* Every QMP read and write waits at most this long: with the tracker's interval_ms > 0 the
 * harvest reads shared memory only, so QMP is used when a VM is added or removed. */
#define STANDALONE_QMP_TIMEOUT_MS 2000

typedef struct {
  char *name;
  char *path;
  int pid;                      /* QEMU last connected to; -1 before */
  char *last_failure;           /* logged once, not at every retry */
} StandaloneVm;

struct _HmmvdStandalone {
  HmmvdVms *vms;
  const HmmvdConfig *config;
  GPtrArray *entries;           /* StandaloneVm */
  guint check_source;
};

static void
standalone_vm_free(gpointer data)
{
  StandaloneVm *entry = data;

  g_free(entry->name);
  g_free(entry->path);
  g_free(entry->last_failure);
  g_free(entry);
}

static gboolean
pid_alive(int pid)
{
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

gboolean
hmmvd_standalone_parse_spec(const char *spec, char **name, char **path, GError **error)
{
  const char *equals = strchr(spec, '=');

  if (equals == NULL || equals == spec || equals[1] == '\0') {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--qmp %s: expected NAME=SOCKET", spec);
    return FALSE;
  }
  if (strcspn(spec, "/ \t\n") < (gsize)(equals - spec)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "--qmp %s: a VM name cannot hold '/' or spaces", spec);
    return FALSE;
  }
  *name = g_strndup(spec, (gsize)(equals - spec));
  *path = g_strdup(equals + 1);
  return TRUE;
}

/* Listed as unmanaged with the reason; vms logs it. A retry that fails the same way says
 * nothing new. */
static void
note_failure(HmmvdStandalone *sa, StandaloneVm *entry, const char *message)
{
  g_autofree char *reason = NULL;

  if (g_strcmp0(entry->last_failure, message) == 0 &&
      hmmvd_vms_lookup(sa->vms, entry->name) != NULL)
    return;
  g_free(entry->last_failure);
  entry->last_failure = g_strdup(message);
  reason = g_strdup_printf("%s (retrying every %u ms)", message, sa->config->reconnect_ms);
  hmmvd_vms_add_unmanaged(sa->vms, entry->name, HMMVD_SOURCE_STANDALONE, reason);
}

static void
try_connect(HmmvdStandalone *sa, StandaloneVm *entry)
{
  g_autoptr(GError) local_error = NULL;
  HmmvQmp *qmp = hmmv_qmp_connect_unix(entry->path, STANDALONE_QMP_TIMEOUT_MS, &local_error);
  int pid;

  if (qmp == NULL) {
    note_failure(sa, entry, local_error->message);
    return;
  }
  pid = hmmv_qmp_get_peer_pid(qmp);
  if (pid <= 0)
    g_warning("vm %s: QEMU's pid is unknown (no peer credentials on %s): pages cannot move",
              entry->name, entry->path);
  entry->pid = pid;
  hmmvd_vms_remove(sa->vms, entry->name);   /* the "not reachable" entry, if any */
  /* On failure vms lists the VM with the reason and logs it. */
  if (!hmmvd_vms_add(sa->vms, entry->name, HMMVD_SOURCE_STANDALONE, pid, NULL, qmp, 0, NULL))
    return;
  g_clear_pointer(&entry->last_failure, g_free);
}

/* A VM whose QEMU we connected to and which is still alive is left alone (managed or not:
 * an unpatched QEMU is not asked again). Anything else is tried again. */
static void
check_entry(HmmvdStandalone *sa, StandaloneVm *entry)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(sa->vms, entry->name);

  if (info != NULL && entry->pid > 0 && pid_alive(entry->pid))
    return;
  if (info != NULL && entry->pid > 0) {
    g_message("vm %s: QEMU pid %d is gone; waiting for it on %s", entry->name, entry->pid,
              entry->path);
    hmmvd_vms_remove(sa->vms, entry->name);
  }
  entry->pid = -1;
  try_connect(sa, entry);
}

static gboolean
check_all(gpointer data)
{
  HmmvdStandalone *sa = data;

  for (guint i = 0; i < sa->entries->len; i++)
    check_entry(sa, g_ptr_array_index(sa->entries, i));
  return G_SOURCE_CONTINUE;
}

HmmvdStandalone *
hmmvd_standalone_new(HmmvdVms *vms, const HmmvdConfig *config)
{
  HmmvdStandalone *sa = g_new0(HmmvdStandalone, 1);

  sa->vms = vms;
  sa->config = config;
  sa->entries = g_ptr_array_new_with_free_func(standalone_vm_free);
  return sa;
}

gboolean
hmmvd_standalone_add(HmmvdStandalone *sa, const char *spec, GError **error)
{
  StandaloneVm *entry;
  char *name, *path;

  if (!hmmvd_standalone_parse_spec(spec, &name, &path, error))
    return FALSE;
  for (guint i = 0; i < sa->entries->len; i++) {
    StandaloneVm *other = g_ptr_array_index(sa->entries, i);

    if (strcmp(other->name, name) == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "--qmp %s: the name %s is given twice", spec, name);
      g_free(name);
      g_free(path);
      return FALSE;
    }
  }
  entry = g_new0(StandaloneVm, 1);
  entry->name = name;
  entry->path = path;
  entry->pid = -1;
  g_ptr_array_add(sa->entries, entry);
  try_connect(sa, entry);
  if (sa->check_source == 0)
    sa->check_source = g_timeout_add(MAX(sa->config->reconnect_ms, 100), check_all, sa);
  return TRUE;
}

void
hmmvd_standalone_free(HmmvdStandalone *sa)
{
  if (sa == NULL)
    return;
  if (sa->check_source != 0)
    g_source_remove(sa->check_source);
  g_ptr_array_unref(sa->entries);
  g_free(sa);
}
