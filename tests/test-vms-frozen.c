/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's VM table when a VM's QEMU misses a QMP deadline (issue 8; vms-interval.c,
 * handle_timed_out): the VM is frozen in the core, not dropped from it. Real core, sim mover,
 * fake trackers whose harvest fails HMMV_ERROR_TIMED_OUT as the libvirt transport's does;
 * counted in intervals.
 *
 * Before, the VM left the core (status "not answering, retried") and its DRAM was counted
 * against nobody until its source added it again from scratch: the other VM's budget took it.
 * Checked: the frozen VM stays in the core, status "not answering (frozen, N MiB on DRAM kept
 * counted): ...", its DRAM in the status JSON (frozen-dram-pages, held-outside-pages) and the
 * other VM's budget within the pool less it, for as many intervals as it stays frozen; thawed
 * (its source saw QEMU answer), it is "managed" and run again; removed (its domain stopped) it
 * leaves the core and its DRAM is the other VM's to take.
 *
 * Found gone by the harvest while its QEMU may live (a QEMU that closed its QMP socket: the
 * harvest fails HMMV_ERROR_GONE; vms-interval.c, handle_gone): a standalone VM leaves the core
 * with its DRAM held (standalone connects it again after its backoff, up to 60 s), the hold
 * recorded on its entry (held_pid) for standalone to adopt; held-outside-pages counts it and
 * the other VM's budget stays within the pool less it while it is out; removing the entry
 * ends it, and so does the release of an adopted hold (the entry's removal then leaves it).
 * A libvirt domain found gone is not held. With a mover that is not the sim (the gate mover,
 * so the pid is looked at): a live QEMU's VM found gone is held, a dead QEMU's is not, nor a
 * zombie's (exited, not reaped), nor one whose QEMU exited while frozen. Before, none was held
 * (review 18b, F2), then a zombie's was (review 19, finding 1).
 */
#include "hmmvd-test.h"
#include "vms.h"

#include "gate-mover.h"

#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define VM_PAGES 2048u
#define DRAM 1536u            /* the DRAM node: 6 MiB */
#define HELD 1024u            /* a's guest wrote 4 MiB on DRAM before b came */
#define FROZEN 10u

static HmmvdTestBed bed;

static void
setup(void)
{
  HmmvParams params;

  hmmv_params_init(&params);
  params.migrate_mbps = 0;
  hmmvd_test_bed_init(&bed, (guint64)DRAM * HMMV_PAGE_SIZE,
                      (guint64)8 * VM_PAGES * HMMV_PAGE_SIZE, &params);
}

static void
teardown(void)
{
  hmmvd_test_bed_clear(&bed);
}

static guint64
status_uint(const char *member)
{
  g_autoptr(JsonNode) root = hmmvd_status_to_json(bed.vms, bed.topo, "sim");

  return (guint64)json_object_get_int_member(json_node_get_object(root), member);
}

/* The vms JSON's member of VM name. */
static JsonNode *
vm_member(const char *name, const char *member)
{
  g_autoptr(JsonNode) root = hmmvd_vms_to_json(bed.vms);
  JsonArray *array = json_node_get_array(root);

  for (guint i = 0; i < json_array_get_length(array); i++) {
    JsonObject *vm = json_array_get_object_element(array, i);

    if (g_strcmp0(json_object_get_string_member(vm, "name"), name) == 0)
      return json_node_copy(json_object_get_member(vm, member));
  }
  ck_abort_msg("vm %s not in the vms JSON", name);
  return NULL;
}

/* a (from source) holds HELD pages of DRAM; b comes. */
static HmmvTracker *
load_a(HmmvdSource source, HmmvTracker **b_out)
{
  HmmvTracker *a = hmmvd_test_bed_add_vm(&bed, "a", VM_PAGES, source);
  HmmvTracker *b = hmmvd_test_bed_add_vm(&bed, "b", VM_PAGES, HMMVD_SOURCE_LIBVIRT);

  for (guint i = 0; i < 3; i++) {
    hmmvd_test_write_pages(a, 0, HELD);
    hmmvd_vms_run_interval(bed.vms);
  }
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.dram_pages, HELD);
  *b_out = b;
  return a;
}

