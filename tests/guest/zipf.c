/*
 * hmmv test guest: Zipf-distributed ranks without floating point (the guest is built with
 * -mgeneral-regs-only) and without libgcc (no 64-bit division).
 *
 * Item i (1-based) weighs i^-theta, computed as 2^-(theta * log2 i) in 16.16 fixed point;
 * the cumulative weights sit in a table (1 MiB of .bss for ZIPF_MAX_ITEMS = 2^18 items,
 * below the test window) and a draw is a binary search over it: 18 probes at most.  With
 * theta >= 0.5 the sum stays below 2^32 (at most 2 * sqrt(2^18) * 65536 = 2^26).
 */
#include "guest.h"

static uint32_t zipf_cdf[ZIPF_MAX_ITEMS];

/* 2^-(1/2^j) in Q31, j = 1..16 (computed offline: round(2 ** (-1 / 2 ** j) * 2 ** 31)). */
static const uint32_t exp2_frac[16] = {
    0x5a82799au, 0x6ba27e65u, 0x75606374u, 0x7a92be8bu, 0x7d41d96eu, 0x7e9f0606u,
    0x7f4f08aeu, 0x7fa765adu, 0x7fd3ab29u, 0x7fe9d3a9u, 0x7ff4e959u, 0x7ffa748eu,
    0x7ffd3a3fu, 0x7ffe9d1eu, 0x7fff4e8eu, 0x7fffa747u,
};

/* log2(i) in Q16 for i >= 1: the integer part from the top bit, 16 fraction bits by
 * repeated squaring of the mantissa. */
static uint32_t log2_q16(uint32_t i)
{
    uint32_t n = 31 - (uint32_t)__builtin_clz(i);
    uint64_t m = (uint64_t)i << (31 - n); /* mantissa in [1, 2) as Q31 */
    uint32_t frac = 0, bit;

    for (bit = 0; bit < 16; bit++) {
        m = (m * m) >> 31;
        frac <<= 1;
        if (m >= (1ull << 32)) {
            frac |= 1;
            m >>= 1;
        }
    }
    return (n << 16) | frac;
}

/* 65536 * 2^-(y / 65536), at least 1 (so every item can be drawn). */
static uint32_t exp2_neg_q16(uint32_t y)
{
    uint32_t n = y >> 16, j;
    uint64_t r = 1ull << 31;

    for (j = 0; j < 16; j++) {
        if (y & (1u << (15 - j))) {
            r = (r * exp2_frac[j]) >> 31;
        }
    }
    if (15 + n >= 32) {
        return 1;
    }
    r >>= 15 + n;
    return r ? (uint32_t)r : 1;
}

void zipf_init(struct zipf *z, uint32_t n, uint32_t theta)
{
    uint32_t i, sum = 0;

    if (n > ZIPF_MAX_ITEMS) {
        n = ZIPF_MAX_ITEMS;
    }
    for (i = 0; i < n; i++) {
        sum += exp2_neg_q16(theta * log2_q16(i + 1) / 100);
        zipf_cdf[i] = sum;
    }
    z->n = n;
    z->total = sum;
}

uint32_t zipf_rank(const struct zipf *z, uint32_t *rng)
{
    uint32_t u = (uint32_t)(((uint64_t)xorshift32(rng) * z->total) >> 32);
    uint32_t lo = 0, hi = z->n - 1;

    /* the first rank whose cumulative weight exceeds u */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (zipf_cdf[mid] > u) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}
