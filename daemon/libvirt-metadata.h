/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv's element in a libvirt domain's metadata (quota.h's format): read and written through
 * libvirt, for libvirt.c.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "config.h"
#include "quota.h"

G_BEGIN_DECLS

/* The live element, parsed over config's default quota: the quota and the backends to
 * exclude (NULL-ended, the caller's). No element: the defaults and no exclusion. FALSE:
 * HMMV_ERROR_IO when libvirt could not be asked, HMMV_ERROR_INVALID_ARGUMENT when the
 * element does not parse (the message says why); *xml_out (when not NULL) gets the text. */
gboolean hmmvd_libvirt_read_metadata(virDomainPtr dom, const HmmvdConfig *config,
                                     HmmvQuota *quota, char ***exclude, char **xml_out,
                                     GError **error);
/* Writes the element (live, and config too for a persistent domain, as virsh metadata
 * --live --config does), keeping exclude. */
gboolean hmmvd_libvirt_write_metadata(virConnectPtr conn, const char *name,
                                      const HmmvQuota *quota, const char *const *exclude,
                                      GError **error);

G_END_DECLS
