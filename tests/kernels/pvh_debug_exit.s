# pvh_debug_exit: a foreign PVH kernel (an ELF64 image with a 32-bit PVH entry) that prints a
# line and ends the VM through QEMU's isa-debug-exit with value 0x2a (status 85).
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
	mov $0x2a, %al
	call debug_exit

	.section .rodata
msg:	.asciz "pvh-debug-exit: writing 0x2a to port 0xf4\n"

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
