/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvd's calls into libvirtd run on their own thread (daemon/libvirt-calls.c): a call that
 * does not return (here one held on a gate, as a virDomain* call to a SIGSTOPped libvirtd
 * is) never holds the main loop; past its deadline its connection is given up, what it
 * learns is dropped, and one new connection is made once the thread is free again; a quota
 * from set-quota made meanwhile is not lost: written once connected again. Through libvirt's
 * in-process test driver (test:///default), as test-libvirt.c; the real libvirtd stopped with
 * SIGSTOP is tests/integration/test-libvirt-hung.sh. */
#include "hmmvd-test.h"
#include "libvirt-private.h"
#include "quota.h"

#include <glib/gstdio.h>
#include <libvirt/virterror.h>
#include <string.h>

#define TEST_URI "test:///default"
#define DOMAIN "hmmv-calls-a"
#define DOMAIN_UUID "6a1c3e52-6f53-4a0e-8d21-0000000ca115"

typedef struct {
  GMutex lock;
  GCond cond;
  gboolean open;
  gboolean entered;
  gboolean done_ran;            /* the held call's answer reached the main thread */
} Gate;

static Gate gate;

static void
held_run(HmmvdLibvirt *lv, LvCall *call, virConnectPtr conn)
{
  g_mutex_lock(&gate.lock);
  gate.entered = TRUE;
  g_cond_broadcast(&gate.cond);
  while (!gate.open)
    g_cond_wait(&gate.cond, &gate.lock);
  g_mutex_unlock(&gate.lock);
}

static void
held_done(HmmvdLibvirt *lv, LvCall *call)
{
  gate.done_ran = TRUE;
}

static gboolean
count_tick(gpointer data)
{
  (*(guint *)data)++;
  return G_SOURCE_CONTINUE;
}

static gboolean
gate_entered(void)
{
  gboolean entered;

  g_mutex_lock(&gate.lock);
  entered = gate.entered;
  g_mutex_unlock(&gate.lock);
  return entered;
}

/* The main loop iterated until cond(data) or the deadline (60 s: liveness only). */
static gboolean
spin_until(gboolean (*cond)(gpointer), gpointer data)
{
  gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

  while (!cond(data) && g_get_monotonic_time() < deadline)
    g_main_context_iteration(NULL, TRUE);
  return cond(data);
}

static gboolean
is_connected(gpointer lv)
{
  return hmmvd_libvirt_is_connected(lv);
}

static gboolean
is_given_up(gpointer lv)
{
  return !hmmvd_libvirt_is_connected(lv);
}

static gboolean
is_listed(gpointer vms)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, DOMAIN);

  return info != NULL && !g_str_has_prefix(info->status, "starting");
}

static gboolean
quota_applied(gpointer vms)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, DOMAIN);

  return info != NULL && info->quota.max_pages == 3 * HMMVD_PAGES_PER_MIB;
}