/* a holds HELD pages of DRAM; b comes, hot, wanting all of it; a's QEMU stops answering. */
static HmmvTracker *
freeze_a(HmmvTracker **b_out)
{
  HmmvTracker *b, *a = load_a(HMMVD_SOURCE_LIBVIRT, &b);
  const HmmvdVmInfo *info;

  hmmv_fake_tracker_fail_next(a, HMMV_ERROR_TIMED_OUT);
  hmmvd_test_write_pages(b, 0, VM_PAGES);
  hmmvd_vms_run_interval(bed.vms);
  info = hmmvd_vms_lookup(bed.vms, "a");
  ck_assert(info->frozen);
  ck_assert(info->in_core);
  ck_assert(!info->dropped);
  ck_assert_uint_eq(info->freezes, 1);
  ck_assert_msg(g_str_has_prefix(info->status, "not answering (frozen, 4 MiB on DRAM kept "
                                 "counted): "), "%s", info->status);
  *b_out = b;
  return a;
}

START_TEST(test_frozen_keeps_its_dram_counted)
{
  HmmvTracker *b, *a = freeze_a(&b);
  g_autoptr(JsonNode) frozen = vm_member("a", "frozen");
  g_autoptr(JsonNode) in_core = vm_member("a", "in-core");
  guint64 b_budget_max = 0;

  ck_assert(json_node_get_boolean(frozen));
  ck_assert(json_node_get_boolean(in_core));
  for (guint i = 0; i < FROZEN; i++) {
    const HmmvdVmInfo *ia, *ib;

    hmmvd_test_write_pages(b, 0, VM_PAGES);
    hmmvd_test_write_pages(a, HELD, 64);   /* queued: not harvested while frozen */
    hmmvd_vms_run_interval(bed.vms);
    ia = hmmvd_vms_lookup(bed.vms, "a");
    ib = hmmvd_vms_lookup(bed.vms, "b");
    ck_assert(ia->frozen && ia->in_core && ia->last.frozen);
    ck_assert_uint_eq(ia->last.dram_pages, HELD);
    ck_assert_uint_eq(ia->last.written, 0);
    ck_assert_uint_eq(ia->errors, 0);   /* frozen intervals are not failed ones */
    ck_assert_uint_le(ib->last.budget_pages, DRAM - HELD);
    ck_assert_uint_le(ia->last.dram_pages + ib->last.dram_pages, DRAM);
    ck_assert_uint_eq(status_uint("vms-frozen"), 1);
    ck_assert_uint_eq(status_uint("frozen-dram-pages"), HELD);
    ck_assert_uint_eq(status_uint("held-outside-pages"), HELD);
    ck_assert_uint_eq(status_uint("vms-managed"), 2);
    b_budget_max = MAX(b_budget_max, ib->last.budget_pages);
  }
  printf("# a frozen %u intervals holding %u pages: b's budget at most %" G_GUINT64_FORMAT
         " of a %u-page DRAM node; a: %s\n", FROZEN, HELD, b_budget_max, DRAM,
         hmmvd_vms_lookup(bed.vms, "a")->status);

  /* its source saw QEMU answer: thawed, run again (what was queued is harvested) */
  ck_assert(hmmvd_vms_thaw(bed.vms, "a"));
  ck_assert(!hmmvd_vms_thaw(bed.vms, "a"));   /* not frozen any more */
  ck_assert(!hmmvd_vms_thaw(bed.vms, "nosuch"));
  ck_assert_str_eq(hmmvd_vms_lookup(bed.vms, "a")->status, "managed");
  hmmvd_vms_run_interval(bed.vms);
  ck_assert(!hmmvd_vms_lookup(bed.vms, "a")->frozen);
  ck_assert(!hmmvd_vms_lookup(bed.vms, "a")->last.frozen);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.written, 64);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->last.placement_unread, 0);
  ck_assert_str_eq(hmmvd_vms_lookup(bed.vms, "a")->status, "managed");
  ck_assert_uint_eq(status_uint("vms-frozen"), 0);
  ck_assert_uint_eq(status_uint("held-outside-pages"), 0);
  (void)a;
}
END_TEST

