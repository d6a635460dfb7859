# pvh_start_info: a PVH kernel (ELF32) that reads the hvm_start_info it is handed in EBX
# (Xen's arch-x86/hvm/start_info.h, version 1) the way a PVH kernel finds memory and ACPI, and
# reports through the UART: the magic, the version, the flags, no modules, the command line,
# the RSDP (signature and checksum), and the memory map (known types, zero reserved fields,
# RAM at 1 MiB). It ends through isa-debug-exit with 0x20 (status 65) if every check passed,
# else 0x40 + the number of the failed check.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set XEN_HVM_START_MAGIC_VALUE, 0x336ec578
	.set SI_MAGIC, 0
	.set SI_VERSION, 4
	.set SI_FLAGS, 8
	.set SI_NR_MODULES, 12
	.set SI_MODLIST, 16
	.set SI_CMDLINE, 24
	.set SI_RSDP, 32
	.set SI_MEMMAP, 40
	.set SI_MEMMAP_ENTRIES, 48
	.set MM_ADDR, 0
	.set MM_SIZE, 8
	.set MM_TYPE, 16
	.set MM_RESERVED, 20
	.set MM_ENTRY, 24
	.set MM_TYPE_RAM, 1
	.set MM_TYPE_MAX, 7			# XEN_HVM_MEMMAP_TYPE_PMEM
	.set PASS, 0x20

	.text
	.globl _start
_start:
	mov $stack_top, %esp
	mov %ebx, %ebp
	call uart_init
	mov $msg_hello, %esi
	call puts
	cmpl $XEN_HVM_START_MAGIC_VALUE, SI_MAGIC(%ebp)
	mov $1, %bl
	jne fail
	cmpl $1, SI_VERSION(%ebp)		# version 1 has the memory map
	mov $2, %bl
	jb fail
	mov $msg_version, %esi
	call puts
	mov SI_VERSION(%ebp), %eax
	call putdec
	mov $msg_flags, %esi
	call puts
	mov SI_FLAGS(%ebp), %eax
	call puthex
	mov $'\n', %al
	call putc
	cmpl $0, SI_NR_MODULES(%ebp)
	mov $3, %bl
	jne fail
	mov SI_CMDLINE(%ebp), %esi		# the command line
	test %esi, %esi
	mov $4, %bl
	jz fail
	cmpl $0, SI_CMDLINE + 4(%ebp)
	jne fail
	push %esi
	mov $msg_cmdline, %esi
	call puts
	pop %esi
	call puts
	mov $'\n', %al
	call putc
	mov SI_RSDP(%ebp), %esi			# the RSDP: signature and ACPI 1.0 checksum
	cmpl $0x20445352, (%esi)		# "RSD "
	mov $5, %bl
	jne fail
	cmpl $0x20525450, 4(%esi)		# "PTR "
	jne fail
	xor %eax, %eax
	mov $20, %ecx
1:	add (%esi), %al
	inc %esi
	loop 1b
	test %al, %al
	mov $6, %bl
	jnz fail
	mov $msg_rsdp, %esi
	call puts
	mov SI_RSDP(%ebp), %eax
	call puthex
	mov $'\n', %al
	call putc
	mov SI_MEMMAP(%ebp), %esi		# the memory map
	mov SI_MEMMAP_ENTRIES(%ebp), %ecx
	mov $7, %bl
	test %esi, %esi
	jz fail
	test %ecx, %ecx
	jz fail
	xor %edi, %edi				# KiB of RAM
	xor %edx, %edx				# RAM at 1 MiB seen
2:	mov MM_TYPE(%esi), %eax
	test %eax, %eax
	mov $8, %bl
	jz fail
	cmp $MM_TYPE_MAX, %eax
	ja fail
	cmpl $0, MM_RESERVED(%esi)
	mov $9, %bl
	jne fail
	cmp $MM_TYPE_RAM, %eax
	jne 3f
	mov MM_SIZE(%esi), %eax			# sizes in the tests stay below 4 GiB
	shr $10, %eax
	add %eax, %edi
	cmpl $0, MM_ADDR + 4(%esi)
	jne 3f
	cmpl $0x100000, MM_ADDR(%esi)
	ja 3f
	mov MM_ADDR(%esi), %eax
	add MM_SIZE(%esi), %eax
	cmp $0x100000, %eax
	jbe 3f
	mov $1, %edx
3:	add $MM_ENTRY, %esi
	loop 2b
	test %edx, %edx
	mov $10, %bl
	jz fail
	mov $msg_memmap, %esi
	call puts
	mov SI_MEMMAP_ENTRIES(%ebp), %eax
	call putdec
	mov $msg_ram, %esi
	call puts
	mov %edi, %eax
	call putdec
	mov $msg_kib, %esi
	call puts
	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit
fail:
	mov $msg_fail, %esi
	jmp fail_check

	.section .rodata
msg_hello:	.asciz "pvh-start-info: magic ok\n"
msg_version:	.asciz "start_info: version "
msg_flags:	.asciz ", flags "
msg_cmdline:	.asciz "start_info: cmdline "
msg_rsdp:	.asciz "start_info: RSDP at "
msg_memmap:	.asciz "start_info: memmap "
msg_ram:	.asciz " entries, RAM "
msg_kib:	.asciz " KiB\n"
msg_pass:	.asciz "pvh-start-info: PASS\n"
msg_fail:	.asciz "pvh-start-info: FAIL "

	.bss
	.align 16
stack:	.space 1024
stack_top:

	.section .note.GNU-stack, "", @progbits
