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

/* ------------------------------------------------------------------------------------------
 * set-quota's write and the domain's job (review 19, F4). libvirt's SetMetadata takes the
 * domain's job; a QMP exchange to a hung QEMU holds it, and libvirtd makes the write wait 30 s
 * and refuses it. The test driver says its domain's job is taken (control info OCCUPIED) while
 * its time is set to 10,000-29,999 s (virDomainSetTime), and takes no job itself.
 */

typedef struct {
  HmmvdTestBed bed;
  char *run_dir;
  char *pid_path;
  virConnectPtr peer;
  virDomainPtr dom;
  HmmvdLibvirt *lv;
} WriteBed;

static void
write_bed_init_every(WriteBed *wb, guint reconnect_ms)
{
  g_autofree char *pid_text = g_strdup_printf("%d\n", (int)getpid());
  g_autofree char *xml = NULL;
  g_autoptr(GError) error = NULL;

  wb->run_dir = g_dir_make_tmp("hmmv-test-libvirt-calls-XXXXXX", NULL);
  ck_assert(wb->run_dir != NULL);
  wb->pid_path = g_build_filename(wb->run_dir, DOMAIN ".pid", NULL);
  ck_assert(g_file_set_contents(wb->pid_path, pid_text, -1, NULL));
  hmmvd_test_bed_init(&wb->bed, 64ull << 20, 256ull << 20, NULL);
  g_free(wb->bed.config.libvirt_uri);
  wb->bed.config.libvirt_uri = g_strdup(TEST_URI);
  g_free(wb->bed.config.libvirt_run_dir);
  wb->bed.config.libvirt_run_dir = g_strdup(wb->run_dir);
  wb->bed.config.reconnect_ms = reconnect_ms;
  wb->peer = virConnectOpen(TEST_URI);
  ck_assert_ptr_nonnull(wb->peer);
  xml = g_strdup_printf("<domain type='test'><name>" DOMAIN "</name><uuid>" DOMAIN_UUID
                        "</uuid><memory unit='KiB'>4096</memory><os><type>hvm</type></os>"
                        "</domain>");
  wb->dom = virDomainCreateXML(wb->peer, xml, 0);
  ck_assert_msg(wb->dom != NULL, "%s", virGetLastErrorMessage());
  wb->lv = hmmvd_libvirt_new(wb->bed.vms, &wb->bed.config, wb->bed.topo, &error);
  ck_assert_msg(wb->lv != NULL, "%s", error ? error->message : "");
  ck_assert(spin_until(is_connected, wb->lv));
  ck_assert(spin_until(is_listed, wb->bed.vms));
}

static void
write_bed_init(WriteBed *wb)
{
  write_bed_init_every(wb, 100);
}

static void
write_bed_clear(WriteBed *wb)
{
  ck_assert_int_eq(virDomainDestroy(wb->dom), 0);
  virDomainFree(wb->dom);
  hmmvd_libvirt_free(wb->lv);
  virConnectClose(wb->peer);
  hmmvd_test_bed_clear(&wb->bed);
  ck_assert_int_eq(g_unlink(wb->pid_path), 0);
  ck_assert_int_eq(g_rmdir(wb->run_dir), 0);
  g_free(wb->pid_path);
  g_free(wb->run_dir);
}

static void
request_max_mib(WriteBed *wb, guint64 max_mib)
{
  g_autoptr(GError) error = NULL;
  HmmvQuota quota = wb->bed.config.default_quota;

  quota.max_pages = max_mib * HMMVD_PAGES_PER_MIB;
  ck_assert_msg(hmmvd_vms_request_quota(wb->bed.vms, DOMAIN, &quota, &error), "%s",
                error ? error->message : "");
}

/* libvirt's element of the domain has dram-max-mib="max_mib" */
static gboolean
meta_has_max(virDomainPtr dom, guint max_mib)
{
  g_autofree char *want = g_strdup_printf("dram-max-mib=\"%u\"", max_mib);
  char *meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, HMMVD_METADATA_URI,
                                    VIR_DOMAIN_AFFECT_LIVE);
  gboolean has = meta != NULL && strstr(meta, want) != NULL;

  free(meta);
  return has;
}

