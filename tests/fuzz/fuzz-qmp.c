/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP replies: the bounded JSON check, the reply parser, and the layout parser
 * (query-hmmv-ramblocks) fed through a transport that answers with the input. */
#include "fuzz-common.h"

#include <hmmv/hmmv.h>
#include <string.h>

typedef struct {
  const uint8_t *data;
  size_t size;
} Reply;

static char *
reply_transact(HmmvQmp *qmp, const char *command_json, GError **error)
{
  Reply *reply = qmp->priv;

  (void)command_json;
  (void)error;
  return g_strndup((const char *)reply->data, reply->size);
}

static const struct hmmv_qmp_ops reply_ops = {
  .name = "fuzz",
  .transact = reply_transact,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  Reply reply = { data, size };
  g_autofree char *text = g_strndup((const char *)data, size);
  g_autoptr(JsonNode) ret = NULL;
  HmmvQmp *qmp;

  fuzz_quiet();
  (void)hmmv_json_check_text((const char *)data, size, HMMV_JSON_MAX_DEPTH, NULL);
  ret = hmmv_qmp_parse_reply(text, NULL);
  qmp = hmmv_qmp_new(&reply_ops, &reply, NULL);
  for (int all = 0; all < 2; all++) {
    GPtrArray *ranges = hmmv_qemu_query_layout(qmp, all, NULL);

    if (ranges != NULL)
      g_ptr_array_unref(ranges);
  }
  qmp->priv = NULL;
  hmmv_qmp_free(qmp);
  return 0;
}
