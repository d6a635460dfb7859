# pvh_timeline: a PVH kernel (ELF32) instrumented for two other VMMs' boot timelines, as a
# foreign kernel would be. It writes Cloud Hypervisor debug-port codes (I/O port 0x80), one in
# each of its ranges, and Firecracker's boot-timer byte (123 at MMIO 0xd0000000) between them,
# in this order:
#   port 0x80: 0x05 (firmware), 0x25 (bootloader), 0x45 (kernel)
#   MMIO 0xd0000000: 122 (not the magic byte: ignored), then 123 (boot complete)
#   port 0x80: 0x65 (userspace), 0x85 (custom)
# then ends through isa-debug-exit with 0x33 (status 103).
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set DEBUG_PORT, 0x80
	.set BOOT_TIMER, 0xd0000000
	.set BOOT_TIMER_MAGIC, 123
	.set PASS, 0x33

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	mov $0x05, %al
	outb %al, $DEBUG_PORT
	mov $0x25, %al
	outb %al, $DEBUG_PORT
	mov $0x45, %al
	outb %al, $DEBUG_PORT
	movb $(BOOT_TIMER_MAGIC - 1), BOOT_TIMER
	movb $BOOT_TIMER_MAGIC, BOOT_TIMER
	mov $0x65, %al
	outb %al, $DEBUG_PORT
	mov $0x85, %al
	outb %al, $DEBUG_PORT
	mov $PASS, %al
	call debug_exit

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
