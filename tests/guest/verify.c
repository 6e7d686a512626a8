/*
 * hmmv test guest, mode=verify: a workload that knows what every word of its memory must hold
 * and checks it continuously, so a host that moves the guest's pages (hmmvd on real NUMA
 * nodes) is caught the moment it loses or mixes up a byte.
 *
 * Every page p of the window holds value(p, w, epoch[p]) in each of its 1024 words; epoch[p]
 * (one byte a page, in this image's .bss, which the host moves like any other RAM) changes
 * when the page is rewritten.  A write picks a page as the workload mode does (hot set, shifting
 * every shift_every writes, hot_ratio percent of the writes), checks one word of it and stores
 * the same value back (the page is written, its contents stay known); every rewrite_every
 * writes that page is checked whole and rewritten with the next epoch (a stale copy of a page
 * then shows); every verify_every writes the next page of a sweep over the whole window is
 * checked whole.  A byte 'q' on COM1 ends the run after one last sweep of every page.
 *
 * The epoch is the byte, in the page and in epoch[]: it wraps from 255 to 0 in both.  (Until
 * 2026-12-03 fill_page() wrote value(p, w, 256) on a page's 256th rewrite and recorded 0, and
 * that page then read as wholly foreign data: the tiering race's "corruption", issue 8.)
 */
#include "guest.h"

#define WORDS_PER_PAGE (PAGE_SIZE / 4u)
#define MAX_PAGES 65536u /* 256 MiB windows */
#define MAX_REPORTED 16u

static uint8_t epoch[MAX_PAGES];

struct verify_state {
    uint32_t base_pfn;
    uint64_t corrupt_words;
    uint64_t corrupt_pages;
    uint64_t verified_pages;
};

