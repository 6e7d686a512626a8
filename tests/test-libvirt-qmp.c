/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The libvirt QMP pool (daemon/libvirt-qmp.c, issue 8 "fleet"): many domains' exchanges on a
 * bounded pool of threads. The fake below stands for libvirtd and the QEMUs behind it: a call
 * to a running domain comes back at once with {"return": {}}; one to a stopped domain waits
 * until it is continued, without any limit, as libvirt waits for a QEMU stopped with SIGSTOP.
 * It counts the calls in flight (in all and per domain) and each domain's commands in order.
 *
 * Checked, by counting calls and rounds (never by time): never more calls in flight than the
 * pool holds, stopped domains included; a domain's exchanges one at a time and in order;
 * with fewer domains stopped than the pool has threads, their threads are set aside and every
 * healthy domain answers hmmv-sync in one round again; a stopped domain gets one call and no
 * second while it hangs (its exchanges fail at once); with more stopped, the healthy ones fail
 * BUSY (not frozen); once continued, nothing is set aside.
 */
#include "hmmv-test.h"
#include "libvirt-qmp.h"

#include <string.h>

#define LIVENESS_ROUNDS 200     /* a bound on waiting loops, never reached when it works */

typedef struct {
  GMutex lock;
  GCond cond;
  GHashTable *stopped;          /* uuid set */
  GHashTable *in_flight;        /* uuid -> calls now */
  GHashTable *log;              /* uuid -> GString of its commands' "execute" names */
  GHashTable *calls;            /* uuid -> calls made */
  guint now, max;               /* calls in flight in all */
  guint domain_max;             /* most in flight for one domain */
} Fake;

static Fake fake;

static void
string_free(gpointer string)
{
  g_string_free(string, TRUE);
}

static void
fake_init(void)
{
  g_mutex_init(&fake.lock);
  g_cond_init(&fake.cond);
  fake.stopped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  fake.in_flight = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  fake.calls = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  fake.log = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                   string_free);
  fake.now = fake.max = fake.domain_max = 0;
}

static void
fake_clear(void)
{
  g_hash_table_unref(fake.stopped);
  g_hash_table_unref(fake.in_flight);
  g_hash_table_unref(fake.calls);
  g_hash_table_unref(fake.log);
  g_cond_clear(&fake.cond);
  g_mutex_clear(&fake.lock);
}

static guint
count_of(GHashTable *table, const char *uuid)
{
  return GPOINTER_TO_UINT(g_hash_table_lookup(table, uuid));
}

static char *
fake_run(const char *uuid, const char *command, gpointer data, GError **error)
{
  const char *execute = strstr(command, "\"execute\"");
  GString *log;
  guint mine;

  g_mutex_lock(&fake.lock);
  fake.now++;
  fake.max = MAX(fake.max, fake.now);
  mine = count_of(fake.in_flight, uuid) + 1;
  g_hash_table_insert(fake.in_flight, g_strdup(uuid), GUINT_TO_POINTER(mine));
  fake.domain_max = MAX(fake.domain_max, mine);
  g_hash_table_insert(fake.calls, g_strdup(uuid), GUINT_TO_POINTER(count_of(fake.calls, uuid) + 1));
  if ((log = g_hash_table_lookup(fake.log, uuid)) == NULL) {
    log = g_string_new(NULL);
    g_hash_table_insert(fake.log, g_strdup(uuid), log);
  }
  if (execute != NULL) {
    const char *name = strchr(execute + strlen("\"execute\""), '"');
    const char *end = name != NULL ? strchr(name + 1, '"') : NULL;

    if (end != NULL)
      g_string_append_printf(log, "%.*s ", (int)(end - name - 1), name + 1);
  }
  while (g_hash_table_contains(fake.stopped, uuid))     /* SIGSTOP: no limit */
    g_cond_wait(&fake.cond, &fake.lock);
  g_hash_table_insert(fake.in_flight, g_strdup(uuid),
                      GUINT_TO_POINTER(count_of(fake.in_flight, uuid) - 1));
  fake.now--;
  g_mutex_unlock(&fake.lock);
  return g_strdup("{\"return\": {}}");
}

