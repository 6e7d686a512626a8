/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvd_pid_alive (daemon/pid.c), which ends the DRAM hold of a QEMU that is gone: this
 * process runs; a child that exited is gone before it is reaped (a zombie: kill(pid, 0)
 * still succeeds on it) and after; pid 0 and below are nobody's. Before, kill(pid, 0) alone
 * decided, and a zombie QEMU kept its VM's DRAM held while it lasted (review 19, finding 1).
 */
#include "hmmvd-test.h"
#include "pid.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(test_zombie_is_gone)
{
  /* forked before the test allocates anything: the child leaks nothing when it exits */
  pid_t child = fork();
  siginfo_t info = { 0 };

  ck_assert_int_ge(child, 0);
  if (child == 0)
    _exit(0);
  /* waits until it exited, leaving it unreaped (WNOWAIT): a zombie, no time assumed */
  ck_assert_int_eq(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
  ck_assert_int_eq(info.si_pid, child);
  ck_assert_msg(kill(child, 0) == 0, "a zombie answers kill(pid, 0)");
  ck_assert_msg(!hmmvd_pid_alive(child), "zombie pid %d taken for alive", child);
  ck_assert_int_eq(waitpid(child, NULL, 0), child);
  ck_assert(!hmmvd_pid_alive(child));
}
END_TEST

START_TEST(test_alive)
{
  ck_assert(hmmvd_pid_alive(getpid()));
  ck_assert(hmmvd_pid_alive(getppid()));
  ck_assert(!hmmvd_pid_alive(0));
  ck_assert(!hmmvd_pid_alive(-1));
}
END_TEST

int
main(void)
{
  Suite *suite = suite_create("pid");
  TCase *tc = tcase_create("pid");

  tcase_add_test(tc, test_zombie_is_gone);
  tcase_add_test(tc, test_alive);
  suite_add_tcase(suite, tc);
  return hmmv_test_run(suite);
}
