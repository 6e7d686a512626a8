/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The access trace file format (layout in trace.h): a buffered stdio writer and a reader that
 * checks every size against the file before it allocates, so a corrupt or hostile trace gives
 * HMMV_ERROR_CORRUPT with the byte offset, never a crash or a huge allocation.
 */
#include <hmmv/error.h>
#include <hmmv/trace.h>

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define TRACE_HEADER_BYTES 32
#define INTERVAL_HEADER_BYTES 24
#define INTERVAL_HEADER_V2_BYTES 32
#define TRACE_KNOWN_FLAGS (HMMV_TRACE_HAS_READS | HMMV_TRACE_HAS_INSTRUCTIONS | \
                           HMMV_TRACE_HAS_STORED)
#define ENTRY_STORED_BIT (G_GUINT64_CONSTANT(1) << 63)
#define ENTRY_BYTES 16
#define TRACE_PAGE_SHIFT 12u
/* 2^40 pages (4 PiB), the same bound as a VM's layout. */
#define TRACE_MAX_PAGES (G_GUINT64_CONSTANT(1) << 40)
/* Entries encoded per fwrite by the writer: 4096 x 16 B = 64 KiB of stack-free scratch. */
#define WRITE_CHUNK_ENTRIES 4096

/* Entries read per fread by the reader, decoded from its raw chunk. */
#define READ_CHUNK_ENTRIES 4096

struct _HmmvTraceWriter {
  FILE *file;
  char *path;
  HmmvTraceInfo info;
  guint64 next_index;
  guint8 *chunk;            /* WRITE_CHUNK_ENTRIES * ENTRY_BYTES */
};

struct _HmmvTraceReader {
  FILE *file;
  char *path;
  HmmvTraceInfo info;
  guint64 file_bytes;       /* size at open; every count is checked against it */
  guint64 offset;           /* bytes consumed so far */
  guint64 next_index;
  HmmvTraceEntry *entries;
  gsize capacity;
  guint8 *chunk;            /* READ_CHUNK_ENTRIES * ENTRY_BYTES */
  gboolean corrupt;         /* sticky until rewind: the stream position is no longer trusted */
};

static void
put_u32(guint8 *buf, guint32 value)
{
  value = GUINT32_TO_LE(value);
  memcpy(buf, &value, sizeof(value));
}

static void
put_u64(guint8 *buf, guint64 value)
{
  value = GUINT64_TO_LE(value);
  memcpy(buf, &value, sizeof(value));
}

static guint32
get_u32(const guint8 *buf)
{
  guint32 value;

  memcpy(&value, buf, sizeof(value));
  return GUINT32_FROM_LE(value);
}

static guint64
get_u64(const guint8 *buf)
{
  guint64 value;

  memcpy(&value, buf, sizeof(value));
  return GUINT64_FROM_LE(value);
}

/* Shared by the writer (caller's input) and the reader (file contents). */
static gboolean
check_entries(const HmmvTraceEntry *entries, gsize nr_entries, guint64 nr_pages,
              guint64 *bad_index)
{
  for (gsize i = 0; i < nr_entries; i++) {
    if (entries[i].page >= nr_pages || (i > 0 && entries[i].page <= entries[i - 1].page)) {
      *bad_index = i;
      return FALSE;
    }
  }
  return TRUE;
}

/* The version a trace of these flags has: 3 with stored bits, 2 with instruction counts. */
static guint32
version_of(guint32 flags)
{
  if (flags & HMMV_TRACE_HAS_STORED)
    return HMMV_TRACE_VERSION_STORED;
  return (flags & HMMV_TRACE_HAS_INSTRUCTIONS) ? HMMV_TRACE_VERSION_INSTRUCTIONS
                                               : HMMV_TRACE_VERSION;
}

/* Version 2 and 3 exactly when the trace counts instructions: a version 1 reader refuses it. */
static gsize
interval_header_bytes(guint32 flags)
{
  return (flags & HMMV_TRACE_HAS_INSTRUCTIONS) ? INTERVAL_HEADER_V2_BYTES
                                               : INTERVAL_HEADER_BYTES;
}

static void
set_io_error(GError **error, const char *path, const char *what, int errsv)
{
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_IO, "trace %s: %s: %s", path, what,
              g_strerror(errsv));
}