static void
fake_stop(const char *uuid, gboolean stop)
{
  g_mutex_lock(&fake.lock);
  if (stop)
    g_hash_table_add(fake.stopped, g_strdup(uuid));
  else
    g_hash_table_remove(fake.stopped, uuid);
  g_cond_broadcast(&fake.cond);
  g_mutex_unlock(&fake.lock);
}

static guint
fake_calls(const char *uuid)
{
  guint n;

  g_mutex_lock(&fake.lock);
  n = count_of(fake.calls, uuid);
  g_mutex_unlock(&fake.lock);
  return n;
}

typedef struct {
  HmmvdLibvirtQmp *lq;
  guint n;
  char **uuids;
  HmmvQmp **qmp;
} Bed;

static void
bed_init(Bed *bed, guint n, guint timeout_ms, guint pool_size)
{
  fake_init();
  bed->lq = hmmvd_libvirt_qmp_new(timeout_ms, pool_size);
  hmmvd_libvirt_qmp_set_runner(bed->lq, fake_run, NULL);
  bed->n = n;
  bed->uuids = g_new0(char *, n + 1);
  bed->qmp = g_new0(HmmvQmp *, n);
  for (guint i = 0; i < n; i++) {
    g_autoptr(GError) error = NULL;
    g_autofree char *name = g_strdup_printf("dom-%02u", i);
    g_autoptr(JsonNode) ret = NULL;

    bed->uuids[i] = g_strdup_printf("6a1c3e52-6f53-4a0e-8d21-0000000000%02u", i);
    bed->qmp[i] = hmmvd_libvirt_qmp_transport_new(bed->lq, bed->uuids[i], name, i + 1, &error);
    ck_assert_msg(bed->qmp[i] != NULL, "%s", error != NULL ? error->message : "");
    ret = hmmv_qmp_execute(bed->qmp[i], "hmmv-start", NULL, &error);
    ck_assert_msg(ret != NULL, "hmmv-start of %s: %s", name, error != NULL ? error->message : "");
  }
}

static void
bed_clear(Bed *bed)
{
  for (guint i = 0; i < bed->n; i++)
    fake_stop(bed->uuids[i], FALSE);
  for (guint i = 0; i < bed->n; i++)
    hmmv_qmp_free(bed->qmp[i]);
  /* the threads end once idle (10 s); the pool goes with the last reference */
  hmmvd_libvirt_qmp_unref(bed->lq);
  g_strfreev(bed->uuids);
  g_free(bed->qmp);
}

static gboolean
round_done(gpointer data)
{
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

/* One interval's hmmv-sync to every tracking domain; answered[i] tells which answered in it. */
static guint
sync_round(Bed *bed, guint wait_ms, gboolean *answered)
{
  gboolean done = FALSE;
  guint n = 0;

  if (hmmvd_libvirt_qmp_sync_begin(bed->lq, wait_ms, round_done, &done)) {
    while (!done)
      g_main_context_iteration(NULL, TRUE);
  }
  for (guint i = 0; i < bed->n; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = hmmv_qmp_execute(bed->qmp[i], "hmmv-sync", NULL, &error);

    answered[i] = ret != NULL;
    n += answered[i];
    if (ret == NULL)
      ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_BUSY) ||
                      g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT),
                    "dom %u: %s", i, error->message);
  }
  hmmvd_libvirt_qmp_sync_end(bed->lq);
  return n;
}

/* Many domains, a small pool: every domain answers, never more calls at once than the pool
 * has threads, each domain's exchanges one at a time and in order. */
