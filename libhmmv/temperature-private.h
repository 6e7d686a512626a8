/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The temperature's idle step on eight page bytes at once (temperature.c; tested byte for byte
 * against the table in tests/test-temperature.c). */
#pragma once

#include "swar-private.h"

#include <hmmv/temperature.h>

G_STATIC_ASSERT(HMMV_TEMP_DECAY_SHIFT == 4);

/* One idle interval for each byte c of x: c - ceil(c / 16), and one more below 16 (to 0 at
 * the least), as hmmv_temp_tables_init's idle table. take = (c >> 4) + (c & 15 != 0) + (0 < c
 * < 16) is at most 16 a byte, so no carry crosses bytes; c - take borrows only for c = 1 (take
 * 2), whose result is set to 0. */
static inline guint64
hmmv_temp_idle8(guint64 x)
{
  const guint64 low4 = HMMV_SWAR_BYTES(0x0f), seven = HMMV_SWAR_BYTES(0x7f);
  guint64 hi = (x >> 4) & low4;
  guint64 lo_nz = (((x & low4) + seven) & HMMV_SWAR_HIGH) >> 7;
  guint64 hi_z = ((~(hi + seven)) & HMMV_SWAR_HIGH) >> 7;
  guint64 take = hi + lo_nz + (lo_nz & hi_z);
  /* per-byte x - take, exact mod 256 (take < 0x80: no borrow from one byte into the next) */
  guint64 diff = ((x | HMMV_SWAR_HIGH) - take) ^ (~x & HMMV_SWAR_HIGH);
  guint64 ones = hmmv_swar_zero_bytes(x ^ HMMV_SWAR_ONES) >> 7;

  return diff & ~(ones * 0xffu);
}
