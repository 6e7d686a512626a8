/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hot-probe: where ranges of other processes' pages are, every period, on its own schedule.
 * tiering-race.py runs one a mode to read each VM's hot set on DRAM every second, as issue 8
 * asks: its own sampler (python, under nested TCG) took 1-6 s a sample and 16-24 CPU s a mode,
 * most of it building the status queries' arrays; this asks the kernel the same question
 * (move_pages(2) with no target nodes: a status query) with arrays built once.
 *
 *   hot-probe [--every-ms 1000] [--node 0] [--count N] PID:ADDR:PAGES...
 *
 * Each RANGE is PAGES 4 KiB pages of PID from address ADDR (hex with 0x, or decimal). One
 * line a tick on stdout, flushed:
 *
 *   TICK T ON_NODE... PRESENT...
 *
 * TICK counts periods from the start (a tick missed because a query ran late is skipped, so
 * gaps in TICK are ticks not sampled), T is CLOCK_MONOTONIC in seconds (the clock of
 * python's time.monotonic()) when the queries began, ON_NODE each range's pages on --node,
 * PRESENT each range's pages present anywhere. Stops after --count ticks (0: until killed),
 * or when a process is gone (exit 1, saying which). Ticks are on an absolute schedule
 * (clock_nanosleep TIMER_ABSTIME), so a late tick does not shift the ones after it.
 */
#include <glib.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PROBE_PAGE 4096u
/* 4 GiB of pages a range at most: the arrays are 12 bytes a page */
#define PROBE_MAX_PAGES (1u << 20)
#define PROBE_MAX_RANGES 64u

typedef struct {
  int pid;
  guint64 nr;
  void **pages;
  int *status;
} Range;

static gboolean
parse_range(const char *arg, Range *range, GError **error)
{
  g_auto(GStrv) parts = g_strsplit(arg, ":", -1);
  guint64 pid, addr, nr;

  if (g_strv_length(parts) != 3 ||
      !g_ascii_string_to_unsigned(parts[0], 10, 1, G_MAXINT, &pid, NULL) ||
      !g_ascii_string_to_unsigned(g_str_has_prefix(parts[1], "0x") ? parts[1] + 2 : parts[1],
                                  g_str_has_prefix(parts[1], "0x") ? 16 : 10, 0, G_MAXUINT64,
                                  &addr, NULL) ||
      !g_ascii_string_to_unsigned(parts[2], 10, 1, PROBE_MAX_PAGES, &nr, NULL) ||
      addr % PROBE_PAGE != 0) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "%s: want PID:ADDR:PAGES, ADDR page-aligned, 1-%u pages", arg, PROBE_MAX_PAGES);
    return FALSE;
  }
  range->pid = (int)pid;
  range->nr = nr;
  range->pages = g_new(void *, nr);
  range->status = g_new(int, nr);
  for (guint64 i = 0; i < nr; i++)
    range->pages[i] = (void *)(guintptr)(addr + i * PROBE_PAGE);
  return TRUE;
}

static void
timespec_add_ms(struct timespec *ts, guint ms)
{
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static gboolean
before(const struct timespec *a, const struct timespec *b)
{
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Samples every every_ms until count ticks (0: until killed); the exit status. */
static int
run_probe(Range *ranges, guint nr_ranges, gint every_ms, gint node, gint count)
{
  struct timespec next;
  guint64 tick = 0;

  clock_gettime(CLOCK_MONOTONIC, &next);
  for (;;) {
    g_autoptr(GString) line = g_string_new(NULL);
    g_autofree guint64 *present = g_new0(guint64, nr_ranges);
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    g_string_append_printf(line, "%" G_GUINT64_FORMAT " %.3f", tick,
                           (double)now.tv_sec + now.tv_nsec / 1e9);
    for (guint r = 0; r < nr_ranges; r++) {
      Range *range = &ranges[r];
      guint64 on = 0;

      if (syscall(SYS_move_pages, range->pid, (unsigned long)range->nr, range->pages, NULL,
                  range->status, 0) != 0) {
        fprintf(stderr, "hot-probe: pid %d: move_pages status query: %s\n", range->pid,
                g_strerror(errno));
        return 1;
      }
      for (guint64 i = 0; i < range->nr; i++) {
        on += range->status[i] == node;
        present[r] += range->status[i] >= 0;
      }
      g_string_append_printf(line, " %" G_GUINT64_FORMAT, on);
    }
    for (guint r = 0; r < nr_ranges; r++)
      g_string_append_printf(line, " %" G_GUINT64_FORMAT, present[r]);
    puts(line->str);
    fflush(stdout);
    if (count > 0 && tick + 1 >= (guint64)count)
      return 0;
    /* the next tick on the schedule that is still ahead: a late query skips ticks */
    do {
      timespec_add_ms(&next, (guint)every_ms);
      tick++;
      clock_gettime(CLOCK_MONOTONIC, &now);
    } while (before(&next, &now));
    if (count > 0 && tick >= (guint64)count)
      return 0;     /* late past the last tick: never a line numbered --count or above */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
      ;
  }
}

static void
free_ranges(Range *ranges, guint nr_ranges)
{
  for (guint r = 0; r < nr_ranges; r++) {
    g_free(ranges[r].pages);
    g_free(ranges[r].status);
  }
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = g_option_context_new("PID:ADDR:PAGES...");
  gint every_ms = 1000, node = 0, count = 0;
  GOptionEntry entries[] = {
    { "every-ms", 0, 0, G_OPTION_ARG_INT, &every_ms, "period (ms, 10-60000)", "MS" },
    { "node", 0, 0, G_OPTION_ARG_INT, &node, "the node whose pages are counted", "N" },
    { "count", 0, 0, G_OPTION_ARG_INT, &count, "ticks, then exit (0: until killed)", "N" },
    { NULL },
  };
  Range ranges[PROBE_MAX_RANGES];
  guint nr_ranges = 0;
  int rc;

  g_option_context_add_main_entries(context, entries, NULL);
  g_option_context_set_summary(context, "Counts ranges of processes' pages on a node, every "
                                        "period (move_pages(2) status queries).");
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    fprintf(stderr, "hot-probe: %s\n", error->message);
    return 2;
  }
  if (argc < 2 || (guint)argc - 1 > PROBE_MAX_RANGES || every_ms < 10 || every_ms > 60000 ||
      node < 0 || count < 0) {
    fprintf(stderr, "hot-probe: want 1-%u ranges, --every-ms 10-60000, --node >= 0\n",
            PROBE_MAX_RANGES);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    if (!parse_range(argv[i], &ranges[nr_ranges], &error)) {
      fprintf(stderr, "hot-probe: %s\n", error->message);
      free_ranges(ranges, nr_ranges);
      return 2;
    }
    nr_ranges++;
  }

  rc = run_probe(ranges, nr_ranges, every_ms, node, count);
  free_ranges(ranges, nr_ranges);
  return rc;
}