START_TEST(test_pool_bounded)
{
  Bed bed;
  g_autofree gboolean *answered = g_new0(gboolean, 24);
  g_autofree guint *times = g_new0(guint, 24);
  guint active, aside, total, conns, rounds = 0, all = 0;

  bed_init(&bed, 24, 5000, 4);
  for (guint i = 0; i < bed.n; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = NULL;

    hmmv_qmp_post(bed.qmp[i], "hmmv-first", NULL);
    ret = hmmv_qmp_execute(bed.qmp[i], "hmmv-second", NULL, &error);
    ck_assert_msg(ret != NULL, "%s", error != NULL ? error->message : "");
  }
  /* 10 rounds where everyone answered (liveness bound: a loaded host may miss one) */
  while (all < 10 && rounds++ < LIVENESS_ROUNDS) {
    guint n = sync_round(&bed, 5000, answered);

    for (guint i = 0; i < bed.n; i++)
      times[i] += answered[i];
    all += n == bed.n;
    hmmvd_libvirt_qmp_get_counts(bed.lq, &active, &aside, &total, &conns);
    ck_assert_uint_le(active, 4);
    ck_assert_uint_eq(aside, 0);
  }
  ck_assert_uint_eq(all, 10);
  g_mutex_lock(&fake.lock);
  ck_assert_uint_le(fake.max, 4);               /* the pool's bound */
  ck_assert_uint_ge(fake.max, 1);
  ck_assert_uint_eq(fake.domain_max, 1);        /* one at a time per domain */
  for (guint i = 0; i < bed.n; i++) {
    GString *log = g_hash_table_lookup(fake.log, bed.uuids[i]);

    ck_assert_msg(g_str_has_prefix(log->str, "hmmv-start hmmv-first hmmv-second hmmv-sync "),
                  "dom %u's commands in order: %s", i, log->str);
  }
  g_mutex_unlock(&fake.lock);
  bed_clear(&bed);
  fake_clear();
}
END_TEST

/* Fewer domains stopped than the pool has threads: their threads are set aside, the healthy
 * ones answer in one round again; a stopped domain is called once while it hangs. More
 * stopped: never more calls in flight than the pool holds (libvirtd's workers are everyone's),
 * the healthy domains' harvests fail BUSY (never TIMED_OUT: not frozen). Continued: all
 * answer, nothing set aside. */
START_TEST(test_pool_sets_aside)
{
  enum { N = 12, STOPPED = 3, MORE = 3, POOL = 4 };
  Bed bed;
  gboolean answered[N];
  guint active = 0, aside = 0, total = 0, conns, rounds = 0;
  gboolean healthy_all = FALSE, busy_seen = FALSE;

  bed_init(&bed, N, 300, POOL);
  for (guint i = 0; i < STOPPED; i++)
    fake_stop(bed.uuids[i], TRUE);
  while (!healthy_all && rounds++ < LIVENESS_ROUNDS) {
    sync_round(&bed, 300, answered);
    hmmvd_libvirt_qmp_get_counts(bed.lq, &active, &aside, &total, &conns);
    ck_assert_uint_le(active + aside, POOL);
    healthy_all = aside == STOPPED;
    for (guint i = STOPPED; i < N; i++)
      healthy_all = healthy_all && answered[i];
    for (guint i = 0; i < STOPPED; i++)
      ck_assert_msg(!answered[i], "stopped dom %u answered", i);
  }
  ck_assert_msg(healthy_all, "after %u rounds: %u set aside, healthy ones not all answering",
                rounds, aside);
  /* while they hang: no second call, and an exchange fails at once */
  for (guint i = 0; i < STOPPED; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = hmmv_qmp_execute(bed.qmp[i], "query-status", NULL, &error);

    ck_assert_ptr_null(ret);
    ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT), "%s",
                  error->message);
    ck_assert_uint_eq(fake_calls(bed.uuids[i]), 2);   /* hmmv-start, the first hmmv-sync */
  }

  /* more hung than the pool has threads: the pool fills with them and stays within it */
  for (guint i = STOPPED; i < STOPPED + MORE; i++)
    fake_stop(bed.uuids[i], TRUE);
  rounds = 0;
  while (!busy_seen && rounds++ < LIVENESS_ROUNDS) {
    guint n = sync_round(&bed, 300, answered);

    hmmvd_libvirt_qmp_get_counts(bed.lq, &active, &aside, &total, &conns);
    ck_assert_uint_le(active + aside, POOL);
    busy_seen = aside == POOL && n == 0;
  }
  ck_assert_msg(busy_seen, "after %u rounds: %u set aside", rounds, aside);
  for (guint i = STOPPED + MORE; i < N; i++) {
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = NULL;

    ret = hmmv_qmp_execute(bed.qmp[i], "query-status", NULL, &error);
    ck_assert_ptr_null(ret);
    ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_BUSY), "healthy dom %u: %s", i,
                  error->message);
  }
  g_mutex_lock(&fake.lock);
  ck_assert_uint_le(fake.max, POOL);
  g_mutex_unlock(&fake.lock);

  for (guint i = 0; i < STOPPED + MORE; i++)
    fake_stop(bed.uuids[i], FALSE);
  healthy_all = FALSE;
  rounds = 0;
  while (!healthy_all && rounds++ < LIVENESS_ROUNDS) {
    healthy_all = sync_round(&bed, 300, answered) == N;
    hmmvd_libvirt_qmp_get_counts(bed.lq, &active, &aside, &total, &conns);
    healthy_all = healthy_all && aside == 0;
    ck_assert_uint_le(active + aside, POOL);
  }
  ck_assert_msg(healthy_all, "continued: after %u rounds %u still aside", rounds, aside);
  ck_assert_uint_ge(total, POOL);
  bed_clear(&bed);
  fake_clear();
}
END_TEST

