/*
 * hmmv test guest: what guest.c (boot, serial, phases, workload and reads modes), cmdline.c
 * (the command line) and verify.c (the pattern-verifying workload) share.
 */
#ifndef HMMV_GUEST_H
#define HMMV_GUEST_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE 4096u
#define MIB_PAGES 256u

/* Exit codes given to isa-debug-exit; QEMU exits with (code << 1) | 1. */
#define EXIT_OK 0
#define EXIT_BAD_CMDLINE 1
#define EXIT_BAD_WINDOW 2
#define EXIT_CORRUPT 3

enum guest_mode {
    MODE_PHASES, MODE_WORKLOAD, MODE_VERIFY, MODE_READS,
    /* the co-run workloads of workloads.c and btree.c (issue 12) */
    MODE_GUPS, MODE_KV, MODE_HOTSHIFT, MODE_STREAM, MODE_CHASE, MODE_BTREE,
};
enum guest_dist { DIST_UNIFORM, DIST_ZIPF };
enum guest_pattern { PATTERN_SEQ, PATTERN_RANDOM };

struct guest_config {
    enum guest_mode mode;
    enum guest_pattern pattern;
    uint32_t phases;       /* phases mode: number of phases */
    uint32_t pages;        /* phases mode: pages written per phase */
    uint32_t stride;       /* phases mode, seq: page stride */
    uint32_t span;         /* phases mode, random: window in pages */
    uint32_t passes;       /* writes to each page per phase */
    uint32_t base;         /* first byte of the test window (page-aligned) */
    uint32_t seed;
    uint32_t wait;         /* wait for a COM1 byte before each phase */
    uint32_t exit;         /* leave through isa-debug-exit at the end */
    uint32_t mark;         /* phases: the recorder's start mark before phase N (0: none) */
    uint32_t hot_mib;      /* workload: hot set size */
    uint32_t cold_mib;     /* workload: cold set size */
    uint32_t hot_ratio;    /* workload: percent of writes to the hot set */
    uint64_t writes;       /* workload: total writes, 0 = run forever */
    uint64_t shift_every;  /* workload: move the hot set every N writes */
    uint32_t shifts;       /* workload: at most N moves of the hot set, 0 = no limit */
    uint64_t report_every; /* workload: progress line every N writes */
    uint32_t verify_every; /* verify: one whole page checked every N writes */
    uint32_t rewrite_every; /* verify: one page rewritten (new epoch) every N writes */
    uint32_t read_pages;   /* reads: pages in the read set */
    uint32_t read_chunk;   /* reads: the read set comes in chunks of this many pages */
    uint32_t read_stride;  /* reads: pages from one chunk's start to the next's */
    uint32_t write_pages;  /* reads: pages in the write set (after the read window) */
    uint32_t write_ratio;  /* reads: percent of accesses that are writes */
    uint32_t late_pages;   /* reads: a second read set, read once a byte comes on COM1 */
    uint64_t accesses;     /* reads: total accesses, 0 = run forever */
    /* co-run workloads (workloads.c) */
    uint32_t mib;          /* footprint */
    enum guest_dist dist;  /* gups: page popularity */
    uint32_t theta;        /* Zipf exponent in hundredths (99 = 0.99) */
    uint32_t get_ratio;    /* kv: percent of operations that are gets */
    uint32_t insert_ratio; /* btree: percent of operations that insert */
    uint32_t update_ratio; /* chase: percent of lookups that append to the update log */
    uint32_t chain;        /* chase: pointer hops per lookup */
    uint32_t log_mib;      /* chase: update log size (the last log_mib of the footprint) */
    uint64_t ops;          /* stop after this many operations, 0 = no limit */
    uint32_t seconds;      /* stop after this many reported seconds, 0 = no limit */
};

void *memset(void *dest, int c, size_t n);
void putc_serial(char c);
void puts_serial(const char *s);
int poll_serial(void); /* a byte received on COM1, or -1 */
void put_dec(uint64_t v);
void put_hex(uint32_t v);
void put_kv_dec(const char *key, uint64_t v);
void put_kv_hex(const char *key, uint32_t v);
uint32_t xorshift32(uint32_t *state);
void check_window(uint64_t first_pfn, uint64_t nr_pages, uint64_t mem_top);
void __attribute__((noreturn)) guest_exit(uint32_t code);
/* wait=1: print "HMMV-WAIT what k" and wait for a byte on COM1 */
void wait_for_host(const struct guest_config *cfg, const char *what, uint32_t k);

uint32_t rtc_seconds(void); /* CMOS RTC seconds register, or 0xff while it updates */
uint32_t mulmod32(uint32_t a, uint32_t b, uint32_t n); /* a * b mod n, no libgcc */

/* cmdline.c: the defaults, then the command line's key=value words over them */
void config_defaults(struct guest_config *cfg);
void parse_cmdline(struct guest_config *cfg, const char *cmdline);

void run_verify(const struct guest_config *cfg, uint64_t mem_top);
/* workloads.c: the co-run workloads (modes gups .. btree) */
void run_corun(const struct guest_config *cfg, uint64_t mem_top);
const char *corun_name(enum guest_mode mode);

/* zipf.c: Zipf(theta) ranks over up to ZIPF_MAX_ITEMS items, integer-only */
#define ZIPF_MAX_ITEMS (1u << 18)
struct zipf {
    uint32_t n;
    uint32_t total; /* the CDF's last value */
};
void zipf_init(struct zipf *z, uint32_t n, uint32_t theta);
uint32_t zipf_rank(const struct zipf *z, uint32_t *rng); /* 0 = most popular */

/* btree.c: a B+ tree in an arena of 256-byte nodes */
struct btree {
    uint8_t *arena;
    uint32_t nodes;   /* arena capacity in nodes */
    uint32_t used;    /* nodes allocated */
    uint32_t root;
    uint32_t height;
};
void btree_init(struct btree *t, void *arena, uint32_t nodes);
int btree_insert(struct btree *t, uint32_t key, uint32_t value); /* 0: arena full */
int btree_update(struct btree *t, uint32_t key, uint32_t value); /* 0: no such key */
int btree_lookup(const struct btree *t, uint32_t key, uint32_t *value);
int btree_room(const struct btree *t); /* can an insert still allocate what it may need */

#endif