/* A value no page of another pfn, word or epoch holds (a mix of all three). */
static uint32_t value(uint32_t pfn, uint32_t word, uint32_t ep)
{
    uint32_t x = pfn * 0x9e3779b1u ^ (word * 0x85ebca6bu) ^ ((ep + 1) * 0xc2b2ae35u);

    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

static volatile uint32_t *page_words(uint32_t pfn)
{
    return (volatile uint32_t *)(uintptr_t)(pfn << PAGE_SHIFT);
}

static void report_corrupt(struct verify_state *st, uint32_t pfn, uint32_t word,
                           uint32_t got, uint32_t want)
{
    st->corrupt_words++;
    if (st->corrupt_words > MAX_REPORTED) {
        return;
    }
    puts_serial("HMMV-VERIFY-CORRUPT");
    put_kv_hex("pfn", pfn);
    put_kv_dec("word", word);
    put_kv_hex("got", got);
    put_kv_hex("want", want);
    put_kv_dec("epoch", epoch[pfn - st->base_pfn]);
    putc_serial('\n');
}

/* Checks every word of page idx of the window; counts it. */
static void verify_page(struct verify_state *st, uint32_t idx)
{
    uint32_t pfn = st->base_pfn + idx;
    uint32_t ep = epoch[idx];
    volatile uint32_t *p = page_words(pfn);
    uint64_t before = st->corrupt_words;
    uint32_t w;

    for (w = 0; w < WORDS_PER_PAGE; w++) {
        uint32_t got = p[w], want = value(pfn, w, ep);

        if (got != want) {
            report_corrupt(st, pfn, w, got, want);
        }
    }
    st->verified_pages++;
    if (st->corrupt_words != before) {
        st->corrupt_pages++;
    }
}

static void fill_page(uint32_t base_pfn, uint32_t idx, uint8_t ep)
{
    uint32_t pfn = base_pfn + idx;
    volatile uint32_t *p = page_words(pfn);
    uint32_t w;

    for (w = 0; w < WORDS_PER_PAGE; w++) {
        p[w] = value(pfn, w, ep);
    }
    epoch[idx] = ep;
}

static void progress(const char *what, uint64_t n, const struct verify_state *st,
                     uint32_t hot_first)
{
    puts_serial(what);
    put_kv_dec("writes", n);
    put_kv_dec("verified_pages", st->verified_pages);
    put_kv_dec("corrupt_pages", st->corrupt_pages);
    put_kv_dec("corrupt_words", st->corrupt_words);
    put_kv_hex("hot_first_pfn", hot_first);
    putc_serial('\n');
}

void run_verify(const struct guest_config *cfg, uint64_t mem_top)
{
    struct verify_state st = { .base_pfn = cfg->base >> PAGE_SHIFT };
    uint32_t hot_pages = cfg->hot_mib * MIB_PAGES;
    uint32_t cold_pages = cfg->cold_mib * MIB_PAGES;
    uint32_t total = hot_pages + cold_pages;
    uint32_t hot_off = 0, sweep = 0, idx;
    /* countdowns, not n % N: no 64-bit division in this guest */
    uint32_t to_rewrite = cfg->rewrite_every, to_verify = cfg->verify_every;
    uint32_t rng = cfg->seed ? cfg->seed : 0x12345678u;
    uint64_t n = 0, next_report = cfg->report_every, next_shift = cfg->shift_every;
    int quit = 0;

    if (total > MAX_PAGES) {
        puts_serial("HMMV-ERROR verify window larger than 256 MiB\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    check_window(st.base_pfn, total, mem_top);
    for (idx = 0; idx < total; idx++) {
        fill_page(st.base_pfn, idx, 0);
    }
    puts_serial("HMMV-VERIFY-BEGIN");
    put_kv_hex("base_pfn", st.base_pfn);
    put_kv_dec("hot_pages", hot_pages);
    put_kv_dec("cold_pages", cold_pages);
    put_kv_dec("hot_ratio", cfg->hot_ratio);
    put_kv_dec("writes", cfg->writes);
    putc_serial('\n');

    while (!quit && (cfg->writes == 0 || n < cfg->writes)) {
        uint32_t r = xorshift32(&rng), pfn, w, want;
        volatile uint32_t *p;

        if (cold_pages == 0 || r % 100 < cfg->hot_ratio) {
            idx = hot_off + xorshift32(&rng) % hot_pages;
        } else {
            idx = hot_off + hot_pages + xorshift32(&rng) % cold_pages;
        }
        if (idx >= total) {
            idx -= total;
        }
        pfn = st.base_pfn + idx;
        p = page_words(pfn);
        n++;
        if (--to_rewrite == 0) {
            to_rewrite = cfg->rewrite_every;
            verify_page(&st, idx);
            fill_page(st.base_pfn, idx, (uint8_t)(epoch[idx] + 1u));
        } else {
            w = (r >> 8) & (WORDS_PER_PAGE - 1);
            want = value(pfn, w, epoch[idx]);
            if (p[w] != want) {
                report_corrupt(&st, pfn, w, p[w], want);
            }
            p[w] = want;
        }
        if (--to_verify == 0) {
            to_verify = cfg->verify_every;
            verify_page(&st, sweep);
            if (++sweep == total) {
                sweep = 0;
            }
        }
        if (cfg->shift_every && n == next_shift) {
            next_shift += cfg->shift_every;
            hot_off += hot_pages;
            if (hot_off >= total) {
                hot_off -= total;
            }
            progress("HMMV-VERIFY-SHIFT", n, &st, st.base_pfn + hot_off);
        }
        if (cfg->report_every && n == next_report) {
            next_report += cfg->report_every;
            progress("HMMV-VERIFY-PROGRESS", n, &st, st.base_pfn + hot_off);
        }
        if (((uint32_t)n & 4095u) == 0 && poll_serial() == 'q') {
            quit = 1;
        }
    }
    /* the last word: every page once more */
    for (idx = 0; idx < total; idx++) {
        verify_page(&st, idx);
    }
    progress("HMMV-VERIFY-END", n, &st, st.base_pfn + hot_off);
    if (st.corrupt_words != 0) {
        guest_exit(EXIT_CORRUPT);
    }
}