/* ---- writer ---- */

void
hmmv_trace_writer_free(HmmvTraceWriter *writer)
{
  if (writer == NULL)
    return;
  if (writer->file != NULL)
    fclose(writer->file);
  g_free(writer->path);
  g_free(writer->chunk);
  g_free(writer);
}

HmmvTraceWriter *
hmmv_trace_writer_new(const char *path, const HmmvTraceInfo *info, GError **error)
{
  g_autoptr(HmmvTraceWriter) writer = NULL;
  guint8 header[TRACE_HEADER_BYTES] = { 0 };

  if (info->nr_pages == 0 || info->nr_pages > TRACE_MAX_PAGES ||
      (info->flags & ~TRACE_KNOWN_FLAGS) != 0 ||
      ((info->flags & HMMV_TRACE_HAS_STORED) && !(info->flags & HMMV_TRACE_HAS_INSTRUCTIONS))) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "trace %s: nr_pages %" G_GUINT64_FORMAT " (must be 1..2^40) or flags 0x%x "
                "out of range", path, info->nr_pages, info->flags);
    return NULL;
  }
  writer = g_new0(HmmvTraceWriter, 1);
  writer->path = g_strdup(path);
  writer->info = *info;
  writer->chunk = g_malloc(WRITE_CHUNK_ENTRIES * ENTRY_BYTES);
  writer->file = fopen(path, "wb");
  if (writer->file == NULL) {
    set_io_error(error, path, "cannot create", errno);
    return NULL;
  }
  memcpy(header, HMMV_TRACE_MAGIC, 8);
  put_u32(header + 8, version_of(info->flags));
  put_u32(header + 12, TRACE_PAGE_SHIFT);
  put_u64(header + 16, info->nr_pages);
  put_u32(header + 24, info->interval_ms);
  put_u32(header + 28, info->flags);
  if (fwrite(header, sizeof(header), 1, writer->file) != 1) {
    set_io_error(error, path, "cannot write the header", errno);
    return NULL;
  }
  return g_steal_pointer(&writer);
}

static gboolean
write_entries(HmmvTraceWriter *writer, const HmmvTraceEntry *entries, gsize nr_entries,
              GError **error)
{
  for (gsize done = 0; done < nr_entries;) {
    gsize n = MIN(nr_entries - done, (gsize)WRITE_CHUNK_ENTRIES);

    for (gsize i = 0; i < n; i++) {
      guint8 *out = writer->chunk + i * ENTRY_BYTES;

      const HmmvTraceEntry *e = &entries[done + i];

      put_u64(out, e->page | (e->stored ? ENTRY_STORED_BIT : 0));
      put_u32(out + 8, e->reads);
      put_u32(out + 12, e->writes);
    }
    if (fwrite(writer->chunk, ENTRY_BYTES, n, writer->file) != n) {
      set_io_error(error, writer->path, "cannot write entries", errno);
      return FALSE;
    }
    done += n;
  }
  return TRUE;
}

gboolean
hmmv_trace_writer_add_interval(HmmvTraceWriter *writer, guint64 compute_ns,
                               const HmmvTraceEntry *entries, gsize nr_entries, GError **error)
{
  HmmvTraceInterval interval = { .compute_ns = compute_ns };

  return hmmv_trace_writer_add_interval_full(writer, &interval, entries, nr_entries, error);
}

