/*
 * hmmv test guest: the command line (see README.md), key=value words into struct
 * guest_config, each value range-checked; a bad word ends the run with EXIT_BAD_CMDLINE.
 * No 64-bit division (no libgcc): parse_u64 checks overflow with shifts and compares.
 */
#include "guest.h"

static int streq_n(const char *a, size_t alen, const char *b)
{
    size_t i;

    for (i = 0; i < alen; i++) {
        if (b[i] != a[i]) {
            return 0;
        }
    }
    return b[alen] == '\0';
}

/*
 * Parse decimal or 0x-hex with an optional K/M/G suffix into a value no
 * larger than max.  Overflow-checked without 64-bit division.
 */
static int parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0, limit;
    unsigned int shift = 0, base = 10;
    size_t i = 0;

    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (len > i) {
        switch (s[len - 1]) {
        case 'k': case 'K': shift = 10; len--; break;
        case 'm': case 'M': shift = 20; len--; break;
        case 'g': case 'G': shift = 30; len--; break;
        default: break;
        }
    }
    if (i == len) {
        return 0;
    }
    /* v * base cannot overflow while v <= limit. */
    limit = base == 16 ? (~0ull >> 4) : 1844674407370955161ull;
    for (; i < len; i++) {
        char c = s[i];
        uint32_t d;

        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (base == 16 && c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (base == 16 && c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            return 0;
        }
        if (v > limit) {
            return 0;
        }
        v *= base;
        if (v > ~0ull - d) {
            return 0;
        }
        v += d;
        if (v > max) {
            return 0;
        }
    }
    if (v > (max >> shift)) {
        return 0;
    }
    *out = v << shift;
    return 1;
}

void config_defaults(struct guest_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->mode = MODE_PHASES;
    cfg->pattern = PATTERN_SEQ;
    cfg->phases = 3;
    cfg->pages = 256;
    cfg->stride = 1;
    cfg->span = 4096;
    cfg->passes = 1;
    cfg->base = 16u << 20;
    cfg->seed = 1;
    cfg->wait = 0;
    cfg->exit = 1;
    cfg->mark = 0;
    cfg->hot_mib = 8;
    cfg->cold_mib = 56;
    cfg->hot_ratio = 90;
    cfg->writes = 0;
    cfg->shift_every = 0;
    cfg->shifts = 0;
    cfg->report_every = 1u << 20;
    cfg->verify_every = 16;
    cfg->rewrite_every = 64;
    cfg->read_pages = 2048;
    cfg->read_chunk = 64;
    cfg->read_stride = 256;
    cfg->write_pages = 0;
    cfg->write_ratio = 0;
    cfg->late_pages = 0;
    cfg->accesses = 0;
    cfg->mib = 16;
    cfg->dist = DIST_ZIPF;
    cfg->theta = 99;
    cfg->get_ratio = 95;
    cfg->insert_ratio = 10;
    cfg->update_ratio = 1;
    cfg->chain = 8;
    cfg->log_mib = 1;
    cfg->ops = 0;
    cfg->seconds = 0;
}

static void bad_param(const char *tok, size_t len, const char *why)
{
    size_t i;

    puts_serial("HMMV-ERROR ");
    puts_serial(why);
    puts_serial(": ");
    for (i = 0; i < len; i++) {
        putc_serial(tok[i]);
    }
    putc_serial('\n');
    guest_exit(EXIT_BAD_CMDLINE);
}