/* Frozen again after a thaw: counted; and removed while frozen (its domain stopped), it
 * leaves the core and b may take its DRAM. */
START_TEST(test_frozen_removed)
{
  HmmvTracker *b, *a = freeze_a(&b);
  guint64 budget = 0;

  ck_assert(hmmvd_vms_thaw(bed.vms, "a"));
  hmmv_fake_tracker_fail_next(a, HMMV_ERROR_TIMED_OUT);
  hmmvd_vms_run_interval(bed.vms);
  ck_assert(hmmvd_vms_lookup(bed.vms, "a")->frozen);
  ck_assert_uint_eq(hmmvd_vms_lookup(bed.vms, "a")->freezes, 2);
  hmmvd_vms_remove(bed.vms, "a");
  ck_assert(hmmvd_vms_lookup(bed.vms, "a") == NULL);
  ck_assert_uint_eq(hmmv_core_get_nr_vms(bed.core), 1);
  for (guint i = 0; i < 3; i++) {
    hmmvd_test_write_pages(b, 0, VM_PAGES);
    hmmvd_vms_run_interval(bed.vms);
    budget = hmmvd_vms_lookup(bed.vms, "b")->last.budget_pages;
  }
  ck_assert_uint_gt(budget, DRAM - HELD);
  ck_assert_uint_eq(status_uint("held-outside-pages"), 0);
}
END_TEST

/* a (from source) holds HELD pages of DRAM, b is hot; a's harvest finds its QEMU gone. */
static HmmvTracker *
gone_a(HmmvdSource source)
{
  HmmvTracker *b, *a = load_a(source, &b);
  const HmmvdVmInfo *info;

  hmmv_fake_tracker_fail_next(a, HMMV_ERROR_GONE);
  hmmvd_test_write_pages(b, 0, VM_PAGES);
  hmmvd_vms_run_interval(bed.vms);
  info = hmmvd_vms_lookup(bed.vms, "a");
  ck_assert(info != NULL);
  ck_assert(!info->in_core);
  ck_assert_msg(g_str_has_prefix(info->status, "gone: "), "%s", info->status);
  ck_assert_uint_eq(hmmv_core_get_nr_vms(bed.core), 1);
  return b;
}

/* b's largest budget over n intervals, b hot on all its pages. */
static guint64
run_b(HmmvTracker *b, guint n)
{
  guint64 most = 0;

  for (guint i = 0; i < n; i++) {
    hmmvd_test_write_pages(b, 0, VM_PAGES);
    hmmvd_vms_run_interval(bed.vms);
    most = MAX(most, hmmvd_vms_lookup(bed.vms, "b")->last.budget_pages);
  }
  return most;
}

START_TEST(test_gone_standalone_held)
{
  HmmvTracker *b = gone_a(HMMVD_SOURCE_STANDALONE);
  const HmmvdVmInfo *ia;
  guint64 budget;

  ia = hmmvd_vms_lookup(bed.vms, "a");
  ck_assert_msg(ia->held_pid == 4242, "a found gone while its QEMU may live: held_pid %d, %"
                G_GUINT64_FORMAT " pages held", ia->held_pid,
                hmmv_core_get_held_dram_pages(bed.core));
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), HELD);
  ck_assert_uint_eq(status_uint("held-outside-pages"), HELD);
  for (guint i = 0; i < FROZEN; i++) {
    const HmmvdVmInfo *ib;

    hmmvd_test_write_pages(b, 0, VM_PAGES);
    hmmvd_vms_run_interval(bed.vms);
    ib = hmmvd_vms_lookup(bed.vms, "b");
    ck_assert_msg(ib->last.budget_pages <= DRAM - HELD, "interval %u after a left: b's budget "
                  "%" G_GUINT64_FORMAT " took a's DRAM (%u of %u)", i, ib->last.budget_pages,
                  HELD, DRAM);
    ck_assert_uint_le(ib->last.dram_pages, DRAM - HELD);
    ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), HELD);
    ck_assert_uint_eq(status_uint("held-outside-pages"), HELD);
  }
  printf("# a gone (its QEMU may live) %u intervals: %" G_GUINT64_FORMAT " pages held, b's "
         "budget %" G_GUINT64_FORMAT " of %u\n", FROZEN, hmmv_core_get_held_dram_pages(bed.core),
         hmmvd_vms_lookup(bed.vms, "b")->last.budget_pages, DRAM);
  /* its source removes it without adopting the hold: the removal ends it */
  hmmvd_vms_remove(bed.vms, "a");
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);
  ck_assert_uint_eq(status_uint("held-outside-pages"), 0);
  budget = run_b(b, 3);
  ck_assert_uint_gt(budget, DRAM - HELD);
}
END_TEST