static guint
calls_begun(HmmvdLibvirt *lv)
{
  guint serial;

  g_mutex_lock(&lv->lock);
  serial = lv->busy_serial;
  g_mutex_unlock(&lv->lock);
  return serial;
}

typedef struct {
  HmmvdLibvirt *lv;
  virDomainPtr dom;
  guint until;
} CallsUntil;

/* calls begun reached until, or the element written (the test then fails at once) */
static gboolean
calls_reached(gpointer data)
{
  CallsUntil *c = data;

  return calls_begun(c->lv) >= c->until || meta_has_max(c->dom, 3);
}

static const char *
quota_error_of(HmmvdVms *vms)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, DOMAIN);

  return info != NULL ? info->quota_error : NULL;
}

/* The domain's job taken (a QMP command under way: OCCUPIED): the write is not made, nor
 * refused; tried again (here by retry_dropped's timer: the test domain gets no hmmv-sync) and
 * written once the job is free. Before, it was made at once (and a real libvirtd made it wait
 * 30 s, then refused it: the quota lost). */
START_TEST(test_write_waits_while_job_taken)
{
  WriteBed wb;
  CallsUntil c;

  write_bed_init(&wb);
  ck_assert_int_eq(virDomainSetTime(wb.dom, 10000 + 7000, 0, 0), 0);   /* OCCUPIED, 7 s */
  request_max_mib(&wb, 3);
  /* 5 calls more (the write's deferred attempts among them, and retry_dropped's asks about
   * the dropped test domain), and never made */
  c.lv = wb.lv;
  c.dom = wb.dom;
  c.until = calls_begun(wb.lv) + 5;
  ck_assert(spin_until(calls_reached, &c));
  ck_assert_msg(!meta_has_max(wb.dom, 3), "written while the domain's job was taken");
  ck_assert(!no_write_pending(wb.lv));
  ck_assert_msg(quota_error_of(wb.bed.vms) == NULL, "%s", quota_error_of(wb.bed.vms));
  /* the job free: written and applied */
  ck_assert_int_eq(virDomainSetTime(wb.dom, 0, 0, 0), 0);
  ck_assert(spin_until(no_write_pending, wb.lv));
  ck_assert(meta_has_max(wb.dom, 3));
  ck_assert(spin_until(quota_applied, wb.bed.vms));
  ck_assert_msg(quota_error_of(wb.bed.vms) == NULL, "%s", quota_error_of(wb.bed.vms));
  write_bed_clear(&wb);
}
END_TEST

static gboolean
has_quota_error(gpointer vms)
{
  return quota_error_of(vms) != NULL;
}

static gboolean
applied_or_refused(gpointer vms)
{
  return quota_applied(vms) || has_quota_error(vms);
}

/* libvirtd refuses the write because it could not take the domain's job in time
 * (VIR_ERR_OPERATION_TIMEOUT, "cannot acquire state change lock"): kept, no quota-error, made
 * again. Before, it was dropped with a quota-error ("NOT applied"). Any other refusal
 * (VIR_ERR_OPERATION_DENIED) still drops it, with a quota-error. */
START_TEST(test_write_refused_for_job_is_kept)
{
  WriteBed wb;

  write_bed_init(&wb);
  hmmvd_libvirt_set_job_backoff(wb.lv, 100, 800);       /* tried again a tick later */
  hmmvd_libvirt_fail_next_write(wb.lv, VIR_ERR_OPERATION_TIMEOUT);
  request_max_mib(&wb, 3);
  ck_assert(spin_until(applied_or_refused, wb.bed.vms));
  ck_assert_msg(quota_error_of(wb.bed.vms) == NULL, "%s", quota_error_of(wb.bed.vms));
  ck_assert(quota_applied(wb.bed.vms));
  ck_assert(meta_has_max(wb.dom, 3));
  ck_assert(spin_until(no_write_pending, wb.lv));
  ck_assert_msg(quota_error_of(wb.bed.vms) == NULL, "%s", quota_error_of(wb.bed.vms));
  ck_assert_int_eq(wb.lv->write_fault, 0);    /* the refusal did happen */

  hmmvd_libvirt_fail_next_write(wb.lv, VIR_ERR_OPERATION_DENIED);
  request_max_mib(&wb, 5);
  ck_assert(spin_until(has_quota_error, wb.bed.vms));
  ck_assert(spin_until(no_write_pending, wb.lv));
  ck_assert(meta_has_max(wb.dom, 3));
  write_bed_clear(&wb);
}
END_TEST

