/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmvd.conf: the key file parser and every key's checks. */
#include "config.h"
#include "fuzz-common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  int fd = fuzz_memfd(data, size);
  g_autofree char *path = NULL;
  g_auto(HmmvdConfig) config = { 0 };

  if (fd < 0)
    return 0;
  fuzz_quiet();
  path = g_strdup_printf("/proc/self/fd/%d", fd);
  hmmvd_config_init(&config);
  (void)hmmvd_config_load(&config, path, NULL);
  close(fd);
  return 0;
}
