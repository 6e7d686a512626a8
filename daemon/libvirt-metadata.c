/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv's element in libvirt domain metadata (see libvirt-metadata.h).
 */
#include "libvirt-metadata.h"
#include "libvirt-qmp.h"
#include "vms.h"

#include <libvirt/virterror.h>
#include <stdlib.h>

gboolean
hmmvd_libvirt_read_metadata_text(virDomainPtr dom, char **xml, GError **error)
{
  char *text = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                                    VIR_DOMAIN_AFFECT_LIVE);

  if (text == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN_METADATA) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "cannot read the hmmv metadata: %s",
                hmmvd_libvirt_last_error_message());
    return FALSE;
  }
  *xml = g_strdup(text);   /* libvirt's string goes with free() */
  free(text);
  return TRUE;
}

/* The element's text (NULL: none) parsed over config's default quota. */
static gboolean
parse_metadata(const char *xml, const HmmvdConfig *config, HmmvQuota *quota, char ***exclude,
               GError **error)
{
  *quota = config->default_quota;
  if (xml == NULL) {
    *exclude = g_new0(char *, 1);
    return TRUE;
  }
  return hmmvd_metadata_parse(xml, &config->default_quota, quota, exclude, error);
}

/* Rejected at runtime: the last good quota stays (recalled into an entry that is new since it
 * was accepted) and so does the exclusion; the error is the VM's quota-error. */
static void
keep_last_good(HmmvdVms *vms, const HmmvdMetadataMemory *mem, const char *uuid,
               const char *name, const char *message)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, name);
  g_autofree char *said = NULL;     /* the error already recorded (and logged) */
  gboolean known;
  HmmvQuota quota;

  if (info == NULL)
    return;
  said = g_strdup(info->quota_error);
  known = hmmvd_metadata_memory_recall(mem, uuid, &quota, NULL);
  if (known && !hmmvd_vms_set_quota(vms, name, &quota, NULL))
    g_warning("vm %s: its last good quota is refused now too", name);   /* pool changed */
  if (g_strcmp0(said, message) != 0)
    g_warning("vm %s: hmmv metadata rejected, %s: %s", name,
              known ? "the last good quota and exclusion stay"
                    : "none accepted before: the default quota stays", message);
  g_free(info->quota_error);
  info->quota_error = g_strdup(message);
}

void
hmmvd_libvirt_apply_metadata(HmmvdVms *vms, HmmvdMetadataMemory *mem,
                             const HmmvdConfig *config, const char *name, const char *uuid,
                             const char *xml, const char *read_error)
{
  g_autoptr(GError) local_error = NULL;
  g_auto(GStrv) exclude = NULL;
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, name);
  HmmvQuota quota;

  if (info == NULL)
    return;
  if (read_error != NULL) {
    g_warning("vm %s: %s", name, read_error);
    return;
  }
  if (!parse_metadata(xml, config, &quota, &exclude, &local_error)) {
    keep_last_good(vms, mem, uuid, name, local_error->message);
    return;
  }
  if (!hmmvd_vms_set_quota(vms, name, &quota, NULL)) {
    /* vms logged it, recorded it and kept the entry's quota: the last good one, recalled if
     * the entry is new since */
    g_autofree char *message = g_strdup(info->quota_error);

    keep_last_good(vms, mem, uuid, name, message);
    return;
  }
  hmmvd_metadata_memory_remember(mem, uuid, &quota, (const char *const *)exclude);
  g_debug("vm %s: quota %s", name, xml != NULL ? xml : "(defaults: no hmmv metadata)");
  if (info->in_core)
    hmmvd_vms_change_exclude(vms, name, (const char *const *)exclude);
}

gboolean
hmmvd_libvirt_write_metadata(virConnectPtr conn, const char *name, const HmmvQuota *quota,
                             const char *const *exclude, int *code, GError **error)
{
  g_autofree char *xml = hmmvd_quota_format(quota, exclude);
  unsigned int flags = VIR_DOMAIN_AFFECT_LIVE;
  virDomainPtr dom;
  int rc;

  if (code != NULL)
    *code = 0;
  if (conn == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "libvirt is not connected (reconnecting)");
    return FALSE;
  }
  dom = virDomainLookupByName(conn, name);
  if (dom == NULL) {
    if (code != NULL)
      *code = virGetLastErrorCode();
    hmmvd_libvirt_set_error(error, name);
    return FALSE;
  }
  /* CONFIG too when the domain has a persistent definition, so the quota survives a restart
   * of the domain, as `virsh metadata --live --config` does. */
  if (virDomainIsPersistent(dom) == 1)
    flags |= VIR_DOMAIN_AFFECT_CONFIG;
  rc = virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, HMMVD_METADATA_KEY,
                            HMMVD_METADATA_URI, flags);
  if (rc < 0) {
    if (code != NULL)               /* read before virDomainFree, which resets it */
      *code = virGetLastErrorCode();
    hmmvd_libvirt_set_error(error, name);
  }
  virDomainFree(dom);
  return rc == 0;
}

