/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP socket transport when QEMU answers late (issue 8, review 15): a reply that comes
 * after its deadline is dropped by its id and nothing is sent until it came; a post
 * (hmmv-stop) still goes out then, and never waits for room in the socket; a catch-up reads
 * a budget at a time. Against a scripted peer on a real Unix socket that echoes ids as QEMU
 * does; every check counts commands, replies or calls, none times anything.
 */
#include "hmmv-test.h"

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

/* The deadline of the connect handshake and of exchanges whose deadline is not under test:
 * the peer is a thread of this process, which a loaded machine may not run for a while. */
#define CONNECT_MS 30000

typedef struct {
  char *dir;
  char *path;
  GSocket *listener;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean released;  /* query-stuck may be answered */
  guint received;     /* commands read, capabilities included */
  GString *commands;  /* their names, one a line */
  guint flood;        /* events written before query-stuck's reply, in one send with it */
  gboolean answered;  /* query-stuck's reply (and flood) went out */
  guint delivered;    /* replies the socket took whole: the client had not closed it */
  gsize big;          /* bytes of one event line written before query-stuck's reply */
  gsize big_sent;     /* of them, what the socket took so far */
  gsize cut;          /* bytes of a command left without its line end at EOF */
  gint64 give_up_us;  /* query-stuck is answered then even if not released (0: never) */
} Peer;

static char *
peer_read_line(GSocket *sock, GString *buf)
{
  for (;;) {
    char *nl = memchr(buf->str, '\n', buf->len);
    char chunk[512];
    gssize n;

    if (nl != NULL) {
      char *line = g_strndup(buf->str, (gsize)(nl - buf->str));

      g_string_erase(buf, 0, nl - buf->str + 1);
      return line;
    }
    n = g_socket_receive(sock, chunk, sizeof(chunk), NULL, NULL);
    if (n <= 0)
      return NULL;
    g_string_append_len(buf, chunk, n);
  }
}

/* TRUE when the socket took all of text (a closed client: EPIPE). */
static gboolean
peer_send(GSocket *sock, const char *text)
{
  return g_socket_send(sock, text, strlen(text), NULL, NULL) == (gssize)strlen(text);
}

/* All of out, however the socket takes it; FALSE when it could not. */
static gboolean
peer_send_all(GSocket *sock, GString *out)
{
  for (gsize done = 0; done < out->len;) {
    gssize n = g_socket_send(sock, out->str + done, out->len - done, NULL, NULL);

    if (n <= 0)
      return FALSE;
    done += (gsize)n;
  }
  return TRUE;
}

/* One valid event line of peer->big bytes, 64 KiB a send, counted in big_sent; FALSE when the
 * client closed the connection first. */
static gboolean
peer_send_big(Peer *peer, GSocket *sock)
{
  g_autoptr(GString) line = g_string_new("{\"event\": \"X\", \"data\": [1");

  while (line->len + 3 < peer->big)
    g_string_append(line, ",1");
  g_string_append(line, "]}\n");
  for (gsize done = 0; done < line->len;) {
    gssize n = g_socket_send(sock, line->str + done, MIN(line->len - done, 65536), NULL, NULL);

    if (n <= 0)
      return FALSE;
    done += (gsize)n;
    g_mutex_lock(&peer->lock);
    peer->big_sent = done;
    g_cond_broadcast(&peer->cond);
    g_mutex_unlock(&peer->lock);
  }
  return TRUE;
}

/* Each command's reply carries its id, as QEMU's does; query-stuck waits for the test's release
 * (as a stopped QEMU), then flood events, an event and its reply come in one send;
 * query-wrongid is answered twice, first under an id nobody sent; query-hold is answered, then
 * nothing is read until the release (the client's socket buffer fills). */
