/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hmmv shared-memory ABI: the guest write bitmaps that the patched QEMU
 * exports to hmmvd.
 *
 * This file is the single definition of the layout.  The QEMU patch series
 * (qemu-patches/) carries a byte-identical copy at include/hmmv/shm-abi.h in
 * QEMU's tree, and a test fails if the two ever differ.  Plain C (C11 for
 * _Static_assert) with <stddef.h> and <stdint.h> only, so QEMU, libhmmv and
 * freestanding test code can all include it as is.
 *
 * Region layout (all offsets in bytes from the start of the region):
 *
 *   0                     struct hmmv_shm_header (one 4096-byte page)
 *   desc_offset (4096)    max_blocks x struct hmmv_shm_block (256 bytes each)
 *   bitmap_offset of each block: its bitmap, page-aligned, bitmap_words
 *                         little-endian uint64_t words
 *
 * One bitmap per exported RAMBlock, one bit per target page (1 << page_shift
 * bytes, 4 KiB on x86) of the block: bit i of word w stands for the page at
 * byte offset (w * 64 + i) << page_shift in the block.  bitmap_words covers
 * the block's max_length; only bits below used_length >> page_shift are
 * ever set.
 *
 * Protocol:
 * - A set bit means: this page was written in some interval whose
 *   publication the daemon has not harvested yet.
 * - QEMU only ever sets bits, with an atomic OR of whole words.  The daemon
 *   harvests by atomically exchanging a word with 0 (__atomic_exchange_n).
 *   Nothing can be lost, and a slow daemon just sees several intervals
 *   merged (generation advanced by more than one).
 * - A publication: QEMU makes seq odd, ORs the interval's bits into the
 *   bitmaps, updates generation, counters and timestamps, then makes seq
 *   even again (release ordering).  A daemon that wants a whole
 *   publication waits for an even seq before harvesting.
 * - Layout changes after the export started never move anything.  The
 *   header's layout_generation counts them all.  A change of one exported
 *   block (mapped elsewhere in guest-physical memory, removed, resized) is
 *   that block's only: QEMU bumps the block's layout_generation and sets
 *   HMMV_SHM_BLOCK_F_REMAPPED, _GONE or _RESIZED in its flags, then bumps
 *   the header's; a consumer re-reads that block alone (its guest-physical
 *   ranges: QMP query-hmmv-ramblocks), the rest of the region stays valid.
 *   A removed block is never published to again.  Guest RAM the region has
 *   no descriptor for that gets mapped sets HMMV_SHM_F_LAYOUT_STALE: the
 *   daemon restarts the export (hmmv-stop, hmmv-start) to pick it up.  RAM
 *   that is not guest RAM (ROMs, VGA RAM) changes nothing.  A QEMU whose
 *   series predates per-block layout (7.2's) leaves every block's
 *   layout_generation 0 and sets LAYOUT_STALE for any RAMBlock change.
 * - All multi-byte fields are little-endian (the only hosts QEMU/KVM run
 *   hmmv on).
 */
#ifndef HMMV_SHM_ABI_H
#define HMMV_SHM_ABI_H

#include <stddef.h>
#include <stdint.h>

/* "HMMV-SHM" read as a little-endian uint64_t. */
#define HMMV_SHM_MAGIC UINT64_C(0x4d48532d564d4d48)
#define HMMV_SHM_ABI_VERSION 1u

#define HMMV_SHM_HEADER_SIZE 4096u
#define HMMV_SHM_BLOCK_DESC_SIZE 256u
/* Descriptor slots in every region; QEMU refuses to export more blocks. */
#define HMMV_SHM_MAX_BLOCKS 128u
#define HMMV_SHM_ID_LEN 192u
/* Every bitmap starts on a multiple of this. */
#define HMMV_SHM_BITMAP_ALIGN 4096u

/* struct hmmv_shm_header.flags */
#define HMMV_SHM_F_ACTIVE (UINT64_C(1) << 0)       /* QEMU is publishing */
#define HMMV_SHM_F_LAYOUT_STALE (UINT64_C(1) << 1) /* RAM layout changed */
#define HMMV_SHM_F_SOURCE_TCG (UINT64_C(1) << 8)      /* TCG notdirty */
#define HMMV_SHM_F_SOURCE_KVM_RING (UINT64_C(1) << 9) /* KVM dirty ring */
#define HMMV_SHM_F_SOURCE_KVM_LOG (UINT64_C(1) << 10) /* KVM_GET_DIRTY_LOG */
#define HMMV_SHM_F_SOURCE_MASK (UINT64_C(0x7) << 8)

/* struct hmmv_shm_block.flags */
#define HMMV_SHM_BLOCK_F_GONE (UINT32_C(1) << 0)    /* block was removed */
#define HMMV_SHM_BLOCK_F_RESIZED (UINT32_C(1) << 1) /* used_length changed */
#define HMMV_SHM_BLOCK_F_SHARED (UINT32_C(1) << 2)  /* MAP_SHARED memory */
/* the block's guest-physical mapping changed since the export started */
#define HMMV_SHM_BLOCK_F_REMAPPED (UINT32_C(1) << 3)

/* Offsets in the comments are bytes from the start of the struct. */
struct hmmv_shm_header {
    uint64_t magic;             /*   0: HMMV_SHM_MAGIC */
    uint32_t abi_version;       /*   8: HMMV_SHM_ABI_VERSION */
    uint32_t header_size;       /*  12: bytes of this header, 4096 */
    uint64_t region_size;       /*  16: bytes of the whole region */
    uint32_t page_shift;        /*  24: log2 of the tracked page, 12 */
    uint32_t desc_size;         /*  28: bytes per block descriptor, 256 */
    uint64_t desc_offset;       /*  32: region offset of descriptor 0 */
    uint32_t nr_blocks;         /*  40: descriptors in use */
    uint32_t max_blocks;        /*  44: slots, HMMV_SHM_MAX_BLOCKS */
    uint32_t qemu_pid;          /*  48: pid of the QEMU process */
    /* 52: QEMU's publication period in ms, 0 = only on hmmv-sync */
    uint32_t interval_ms;
    uint64_t flags;             /*  56: HMMV_SHM_F_* */
    /*
     * 64: bumped on every RAM layout change since QEMU started (not reset
     * by hmmv-start); the value at hmmv-start is the region's baseline.
     */
    uint64_t layout_generation;
    uint64_t seq;               /*  72: odd while QEMU publishes */
    uint64_t generation;        /*  80: publications into this region */
    uint64_t start_ns;          /*  88: CLOCK_MONOTONIC at hmmv-start */
    /* 96: CLOCK_MONOTONIC at the end of the last publication, 0 = none */
    uint64_t last_publish_ns;
    uint64_t publications;      /* 104: == generation */
    /* 112: pages found written, summed over publications */
    uint64_t pages_published;
    uint64_t last_dirty_pages;  /* 120: pages in the last publication */
    /* 128: time the last publication took, dirty-log sync included */
    uint64_t last_duration_ns;
    uint8_t reserved[4096 - 136]; /* 136: zero */
};

struct hmmv_shm_block {
    /*
     * 0: RAMBlock id string ("pc.ram", "/objects/mem0", ...),
     * NUL-terminated, truncated if longer
     */
    char id[HMMV_SHM_ID_LEN];
    uint64_t host_addr;         /* 192: QEMU virtual address of the block */
    uint64_t used_length;       /* 200: bytes in use (changes on resize) */
    uint64_t max_length;        /* 208: bytes reserved for the block */
    uint64_t page_size;         /* 216: host page size backing the block */
    uint64_t bitmap_offset;     /* 224: region offset of the bitmap */
    /* 232: uint64_t words, DIV_ROUND_UP(max_length >> page_shift, 64) */
    uint64_t bitmap_words;
    /* 240: pages of this block found written, summed over publications */
    uint64_t pages_published;
    uint32_t flags;             /* 248: HMMV_SHM_BLOCK_F_* */
    /*
     * 252: changes of this block alone (mapping, removal, size) since the
     * export started; 0 from a QEMU without per-block layout
     */
    uint32_t layout_generation;
};

_Static_assert(sizeof(struct hmmv_shm_header) == HMMV_SHM_HEADER_SIZE,
               "hmmv_shm_header must be one 4 KiB page");
_Static_assert(sizeof(struct hmmv_shm_block) == HMMV_SHM_BLOCK_DESC_SIZE,
               "hmmv_shm_block must be 256 bytes");
_Static_assert(offsetof(struct hmmv_shm_header, page_shift) == 24,
               "hmmv_shm_header.page_shift offset");
_Static_assert(offsetof(struct hmmv_shm_header, flags) == 56,
               "hmmv_shm_header.flags offset");
_Static_assert(offsetof(struct hmmv_shm_header, seq) == 72,
               "hmmv_shm_header.seq offset");
_Static_assert(offsetof(struct hmmv_shm_header, generation) == 80,
               "hmmv_shm_header.generation offset");
_Static_assert(offsetof(struct hmmv_shm_header, reserved) == 136,
               "hmmv_shm_header.reserved offset");
_Static_assert(offsetof(struct hmmv_shm_block, host_addr) == 192,
               "hmmv_shm_block.host_addr offset");
_Static_assert(offsetof(struct hmmv_shm_block, bitmap_offset) == 224,
               "hmmv_shm_block.bitmap_offset offset");
_Static_assert(offsetof(struct hmmv_shm_block, flags) == 248,
               "hmmv_shm_block.flags offset");
_Static_assert(offsetof(struct hmmv_shm_block, layout_generation) == 252,
               "hmmv_shm_block.layout_generation offset");
_Static_assert((HMMV_SHM_HEADER_SIZE +
                HMMV_SHM_MAX_BLOCKS * HMMV_SHM_BLOCK_DESC_SIZE) %
                   HMMV_SHM_BITMAP_ALIGN == 0,
               "descriptor table must end on a page");

/* Region offset of the first bitmap (bitmaps follow the descriptor table). */
#define HMMV_SHM_BITMAPS_OFFSET \
    ((uint64_t)HMMV_SHM_HEADER_SIZE + \
     (uint64_t)HMMV_SHM_MAX_BLOCKS * HMMV_SHM_BLOCK_DESC_SIZE)

#endif /* HMMV_SHM_ABI_H */
