/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The idle page tracking read tracker (see reads.h): HMM-V's own way of seeing reads, the
 * page-table accessed bits, through the kernel's /sys/kernel/mm/page_idle/bitmap.
 *
 * One harvest:
 *   1. the pages due: by the temperature key (the multi-level queue's level = key >> 4):
 *      level >= 1 every interval, keys 1..15 (level 0's warm tail) every 2nd interval, key 0
 *      every cold_period-th; a page's turn comes with its 64-page block's, staggered by the
 *      block index, so a VM whose pages are all cold scans 1/cold_period of them an interval;
 *   2. their frames, from /proc/PID/pagemap (8 bytes a page; pages not present are skipped);
 *   3. the bitmap words that hold those frames, read in runs of consecutive words (the
 *      kernel walks every frame of a word it is asked for, but takes the rmap walk only for
 *      the ones marked idle, so foreign frames in our words cost little);
 *   4. a scanned page whose bit is clear was used since its last scan: read;
 *   5. the same words written back with only the scanned frames' bits set: marks exactly
 *      those idle (writing 0 bits changes nothing in the kernel), never another frame.
 *
 * The kernel carries PG_idle across a migration (folio_migrate_flags), so pages hmmv moved
 * keep their state. A frame never marked (a page first touched since) reads "not idle": the
 * page was used, which is right.
 */
#include "../vm-private.h"

#include <errno.h>
#include <fcntl.h>
#include <hmmv/error.h>
#include <hmmv/reads.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGEMAP_PFN_MASK ((G_GUINT64_CONSTANT(1) << 55) - 1)
#define PAGEMAP_PRESENT (G_GUINT64_CONSTANT(1) << 63)
/* Pages whose frames one pagemap read covers, and bitmap words one read takes: 32 KiB. */
#define CHUNK 4096u
/* Words apart that still share a read: a gap of up to 8 words (512 foreign frames, each a
 * flag test in the kernel) is cheaper than another system call. */
#define WORD_GAP 8u

typedef struct {
  guint64 pfn;
  guint64 page;
} Frame;

typedef struct {
  HmmvIdleIo *io;
  guint cold_period;
  int pid;
  guint64 nr_pages;
  guint64 harvests;         /* the interval index scans are staggered by */
  GArray *frames;           /* Frame of the pages scanned, by pfn */
  guint64 *words;           /* CHUNK words */
  guint64 *entries;         /* CHUNK pagemap entries */
  HmmvIdleStats stats;
  gboolean started;
} Idle;

/* ---- the real files ---- */

typedef struct {
  char *bitmap_path;
  char *proc_dir;
  int bitmap_fd;
  int pagemap_pid;
  int pagemap_fd;
} Files;

static gssize
files_bitmap_io(HmmvIdleIo *io, gboolean write_it, guint64 *words, gsize bytes, guint64 offset)
{
  Files *f = io->priv;
  ssize_t n;

  if (f->bitmap_fd < 0) {
    f->bitmap_fd = open(f->bitmap_path, O_RDWR | O_CLOEXEC);
    if (f->bitmap_fd < 0)
      return -errno;
  }
  n = write_it ? pwrite(f->bitmap_fd, words, bytes, (off_t)offset)
               : pread(f->bitmap_fd, words, bytes, (off_t)offset);
  return n < 0 ? -errno : n;
}

static gssize
files_read_bitmap(HmmvIdleIo *io, guint64 *words, gsize bytes, guint64 offset)
{
  return files_bitmap_io(io, FALSE, words, bytes, offset);
}

static gssize
files_write_bitmap(HmmvIdleIo *io, const guint64 *words, gsize bytes, guint64 offset)
{
  return files_bitmap_io(io, TRUE, (guint64 *)words, bytes, offset);
}

static gssize
files_read_pagemap(HmmvIdleIo *io, int pid, guint64 *entries, gsize bytes, guint64 offset)
{
  Files *f = io->priv;
  ssize_t n;

  if (f->pagemap_fd < 0 || f->pagemap_pid != pid) {
    g_autofree char *path = g_strdup_printf("%s/%d/pagemap", f->proc_dir, pid);

    if (f->pagemap_fd >= 0)
      close(f->pagemap_fd);
    f->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->pagemap_fd < 0)
      return -errno;
    f->pagemap_pid = pid;
  }
  n = pread(f->pagemap_fd, entries, bytes, (off_t)offset);
  return n < 0 ? -errno : n;
}

static void
files_destroy(HmmvIdleIo *io)
{
  Files *f = io->priv;

  if (f->bitmap_fd >= 0)
    close(f->bitmap_fd);
  if (f->pagemap_fd >= 0)
    close(f->pagemap_fd);
  g_free(f->bitmap_path);
  g_free(f->proc_dir);
  g_free(f);
}

static const struct hmmv_idle_io_ops files_ops = {
  .name = "files",
  .read_bitmap = files_read_bitmap,
  .write_bitmap = files_write_bitmap,
  .read_pagemap = files_read_pagemap,
  .destroy = files_destroy,
};

HmmvIdleIo *
hmmv_idle_io_new(const struct hmmv_idle_io_ops *ops, gpointer priv)
{
  HmmvIdleIo *io = g_new0(HmmvIdleIo, 1);

  io->ops = ops;
  io->priv = priv;
  return io;
}

HmmvIdleIo *
hmmv_idle_io_new_files(const char *bitmap_path, const char *proc_dir)
{
  Files *f = g_new0(Files, 1);

  f->bitmap_path = g_strdup(bitmap_path != NULL ? bitmap_path : HMMV_IDLE_BITMAP_PATH);
  f->proc_dir = g_strdup(proc_dir != NULL ? proc_dir : "/proc");
  f->bitmap_fd = -1;
  f->pagemap_fd = -1;
  return hmmv_idle_io_new(&files_ops, f);
}

void
hmmv_idle_io_free(HmmvIdleIo *io)
{
  if (io == NULL)
    return;
  if (io->ops->destroy != NULL)
    io->ops->destroy(io);
  g_free(io);
}

gboolean
hmmv_idle_probe(const char *bitmap_path, GError **error)
{
  const char *path = bitmap_path != NULL ? bitmap_path : HMMV_IDLE_BITMAP_PATH;
  int fd = open(path, O_RDWR | O_CLOEXEC);

  if (fd < 0) {
    int saved = errno;

    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED, "idle page tracking: %s: %s%s",
                path, g_strerror(saved),
                saved == ENOENT ? " (kernel built without CONFIG_IDLE_PAGE_TRACKING)" : "");
    return FALSE;
  }
  close(fd);
  return TRUE;
}

