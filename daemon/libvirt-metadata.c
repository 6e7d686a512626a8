/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv's element in libvirt domain metadata (see libvirt-metadata.h).
 */
#include "libvirt-metadata.h"
#include "libvirt-qmp.h"

#include <libvirt/virterror.h>
#include <stdlib.h>

gboolean
hmmvd_libvirt_read_metadata(virDomainPtr dom, const HmmvdConfig *config, HmmvQuota *quota,
                            char ***exclude, char **xml_out, GError **error)
{
  char *text = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                                    VIR_DOMAIN_AFFECT_LIVE);
  g_autofree char *xml = NULL;

  if (text == NULL && virGetLastErrorCode() != VIR_ERR_NO_DOMAIN_METADATA) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "cannot read the hmmv metadata: %s",
                hmmvd_libvirt_last_error_message());
    return FALSE;
  }
  xml = g_strdup(text);   /* libvirt's string goes with free() */
  free(text);
  *quota = config->default_quota;
  if (xml == NULL) {
    *exclude = g_new0(char *, 1);
  } else if (!hmmvd_metadata_parse(xml, &config->default_quota, quota, exclude, error)) {
    return FALSE;
  }
  if (xml_out != NULL)
    *xml_out = g_steal_pointer(&xml);
  return TRUE;
}

gboolean
hmmvd_libvirt_write_metadata(virConnectPtr conn, const char *name, const HmmvQuota *quota,
                             const char *const *exclude, GError **error)
{
  g_autofree char *xml = hmmvd_quota_format(quota, exclude);
  unsigned int flags = VIR_DOMAIN_AFFECT_LIVE;
  virDomainPtr dom;
  int rc;

  if (conn == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "libvirt is not connected (reconnecting)");
    return FALSE;
  }
  dom = virDomainLookupByName(conn, name);
  if (dom == NULL) {
    hmmvd_libvirt_set_error(error, name);
    return FALSE;
  }
  /* CONFIG too when the domain has a persistent definition, so the quota survives a restart
   * of the domain, as `virsh metadata --live --config` does. */
  if (virDomainIsPersistent(dom) == 1)
    flags |= VIR_DOMAIN_AFFECT_CONFIG;
  rc = virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, HMMVD_METADATA_KEY,
                            HMMVD_METADATA_URI, flags);
  if (rc < 0)
    hmmvd_libvirt_set_error(error, name);
  virDomainFree(dom);
  return rc == 0;
}
