/*
 * hmmv test guest: a freestanding multiboot kernel that writes a known set
 * of guest-physical pages, so a test can check that the write export
 * reports exactly those pages.  See README.md for the command line.
 *
 * Runs with paging off, so a pointer is a guest-physical address.  Built
 * with -m32 -ffreestanding -nostdlib and no libgcc: no 64-bit division
 * anywhere (multiplications, shifts and additions are inlined).
 */
#include "guest.h"

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4

#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_INFO_MEMORY (1u << 0)
#define MULTIBOOT_INFO_CMDLINE (1u << 2)

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower; /* KiB below 1 MiB */
    uint32_t mem_upper; /* KiB above 1 MiB (first hole) */
    uint32_t boot_device;
    uint32_t cmdline;   /* physical address of a NUL-terminated string */
};

extern char guest_image_start[], guest_image_end[];

void guest_main(uint32_t magic, const struct multiboot_info *mbi);

/* The compiler may emit calls to these for struct copies and clears. */
void *memcpy(void *dest, const void *src, size_t n);

void *memset(void *dest, int c, size_t n)
{
    unsigned char *d = dest;

    while (n--) {
        *d++ = (unsigned char)c;
    }
    return dest;
}

void *memcpy(void *dest, const void *src, size_t n)
{
    unsigned char *d = dest;
    const unsigned char *s = src;

    while (n--) {
        *d++ = *s++;
    }
    return dest;
}

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;

    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* no interrupts: we poll */
    outb(COM1 + 3, 0x80); /* DLAB on */
    outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1, DLAB off */
    outb(COM1 + 2, 0xc7); /* FIFOs on and cleared */
    outb(COM1 + 4, 0x03); /* DTR, RTS */
}

void putc_serial(char c)
{
    while (!(inb(COM1 + 5) & 0x20)) {
        __asm__ volatile("pause");
    }
    outb(COM1, (uint8_t)c);
}

int poll_serial(void)
{
    return (inb(COM1 + 5) & 0x01) ? inb(COM1) : -1;
}

static uint8_t getc_serial(void)
{
    while (!(inb(COM1 + 5) & 0x01)) {
        __asm__ volatile("pause");
    }
    return inb(COM1);
}

void puts_serial(const char *s)
{
    while (*s) {
        putc_serial(*s++);
    }
}

void put_dec(uint64_t v)
{
    char buf[24];
    int i = 0;

    /* Repeated subtraction of powers of ten: no 64-bit division here. */
    static const uint64_t pow10[] = {
        10000000000000000000ull, 1000000000000000000ull,
        100000000000000000ull, 10000000000000000ull, 1000000000000000ull,
        100000000000000ull, 10000000000000ull, 1000000000000ull,
        100000000000ull, 10000000000ull, 1000000000ull, 100000000ull,
        10000000ull, 1000000ull, 100000ull, 10000ull, 1000ull, 100ull,
        10ull, 1ull,
    };
    size_t p;
    int started = 0;

    for (p = 0; p < sizeof(pow10) / sizeof(pow10[0]); p++) {
        char digit = '0';

        while (v >= pow10[p]) {
            v -= pow10[p];
            digit++;
        }
        if (digit != '0' || started || pow10[p] == 1) {
            buf[i++] = digit;
            started = 1;
        }
    }
    buf[i] = '\0';
    puts_serial(buf);
}

void put_hex(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char buf[11];
    int i, started = 0, n = 2;

    buf[0] = '0';
    buf[1] = 'x';
    for (i = 28; i >= 0; i -= 4) {
        uint32_t d = (v >> i) & 0xf;

        if (d || started || i == 0) {
            buf[n++] = digits[d];
            started = 1;
        }
    }
    buf[n] = '\0';
    puts_serial(buf);
}

void put_kv_dec(const char *key, uint64_t v)
{
    putc_serial(' ');
    puts_serial(key);
    putc_serial('=');
    put_dec(v);
}