static void
peer_late(Peer *peer, GSocket *sock, GString *buf)
{
  for (;;) {
    g_autofree char *line = peer_read_line(sock, buf);
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *reply = NULL;
    const char *command;
    gint64 id;

    if (line == NULL)
      return;
    peer->received++;
    root = hmmv_json_parse(line, strlen(line), NULL);
    ck_assert(root != NULL && JSON_NODE_HOLDS_OBJECT(root));
    command = json_object_get_string_member(json_node_get_object(root), "execute");
    ck_assert_msg(json_object_has_member(json_node_get_object(root), "id"), "no id: %s", line);
    id = json_object_get_int_member(json_node_get_object(root), "id");
    g_mutex_lock(&peer->lock);
    g_string_append_printf(peer->commands, "%s\n", command);
    g_mutex_unlock(&peer->lock);
    if (strcmp(command, "query-garbage") == 0)   /* a stream out of step, then stuck */
      peer_send(sock, "{\"event\": oops}\n");
    if (strcmp(command, "query-stuck") == 0 || strcmp(command, "query-garbage") == 0) {
      g_autoptr(GString) out = g_string_new(NULL);

      g_mutex_lock(&peer->lock);
      while (!peer->released) {
        if (peer->give_up_us == 0)
          g_cond_wait(&peer->cond, &peer->lock);
        else if (!g_cond_wait_until(&peer->cond, &peer->lock, peer->give_up_us))
          break;
      }
      g_mutex_unlock(&peer->lock);
      if (peer->big > 0 && !peer_send_big(peer, sock))
        return;   /* the client closed the connection */
      for (guint i = 0; i < peer->flood; i++)
        g_string_append(out, "{\"event\": \"X\"}\n");
      g_string_append(out, "{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 2}}\n");
      g_string_append_printf(out, "{\"return\": {\"answer\": 1}, \"id\": %" G_GINT64_FORMAT
                             "}\n", id);
      peer->delivered += peer_send_all(sock, out);
      g_mutex_lock(&peer->lock);
      peer->answered = TRUE;
      g_cond_broadcast(&peer->cond);
      g_mutex_unlock(&peer->lock);
      continue;
    } else if (strcmp(command, "query-hold") == 0) {
      peer->delivered += peer_send(sock, "{\"return\": {}, \"id\": 2}\n");
      g_mutex_lock(&peer->lock);
      while (!peer->released)
        g_cond_wait(&peer->cond, &peer->lock);
      g_mutex_unlock(&peer->lock);
      continue;
    } else if (strcmp(command, "query-wrongid") == 0) {
      peer_send(sock, "{\"return\": {\"answer\": 7}, \"id\": 999}\n");
      reply = g_strdup_printf("{\"return\": {\"answer\": 8}, \"id\": %" G_GINT64_FORMAT "}\n",
                              id);
    } else {
      reply = g_strdup_printf("{\"return\": {\"answer\": 42}, \"id\": %" G_GINT64_FORMAT
                              "}\n", id);
    }
    peer->delivered += peer_send(sock, reply);
  }
}


static gpointer
peer_thread(gpointer data)
{
  Peer *peer = data;
  g_autoptr(GSocket) sock = g_socket_accept(peer->listener, NULL, NULL);
  g_autoptr(GString) buf = g_string_new(NULL);

  if (sock == NULL)
    return NULL;
  peer_send(sock, "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
  peer_late(peer, sock, buf);
  peer->cut = buf->len;
  return NULL;
}

static Peer *
peer_start(guint flood)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  Peer *peer = g_new0(Peer, 1);

  peer->flood = flood;
  peer->commands = g_string_new(NULL);
  g_mutex_init(&peer->lock);
  g_cond_init(&peer->cond);
  peer->dir = g_dir_make_tmp("hmmv-qmp-XXXXXX", &error);
  ck_assert(peer->dir != NULL);
  peer->path = g_build_filename(peer->dir, "qmp.sock", NULL);
  address = g_unix_socket_address_new(peer->path);
  peer->listener = g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                                G_SOCKET_PROTOCOL_DEFAULT, &error);
  ck_assert(peer->listener != NULL);
  ck_assert(g_socket_bind(peer->listener, address, TRUE, &error));
  ck_assert(g_socket_listen(peer->listener, &error));
  peer->thread = g_thread_new("qmp-peer", peer_thread, peer);
  return peer;
}

/* The commands the last peer stopped had read, and their names; the bytes it read of one cut
 * short. */
static guint peer_received, peer_delivered;
static gsize peer_cut;
static char *peer_commands;

