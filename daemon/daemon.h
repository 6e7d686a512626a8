/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd's shared context. The daemon is a thin client of libhmmv: this file is the one place
 * where its parts (config, sources of VMs, control socket, metrics) meet.
 *
 *   hmmvd.c      main: options, config, topology, mover, core, main loop, interval timer
 *   config.c     hmmvd.conf (GKeyFile) -> HmmvdConfig
 *   quota.c      the per-VM quota XML in libvirt metadata: parse, format, validate
 *   vms.c        the table of managed VMs on top of HmmvCore (add/remove/quota/pause)
 *   libvirt.c    libvirt: discovery, lifecycle and metadata events, reconnect, QMP transport
 *   standalone.c --qmp NAME=SOCKET VMs, no libvirt
 *   control.c    the root-only Unix control socket (JSON lines) used by hmmvctl
 *   metrics.c    Prometheus text: HTTP on localhost and/or a textfile-collector file
 */
#pragma once

#include "config.h"
#include "quota.h"
#include "vms.h"
