/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's standalone source of VMs: `hmmvd --qmp NAME=SOCKET`, plain QEMUs reached through
 * their own QMP Unix sockets, no libvirt. QEMU's pid comes from the socket's peer credentials.
 * Every reconnect_ms each VM is checked: when its QEMU is gone (or never came), the socket is
 * tried again, so a restarted QEMU is picked up by itself; so is a VM whose QMP connection
 * failed while its QEMU lives (QEMU closed it, or sent what is not QMP), frozen or not: removed
 * with a warning and connected again from scratch, its DRAM kept counted by the core
 * meanwhile; breaks in a row back off (reconnect_ms x 2^(n-1), at most 60 s:
 * standalone-backoff.h), warned once, and so do start-ups that fail after QEMU greeted (one
 * that read no greeting is tried every reconnect_ms: a VM started, or done with its init,
 * later is picked up within it).
 */
#pragma once

#include <hmmv/hmmv.h>

#include "config.h"
#include "vms.h"

G_BEGIN_DECLS

typedef struct _HmmvdStandalone HmmvdStandalone;

/* vms and config are not owned and must outlive the result. */
HmmvdStandalone *hmmvd_standalone_new(HmmvdVms *vms, const HmmvdConfig *config);
void hmmvd_standalone_free(HmmvdStandalone *sa);

/* spec: NAME=SOCKET. Tries the socket at once; a QEMU not there yet is listed as unmanaged
 * and tried again later. FALSE only for a bad spec or a name given twice. */
gboolean hmmvd_standalone_add(HmmvdStandalone *sa, const char *spec, GError **error);

/* NAME=SOCKET -> name, path; NAME non-empty without '/' or spaces, SOCKET non-empty. */
gboolean hmmvd_standalone_parse_spec(const char *spec, char **name, char **path,
                                     GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdStandalone, hmmvd_standalone_free)

G_END_DECLS
