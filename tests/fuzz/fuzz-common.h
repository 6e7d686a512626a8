/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared by the libFuzzer targets: input handed to readers that want a path or an fd. */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A memfd holding data (sealable, as hmmvd's own); -1 if the kernel refuses. */
static inline int
fuzz_memfd(const uint8_t *data, size_t size)
{
  int fd = memfd_create("hmmv-fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  if (fd >= 0 && size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Quiet: the code under test logs what it refuses; millions of lines slow the fuzzer. */
static inline void
fuzz_quiet(void)
{
  static gboolean done;

  if (!done) {
    g_log_set_writer_func(g_log_writer_default, NULL, NULL);
    g_log_set_always_fatal(G_LOG_FATAL_MASK);
    g_setenv("G_MESSAGES_DEBUG", "", TRUE);
    done = TRUE;
  }
}