gboolean
hmmv_trace_writer_add_interval_full(HmmvTraceWriter *writer, const HmmvTraceInterval *interval,
                                    const HmmvTraceEntry *entries, gsize nr_entries,
                                    GError **error)
{
  guint8 header[INTERVAL_HEADER_V2_BYTES];
  gsize header_bytes = interval_header_bytes(writer->info.flags);
  guint64 bad = 0;

  if (writer->file == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT, "trace %s is closed",
                writer->path);
    return FALSE;
  }
  if (nr_entries > HMMV_TRACE_MAX_ENTRIES) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "trace %s: interval %" G_GUINT64_FORMAT ": %" G_GSIZE_FORMAT
                " entries exceed the format's bound of %u", writer->path, writer->next_index,
                nr_entries, HMMV_TRACE_MAX_ENTRIES);
    return FALSE;
  }
  if (!(writer->info.flags & HMMV_TRACE_HAS_STORED))
    for (gsize i = 0; i < nr_entries; i++)
      if (entries[i].stored) {
        g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                    "trace %s: interval %" G_GUINT64_FORMAT ": entry %" G_GSIZE_FORMAT
                    " is stored but the trace has no stored bits (HMMV_TRACE_HAS_STORED)",
                    writer->path, writer->next_index, i);
        return FALSE;
      }
  if (!check_entries(entries, nr_entries, writer->info.nr_pages, &bad)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "trace %s: interval %" G_GUINT64_FORMAT ": entry %" G_GUINT64_FORMAT
                " (page %" G_GUINT64_FORMAT ") is out of range or not ascending",
                writer->path, writer->next_index, bad, entries[bad].page);
    return FALSE;
  }
  put_u32(header, HMMV_TRACE_INTERVAL_MAGIC);
  put_u32(header + 4, (guint32)nr_entries);
  put_u64(header + 8, interval->compute_ns);
  put_u64(header + 16, writer->next_index);
  put_u64(header + 24, interval->instructions);
  if (fwrite(header, header_bytes, 1, writer->file) != 1) {
    set_io_error(error, writer->path, "cannot write an interval header", errno);
    return FALSE;
  }
  if (!write_entries(writer, entries, nr_entries, error))
    return FALSE;
  writer->next_index++;
  return TRUE;
}

/* Closes the file; the writer itself is still freed with hmmv_trace_writer_free(). */
gboolean
hmmv_trace_writer_close(HmmvTraceWriter *writer, GError **error)
{
  FILE *file = writer->file;
  gboolean failed;
  int errsv;

  if (file == NULL)
    return TRUE;
  writer->file = NULL;
  failed = fflush(file) != 0 || ferror(file);
  errsv = errno;
  if (fclose(file) != 0 && !failed) {
    failed = TRUE;
    errsv = errno;
  }
  if (failed) {
    set_io_error(error, writer->path, "cannot flush", errsv);
    return FALSE;
  }
  return TRUE;
}

/* ---- reader ---- */

static gboolean
corrupt(HmmvTraceReader *reader, GError **error, guint64 offset, const char *format, ...)
  G_GNUC_PRINTF(4, 5);

static gboolean
corrupt(HmmvTraceReader *reader, GError **error, guint64 offset, const char *format, ...)
{
  g_autofree char *what = NULL;
  va_list args;

  va_start(args, format);
  what = g_strdup_vprintf(format, args);
  va_end(args);
  reader->corrupt = TRUE;
  g_set_error(error, HMMV_ERROR, HMMV_ERROR_CORRUPT, "trace %s: at byte %" G_GUINT64_FORMAT
              ": %s", reader->path, offset, what);
  return FALSE;
}

void
hmmv_trace_reader_free(HmmvTraceReader *reader)
{
  if (reader == NULL)
    return;
  if (reader->file != NULL)
    fclose(reader->file);
  g_free(reader->path);
  g_free(reader->entries);
  g_free(reader->chunk);
  g_free(reader);
}

static gboolean
parse_header(HmmvTraceReader *reader, const guint8 *header, GError **error)
{
  guint32 version = get_u32(header + 8);
  guint32 page_shift = get_u32(header + 12);

  if (memcmp(header, HMMV_TRACE_MAGIC, 8) != 0)
    return corrupt(reader, error, 0, "not an hmmv trace (bad magic)");
  if (version != HMMV_TRACE_VERSION && version != HMMV_TRACE_VERSION_INSTRUCTIONS &&
      version != HMMV_TRACE_VERSION_STORED)
    return corrupt(reader, error, 8, "unsupported version %u (expected %u, %u or %u)",
                   version, HMMV_TRACE_VERSION, HMMV_TRACE_VERSION_INSTRUCTIONS,
                   HMMV_TRACE_VERSION_STORED);
  if (page_shift != TRACE_PAGE_SHIFT)
    return corrupt(reader, error, 12, "page_shift %u (expected %u)", page_shift,
                   TRACE_PAGE_SHIFT);
  reader->info.nr_pages = get_u64(header + 16);
  reader->info.interval_ms = get_u32(header + 24);
  reader->info.flags = get_u32(header + 28);
  if (reader->info.nr_pages == 0 || reader->info.nr_pages > TRACE_MAX_PAGES)
    return corrupt(reader, error, 16, "nr_pages %" G_GUINT64_FORMAT " is not in 1..2^40",
                   reader->info.nr_pages);
  if ((reader->info.flags & ~TRACE_KNOWN_FLAGS) != 0)
    return corrupt(reader, error, 28, "unknown flags 0x%x", reader->info.flags);
  if (version != version_of(reader->info.flags) ||
      ((reader->info.flags & HMMV_TRACE_HAS_STORED) &&
       !(reader->info.flags & HMMV_TRACE_HAS_INSTRUCTIONS)))
    return corrupt(reader, error, 28, "flags 0x%x do not match version %u",
                   reader->info.flags, version);
  return TRUE;
}

