/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Eight page bytes in one 64-bit word, for the per-interval scans (temperature, classify,
 * plan): a block of cold pages is found by one compare, and within a mixed block only the
 * pages that need work are visited. Byte j of a word is page base + j (little-endian loads).
 */
#pragma once

#include <glib.h>
#include <string.h>

#define HMMV_SWAR_ONES G_GUINT64_CONSTANT(0x0101010101010101)
#define HMMV_SWAR_HIGH G_GUINT64_CONSTANT(0x8080808080808080)
/* Byte b repeated in all 8 bytes. */
#define HMMV_SWAR_BYTES(b) (HMMV_SWAR_ONES * (guint64)(b))

G_STATIC_ASSERT(G_BYTE_ORDER == G_LITTLE_ENDIAN);

static inline guint64
hmmv_swar_load(const guint8 *bytes)
{
  guint64 word;

  memcpy(&word, bytes, sizeof(word));
  return word;
}

/* 0x80 in every byte of x that is 0, 0 elsewhere (exact: no carries cross bytes). */
static inline guint64
hmmv_swar_zero_bytes(guint64 x)
{
  guint64 low7 = ~HMMV_SWAR_HIGH;

  return ~(((x & low7) + low7) | x) & HMMV_SWAR_HIGH;
}

/* Bit j of bits (0..255) -> 0x80 in byte j. */
static inline guint64
hmmv_swar_spread_bits(guint bits)
{
  guint64 x = bits & 0xffu;

  x = (x | (x << 28)) & G_GUINT64_CONSTANT(0x0000000f0000000f);
  x = (x | (x << 14)) & G_GUINT64_CONSTANT(0x0003000300030003);
  x = (x | (x << 7)) & HMMV_SWAR_ONES;
  return x << 7;
}

/* Index (0..7) of the lowest byte flagged in a non-zero mask of 0x80s. */
static inline guint
hmmv_swar_first(guint64 mask)
{
  return (guint)__builtin_ctzll(mask) >> 3;
}

/* Number of bytes flagged in a mask of 0x80s (a multiply: the baseline x86-64 target has no
 * popcnt instruction, and __builtin_popcountll becomes a library call). */
static inline guint
hmmv_swar_count(guint64 mask)
{
  return (guint)(((mask >> 7) * HMMV_SWAR_ONES) >> 56);
}

/* 0x80 in every byte of x that is below n, for n <= 0x80 (exact: the high bit of each byte is
 * set before the subtraction, so no borrow crosses bytes; bytes >= 0x80 are never below n). */
static inline guint64
hmmv_swar_less_than(guint64 x, guint n)
{
  return ~(((x | HMMV_SWAR_HIGH) - HMMV_SWAR_BYTES(n)) | x) & HMMV_SWAR_HIGH;
}