/* Joins the peer (it ends at EOF: free the transport first). */
static void
peer_stop(Peer *peer)
{
  g_thread_join(peer->thread);
  peer_received = peer->received;
  peer_delivered = peer->delivered;
  peer_cut = peer->cut;
  g_free(peer_commands);
  peer_commands = g_string_free(peer->commands, FALSE);
  g_object_unref(peer->listener);
  g_unlink(peer->path);
  g_rmdir(peer->dir);
  g_free(peer->path);
  g_free(peer->dir);
  g_mutex_clear(&peer->lock);
  g_cond_clear(&peer->cond);
  g_free(peer);
}

/* issue 8: a command that missed its deadline (a stopped QEMU) is answered later. Its reply
 * must never be read as a later command's: nothing is sent while it is due (an exchange fails
 * at once, TIMED_OUT), hmmv_qmp_catch_up() reads it without waiting once it came (the event
 * before it skipped), and then the transport works again; a reply under an id nobody sent is
 * dropped too. Counted: the peer must have read exactly the commands that were sent. */
START_TEST(test_late_reply_dropped)
{
  Peer *peer = peer_start(0);
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp = hmmv_qmp_connect_unix(peer->path, CONNECT_MS, &error);
  g_autoptr(JsonNode) ret = NULL;
  guint64 answer = 0, sent = 0;
  guint polls = 0;

  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  hmmv_qmp_set_timeout_ms(qmp, 300);   /* the exchange under test */
  ck_assert(hmmv_qmp_execute(qmp, "query-stuck", NULL, &error) == NULL);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT), "%s", error->message);
  g_clear_error(&error);
  /* due: not sent, failed at once */
  ck_assert(hmmv_qmp_get_commands_sent(qmp, &sent));
  ck_assert_uint_eq(sent, 2);   /* capabilities, query-stuck */
  ck_assert(hmmv_qmp_execute(qmp, "query-x", NULL, &error) == NULL);
  ck_assert(hmmv_qmp_get_commands_sent(qmp, &sent));
  ck_assert_uint_eq(sent, 2);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT) &&
                strstr(error->message, "nothing is sent") != NULL, "%s", error->message);
  g_clear_error(&error);
  ck_assert(!hmmv_qmp_catch_up(qmp, &error));
  ck_assert(error == NULL);
  /* QEMU runs again: its late reply comes, behind an event */
  g_mutex_lock(&peer->lock);
  peer->released = TRUE;
  g_cond_signal(&peer->cond);
  g_mutex_unlock(&peer->lock);
  while (!hmmv_qmp_catch_up(qmp, &error)) {
    ck_assert_msg(error == NULL, "%s", error->message);
    ck_assert_msg(++polls < 3000, "the late reply never came");   /* 60 s: liveness */
    g_usleep(20 * 1000);
  }
  printf("# late reply caught up after %u polls\n", polls);
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(qmp), 1);
  hmmv_qmp_set_timeout_ms(qmp, CONNECT_MS);
  ret = hmmv_qmp_execute(qmp, "query-x", NULL, &error);
  ck_assert_msg(ret != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_json_get_uint(json_node_get_object(ret), "answer", &answer, &error));
  ck_assert_uint_eq(answer, 42);   /* not the late reply's 1 */
  g_clear_pointer(&ret, json_node_unref);
  ret = hmmv_qmp_execute(qmp, "query-wrongid", NULL, &error);
  ck_assert_msg(ret != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_json_get_uint(json_node_get_object(ret), "answer", &answer, &error));
  ck_assert_uint_eq(answer, 8);
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(qmp), 2);
  ck_assert(hmmv_qmp_catch_up(qmp, &error));   /* nothing due */
  hmmv_qmp_free(qmp);   /* the peer sees EOF and ends */
  peer_stop(peer);
  /* capabilities, query-stuck, query-x, query-wrongid: the refused query-x never went out */
  ck_assert_uint_eq(peer_received, 4);
}
END_TEST

/* Releases the peer's query-stuck. */
static void
peer_release(Peer *peer)
{
  g_mutex_lock(&peer->lock);
  peer->released = TRUE;
  g_cond_broadcast(&peer->cond);
  g_mutex_unlock(&peer->lock);
}

