/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket stays served while the loop waits (issue 7, a loop that stays
 * responsive): on moves in flight on the core's worker, on DAMON's sysfs lock held by someone
 * else while a VM's kdamond is set up or given back. Counts events; the 60 s deadlines are
 * liveness guards. The requests themselves and the socket's bounds: test-control.c.
 */
#include "config.h"
#include "control-client.h"
#include "damon-fake.h"
#include "gate-mover.h"
#include "libvirt.h"
#include "quota.h"
#include "vms.h"

#include <glib/gstdio.h>
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static gboolean
count_event(gpointer data)
{
  (*(guint *)data)++;
  return G_SOURCE_REMOVE;
}

static void
interval_finished(gpointer data)
{
  (*(guint *)data)++;
}

#define DAMON_HVA 0x7f0000000000ull

/* VM "reader", 256 pages at DAMON_HVA, whose writes come from a fake tracker and whose reads
 * from DAMON (vaddr, 10 ms) on a fake sysfs tree where pages 16..47 are read. */
typedef struct {
  char *run_dir;
  DamonFake *fake;
  HmmvSysfs *fs;
  HmmvTracker *writes;    /* borrowed: the combined tracker owns it */
  HmmvTracker *tracker;   /* the combined tracker: handed over with the VM */
  HmmvVm *vm;
} DamonReader;

static void
damon_reader_init(DamonReader *r)
{
  g_autoptr(GError) error = NULL;
  guint64 accessed[] = { DAMON_HVA + 16 * 4096, DAMON_HVA + 48 * 4096 };
  HmmvDamonOptions options = { .ops = HMMV_DAMON_VADDR, .interval_ms = 10 };

  r->run_dir = g_dir_make_tmp("hmmv-test-control-damon-XXXXXX", NULL);
  ck_assert_ptr_nonnull(r->run_dir);
  r->fs = damon_fake_new("vaddr fvaddr paddr", &r->fake);
  options.fs = r->fs;
  options.run_dir = r->run_dir;
  r->writes = hmmv_fake_tracker_new();
  r->tracker = hmmv_combined_tracker_new(r->writes, hmmv_damon_tracker_new(&options, &error));
  ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(r->tracker));
  r->vm = hmmv_vm_new("reader");
  ck_assert(hmmv_vm_add_region(r->vm, "pc.ram", 0, DAMON_HVA, 256 * 4096ull, 4096, &error));
  ck_assert(hmmv_vm_finalize_layout(r->vm, &error));
  damon_fake_set_accessed(r->fake, accessed, 1);
}

/* After the VM left (its table entry owns the tracker and the VM). */
static void
damon_reader_clear(DamonReader *r)
{
  hmmv_sysfs_unref(r->fs);
  hmmv_test_remove_tree(r->run_dir);
  g_free(r->run_dir);
}

/* Issue 7 (a loop that stays responsive): a VM whose reads come from DAMON joins the core
 * while another user holds DAMON's sysfs lock (damon_fake_hold_lock: every state and nr_*
 * write fails with EBUSY, as mm/damon/sysfs.c's mutex_trylock makes them). The kdamond's
 * setup runs on the read tracker's thread: the VM is managed at once, the control socket
 * answers status, the main loop dispatches its sources and an interval runs, while the
 * setup is still refused and still trying; once the lock is free the setup completes and
 * the VM's reads arrive. Before, the setup ran inside hmmv_core_add_vm on the main loop:
 * each write waited out the lock (250 x 20 ms), the first one gave up, nothing was served
 * meanwhile and the VM was left with writes only (the reads never arrive). Counts events;
 * the 60 s deadlines are liveness guards. */