void put_kv_hex(const char *key, uint32_t v)
{
    putc_serial(' ');
    puts_serial(key);
    putc_serial('=');
    put_hex(v);
}

void __attribute__((noreturn)) guest_exit(uint32_t code)
{
    puts_serial("HMMV-EXIT ");
    put_dec(code);
    putc_serial('\n');
    /* isa-debug-exit ends QEMU here; without it, stop the CPU. */
    outb(DEBUG_EXIT_PORT, (uint8_t)code);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

uint32_t rtc_seconds(void)
{
    outb(0x70, 0x0a); /* status register A: bit 7 is set while the RTC updates */
    if (inb(0x71) & 0x80) {
        return 0xff;
    }
    outb(0x70, 0x00);
    return inb(0x71);
}

uint32_t mulmod32(uint32_t a, uint32_t b, uint32_t n)
{
    uint32_t lo, hi, q, r;

    /* (a mod n) * b < n * 2^32, so the quotient of divl fits in 32 bits */
    a %= n;
    __asm__("mull %3" : "=a"(lo), "=d"(hi) : "a"(a), "rm"(b));
    __asm__("divl %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(n));
    (void)q;
    return r;
}

uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

/* Is [first_pfn, first_pfn + nr_pages) usable test memory? */
void check_window(uint64_t first_pfn, uint64_t nr_pages,
                         uint64_t mem_top)
{
    uint64_t image_end = ((uintptr_t)guest_image_end + PAGE_SIZE - 1) >>
                         PAGE_SHIFT;
    /* Leave room after the image for QEMU's multiboot info and cmdline. */
    uint64_t low = image_end + 16;
    uint64_t end = first_pfn + nr_pages;

    if (first_pfn < low || end > (mem_top >> PAGE_SHIFT)) {
        puts_serial("HMMV-ERROR window");
        put_kv_hex("first_pfn", (uint32_t)first_pfn);
        put_kv_dec("pages", nr_pages);
        put_kv_hex("lowest_pfn", (uint32_t)low);
        put_kv_hex("mem_top_pfn", (uint32_t)(mem_top >> PAGE_SHIFT));
        putc_serial('\n');
        guest_exit(EXIT_BAD_WINDOW);
    }
}

static void touch_page(uint32_t pfn, uint32_t value)
{
    volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)(pfn << PAGE_SHIFT);

    *p = value;
}

void wait_for_host(const struct guest_config *cfg, const char *what, uint32_t k)
{
    if (!cfg->wait) {
        return;
    }
    puts_serial("HMMV-WAIT ");
    puts_serial(what);
    putc_serial(' ');
    put_dec(k);
    putc_serial('\n');
    (void)getc_serial();
}

/* The co-run recorder's start mark (tests/corun/recorder, start=mark): a 7-byte no-op,
 * nopl 0x484d4d56(%eax), that the plugin recognises by its bytes. */
static void recorder_start_mark(void)
{
    __asm__ volatile(".byte 0x0f, 0x1f, 0x80, 0x56, 0x4d, 0x4d, 0x48" ::: "memory");
}

/* Page number i of phase k (random pages come from a per-phase stream). */
static uint32_t phase_pfn(const struct guest_config *cfg, uint32_t k,
                          uint32_t i, uint32_t *rng)
{
    uint32_t base_pfn = cfg->base >> PAGE_SHIFT;

    if (cfg->pattern == PATTERN_SEQ) {
        return base_pfn + (k * cfg->pages + i) * cfg->stride;
    }
    return base_pfn + xorshift32(rng) % cfg->span;
}

static uint32_t phase_seed(const struct guest_config *cfg, uint32_t k)
{
    uint32_t s = cfg->seed ^ ((k + 1) * 0x9e3779b9u);

    return s ? s : 0x12345678u; /* xorshift must not start at 0 */
}

static void run_phases(const struct guest_config *cfg, uint64_t mem_top)
{
    uint32_t base_pfn = cfg->base >> PAGE_SHIFT;
    uint64_t window;
    uint32_t k, i, pass;

    if (cfg->pattern == PATTERN_SEQ) {
        window = ((uint64_t)cfg->phases * cfg->pages - 1) * cfg->stride + 1;
    } else {
        window = cfg->span;
    }
    check_window(base_pfn, window, mem_top);

    for (k = 0; k < cfg->phases; k++) {
        uint32_t rng = phase_seed(cfg, k);

        if (cfg->mark != 0 && k == cfg->mark) {
            recorder_start_mark();
            puts_serial("HMMV-MARK ");
            put_dec(k);
            putc_serial('\n');
        }
        wait_for_host(cfg, "phase", k);
        puts_serial("HMMV-PHASE-BEGIN ");
        put_dec(k);
        putc_serial('\n');

        for (pass = 0; pass < cfg->passes; pass++) {
            rng = phase_seed(cfg, k);
            for (i = 0; i < cfg->pages; i++) {
                touch_page(phase_pfn(cfg, k, i, &rng),
                           (k << 24) ^ (pass << 16) ^ i);
            }
        }

        /* Say which pages were written, after the fact. */
        if (cfg->pattern == PATTERN_SEQ) {
            puts_serial("HMMV-PHASE-RANGE ");
            put_dec(k);
            put_kv_hex("first_pfn", phase_pfn(cfg, k, 0, &rng));
            put_kv_dec("count", cfg->pages);
            put_kv_dec("stride", cfg->stride);
            putc_serial('\n');
        } else {
            rng = phase_seed(cfg, k);
            for (i = 0; i < cfg->pages; i++) {
                if (i % 16 == 0) {
                    puts_serial("HMMV-PHASE-PAGES ");
                    put_dec(k);
                }
                putc_serial(' ');
                put_hex(phase_pfn(cfg, k, i, &rng));
                if (i % 16 == 15 || i + 1 == cfg->pages) {
                    putc_serial('\n');
                }
            }
        }
        puts_serial("HMMV-PHASE-END ");
        put_dec(k);
        put_kv_dec("pages", cfg->pages);
        put_kv_dec("writes", (uint64_t)cfg->pages * cfg->passes);
        putc_serial('\n');
    }
}

static void run_workload(const struct guest_config *cfg, uint64_t mem_top)
{
    uint32_t base_pfn = cfg->base >> PAGE_SHIFT;
    uint32_t hot_pages = cfg->hot_mib * MIB_PAGES;
    uint32_t cold_pages = cfg->cold_mib * MIB_PAGES;
    uint32_t total = hot_pages + cold_pages;
    uint32_t hot_off = 0; /* first hot page, relative to base */
    uint32_t rng = cfg->seed ? cfg->seed : 0x12345678u;
    uint64_t n = 0, next_report = cfg->report_every;
    uint64_t next_shift = cfg->shift_every;
    uint32_t shifted = 0;

    check_window(base_pfn, total, mem_top);
    wait_for_host(cfg, "workload", 0);
    puts_serial("HMMV-WORKLOAD-BEGIN");
    put_kv_hex("base_pfn", base_pfn);
    put_kv_dec("hot_pages", hot_pages);
    put_kv_dec("cold_pages", cold_pages);
    put_kv_dec("hot_ratio", cfg->hot_ratio);
    put_kv_dec("writes", cfg->writes);
    putc_serial('\n');

    while (cfg->writes == 0 || n < cfg->writes) {
        uint32_t r = xorshift32(&rng);
        uint32_t idx;

        if (cold_pages == 0 || r % 100 < cfg->hot_ratio) {
            idx = hot_off + xorshift32(&rng) % hot_pages;
        } else {
            idx = hot_off + hot_pages + xorshift32(&rng) % cold_pages;
        }
        if (idx >= total) {
            idx -= total;
        }
        /* One word per write, on one of the page's 64 cache lines. */
        {
            volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)
                (((base_pfn + idx) << PAGE_SHIFT) + ((r >> 8) & 0x3f) * 64);
            *p = r;
        }
        n++;

        if (cfg->shift_every && n == next_shift &&
            (cfg->shifts == 0 || shifted < cfg->shifts)) {
            next_shift += cfg->shift_every;
            shifted++;
            hot_off += hot_pages;
            if (hot_off >= total) {
                hot_off -= total;
            }
            puts_serial("HMMV-WORKLOAD-SHIFT");
            put_kv_dec("writes", n);
            put_kv_hex("hot_first_pfn", base_pfn + hot_off);
            putc_serial('\n');
        }
        if (cfg->report_every && n == next_report) {
            next_report += cfg->report_every;
            puts_serial("HMMV-WORKLOAD-PROGRESS");
            put_kv_dec("writes", n);
            put_kv_hex("hot_first_pfn", base_pfn + hot_off);
            putc_serial('\n');
        }
    }
    puts_serial("HMMV-WORKLOAD-END");
    put_kv_dec("writes", n);
    putc_serial('\n');
}

