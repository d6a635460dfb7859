# pvh_i8042: a PVH kernel (ELF32) that resets the machine the way Linux's reboot=k does and
# Firecracker expects: it waits for the 8042's input buffer to drain, checks the controller is
# idle (nothing in the output buffer) and passes its self-test, then writes 0xFE (pulse the
# reset line) to port 0x64. If the VM survives, it ends through isa-debug-exit with 0x40 + the
# number of the failed step.
	.include "pvh.inc"
	.code32
	.include "lib.inc"
	.include "i8042.inc"

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	call uart_init
	mov $msg, %esi
	call puts
	call kbd_wait
	in $I8042_STATUS, %al
	test $STR_OBF, %al			# idle: no byte waiting
	mov $(0x40 | 1), %bl
	jnz 9f
	mov $CMD_SELF_TEST, %al
	out %al, $I8042_CMD
	mov $100000, %ecx
1:	in $I8042_STATUS, %al
	test $STR_OBF, %al
	jnz 2f
	loop 1b
	mov $(0x40 | 2), %bl
	jmp 9f
2:	in $I8042_DATA, %al
	cmp $SELF_TEST_OK, %al
	mov $(0x40 | 3), %bl
	jne 9f
	call kbd_wait
	mov $CMD_PULSE_RESET, %al
	out %al, $I8042_CMD
	call settle
	mov $(0x40 | 4), %bl			# still running: the reset did nothing
9:	mov %bl, %al
	call debug_exit

# kbd_wait: waits until the controller has taken the last byte written.
kbd_wait:
	in $I8042_STATUS, %al
	test $STR_IBF, %al
	jnz kbd_wait
	ret

	.section .rodata
msg:	.asciz "pvh-i8042: pulsing the reset line through port 0x64\n"

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
