/*
 * hmmv test guest: the co-run workloads (issue 12).  Each one first writes every page of its
 * footprint (a real program initialises its memory; this also gives a test the exact page
 * set), prints which pages it will write from then on, and then runs operations until `ops`
 * or `seconds` or a `q` byte on COM1, printing the operations done in each second of the
 * CMOS RTC.  Under TCG the RTC follows the host's clock, so the figures are host seconds.
 *
 * The serial lines (README.md, "Co-run workloads"):
 *   HMMV-WL-BEGIN workload=NAME base_pfn=.. pages=.. write_first_pfn=.. write_pages=.. ...
 *   HMMV-WL-READY workload=NAME
 *   HMMV-OPS workload=NAME second=N ops=N total=N
 *   HMMV-WL-SHIFT workload=hotshift ops=N hot_first_pfn=..    (hotshift only)
 *   HMMV-WL-END workload=NAME ops=N seconds=N sink=..
 */
#include "guest.h"

/* How often (operations) the RTC and COM1 are polled: an IO exit under TCG costs a few
 * microseconds, an operation tens to hundreds of nanoseconds. */
#define POLL_EVERY 1024u

struct corun {
    const struct guest_config *cfg;
    const char *name;
    uint32_t base_pfn;
    uint32_t pages;       /* footprint */
    uint32_t rng;
    uint32_t sink;        /* folds what is read, so no load is dead */
    uint64_t total;       /* operations done */
    uint64_t tick_total;  /* total at the last RTC second */
    uint32_t seconds;     /* RTC seconds reported */
    uint32_t last_rtc;
    int started;          /* one RTC second has turned since READY */
};

static volatile uint32_t *word_at(uint32_t pfn, uint32_t word)
{
    return (volatile uint32_t *)(uintptr_t)((pfn << PAGE_SHIFT) + (word << 2));
}

const char *corun_name(enum guest_mode mode)
{
    switch (mode) {
    case MODE_GUPS: return "gups";
    case MODE_KV: return "kv";
    case MODE_HOTSHIFT: return "hotshift";
    case MODE_STREAM: return "stream";
    case MODE_CHASE: return "chase";
    case MODE_BTREE: return "btree";
    default: return "?";
    }
}

/* a 32-bit bijection (murmur3's finaliser): distinct keys from a counter */
static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}

static void init_footprint(struct corun *c)
{
    uint32_t p, w;

    /* zeroed word by word, every page written */
    for (p = 0; p < c->pages; p++) {
        for (w = 0; w < PAGE_SIZE / 4; w++) {
            *word_at(c->base_pfn + p, w) = 0;
        }
    }
}

static void begin(struct corun *c, uint32_t write_first_pfn, uint32_t write_pages)
{
    puts_serial("HMMV-WL-BEGIN workload=");
    puts_serial(c->name);
    put_kv_hex("base_pfn", c->base_pfn);
    put_kv_dec("pages", c->pages);
    put_kv_hex("write_first_pfn", write_first_pfn);
    put_kv_dec("write_pages", write_pages);
    if (c->cfg->mode == MODE_GUPS || c->cfg->mode == MODE_KV) {
        puts_serial(c->cfg->mode == MODE_KV || c->cfg->dist == DIST_ZIPF ? " dist=zipf"
                                                                         : " dist=uniform");
        put_kv_dec("theta", c->cfg->theta);
    }
    put_kv_dec("ops", c->cfg->ops);
    put_kv_dec("seconds", c->cfg->seconds);
    put_kv_dec("seed", c->cfg->seed);
    putc_serial('\n');
    wait_for_host(c->cfg, "workload", 0);
}

static void ready(struct corun *c)
{
    puts_serial("HMMV-WL-READY workload=");
    puts_serial(c->name);
    putc_serial('\n');
    c->last_rtc = rtc_seconds();
}

/* One operation done; FALSE when the run is over. */
static int op_done(struct corun *c)
{
    const struct guest_config *cfg = c->cfg;
    uint32_t now;

    c->total++;
    if (cfg->ops && c->total >= cfg->ops) {
        return 0;
    }
    if ((c->total & (POLL_EVERY - 1)) != 0) {
        return 1;
    }
    if (poll_serial() == 'q') {
        return 0;
    }
    now = rtc_seconds();
    if (now == 0xff || now == c->last_rtc) {
        return 1;
    }
    c->last_rtc = now;
    if (c->started) {
        /* the first, partial second is not reported */
        c->seconds++;
        puts_serial("HMMV-OPS workload=");
        puts_serial(c->name);
        put_kv_dec("second", c->seconds);
        put_kv_dec("ops", c->total - c->tick_total);
        put_kv_dec("total", c->total);
        putc_serial('\n');
        if (cfg->seconds && c->seconds >= cfg->seconds) {
            return 0;
        }
    }
    c->started = 1;
    c->tick_total = c->total;
    return 1;
}

/* GUPS: read-modify-write of one word on a random line of a page drawn uniformly or by
 * Zipf(theta) popularity (ranks scattered over the table). */