/* A missed deadline: query-stuck sent, its reply owed. */
static HmmvQmp *
connect_and_miss(Peer *peer)
{
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp = hmmv_qmp_connect_unix(peer->path, CONNECT_MS, &error);

  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  hmmv_qmp_set_timeout_ms(qmp, 300);
  ck_assert(hmmv_qmp_execute(qmp, "query-stuck", NULL, &error) == NULL);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT), "%s", error->message);
  hmmv_qmp_set_timeout_ms(qmp, CONNECT_MS);
  return qmp;
}

/* Until no reply is owed; 60 s of polls at most (liveness). */
static guint
catch_up_polls(HmmvQmp *qmp)
{
  g_autoptr(GError) error = NULL;
  guint polls = 0;

  while (!hmmv_qmp_catch_up(qmp, &error)) {
    ck_assert_msg(error == NULL, "%s", error->message);
    ck_assert_msg(++polls < 3000, "the late reply never came");
    g_usleep(20 * 1000);
  }
  return polls;
}

/* Review 15, finding 2: hmmv-stop posted to a QEMU that owes a reply (a frozen VM removed,
 * hmmvd stopping) was never sent (post ran a whole exchange, which waits for the owed reply),
 * so its export went on. Now it goes out at once with the next id; its reply is dropped by
 * that id; the transport works on. Counted: the peer must have read hmmv-stop. */
START_TEST(test_post_while_reply_owed)
{
  Peer *peer = peer_start(0);
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp = connect_and_miss(peer);
  g_autoptr(JsonNode) ret = NULL;
  guint64 answer = 0, sent = 0;

  hmmv_qmp_post(qmp, "hmmv-stop", NULL);
  ck_assert(hmmv_qmp_get_commands_sent(qmp, &sent));
  ck_assert_uint_eq(sent, 3);   /* capabilities, query-stuck, hmmv-stop */
  peer_release(peer);
  printf("# caught up after %u polls\n", catch_up_polls(qmp));
  ret = hmmv_qmp_execute(qmp, "query-x", NULL, &error);
  ck_assert_msg(ret != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_json_get_uint(json_node_get_object(ret), "answer", &answer, &error));
  ck_assert_uint_eq(answer, 42);   /* not hmmv-stop's reply */
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(qmp), 2);   /* query-stuck's, hmmv-stop's */
  hmmv_qmp_free(qmp);
  peer_stop(peer);
  ck_assert_msg(g_strcmp0(peer_commands,
                          "qmp_capabilities\nquery-stuck\nhmmv-stop\nquery-x\n") == 0,
                "the peer read: %s", peer_commands);
}
END_TEST

/* QEMU drops the commands it has not run yet when its monitor connection closes, so a
 * transport freed right after its post (a frozen VM removed, hmmvd stopping) keeps the
 * connection open until QEMU answered it, on a thread of its own while QEMU owes a reply (the
 * caller does not wait for a stopped QEMU). Counted: the peer's replies to query-stuck and
 * hmmv-stop, written after the free, must find the connection open. */
START_TEST(test_post_then_free_lingers)
{
  Peer *peer = peer_start(0);
  HmmvQmp *qmp = connect_and_miss(peer);

  hmmv_qmp_post(qmp, "hmmv-stop", NULL);
  hmmv_qmp_free(qmp);
  peer_release(peer);
  peer_stop(peer);   /* EOF once the transport saw hmmv-stop answered */
  ck_assert_msg(g_strcmp0(peer_commands, "qmp_capabilities\nquery-stuck\nhmmv-stop\n") == 0,
                "the peer read: %s", peer_commands);
  ck_assert_uint_eq(peer_delivered, 3);
}
END_TEST

/* A post never waits for room in the socket: while the peer reads nothing (stuck), posts fill
 * its socket buffer and the rest are dropped, each whole (the peer parses every line it
 * reads: a command cut in two would fail it). Counted: what the transport says it sent is
 * what the peer read. */
START_TEST(test_post_full_socket_drops)
{
  Peer *peer = peer_start(0);
  HmmvQmp *qmp = connect_and_miss(peer);
  guint64 before = 0, after = 0;
  const guint posts = 20000;

  ck_assert(hmmv_qmp_get_commands_sent(qmp, &before));
  for (guint i = 0; i < posts; i++)
    hmmv_qmp_post(qmp, "hmmv-x", NULL);
  ck_assert(hmmv_qmp_get_commands_sent(qmp, &after));
  printf("# %" G_GUINT64_FORMAT " of %u posts went out, the rest dropped\n", after - before,
         posts);
  ck_assert_uint_gt(after - before, 0);
  ck_assert_uint_lt(after - before, posts);
  peer_release(peer);
  catch_up_polls(qmp);
  hmmv_qmp_free(qmp);   /* the peer reads what is left, then EOF */
  peer_stop(peer);
  ck_assert_uint_eq(peer_received, after);
}
END_TEST

