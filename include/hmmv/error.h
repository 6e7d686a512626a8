/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv: the one error domain of libhmmv.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define HMMV_ERROR (hmmv_error_quark())

/**
 * HmmvError:
 * @HMMV_ERROR_FAILED: generic failure
 * @HMMV_ERROR_INVALID_ARGUMENT: a value given by the caller or configuration is out of range
 * @HMMV_ERROR_NOT_SUPPORTED: the host, kernel or QEMU cannot do this
 * @HMMV_ERROR_NOT_FOUND: a named object (VM, node, file) does not exist
 * @HMMV_ERROR_CORRUPT: a trace file or shared-memory region failed a format or bounds check
 * @HMMV_ERROR_GONE: the process or VM went away
 * @HMMV_ERROR_PERMISSION: the kernel or a peer refused for lack of privilege
 * @HMMV_ERROR_IO: a read, write or socket operation failed
 * @HMMV_ERROR_PROTOCOL: a peer (QMP, control socket) said something unexpected
 * @HMMV_ERROR_LAYOUT_CHANGED: the VM's RAM layout changed; tracking must restart
 * @HMMV_ERROR_NO_SPACE: the target NUMA node is full (move_pages(2) failed with ENOMEM)
 * @HMMV_ERROR_BUSY: the object is in use (a core whose interval is running, a QEMU whose QMP
 *   exchange is still under way); try again later. From a tracker's harvest: nothing for
 *   this interval yet (the core takes it as a harvest of 0 intervals)
 * @HMMV_ERROR_TIMED_OUT: a peer (QEMU through libvirt) missed the deadline of an exchange
 */
typedef enum {
  HMMV_ERROR_FAILED,
  HMMV_ERROR_INVALID_ARGUMENT,
  HMMV_ERROR_NOT_SUPPORTED,
  HMMV_ERROR_NOT_FOUND,
  HMMV_ERROR_CORRUPT,
  HMMV_ERROR_GONE,
  HMMV_ERROR_PERMISSION,
  HMMV_ERROR_IO,
  HMMV_ERROR_PROTOCOL,
  HMMV_ERROR_LAYOUT_CHANGED,
  HMMV_ERROR_NO_SPACE,
  HMMV_ERROR_BUSY,
  HMMV_ERROR_TIMED_OUT,
} HmmvError;

GQuark hmmv_error_quark(void);

G_END_DECLS
