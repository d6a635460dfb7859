# pvh_modules: a PVH kernel (ELF32) that reads the boot modules listed in its hvm_start_info
# (nr_modules, modlist_paddr; Xen's arch-x86/hvm/start_info.h, struct hvm_modlist_entry), as
# a PVH Linux finds its initrd. For each module it checks that the module is page aligned,
# after the kernel image and not empty, and prints its command line and first line. It ends
# through isa-debug-exit with 0x10 (status 33) if every check passed, else 0x40 + the number
# of the failed check.
	.include "pvh.inc"
	.code32
	.include "lib.inc"

	.set XEN_HVM_START_MAGIC_VALUE, 0x336ec578
	.set SI_MAGIC, 0
	.set SI_NR_MODULES, 12
	.set SI_MODLIST, 16
	.set ML_PADDR, 0
	.set ML_SIZE, 8
	.set ML_CMDLINE, 16
	.set ML_ENTRY, 32
	.set PAGE_MASK, 0xfff
	.set MAX_LINE, 48
	.set PASS, 0x10

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
	mov $msg_modules, %esi
	call puts
	mov SI_NR_MODULES(%ebp), %eax
	call putdec
	mov $'\n', %al
	call putc
	mov SI_NR_MODULES(%ebp), %edi
	mov SI_MODLIST(%ebp), %ebp		# the list is below 4 GiB (high half not read)
1:	test %edi, %edi
	jz 3f
	mov ML_PADDR(%ebp), %eax
	test $PAGE_MASK, %eax			# page aligned
	mov $2, %bl
	jnz fail
	cmp $_bss_end, %eax			# after the kernel image
	mov $3, %bl
	jb fail
	cmpl $0, ML_SIZE(%ebp)			# not empty
	mov $4, %bl
	je fail
	mov $msg_module, %esi
	call puts
	mov ML_CMDLINE(%ebp), %esi
	call puts
	mov $msg_bar, %esi
	call puts
	mov ML_PADDR(%ebp), %esi		# the first line, at most MAX_LINE bytes
	mov ML_SIZE(%ebp), %ecx
	cmp $MAX_LINE, %ecx
	jbe 2f
	mov $MAX_LINE, %ecx
2:	lodsb
	cmp $'\n', %al
	je 4f
	call putc
	loop 2b
4:	mov $'\n', %al
	call putc
	add $ML_ENTRY, %ebp
	dec %edi
	jmp 1b
3:	mov $msg_pass, %esi
	call puts
	mov $PASS, %al
	call debug_exit

# fail: reports check %bl and ends with 0x40 + %bl.
fail:
	mov $msg_fail, %esi
	jmp fail_check

	.section .rodata
msg_hello:	.asciz "pvh-modules: PVH entry\n"
msg_modules:	.asciz "modules: "
msg_module:	.asciz "module: "
msg_bar:	.asciz " | "
msg_pass:	.asciz "pvh-modules: PASS\n"
msg_fail:	.asciz "pvh-modules: FAIL "

	.bss
	.align 16
	.skip 4096
stack_top:

	.section .note.GNU-stack, "", @progbits