HmmvTraceReader *
hmmv_trace_reader_new(const char *path, GError **error)
{
  g_autoptr(HmmvTraceReader) reader = g_new0(HmmvTraceReader, 1);
  guint8 header[TRACE_HEADER_BYTES];
  struct stat st;

  reader->path = g_strdup(path);
  reader->file = fopen(path, "rb");
  if (reader->file == NULL) {
    int errsv = errno;

    g_set_error(error, HMMV_ERROR, errsv == ENOENT ? HMMV_ERROR_NOT_FOUND : HMMV_ERROR_IO,
                "trace %s: cannot open: %s", path, g_strerror(errsv));
    return NULL;
  }
  if (fstat(fileno(reader->file), &st) != 0) {
    set_io_error(error, path, "cannot stat", errno);
    return NULL;
  }
  reader->file_bytes = (guint64)st.st_size;
  if (reader->file_bytes < TRACE_HEADER_BYTES ||
      fread(header, sizeof(header), 1, reader->file) != 1) {
    corrupt(reader, error, MIN(reader->file_bytes, TRACE_HEADER_BYTES),
            "truncated file header (%" G_GUINT64_FORMAT " bytes)", reader->file_bytes);
    return NULL;
  }
  if (!parse_header(reader, header, error))
    return NULL;
  reader->offset = TRACE_HEADER_BYTES;
  reader->chunk = g_malloc(READ_CHUNK_ENTRIES * ENTRY_BYTES);
  return g_steal_pointer(&reader);
}

const HmmvTraceInfo *
hmmv_trace_reader_get_info(const HmmvTraceReader *reader)
{
  return &reader->info;
}

/* Makes room for nr entries; nr was already bounded by the file size. */
static gboolean
reserve_entries(HmmvTraceReader *reader, gsize nr, GError **error)
{
  HmmvTraceEntry *grown;

  if (nr <= reader->capacity)
    return TRUE;
  grown = g_try_renew(HmmvTraceEntry, reader->entries, nr);
  if (grown == NULL) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_FAILED,
                "trace %s: out of memory for %" G_GSIZE_FORMAT " entries", reader->path, nr);
    return FALSE;
  }
  reader->entries = grown;
  reader->capacity = nr;
  return TRUE;
}

/* Reads and checks one interval header; *nr_entries is bounded by the bytes left. */
static gboolean
read_interval_header(HmmvTraceReader *reader, gboolean *eof, guint32 *nr_entries,
                     HmmvTraceInterval *interval, GError **error)
{
  guint8 header[INTERVAL_HEADER_V2_BYTES];
  gsize header_bytes = interval_header_bytes(reader->info.flags);
  guint64 at = reader->offset;
  guint64 left = reader->file_bytes > at ? reader->file_bytes - at : 0;
  size_t got = fread(header, 1, header_bytes, reader->file);
  guint64 index;

  *eof = FALSE;
  if (got == 0 && left == 0 && feof(reader->file)) {
    *eof = TRUE;
    return FALSE;
  }
  if (got != header_bytes)
    return corrupt(reader, error, at + got, "truncated interval header (%zu of %zu bytes)",
                   got, header_bytes);
  reader->offset += header_bytes;
  left = reader->file_bytes > reader->offset ? reader->file_bytes - reader->offset : 0;
  if (get_u32(header) != HMMV_TRACE_INTERVAL_MAGIC)
    return corrupt(reader, error, at, "bad interval magic 0x%08x", get_u32(header));
  *nr_entries = get_u32(header + 4);
  interval->compute_ns = get_u64(header + 8);
  interval->instructions = header_bytes > INTERVAL_HEADER_BYTES ? get_u64(header + 24) : 0;
  index = get_u64(header + 16);
  if (index != reader->next_index)
    return corrupt(reader, error, at + 16, "interval index %" G_GUINT64_FORMAT
                   " where %" G_GUINT64_FORMAT " was expected", index, reader->next_index);
  if (*nr_entries > HMMV_TRACE_MAX_ENTRIES || *nr_entries > left / ENTRY_BYTES)
    return corrupt(reader, error, at + 4, "interval %" G_GUINT64_FORMAT " claims %u entries "
                   "but only %" G_GUINT64_FORMAT " bytes are left", index, *nr_entries, left);
  return TRUE;
}