/* A pool of one thread and two domains. dom-00's exchange is under way, slow but within the
 * deadline (T); dom-01's is queued behind it and sent at about 0.6 T; dom-01's QEMU answers at
 * about 1.3 T, 0.7 T after it was sent, past its caller's first deadline but well within one
 * of its own. The fake is paced by the clock (a slow QEMU); nothing below asserts a time. */
#define LATE_T_MS 4000

static struct {
  GMutex lock;                  /* static: no init needed */
  GCond cond;
  gint64 queued_us;             /* set by the test just before dom-01's exchange (0: not yet) */
  gboolean first_in;            /* dom-00's call has begun */
  guint calls[2];
  guint running;                /* calls not returned yet */
  GString *order;               /* "a< a> b< b> ": calls begun (<) and ended (>) */
} late;

static void
late_sleep_until(gint64 until)
{
  gint64 now;

  while ((now = g_get_monotonic_time()) < until)
    g_usleep(MIN(until - now, 50000));
}

static char *
late_run(const char *uuid, const char *command, gpointer data, GError **error)
{
  gboolean first = g_str_has_suffix(uuid, "-00");
  gint64 queued, t = (gint64)LATE_T_MS * 1000;

  g_mutex_lock(&late.lock);
  late.running++;
  late.calls[first ? 0 : 1]++;
  g_string_append(late.order, first ? "a< " : "b< ");
  if (first) {
    late.first_in = TRUE;
    g_cond_broadcast(&late.cond);
    while (late.queued_us == 0)
      g_cond_wait(&late.cond, &late.lock);
  }
  queued = late.queued_us;
  g_mutex_unlock(&late.lock);
  late_sleep_until(queued + (first ? t * 6 / 10 : t * 13 / 10));
  g_mutex_lock(&late.lock);
  g_string_append(late.order, first ? "a> " : "b> ");
  late.running--;
  g_cond_broadcast(&late.cond);
  g_mutex_unlock(&late.lock);
  return g_strdup("{\"return\": {}}");
}

static gpointer
late_first(gpointer qmp)
{
  g_autoptr(GError) error = NULL;
  JsonNode *ret = hmmv_qmp_execute(qmp, "query-first", NULL, &error);

  if (ret == NULL)
    printf("# dom-00: %s\n", error->message);
  return ret;
}

/* Finding 1 of review 15: a job a pool thread took late gets its own full deadline from then.
 * Before, its caller gave up at the deadline counted from when it was queued and called it
 * TIMED_OUT ("QEMU did not answer within 4000 ms"), so a healthy domain whose QEMU had 0.4 T
 * would have been frozen. An attempt counts when its premise held: no thread was set aside
 * (dom-00 answered within T, dom-01's QEMU within its own T) and dom-01's call was made; a
 * loaded host that broke it tries again (liveness bound). */