static void run_gups(struct corun *c)
{
    struct zipf z;
    uint32_t n = c->pages;

    begin(c, c->base_pfn, c->pages);
    init_footprint(c);
    if (c->cfg->dist == DIST_ZIPF) {
        zipf_init(&z, n, c->cfg->theta);
    }
    ready(c);
    do {
        uint32_t r = xorshift32(&c->rng), page;
        volatile uint32_t *p;

        if (c->cfg->dist == DIST_ZIPF) {
            page = mulmod32(zipf_rank(&z, &c->rng) + 1, 2654435761u, n);
        } else {
            page = xorshift32(&c->rng) % n;
        }
        p = word_at(c->base_pfn + page, r & 1023);
        *p ^= r;
    } while (op_done(c));
}

/*
 * Key-value store: an open-addressing hash table of 64-byte slots (key + 1, version, 14
 * words of value) holding half as many keys as slots (at most ZIPF_MAX_ITEMS); keys drawn
 * by Zipf(theta); a get reads the value, a set writes it.
 */
static void run_kv(struct corun *c)
{
    uint32_t slots = c->pages * (PAGE_SIZE / 64), keys = slots / 2, k, w;
    struct zipf z;

    if (keys > ZIPF_MAX_ITEMS) {
        keys = ZIPF_MAX_ITEMS;
    }
    begin(c, c->base_pfn, c->pages);
    init_footprint(c);
    zipf_init(&z, keys, c->cfg->theta);
    for (k = 0; k < keys; k++) {
        uint32_t s = mulmod32(k + 1, 2654435761u, slots);

        while (*word_at(c->base_pfn, s * 16) != 0) {
            s = s + 1 == slots ? 0 : s + 1;
        }
        *word_at(c->base_pfn, s * 16) = k + 1;
    }
    ready(c);
    do {
        uint32_t r = xorshift32(&c->rng);
        uint32_t key = mulmod32(zipf_rank(&z, &c->rng) + 1, 2654435761u, keys);
        uint32_t s = mulmod32(key + 1, 2654435761u, slots);

        while (*word_at(c->base_pfn, s * 16) != key + 1) {
            s = s + 1 == slots ? 0 : s + 1;
        }
        if (r % 100 < c->cfg->get_ratio) {
            for (w = 2; w < 16; w++) {
                c->sink += *word_at(c->base_pfn, s * 16 + w);
            }
        } else {
            *word_at(c->base_pfn, s * 16 + 1) += 1;
            for (w = 2; w < 16; w++) {
                *word_at(c->base_pfn, s * 16 + w) = r + w;
            }
        }
    } while (op_done(c));
}

/* A hot set (hot_ratio percent of operations) that moves by its own size every
 * shift_every operations; an operation is a read-modify-write of one word. */