/* nr entries from the file into reader->entries, decoded: the stored bit out of the page
 * (version 3), or writes > 0 (versions 1 and 2: read as before). */
static gboolean
read_entries(HmmvTraceReader *reader, guint32 nr, guint64 at, GError **error)
{
  gboolean has_stored = (reader->info.flags & HMMV_TRACE_HAS_STORED) != 0;

  for (guint32 done = 0; done < nr;) {
    guint32 n = MIN(nr - done, (guint32)READ_CHUNK_ENTRIES);
    size_t got = fread(reader->chunk, ENTRY_BYTES, n, reader->file);

    if (got != n)
      return corrupt(reader, error, at + ((guint64)done + got) * ENTRY_BYTES,
                     "truncated entries (%zu of %u)", done + got, nr);
    for (guint32 i = 0; i < n; i++) {
      const guint8 *in = reader->chunk + (gsize)i * ENTRY_BYTES;
      HmmvTraceEntry *e = &reader->entries[done + i];
      guint64 page = get_u64(in);

      e->reads = get_u32(in + 8);
      e->writes = get_u32(in + 12);
      e->stored = has_stored ? (page & ENTRY_STORED_BIT) != 0 : e->writes > 0;
      /* without stored bits, bit 63 is a page out of range: check_entries refuses it */
      e->page = has_stored ? page & ~ENTRY_STORED_BIT : page;
    }
    done += n;
  }
  return TRUE;
}

gboolean
hmmv_trace_reader_next(HmmvTraceReader *reader, const HmmvTraceEntry **entries,
                       gsize *nr_entries, guint64 *compute_ns, GError **error)
{
  HmmvTraceInterval interval;

  if (!hmmv_trace_reader_next_interval(reader, &interval, entries, nr_entries, error))
    return FALSE;
  *compute_ns = interval.compute_ns;
  return TRUE;
}

gboolean
hmmv_trace_reader_next_interval(HmmvTraceReader *reader, HmmvTraceInterval *interval,
                                const HmmvTraceEntry **entries, gsize *nr_entries,
                                GError **error)
{
  guint64 at, bad = 0;
  guint32 nr = 0;
  gboolean eof;

  if (reader->corrupt)
    return corrupt(reader, error, reader->offset, "trace already failed a check");
  if (!read_interval_header(reader, &eof, &nr, interval, error))
    return FALSE;
  at = reader->offset;
  if (!reserve_entries(reader, nr, error))
    return FALSE;
  if (!read_entries(reader, nr, at, error))
    return FALSE;
  if (!check_entries(reader->entries, nr, reader->info.nr_pages, &bad))
    return corrupt(reader, error, at + bad * ENTRY_BYTES, "page %" G_GUINT64_FORMAT
                   " is out of range (nr_pages %" G_GUINT64_FORMAT ") or not ascending",
                   reader->entries[bad].page, reader->info.nr_pages);
  reader->offset += (guint64)nr * ENTRY_BYTES;
  reader->next_index++;
  *entries = reader->entries;
  *nr_entries = nr;
  return TRUE;
}

gboolean
hmmv_trace_reader_rewind(HmmvTraceReader *reader, GError **error)
{
  if (fseeko(reader->file, TRACE_HEADER_BYTES, SEEK_SET) != 0) {
    set_io_error(error, reader->path, "cannot rewind", errno);
    return FALSE;
  }
  reader->offset = TRACE_HEADER_BYTES;
  reader->next_index = 0;
  reader->corrupt = FALSE;
  return TRUE;
}
