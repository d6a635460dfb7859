# pvh_sipi_exit: a PVH kernel (ELF64) that ends the VM through sipi's own exit port (0x704)
# with status 0 and no report: the way a kernel aware of sipi but with nothing to report stops.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set SIPI_EXIT_PORT, 0x704

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	call uart_init
	mov $msg, %esi
	call puts
	xor %eax, %eax
	mov $SIPI_EXIT_PORT, %dx
	out %eax, %dx
1:	cli
	hlt
	jmp 1b

	.section .rodata
msg:	.asciz "pvh-sipi-exit: writing status 0 to port 0x704\n"

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
