/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's control socket: a Unix socket only root may use (mode 0600 in a 0700 directory,
 * and the peer's uid checked with SO_PEERCRED), speaking JSON lines:
 *
 *   -> {"command": "status"}                         <- {"return": {...}}
 *   -> {"command": "vms"}                            <- {"return": [...]}
 *   -> {"command": "set-quota", "vm": "NAME",
 *       "quota": {"dram-min-mib": 256, "dram-max-mib": 1024, "weight": 100,
 *                 "managed": true}}                  <- {"return": {}}
 *   -> {"command": "pause" | "resume", "vm": "NAME"} <- {"return": {}}
 *   -> {"command": "placement", "vm": "NAME"}        <- {"return": {"regions": [...],
 *                                                        "nodes": "0001-1..."}}
 *   anything wrong                                   <- {"error": "why"}
 *
 * placement is hmmvd's own view of where each page of a managed VM is (one character a page:
 * the node id in base 32, '-' unknown), for checks that read the kernel's view beside it
 * (tests/testbed); VMs of more than HMMVD_PLACEMENT_MAX_PAGES pages are refused.
 *
 * set-quota members left out keep the VM's current value. A client may send several requests
 * on one connection; each line is at most HMMVD_CONTROL_MAX_LINE bytes.
 *
 *   hmmvd.c: control = hmmvd_control_new(vms, topo, mover_name, config->control_socket, &err);
 *            ... main loop ...; hmmvd_control_free(control) (before the VM table)
 */
#pragma once

#include <gio/gio.h>

#include "vms.h"

G_BEGIN_DECLS

#define HMMVD_CONTROL_MAX_LINE (64u * 1024u)
#define HMMVD_CONTROL_MAX_CLIENTS 16u
/* A client silent for this long is dropped, so idle clients cannot hold every slot. */
#define HMMVD_CONTROL_TIMEOUT_S 30u
/* Each request, from the previous reply (or the connection) to its newline, must arrive
 * within this: a client trickling a byte now and then no longer holds its slot forever. */
#define HMMVD_CONTROL_REQUEST_DEADLINE_MS 30000u

typedef struct _HmmvdControl HmmvdControl;

/* Creates the socket's directory (0700) when missing, refuses a directory others can write,
 * replaces a stale socket (refuses when another hmmvd answers on it), binds, chmods 0600 and
 * starts serving on the thread-default main context. vms, topo and mover_name are borrowed. */
HmmvdControl *hmmvd_control_new(HmmvdVms *vms, const HmmvTopology *topo, const char *mover_name,
                                const char *path, GError **error);
/* For tests: the per-request deadline (default HMMVD_CONTROL_REQUEST_DEADLINE_MS). */
void hmmvd_control_set_request_deadline_ms(HmmvdControl *control, guint deadline_ms);
/* status then carries "host-tiering": Linux's own tiering under root ("/" on a host), read
 * at each status request (host-tiering.h); run_dir: where hmmv records its own kdamonds. */
void hmmvd_control_set_host_tiering(HmmvdControl *control, const char *root,
                                    const char *run_dir);
/* Stops serving and unlinks the socket. */
void hmmvd_control_free(HmmvdControl *control);

/* One request line (without its newline) -> one reply line (without newline); never fails:
 * errors are {"error": ...} replies. Exposed for tests. */
char *hmmvd_control_handle_request(HmmvdVms *vms, const HmmvTopology *topo,
                                   const char *mover_name, const char *line, gsize len);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HmmvdControl, hmmvd_control_free)

G_END_DECLS