static void parse_param(struct guest_config *cfg, const char *tok, size_t len)
{
    const struct {
        const char *key;
        int is64;
        size_t offset;
        uint64_t min, max;
    } nums[] = {
        { "phases", 0, offsetof(struct guest_config, phases), 1, 1000000 },
        { "pages", 0, offsetof(struct guest_config, pages), 1, 1u << 20 },
        { "stride", 0, offsetof(struct guest_config, stride), 1, 1u << 20 },
        { "span", 0, offsetof(struct guest_config, span), 1, 1u << 20 },
        { "passes", 0, offsetof(struct guest_config, passes), 1, 1000000 },
        { "base", 0, offsetof(struct guest_config, base), 0, 0xfffff000u },
        { "seed", 0, offsetof(struct guest_config, seed), 0, 0xffffffffu },
        { "wait", 0, offsetof(struct guest_config, wait), 0, 1 },
        { "exit", 0, offsetof(struct guest_config, exit), 0, 1 },
        { "mark", 0, offsetof(struct guest_config, mark), 0, 1000000 },
        { "hot_mib", 0, offsetof(struct guest_config, hot_mib), 1, 4095 },
        { "cold_mib", 0, offsetof(struct guest_config, cold_mib), 0, 4095 },
        { "hot_ratio", 0, offsetof(struct guest_config, hot_ratio), 0, 100 },
        { "writes", 1, offsetof(struct guest_config, writes), 0, ~0ull },
        { "shift_every", 1, offsetof(struct guest_config, shift_every), 0,
          ~0ull },
        { "shifts", 0, offsetof(struct guest_config, shifts), 0, 1000000 },
        { "report_every", 1, offsetof(struct guest_config, report_every), 0,
          ~0ull },
        { "verify_every", 0, offsetof(struct guest_config, verify_every), 1,
          1u << 30 },
        { "rewrite_every", 0, offsetof(struct guest_config, rewrite_every), 1,
          1u << 30 },
        { "read_pages", 0, offsetof(struct guest_config, read_pages), 1, 1u << 20 },
        { "read_chunk", 0, offsetof(struct guest_config, read_chunk), 1, 1u << 20 },
        { "read_stride", 0, offsetof(struct guest_config, read_stride), 1, 1u << 20 },
        { "write_pages", 0, offsetof(struct guest_config, write_pages), 0, 1u << 20 },
        { "write_ratio", 0, offsetof(struct guest_config, write_ratio), 0, 100 },
        { "late_pages", 0, offsetof(struct guest_config, late_pages), 0, 1u << 20 },
        { "accesses", 1, offsetof(struct guest_config, accesses), 0, ~0ull },
        { "mib", 0, offsetof(struct guest_config, mib), 1, 1024 },
        { "theta", 0, offsetof(struct guest_config, theta), 50, 199 },
        { "get_ratio", 0, offsetof(struct guest_config, get_ratio), 0, 100 },
        { "insert_ratio", 0, offsetof(struct guest_config, insert_ratio), 0, 100 },
        { "update_ratio", 0, offsetof(struct guest_config, update_ratio), 0, 100 },
        { "chain", 0, offsetof(struct guest_config, chain), 1, 1024 },
        { "log_mib", 0, offsetof(struct guest_config, log_mib), 1, 1023 },
        { "ops", 1, offsetof(struct guest_config, ops), 0, ~0ull },
        { "seconds", 0, offsetof(struct guest_config, seconds), 0, 1000000 },
    };
    size_t eq, klen, i;
    const char *val;
    size_t vlen;

    for (eq = 0; eq < len && tok[eq] != '='; eq++) {
    }
    if (eq == len) {
        return; /* not key=value: the kernel path QEMU puts first, say */
    }
    klen = eq;
    val = tok + eq + 1;
    vlen = len - eq - 1;

    if (streq_n(tok, klen, "mode")) {
        if (streq_n(val, vlen, "phases")) {
            cfg->mode = MODE_PHASES;
        } else if (streq_n(val, vlen, "workload")) {
            cfg->mode = MODE_WORKLOAD;
        } else if (streq_n(val, vlen, "verify")) {
            cfg->mode = MODE_VERIFY;
        } else if (streq_n(val, vlen, "reads")) {
            cfg->mode = MODE_READS;
        } else {
            enum guest_mode m;

            for (m = MODE_GUPS; m <= MODE_BTREE; m++) {
                if (streq_n(val, vlen, corun_name(m))) {
                    cfg->mode = m;
                    return;
                }
            }
            bad_param(tok, len, "mode must be phases, workload, verify, reads, gups, kv, "
                      "hotshift, stream, chase or btree");
        }
        return;
    }
    if (streq_n(tok, klen, "dist")) {
        if (streq_n(val, vlen, "zipf")) {
            cfg->dist = DIST_ZIPF;
        } else if (streq_n(val, vlen, "uniform")) {
            cfg->dist = DIST_UNIFORM;
        } else {
            bad_param(tok, len, "dist must be zipf or uniform");
        }
        return;
    }
    if (streq_n(tok, klen, "pattern")) {
        if (streq_n(val, vlen, "seq")) {
            cfg->pattern = PATTERN_SEQ;
        } else if (streq_n(val, vlen, "random")) {
            cfg->pattern = PATTERN_RANDOM;
        } else {
            bad_param(tok, len, "pattern must be seq or random");
        }
        return;
    }
    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        uint64_t v;

        if (!streq_n(tok, klen, nums[i].key)) {
            continue;
        }
        if (!parse_u64(val, vlen, nums[i].max, &v) || v < nums[i].min) {
            bad_param(tok, len, "bad or out-of-range value");
        }
        if (nums[i].is64) {
            *(uint64_t *)((char *)cfg + nums[i].offset) = v;
        } else {
            *(uint32_t *)((char *)cfg + nums[i].offset) = (uint32_t)v;
        }
        return;
    }
    bad_param(tok, len, "unknown parameter");
}

void parse_cmdline(struct guest_config *cfg, const char *s)
{
    while (*s) {
        const char *start;

        while (*s == ' ' || *s == '\t') {
            s++;
        }
        start = s;
        while (*s && *s != ' ' && *s != '\t') {
            s++;
        }
        if (s > start) {
            parse_param(cfg, start, (size_t)(s - start));
        }
    }
}
