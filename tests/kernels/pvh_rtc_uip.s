# pvh_rtc_uip: a PVH kernel (ELF32) that waits for the RTC's update-in-progress bit (register A
# bit 7) to rise and then to fall, as kernels do before reading the time, and ends through
# isa-debug-exit with 0x21; 0x41 if UIP never rose, 0x42 if it never fell, within far more
# reads than a second takes.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set RTC_INDEX, 0x70
	.set RTC_DATA, 0x71
	.set RTC_REG_A, 0x0a
	.set REG_A_UIP, 0x80
	.set UIP_POLLS, 0x4000000

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	call uart_init
	mov $UIP_POLLS, %ecx
1:	mov $RTC_REG_A, %al
	out %al, $RTC_INDEX
	in $RTC_DATA, %al
	test $REG_A_UIP, %al
	jnz 2f
	loop 1b
	mov $(FAIL_BASE + 1), %al		# UIP never rose
	call debug_exit
2:	mov $RTC_REG_A, %al
	out %al, $RTC_INDEX
	in $RTC_DATA, %al
	test $REG_A_UIP, %al
	jz 3f
	loop 2b
	mov $(FAIL_BASE + 2), %al		# UIP never fell
	call debug_exit
3:	mov $msg_done, %esi
	call puts
	mov $0x21, %al
	call debug_exit

	.section .rodata
msg_done:	.asciz "rtc-uip: the update started and ended\n"

	.bss
	.align 16
stack:		.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
