/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a QEMU's process still runs, for the DRAM holds (vms-interval.c, standalone.c).
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* TRUE while process pid runs, also when it is another user's (kill() fails EPERM). FALSE
 * for pid <= 0, a pid no process has (ESRCH), and a process that exited but is not reaped
 * yet (a zombie: /proc/PID/stat state Z, or X while it is being reaped): it has no memory
 * left, yet kill(pid, 0) succeeds on it until its parent waits for it. */
gboolean hmmvd_pid_alive(int pid);

G_END_DECLS