/* ---- the tracker ---- */

static guint64
cpu_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (guint64)ts.tv_sec * G_GUINT64_CONSTANT(1000000000) + (guint64)ts.tv_nsec;
}

static gboolean
io_failed(const char *what, gssize n, GError **error)
{
  int err = n < 0 ? (int)-n : EIO;

  g_set_error(error, HMMV_ERROR, err == ESRCH || err == ENOENT ? HMMV_ERROR_GONE : HMMV_ERROR_IO,
              "idle page tracking: %s: %s", what, n < 0 ? g_strerror(err) : "short read");
  return FALSE;
}

/* Is the page due this harvest? (see the top of the file) */
static gboolean
due(const Idle *idle, guint8 key, guint64 page)
{
  guint64 t = idle->harvests + (page >> 6);

  if (key >= 16)
    return TRUE;
  if (key > 0)
    return (t & 1) == 0;
  return t % idle->cold_period == 0;
}

static gint
frame_cmp(gconstpointer a, gconstpointer b)
{
  guint64 x = ((const Frame *)a)->pfn, y = ((const Frame *)b)->pfn;

  return x < y ? -1 : x > y;
}

/* The frames of the due pages (all pages when all is TRUE) of one region. */
static gboolean
collect_region(Idle *idle, HmmvVm *vm, const HmmvRegion *region, gboolean all, GError **error)
{
  const guint8 *temp = hmmv_vm_get_temp(vm);
  gboolean no_pfn = FALSE;

  for (guint64 done = 0; done < region->nr_pages;) {
    guint64 count = MIN(region->nr_pages - done, CHUNK);
    guint64 offset = ((region->hva >> HMMV_PAGE_SHIFT) + done) * 8;
    gssize n = idle->io->ops->read_pagemap(idle->io, idle->pid, idle->entries, count * 8,
                                           offset);

    if (n <= 0 || n % 8 != 0)
      return io_failed("pagemap", n, error);
    count = (guint64)n / 8;
    for (guint64 i = 0; i < count; i++) {
      guint64 page = region->first_page + done + i;
      Frame frame = { idle->entries[i] & PAGEMAP_PFN_MASK, page };

      if (!(idle->entries[i] & PAGEMAP_PRESENT) || (!all && !due(idle, temp[page], page)))
        continue;
      if (frame.pfn == 0) {
        no_pfn = TRUE;
        continue;
      }
      g_array_append_val(idle->frames, frame);
    }
    done += count;
  }
  if (no_pfn && idle->frames->len == 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_NOT_SUPPORTED,
                "idle page tracking: /proc/%d/pagemap shows no frames (hmmvd needs "
                "CAP_SYS_ADMIN)", idle->pid);
    return FALSE;
  }
  return TRUE;
}