/* As standalone does at its next check: the hold taken over from the entry (held_pid set to
 * 0), the entry removed (the hold stays), then that QEMU is gone: the release ends it. */
START_TEST(test_gone_standalone_adopted_then_released)
{
  HmmvTracker *b = gone_a(HMMVD_SOURCE_STANDALONE);
  HmmvdVmInfo *ia = hmmvd_vms_lookup(bed.vms, "a");
  int pid = ia->held_pid;

  ck_assert_int_eq(pid, 4242);
  ia->held_pid = 0;
  hmmvd_vms_remove(bed.vms, "a");
  ck_assert_uint_le(run_b(b, 3), DRAM - HELD);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), HELD);
  hmmv_core_release_dram(bed.core, "a", pid);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);
  ck_assert_uint_gt(run_b(b, 3), DRAM - HELD);
}
END_TEST

/* A libvirt domain found gone is not held (libvirt's events add and remove it; nothing would
 * end a hold): b may take its DRAM. */
START_TEST(test_gone_libvirt_not_held)
{
  HmmvTracker *b = gone_a(HMMVD_SOURCE_LIBVIRT);

  ck_assert_int_eq(hmmvd_vms_lookup(bed.vms, "a")->held_pid, 0);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(bed.core), 0);
  ck_assert_uint_eq(status_uint("held-outside-pages"), 0);
  ck_assert_uint_gt(run_b(b, 3), DRAM - HELD);
}
END_TEST

/* A child that exited: reaped (a pid no process has), or not (a zombie: kill(pid, 0) still
 * succeeds on it, reaped by the caller). Called before the test allocates anything, so the
 * child leaks nothing when it exits (valgrind follows it). */