/* Review 15, finding 3: one catch-up read all QEMU sent, however much: a QEMU owing a reply
 * and writing events as fast as they were parsed held hmmvd's main loop. Now a call reads at
 * most HMMV_QMP_CATCH_UP_LINES lines: with 3,000 events and the reply all in the socket
 * before the first call, that call says "not yet", and later ones get there. Counted in
 * calls, not timed. */
START_TEST(test_catch_up_budget)
{
  Peer *peer = peer_start(3 * HMMV_QMP_CATCH_UP_LINES);
  g_autoptr(GError) error = NULL;
  guint calls = 1, lines = peer->flood + 2;   /* and RESUME, and the reply */
  HmmvQmp *qmp;

  qmp = connect_and_miss(peer);
  peer_release(peer);
  g_mutex_lock(&peer->lock);
  while (!peer->answered) {
    gint64 until = g_get_monotonic_time() + 60 * G_TIME_SPAN_SECOND;   /* liveness */

    ck_assert_msg(g_cond_wait_until(&peer->cond, &peer->lock, until), "the peer never sent");
  }
  g_mutex_unlock(&peer->lock);
  /* everything is in the socket now */
  ck_assert_msg(!hmmv_qmp_catch_up(qmp, &error), "one call read %u lines", lines);
  ck_assert(error == NULL);
  do {
    ck_assert_msg(error == NULL, "%s", error->message);
    ck_assert_msg(++calls < 1000000, "never caught up");   /* each call reads a line or more */
  } while (!hmmv_qmp_catch_up(qmp, &error));
  printf("# %u lines caught up in %u calls\n", lines, calls);
  ck_assert_uint_ge(calls, (lines + HMMV_QMP_CATCH_UP_LINES - 1) / HMMV_QMP_CATCH_UP_LINES);
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(qmp), 1);
  hmmv_qmp_free(qmp);
  peer_stop(peer);
}
END_TEST

/* Open file descriptors of this process. */
static guint
count_fds(void)
{
  g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
  guint n = 0;

  ck_assert(dir != NULL);
  while (g_dir_read_name(dir) != NULL)
    n++;
  return n;
}

/* Until no linger thread of an earlier test is left (CK_FORK=no); 60 s at most (liveness). */
static void
wait_no_lingering(void)
{
  for (guint polls = 0; hmmv_qmp_get_lingering() > 0; polls++) {
    ck_assert_msg(polls < 3000, "%u linger threads never ended", hmmv_qmp_get_lingering());
    g_usleep(20 * 1000);
  }
}

/* Review 17b, finding 2: a transport whose stream broke (here: QEMU wrote a line that is not
 * JSON while owing the reply) was freed with hmmv-stop posted and unanswered, and lingered on a
 * thread with its fd for up to 60 s: a QEMU breaking every connection piled up a thread and an
 * fd per reconnect, and (one monitor client at a time) held the reconnect's greeting back. Now
 * it is closed at once. Counted: no linger thread, and the fd closed by the free. */
START_TEST(test_broken_free_closes)
{
  Peer *peer = peer_start(0);
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp;
  guint fds;

  wait_no_lingering();
  qmp = hmmv_qmp_connect_unix(peer->path, CONNECT_MS, &error);
  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_qmp_execute(qmp, "query-garbage", NULL, &error) == NULL);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL), "%s", error->message);
  ck_assert(hmmv_qmp_is_broken(qmp, NULL));
  hmmv_qmp_post(qmp, "hmmv-stop", NULL);   /* the peer is stuck: never answered before free */
  fds = count_fds();
  hmmv_qmp_free(qmp);
  ck_assert_uint_eq(hmmv_qmp_get_lingering(), 0);
  ck_assert_uint_eq(count_fds(), fds - 1);
  peer_release(peer);
  peer_stop(peer);
}
END_TEST

