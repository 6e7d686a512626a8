/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmvctl track, the operator's tool, against a real patched QEMU running the test guest
 * (TCG): the range the guest wrote, printed and as a replay trace, and the read source
 * hmmvctl track --reads picks. Split out of test-qemu-dirty.c (the same suite, integration),
 * which tests the tracker itself.
 *
 * The guest (tests/guest) waits for a byte on its serial port before its phase and prints the
 * pages it wrote; pages outside its test window (its stack, its image) are not counted.
 */
#include "../hmmv-test.h"
#include "qemu-harness.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#define BASE_PFN 0x1000u    /* the guest's default window base, 16 MiB */
#define WINDOW_PAGES 1024u  /* its test window: what it writes lies here, its stack does not */
#define WRITTEN_PAGES 64u   /* pages=64 pattern=seq: pfn 0x1000-0x103f */
#define SERIAL_TIMEOUT_MS 60000

static char *qemu_path;
static char *guest_path;

/* The end of a long output, for a failure message: Check refuses messages over a few KiB
 * ("Message string too long", and the failing check is not named). */
static const char *
tail_of(const GString *text)
{
  return text->len > 2000 ? text->str + text->len - 2000 : text->str;
}

/* Read lines from in until one contains needle (TRUE) or the stream ends (FALSE; needle NULL:
 * read to the end); every line read is appended to all. Blocking: the peer is hmmvctl, whose
 * count of intervals and QMP deadline (5 s) bound its silences. */
static gboolean
read_until(GDataInputStream *in, const char *needle, GString *all)
{
  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autofree char *line = g_data_input_stream_read_line_utf8(in, NULL, NULL, &error);

    if (line == NULL)
      return FALSE;
    g_string_append_printf(all, "%s\n", line);
    if (needle != NULL && strstr(line, needle) != NULL)
      return TRUE;
  }
}

/* The ranges hmmvctl track prints ("  0xSTART-0xEND (N pages)", END exclusive), read line by
 * line: the pages of the guest's window they cover are marked in seen (WINDOW_PAGES), and
 * *intervals counts the intervals ("interval N: ...") that printed any. Returns TRUE once
 * seen holds every page the guest wrote, FALSE when the stream ends first; every line read is
 * appended to all. Blocking, bounded as read_until. */
static gboolean
read_ranges(GDataInputStream *in, gboolean stop_when_covered, guint8 *seen, guint *intervals,
            GString *all)
{
  gboolean counted = FALSE;

  for (;;) {
    g_autoptr(GError) error = NULL;
    g_autofree char *line = g_data_input_stream_read_line_utf8(in, NULL, NULL, &error);
    guint64 start, end;
    guint covered = 0;

    if (line == NULL)
      return FALSE;
    g_string_append_printf(all, "%s\n", line);
    if (g_str_has_prefix(line, "interval "))
      counted = FALSE;
    if (sscanf(line, " 0x%" G_GINT64_MODIFIER "x-0x%" G_GINT64_MODIFIER "x", &start, &end) != 2)
      continue;
    for (guint64 pfn = MAX(start >> HMMV_PAGE_SHIFT, BASE_PFN);
         pfn < MIN(end >> HMMV_PAGE_SHIFT, BASE_PFN + WINDOW_PAGES); pfn++) {
      seen[pfn - BASE_PFN] = 1;
      if (!counted)
        (*intervals)++;
      counted = TRUE;
    }
    for (guint i = 0; i < WRITTEN_PAGES; i++)
      covered += seen[i];
    if (stop_when_covered && covered == WRITTEN_PAGES)
      return TRUE;
  }
}

/* Print text as TAP comments, one "# " line per line. */
static void
print_commented(const char *what, const char *text)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

  printf("# %s:\n", what);
  for (guint i = 0; lines[i] != NULL; i++)
    printf("#   %s\n", lines[i]);
}

/* QEMU's query-hmmv as JSON text, asked on its second monitor (qmp2) while hmmvctl holds the
 * first, or why it could not be asked. */
static char *
query_hmmv_text(HmmvQmp *qmp2)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) ret = hmmv_qmp_execute(qmp2, "query-hmmv", NULL, &error);

  return ret != NULL ? json_to_string(ret, FALSE) : g_strdup(error->message);
}

