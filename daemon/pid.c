/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Whether a QEMU's process still runs (pid.h). kill(pid, 0) alone says a zombie runs: a
 * standalone QEMU that quit while its parent does not reap it (a Python Popen never waited
 * on, a stopped supervisor) kept its VM's DRAM held for as long as the zombie lasted, the
 * VM listed "QEMU lives, reconnecting" (review 19, finding 1).
 */
#include "pid.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

/* The state field of /proc/PID/stat (the third, after the command name in parentheses,
 * which may itself hold ") "), '\0' when it cannot be read. */
static char
proc_state(int pid, gboolean *vanished)
{
  g_autofree char *path = g_strdup_printf("/proc/%d/stat", pid);
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;
  const char *paren;

  *vanished = FALSE;
  if (!g_file_get_contents(path, &contents, NULL, &error)) {
    /* gone between kill() and here; not when /proc itself is missing (then trust kill()) */
    *vanished = g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT) &&
                g_file_test("/proc/self/stat", G_FILE_TEST_EXISTS);
    return '\0';
  }
  paren = strrchr(contents, ')');
  if (paren == NULL || paren[1] != ' ')
    return '\0';
  return paren[2];
}

gboolean
hmmvd_pid_alive(int pid)
{
  gboolean vanished;
  char state;

  if (pid <= 0)
    return FALSE;
  if (kill(pid, 0) < 0 && errno == ESRCH)
    return FALSE;
  state = proc_state(pid, &vanished);
  return !vanished && state != 'Z' && state != 'X' && state != 'x';
}