static const char *
quota_pending_of(HmmvdVms *vms)
{
  HmmvdVmInfo *info = hmmvd_vms_lookup(vms, DOMAIN);

  return info != NULL ? info->quota_pending : NULL;
}

typedef struct {
  HmmvdLibvirt *lv;
  guint until;
} TicksUntil;

static gboolean
ticks_reached(gpointer data)
{
  TicksUntil *t = data;

  return t->lv->write_ticks >= t->until;
}

#define BACKOFF_TICKS 60

/* libvirtd refuses the write for the domain's job again and again (an async job such as a
 * dump or a migration holds it, which libvirt's control info does not show; each refusal cost
 * hmmvd's calls thread libvirtd's 30 s): tried again after a backoff doubled for each refusal
 * (here 4 retry ticks, then 8, 16, 32), not at every push: at most 5 tries over 60 ticks,
 * where it was tried at every tick (60). The VM's quota-pending says it waits, no
 * quota-error; written once the job is free. */
START_TEST(test_write_refused_for_job_backs_off)
{
  WriteBed wb;
  TicksUntil t;
  guint tried;

  write_bed_init(&wb);
  hmmvd_libvirt_set_job_backoff(wb.lv, 4 * 100, 32 * 100);   /* reconnect_ms 100: ticks */
  hmmvd_libvirt_fail_writes(wb.lv, VIR_ERR_OPERATION_TIMEOUT, 1000);
  tried = hmmvd_libvirt_writes_tried(wb.lv);
  t.lv = wb.lv;
  t.until = wb.lv->write_ticks + BACKOFF_TICKS;
  request_max_mib(&wb, 3);
  ck_assert(spin_until(ticks_reached, &t));
  tried = hmmvd_libvirt_writes_tried(wb.lv) - tried;
  ck_assert_msg(tried >= 2 && tried <= 5, "%u tries of the write over %u retry ticks", tried,
                BACKOFF_TICKS);
  ck_assert(!meta_has_max(wb.dom, 3));
  ck_assert(!no_write_pending(wb.lv));
  ck_assert_msg(quota_error_of(wb.bed.vms) == NULL, "%s", quota_error_of(wb.bed.vms));
  ck_assert_msg(quota_pending_of(wb.bed.vms) != NULL &&
                strstr(quota_pending_of(wb.bed.vms), "job on the domain is taken") != NULL,
                "quota-pending: %s", quota_pending_of(wb.bed.vms));
  /* the job free: written at its next try (at most 32 ticks on), and applied */
  hmmvd_libvirt_fail_writes(wb.lv, 0, 0);
  ck_assert(spin_until(no_write_pending, wb.lv));
  ck_assert(meta_has_max(wb.dom, 3));
  ck_assert(spin_until(quota_applied, wb.bed.vms));
  ck_assert_msg(quota_pending_of(wb.bed.vms) == NULL, "%s", quota_pending_of(wb.bed.vms));
  ck_assert_msg(quota_error_of(wb.bed.vms) == NULL, "%s", quota_error_of(wb.bed.vms));
  write_bed_clear(&wb);
}
END_TEST

/* A QMP exchange of the test's with the domain (lv->qmp's runner): held on the gate. */
static char *
gated_exchange(const char *uuid, const char *command, gpointer data, GError **error)
{
  held_run(NULL, NULL, NULL);
  return g_strdup("{\"return\": {}}");
}