/* QEMU's view of the export once the guest has written: query-hmmv when QEMU has published
 * twice since the guest's HMMV-PHASE-END (so the writes are in the region), at most 100 tries
 * 50 ms apart. Evidence for a failure message only: nothing is asserted on it. */
static char *
qemu_view_after_writes(HmmvQmp *qmp2)
{
  guint64 first = 0;
  char *text = NULL;

  for (guint i = 0; i < 100; i++) {
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonObject *info;
    guint64 generation;

    g_free(text);
    text = query_hmmv_text(qmp2);
    if (!json_parser_load_from_data(parser, text, -1, NULL) ||
        !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
      break;
    info = json_node_get_object(json_parser_get_root(parser));
    if (!json_object_get_boolean_member_with_default(info, "active", FALSE))
      break;
    generation = (guint64)json_object_get_int_member_with_default(info, "generation", 0);
    if (i == 0)
      first = generation;
    else if (generation >= first + 2)
      break;
    g_usleep(50000);
  }
  return text;
}

/* When hmmvctl never printed the guest's pages: what QEMU said of the export once the guest had
 * written (view: query-hmmv, with pages-published), where the guest says it wrote (range),
 * what is left of it now, and all hmmvctl wrote, so a failure tells "QEMU never logged the
 * writes" from "hmmvctl did not see what QEMU published". */
static void
print_failure_evidence(HmmvQmp *qmp2, const char *view, const char *range, GSubprocess *track,
                       GDataInputStream *err, const GString *out_text, GString *err_text)
{
  g_autofree char *now = query_hmmv_text(qmp2);

  printf("# the guest: %s\n", range != NULL ? range : "(no HMMV-PHASE-RANGE line)");
  printf("# QEMU query-hmmv after the guest wrote: %s\n", view);
  printf("# QEMU query-hmmv now: %s\n", now);
  g_subprocess_send_signal(track, SIGINT);
  (void)read_until(err, NULL, err_text);
  print_commented("hmmvctl's stderr", err_text->str);
  print_commented("hmmvctl's stdout", out_text->str);
  fflush(stdout);
}

/* hmmvctl track, the operator's tool, against the same guest: the pages the guest wrote are
 * printed as hexadecimal ranges (variant 0), and a replay trace of them holds exactly those
 * pages (variant 1). The guest writes only once hmmvctl says tracking runs (its stderr line
 * "hmmvctl: tracking"): a fixed 600 ms head start lost the race at load ~30 on 10.0 once
 * ("interval 1: 0 pages written"). Variant 0 reads intervals until the ranges printed so far
 * cover the 64 pages, then stops hmmvctl with SIGINT and reads the rest: the union of every
 * interval's ranges in the window must be exactly the 64 pages. A guest preempted mid-burst
 * (a loaded host) spreads its writes over two 100 ms intervals, so one interval's line need
 * not hold them all. Variant 1 (no output per interval) gets 600 intervals of 100 ms, a 60 s
 * window for one serial byte and 64 page writes. */
START_TEST(test_hmmvctl_track)
{
  const char *hmmvctl = g_getenv("HMMV_HMMVCTL");
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(GSubprocess) track = NULL;
  g_autofree char *ready = NULL, *end = NULL, *range = NULL, *view = NULL;
  g_autofree char *trace = NULL;
  g_autoptr(HmmvTraceReader) reader = NULL;
  g_autoptr(HmmvVm) layout = NULL;
  const HmmvTraceEntry *entries;
  gsize nr;
  guint64 compute_ns, hits = 0, total = 0;
  g_autofree char *dir = g_dir_make_tmp("hmmv-track-XXXXXX", &error);
  g_autofree char *qmp2 = NULL, *qmp2_arg = NULL;
  const char *extra[3] = { "-qmp", NULL, NULL };

  if (hmmvctl == NULL || !g_file_test(hmmvctl, G_FILE_TEST_IS_EXECUTABLE)) {
    printf("# hmmvctl not built (no libvirt): not checked\n");
    g_rmdir(dir);
    return;
  }
  ck_assert_msg(dir != NULL, "%s", error ? error->message : "");
  qmp2 = g_build_filename(dir, "qmp2.sock", NULL);
  qmp2_arg = g_strdup_printf("unix:%s,server=on,wait=off", qmp2);
  extra[1] = qmp2_arg;
  for (guint variant = 0; variant < 2; variant++) {
    g_autoptr(GDataInputStream) out = NULL, err = NULL;
    g_autoptr(GString) out_text = g_string_new(NULL), err_text = g_string_new(NULL);
    guint8 window[WINDOW_PAGES] = { 0 };
    guint nr_window = 0, spread = 0;
    gboolean seen;

    g_clear_pointer(&proc, hmmv_qemu_proc_free);
    g_clear_object(&track);
    g_clear_pointer(&ready, g_free);
    g_clear_pointer(&end, g_free);
    g_clear_pointer(&range, g_free);
    g_clear_pointer(&view, g_free);
    g_clear_pointer(&trace, g_free);
    proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128,
                                "phases=1 pages=64 pattern=seq wait=1", extra, &error);
    ck_assert(proc != NULL);
    ready = hmmv_qemu_proc_expect(proc, "HMMV-WAIT phase 0", SERIAL_TIMEOUT_MS);
    ck_assert(ready != NULL);
    trace = g_build_filename(hmmv_qemu_proc_get_dir(proc), "track.trace", NULL);
    if (variant == 0)
      track = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error, hmmvctl, "track", "--qmp",
                               hmmv_qemu_proc_get_qmp_path(proc), "--interval-ms", "100",
                               "--count", "600", NULL);
    else
      track = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               &error, hmmvctl, "track", "--qmp",
                               hmmv_qemu_proc_get_qmp_path(proc), "--interval-ms", "100",
                               "--count", "600", "--trace", trace, NULL);
    ck_assert_msg(track != NULL, "%s", error ? error->message : "");
    out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(track));
    err = g_data_input_stream_new(g_subprocess_get_stderr_pipe(track));
    seen = read_until(err, "hmmvctl: tracking", err_text);
    ck_assert_msg(seen, "hmmvctl track did not start: %s", tail_of(err_text));
    ck_assert(hmmv_qemu_proc_send(proc, "g", &error));
    range = hmmv_qemu_proc_expect(proc, "HMMV-PHASE-RANGE 0", SERIAL_TIMEOUT_MS);
    end = hmmv_qemu_proc_expect(proc, "HMMV-PHASE-END 0", SERIAL_TIMEOUT_MS);
    ck_assert(end != NULL);
    if (variant == 0) {
      g_autoptr(HmmvQmp) qmp2_conn = hmmv_qmp_connect_unix(qmp2, 5000, &error);

      ck_assert_msg(qmp2_conn != NULL, "QEMU's second monitor: %s", error ? error->message : "");
      view = qemu_view_after_writes(qmp2_conn);
      seen = read_ranges(out, TRUE, window, &spread, out_text);
      if (!seen)
        print_failure_evidence(qmp2_conn, view, range, track, err, out_text, err_text);
      ck_assert_msg(seen, "the 64 pages written never all printed: %s", tail_of(out_text));
      g_subprocess_send_signal(track, SIGINT);
      (void)read_ranges(out, FALSE, window, &spread, out_text);
      for (guint i = 0; i < WINDOW_PAGES; i++) {
        nr_window += window[i];
        ck_assert_msg(window[i] == (i < WRITTEN_PAGES), "pfn 0x%x %s: %s", BASE_PFN + i,
                      window[i] ? "printed, never written" : "written, never printed",
                      tail_of(out_text));
      }
      ck_assert_uint_eq(nr_window, WRITTEN_PAGES);
      printf("# hmmvctl track printed the guest's 64 pages 0x1000000-0x1040000 over %u "
             "interval(s)\n", spread);
    }
    (void)read_until(err, NULL, err_text);   /* to hmmvctl's exit */
    ck_assert(g_subprocess_wait(track, NULL, &error));
    ck_assert_msg(g_subprocess_get_if_exited(track) && g_subprocess_get_exit_status(track) == 0,
                  "hmmvctl track failed: %s", tail_of(err_text));
  }
  /* The trace is in page indices of the VM's layout; map them back to guest pfns with the
   * same layout, asked of QEMU now that hmmvctl has let go of QMP. */
  {
    g_autoptr(HmmvQmp) qmp = hmmv_qemu_proc_qmp(proc, &error);

    ck_assert_msg(qmp != NULL, "%s", error ? error->message : "");
    layout = hmmv_qemu_vm_new(qmp, "layout", &error);
    ck_assert_msg(layout != NULL, "%s", error ? error->message : "");
  }
  reader = hmmv_trace_reader_new(trace, &error);
  ck_assert_msg(reader != NULL, "%s", error ? error->message : "");
  while (hmmv_trace_reader_next(reader, &entries, &nr, &compute_ns, &error)) {
    for (gsize i = 0; i < nr; i++) {
      guint64 pfn = hmmv_vm_page_to_gpa(layout, entries[i].page) >> HMMV_PAGE_SHIFT;

      if (pfn >= BASE_PFN && pfn < BASE_PFN + 1024) {
        total++;
        hits += pfn < BASE_PFN + 64;
      }
    }
  }
  ck_assert(error == NULL);
  g_clear_pointer(&proc, hmmv_qemu_proc_free);
  g_unlink(qmp2);
  g_rmdir(dir);
  printf("# hmmvctl track --trace: %" G_GUINT64_FORMAT " pages of the window traced, %"
         G_GUINT64_FORMAT " of the 64 the guest wrote\n", total, hits);
  ck_assert_uint_eq(hits, 64);
  ck_assert_uint_eq(total, 64);
}
END_TEST

