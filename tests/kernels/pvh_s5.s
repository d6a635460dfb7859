# pvh_s5: a PVH kernel (ELF32) that powers the machine off the way an ACPI-aware kernel does:
# from hvm_start_info's RSDP to the XSDT (or RSDT), the FADT's PM1a control block and DSDT,
# the SLP_TYPa value of the DSDT's \_S5 package, then SLP_TYPa | SLP_EN written to PM1a
# control. If a step fails, or the VM survives the write, it ends through isa-debug-exit with
# 0x40 + the step number.
	.include "pvh.inc"
	.code32
	.include "lib.inc"
	.include "acpi.inc"

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	mov %ebx, %ebp				# start_info
	call uart_init
	mov $msg_hello, %esi
	call puts
	mov SI_RSDP(%ebp), %esi
	cmpl $0x20445352, (%esi)		# "RSD PTR "
	mov $1, %bl
	jne fail
	cmpb $2, 15(%esi)			# revision 2+: the XSDT
	jb 1f
	mov 24(%esi), %edi
	test %edi, %edi
	jz 1f
	mov $8, %edx				# entry size
	cmpl $0x54445358, (%edi)		# "XSDT"
	je 2f
1:	mov 16(%esi), %edi			# the RSDT
	mov $4, %edx
	cmpl $0x54445352, (%edi)		# "RSDT"
	mov $2, %bl
	jne fail
2:	mov 4(%edi), %ecx			# entries = (length - 36) / entry size
	sub $36, %ecx
	lea 36(%edi), %esi
	add %esi, %ecx
3:	cmp %ecx, %esi
	mov $3, %bl
	jae fail
	mov (%esi), %eax
	cmpl $0x50434146, (%eax)		# "FACP"
	je 4f
	add %edx, %esi
	jmp 3b
4:	mov %eax, %edi				# the FADT
	mov 64(%edi), %eax			# PM1a_CNT_BLK
	mov %eax, pm1a_cnt
	test %eax, %eax
	mov $4, %bl
	jz fail
	mov 40(%edi), %esi			# DSDT, or X_DSDT when the FADT has it
	cmpl $148, 4(%edi)
	jb 5f
	mov 140(%edi), %eax
	test %eax, %eax
	jz 5f
	mov %eax, %esi
5:	cmpl $0x54445344, (%esi)		# "DSDT"
	mov $5, %bl
	jne fail
	mov 4(%esi), %ecx			# scan the definition block for "_S5_"
	lea -4(%esi, %ecx), %ecx
	add $36, %esi
6:	cmp %ecx, %esi
	mov $6, %bl
	jae fail
	cmpl $0x5f35535f, (%esi)		# "_S5_"
	je 7f
	inc %esi
	jmp 6b
7:	cmpb $AML_NAME_OP, -1(%esi)
	mov $7, %bl
	jne fail
	cmpb $AML_PACKAGE_OP, 4(%esi)
	jne fail
	movzbl 5(%esi), %eax			# PkgLength: bits 6-7 count its extra bytes
	shr $6, %eax
	lea 7(%esi, %eax), %esi			# past PkgLength and NumElements
	movzbl (%esi), %eax			# SLP_TYPa: BytePrefix n, ZeroOp or OneOp
	cmp $AML_BYTE_PREFIX, %al
	jne 8f
	movzbl 1(%esi), %eax
	jmp 9f
8:	cmp $AML_ONE_OP, %al
	mov $8, %bl
	ja fail
9:	mov %eax, slp_typ
	mov $msg_pm1a, %esi
	call puts
	mov pm1a_cnt, %eax
	call puthex
	mov $msg_s5, %esi
	call puts
	mov slp_typ, %eax
	call putdec
	mov $'\n', %al
	call putc
	mov slp_typ, %eax
	shl $SLP_TYP_SHIFT, %eax
	or $SLP_EN, %eax
	mov pm1a_cnt, %edx
	out %ax, %dx
	call settle
	mov $9, %bl				# still running
fail:
	mov %bl, %al
	or $FAIL_BASE, %al
	call debug_exit

	.section .rodata
msg_hello:	.asciz "pvh-s5: powering off through ACPI\n"
msg_pm1a:	.asciz "pvh-s5: PM1a_CNT "
msg_s5:		.asciz ", \\_S5 SLP_TYPa "

	.bss
	.align 16
pm1a_cnt:	.long 0
slp_typ:	.long 0
stack:		.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