typedef struct {
  WriteBed *wb;
  guint ticks;
} WrittenOrTick;

static gboolean
written_or_tick(gpointer data)
{
  WrittenOrTick *w = data;

  return meta_has_max(w->wb->dom, 3) || w->wb->lv->write_ticks != w->ticks;
}

/* A write that finds a QMP exchange with the domain under way, within its deadline, is made
 * as soon as the exchange is answered, not at the next round's end or retry tick: a slow QEMU
 * can be busy at every one of those, and the write then waited for ever (review 19c, finding
 * 2). Here retry ticks come every hour (reconnect-ms at its most) and no sync round runs: the
 * write must be made before any tick, which no run reaches (spin_until gives up after 60 s),
 * so a slow machine cannot make the tick come first. Before, it waited for the tick. */
START_TEST(test_write_made_once_exchange_answered)
{
  WriteBed wb;
  WrittenOrTick w;
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp;
  guint tried;

  g_mutex_lock(&gate.lock);
  gate.open = gate.entered = FALSE;
  g_mutex_unlock(&gate.lock);
  write_bed_init_every(&wb, 3600 * 1000);
  hmmvd_libvirt_qmp_set_runner(wb.lv->qmp, gated_exchange, NULL);
  qmp = hmmvd_libvirt_qmp_transport_new(wb.lv->qmp, DOMAIN_UUID, DOMAIN, 1, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  hmmv_qmp_post(qmp, "query-status", NULL);
  while (!gate_entered())
    g_main_context_iteration(NULL, FALSE);
  ck_assert(hmmvd_libvirt_qmp_is_busy(wb.lv->qmp, DOMAIN_UUID));
  tried = hmmvd_libvirt_writes_tried(wb.lv);
  w.wb = &wb;
  w.ticks = wb.lv->write_ticks;
  request_max_mib(&wb, 3);
  ck_assert_int_eq(hmmvd_libvirt_writes_tried(wb.lv), tried);   /* deferred: not made */
  ck_assert(!meta_has_max(wb.dom, 3));
  /* the exchange answered: written before any retry tick */
  g_mutex_lock(&gate.lock);
  gate.open = TRUE;
  g_cond_broadcast(&gate.cond);
  g_mutex_unlock(&gate.lock);
  ck_assert(spin_until(written_or_tick, &w));
  ck_assert_msg(meta_has_max(wb.dom, 3), "not written by the time of the next retry tick");
  ck_assert_int_eq(wb.lv->write_ticks, w.ticks);
  ck_assert(spin_until(no_write_pending, wb.lv));
  hmmv_qmp_free(qmp);
  write_bed_clear(&wb);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Discovery in steps (review 17, finding 5). The deadline is counted on a clock of the test's
 * own: it moves only when a step of a call says it cost STEP_COST_MS, and each step then
 * waits until the main thread has read the clock once more (its deadline check ran with the
 * step's cost in it). Nothing here depends on how fast the machine is.
 */

#define DISCOVERY_DEADLINE_MS 1000
#define STEP_COST_MS 600        /* > half a deadline: two steps under one deadline exceed it */
#define SLOW_DOMAINS 6

typedef struct {
  GMutex lock;
  GCond cond;
  gint64 now_us;
  guint main_reads;             /* clock reads by the main thread (its deadline checks) */
  GThread *main_thread;
  guint steps;                  /* steps that cost STEP_COST_MS */
  gboolean hang;                /* the next step hangs until released */
  gboolean hung;                /* a step hangs now */
  gboolean release;
} FakeClock;

static FakeClock fake;

static gint64
fake_clock(void)
{
  gint64 now;

  g_mutex_lock(&fake.lock);
  if (g_thread_self() == fake.main_thread) {
    fake.main_reads++;
    g_cond_broadcast(&fake.cond);
  }
  now = fake.now_us;
  g_mutex_unlock(&fake.lock);
  return now;
}

/* On the calls thread: a step of STEP_COST_MS, or one that does not return until released
 * (a libvirtd that stopped answering in the middle of a discovery). */
static void
fake_step(HmmvdLibvirt *lv)
{
  gint64 liveness = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;
  guint reads;

  g_mutex_lock(&fake.lock);
  if (fake.hang) {
    fake.hang = FALSE;
    fake.hung = TRUE;
    g_cond_broadcast(&fake.cond);
    while (!fake.release && g_cond_wait_until(&fake.cond, &fake.lock, liveness))
      ;
    fake.hung = FALSE;
    g_mutex_unlock(&fake.lock);
    return;
  }
  fake.steps++;
  fake.now_us += STEP_COST_MS * 1000;
  reads = fake.main_reads;
  while (fake.main_reads == reads && g_cond_wait_until(&fake.cond, &fake.lock, liveness))
    ;
  g_mutex_unlock(&fake.lock);
}

static gboolean
connected_or_abandoned(gpointer data)
{
  HmmvdLibvirt *lv = data;

  return hmmvd_libvirt_is_connected(lv) || lv->abandoned_serial != 0;
}

static gboolean
abandoned(gpointer data)
{
  return ((HmmvdLibvirt *)data)->abandoned_serial != 0;
}

static gboolean
step_hung(gpointer data)
{
  gboolean hung;

  g_mutex_lock(&fake.lock);
  hung = fake.hung;
  g_mutex_unlock(&fake.lock);
  return hung;
}

static void
slow_domain_name(char *buf, gsize size, int i)
{
  g_snprintf(buf, size, "hmmv-calls-slow-%d", i);
}

/* Connect + discovery of SLOW_DOMAINS domains (and the test driver's own "test") whose steps
 * cost 600 ms each, 4.8 s in all, under a 1 s deadline: it completes, the connection never
 * given up (before, the deadline covered the whole call: given up at the second step, and the
 * same discovery made again forever). A step that does not return still costs the connection
 * within one deadline, and the next connection discovers everything again. */
START_TEST(test_slow_discovery_completes_step_by_step)
{
  g_autofree char *run_dir = g_dir_make_tmp("hmmv-test-libvirt-calls-XXXXXX", NULL);
  g_autoptr(GError) error = NULL;
  HmmvdTestBed bed;
  HmmvdLibvirt *lv;
  virConnectPtr peer;
  virDomainPtr doms[SLOW_DOMAINS];
  char name[64];
  guint steps;

  g_mutex_init(&fake.lock);
  g_cond_init(&fake.cond);
  fake.main_thread = g_thread_self();
  fake.now_us = g_get_monotonic_time();
  hmmvd_test_bed_init(&bed, 64ull << 20, 256ull << 20, NULL);
  g_free(bed.config.libvirt_uri);
  /* no connection at first: the clock and the steps' cost are set before the discovery */
  bed.config.libvirt_uri = g_strdup("test:///nonexistent/hmmv-no-such-file.xml");
  bed.config.reconnect_ms = 100;
  /* no pid files: each domain is listed unmanaged ("cannot find QEMU's pid"), discovered */
  ck_assert(run_dir != NULL);
  g_free(bed.config.libvirt_run_dir);
  bed.config.libvirt_run_dir = g_strdup(run_dir);
  peer = virConnectOpen(TEST_URI);
  ck_assert_ptr_nonnull(peer);
  for (int i = 0; i < SLOW_DOMAINS; i++) {
    g_autofree char *xml = NULL;

    slow_domain_name(name, sizeof(name), i);
    xml = g_strdup_printf("<domain type='test'><name>%s</name><memory unit='KiB'>4096"
                          "</memory><os><type>hvm</type></os></domain>", name);
    doms[i] = virDomainCreateXML(peer, xml, 0);
    ck_assert_msg(doms[i] != NULL, "%s", virGetLastErrorMessage());
  }

  lv = hmmvd_libvirt_new(bed.vms, &bed.config, bed.topo, &error);
  ck_assert_msg(lv != NULL, "%s", error ? error->message : "");
  hmmvd_libvirt_set_call_deadline(lv, DISCOVERY_DEADLINE_MS);
  ck_assert(spin_until(said_unreachable, lv));
  hmmvd_libvirt_set_call_clock(lv, fake_clock, fake_step);
  g_free(bed.config.libvirt_uri);
  bed.config.libvirt_uri = g_strdup(TEST_URI);

  ck_assert(spin_until(connected_or_abandoned, lv));
  g_mutex_lock(&fake.lock);
  steps = fake.steps;
  g_mutex_unlock(&fake.lock);
  ck_assert_msg(lv->abandoned_serial == 0, "the connection was given up after %u steps of "
                "%u ms under a %u ms deadline", steps, STEP_COST_MS, DISCOVERY_DEADLINE_MS);
  ck_assert(hmmvd_libvirt_is_connected(lv));
  /* the premise: open, listing and every domain each a step, all of them past one deadline */
  ck_assert_uint_ge(steps, SLOW_DOMAINS + 2);
  ck_assert_uint_gt((guint64)steps * STEP_COST_MS, 4 * DISCOVERY_DEADLINE_MS);
  for (int i = 0; i < SLOW_DOMAINS; i++) {
    slow_domain_name(name, sizeof(name), i);
    ck_assert_msg(hmmvd_vms_lookup(bed.vms, name) != NULL, "%s not discovered", name);
  }

  /* a step that does not return (libvirtd stopped in the middle of a discovery): given up */
  g_mutex_lock(&fake.lock);
  fake.hang = TRUE;
  g_mutex_unlock(&fake.lock);
  hmmvd_libvirt_disconnect(lv);
  hmmvd_libvirt_schedule_reconnect(lv);
  ck_assert(spin_until(step_hung, NULL));
  g_mutex_lock(&fake.lock);
  fake.now_us += (DISCOVERY_DEADLINE_MS - 1) * 1000;
  g_mutex_unlock(&fake.lock);
  /* one deadline check at least with the step 1 ms short of its deadline: not given up */
  {
    guint reads, until;

    g_mutex_lock(&fake.lock);
    until = fake.main_reads + 2;
    g_mutex_unlock(&fake.lock);
    do {
      g_main_context_iteration(NULL, TRUE);
      g_mutex_lock(&fake.lock);
      reads = fake.main_reads;
      g_mutex_unlock(&fake.lock);
    } while (reads < until && step_hung(NULL));
    ck_assert_msg(lv->abandoned_serial == 0, "given up before its deadline");
  }
  g_mutex_lock(&fake.lock);
  fake.now_us += 1000;
  g_mutex_unlock(&fake.lock);
  ck_assert(spin_until(abandoned, lv));
  ck_assert(!hmmvd_libvirt_is_connected(lv));
  g_mutex_lock(&fake.lock);
  fake.release = TRUE;
  g_cond_broadcast(&fake.cond);
  g_mutex_unlock(&fake.lock);
  /* the abandoned discovery stops at its next step; the next connection discovers all */
  ck_assert(spin_until(is_connected, lv));
  for (int i = 0; i < SLOW_DOMAINS; i++) {
    slow_domain_name(name, sizeof(name), i);
    ck_assert_msg(hmmvd_vms_lookup(bed.vms, name) != NULL, "%s lost", name);
  }

  hmmvd_libvirt_free(lv);
  for (int i = 0; i < SLOW_DOMAINS; i++) {
    ck_assert_int_eq(virDomainDestroy(doms[i]), 0);
    virDomainFree(doms[i]);
  }
  virConnectClose(peer);
  hmmvd_test_bed_clear(&bed);
  ck_assert_int_eq(g_rmdir(run_dir), 0);
  g_cond_clear(&fake.cond);
  g_mutex_clear(&fake.lock);
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
  tcase_add_test(tc, test_write_waits_while_job_taken);
  tcase_add_test(tc, test_write_refused_for_job_is_kept);
  tcase_add_test(tc, test_write_refused_for_job_backs_off);
  tcase_add_test(tc, test_write_made_once_exchange_answered);
  tcase_add_test(tc, test_slow_discovery_completes_step_by_step);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(libvirt_calls_suite());
}