START_TEST(test_hung_call_never_holds_main_loop)
{
  g_autofree char *run_dir = g_dir_make_tmp("hmmv-test-libvirt-calls-XXXXXX", NULL);
  g_autofree char *pid_path = NULL;
  g_autofree char *pid_text = g_strdup_printf("%d\n", (int)getpid());
  g_autofree char *xml = NULL;
  g_autoptr(GError) error = NULL;
  HmmvdTestBed bed;
  HmmvdLibvirt *lv;
  virConnectPtr peer;
  virDomainPtr dom;
  char *meta;
  guint ticks = 0, ticks_held;
  guint tick_source;
  HmmvQuota quota;

  g_mutex_init(&gate.lock);
  g_cond_init(&gate.cond);
  ck_assert(run_dir != NULL);
  pid_path = g_build_filename(run_dir, DOMAIN ".pid", NULL);
  ck_assert(g_file_set_contents(pid_path, pid_text, -1, NULL));
  hmmvd_test_bed_init(&bed, 64ull << 20, 256ull << 20, NULL);
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_strdup(TEST_URI);
  g_free(bed.config.libvirt_run_dir);
  bed.config.libvirt_run_dir = g_strdup(run_dir);
  bed.config.reconnect_ms = 100;
  peer = virConnectOpen(TEST_URI);
  ck_assert_ptr_nonnull(peer);
  xml = g_strdup_printf("<domain type='test'><name>" DOMAIN "</name><uuid>" DOMAIN_UUID
                        "</uuid><memory unit='KiB'>4096</memory><os><type>hvm</type></os>"
                        "</domain>");
  dom = virDomainCreateXML(peer, xml, 0);
  ck_assert_msg(dom != NULL, "%s", virGetLastErrorMessage());

  lv = hmmvd_libvirt_new(bed.vms, &bed.config, bed.topo, &error);
  ck_assert_msg(lv != NULL, "%s", error ? error->message : "");
  hmmvd_libvirt_set_call_deadline(lv, 300);
  ck_assert(spin_until(is_connected, lv));
  /* discovered: its start-up fails at the first QMP exchange (the test driver has no
   * monitor), and it stays listed as a libvirt VM, which set-quota writes for */
  ck_assert(spin_until(is_listed, bed.vms));

  /* a call that does not return, on the connection hmmvd has */
  hmmvd_libvirt_call_push(lv, hmmvd_libvirt_call_new(lv, (guint)g_atomic_int_get(&lv->gen),
                                                     held_run, held_done));
  tick_source = g_timeout_add(10, count_tick, &ticks);
  while (!gate_entered())
    g_main_context_iteration(NULL, FALSE);
  /* past its deadline the connection is given up, the main loop serving all along */
  ck_assert(spin_until(is_given_up, lv));
  ticks_held = ticks;
  ck_assert_msg(ticks_held > 0, "the main loop ran no tick while the call was held");
  /* set-quota meanwhile: taken at once, kept for the next connection */
  quota = bed.config.default_quota;
  quota.max_pages = 3 * HMMVD_PAGES_PER_MIB;
  ck_assert_msg(hmmvd_vms_request_quota(bed.vms, DOMAIN, &quota, &error), "%s",
                error ? error->message : "");
  /* counted, not timed: more ticks while still held (reconnect attempts queue behind it) */
  {
    guint until = ticks + 10;
    gint64 deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    while (ticks < until && g_get_monotonic_time() < deadline)
      g_main_context_iteration(NULL, TRUE);
    ck_assert_uint_ge(ticks, until);
  }
  ck_assert(!hmmvd_libvirt_is_connected(lv));
  meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                              VIR_DOMAIN_AFFECT_LIVE);
  ck_assert_msg(meta == NULL, "written while the calls thread was held: %s", meta);

  /* the call returns: a new connection, the quota written and applied by its event */
  g_mutex_lock(&gate.lock);
  gate.open = TRUE;
  g_cond_broadcast(&gate.cond);
  g_mutex_unlock(&gate.lock);
  ck_assert(spin_until(is_connected, lv));
  ck_assert(spin_until(quota_applied, bed.vms));
  meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                              VIR_DOMAIN_AFFECT_LIVE);
  ck_assert_msg(meta != NULL && strstr(meta, "dram-max-mib=\"3\"") != NULL, "%s",
                meta != NULL ? meta : virGetLastErrorMessage());
  free(meta);
  ck_assert_msg(!gate.done_ran, "the answer of a connection given up was applied");

  g_source_remove(tick_source);
  ck_assert_int_eq(virDomainDestroy(dom), 0);
  virDomainFree(dom);
  hmmvd_libvirt_free(lv);
  virConnectClose(peer);
  hmmvd_test_bed_clear(&bed);
  ck_assert_int_eq(g_unlink(pid_path), 0);
  ck_assert_int_eq(g_rmdir(run_dir), 0);
  g_cond_clear(&gate.cond);
  g_mutex_clear(&gate.lock);
}
END_TEST

static gboolean
said_unreachable(gpointer lv)
{
  return ((HmmvdLibvirt *)lv)->said_unreachable;
}

static gboolean
is_connecting(gpointer lv)
{
  return ((HmmvdLibvirt *)lv)->connecting != NULL;
}

