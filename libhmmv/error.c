/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <hmmv/error.h>

G_DEFINE_QUARK(hmmv-error-quark, hmmv_error)

/* GLib 2.74's g_ascii_string_to_unsigned() and friends fail on a valid number when two
 * threads make the process's first call at once: g_ascii_strtoull() sets up its C locale in
 * a g_once, the thread that waits for it can come back with errno set (the futex), and the
 * parse reads any errno as an error ("\"0\" is not a number"; 33 failures in 200 runs of 8
 * threads here). hmmvd's threads parse sysfs and QMP numbers from the start (a DAMON setup
 * thread beside the main loop: unit/control failed 2 in 15 on it), so the locale is set up
 * once, before main() and any thread. This file is in every program that uses HMMV_ERROR. */
__attribute__((constructor)) static void
hmmv_c_locale_ready(void)
{
  (void)g_ascii_strtoull("0", NULL, 10);
}