/* hmmvctl track --reads takes its read source as hmmvd's auto does: DAMON vaddr, idle page
 * tracking, DAMON paddr. Where the kernel offers one (a host with DAMON vaddr and a free
 * kdamond) it says which and prints the read lines; where it offers none (this build host:
 * DAMON paddr only, its one kdamond someone else's, no idle page tracking) it fails naming
 * the three in that order, and writes nothing under DAMON's sysfs. */
START_TEST(test_hmmvctl_track_reads_source)
{
  const char *hmmvctl = g_getenv("HMMV_HMMVCTL");
  g_autoptr(GError) error = NULL;
  g_autoptr(HmmvQemuProc) proc = NULL;
  g_autoptr(GSubprocess) track = NULL;
  g_autofree char *ready = NULL, *out = NULL, *err = NULL;
  const char *vaddr, *idle, *paddr;

  if (hmmvctl == NULL || !g_file_test(hmmvctl, G_FILE_TEST_IS_EXECUTABLE)) {
    printf("# hmmvctl not built (no libvirt): not checked\n");
    return;
  }
  proc = hmmv_qemu_proc_start(qemu_path, guest_path, "tcg", 128,
                              "phases=1 pages=64 pattern=seq wait=1", NULL, &error);
  ck_assert(proc != NULL);
  ready = hmmv_qemu_proc_expect(proc, "HMMV-WAIT phase 0", SERIAL_TIMEOUT_MS);
  ck_assert(ready != NULL);
  track = g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                           &error, hmmvctl, "track", "--qmp", hmmv_qemu_proc_get_qmp_path(proc),
                           "--reads", "--interval-ms", "100", "--count", "3", NULL);
  ck_assert_msg(track != NULL, "%s", error ? error->message : "");
  ck_assert(g_subprocess_communicate_utf8(track, NULL, NULL, &out, &err, &error));
  ck_assert(g_subprocess_get_if_exited(track));
  if (g_subprocess_get_exit_status(track) == 0) {
    ck_assert_msg(strstr(err, "hmmvctl: reads from ") != NULL, "no source named: %s", err);
    ck_assert_msg(strstr(out, "pages read, not written") != NULL, "no read lines: %s", out);
    printf("# hmmvctl track --reads here: %s", strstr(err, "hmmvctl: reads from "));
    return;
  }
  vaddr = strstr(err, "DAMON vaddr");
  idle = strstr(err, "idle");
  paddr = strstr(err, "DAMON paddr");
  ck_assert_msg(strstr(err, "--reads: no read source") != NULL && vaddr != NULL &&
                idle != NULL && paddr != NULL && vaddr < idle && idle < paddr,
                "not the three sources in hmmvd's order: %s", err);
  printf("# hmmvctl track --reads here: %s", err);
}

static Suite *
hmmvctl_track_suite(void)
{
  Suite *suite = suite_create("hmmvctl-track");
  TCase *tc = tcase_create("tcg");

  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_hmmvctl_track);
  tcase_add_test(tc, test_hmmvctl_track_reads_source);
  suite_add_tcase(suite, tc);
  return suite;
}

int
main(void)
{
  g_autofree char *why = NULL;

  if (!hmmv_harness_prepare("needs root: hmmvctl track maps regions QEMU created",
                            &qemu_path, &guest_path, &why))
    return hmmv_test_skip_all(why);
  return hmmv_test_run(hmmvctl_track_suite());
}