/* Review 17b, finding 2: linger threads are capped process-wide. Six transports, each freed
 * with hmmv-stop posted while its peer (stopped) owes a reply: four linger, two are closed at
 * once; once the peers answer, the four end. Counted in threads and fds. */
START_TEST(test_linger_capped)
{
  enum { N = 6, CAP = 4 };
  Peer *peers[N];
  HmmvQmp *qmps[N];
  guint fds, polls = 0;

  wait_no_lingering();
  for (guint i = 0; i < N; i++) {
    peers[i] = peer_start(0);
    qmps[i] = connect_and_miss(peers[i]);
    hmmv_qmp_post(qmps[i], "hmmv-stop", NULL);
  }
  fds = count_fds();
  for (guint i = 0; i < N; i++)
    hmmv_qmp_free(qmps[i]);
  ck_assert_uint_eq(hmmv_qmp_get_lingering(), CAP);
  ck_assert_uint_eq(count_fds(), fds - (N - CAP));
  for (guint i = 0; i < N; i++)
    peer_release(peers[i]);
  while (hmmv_qmp_get_lingering() > 0) {
    ck_assert_msg(++polls < 3000, "linger threads never ended");   /* 60 s: liveness */
    g_usleep(20 * 1000);
  }
  for (guint i = 0; i < N; i++)
    peer_stop(peers[i]);
  ck_assert_uint_eq(count_fds(), fds - N - 2 * N);   /* each peer: its listener, its client */
}
END_TEST

/* Review 17b, finding 1: a catch-up (no reply wanted, on hmmvd's main loop) took one line of
 * up to 16 MiB over many calls and then parsed it whole (seconds, ~1 GiB). Now a line past
 * 1 MiB while no reply is wanted breaks the stream. The peer writes one valid 4 MiB event
 * while owing the reply: catch-up fails PROTOCOL, the transport is broken, and the peer's
 * socket took under 2 MiB of it (1 MiB read, the rest in the socket buffers). Counted in
 * bytes; without the fix the event is parsed and skipped and the catch-up succeeds. */
START_TEST(test_catch_up_long_line_breaks)
{
  Peer *peer = peer_start(0);
  g_autoptr(GError) error = NULL;
  HmmvQmp *qmp;
  guint polls = 0;
  gsize sent;

  peer->big = 4u << 20;
  qmp = connect_and_miss(peer);
  peer_release(peer);
  while (!hmmv_qmp_catch_up(qmp, &error) && error == NULL) {
    ck_assert_msg(++polls < 3000, "the catch-up never ended");   /* 60 s: liveness */
    g_usleep(20 * 1000);
  }
  ck_assert_msg(error != NULL, "caught up: the 4 MiB line was read whole");
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL), "%s", error->message);
  ck_assert(hmmv_qmp_is_broken(qmp, NULL));
  g_mutex_lock(&peer->lock);
  sent = peer->big_sent;
  g_mutex_unlock(&peer->lock);
  printf("# broken after %u polls; the peer's socket had taken %zu of %zu bytes\n", polls,
         sent, peer->big);
  ck_assert_uint_ge(sent, 1u << 20);
  ck_assert_uint_lt(sent, 2u << 20);
  hmmv_qmp_free(qmp);   /* broken: closed at once, the peer's send fails */
  peer_stop(peer);
}
END_TEST

/* Connected, and query-hold answered: the peer reads nothing more until released. */
static HmmvQmp *
connect_and_hold(Peer *peer)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = NULL;
  HmmvQmp *qmp = hmmv_qmp_connect_unix(peer->path, CONNECT_MS, &error);

  ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
  ret = hmmv_qmp_execute(qmp, "query-hold", NULL, &error);   /* id 2: capabilities was 1 */
  ck_assert_msg(ret != NULL, "%s", error ? error->message : "");
  hmmv_qmp_set_timeout_ms(qmp, 300);   /* the exchange under test */
  return qmp;
}

