/*
 * Multiboot (v1) entry for the hmmv test guest.
 *
 * QEMU's -kernel loader starts us in 32-bit protected mode with flat
 * segments, paging and interrupts off, EAX = 0x2BADB002 and EBX = the
 * physical address of the multiboot information structure.
 */
#define MB_MAGIC 0x1BADB002
/* bit 0: page-align modules, bit 1: we want the memory map fields */
#define MB_FLAGS 0x00000003

    .section .multiboot, "a"
    .balign 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .bss
    .balign 16
stack_bottom:
    .skip 16384
stack_top:

    .section .text
    .globl _start
    .type _start, @function
_start:
    cli
    movl $stack_top, %esp
    xorl %ebp, %ebp
    pushl %ebx              /* multiboot info */
    pushl %eax              /* multiboot magic */
    call guest_main
    /* guest_main does not return; if it does, stop here. */
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
