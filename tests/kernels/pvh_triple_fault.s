# pvh_triple_fault: a PVH kernel (ELF64) that loads an empty IDT and executes UD2: the #UD
# cannot be delivered, nor the #GP nor the #DF after it, and the CPU shuts down (triple
# fault). It prints the address of the UD2 first, so a test can compare it with the RIP the
# VMM reports.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	call uart_init
	mov $msg, %esi
	call puts
	mov $fault_here, %eax
	call puthex
	mov $'\n', %al
	call putc
	lidt empty_idt
fault_here:
	ud2

	.section .rodata
msg:	.asciz "pvh-triple-fault: UD2 with an empty IDT at "
	.align 4
empty_idt:
	.word 0					# limit 0: no vector is deliverable
	.long 0

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