/* An ask queued while a connect is under way, and that connect fails: the ask is dropped with
 * its connection, and so is its count of calls under way about the domain (lv->asking), which
 * retry_dropped reads as "asked already" (review 17, finding 4: it stayed, and a frozen or
 * dropped domain was never asked about again until the connection was lost once more). */
START_TEST(test_failed_connect_forgets_its_asks)
{
  g_autoptr(GError) error = NULL;
  HmmvdTestBed bed;
  HmmvdLibvirt *lv;
  g_autofree char *good_uri = NULL;

  g_mutex_init(&gate.lock);
  g_cond_init(&gate.cond);
  gate.open = gate.entered = gate.done_ran = FALSE;
  hmmvd_test_bed_init(&bed, 64ull << 20, 256ull << 20, NULL);
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_strdup(TEST_URI);
  bed.config.reconnect_ms = 100;
  good_uri = g_strdup(TEST_URI);

  lv = hmmvd_libvirt_new(bed.vms, &bed.config, bed.topo, &error);
  ck_assert_msg(lv != NULL, "%s", error ? error->message : "");
  hmmvd_libvirt_set_call_deadline(lv, 300);
  ck_assert(spin_until(is_connected, lv));
  /* the calls thread held: the connection given up, the next connect queued behind it to a
   * URI that fails (a test driver file that does not exist) */
  hmmvd_libvirt_call_push(lv, hmmvd_libvirt_call_new(lv, (guint)g_atomic_int_get(&lv->gen),
                                                     held_run, held_done));
  while (!gate_entered())
    g_main_context_iteration(NULL, FALSE);
  ck_assert(spin_until(is_given_up, lv));
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_strdup("test:///nonexistent/hmmv-no-such-file.xml");
  ck_assert(spin_until(is_connecting, lv));
  /* an ask meanwhile (as a start-up's end or a restart makes), for that connection */
  hmmvd_libvirt_ask(lv, LV_ASK_RETRY, "hmmv-calls-nobody", NULL);
  ck_assert(g_hash_table_contains(lv->asking, "hmmv-calls-nobody"));
  g_mutex_lock(&gate.lock);
  gate.open = TRUE;
  g_cond_broadcast(&gate.cond);
  g_mutex_unlock(&gate.lock);
  ck_assert(spin_until(said_unreachable, lv));
  /* the connect failed; the next one succeeds */
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_steal_pointer(&good_uri);
  ck_assert(spin_until(is_connected, lv));
  ck_assert_msg(!g_hash_table_contains(lv->asking, "hmmv-calls-nobody"),
                "an ask of a failed connect is still counted as under way");
  ck_assert(!gate.done_ran);

  hmmvd_libvirt_free(lv);
  hmmvd_test_bed_clear(&bed);
  g_cond_clear(&gate.cond);
  g_mutex_clear(&gate.lock);
}
END_TEST

static gboolean
no_write_pending(gpointer lv)
{
  return g_hash_table_size(((HmmvdLibvirt *)lv)->writes) == 0;
}

static gboolean
quota_max_5(gpointer vms)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, DOMAIN);

  return info != NULL && info->quota.max_pages == 5 * HMMVD_PAGES_PER_MIB;
}

/* A set-quota kept while hmmvd is not connected, then a newer element written in libvirt by
 * someone else (virsh metadata): after the reconnect the kept write is dropped, the newer
 * element stays in libvirt and applies (review 17, finding 2: it was written over it). */