/* ------------------------------------------------------------------------------------------
 * The last good element of each domain
 */

typedef struct {
  HmmvQuota quota;
  char **exclude;               /* NULL-ended, empty when none */
} Remembered;

struct _HmmvdMetadataMemory {
  GHashTable *by_uuid;          /* uuid -> Remembered */
  GQueue order;                 /* uuids (the table's keys), oldest remembered first */
};

static void
remembered_free(gpointer data)
{
  Remembered *r = data;

  g_strfreev(r->exclude);
  g_free(r);
}

HmmvdMetadataMemory *
hmmvd_metadata_memory_new(void)
{
  HmmvdMetadataMemory *mem = g_new0(HmmvdMetadataMemory, 1);

  mem->by_uuid = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, remembered_free);
  g_queue_init(&mem->order);
  return mem;
}

void
hmmvd_metadata_memory_free(HmmvdMetadataMemory *mem)
{
  if (mem == NULL)
    return;
  g_queue_clear(&mem->order);
  g_hash_table_unref(mem->by_uuid);
  g_free(mem);
}

void
hmmvd_metadata_memory_remember(HmmvdMetadataMemory *mem, const char *uuid,
                               const HmmvQuota *quota, const char *const *exclude)
{
  const char *const none[] = { NULL };
  Remembered *r = g_hash_table_lookup(mem->by_uuid, uuid);

  if (r == NULL) {
    char *key = g_strdup(uuid);

    if (g_queue_get_length(&mem->order) >= HMMVD_METADATA_MEMORY_MAX)
      g_hash_table_remove(mem->by_uuid, g_queue_pop_head(&mem->order));   /* frees the key */
    r = g_new0(Remembered, 1);
    g_hash_table_insert(mem->by_uuid, key, r);
    g_queue_push_tail(&mem->order, key);
  }
  r->quota = *quota;
  g_strfreev(r->exclude);
  r->exclude = g_strdupv((char **)(exclude != NULL ? exclude : none));
}

gboolean
hmmvd_metadata_memory_recall(const HmmvdMetadataMemory *mem, const char *uuid,
                             HmmvQuota *quota, char ***exclude)
{
  const Remembered *r = uuid != NULL ? g_hash_table_lookup(mem->by_uuid, uuid) : NULL;

  if (r == NULL)
    return FALSE;
  if (quota != NULL)
    *quota = r->quota;
  if (exclude != NULL)
    *exclude = g_strdupv(r->exclude);
  return TRUE;
}

guint
hmmvd_metadata_memory_size(const HmmvdMetadataMemory *mem)
{
  return g_hash_table_size(mem->by_uuid);
}

HmmvdMetadataVerdict
hmmvd_metadata_at_discovery(const HmmvdMetadataMemory *mem, const char *uuid, const char *xml,
                            const HmmvQuota *defaults, HmmvQuota *quota, char ***exclude,
                            GError **rejection)
{
  g_autoptr(GError) whole_error = NULL;
  g_autoptr(GError) exclude_error = NULL;

  *quota = *defaults;
  if (xml == NULL) {
    *exclude = g_new0(char *, 1);
    return HMMVD_METADATA_ACCEPTED;
  }
  if (hmmvd_metadata_parse(xml, defaults, quota, exclude, &whole_error))
    return HMMVD_METADATA_ACCEPTED;
  *quota = *defaults;
  if (hmmvd_metadata_memory_recall(mem, uuid, quota, exclude)) {
    g_propagate_error(rejection, g_steal_pointer(&whole_error));
    return HMMVD_METADATA_LAST_GOOD;
  }
  /* never accepted: a malformed quota alone leaves the exclusion known */
  if (hmmvd_metadata_parse_exclude(xml, exclude, &exclude_error)) {
    g_propagate_error(rejection, g_steal_pointer(&whole_error));
    return HMMVD_METADATA_QUOTA_REJECTED;
  }
  /* the reason given is what leaves the exclusion unknown */
  g_propagate_error(rejection, g_steal_pointer(&exclude_error));
  return HMMVD_METADATA_WAIT;
}
