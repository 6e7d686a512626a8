/* SPDX-License-Identifier: GPL-2.0-or-later */
/* hmmv-mark: executes the co-run recorder's start mark (hmmv-recorder.so start=mark:
 * the 7-byte no-op nopl 0x484d4d56(%rax)) and exits 0. The redis guest's init runs it when
 * the load starts, so the trace holds redis and not the kernel's boot. Built by build-image:
 *   gcc -nostdlib -static -no-pie -o hmmv-mark hmmv-mark.S */
	.globl _start
	.text
_start:
	.byte 0x0f, 0x1f, 0x80, 0x56, 0x4d, 0x4d, 0x48
	mov $60, %eax		/* exit(0) */
	xor %edi, %edi
	syscall