/* Review 17b, finding F (6a): an exchange whose write missed its deadline after its first
 * bytes went out (QEMU read nothing, its socket buffer full) left the stream usable: QEMU held
 * half a command, the next command (a post) ran into it, QEMU answered a parse error without
 * an id, and the owed reply never came (a frozen VM never connected again). Now the cut
 * command breaks the stream (PROTOCOL). A 1 MiB command (the socket takes ~200 KiB) to a peer
 * that reads nothing: counted in commands and bytes (the peer read part of it, no line end,
 * then EOF). The deadline also covers building the command: a try that outlived it before the
 * first byte sent nothing (counted) and is made again with twice the deadline. */
START_TEST(test_exchange_cut_short_breaks)
{
  Peer *peer = peer_start(0);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) arguments = json_object_new();
  g_autofree char *big = g_strnfill(1u << 20, 'x');
  HmmvQmp *qmp = connect_and_hold(peer);
  const char *reason = NULL;
  guint64 before = 0, after = 0;
  guint tries = 0, timeout_ms = 1000;

  json_object_set_string_member(arguments, "data", big);
  do {
    g_clear_error(&error);
    ck_assert_msg(++tries <= 4, "nothing went out in 4 tries: %s", error->message);
    hmmv_qmp_set_timeout_ms(qmp, timeout_ms);
    timeout_ms *= 2;
    ck_assert(hmmv_qmp_get_commands_sent(qmp, &before));
    ck_assert(hmmv_qmp_execute(qmp, "query-big", arguments, &error) == NULL);
    ck_assert(hmmv_qmp_get_commands_sent(qmp, &after));
  } while (after == before && g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT) &&
           !hmmv_qmp_is_broken(qmp, NULL));
  printf("# cut short at try %u: %s\n", tries, error->message);
  ck_assert_uint_eq(after, before + 1);   /* its first bytes went out */
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL) &&
                strstr(error->message, "cut short") != NULL, "%s", error->message);
  ck_assert(hmmv_qmp_is_broken(qmp, &reason));
  ck_assert_msg(strstr(reason, "cut short") != NULL, "%s", reason);
  g_clear_error(&error);
  ck_assert(hmmv_qmp_execute(qmp, "query-x", NULL, &error) == NULL);   /* nothing more sent */
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_PROTOCOL), "%s", error->message);
  ck_assert(hmmv_qmp_get_commands_sent(qmp, &after));
  ck_assert_uint_eq(after, before + 1);
  hmmv_qmp_free(qmp);   /* broken: closed at once */
  peer_release(peer);
  peer_stop(peer);   /* reads what went out, then EOF */
  printf("# the peer read %zu bytes of a %zu-byte command, then EOF\n", peer_cut, strlen(big));
  ck_assert_uint_eq(peer_received, 2);   /* capabilities, query-hold: query-big never whole */
  ck_assert_uint_gt(peer_cut, 0);
  ck_assert_uint_lt(peer_cut, strlen(big));
}
END_TEST

/* The same write when nothing of the command went out (posts had filled QEMU's socket buffer):
 * the command was not sent, so no reply is owed for it. It was counted owed: when QEMU ran
 * again and answered the posts, the transport still waited for that reply and refused every
 * exchange for good. Now it fails TIMED_OUT with nothing sent and the transport works on.
 * Counted: commands sent, replies dropped, what the peer read. */
START_TEST(test_exchange_not_sent_owes_nothing)
{
  Peer *peer = peer_start(0);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = NULL;
  HmmvQmp *qmp = connect_and_hold(peer);
  guint64 before = 0, after = 0, answer = 0;
  guint posts = 0;

  for (;;) {   /* until one post did not go out: the socket buffer is full */
    ck_assert(hmmv_qmp_get_commands_sent(qmp, &before));
    hmmv_qmp_post(qmp, "hmmv-x", NULL);
    ck_assert(hmmv_qmp_get_commands_sent(qmp, &after));
    if (after == before)
      break;
    ck_assert_msg(++posts < 1000000, "the socket buffer never filled");
  }
  printf("# %u posts filled the socket buffer\n", posts);
  ck_assert(hmmv_qmp_execute(qmp, "query-x", NULL, &error) == NULL);
  ck_assert_msg(g_error_matches(error, HMMV_ERROR, HMMV_ERROR_TIMED_OUT), "%s", error->message);
  ck_assert(hmmv_qmp_get_commands_sent(qmp, &after));
  ck_assert_uint_eq(after, before);   /* nothing of it went out */
  ck_assert(!hmmv_qmp_is_broken(qmp, NULL));
  g_clear_error(&error);
  peer_release(peer);   /* QEMU runs again: reads the posts, answers them */
  hmmv_qmp_set_timeout_ms(qmp, CONNECT_MS);
  ret = hmmv_qmp_execute(qmp, "query-x", NULL, &error);
  ck_assert_msg(ret != NULL, "%s", error ? error->message : "");
  ck_assert(hmmv_json_get_uint(json_node_get_object(ret), "answer", &answer, &error));
  ck_assert_uint_eq(answer, 42);
  ck_assert_uint_eq(hmmv_qmp_get_late_replies(qmp), posts);
  hmmv_qmp_free(qmp);
  peer_stop(peer);
  ck_assert_uint_eq(peer_received, 2 + posts + 1);   /* capabilities, query-hold, posts, query-x */
}
END_TEST

