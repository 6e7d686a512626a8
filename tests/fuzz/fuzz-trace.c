/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The trace file reader: header, intervals, rewind. */
#include "fuzz-common.h"

#include <hmmv/hmmv.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  int fd = fuzz_memfd(data, size);
  g_autofree char *path = NULL;
  HmmvTraceReader *reader;

  if (fd < 0)
    return 0;
  path = g_strdup_printf("/proc/self/fd/%d", fd);
  reader = hmmv_trace_reader_new(path, NULL);
  if (reader != NULL) {
    for (int pass = 0; pass < 2; pass++) {
      const HmmvTraceEntry *entries;
      gsize nr_entries;
      guint64 compute_ns;

      /* At most 1000 intervals: the input is small, a loop that never ends is a finding. */
      for (int i = 0; i < 1000 && hmmv_trace_reader_next(reader, &entries, &nr_entries,
                                                         &compute_ns, NULL); i++)
        ;
      if (!hmmv_trace_reader_rewind(reader, NULL))
        break;
    }
    hmmv_trace_reader_free(reader);
  }
  close(fd);
  return 0;
}