static void run_hotshift(struct corun *c)
{
    uint32_t hot = c->cfg->hot_mib * MIB_PAGES, cold, off = 0;
    uint64_t next_shift = c->cfg->shift_every;

    if (hot >= c->pages) {
        puts_serial("HMMV-ERROR hotshift needs hot_mib < mib\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    cold = c->pages - hot;
    begin(c, c->base_pfn, c->pages);
    init_footprint(c);
    ready(c);
    do {
        uint32_t r = xorshift32(&c->rng), idx;

        if (r % 100 < c->cfg->hot_ratio) {
            idx = off + xorshift32(&c->rng) % hot;
        } else {
            idx = off + hot + xorshift32(&c->rng) % cold;
        }
        if (idx >= c->pages) {
            idx -= c->pages;
        }
        *word_at(c->base_pfn + idx, (r >> 8) & 1023) += 1;
        if (c->cfg->shift_every && c->total + 1 == next_shift) {
            next_shift += c->cfg->shift_every;
            off += hot;
            if (off >= c->pages) {
                off -= c->pages;
            }
            puts_serial("HMMV-WL-SHIFT workload=hotshift");
            put_kv_dec("ops", c->total + 1);
            put_kv_hex("hot_first_pfn", c->base_pfn + off);
            putc_serial('\n');
        }
    } while (op_done(c));
}

/* STREAM's triad over three arrays of a third of the footprint each, a[i] = b[i] + 3 c[i];
 * an operation is one 64-byte line of a.  Only a is written after the initialisation. */
static void run_stream(struct corun *c)
{
    uint32_t each = c->pages / 3, lines = each * (PAGE_SIZE / 64), line = 0, w;
    uint32_t a = c->base_pfn, b = a + each, cc = b + each;

    if (each == 0) {
        puts_serial("HMMV-ERROR stream needs 3 pages at least\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    c->pages = each * 3;
    begin(c, a, each);
    init_footprint(c);
    ready(c);
    do {
        uint32_t word0 = line * 16;

        for (w = 0; w < 16; w++) {
            uint32_t i = word0 + w;

            *word_at(a, i) = *word_at(b, i) + 3 * *word_at(cc, i);
        }
        line = line + 1 == lines ? 0 : line + 1;
    } while (op_done(c));
}

/*
 * A read-mostly index: 64-byte nodes linked into one random cycle (Sattolo's algorithm, so
 * every hop is a dependent load to an unpredictable line); a lookup follows `chain` hops
 * and reads the payload where it lands; update_ratio percent of lookups append a 64-byte
 * record to an update log (the last log_mib of the footprint, a ring), the only memory
 * written after the initialisation.
 */
static void run_chase(struct corun *c)
{
    uint32_t log_pages = c->cfg->log_mib * MIB_PAGES, idx_pages, nodes, i, cur = 0;
    uint32_t log_lines, log_pos = 0;

    if (log_pages >= c->pages) {
        puts_serial("HMMV-ERROR chase needs log_mib < mib\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    idx_pages = c->pages - log_pages;
    nodes = idx_pages * (PAGE_SIZE / 64);
    log_lines = log_pages * (PAGE_SIZE / 64);
    begin(c, c->base_pfn + idx_pages, log_pages);
    init_footprint(c);
    /* node i's next pointer in word 0: identity, then Sattolo's shuffle into one cycle */
    for (i = 0; i < nodes; i++) {
        *word_at(c->base_pfn, i * 16) = i;
        *word_at(c->base_pfn, i * 16 + 1) = mix32(i);
    }
    for (i = nodes - 1; i > 0; i--) {
        uint32_t j = xorshift32(&c->rng) % i;
        uint32_t t = *word_at(c->base_pfn, i * 16);

        *word_at(c->base_pfn, i * 16) = *word_at(c->base_pfn, j * 16);
        *word_at(c->base_pfn, j * 16) = t;
    }
    ready(c);
    do {
        uint32_t h;

        for (h = 0; h < c->cfg->chain; h++) {
            cur = *word_at(c->base_pfn, cur * 16);
        }
        c->sink += *word_at(c->base_pfn, cur * 16 + 1);
        if (xorshift32(&c->rng) % 100 < c->cfg->update_ratio) {
            uint32_t pfn = c->base_pfn + idx_pages + (log_pos >> 6);

            *word_at(pfn, (log_pos & 63) * 16) = cur;
            *word_at(pfn, (log_pos & 63) * 16 + 1) = c->sink;
            log_pos = log_pos + 1 == log_lines ? 0 : log_pos + 1;
        }
    } while (op_done(c));
}

/* B+ tree: filled to half its arena at the start, then lookups of keys it holds and
 * (insert_ratio percent) inserts of new keys; once the arena is full an insert updates an
 * existing key instead. */
static void run_btree(struct corun *c)
{
    struct btree t;
    uint32_t nodes = c->pages * (PAGE_SIZE / 256), nkeys = 0, v;

    if (nodes < 8) {
        puts_serial("HMMV-ERROR btree needs 2 pages at least\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    begin(c, c->base_pfn, c->pages);
    init_footprint(c);
    btree_init(&t, (void *)(uintptr_t)(c->base_pfn << PAGE_SHIFT), nodes);
    while (t.used < nodes / 2 && btree_insert(&t, mix32(nkeys), nkeys)) {
        nkeys++;
    }
    ready(c);
    do {
        uint32_t r = xorshift32(&c->rng);

        if (r % 100 < c->cfg->insert_ratio) {
            if (btree_insert(&t, mix32(nkeys), nkeys)) {
                nkeys++;
            } else {
                uint32_t k = xorshift32(&c->rng) % nkeys;

                (void)btree_update(&t, mix32(k), r); /* arena full: an update */
            }
        } else {
            uint32_t k = xorshift32(&c->rng) % nkeys;

            if (!btree_lookup(&t, mix32(k), &v)) {
                puts_serial("HMMV-ERROR btree lost a key\n");
                guest_exit(EXIT_CORRUPT);
            }
            c->sink += v;
        }
    } while (op_done(c));
}

void run_corun(const struct guest_config *cfg, uint64_t mem_top)
{
    struct corun c;

    memset(&c, 0, sizeof(c));
    c.cfg = cfg;
    c.name = corun_name(cfg->mode);
    c.base_pfn = cfg->base >> PAGE_SHIFT;
    c.pages = cfg->mib * MIB_PAGES;
    c.rng = cfg->seed ? cfg->seed : 0x12345678u;
    check_window(c.base_pfn, c.pages, mem_top);
    switch (cfg->mode) {
    case MODE_GUPS: run_gups(&c); break;
    case MODE_KV: run_kv(&c); break;
    case MODE_HOTSHIFT: run_hotshift(&c); break;
    case MODE_STREAM: run_stream(&c); break;
    case MODE_CHASE: run_chase(&c); break;
    default: run_btree(&c); break;
    }
    puts_serial("HMMV-WL-END workload=");
    puts_serial(c.name);
    put_kv_dec("ops", c.total);
    put_kv_dec("seconds", c.seconds);
    put_kv_hex("sink", c.sink);
    putc_serial('\n');
}
