# pvh_hpet: a PVH kernel (ELF32) that finds the HPET as an OS does, from hvm_start_info's RSDP
# through the RSDT to the ACPI HPET table (signature, checksum, base address), then checks the
# block's capabilities (vendor, 64-bit counter, 10 ns period), that the main counter stands
# still while disabled and is writable then, and that it advances once ENABLE_CNF is set.
# It ends through isa-debug-exit with 0x22 (status 69) if everything holds, or with 0x40 + the
# number of the first step that failed.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set SI_RSDP, 32			# hvm_start_info.rsdp_paddr
	.set HPET_SIG, 0x54455048		# "HPET"
	.set HPET_BASE, 0xfed00000
	.set HPET_CAP_ID, HPET_BASE + 0x000
	.set HPET_PERIOD, HPET_BASE + 0x004
	.set HPET_CONFIG, HPET_BASE + 0x010
	.set HPET_COUNTER, HPET_BASE + 0x0f0
	.set HPET_COUNTER_HI, HPET_BASE + 0x0f4
	.set HPET_ENABLE_CNF, 1
	.set HPET_COUNT_SIZE_CAP, 1 << 13
	.set PERIOD_10NS_FS, 10000000
	.set VENDOR_INTEL, 0x8086
	.set WAIT_LOOPS, 1000
	.set PASS, 0x22

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	mov %ebx, %ebp				# start_info
	call uart_init
	mov $msg_hello, %esi
	call puts

	# Step 1: the RSDP and its RSDT.
	mov $1, %bl
	mov SI_RSDP(%ebp), %esi
	cmpl $0x20445352, (%esi)		# "RSD PTR "
	jne fail
	mov 16(%esi), %edi			# the RSDT
	cmpl $0x54445352, (%edi)		# "RSDT"
	jne fail

	# Step 2: an HPET table among the RSDT's entries.
	mov $2, %bl
	mov 4(%edi), %ecx			# end of the entries
	add %edi, %ecx
	lea 36(%edi), %esi
1:	cmp %ecx, %esi
	jae fail
	mov (%esi), %eax
	cmpl $HPET_SIG, (%eax)
	je 2f
	add $4, %esi
	jmp 1b

	# Step 3: the table sums to zero and is at least 56 bytes long.
2:	mov $3, %bl
	mov %eax, %edi
	mov 4(%edi), %ecx
	cmp $56, %ecx
	jb fail
	xor %edx, %edx
	xor %esi, %esi
3:	add (%edi, %esi), %dl
	inc %esi
	cmp %ecx, %esi
	jb 3b
	test %dl, %dl
	jne fail

	# Step 4: its base address is system memory at HPET_BASE.
	mov $4, %bl
	cmpb $0, 40(%edi)			# address space: system memory
	jne fail
	cmpl $HPET_BASE, 44(%edi)
	jne fail
	cmpl $0, 48(%edi)
	jne fail
	mov $msg_table, %esi
	call puts
	mov 44(%edi), %eax
	call puthex
	mov $'\n', %al
	call putc

	# Step 5: the capabilities: Intel's vendor ID, a 64-bit counter, a 10 ns period, and the
	# table's Event Timer Block ID is their low half.
	mov $5, %bl
	mov HPET_CAP_ID, %eax
	cmp 36(%edi), %eax
	jne fail
	test $HPET_COUNT_SIZE_CAP, %eax
	jz fail
	shr $16, %eax
	cmp $VENDOR_INTEL, %eax
	jne fail
	cmpl $PERIOD_10NS_FS, HPET_PERIOD
	jne fail

	# Step 6: disabled, the counter stands still and takes a write.
	mov $6, %bl
	testl $HPET_ENABLE_CNF, HPET_CONFIG
	jnz fail
	movl $1000, HPET_COUNTER
	movl $0, HPET_COUNTER_HI
	call wait
	cmpl $1000, HPET_COUNTER
	jne fail

	# Step 7: enabled, it advances.
	mov $7, %bl
	movl $HPET_ENABLE_CNF, HPET_CONFIG
	mov HPET_COUNTER, %esi
	call wait
	mov HPET_COUNTER, %eax
	cmp $1000, %esi
	jb fail
	cmp %esi, %eax
	jbe fail
	mov $msg_ticks, %esi
	call puts
	sub $1000, %eax
	call putdec
	mov $'\n', %al
	call putc

	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit

fail:
	mov $msg_fail, %esi
	jmp fail_check

# wait: lets some time pass (each port read is a VM exit). Clobbers eax, ecx, edx.
wait:
	mov $WAIT_LOOPS, %ecx
	mov $UART_LSR, %dx
1:	in %dx, %al
	loop 1b
	ret

	.section .rodata
msg_hello:	.asciz "pvh-hpet: finding the HPET through ACPI\n"
msg_table:	.asciz "pvh-hpet: ACPI HPET table, block at "
msg_ticks:	.asciz "pvh-hpet: counter ticks since enable: "
msg_pass:	.asciz "pvh-hpet: all good\n"
msg_fail:	.asciz "pvh-hpet: failed step "

	.bss
	.align 16
stack:		.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