START_TEST(test_late_write_never_overwrites_newer)
{
  g_autofree char *run_dir = g_dir_make_tmp("hmmv-test-libvirt-calls-XXXXXX", NULL);
  g_autofree char *pid_path = NULL;
  g_autofree char *pid_text = g_strdup_printf("%d\n", (int)getpid());
  g_autofree char *xml = NULL;
  g_autofree char *newer = NULL;
  g_autoptr(GError) error = NULL;
  HmmvdTestBed bed;
  HmmvdLibvirt *lv;
  virConnectPtr peer;
  virDomainPtr dom;
  char *meta;
  HmmvQuota quota;

  g_mutex_init(&gate.lock);
  g_cond_init(&gate.cond);
  gate.open = gate.entered = gate.done_ran = FALSE;
  ck_assert(run_dir != NULL);
  pid_path = g_build_filename(run_dir, DOMAIN ".pid", NULL);
  ck_assert(g_file_set_contents(pid_path, pid_text, -1, NULL));
  hmmvd_test_bed_init(&bed, 64ull << 20, 256ull << 20, NULL);
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_strdup(TEST_URI);
  g_free(bed.config.libvirt_run_dir);
  bed.config.libvirt_run_dir = g_strdup(run_dir);
  bed.config.reconnect_ms = 100;
  peer = virConnectOpen(TEST_URI);
  ck_assert_ptr_nonnull(peer);
  xml = g_strdup_printf("<domain type='test'><name>" DOMAIN "</name><uuid>" DOMAIN_UUID
                        "</uuid><memory unit='KiB'>4096</memory><os><type>hvm</type></os>"
                        "</domain>");
  dom = virDomainCreateXML(peer, xml, 0);
  ck_assert_msg(dom != NULL, "%s", virGetLastErrorMessage());

  lv = hmmvd_libvirt_new(bed.vms, &bed.config, bed.topo, &error);
  ck_assert_msg(lv != NULL, "%s", error ? error->message : "");
  hmmvd_libvirt_set_call_deadline(lv, 300);
  ck_assert(spin_until(is_connected, lv));
  ck_assert(spin_until(is_listed, bed.vms));
  /* not connected (calls thread held, the connection given up): set-quota max 3 is kept */
  hmmvd_libvirt_call_push(lv, hmmvd_libvirt_call_new(lv, (guint)g_atomic_int_get(&lv->gen),
                                                     held_run, held_done));
  while (!gate_entered())
    g_main_context_iteration(NULL, FALSE);
  ck_assert(spin_until(is_given_up, lv));
  quota = bed.config.default_quota;
  quota.max_pages = 3 * HMMVD_PAGES_PER_MIB;
  ck_assert_msg(hmmvd_vms_request_quota(bed.vms, DOMAIN, &quota, &error), "%s",
                error ? error->message : "");
  ck_assert(!no_write_pending(lv));
  /* then the operator's newer element, max 5 */
  quota.max_pages = 5 * HMMVD_PAGES_PER_MIB;
  newer = hmmvd_quota_format(&quota, NULL);
  ck_assert_msg(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, newer, HMMVD_METADATA_KEY,
                                     HMMVD_METADATA_URI, VIR_DOMAIN_AFFECT_LIVE) == 0,
                "%s", virGetLastErrorMessage());
  /* connected again: the kept write is settled (dropped), the newer element stays */
  g_mutex_lock(&gate.lock);
  gate.open = TRUE;
  g_cond_broadcast(&gate.cond);
  g_mutex_unlock(&gate.lock);
  ck_assert(spin_until(is_connected, lv));
  ck_assert(spin_until(no_write_pending, lv));
  meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                              VIR_DOMAIN_AFFECT_LIVE);
  ck_assert_msg(meta != NULL && strstr(meta, "dram-max-mib=\"5\"") != NULL,
                "the newer element was overwritten: %s",
                meta != NULL ? meta : virGetLastErrorMessage());
  free(meta);
  ck_assert(spin_until(quota_max_5, bed.vms));

  ck_assert_int_eq(virDomainDestroy(dom), 0);
  virDomainFree(dom);
  hmmvd_libvirt_free(lv);
  virConnectClose(peer);
  hmmvd_test_bed_clear(&bed);
  ck_assert_int_eq(g_unlink(pid_path), 0);
  ck_assert_int_eq(g_rmdir(run_dir), 0);
  g_cond_clear(&gate.cond);
  g_mutex_clear(&gate.lock);
}
END_TEST

static Suite *
libvirt_calls_suite(void)
{
  Suite *suite = suite_create("libvirt-calls");
  TCase *tc = tcase_create("core");

  tcase_add_test(tc, test_hung_call_never_holds_main_loop);
  tcase_add_test(tc, test_failed_connect_forgets_its_asks);
  tcase_add_test(tc, test_late_write_never_overwrites_newer);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(libvirt_calls_suite());
}