/*
 * Reads a known page set (chunks of read_chunk pages, one every read_stride pages from
 * base) and, write_ratio percent of the time, writes another (write_pages pages right after
 * the read window), one word on a random cache line of a random page per access, so a read
 * tracker can be checked against exactly these sets. Nothing else in the window is touched.
 * With late_pages, a third set (late_pages pages right after the write set) is untouched
 * until a byte comes on COM1 (polled every 4,096 accesses); from then on the reads go to the
 * read set and the late set alike: a read set that appears while the host watches.
 */
static void run_reads(const struct guest_config *cfg, uint64_t mem_top)
{
    uint32_t base_pfn = cfg->base >> PAGE_SHIFT;
    uint32_t chunk = cfg->read_chunk < cfg->read_pages ? cfg->read_chunk : cfg->read_pages;
    uint32_t nr_chunks = (cfg->read_pages + chunk - 1) / chunk;
    uint32_t read_window, write_pfn, rng = cfg->seed ? cfg->seed : 0x12345678u;
    uint32_t sink = 0, late_pfn, read_span = cfg->read_pages;
    uint64_t n = 0, next_report = cfg->report_every;

    if (cfg->read_stride < chunk || cfg->read_pages % chunk != 0) {
        puts_serial("HMMV-ERROR read_pages must be a multiple of read_chunk <= read_stride\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    read_window = (nr_chunks - 1) * cfg->read_stride + chunk;
    write_pfn = base_pfn + read_window;
    late_pfn = write_pfn + cfg->write_pages;
    check_window(base_pfn, read_window + cfg->write_pages + cfg->late_pages, mem_top);
    wait_for_host(cfg, "reads", 0);
    puts_serial("HMMV-READS-BEGIN");
    put_kv_hex("base_pfn", base_pfn);
    put_kv_dec("read_pages", cfg->read_pages);
    put_kv_dec("read_chunk", chunk);
    put_kv_dec("read_stride", cfg->read_stride);
    put_kv_hex("write_first_pfn", write_pfn);
    put_kv_dec("write_pages", cfg->write_pages);
    put_kv_dec("write_ratio", cfg->write_pages ? cfg->write_ratio : 0);
    put_kv_hex("late_first_pfn", late_pfn);
    put_kv_dec("late_pages", cfg->late_pages);
    put_kv_dec("window_pages", read_window + cfg->write_pages + cfg->late_pages);
    putc_serial('\n');

    while (cfg->accesses == 0 || n < cfg->accesses) {
        uint32_t r = xorshift32(&rng);
        uint32_t line = ((r >> 8) & 0x3f) * 64;

        if (cfg->write_pages && r % 100 < cfg->write_ratio) {
            uint32_t pfn = write_pfn + xorshift32(&rng) % cfg->write_pages;
            volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)((pfn << PAGE_SHIFT) + line);

            *p = r;
        } else {
            uint32_t i = xorshift32(&rng) % read_span;
            uint32_t pfn = i < cfg->read_pages
                               ? base_pfn + (i / chunk) * cfg->read_stride + i % chunk
                               : late_pfn + (i - cfg->read_pages);
            volatile uint32_t *p = (volatile uint32_t *)(uintptr_t)((pfn << PAGE_SHIFT) + line);

            sink += *p;
        }
        n++;
        if (cfg->late_pages && read_span == cfg->read_pages && n % 4096 == 0 &&
            poll_serial() >= 0) {
            read_span = cfg->read_pages + cfg->late_pages;
            puts_serial("HMMV-READS-LATE");
            put_kv_hex("late_first_pfn", late_pfn);
            put_kv_dec("late_pages", cfg->late_pages);
            put_kv_dec("accesses", n);
            putc_serial('\n');
        }
        if (cfg->report_every && n == next_report) {
            next_report += cfg->report_every;
            puts_serial("HMMV-READS-PROGRESS");
            put_kv_dec("accesses", n);
            put_kv_hex("sink", sink);
            putc_serial('\n');
        }
    }
    puts_serial("HMMV-READS-END");
    put_kv_dec("accesses", n);
    put_kv_hex("sink", sink);
    putc_serial('\n');
}

void guest_main(uint32_t magic, const struct multiboot_info *mbi)
{
    struct guest_config cfg;
    uint64_t mem_top = 0;
    const char *cmdline = "";

    serial_init();
    config_defaults(&cfg);
    if (magic != MULTIBOOT_BOOTLOADER_MAGIC) {
        puts_serial("HMMV-ERROR not started by a multiboot loader\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    if (mbi->flags & MULTIBOOT_INFO_MEMORY) {
        mem_top = (1ull << 20) + ((uint64_t)mbi->mem_upper << 10);
    }
    if (mbi->flags & MULTIBOOT_INFO_CMDLINE) {
        cmdline = (const char *)(uintptr_t)mbi->cmdline;
    }
    parse_cmdline(&cfg, cmdline);

    puts_serial("HMMV-GUEST-READY");
    puts_serial(" mode=");
    puts_serial(cfg.mode == MODE_PHASES ? "phases"
                : cfg.mode == MODE_WORKLOAD ? "workload"
                : cfg.mode == MODE_VERIFY ? "verify"
                : cfg.mode == MODE_READS ? "reads" : corun_name(cfg.mode));
    if (cfg.mode == MODE_PHASES) {
        puts_serial(cfg.pattern == PATTERN_SEQ ? " pattern=seq"
                                               : " pattern=random");
        put_kv_dec("phases", cfg.phases);
        put_kv_dec("pages", cfg.pages);
        put_kv_dec("stride", cfg.stride);
        put_kv_dec("span", cfg.span);
        put_kv_dec("passes", cfg.passes);
    }
    put_kv_hex("base", cfg.base);
    put_kv_dec("seed", cfg.seed);
    put_kv_dec("wait", cfg.wait);
    put_kv_dec("mem_mib", mem_top >> 20);
    putc_serial('\n');

    if (cfg.base & (PAGE_SIZE - 1)) {
        puts_serial("HMMV-ERROR base must be page-aligned\n");
        guest_exit(EXIT_BAD_CMDLINE);
    }
    if (cfg.mode == MODE_PHASES) {
        run_phases(&cfg, mem_top);
    } else if (cfg.mode == MODE_WORKLOAD) {
        run_workload(&cfg, mem_top);
    } else {
        if (cfg.mode == MODE_VERIFY) {
            run_verify(&cfg, mem_top);
        } else if (cfg.mode == MODE_READS) {
            run_reads(&cfg, mem_top);
        } else {
            run_corun(&cfg, mem_top);
        }
    }
    puts_serial("HMMV-DONE\n");
    wait_for_host(&cfg, "exit", 0);
    if (cfg.exit) {
        guest_exit(EXIT_OK);
    }
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
