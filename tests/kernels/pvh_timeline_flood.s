# pvh_timeline_flood: a PVH kernel (ELF32) that writes port 0x80 as Linux's I/O delay does,
# FLOOD_WRITES times (each byte is the low byte of the count left, so codes cycle), then marks
# boot complete through Firecracker's boot timer and ends through isa-debug-exit with 0x34
# (status 105). sipi keeps the first events of its timeline and counts the rest.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set DEBUG_PORT, 0x80
	.set BOOT_TIMER, 0xd0000000
	.set BOOT_TIMER_MAGIC, 123
	.set FLOOD_WRITES, 100000
	.set PASS, 0x34

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	mov $FLOOD_WRITES, %ecx
1:	mov %cl, %al
	outb %al, $DEBUG_PORT
	loop 1b
	movb $BOOT_TIMER_MAGIC, BOOT_TIMER
	mov $PASS, %al
	call debug_exit

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