START_TEST(test_late_start_gets_own_deadline)
{
  gboolean counted = FALSE;

  for (guint attempt = 0; attempt < 3 && !counted; attempt++) {
    HmmvdLibvirtQmp *lq = hmmvd_libvirt_qmp_new(LATE_T_MS, 1);
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonNode) ret = NULL;
    JsonNode *first_ret;
    HmmvQmp *a, *b;
    GThread *thread;
    guint active, aside, total, conns;
    gint64 queued, answered_us;

    late.queued_us = 0;
    late.first_in = FALSE;
    late.calls[0] = late.calls[1] = 0;
    late.order = g_string_new(NULL);
    hmmvd_libvirt_qmp_set_runner(lq, late_run, NULL);
    a = hmmvd_libvirt_qmp_transport_new(lq, "6a1c3e52-late-00", "dom-00", 1, NULL);
    b = hmmvd_libvirt_qmp_transport_new(lq, "6a1c3e52-late-01", "dom-01", 2, NULL);
    ck_assert(a != NULL && b != NULL);
    thread = g_thread_new("dom-00", late_first, a);
    g_mutex_lock(&late.lock);
    while (!late.first_in)                     /* no limit: the pool's one thread takes it */
      g_cond_wait(&late.cond, &late.lock);
    late.queued_us = queued = g_get_monotonic_time();
    g_cond_broadcast(&late.cond);
    g_mutex_unlock(&late.lock);

    ret = hmmv_qmp_execute(b, "query-late", NULL, &error);
    answered_us = g_get_monotonic_time();
    first_ret = g_thread_join(thread);
    hmmvd_libvirt_qmp_get_counts(lq, &active, &aside, &total, &conns);
    g_mutex_lock(&late.lock);
    while (late.running > 0)                   /* a call given up on still ends (its fake) */
      g_cond_wait(&late.cond, &late.lock);
    g_mutex_unlock(&late.lock);
    printf("# attempt %u: dom-01 %s after %.2f s; calls in order: %s; %u set aside\n", attempt,
           ret != NULL ? "answered" : error->message, (answered_us - queued) / 1e6,
           late.order->str, total);
    counted = total == 0 && late.calls[1] == 1 && first_ret != NULL;
    if (counted) {
      ck_assert_str_eq(late.order->str, "a< a> b< b> ");  /* one thread: dom-01 went late */
      ck_assert_msg(ret != NULL, "dom-01, sent late and answered within its own deadline: %s",
                    error->message);
    }
    if (first_ret != NULL)
      json_node_unref(first_ret);
    hmmv_qmp_free(a);
    hmmv_qmp_free(b);
    hmmvd_libvirt_qmp_unref(lq);               /* the thread ends once idle */
    g_string_free(late.order, TRUE);
  }
  ck_assert_msg(counted, "no attempt of 3 where dom-00 answered in time and dom-01 was sent");
}
END_TEST

typedef struct {
  HmmvQmp *qmp;
  JsonNode *ret;
  GError *error;
  gint done;                    /* atomic */
} Call;

static gpointer
call_run(gpointer data)
{
  Call *call = data;

  call->ret = hmmv_qmp_execute(call->qmp, "query-status", NULL, &call->error);
  g_atomic_int_set(&call->done, 1);
  return NULL;
}

/* Finding 7a of review 15: with every thread the pool may have set aside under a hung QEMU, a
 * healthy domain's exchange fails BUSY at once, never queued (the header's promise), and no
 * sync round begins (its harvest fails BUSY at once rather than after the round). Before,
 * it was queued and waited out the deadline: to tell that apart without a clock, a hung QEMU
 * answers as soon as the exchange is seen queued, which would give the exchange a thread and
 * an answer. */