START_TEST(test_served_while_damon_setup_waits)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *reply = NULL;
  DamonReader r;
  const char *const status[] = { "{\"command\":\"status\"}\n" };
  HmmvdControl *control;
  const HmmvdVmInfo *info;
  guint events = 0, finished = 0, refused;
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  damon_reader_init(&r);
  control = control_fixture_start();

  damon_fake_hold_lock(r.fake, TRUE);
  ck_assert_msg(hmmvd_vms_add_with_tracker(control_fx.bed.vms, "reader", HMMVD_SOURCE_STANDALONE,
                                           getpid(), NULL, r.vm, r.tracker, &error),
                "%s", error != NULL ? error->message : "");
  info = hmmvd_vms_lookup(control_fx.bed.vms, "reader");
  ck_assert(info->in_core);
  ck_assert_str_eq(info->status, "managed");

  /* the lock is held: the main loop serves all the same */
  reply = control_talk(status, 1, 1, 0);
  ck_assert_msg(g_str_has_prefix(reply, "{\"return\":{\"interval-ms\""), "%s", reply);
  g_idle_add(count_event, &events);
  while (events == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(events, 1);
  hmmv_fake_tracker_queue_write(r.writes, 1);
  ck_assert(hmmvd_vms_start_interval(control_fx.bed.vms, interval_finished, &finished));
  while (finished == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(finished, 1);
  ck_assert_uint_eq(info->last.read, 0);
  /* ... while the setup is still refused, still trying, and has got nowhere (the tracker's
   * thread may not have made its first write yet: waited for, an event, not a time) */
  while ((refused = damon_fake_busy_refused(r.fake)) == 0 && g_get_monotonic_time() < deadline)
    g_usleep(1000);
  ck_assert_uint_gt(refused, 0);
  while (damon_fake_busy_refused(r.fake) == refused && g_get_monotonic_time() < deadline)
    g_usleep(1000);
  ck_assert_uint_gt(damon_fake_busy_refused(r.fake), refused);
  ck_assert_str_eq(damon_fake_get(r.fake, "kdamonds/nr_kdamonds"), "0");
  ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(r.tracker));

  /* the lock is free: the setup completes and the reads arrive */
  damon_fake_hold_lock(r.fake, FALSE);
  while (info->last.read == 0 && g_get_monotonic_time() < deadline) {
    guint done = finished;

    hmmv_fake_tracker_queue_write(r.writes, 1);
    ck_assert(hmmvd_vms_start_interval(control_fx.bed.vms, interval_finished, &finished));
    while (finished == done && g_get_monotonic_time() < deadline)
      g_main_context_iteration(NULL, TRUE);
    ck_assert_ptr_nonnull(hmmv_combined_tracker_get_reads(r.tracker));
    g_usleep(10000);
  }
  ck_assert_uint_eq(info->last.read, 32);
  ck_assert_str_eq(damon_fake_get(r.fake, "kdamonds/0/state"), "on");

  /* the VM leaves: its kdamond is given back (by the tracker's thread) and the tree is as
   * it was */
  hmmvd_vms_remove(control_fx.bed.vms, "reader");
  ck_assert_ptr_null(hmmvd_vms_lookup(control_fx.bed.vms, "reader"));
  ck_assert(hmmv_damon_wait_released(60000));
  ck_assert_str_eq(damon_fake_get(r.fake, "kdamonds/nr_kdamonds"), "0");
  hmmvd_control_free(control);
  damon_reader_clear(&r);
}
END_TEST

/* A VM leaves while DAMON's sysfs lock is held by someone else (another VM's command,
 * another tool): hmmvd's main loop makes no DAMON write at all (before, stopping the tracker
 * made up to two of them there, "off" tried for 1 s and nr_contexts for 5 s, and then the
 * record was dropped with the kdamond still on); it serves status, dispatches its sources
 * and runs an interval for the VM that stays, while the tracker's thread waits out the lock;
 * once the lock is free the kdamond is off and the tree is as it was. Counts events and
 * refused writes; the 60 s deadlines are liveness guards. */