/* Steps 3-5 for the frames collected (sorted): marks reads in acc (when not NULL), then
 * marks every frame idle. */
static gboolean
scan_frames(Idle *idle, HmmvAccess *acc, guint64 *nr_read, GError **error)
{
  GArray *frames = idle->frames;
  guint64 words = 0, read = 0, unknown = 0;

  for (guint i = 0; i < frames->len;) {
    guint64 first = g_array_index(frames, Frame, i).pfn >> 6, last = first;
    guint j = i;
    gsize nr;
    gssize n;
    guint64 got;

    /* the run: frames whose words are at most WORD_GAP apart, up to CHUNK words */
    while (j + 1 < frames->len) {
      guint64 w = g_array_index(frames, Frame, j + 1).pfn >> 6;

      if (w - last > WORD_GAP || w - first >= CHUNK)
        break;
      last = w;
      j++;
    }
    nr = (gsize)(last - first + 1);
    n = idle->io->ops->read_bitmap(idle->io, idle->words, nr * 8, first * 8);
    if (n < 0 || n % 8 != 0)
      return io_failed("bitmap read", n, error);
    /* The kernel counts only whole words below its last frame (mm/page_idle.c): when that
     * frame ends a word early, the word's bits never reach user space. Frames there are
     * left unknown (neither read nor idle). */
    got = (guint64)n / 8;
    for (guint k = i; k <= j; k++) {
      const Frame *f = &g_array_index(frames, Frame, k);
      guint64 bit;

      if ((f->pfn >> 6) - first >= got) {
        unknown++;
        continue;
      }
      bit = (idle->words[(f->pfn >> 6) - first] >> (f->pfn & 63)) & 1;
      if (!bit) {
        read++;
        if (acc != NULL)
          hmmv_access_mark_read(acc, f->page);
      }
    }
    memset(idle->words, 0, nr * 8);
    for (guint k = i; k <= j; k++) {
      const Frame *f = &g_array_index(frames, Frame, k);

      idle->words[(f->pfn >> 6) - first] |= G_GUINT64_CONSTANT(1) << (f->pfn & 63);
    }
    if (got > 0) {
      n = idle->io->ops->write_bitmap(idle->io, idle->words, got * 8, first * 8);
      if (n < 0 || n % 8 != 0)
        return io_failed("bitmap write", n, error);
    }
    words += nr;
    i = j + 1;
  }
  idle->stats.last_words = words;
  idle->stats.unknown += unknown;
  *nr_read = read;
  return TRUE;
}

static gboolean
collect(Idle *idle, HmmvVm *vm, gboolean all, GError **error)
{
  g_array_set_size(idle->frames, 0);
  for (guint r = 0; r < hmmv_vm_get_nr_regions(vm); r++)
    if (!collect_region(idle, vm, hmmv_vm_get_region(vm, r), all, error))
      return FALSE;
  /* THP and hugetlbfs give several guest pages frames in one word; sorting puts each word's
   * frames together. */
  g_array_sort(idle->frames, frame_cmp);
  return TRUE;
}

