/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's shared context. The daemon is a thin client of libhmmv: this file is the one place
 * where its parts (config, sources of VMs, control socket, metrics) meet.
 *
 *   hmmvd.c      main: options, config, topology, mover, core, main loop, interval timer
 *   config.c     hmmvd.conf (GKeyFile) -> HmmvdConfig
 *   quota.c      the per-VM quota XML in libvirt metadata: parse, format, validate
 *   vms.c        the table of managed VMs on top of HmmvCore (add/remove/quota/pause)
 *   vms-json.c   the JSON views of that table and of the daemon (control socket, --json)
 *   libvirt.c    libvirt: discovery, lifecycle and metadata events, reconnect, QMP transport
 *   libvirt-xml.c  what hmmvd reads from domain XML and libvirt's run files (numatune, pid)
 *   standalone.c --qmp NAME=SOCKET VMs, no libvirt
 *   control.c    the root-only Unix control socket (JSON lines) used by hmmvctl
 *   metrics.c    Prometheus text: HTTP on localhost and/or a textfile-collector file
 *   hmmvctl.c    the operator's client (+ hmmvctl-track.c: `hmmvctl track`, no daemon needed)
 */
#pragma once

#include "config.h"
#include "quota.h"
#include "vms.h"
