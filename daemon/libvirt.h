/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's libvirt source of VMs: discovery of every running domain, lifecycle and metadata
 * events, reconnection when libvirtd restarts, the QMP transport over
 * virDomainQemuMonitorCommand, and the quota writer (libvirt metadata).
 *
 * Events: libvirt 9's default event implementation (virEventRegisterDefaultImpl) is built on
 * GLib and attaches its watches and timers to the default GMainContext, so hmmvd's own main
 * loop drives it: there is no separate event thread. (A thread calling virEventRunDefaultImpl
 * would iterate that same context and, whenever it won ownership, dispatch hmmvd's timers and
 * control socket on the wrong thread.) Every libvirt callback only copies what it needs and
 * queues an idle source on the main context; the work runs later, outside libvirt's locks, so
 * the VM table is only ever touched by the main thread from the main loop. Every call into
 * libvirtd (connecting, discovery, look-ups, metadata reads and writes) runs on a thread of
 * its own, with a deadline (libvirt-private.h): the main thread never waits for libvirtd.
 *
 * A domain whose numatune binds its memory (mode strict, restrictive or interleave) to a
 * nodeset without the first DRAM node or without the first slow node hmmv moves pages to is
 * listed as unmanaged with that reason: hmmv then never moves its pages (it would fight
 * libvirt's cgroup and QEMU's mbind, and the kernel would refuse the moves anyway). Mode
 * preferred does not forbid anything and is managed.
 */
#pragma once

#include <hmmv/hmmv.h>

#include "config.h"
#include "vms.h"

G_BEGIN_DECLS

typedef struct _HmmvdLibvirt HmmvdLibvirt;

/* Registers libvirt's event implementation and starts connecting to config->libvirt_uri (on
 * the calls thread; every running domain is added to vms once connected: is_connected). When
 * libvirtd is not there the failure is logged and the connection retried every reconnect_ms;
 * NULL only when retrying cannot help. Installs the quota writer on vms.
 * vms, config and topo (the topology the core places pages on) are not owned and must outlive
 * the returned object. Call on the thread that runs the default main context. */
HmmvdLibvirt *hmmvd_libvirt_new(HmmvdVms *vms, const HmmvdConfig *config,
                                const HmmvTopology *topo, GError **error);
/* Closes the connection (on the calls thread, waiting at most 2 s for a call under way: one
 * libvirtd does not answer is left to finish on its own) and drops queued events; VMs stay in
 * vms (remove them first). */
void hmmvd_libvirt_free(HmmvdLibvirt *lv);
gboolean hmmvd_libvirt_is_connected(const HmmvdLibvirt *lv);
/* The interval's hmmv-sync to every tracking domain, sent ahead on their QMP workers so the
 * main loop never waits for a QEMU: TRUE when sent, then done(data) runs on the main loop
 * once all answered or missed their deadline; run the interval there, then sync_end. FALSE:
 * nothing to wait for (no domain tracking, or a round already under way: sync_pending). */
gboolean hmmvd_libvirt_sync_begin(HmmvdLibvirt *lv, GSourceFunc done, gpointer data);
gboolean hmmvd_libvirt_sync_pending(const HmmvdLibvirt *lv);
void hmmvd_libvirt_sync_end(HmmvdLibvirt *lv);

/* Helpers, exposed for tests. */

/* A libvirt nodeset ("0-3,^2,5") as a bit mask of nodes 0..63 (larger ids are parsed and
 * ignored: hmmv places pages on nodes 0..HMMV_MAX_NODE_ID only). */
gboolean hmmvd_libvirt_parse_nodeset(const char *nodeset, guint64 *mask, GError **error);
/* NULL when the domain's numatune lets hmmv move pages between the tiers of topo, else the
 * reason it does not (for the VM's status). */
char *hmmvd_libvirt_numatune_conflict(const char *domain_xml, const HmmvTopology *topo);
/* The nodes the domain's numatune binds its memory to (modes strict, restrictive and
 * interleave; libvirt's default is strict), a bit per node; 0 when it binds nothing (no
 * numatune, mode preferred, or XML hmmvd cannot read: numatune_conflict reports that). hmmvd
 * never moves the domain's pages to another node, whether or not the kernel enforces the
 * binding through the cpuset (libvirt without the cpuset controller uses a memory policy,
 * which move_pages(2) ignores). */
guint64 hmmvd_libvirt_numatune_nodes(const char *domain_xml);
/* QEMU's pid: run_dir/NAME.pid, else the pid attribute of <domstatus> in run_dir/NAME.xml. */
gboolean hmmvd_libvirt_read_pid(const char *run_dir, const char *name, int *pid,
                                GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdLibvirt, hmmvd_libvirt_free)

G_END_DECLS