START_TEST(test_pool_exhausted_busy_at_once)
{
  enum { N = 3, POOL = 2 };
  Bed bed;
  Call call = { 0 };
  GThread *thread;
  g_autoptr(GError) error = NULL;
  JsonNode *ret;
  guint active = 0, aside = 0, total, conns, polls = 0, rounds = 0;
  gboolean queued_seen = FALSE, answered = FALSE, round_over = FALSE;

  bed_init(&bed, N, 300, POOL);
  for (guint i = 0; i < POOL; i++) {
    g_autoptr(GError) hung_error = NULL;
    g_autoptr(JsonNode) hung = NULL;

    fake_stop(bed.uuids[i], TRUE);
    hung = hmmv_qmp_execute(bed.qmp[i], "query-status", NULL, &hung_error);
    ck_assert_ptr_null(hung);
    ck_assert_msg(g_error_matches(hung_error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT), "dom %u: %s",
                  i, hung_error->message);
  }
  while (aside < POOL && polls++ < 1000) {
    hmmvd_libvirt_qmp_is_busy(bed.lq, bed.uuids[0]);       /* sets overdue threads aside */
    hmmvd_libvirt_qmp_get_counts(bed.lq, &active, &aside, &total, &conns);
    if (aside < POOL)
      g_usleep(10000);
  }
  ck_assert_uint_eq(aside, POOL);
  ck_assert_uint_eq(active, 0);

  /* no sync round either (the interval would wait it out): the harvest fails BUSY at once */
  ck_assert_msg(!hmmvd_libvirt_qmp_sync_begin(bed.lq, 300, round_done, &round_over),
                "a sync round began with every thread set aside");
  ret = hmmv_qmp_execute(bed.qmp[POOL], "hmmv-sync", NULL, &error);
  ck_assert_ptr_null(ret);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_BUSY), "%s", error->message);
  g_clear_error(&error);
  hmmvd_libvirt_qmp_sync_end(bed.lq);
  ck_assert_uint_eq(fake_calls(bed.uuids[POOL]), 1);         /* hmmv-start only */

  /* a healthy domain's exchange, on a thread of its own; were it queued, dom-00 answers */
  call.qmp = bed.qmp[POOL];
  thread = g_thread_new("healthy", call_run, &call);
  while (!g_atomic_int_get(&call.done)) {
    if (!queued_seen && hmmvd_libvirt_qmp_is_busy(bed.lq, bed.uuids[POOL])) {
      queued_seen = TRUE;
      fake_stop(bed.uuids[0], FALSE);
    }
    g_usleep(1000);
  }
  g_thread_join(thread);
  printf("# healthy dom-%02u with the pool set aside: %s\n", (guint)POOL,
         call.ret != NULL ? "answered" : call.error->message);
  ck_assert_msg(call.ret == NULL && !queued_seen,
                "healthy dom %u was queued behind a set-aside pool (%s)", (guint)POOL,
                call.ret != NULL ? "then answered once a hung QEMU did" : call.error->message);
  ck_assert_msg(g_error_matches(call.error, HMMV_ERROR, HMMV_ERROR_BUSY), "%s",
                call.error->message);
  ck_assert_uint_eq(fake_calls(bed.uuids[POOL]), 1);         /* hmmv-start only: not sent */
  g_clear_error(&call.error);

  /* the hung QEMUs answer: the healthy domain is served again, nothing set aside */
  for (guint i = 0; i < POOL; i++)
    fake_stop(bed.uuids[i], FALSE);
  while (!(answered && aside == 0) && rounds++ < LIVENESS_ROUNDS) {
    ret = hmmv_qmp_execute(bed.qmp[POOL], "query-status", NULL, &error);
    answered = ret != NULL;
    if (ret != NULL)
      json_node_unref(ret);
    else
      ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_BUSY), "%s", error->message);
    g_clear_error(&error);
    hmmvd_libvirt_qmp_get_counts(bed.lq, &active, &aside, &total, &conns);
    if (!(answered && aside == 0))
      g_usleep(10000);
  }
  ck_assert_msg(answered && aside == 0, "after %u rounds: answered %d, %u set aside", rounds,
                answered, aside);
  bed_clear(&bed);
  fake_clear();
}
END_TEST

static Suite *
libvirt_qmp_suite(void)
{
  Suite *suite = suite_create("libvirt-qmp");
  TCase *tc = tcase_create("pool");

  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_pool_bounded);
  tcase_add_test(tc, test_pool_sets_aside);
  tcase_add_test(tc, test_late_start_gets_own_deadline);
  tcase_add_test(tc, test_pool_exhausted_busy_at_once);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(libvirt_qmp_suite());
}