static int
exited_child(gboolean reap)
{
  pid_t child = fork();
  siginfo_t info = { 0 };

  ck_assert_int_ge(child, 0);
  if (child == 0)
    _exit(0);
  if (reap)
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
  else
    ck_assert_int_eq(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
  return child;
}

/* With a mover that is not the sim, the pid is looked at: standalone VMs of a live QEMU (this
 * process), of a dead one, of one that exited but is not reaped (a zombie), and of one whose
 * QEMU exited (a zombie too) while frozen (check_frozen_alive). Only the live one is held.
 * Before, the zombie's VM was held and the frozen zombie's never found gone (review 19,
 * finding 1). */
START_TEST(test_gone_pid_looked_at)
{
  int gone_pid = exited_child(TRUE);
  int zombie_pid = exited_child(FALSE);
  int frozen_pid = exited_child(FALSE);
  g_autoptr(GError) error = NULL;
  HmmvMover *gate = hmmv_gate_mover_new(bed.topo, 0, &error);
  HmmvCore *core;
  HmmvdVms *vms;
  HmmvTracker *live = hmmv_fake_tracker_new();
  HmmvTracker *dead = hmmv_fake_tracker_new();
  HmmvTracker *zombie = hmmv_fake_tracker_new();
  HmmvTracker *frozen = hmmv_fake_tracker_new();

  ck_assert_msg(gate != NULL, "%s", error ? error->message : "");
  core = hmmv_core_new(bed.topo, gate, &bed.config.params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  vms = hmmvd_vms_new(core, &bed.config);
  hmmvd_vms_set_mover(vms, gate);
  ck_assert(hmmvd_vms_add_with_tracker(vms, "live", HMMVD_SOURCE_STANDALONE, getpid(), NULL,
                                       hmmv_test_vm_new("live", VM_PAGES / 4), live, &error));
  ck_assert(hmmvd_vms_add_with_tracker(vms, "dead", HMMVD_SOURCE_STANDALONE, gone_pid, NULL,
                                       hmmv_test_vm_new("dead", VM_PAGES / 4), dead, &error));
  ck_assert(hmmvd_vms_add_with_tracker(vms, "zombie", HMMVD_SOURCE_STANDALONE, zombie_pid,
                                       NULL, hmmv_test_vm_new("zombie", VM_PAGES / 4), zombie,
                                       &error));
  ck_assert(hmmvd_vms_add_with_tracker(vms, "frozen", HMMVD_SOURCE_STANDALONE, frozen_pid,
                                       NULL, hmmv_test_vm_new("frozen", VM_PAGES / 4), frozen,
                                       &error));
  hmmvd_test_write_pages(live, 0, 256);
  hmmvd_test_write_pages(dead, 0, 256);
  hmmvd_test_write_pages(zombie, 0, 256);
  hmmvd_test_write_pages(frozen, 0, 256);
  hmmvd_vms_run_interval(vms);
  ck_assert_uint_eq(hmmvd_vms_lookup(vms, "live")->last.dram_pages, 256);

  hmmv_fake_tracker_fail_next(frozen, HMMV_ERROR_TIMED_OUT);
  hmmvd_vms_run_interval(vms);
  ck_assert(hmmvd_vms_lookup(vms, "frozen")->frozen);
  hmmv_fake_tracker_fail_next(live, HMMV_ERROR_GONE);
  hmmv_fake_tracker_fail_next(dead, HMMV_ERROR_GONE);
  hmmv_fake_tracker_fail_next(zombie, HMMV_ERROR_GONE);
  hmmvd_vms_run_interval(vms);   /* "frozen" found exited before it, the others in it */
  ck_assert(!hmmvd_vms_lookup(vms, "live")->in_core);
  ck_assert(!hmmvd_vms_lookup(vms, "dead")->in_core);
  ck_assert(!hmmvd_vms_lookup(vms, "zombie")->in_core);
  ck_assert_msg(!hmmvd_vms_lookup(vms, "frozen")->in_core, "a frozen VM whose QEMU is a "
                "zombie is not found gone: %s", hmmvd_vms_lookup(vms, "frozen")->status);
  ck_assert_msg(strstr(hmmvd_vms_lookup(vms, "frozen")->status, "exited while frozen") != NULL,
                "%s", hmmvd_vms_lookup(vms, "frozen")->status);
  ck_assert_int_eq(hmmvd_vms_lookup(vms, "live")->held_pid, getpid());
  ck_assert_int_eq(hmmvd_vms_lookup(vms, "dead")->held_pid, 0);
  ck_assert_msg(hmmvd_vms_lookup(vms, "zombie")->held_pid == 0, "a zombie QEMU's VM held "
                "(held_pid %d)", hmmvd_vms_lookup(vms, "zombie")->held_pid);
  ck_assert_int_eq(hmmvd_vms_lookup(vms, "frozen")->held_pid, 0);
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(core), 256);
  /* replaced (another QEMU listed under the name) before its source adopted it: ended */
  hmmvd_vms_add_unmanaged(vms, "live", HMMVD_SOURCE_STANDALONE, "QEMU lacks the hmmv patches");
  ck_assert_uint_eq(hmmv_core_get_held_dram_pages(core), 0);

  hmmvd_vms_free(vms);
  hmmv_core_free(core);
  hmmv_mover_free(gate);
  ck_assert_int_eq(waitpid(zombie_pid, NULL, 0), zombie_pid);
  ck_assert_int_eq(waitpid(frozen_pid, NULL, 0), frozen_pid);
}
END_TEST

int
main(void)
{
  Suite *suite = suite_create("vms-frozen");
  TCase *tc = tcase_create("frozen");

  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_frozen_keeps_its_dram_counted);
  tcase_add_test(tc, test_frozen_removed);
  tcase_add_test(tc, test_gone_standalone_held);
  tcase_add_test(tc, test_gone_standalone_adopted_then_released);
  tcase_add_test(tc, test_gone_libvirt_not_held);
  tcase_add_test(tc, test_gone_pid_looked_at);
  suite_add_tcase(suite, tc);
  return hmmv_test_run(suite);
}
