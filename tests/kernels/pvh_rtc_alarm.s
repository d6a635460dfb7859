# pvh_rtc_alarm: a PVH kernel (ELF32) that arms the RTC alarm (all three alarm registers
# "don't care": the next second) with register B's AIE while it runs, and waits for IRQ 8 to
# reach the slave 8259's interrupt request register (read with OCW3; the line is masked, so no
# interrupt is delivered); then register C must show AF and IRQF, and a second read nothing
# (read to clear). Ends through isa-debug-exit with 0x22, or 0x40 + the failed step.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set RTC_INDEX, 0x70
	.set RTC_DATA, 0x71
	.set RTC_REG_B, 0x0b
	.set RTC_REG_C, 0x0c
	.set REG_B_AIE, 0x20
	.set REG_C_IRQF_AF, 0xa0
	.set PIC_SLAVE_CMD, 0xa0
	.set PIC_SLAVE_DATA, 0xa1
	.set OCW3_READ_IRR, 0x0a
	.set IRQ8_BIT, 0x01
	.set IRR_POLLS, 0x4000000		# far more reads than a second takes

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	call uart_init
	mov $0xff, %al				# mask every slave line
	out %al, $PIC_SLAVE_DATA
	mov $OCW3_READ_IRR, %al
	out %al, $PIC_SLAVE_CMD
	in $PIC_SLAVE_CMD, %al
	test $IRQ8_BIT, %al
	mov $1, %bl				# IRQ 8 already requested
	jnz fail
	mov $RTC_REG_C, %al			# clear the flags
	out %al, $RTC_INDEX
	in $RTC_DATA, %al
	mov $1, %al				# seconds, minutes, hours alarms: don't care
1:	out %al, $RTC_INDEX
	mov %al, %ah
	mov $0xc0, %al
	out %al, $RTC_DATA
	mov %ah, %al
	add $2, %al
	cmp $5, %al
	jbe 1b
	mov $RTC_REG_B, %al
	out %al, $RTC_INDEX
	in $RTC_DATA, %al
	or $REG_B_AIE, %al
	mov %al, %ah
	mov $RTC_REG_B, %al
	out %al, $RTC_INDEX
	mov %ah, %al
	out %al, $RTC_DATA
	mov $IRR_POLLS, %ecx
2:	in $PIC_SLAVE_CMD, %al			# OCW3 still selects the IRR
	test $IRQ8_BIT, %al
	jnz 3f
	loop 2b
	mov $2, %bl				# no IRQ 8
	jmp fail
3:	mov $RTC_REG_C, %al
	out %al, $RTC_INDEX
	in $RTC_DATA, %al
	and $REG_C_IRQF_AF, %al
	cmp $REG_C_IRQF_AF, %al
	mov $3, %bl				# no AF and IRQF
	jne fail
	mov $RTC_REG_C, %al
	out %al, $RTC_INDEX
	in $RTC_DATA, %al
	test $REG_C_IRQF_AF, %al
	mov $4, %bl				# not cleared by the read
	jnz fail
	mov $msg_done, %esi
	call puts
	mov $0x22, %al
	call debug_exit
fail:
	mov %bl, %al
	or $FAIL_BASE, %al
	call debug_exit

	.section .rodata
msg_done:	.asciz "rtc-alarm: IRQ 8 and the alarm flag\n"

	.bss
	.align 16
stack:		.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
