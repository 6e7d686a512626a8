/*
 * verify.c replayed on the host, on ideal memory: the test guest's mode=verify (unmodified
 * source) runs as a host program over an anonymous mapping at the guest-physical addresses,
 * with no QEMU, kernel or page mover in between, and prints the serial lines the guest would.
 * A line a real guest printed that the replay prints too (same seed, same write count) is the
 * checker's own doing, not the host's; issue 8 found the checker's epoch wrap this way.
 *
 * Not part of the build (a host program that maps memory at 4 MiB). Build and run, from the
 * source root (VERIFY_C: tests/guest/verify.c, or an old one from git show REV:PATH):
 *
 *     gcc -O2 -fPIE -pie -Itests/guest -o /tmp/verify-replay tests/guest/verify-replay.c VERIFY_C
 *     /tmp/verify-replay SEED [WRITES]
 *
 * The guest's command line is the testbed's (tests/testbed/e2elib/vms.py, the race's): base=4M
 * hot_mib=8 cold_mib=48 hot_ratio=98 shift_every=0 report_every=20000, seed = 1 + the sum of
 * the VM name's bytes (vm0: 276, vm1: 277). WRITES: the guest is sent 'q' when it has made
 * that many writes (a multiple of 4,096, as the END line of a run that was stopped says),
 * then checks every page and prints HMMV-VERIFY-END; without it, it stops at 40 M writes.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "guest.h"

static unsigned long polls, quit_at_poll;

void putc_serial(char c)
{
    putchar(c);
}

void puts_serial(const char *s)
{
    fputs(s, stdout);
}

/* verify.c polls every 4,096 writes */
int poll_serial(void)
{
    return quit_at_poll && ++polls == quit_at_poll ? 'q' : -1;
}

void put_kv_dec(const char *key, uint64_t v)
{
    printf(" %s=%llu", key, (unsigned long long)v);
}

void put_kv_hex(const char *key, uint32_t v)
{
    printf(" %s=0x%x", key, v);
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

void check_window(uint64_t first_pfn, uint64_t nr_pages, uint64_t mem_top)
{
    (void)first_pfn;
    (void)nr_pages;
    (void)mem_top;
}

void guest_exit(uint32_t code)
{
    printf("HMMV-EXIT %u\n", code);
    exit((int)code);
}

int main(int argc, char **argv)
{
    struct guest_config cfg = {
        .mode = MODE_VERIFY, .base = 4u << 20, .hot_mib = 8, .cold_mib = 48, .hot_ratio = 98,
        .report_every = 20000, .verify_every = 16, .rewrite_every = 64,
    };
    size_t len = (size_t)(cfg.hot_mib + cfg.cold_mib) << 20;
    void *mem;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s SEED [WRITES]\n", argv[0]);
        return 2;
    }
    cfg.seed = (uint32_t)strtoul(argv[1], NULL, 0);
    if (argc == 3) {
        quit_at_poll = strtoul(argv[2], NULL, 0) / 4096;
    } else {
        cfg.writes = 40000000;
    }
    mem = mmap((void *)(uintptr_t)cfg.base, len, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mem != (void *)(uintptr_t)cfg.base) {
        perror("mmap at 4 MiB");
        return 2;
    }
    printf("HMMV-GUEST-READY mode=verify base=0x%x seed=%u wait=0 mem_mib=63\n", cfg.base,
           cfg.seed);
    run_verify(&cfg, 64ull << 20);
    return 0;
}