static gboolean
idle_start(HmmvTracker *tracker, HmmvVm *vm, GError **error)
{
  Idle *idle = tracker->priv;
  guint64 t0 = cpu_ns(), read;

  idle->pid = hmmv_vm_get_pid(vm);
  if (idle->pid <= 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "idle page tracking needs the QEMU process id of vm %s", hmmv_vm_get_name(vm));
    return FALSE;
  }
  for (guint r = 0; r < hmmv_vm_get_nr_regions(vm); r++)
    if (hmmv_vm_get_region(vm, r)->hva == 0) {
      g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                  "region %s of vm %s has no host address", hmmv_vm_get_region(vm, r)->name,
                  hmmv_vm_get_name(vm));
      return FALSE;
    }
  idle->nr_pages = hmmv_vm_get_nr_pages(vm);
  idle->harvests = 0;
  /* Every present page marked idle: the first harvest reports what was used since. */
  if (!collect(idle, vm, TRUE, error) || !scan_frames(idle, NULL, &read, error))
    return FALSE;
  idle->stats.cpu_ns += cpu_ns() - t0;
  idle->started = TRUE;
  return TRUE;
}

static gboolean
idle_harvest(HmmvTracker *tracker, HmmvVm *vm, HmmvAccess *acc, GError **error)
{
  Idle *idle = tracker->priv;
  guint64 t0 = cpu_ns(), read = 0;

  if (!idle->started) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "idle page tracker not started");
    return FALSE;
  }
  if (hmmv_vm_get_nr_pages(vm) != idle->nr_pages) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_LAYOUT_CHANGED, "vm %s: %" G_GUINT64_FORMAT
                " pages, tracking started with %" G_GUINT64_FORMAT, hmmv_vm_get_name(vm),
                hmmv_vm_get_nr_pages(vm), idle->nr_pages);
    return FALSE;
  }
  if (!collect(idle, vm, FALSE, error) || !scan_frames(idle, acc, &read, error))
    return FALSE;
  acc->has_reads = TRUE;
  acc->intervals = MAX(acc->intervals, 1u);
  idle->harvests++;
  idle->stats.harvests++;
  idle->stats.last_scanned = idle->frames->len;
  idle->stats.last_read = read;
  idle->stats.scanned += idle->frames->len;
  idle->stats.cpu_ns += cpu_ns() - t0;
  return TRUE;
}

static void
idle_stop(HmmvTracker *tracker)
{
  Idle *idle = tracker->priv;

  /* Nothing to give back: the idle flags hmmv set are what any reader of the bitmap sets,
   * and the kernel's reclaim keeps its own view (folio_set_young on a cleared pte). */
  idle->started = FALSE;
}

static void
idle_destroy(HmmvTracker *tracker)
{
  Idle *idle = tracker->priv;

  hmmv_idle_io_free(idle->io);
  g_array_unref(idle->frames);
  g_free(idle->words);
  g_free(idle->entries);
  g_free(idle);
}

static const struct hmmv_tracker_ops idle_ops = {
  .name = "idle-page",
  .start = idle_start,
  .harvest = idle_harvest,
  .stop = idle_stop,
  .destroy = idle_destroy,
};

HmmvTracker *
hmmv_idle_tracker_new(const HmmvIdleOptions *options, GError **error)
{
  Idle *idle = g_new0(Idle, 1);

  idle->io = options->io != NULL ? options->io : hmmv_idle_io_new_files(NULL, NULL);
  idle->cold_period = options->cold_period != 0 ? options->cold_period : 8;
  idle->frames = g_array_new(FALSE, FALSE, sizeof(Frame));
  idle->words = g_new0(guint64, CHUNK);
  idle->entries = g_new0(guint64, CHUNK);
  return hmmv_tracker_new(&idle_ops, idle, error);
}

gboolean
hmmv_idle_tracker_get_stats(HmmvTracker *tracker, HmmvIdleStats *stats)
{
  if (tracker == NULL || tracker->ops != &idle_ops)
    return FALSE;
  *stats = ((Idle *)tracker->priv)->stats;
  return TRUE;
}
