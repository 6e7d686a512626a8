/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv's element in a libvirt domain's metadata (quota.h's format): read and written through
 * libvirt, for libvirt.c.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "config.h"
#include "quota.h"
#include "vms.h"

G_BEGIN_DECLS

/* The live element's text (*xml NULL: none); FALSE (HMMV_ERROR_IO) when libvirt could not be
 * asked. Calls libvirtd: on libvirt's calls thread only. */
gboolean hmmvd_libvirt_read_metadata_text(virDomainPtr dom, char **xml, GError **error);
/* Writes the element (live, and config too for a persistent domain, as virsh metadata
 * --live --config does), keeping exclude. On failure *code (if not NULL) is libvirt's error
 * code (virErrorNumber: VIR_ERR_OPERATION_TIMEOUT when libvirtd could not take the domain's
 * job), 0 when libvirt was not asked. Calls libvirtd: on libvirt's calls thread only. */
gboolean hmmvd_libvirt_write_metadata(virConnectPtr conn, const char *name,
                                      const HmmvQuota *quota, const char *const *exclude,
                                      int *code, GError **error);

/* ------------------------------------------------------------------------------------------
 * What hmmvd remembers of each domain's element, by UUID, for its own lifetime: the last one
 * it accepted (quota and exclusion). A domain dropped and discovered again (its QEMU missed a
 * deadline, libvirtd restarted) while its element is malformed keeps them, as a running one
 * does. At most HMMVD_METADATA_MEMORY_MAX domains: the oldest remembered is forgotten first.
 */
#define HMMVD_METADATA_MEMORY_MAX 4096u

typedef struct _HmmvdMetadataMemory HmmvdMetadataMemory;

HmmvdMetadataMemory *hmmvd_metadata_memory_new(void);
void hmmvd_metadata_memory_free(HmmvdMetadataMemory *mem);
/* The element of domain uuid was accepted: quota and exclude (NULL or empty: none). */
void hmmvd_metadata_memory_remember(HmmvdMetadataMemory *mem, const char *uuid,
                                    const HmmvQuota *quota, const char *const *exclude);
/* The last accepted element of domain uuid; FALSE when hmmvd never accepted one. quota and
 * exclude may be NULL; *exclude is the caller's (NULL-ended, empty when none). */
gboolean hmmvd_metadata_memory_recall(const HmmvdMetadataMemory *mem, const char *uuid,
                                      HmmvQuota *quota, char ***exclude);
guint hmmvd_metadata_memory_size(const HmmvdMetadataMemory *mem);

/* What a domain discovered (or discovered again) starts with. */
typedef enum {
  HMMVD_METADATA_ACCEPTED,        /* the element's quota and exclusion (none: the defaults) */
  HMMVD_METADATA_LAST_GOOD,       /* rejected; a domain accepted before keeps the last good
                                     quota and exclusion */
  HMMVD_METADATA_QUOTA_REJECTED,  /* rejected, never accepted before, but its exclusion is
                                     well formed: that exclusion, and the default quota (as a
                                     malformed quota always was) */
  HMMVD_METADATA_WAIT,            /* rejected, never accepted before, and which backends to
                                     leave alone is unknown: not managed until it is fixed */
} HmmvdMetadataVerdict;

/* xml: the live element (NULL: none). *quota and *exclude (the caller's) are what the domain
 * starts with (not set for WAIT); *rejection says why the element was rejected (every verdict
 * but ACCEPTED). The quota is not checked against the pool here (hmmvd_vms_set_quota is). */
HmmvdMetadataVerdict hmmvd_metadata_at_discovery(const HmmvdMetadataMemory *mem,
                                                 const char *uuid, const char *xml,
                                                 const HmmvQuota *defaults, HmmvQuota *quota,
                                                 char ***exclude, GError **rejection);

/* Runtime (a metadata event, or right after a start-up): the live element of domain uuid
 * (xml, NULL: none, as read on libvirt's calls thread; read_error: why it could not be read)
 * applied to the VM name of vms. Accepted: the quota (from the next interval) and, for a VM in
 * the core, a changed exclusion (its tracking restarts); remembered. Malformed, or a quota the
 * pool refuses: the last good quota and exclusion stay (recalled into an entry made since they
 * were accepted), with a warning naming the VM and the error, and the error as its
 * quota-error. Not read: a warning, nothing changes. No libvirt call. */
void hmmvd_libvirt_apply_metadata(HmmvdVms *vms, HmmvdMetadataMemory *mem,
                                  const HmmvdConfig *config, const char *name,
                                  const char *uuid, const char *xml, const char *read_error);

G_END_DECLS
