/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The LLC model (llc.h).  Each set keeps its lines most recently used first, so a hit moves
 * one line to the front and a miss drops the last one: with 16 ways that is at most 15
 * moves of 8 bytes, cheap beside the TCG memory callback that calls it.
 */
#include "llc.h"

#include <hmmv/error.h>
#include <string.h>

struct _HmmvLlc {
  guint sets;
  guint ways;
  guint64 set_mask;
  guint64 *lines;   /* sets * ways line numbers + 1, MRU first; 0 = empty */
};

HmmvLlc *
hmmv_llc_new(guint64 size_bytes, guint ways, GError **error)
{
  guint64 sets;
  HmmvLlc *llc;

  if (ways == 0 || ways > HMMV_LLC_MAX_WAYS ||
      size_bytes % ((guint64)ways << HMMV_LLC_LINE_SHIFT) != 0) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "LLC of %" G_GUINT64_FORMAT " bytes and %u ways: ways must be 1..%u and "
                "divide the size into 64-byte lines", size_bytes, ways, HMMV_LLC_MAX_WAYS);
    return NULL;
  }
  sets = size_bytes / ((guint64)ways << HMMV_LLC_LINE_SHIFT);
  if (sets == 0 || (sets & (sets - 1)) != 0 || sets > (1u << 24)) {
    g_set_error(error, HMMV_ERROR, HMMV_ERROR_INVALID_ARGUMENT,
                "LLC of %" G_GUINT64_FORMAT " bytes and %u ways has %" G_GUINT64_FORMAT
                " sets: it must be a power of two up to 2^24", size_bytes, ways, sets);
    return NULL;
  }
  llc = g_new0(HmmvLlc, 1);
  llc->sets = (guint)sets;
  llc->ways = ways;
  llc->set_mask = sets - 1;
  llc->lines = g_new0(guint64, sets * ways);
  return llc;
}

void
hmmv_llc_free(HmmvLlc *llc)
{
  if (llc == NULL)
    return;
  g_free(llc->lines);
  g_free(llc);
}

gboolean
hmmv_llc_access(HmmvLlc *llc, guint64 phys_addr)
{
  guint64 line = phys_addr >> HMMV_LLC_LINE_SHIFT;
  guint64 *set = llc->lines + (line & llc->set_mask) * llc->ways;
  guint64 tag = line + 1;
  gboolean hit;
  guint i;

  for (i = 0; i < llc->ways; i++) {
    if (set[i] == tag)
      break;
  }
  if (i == 0)
    return TRUE;   /* already the most recent */
  hit = i < llc->ways;
  if (!hit)
    i = llc->ways - 1;   /* a miss: the least recently used way goes */
  memmove(set + 1, set, i * sizeof(*set));
  set[0] = tag;
  return hit;
}

guint
hmmv_llc_get_sets(const HmmvLlc *llc)
{
  return llc->sets;
}

guint
hmmv_llc_get_ways(const HmmvLlc *llc)
{
  return llc->ways;
}