START_TEST(test_served_while_damon_release_waits)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *reply = NULL;
  DamonReader r;
  HmmvTracker *stays = hmmv_fake_tracker_new();
  const char *const status[] = { "{\"command\":\"status\"}\n" };
  HmmvdControl *control;
  const HmmvdVmInfo *info;
  guint events = 0, finished = 0, refused;
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  damon_reader_init(&r);
  control = control_fixture_start();
  ck_assert_msg(hmmvd_vms_add_with_tracker(control_fx.bed.vms, "reader", HMMVD_SOURCE_STANDALONE,
                                           getpid(), NULL, r.vm, r.tracker, &error),
                "%s", error != NULL ? error->message : "");
  ck_assert(hmmvd_vms_add_with_tracker(control_fx.bed.vms, "stays", HMMVD_SOURCE_STANDALONE,
                                       getpid(), NULL, hmmv_test_vm_new("stays", 256), stays,
                                       &error));
  info = hmmvd_vms_lookup(control_fx.bed.vms, "reader");
  ck_assert(info->in_core);
  ck_assert(hmmv_damon_tracker_wait_setup(hmmv_combined_tracker_get_reads(r.tracker), &error));
  ck_assert_str_eq(damon_fake_get(r.fake, "kdamonds/0/state"), "on");

  /* the lock is held; the VM leaves: the main loop writes nothing to DAMON */
  damon_fake_hold_lock(r.fake, TRUE);
  refused = damon_fake_busy_refused(r.fake);
  damon_fake_watch_thread(r.fake, g_thread_self());
  hmmvd_vms_remove(control_fx.bed.vms, "reader");
  ck_assert_ptr_null(hmmvd_vms_lookup(control_fx.bed.vms, "reader"));
  ck_assert_uint_eq(damon_fake_watched_attempts(r.fake), 0);

  /* ... and serves meanwhile, while the tracker's thread is refused and tries again */
  reply = control_talk(status, 1, 1, 0);
  ck_assert_msg(g_str_has_prefix(reply, "{\"return\":{\"interval-ms\""), "%s", reply);
  g_idle_add(count_event, &events);
  while (events == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(events, 1);
  hmmv_fake_tracker_queue_write(stays, 1);
  ck_assert(hmmvd_vms_start_interval(control_fx.bed.vms, interval_finished, &finished));
  while (finished == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(finished, 1);
  ck_assert_uint_eq(damon_fake_watched_attempts(r.fake), 0);
  /* more refusals than the old "off" tried (50): events, not time */
  while (damon_fake_busy_refused(r.fake) < refused + 60 && g_get_monotonic_time() < deadline)
    g_usleep(1000);
  ck_assert_uint_ge(damon_fake_busy_refused(r.fake), refused + 60);
  ck_assert_str_eq(damon_fake_get(r.fake, "kdamonds/0/state"), "on");

  /* the lock is free: the thread turns the kdamond off and gives it back */
  damon_fake_hold_lock(r.fake, FALSE);
  ck_assert(hmmv_damon_wait_released(60000));
  damon_fake_watch_thread(r.fake, NULL);
  ck_assert_str_eq(damon_fake_get(r.fake, "kdamonds/nr_kdamonds"), "0");
  hmmvd_vms_remove(control_fx.bed.vms, "stays");
  hmmvd_control_free(control);
  damon_reader_clear(&r);
}
END_TEST

/* libvirt's in-process test driver (no libvirtd): one set of domains per process, shared by
 * every connection to test:///default, whose domain events go out through libvirt's default
 * event implementation, which libvirt 9 runs on the default GMainContext (libvirt.h). hmmvd's
 * connection gets them through the callbacks daemon/libvirt.c registered, as from libvirtd.
 * The driver has no QEMU monitor: a domain's start-up fails at its first QMP exchange. */
#define LIBVIRT_TEST_URI "test:///default"
#define LATE_DOMAIN "hmmv-late"
static const char late_domain_xml[] =
  "<domain type='test'><name>" LATE_DOMAIN "</name><memory unit='KiB'>4096</memory>"
  "<os><type>hvm</type></os></domain>";

/* The table's entry for the libvirt domain, once its start-up is over (listed, no longer
 * "starting"); NULL at the deadline. */
static const HmmvdVmInfo *
wait_domain_started(HmmvdVms *vms, const char *name, gint64 deadline)
{
  const HmmvdVmInfo *info;

  while (((info = hmmvd_vms_lookup(vms, name)) == NULL ||
          g_str_has_prefix(info->status, "starting")) &&
         g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  return info != NULL && !g_str_has_prefix(info->status, "starting") ? info : NULL;
}

/* Issue 7, the loop at fleet scale: the interval's moves run on the core's worker. A move
 * batch is held in flight (the gate mover blocks until released); meanwhile the control
 * socket answers status, the main loop dispatches its sources, hmmvd's libvirt connection
 * (to the test driver) handles real domain events through the callbacks it registered with
 * libvirt (a domain starts, its hmmv metadata changes, it stops), the table takes a VM that
 * comes (the call a standalone connect makes) and one paused; a placement request, which
 * needs the VMs' page state, waits for the interval and is answered after it. Before, the
 * interval ran on the main loop: nothing was answered and no event handled until the moves
 * were done. Counts events only; the 60 s deadlines are liveness guards. */
START_TEST(test_served_while_moves_in_flight)
{
  g_autoptr(GError) error = NULL;
  HmmvdConfig config;
  HmmvMover *gate;
  HmmvCore *core;
  HmmvdVms *vms;
  HmmvdControl *control;
  HmmvTracker *tracker = hmmv_fake_tracker_new();
  const char *const status[] = { "{\"command\":\"status\"}\n" };
  const char *const placement_line[] = { "{\"command\":\"placement\",\"vm\":\"busy\"}\n" };
  g_autofree char *reply = NULL, *placement_reply = NULL;
  GThread *placement_thread;
  ControlJob *placement;
  const HmmvdVmInfo *info;
  g_autofree char *run_dir = NULL, *pid_path = NULL, *pid_text = NULL, *quota_xml = NULL;
  g_autofree char *uuid = NULL;
  HmmvdLibvirt *lv;
  virConnectPtr peer;
  virDomainPtr dom;
  HmmvQuota quota;
  guint events = 0, finished = 0;
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  hmmvd_config_init(&config);
  /* QEMU's pid files: none but the one written for LATE_DOMAIN below */
  run_dir = g_dir_make_tmp("hmmv-test-served-libvirt-XXXXXX", &error);
  ck_assert_msg(run_dir != NULL, "%s", error ? error->message : "");
  g_free(config.libvirt_uri);
  config.libvirt_uri = g_strdup(LIBVIRT_TEST_URI);
  g_free(config.libvirt_run_dir);
  config.libvirt_run_dir = g_strdup(run_dir);
  config.params.migrate_mbps = 0;          /* no cap: every planned move is one held batch */
  config.params.host_migrate_mbps = 0;
  config.default_quota.max_pages = 256;    /* 1 MiB: 768 of its 1,024 DRAM pages must go */
  gate = hmmv_gate_mover_new(control_fx.bed.topo, 0, &error);
  ck_assert_msg(gate != NULL, "%s", error ? error->message : "");
  core = hmmv_core_new(control_fx.bed.topo, gate, &config.params, 0, &error);
  ck_assert_msg(core != NULL, "%s", error ? error->message : "");
  vms = hmmvd_vms_new(core, &config);
  ck_assert(hmmvd_vms_add_with_tracker(vms, "busy", HMMVD_SOURCE_STANDALONE, 1, NULL,
                                       hmmv_test_vm_new("busy", 2048), tracker, &error));
  for (guint64 p = 0; p < 2048; p++)
    hmmv_fake_tracker_queue_write(tracker, p);   /* the first 1,024 land on the 4 MiB DRAM */
  control = hmmvd_control_new(vms, control_fx.bed.topo, "gate", control_fx.path, &error);
  ck_assert_msg(control != NULL, "%s", error ? error->message : "");
  lv = hmmvd_libvirt_new(vms, &config, control_fx.bed.topo, &error);
  ck_assert_msg(lv != NULL, "%s", error ? error->message : "");
  /* connected on libvirt's calls thread, the result applied on this one (60 s: liveness) */
  {
    gint64 until = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while (!hmmvd_libvirt_is_connected(lv) && g_get_monotonic_time() < until)
      g_main_context_iteration(NULL, TRUE);
  }
  ck_assert(hmmvd_libvirt_is_connected(lv));
  peer = virConnectOpen(LIBVIRT_TEST_URI);   /* the test's own, as virsh would be */
  ck_assert_ptr_nonnull(peer);
  ck_assert_ptr_null(hmmvd_vms_lookup(vms, LATE_DOMAIN));

  hmmv_gate_mover_close(gate);
  ck_assert(hmmvd_vms_start_interval(vms, interval_finished, &finished));
  while (hmmv_gate_mover_get_blocked(gate) == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(hmmv_gate_mover_get_blocked(gate), 1);
  ck_assert(hmmvd_vms_interval_running(vms));

  /* the batch is in flight: the main loop serves */
  placement = control_job_start(placement_line, 1, 1, 0, &placement_thread);
  reply = control_talk(status, 1, 1, 0);
  ck_assert_msg(g_str_has_prefix(reply, "{\"return\":{\"interval-ms\""), "%s", reply);
  ck_assert_msg(strstr(reply, "\"interval-running\":true") != NULL, "%s", reply);
  g_idle_add(count_event, &events);
  while (events == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(events, 1);
  /* a domain starts: libvirt's lifecycle event lists it and its start-up runs, on a QMP
   * worker, and fails there (the test driver has no monitor); all handled meanwhile */
  pid_path = g_build_filename(run_dir, LATE_DOMAIN ".pid", NULL);
  pid_text = g_strdup_printf("%d\n", (int)getpid());
  ck_assert(g_file_set_contents(pid_path, pid_text, -1, NULL));
  dom = virDomainCreateXML(peer, late_domain_xml, 0);
  ck_assert_ptr_nonnull(dom);
  uuid = g_malloc0(VIR_UUID_STRING_BUFLEN);
  ck_assert_int_eq(virDomainGetUUIDString(dom, uuid), 0);
  info = wait_domain_started(vms, LATE_DOMAIN, deadline);
  ck_assert_ptr_nonnull(info);
  ck_assert_int_eq(info->source, HMMVD_SOURCE_LIBVIRT);
  ck_assert_str_eq(info->uuid, uuid);
  ck_assert_int_eq(info->pid, getpid());
  ck_assert(!info->in_core);
  ck_assert_msg(g_str_has_prefix(info->status, "tracking failed: "), "%s", info->status);
  /* its hmmv metadata is set: the metadata event's quota is taken */
  quota = config.default_quota;
  quota.max_pages = 2 * HMMVD_PAGES_PER_MIB;
  ck_assert(info->quota.max_pages != quota.max_pages);
  quota_xml = hmmvd_quota_format(&quota, NULL);
  ck_assert_int_eq(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, quota_xml,
                                        HMMVD_METADATA_KEY, HMMVD_METADATA_URI,
                                        VIR_DOMAIN_AFFECT_LIVE), 0);
  while ((info = hmmvd_vms_lookup(vms, LATE_DOMAIN)) != NULL &&
         info->quota.max_pages != quota.max_pages && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_ptr_nonnull(info);
  ck_assert_uint_eq(info->quota.max_pages, quota.max_pages);
  ck_assert_ptr_null(info->quota_error);
  /* it stops: the lifecycle event takes it out of the table */
  ck_assert_int_eq(virDomainDestroy(dom), 0);
  virDomainFree(dom);
  while (hmmvd_vms_lookup(vms, LATE_DOMAIN) != NULL && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_ptr_null(hmmvd_vms_lookup(vms, LATE_DOMAIN));
  ck_assert_uint_eq(hmmv_gate_mover_get_blocked(gate), 1);
  ck_assert_uint_eq(finished, 0);
  /* the table call a standalone connect makes: a VM comes; and one pauses */
  ck_assert(hmmvd_vms_add_with_tracker(vms, "late", HMMVD_SOURCE_STANDALONE, 2, NULL,
                                       hmmv_test_vm_new("late", 512), hmmv_fake_tracker_new(),
                                       &error));
  info = hmmvd_vms_lookup(vms, "late");
  ck_assert(!info->in_core);
  ck_assert_msg(g_str_has_prefix(info->status, "starting"), "%s", info->status);
  ck_assert(hmmvd_vms_set_paused(vms, "busy", TRUE, &error));
  /* a tick meanwhile is skipped, not queued */
  ck_assert(!hmmvd_vms_start_interval(vms, interval_finished, &finished));
  ck_assert_uint_eq(hmmvd_vms_get_intervals_skipped(vms), 1);
  ck_assert(!g_atomic_int_get(&placement->done));   /* it waits for the interval */
  ck_assert_uint_eq(hmmv_gate_mover_get_blocked(gate), 1);
  ck_assert_uint_eq(finished, 0);

  hmmv_gate_mover_open(gate);
  while (finished == 0 && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  ck_assert_uint_eq(finished, 1);
  placement_reply = control_job_finish(placement, placement_thread);
  ck_assert_msg(g_str_has_prefix(placement_reply, "{\"return\":{"), "%s", placement_reply);
  info = hmmvd_vms_lookup(vms, "busy");
  ck_assert_uint_eq(info->last.demoted, 768);
  ck_assert_uint_eq(info->last.dram_pages, 256);
  info = hmmvd_vms_lookup(vms, "late");
  ck_assert_msg(info->in_core, "%s", info->status);
  ck_assert_str_eq(info->status, "managed");

  hmmvd_control_free(control);
  hmmvd_libvirt_free(lv);
  virConnectClose(peer);
  hmmvd_vms_free(vms);
  hmmv_core_free(core);
  hmmv_mover_free(gate);
  hmmvd_config_clear(&config);
  ck_assert_int_eq(g_unlink(pid_path), 0);
  ck_assert_int_eq(g_rmdir(run_dir), 0);
}
END_TEST

/* The socket cases need root: the server serves root only. */
static Suite *
control_served_suite(void)
{
  Suite *s = suite_create("control-served");
  TCase *tc = tcase_create("served");

  tcase_add_checked_fixture(tc, control_fixture_setup, control_fixture_teardown);
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, test_served_while_moves_in_flight);
  tcase_add_test(tc, test_served_while_damon_setup_waits);
  tcase_add_test(tc, test_served_while_damon_release_waits);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  if (geteuid() != 0)
    return hmmv_test_skip_all("the control socket serves root only");
  return hmmv_test_run(control_served_suite());
}