/* Review 17b (F, D): a transport freed with a post unanswered while QEMU owes nothing else
 * lingers in place up to its exchange deadline, so hmmvd stopping with N VMs whose QEMU had
 * just stopped waited N deadlines in turn. hmmv_qmp_set_linger_deadline bounds them all at
 * once. Three transports, each with a post (query-stuck) and a deadline of G_MAXUINT ms, freed
 * once the bound passed: each closes at once, so the peers' replies, released after the frees,
 * find the connections closed. Without the bound the first free waits for its reply, which its
 * peer sends on its own after 10 s (liveness, not measured): delivered. Counted in replies. */
START_TEST(test_linger_deadline_shared)
{
  enum { N = 3 };
  Peer *peers[N];
  HmmvQmp *qmps[N];
  guint fds;

  wait_no_lingering();
  for (guint i = 0; i < N; i++) {
    g_autoptr(GError) error = NULL;

    peers[i] = peer_start(0);
    qmps[i] = hmmv_qmp_connect_unix(peers[i]->path, CONNECT_MS, &error);
    ck_assert_msg(qmps[i] != NULL, "%s", error ? error->message : "");
    hmmv_qmp_set_timeout_ms(qmps[i], G_MAXUINT);
    hmmv_qmp_post(qmps[i], "query-stuck", NULL);
  }
  for (guint i = 0; i < N; i++) {
    g_mutex_lock(&peers[i]->lock);
    peers[i]->give_up_us = g_get_monotonic_time() + 10 * G_TIME_SPAN_SECOND;
    g_cond_broadcast(&peers[i]->cond);
    g_mutex_unlock(&peers[i]->lock);
  }
  fds = count_fds();
  hmmv_qmp_set_linger_deadline(g_get_monotonic_time());   /* passed already */
  for (guint i = 0; i < N; i++)
    hmmv_qmp_free(qmps[i]);
  hmmv_qmp_set_linger_deadline(0);
  ck_assert_uint_eq(hmmv_qmp_get_lingering(), 0);
  ck_assert_uint_eq(count_fds(), fds - N);
  for (guint i = 0; i < N; i++)
    peer_release(peers[i]);
  for (guint i = 0; i < N; i++) {
    peer_stop(peers[i]);
    ck_assert_msg(g_strcmp0(peer_commands, "qmp_capabilities\nquery-stuck\n") == 0,
                  "the peer read: %s", peer_commands);
    ck_assert_uint_eq(peer_delivered, 1);   /* capabilities' reply only */
  }
}
END_TEST

static Suite *
qmp_late_suite(void)
{
  Suite *suite = suite_create("qmp-late");
  TCase *tc = tcase_create("late");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_late_reply_dropped);
  tcase_add_test(tc, test_post_while_reply_owed);
  tcase_add_test(tc, test_post_then_free_lingers);
  tcase_add_test(tc, test_post_full_socket_drops);
  tcase_add_test(tc, test_catch_up_budget);
  tcase_add_test(tc, test_broken_free_closes);
  tcase_add_test(tc, test_linger_capped);
  tcase_add_test(tc, test_catch_up_long_line_breaks);
  tcase_add_test(tc, test_exchange_cut_short_breaks);
  tcase_add_test(tc, test_exchange_not_sent_owes_nothing);
  tcase_add_test(tc, test_linger_deadline_shared);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  return hmmv_test_run(qmp_late_suite());
}
